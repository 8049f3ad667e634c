"""emolens batch on Dask, on loopback: a local cluster on a mixed folder, rows equal to
``emolens predict --json`` and ``emolens video --csv``, resume, an interrupted run, a worker
SIGKILLed mid-run, and a real ``dask scheduler`` + two ``dask worker`` processes.

Inputs are made in tmp_path: photos-dev faces, short clips of them (emolens.testing.clips),
a corrupt picture and a corrupt video. Workers: one thread, 1 GB each.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="emolens batch needs the batch extra")
pytest.importorskip("pyarrow", reason="emolens batch needs the batch extra")
pytest.importorskip("av", reason="emolens batch needs the batch extra")

import pyarrow.dataset as ds  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from emolens.batch.run import run_batch  # noqa: E402
from emolens.batch.settings import AnalysisOptions  # noqa: E402
from emolens.cli import app  # noqa: E402
from emolens.emotions import EMOTIONS  # noqa: E402
from emolens.testing import clips  # noqa: E402

pytestmark = pytest.mark.timeout(180)
SIZE = (320, 240)
FPS = 25


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, memory_limit="1GB")
    with Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture(scope="module")
def archive(tmp_path_factory, photos_dev):
    """photos/ (3 faces in two folders), a 4 s clip with one moving face, a corrupt picture and video."""
    root = tmp_path_factory.mktemp("archive")
    faces = clips.photo_paths(photos_dev)
    (root / "photos" / "more").mkdir(parents=True)
    for i, face in enumerate(faces[:3]):
        shutil.copy(face, root / "photos" / ("more" if i == 2 else "") / face.name)
    clips.write_clip(root / "clip.mp4", clips.moving_face(faces[3], SIZE, 4.0), SIZE, FPS, 4.0)
    (root / "broken.jpg").write_bytes(os.urandom(3000))
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(3000))
    return root


def faces_table(out: Path):
    return ds.dataset(out / "faces", format="parquet").to_table()


def inputs_rows(out: Path) -> dict:
    return {row["source"]: row for row in pq.read_table(out / "inputs.parquet").to_pylist()}


def test_local_cluster_on_a_mixed_folder(client, archive, tmp_path):
    out = tmp_path / "out"
    report = run_batch([archive], out, client=client, segment_seconds=1.0, photos_per_task=1, progress=False)
    rows = inputs_rows(out)
    assert report.inputs == len(rows) == 6 and report.failed == 2
    assert rows[str(archive / "broken.jpg")]["status"] == "error"
    assert "not a readable picture" in rows[str(archive / "broken.jpg")]["message"]
    assert rows[str(archive / "broken.mp4")]["status"] == "error"
    assert "broken.mp4" in rows[str(archive / "broken.mp4")]["message"]
    clip = rows[str(archive / "clip.mp4")]
    assert clip["status"] == "ok" and clip["frames"] == 4 * FPS and clip["segments"] == 4 and clip["faces"] > 90
    assert all(r["status"] == "ok" and r["faces"] == 1 for s, r in rows.items() if s.endswith(".jpg")
               and "broken" not in s)
    # one recognizer per worker process, however many tasks it ran
    assert set(report.loads_by_worker.values()) == {1}
    assert sum(report.units_by_worker.values()) > len(report.loads_by_worker)
    # the dataset is readable without emolens (DuckDB), one row per face and frame
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    glob = str(out / "faces" / "*.parquet")
    n, sources = con.execute(f"select count(*), count(distinct source) from read_parquet('{glob}')").fetchone()
    assert n == faces_table(out).num_rows == sum(r["faces"] for r in rows.values()) and sources == 4
    frames = con.execute(f"select count(distinct frame), min(frame), max(frame), count(*) - count(distinct frame) "
                         f"from read_parquet('{glob}') where kind = 'video'").fetchone()
    assert frames[1] == 0 and frames[3] == 0 and frames[2] == 4 * FPS - 1    # each frame once, one face
    tracks = con.execute(f"select distinct track_id, person from read_parquet('{glob}') where kind = 'video'").fetchall()
    assert tracks == [(1, 1)]                       # one id across the four segments
    summary = list(csv.DictReader(open(out / "summary.csv")))
    assert {(r["level"], r["source"].rsplit("/", 1)[-1]) for r in summary} >= {("track", "clip.mp4"),
                                                                              ("person", "clip.mp4")}
    assert not any((out / ".emolens" / "tmp").iterdir()) and not any((out / ".emolens" / "segments").iterdir())


def _cli(*args):
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    return result


def test_rows_equal_predict_json_and_video_csv(client, archive, tmp_path):
    """A batch row is the predict --json face or the video --csv row, split into segments or not."""
    photos = sorted((archive / "photos").rglob("*.jpg"))
    predicted = [json.loads(line) for line in _cli("predict", *photos, "--json").stdout.splitlines()]
    video_csv = tmp_path / "clip.csv"
    assert _cli("video", archive / "clip.mp4", "--csv", video_csv, "--no-progress").exit_code == 0
    expected = list(csv.DictReader(open(video_csv)))
    for seconds in (0.0, 1.0):
        out = tmp_path / f"out{seconds}"
        run_batch([*photos, archive / "clip.mp4"], out, client=client, segment_seconds=seconds, progress=False)
        table = faces_table(out).to_pylist()
        for item in predicted:
            rows = [r for r in table if r["source"] == str(Path(item["file"]).absolute())]
            assert len(rows) == len(item["faces"]) == 1
            for row, face in zip(rows, item["faces"]):
                assert [row[k] for k in "xywh"] == face["box"] and row["emotion"] == face["emotion"]
                assert row["aligned"] == face["aligned"] and row["frontal"] == face["frontal"]
                for e in EMOTIONS:
                    assert row[f"score_{e}"] == pytest.approx(face["scores"][e], abs=1e-5)
                    assert row[f"intensity_{e}"] == pytest.approx(face["intensity"][e], abs=1e-5)
                assert row["detection_score"] == pytest.approx(face["detection_score"], abs=1e-4)
        video = sorted((r for r in table if r["kind"] == "video"), key=lambda r: (r["frame"], r["track_id"]))
        assert len(video) == len(expected)
        for row, want in zip(video, expected):
            assert (row["frame"], row["track_id"], row["emotion"]) == (int(want["frame"]), int(want["track_id"]),
                                                                      want["emotion"])
            assert row["time_s"] == pytest.approx(float(want["time"]), abs=1e-4)
            assert [row[k] for k in "xywh"] == [int(want[k]) for k in "xywh"]
            assert (row["shot"], row["person"], int(row["frontal"])) == (
                int(want["shot"]), int(want["person"]) if want["person"] else None, int(want["frontal"]))
            for k in ("yaw", "pitch", "roll"):
                assert (row[k] is None) == (want[k] == "")
                if row[k] is not None:
                    assert row[k] == pytest.approx(float(want[k]), abs=0.051)
            for e in EMOTIONS:
                assert row[f"score_{e}"] == pytest.approx(float(want[f"score_{e}"]), abs=1e-5)
                assert row[f"intensity_{e}"] == pytest.approx(float(want[f"intensity_{e}"]), abs=1e-5)


def test_resume_skips_what_is_done_and_redoes_what_changed(client, archive, tmp_path):
    src = tmp_path / "in"
    shutil.copytree(archive / "photos", src)
    shutil.copy(archive / "clip.mp4", src / "clip.mp4")
    out = tmp_path / "out"
    kwargs = dict(client=client, segment_seconds=1.0, photos_per_task=1, progress=False)
    first = run_batch([src], out, **kwargs)
    assert first.analysed == 4 and first.failed == 0
    parts = sorted(p.name for p in (out / "faces").iterdir())
    again = run_batch([src], out, **kwargs)
    assert (again.analysed, again.skipped, again.units_by_worker) == (0, 4, {})
    assert sorted(p.name for p in (out / "faces").iterdir()) == parts
    photo = next(src.glob("*.jpg"))
    os.utime(photo, ns=(photo.stat().st_atime_ns, photo.stat().st_mtime_ns + 10**9))   # the file changed
    changed = run_batch([src], out, **kwargs)
    assert (changed.analysed, changed.skipped) == (1, 3)
    assert faces_table(out).num_rows == first_rows(out, first)
    options = run_batch([src], out, AnalysisOptions(half_life=0.25), **kwargs)    # another option: all redone
    assert options.analysed == 4
    table = faces_table(out)
    assert table.num_rows == sum(r["faces"] for r in inputs_rows(out).values())
    assert len(set(zip(table["source"].to_pylist(), table["frame"].to_pylist(), table["face"].to_pylist(),
                       table["track_id"].to_pylist()))) == table.num_rows          # nothing twice


def test_rerun_tries_only_the_failed_photos_of_a_chunk(client, archive, tmp_path):
    """One chunk of 4 photos, one of them unreadable: a rerun reads that photo alone (the 3 done
    stay done, no empty part is added); once it reads (same size and time: a file fixed in
    place, or a flaky disk), its faces join the chunk's record and every face appears once."""
    src = tmp_path / "in"
    src.mkdir()
    good = sorted((archive / "photos").rglob("*.jpg"))
    for photo in good:
        shutil.copy(photo, src / photo.name)
    flaky = src / "flaky.jpg"
    content = good[0].read_bytes()
    flaky.write_bytes(b"\0" * len(content))
    os.utime(flaky, ns=(10**18, 10**18))
    out = tmp_path / "out"
    kwargs = dict(client=client, photos_per_task=64, progress=False)
    first = run_batch([src], out, **kwargs)
    assert (first.analysed, first.failed) == (4, 1)
    assert len({r["unit"] for r in inputs_rows(out).values()}) == 1          # one chunk
    parts = sorted(p.name for p in (out / "faces").iterdir())
    again = run_batch([src], out, **kwargs)
    assert (again.analysed, again.skipped, again.failed) == (1, 3, 1)
    assert sorted(p.name for p in (out / "faces").iterdir()) == parts
    flaky.write_bytes(content)
    os.utime(flaky, ns=(10**18, 10**18))
    (out / "faces" / parts[0].replace("-00000", "-00009")).write_bytes(b"not listed by any record")
    fixed = run_batch([src], out, **kwargs)
    assert (fixed.analysed, fixed.skipped, fixed.failed) == (1, 3, 0)
    assert len(list((out / "faces").iterdir())) == 2           # the chunk's part and its retry's; the stray one gone
    rows = inputs_rows(out)
    assert all(r["status"] == "ok" for r in rows.values()) and len({r["unit"] for r in rows.values()}) == 1
    assert rows[str(flaky)]["faces"] == rows[str(src / good[0].name)]["faces"] >= 1
    table = faces_table(out)
    keys = list(zip(table["source"].to_pylist(), table["face"].to_pylist()))
    assert len(keys) == len(set(keys)) == sum(r["faces"] for r in rows.values())
    with open(out / "summary.csv", newline="") as f:
        assert sorted(r["source"] for r in csv.DictReader(f)) == sorted(rows)
    done = run_batch([src], out, **kwargs)
    assert (done.analysed, done.skipped) == (0, 4)


def test_rerun_matches_failed_photos_whose_names_are_not_utf8(client, archive, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    good = sorted((archive / "photos").rglob("*.jpg"))[0]
    shutil.copy(good, src / good.name)
    (src / os.fsdecode(b"caf\xe9.jpg")).write_bytes(b"not a picture")
    out = tmp_path / "out"
    kwargs = dict(client=client, photos_per_task=64, progress=False)
    assert run_batch([src], out, **kwargs).failed == 1
    again = run_batch([src], out, **kwargs)
    assert (again.analysed, again.skipped, again.failed) == (1, 1, 1)
    assert str(src / "caf\\xe9.jpg") in inputs_rows(out)


def first_rows(out, report) -> int:
    return sum(r["faces"] for r in inputs_rows(out).values())


def test_interrupted_run_keeps_only_whole_files_and_the_rerun_finishes(client, archive, tmp_path):
    out = tmp_path / "out"
    kwargs = dict(client=client, segment_seconds=1.0, photos_per_task=1, progress=False)

    def stop(role, result, _client):
        if role == "photos":
            raise KeyboardInterrupt        # as Ctrl-C arrives in the client
    report = run_batch([archive], out, on_result=stop, **kwargs)
    assert report.interrupted and report.analysed == 1
    recorded = inputs_rows(out)
    assert len(recorded) == 1                            # the one chunk finished before Ctrl-C
    units = {r["unit"] for r in recorded.values()}
    assert {p.name.split("-")[0] for p in (out / "faces").glob("*.parquet")} <= units
    assert not any((out / ".emolens" / "tmp").iterdir())
    for part in (out / "faces").glob("*.parquet"):
        pq.read_table(part)                              # every file is whole
    rest = run_batch([archive], out, **kwargs)
    assert rest.skipped == len(recorded) - sum(r["status"] != "ok" for r in recorded.values())
    rows = inputs_rows(out)
    assert len(rows) == 6 and sum(r["status"] == "ok" for r in rows.values()) == 4
    assert faces_table(out).num_rows == sum(r["faces"] for r in rows.values())


def test_a_worker_killed_mid_run_loses_nothing(archive, tmp_path, photos_dev):
    from distributed import Client, LocalCluster

    src = tmp_path / "in"
    src.mkdir()
    for face in clips.photo_paths(photos_dev)[4:12]:
        shutil.copy(face, src / face.name)
    shutil.copy(archive / "clip.mp4", src / "clip.mp4")
    killed = {}

    def kill_a_busy_worker(role, result, c):
        if killed:
            return
        pids = c.run(os.getpid)
        busy = [w for w, keys in c.processing().items() if keys and w in pids]
        if busy:
            killed[busy[0]] = pids[busy[0]]
            os.kill(pids[busy[0]], signal.SIGKILL)

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, memory_limit="1GB")
    try:
        with Client(cluster) as c:
            report = run_batch([src], tmp_path / "out", client=c, segment_seconds=1.0, photos_per_task=1,
                               progress=False, on_result=kill_a_busy_worker)
    finally:
        cluster.close()
    assert killed and report.failed == 0 and not report.interrupted
    rows = inputs_rows(tmp_path / "out")
    assert len(rows) == 9 and all(r["status"] == "ok" for r in rows.values())
    table = faces_table(tmp_path / "out")
    keys = list(zip(table["source"].to_pylist(), table["frame"].to_pylist(), table["face"].to_pylist(),
                    table["track_id"].to_pylist()))
    assert len(keys) == len(set(keys)) == sum(r["faces"] for r in rows.values())     # every row exactly once
    video_frames = sorted(f for s, f, _, _ in keys if s.endswith("clip.mp4"))
    assert video_frames == list(range(4 * FPS))


def test_two_dask_workers_started_as_processes(archive, tmp_path):
    """`dask scheduler` and two `dask worker` processes on 127.0.0.1; `emolens batch --scheduler` uses both."""
    from distributed import Client

    dask_cli = str(Path(sys.executable).parent / "dask")
    scheduler_file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([dask_cli, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(scheduler_file)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.is_file() and time.monotonic() < deadline and procs[0].poll() is None:
            time.sleep(0.1)
        assert scheduler_file.is_file(), "the scheduler did not start"
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for _ in range(2):
            procs.append(subprocess.Popen([dask_cli, "worker", address, "--nthreads", "1", "--memory-limit", "1GB",
                                           "--host", "127.0.0.1", "--no-dashboard"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        with Client(address, timeout=30) as c:
            c.wait_for_workers(2, timeout=60)
        out = tmp_path / "out"
        result = subprocess.run([str(Path(sys.executable).parent / "emolens"), "batch", str(archive), "--out", str(out),
                                 "--scheduler", address, "--segment-seconds", "1", "--photos-per-task", "1"],
                                capture_output=True, text=True, timeout=150)
        assert result.returncode == 1, result.stderr                # the two broken files
        assert "2 in error" in result.stderr and "broken.jpg" in result.stderr
        rows = inputs_rows(out)
        workers = {w.strip() for r in rows.values() if r["worker"] for w in r["worker"].split(",")}
        assert len(workers) == 2 and all(w.startswith("tcp://127.0.0.1:") for w in workers)
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in reversed(procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_cli_names_the_extra_when_dask_is_missing(monkeypatch, tmp_path):
    import emolens.batch as batch

    monkeypatch.setitem(batch.REQUIRED_MODULES, "emolens_no_such_module", "dask[distributed]")
    result = _cli("batch", tmp_path, "--out", tmp_path / "out")
    assert result.exit_code == 2 and "pip install 'emolens[batch]'" in result.stderr


def test_cli_refuses_a_second_run_into_the_same_folder(tmp_path, archive):
    from emolens.batch.storage import Layout, RunLock

    layout = Layout(tmp_path / "out")
    layout.prepare()
    with RunLock(layout):
        result = _cli("batch", archive / "broken.jpg", "--out", tmp_path / "out")
    assert result.exit_code == 2 and "another emolens batch" in result.stderr


@pytest.mark.parametrize("theirs", ["summary.csv", "inputs.parquet", "faces"])
def test_cli_refuses_a_folder_whose_files_it_would_replace(tmp_path, archive, theirs):
    """--out ~/project held the user's summary.csv (or faces/*.parquet, removed as orphan parts)."""
    out = tmp_path / "project"
    (out / "faces").mkdir(parents=True) if theirs == "faces" else out.mkdir()
    mine = out / ("faces/table.parquet" if theirs == "faces" else theirs)
    mine.write_bytes(b"the user's own file")
    (out / "notes.txt").write_text("kept")
    result = _cli("batch", archive / "broken.jpg", "--out", out)
    assert result.exit_code == 2, result.output
    assert f"{out}: holds {theirs}, not written by an emolens batch" in result.stderr
    assert mine.read_bytes() == b"the user's own file" and not (out / ".emolens").exists()
    other = tmp_path / "notes"          # a folder with other files only: results go beside them
    other.mkdir()
    (other / "notes.txt").write_text("kept")
    result = _cli("batch", archive / "broken.jpg", "--out", other)
    assert result.exit_code == 1 and (other / "summary.csv").exists() and (other / "notes.txt").read_text() == "kept"


def test_batch_inference_imports_no_torch(archive, tmp_path):
    code = ("import sys; from emolens.batch import tasks, run, segments, stitching; "
            "from emolens.batch.settings import AnalysisOptions; from emolens.batch.plan import Unit; "
            "from emolens.batch.inputs import expand_inputs; o = AnalysisOptions().resolved(); "
            f"u = Unit('k', 'photos', tuple(i for i in expand_inputs([{str(archive / 'photos')!r}]))); "
            f"r = tasks.analyse_photos(u, o, {str(tmp_path)!r}); assert r['inputs'][0]['status'] == 'ok'; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    from emolens.batch.storage import Layout

    Layout(tmp_path).prepare()
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize("signum, stop", [(signal.SIGTERM, "Terminated"), (signal.SIGINT, "KeyboardInterrupt")])
def test_a_stop_inside_a_held_block_is_raised_when_the_block_ends(signum, stop):
    """A signal arriving while a finished unit is being recorded (its parts moved into faces/,
    its ledger record not yet written) must not break in between: it is raised after the block."""
    from emolens.batch.run import StopSignals

    steps = []
    with pytest.raises(KeyboardInterrupt) as raised, StopSignals() as signals:
        with signals.held():
            steps.append("parts moved")
            os.kill(os.getpid(), signum)     # its handler runs at once, between two bytecodes
            time.sleep(0.05)
            steps.append("record written")
        steps.append("after the block")
    assert steps == ["parts moved", "record written"]
    assert type(raised.value).__name__ == stop
    assert signals.finishing


def test_a_stop_outside_a_held_block_is_raised_at_once_and_a_second_is_ignored():
    from emolens.batch.run import StopSignals, Terminated

    steps = []
    with pytest.raises(Terminated), StopSignals():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
            steps.append("not reached")
        except Terminated:
            os.kill(os.getpid(), signal.SIGTERM)          # finishing: ignored
            time.sleep(0.05)
            steps.append("finishing")
            raise
    assert steps == ["finishing"]


def test_sigterm_stops_the_command_cleanly_and_the_rerun_finishes(archive, tmp_path):
    """SIGTERM to a running `emolens batch`: exit 143, only whole files, the ledger matches faces/; rerun completes."""
    src = tmp_path / "in"
    shutil.copytree(archive, src)
    for i in range(3):
        shutil.copy(archive / "clip.mp4", src / f"clip{i}.mp4")
    out = tmp_path / "out"
    cmd = [str(Path(sys.executable).parent / "emolens"), "batch", str(src), "--out", str(out), "--workers", "2",
           "--memory-limit", "1GB", "--segment-seconds", "1", "--photos-per-task", "1", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while proc.poll() is None and time.monotonic() < deadline and not any((out / ".emolens" / "done").glob("*.json")
                                                                               if (out / ".emolens" / "done").is_dir()
                                                                               else []):
            time.sleep(0.05)
        assert proc.poll() is None, "the batch ended before it could be stopped"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "rerun the same command" in err, err
    rows = inputs_rows(out)
    assert 1 <= len(rows) < 9, (rows, err)
    units = {r["unit"] for r in rows.values()}
    parts = list((out / "faces").glob("*.parquet"))
    assert {p.name.split("-")[0] for p in parts} <= units, (sorted(p.name for p in parts), units, err)
    assert sum(pq.read_table(p).num_rows for p in parts) == sum(r["faces"] for r in rows.values()), (rows, err)
    left = sorted(p.name for p in (out / ".emolens" / "tmp").iterdir())
    assert not left, (left, err)           # a task that outlived the stop's bounded wait
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=150)
    assert rerun.returncode == 1, rerun.stderr             # the two broken files
    rows = inputs_rows(out)
    assert len(rows) == 9 and sum(r["status"] == "ok" for r in rows.values()) == 7
    table = faces_table(out)
    assert table.num_rows == sum(r["faces"] for r in rows.values())
    for i in range(3):
        frames = [f for s, f in zip(table["source"].to_pylist(), table["frame"].to_pylist()) if s.endswith(f"clip{i}.mp4")]
        assert sorted(frames) == list(range(4 * FPS))


def _sleep_then_write(path: str, seconds: float) -> str:
    time.sleep(seconds)
    Path(path).write_text("late")
    return path


def test_a_stop_waits_for_cancelled_tasks_still_running_on_workers(client, tmp_path):
    """Cancelling a future does not stop the worker thread running it: after a stop the client
    waits (bounded) until the run's tasks have left the workers before it empties tmp/."""
    from emolens.batch.run import _let_running_tasks_end

    late = tmp_path / "late.txt"
    future = client.submit(_sleep_then_write, str(late), 1.5, key="emolens-photos-x-0-tok12345", pure=False)
    deadline = time.monotonic() + 30
    while not any(client.processing().values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    client.cancel([future])
    assert not late.exists()
    started = time.monotonic()
    _let_running_tasks_end(client, "tok12345")
    assert late.exists() and time.monotonic() - started < 10
    _let_running_tasks_end(client, "tok12345", seconds=0.5)      # nothing left: returns at once
