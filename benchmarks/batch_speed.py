"""emolens batch against one process: photos/s, frames/s, start-up, memory per worker, and the
scheduler's rate on empty tasks (for scaling on paper).

    python benchmarks/batch_speed.py                                  # 2,000 photos, a 10-minute clip
    python benchmarks/batch_speed.py --photos 20 --video-seconds 5    # tiny: checks the script runs

Inputs are built in --workdir (a temporary folder by default): --photos pictures (photos-dev
portraits hard-linked under distinct names, cycled) and a --video-seconds long 640x480 clip
with one moving face (emolens.testing.clips, mp4v). Each line is a separate command, run on
the same inputs, one after the other:

- ``emolens predict DIR --json`` and ``emolens video CLIP --csv``: the single process (the
  shipped defaults: ONNX Runtime on up to 2 threads);
- ``emolens batch DIR`` and ``emolens batch CLIP`` with --workers local workers (one thread
  each), a new output folder each time, so nothing is resumed;
- ``emolens batch`` on one photo: the start-up (cluster, workers, models) plus one photo.

Every command's wall time is measured from outside; the resident memory (RSS) of every
process the command starts is sampled every 0.2 s (psutil), and the peak of each batch
worker is reported. Last, empty tasks through a local cluster give the tasks per second the
scheduler hands out. Issue targets: batch >= 1.3x the single process on photos, >= 1.0x
on the video, start-up <= 10 s, <= 500 MB per worker and flat with video length.
Prints a markdown table and writes --json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_PHOTOS, markdown_table  # noqa: E402

BIN = Path(sys.executable).parent


def build_inputs(workdir: Path, photos: Path, n_photos: int, video_seconds: float) -> tuple[Path, Path]:
    from emolens.testing import clips

    folder = workdir / f"photos-{n_photos}"
    sources = clips.photo_paths(photos)
    if not sources:
        raise SystemExit(f"no photos in {photos}; pass --photos-dev PATH")
    if not folder.is_dir():
        folder.mkdir(parents=True)
        for i in range(n_photos):
            src = sources[i % len(sources)]
            target = folder / f"{i:05d}-{src.name}"
            try:
                os.link(src, target)
            except OSError:
                target.write_bytes(src.read_bytes())
    clip = workdir / f"clip-{video_seconds:g}s.mp4"
    if not clip.is_file():
        clips.write_clip(clip, clips.moving_face(sources[0], (640, 480), video_seconds), (640, 480), 30,
                         video_seconds, jitter=1.0, noise=2.0)
    return folder, clip


class PeakMemory:
    """Peak RSS per process of a process tree, sampled in a thread."""

    def __init__(self, pid: int, every: float = 0.2):
        import psutil

        self.root = psutil.Process(pid)
        self.every = every
        self.peaks: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                procs = [self.root] + self.root.children(recursive=True)
            except psutil.Error:
                return
            for p in procs:
                try:
                    rss = p.memory_info().rss / 2**20
                    cmd = " ".join(p.cmdline()[-3:])
                except psutil.Error:
                    continue
                if rss > self.peaks.get(p.pid, ("", 0.0))[1]:
                    self.peaks[p.pid] = (cmd, rss)
            self._stop.wait(self.every)

    def stop(self) -> dict[int, tuple[str, float]]:
        self._stop.set()
        self._thread.join()
        return self.peaks


def timed(cmd: list[str], stdout=subprocess.DEVNULL) -> tuple[float, dict, int]:
    """Wall seconds, peak RSS per process (MB), exit code."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, env=env)
    memory = PeakMemory(proc.pid)
    _, err = proc.communicate()
    seconds = time.perf_counter() - start
    peaks = memory.stop()
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err.decode()[-2000:]}")
    return seconds, peaks, proc.returncode


def worker_peaks(peaks: dict) -> list[float]:
    """Peak RSS of the batch's worker processes (multiprocessing children running a Dask worker)."""
    return sorted(rss for pid, (cmd, rss) in peaks.items() if "spawn_main" in cmd)


def scheduler_rate(n_tasks: int, workers: int) -> float:
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None)
    try:
        with Client(cluster) as client:
            client.gather(client.map(_empty, range(50)))          # warm-up
            start = time.perf_counter()
            client.gather(client.map(_empty, range(n_tasks), key=[f"empty-{i}" for i in range(n_tasks)]))
            return n_tasks / (time.perf_counter() - start)
    finally:
        cluster.close()


def _empty(i):
    return i


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=int, default=2000, help="pictures in the photo folder (default 2000)")
    ap.add_argument("--video-seconds", type=float, default=600.0, help="length of the 640x480 clip (default 600)")
    ap.add_argument("--workers", type=int, default=2, help="local batch workers (default 2)")
    ap.add_argument("--segment-seconds", type=float, default=60.0, help="batch --segment-seconds (default 60)")
    ap.add_argument("--empty-tasks", type=int, default=5000, help="empty tasks for the scheduler rate (default 5000)")
    ap.add_argument("--photos-dev", type=Path, default=DEFAULT_PHOTOS, help="photos-dev folder")
    ap.add_argument("--workdir", type=Path, default=None, help="where inputs and outputs go (default: temporary)")
    ap.add_argument("--json", type=Path, default=None, help="write the numbers here too")
    args = ap.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="emolens-batch-bench-"))
    folder, clip = build_inputs(workdir, args.photos_dev, args.photos, args.video_seconds)
    frames = int(round(args.video_seconds * 30))
    emolens = str(BIN / "emolens")
    batch = [emolens, "batch", "--workers", str(args.workers), "--segment-seconds", str(args.segment_seconds), "--quiet"]
    results = {}

    def run(name: str, cmd: list[str], **kwargs) -> None:
        seconds, peaks, code = timed(cmd, **kwargs)
        results[name] = {"seconds": round(seconds, 2), "exit": code,
                         "peak_rss_mb": round(max((r for _, r in peaks.values()), default=0.0), 1),
                         "worker_peak_rss_mb": [round(r, 1) for r in worker_peaks(peaks)]}
        print(f"{name}: {seconds:.1f} s", file=sys.stderr)

    run("startup", batch + [str(next(folder.iterdir())), "--out", str(workdir / "out-startup")])
    run("predict", [emolens, "predict", str(folder), "--json"])
    run("batch photos", batch + [str(folder), "--out", str(workdir / "out-photos")])
    run("video", [emolens, "video", str(clip), "--csv", str(workdir / "video.csv"), "--no-progress"])
    run("batch video", batch + [str(clip), "--out", str(workdir / "out-video")])
    rate = scheduler_rate(args.empty_tasks, args.workers)

    photos_s = {k: args.photos / results[k]["seconds"] for k in ("predict", "batch photos")}
    frames_s = {k: frames / results[k]["seconds"] for k in ("video", "batch video")}
    rows = [
        ["photos/s", f"{photos_s['predict']:.1f}", f"{photos_s['batch photos']:.1f}",
         f"{photos_s['batch photos'] / photos_s['predict']:.2f}x (target >= 1.3x)"],
        ["video frames/s", f"{frames_s['video']:.1f}", f"{frames_s['batch video']:.1f}",
         f"{frames_s['batch video'] / frames_s['video']:.2f}x (target >= 1.0x)"],
        ["start-up + 1 photo (s)", "", f"{results['startup']['seconds']:.1f}", "target <= 10 s"],
        ["peak RSS per worker, photos (MB)", f"{results['predict']['peak_rss_mb']:.0f} (process)",
         ", ".join(f"{r:.0f}" for r in results["batch photos"]["worker_peak_rss_mb"]), "target <= 500 MB"],
        ["peak RSS per worker, video (MB)", f"{results['video']['peak_rss_mb']:.0f} (process)",
         ", ".join(f"{r:.0f}" for r in results["batch video"]["worker_peak_rss_mb"]), "flat with length"],
        ["scheduler, empty tasks/s", "", f"{rate:.0f}", f"{args.workers} workers"],
    ]
    print(f"\n{args.photos} photos, a {args.video_seconds:g} s 640x480 clip ({frames} frames), {args.workers} workers, "
          f"segments of {args.segment_seconds:g} s; os.cpu_count() = {os.cpu_count()}\n")
    print(markdown_table(["", "one process", f"batch, {args.workers} workers", "ratio"], rows))
    hours_per_hour = frames_s["batch video"] / 30
    seg = args.segment_seconds
    task_seconds = seg * args.workers / hours_per_hour
    parquet_bytes = sum(p.stat().st_size for p in (workdir / "out-video" / "faces").glob("*.parquet"))
    print(f"\nhours of 30 fps video per hour of wall time on these {args.workers} workers: {hours_per_hour:.2f} "
          f"(per worker {hours_per_hour / args.workers:.2f}); a {seg:g} s segment takes a worker {task_seconds:.0f} s, "
          f"so the scheduler ({rate:.0f} empty tasks/s) would limit only past ~{rate * task_seconds:.0f} workers; "
          f"results: {parquet_bytes / frames:.0f} bytes per frame with one face, i.e. "
          f"{parquet_bytes / frames * 30 * 3600 / 2**20:.0f} MB per hour of video")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results,
                                         "photos_per_s": photos_s, "frames_per_s": frames_s,
                                         "empty_tasks_per_s": rate}, indent=2))


if __name__ == "__main__":
    main()
