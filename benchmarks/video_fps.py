"""Video: end-to-end frames/s, memory over a long clip, and label flicker with and without smoothing.

    python benchmarks/video_fps.py                    # all three parts, 10 s clips, 2-minute RSS clip
    python benchmarks/video_fps.py --minutes 10       # the 10-minute RSS run
    python benchmarks/video_fps.py --parts fps --detect-every 1 --detect-every 5
    python benchmarks/video_fps.py --quick            # tiny inputs: checks the script runs

Clips are built from photos-dev portraits (emolens.testing.clips) with cv2.VideoWriter
(mp4v) in --workdir (a temporary folder by default):

- fps: 640x480 with one face moving and scaling, 1280x720 the same, 640x480 with three
  faces. Frames/s end to end (decoding, detection/tracking, model, smoothing) as
  ``emolens video`` runs, without outputs and with CSV + annotated mp4; and the share of
  frames kept when the 640x480 clip is played in real time (--realtime, camera-like).
  Target: >= 30 frames/s at 640x480 with one face.
- rss: a --minutes long 640x480 clip analysed with CSV + JSONL + plot outputs; the
  process's resident memory is sampled as it goes. Target: no growth with length.
- flicker: still photos with per-frame jitter (+-2 px) and noise (sigma 4), i.e. a
  steady expression, on the photos where the model hesitates most between its top two
  labels (the worst case); top-label changes per minute of the raw model output and of
  the smoothed one at several half-lives. Target: smoothed <= 1/10 of raw (at 0.5 s).

Prints markdown tables.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_PHOTOS, markdown_table, pin_threads  # noqa: E402


def rss_mb() -> float:
    """Current resident set size of this process (Linux /proc; falls back to the peak)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        import os

        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_clips(workdir: Path, photos: list[Path], seconds: float, quick: bool):
    from emolens.testing import clips

    specs = [
        ("640x480, 1 face moving", (640, 480), clips.moving_face(photos[0], (640, 480), seconds), 1),
        ("1280x720, 1 face moving", (1280, 720), clips.moving_face(photos[0], (1280, 720), seconds), 1),
        ("640x480, 3 faces", (640, 480), clips.three_faces(photos[1:4], (640, 480), seconds), 3),
    ]
    if quick:
        specs = specs[:1]
    built = []
    for name, size, actors, n_faces in specs:
        path = workdir / f"fps-{size[0]}x{size[1]}-{n_faces}.mp4"
        info = clips.write_clip(path, actors, size, 30, seconds)
        built.append((name, info, n_faces))
    return built


def measure_fps(recognizer, clip, detect_every: int, outputs_dir: Path | None):
    from emolens.video import VideoOutputs, run_video

    per_frame, found = [], []

    def on_frame(result, run):
        per_frame.append(result.seconds)
        found.append(len(result.faces))

    outputs = None
    if outputs_dir is not None:
        outputs = VideoOutputs(csv=outputs_dir / f"{clip.path.stem}.csv",
                               video=outputs_dir / f"{clip.path.stem}-out.mp4")
    start = time.perf_counter()
    summary = run_video(recognizer, clip.path, outputs, on_frame=on_frame, detect_every=detect_every, **PEOPLE)
    wall = time.perf_counter() - start
    return summary.processed / wall, per_frame, found


PEOPLE: dict = {}   # run_video's shots/persons settings for the fps part (--no-people turns both off)


def part_fps(args, recognizer, workdir: Path, photos: list[Path]) -> None:
    if args.no_people:
        PEOPLE.update(shots="off", persons=False)
    from emolens.video import run_video

    seconds = 2.0 if args.quick else args.seconds
    built = build_clips(workdir, photos, seconds, args.quick)
    rows = []
    for name, clip, n_faces in built:
        for every in args.detect_every or [5]:
            fps, per_frame, found = measure_fps(recognizer, clip, every, None)
            fps_out, _, _ = measure_fps(recognizer, clip, every, workdir)
            ms = sorted(v * 1e3 for v in per_frame)
            p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
            exact = sum(f == n_faces for f in found) / max(len(found), 1)
            target = "yes" if fps >= 30 else "no"
            rows.append([name, every, clip.frames, f"{fps:.1f}", f"{fps_out:.1f}", f"{statistics.median(ms):.1f}",
                         f"{p95:.1f}", f"{exact:.0%}", target if name.startswith("640x480, 1") else ""])
    print(f"\n### End-to-end frames/s (threads={args.threads}, {seconds:g} s clips at 30 fps)\n")
    print(markdown_table(["clip", "detect every", "frames", "frames/s", "frames/s + CSV & mp4", "ms/frame p50",
                          "ms/frame p95", "frames with all faces", ">= 30 fps"], rows))
    # Real-time playback of the 640x480 clip: how many frames are analysed, how many dropped.
    clip = built[0][1]
    summary = run_video(recognizer, clip.path, realtime=True, detect_every=(args.detect_every or [5])[-1])
    kept = summary.processed / max(summary.processed + summary.dropped, 1)
    print(f"\nReal-time playback of {built[0][0]} ({clip.frames} frames): {summary.processed} analysed, "
          f"{summary.dropped} dropped ({kept:.0%} kept)\n")


def part_rss(args, recognizer, workdir: Path, photos: list[Path]) -> None:
    from emolens.testing import clips
    from emolens.video import VideoOutputs, run_video

    minutes = 0.1 if args.quick else args.minutes
    seconds = minutes * 60
    path = workdir / f"long-{minutes:g}min.mp4"
    t0 = time.perf_counter()
    # Faces come and go over the clip, so tracks start and end all along.
    actors, spacing = [], 20.0
    for k in range(int(seconds // spacing) + 1):
        start = k * spacing
        actors.append(clips.Actor(photos[k % len(photos)], [(start, 220, 240, 200), (start + 10, 420, 250, 230),
                                                             (min(start + 18, seconds), 300, 240, 210)]))
    info = clips.write_clip(path, actors, (640, 480), 30, seconds)
    print(f"\n### Memory over a {minutes:g}-minute 640x480 clip ({info.frames} frames; built in "
          f"{time.perf_counter() - t0:.0f} s)\n")
    samples = []
    every = max(1, info.frames // 40)
    base = rss_mb()

    def on_frame(result, run):
        if run.processed % every == 0:
            samples.append((run.processed, result.timestamp, rss_mb()))

    out = workdir / "long-out"
    start = time.perf_counter()
    summary = run_video(recognizer, path, VideoOutputs(csv=out / "f.csv", jsonl=out / "f.jsonl",
                                                       summary_json=out / "s.json", plot=out / "t.png"),
                        on_frame=on_frame)
    wall = time.perf_counter() - start
    rows = [[n, f"{t / 60:.1f}", f"{mb:.0f}"] for n, t, mb in samples[:: max(1, len(samples) // 10)]]
    print(markdown_table(["frames analysed", "video minute", "RSS MB"], rows))
    values = [mb for _, _, mb in samples]
    q = max(1, len(values) // 4)
    growth = statistics.mean(values[-q:]) - statistics.mean(values[q:2 * q] or values[:q])
    print(f"\nbefore the run {base:.0f} MB; peak while running {max(values):.0f} MB; "
          f"last quarter minus second quarter: {growth:+.1f} MB ({'flat' if abs(growth) < 20 else 'GROWS'}); "
          f"{summary.processed} frames at {summary.processed / wall:.1f} frames/s, {len(summary.tracks)} tracks\n")
    # Track continuity: one track per appearance is ideal; a track that starts during an appearance
    # already tracked is a duplicate, one that ends early is a break.
    shown = [a for a in actors if a.start < seconds]
    spans = sorted((t.start, t.end) for t in summary.tracks.values())
    extra = [(s, e) for s, e in spans if s % spacing > 0.5]
    print(f"{len(shown)} appearances (one face on screen for up to 18 s every 20 s), {len(spans)} tracks; "
          f"tracks starting after an appearance began: "
          + (", ".join(f"{s:.2f}-{e:.2f} s" for s, e in extra) if extra else "none") + "\n")


def ambiguous_photos(recognizer, photos: list[Path], n: int) -> list[Path]:
    """The n one-face photos on which the model hesitates most (smallest gap between its top two scores):
    the hardest case for a steady label."""
    margins = []
    for photo in photos:
        faces = recognizer.analyze(photo)
        if len(faces) == 1:
            top = sorted(faces[0].scores.values(), reverse=True)
            margins.append((top[0] - top[1], photo))
    margins.sort(key=lambda m: m[0])
    return [photo for _, photo in margins[:n]]


def part_flicker(args, recognizer, workdir: Path, photos: list[Path]) -> None:
    """One tracked pass per clip gives the raw scores; each half-life's EMA is replayed on them."""
    import numpy as np

    from emolens.emotions import EMOTIONS
    from emolens.testing import clips
    from emolens.video import EmaSmoother, stream

    seconds = 3.0 if args.quick else args.flicker_seconds
    half_lives = args.half_life or [0.25, 0.5, 1.0]
    chosen = ambiguous_photos(recognizer, photos[: 12 if args.quick else 80], 2 if args.quick else args.flicker_photos)
    total_raw, total = 0, {h: 0 for h in half_lives}
    minutes, clip_rows = 0.0, []
    for i, photo in enumerate(chosen):
        clip = clips.write_clip(workdir / f"steady-{i}.mp4", clips.steady_face(photo, (640, 480), seconds),
                                (640, 480), 30, seconds, jitter=2.0, noise=4.0, seed=i)
        smoothers: dict = {}
        last: dict = {}
        raw_changes, changes = 0, {h: 0 for h in half_lives}
        for result in stream(recognizer, clip.path, half_life=0):
            for face in result.faces:
                raw = [face.raw_scores[e] for e in EMOTIONS]
                labels = {"raw": face.raw_emotion}
                for h in half_lives:
                    ema = smoothers.setdefault((face.track_id, h), EmaSmoother(h))
                    labels[h] = EMOTIONS[int(np.argmax(ema.update(raw, result.timestamp)))]
                prev = last.get(face.track_id)
                if prev is not None:
                    raw_changes += prev["raw"] != labels["raw"]
                    for h in half_lives:
                        changes[h] += prev[h] != labels[h]
                last[face.track_id] = labels
        total_raw += raw_changes
        for h in half_lives:
            total[h] += changes[h]
        minutes += seconds / 60
        clip_rows.append([photo.name, raw_changes, *(changes[h] for h in half_lives)])
    print(f"\n### Top-label flicker on a steady face ({len(chosen)} photos x {seconds:g} s at 30 fps, "
          "jitter 2 px, noise 4)\n")
    print(markdown_table(["photo", "raw changes", *(f"smoothed {h:g} s" for h in half_lives)], clip_rows))
    raw_rate = total_raw / minutes
    rows = [["raw (no smoothing)", f"{raw_rate:.1f}", "", ""]]
    for h in half_lives:
        rate = total[h] / minutes
        ratio = rate / raw_rate if raw_rate else 0.0
        rows.append([f"smoothed, half-life {h:g} s", f"{rate:.1f}", f"{ratio:.3f}",
                     ("yes" if ratio <= 0.1 else "no") if raw_rate else "raw never changes"])
    print()
    print(markdown_table(["top label", "changes per minute", "vs raw", "<= 1/10 of raw"], rows))
    print()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", nargs="+", choices=["fps", "rss", "flicker"], default=["fps", "rss", "flicker"])
    ap.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS, help="photos-dev folder")
    ap.add_argument("--model", type=Path, default=None, help="exported .onnx model (default: the shipped one)")
    ap.add_argument("--detector", default=None, help="face detector (default: the Recognizer's)")
    ap.add_argument("--detect-every", type=int, action="append", help="detection period(s) to measure (default 5)")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the fps clips (default 10)")
    ap.add_argument("--minutes", type=float, default=2.0, help="length of the RSS clip (default 2; the target "
                    "run uses 10)")
    ap.add_argument("--flicker-photos", type=int, default=5, help="steady clips for the flicker part (default 5)")
    ap.add_argument("--flicker-seconds", type=float, default=20.0, help="length of each steady clip (default 20)")
    ap.add_argument("--half-life", type=float, action="append", help="half-life(s) for the flicker part "
                    "(default 0.25, 0.5, 1)")
    ap.add_argument("--threads", type=int, default=2, help="threads for OpenCV and ONNX Runtime (default 2)")
    ap.add_argument("--workdir", type=Path, default=None, help="where clips are written (default: a temporary "
                    "folder, removed at the end)")
    ap.add_argument("--quick", action="store_true", help="tiny inputs: check that the script works")
    ap.add_argument("--no-people", action="store_true", help="fps part without shot cuts and person descriptors "
                    "(--shots off --no-persons), to measure what they cost")
    args = ap.parse_args(argv)

    pin_threads(args.threads)
    from emolens.recognize import Recognizer
    from emolens.testing.clips import photo_paths

    photos = photo_paths(args.photos)
    if len(photos) < 5:
        raise SystemExit(f"{args.photos}: need at least 5 face photos (photos-dev); pass --photos PATH")
    # Portraits the default detector finds (chosen once, by name, so runs are comparable).
    preferred = ["Aaron_Guiel_0001.jpg", "Abbas_Kiarostami_0001.jpg", "Abdulaziz_Kamilov_0001.jpg",
                 "Abdullah_Gul_0004.jpg", "Abel_Pacheco_0001.jpg", "Adam_Scott_0002.jpg"]
    by_name = {p.name: p for p in photos}
    photos = [by_name[n] for n in preferred if n in by_name] + [p for p in photos if p.name not in preferred]
    options = {} if args.detector is None else {"detector": args.detector}
    recognizer = Recognizer(model=args.model, threads=args.threads, **options)
    print(f"emolens video benchmark; model {recognizer.model.path.name}; detector "
          f"{recognizer.detector.name}; threads {args.threads}")
    with tempfile.TemporaryDirectory(prefix="emolens-video-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for part in args.parts:
            {"fps": part_fps, "rss": part_rss, "flicker": part_flicker}[part](args, recognizer, workdir, photos)
    return 0


if __name__ == "__main__":
    sys.exit(main())
