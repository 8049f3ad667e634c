"""Hostile and careless input to `emolens video` (issue 25 items 1, 6b, 11, 12).

Clips are made in tmp_path from the bundled example photo (emolens.testing.clips) at 320x240,
15 fps; the tiny stand-in model does the classifying. Signals are sent for real: in-process
(SIGINT, from the main thread, where Python runs signal handlers) and to a subprocess
(SIGTERM, and two Ctrl-C 25 ms apart).
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

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

import emolens
from emolens.cli import app
from emolens.testing import clips
from emolens.video import AnnotatedVideoWriter, FaceTracker, VideoError, VideoOutputs, open_source, run_video

EXAMPLE = Path(emolens.__file__).parent / "examples" / "astronaut.jpg"
SIZE = (320, 240)
FPS = 15
DETECTOR = "dlib"          # finds the face of these clips on every frame
runner = CliRunner()


def cli(*args):
    return runner.invoke(app, ["video", *(str(a) for a in args)])


def command(*args, env: dict | None = None, **kwargs) -> subprocess.Popen:
    env = dict(os.environ, LC_ALL="C.UTF-8", PYTHONIOENCODING="utf-8", COLUMNS="250", **(env or {}))
    return subprocess.Popen([sys.executable, "-m", "emolens.cli", "video", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def one_line_error(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), text
    assert "Traceback" not in text
    return lines[0]


def frame_count(path) -> int:
    from emolens.file_names import OpenCVPath

    with OpenCVPath(path) as name:          # OpenCV itself crashes on names that are not UTF-8
        cap = cv2.VideoCapture(name)
        try:
            assert cap.isOpened(), f"{path} does not play"
            n = 0
            while cap.grab():
                n += 1
            return n
        finally:
            cap.release()


def rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def face():
    """The example photo's face with a margin (the whole photo would make the face too small in a clip)."""
    return cv2.imread(str(EXAMPLE))[36:204, 131:299]


@pytest.fixture(scope="module")
def clip(tmp_path_factory, face):
    path = tmp_path_factory.mktemp("clips") / "clip.mp4"
    return clips.write_clip(path, clips.steady_face(face, SIZE, 2.0), SIZE, FPS, 2.0)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory, face):
    path = tmp_path_factory.mktemp("clips") / "long.mp4"
    return clips.write_clip(path, clips.steady_face(face, SIZE, 20.0), SIZE, FPS, 20.0)


@pytest.fixture
def args(tiny_model):
    return ["--model", tiny_model, "--detector", DETECTOR, "--no-progress"]


@pytest.fixture(scope="module")
def recognizer(tiny_model):
    from emolens import Recognizer

    return Recognizer(model=tiny_model, detector=DETECTOR)


# ---------------------------------------------------------------------------------------
# item 1: never onto the input, never two outputs into one file


@pytest.mark.parametrize("option, spelling", [
    ("--out", "same"), ("--out", "dot-slash"), ("--out", "symlink"), ("--out", "hardlink"),
    ("--csv", "same"), ("--jsonl", "dot-slash"), ("--summary-json", "same"), ("--plot", "symlink"),
])
def test_output_onto_the_input_video_is_refused(tmp_path, clip, args, monkeypatch, option, spelling):
    monkeypatch.chdir(tmp_path)
    shutil.copy(clip.path, "in.mp4")
    before = Path("in.mp4").read_bytes()
    target = {"same": "in.mp4", "dot-slash": "./in.mp4", "symlink": "link.mp4", "hardlink": "hard.mp4"}[spelling]
    if spelling == "symlink":
        os.symlink("in.mp4", "link.mp4")
    if spelling == "hardlink":
        os.link("in.mp4", "hard.mp4")
    result = cli("in.mp4", option, target, *args)
    assert result.exit_code == 2, result.output
    line = one_line_error(result.stderr)
    assert f"{target}: the" in line and "would overwrite the input video in.mp4" in line
    assert Path("in.mp4").read_bytes() == before


@pytest.mark.parametrize("first, second, spelling", [
    ("--csv", "--jsonl", "o.csv"), ("--csv", "--jsonl", "./o.csv"), ("--jsonl", "--csv", "sub/../o.csv"),
    ("--csv", "--summary-json", "o.json"), ("--out", "--csv", "o.mp4"),
])
def test_two_outputs_into_one_file_are_refused(tmp_path, clip, args, monkeypatch, first, second, spelling):
    monkeypatch.chdir(tmp_path)
    Path("sub").mkdir()
    name = Path(spelling).name
    result = cli(clip.path, first, name, second, spelling, *args)
    assert result.exit_code == 2, result.output
    line = one_line_error(result.stderr)
    assert (f"{spelling} and {name} are the same file" in line or f"{name} and {spelling} are the same file" in line)
    assert first in line and second in line
    assert not Path(name).exists(), "nothing is written when refused"


# ---------------------------------------------------------------------------------------
# item 12: outputs that cannot be written, reported before the run (and before the models load)


@pytest.mark.parametrize("option, path, expected", [
    ("--summary-json", "/proc/emolens-summary.json", "cannot write the summary (--summary-json) into /proc"),
    ("--plot", "/proc/emolens-plot.png", "cannot write the timeline plot (--plot) into /proc"),
    ("--summary-json", "FILE/s.json", "FILE is a file, not a folder"),
    ("--plot", "FILE/deeper/p.png", "FILE is a file, not a folder"),
    ("--summary-json", "s.png", "must be a .json file"),
    ("--plot", "timeline.txt", "must be a .pdf, .png or .svg file"),
    ("--plot", "timeline", "must be a .pdf, .png or .svg file"),
    ("--out", "a.gif", "must be a .avi, .m4v, .mkv, .mov, .mp4 or .webm file"),
    ("--csv", "FILE/f.csv", "FILE is a file, not a folder"),
])
def test_unwritable_or_misnamed_outputs_fail_up_front(tmp_path, clip, monkeypatch, option, path, expected):
    if path.startswith("/proc") and not Path("/proc/self").exists():
        pytest.skip("no /proc here")
    monkeypatch.chdir(tmp_path)
    Path("FILE").write_text("a file where a folder is expected")
    # A missing model is reported when the models load: the outputs are checked before.
    result = cli(clip.path, option, path, "--jsonl", "ok.jsonl", "--model", tmp_path / "missing.onnx")
    assert result.exit_code == 2, result.output
    assert expected in one_line_error(result.stderr)
    assert not Path("ok.jsonl").exists()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_write_errors_are_one_line(clip, args, tmp_path):
    result = cli(clip.path, "--csv", "/dev/full", *args)                 # the header write fails at once
    assert result.exit_code == 2
    assert "/dev/full: writing the CSV file failed (No space left on device)" in one_line_error(result.stderr)
    for option, what in (("--jsonl", "JSON Lines file"), ("--summary-json", "summary")):
        result = cli(clip.path, option, "/dev/full", "--csv", tmp_path / f"{what}.csv", *args)
        assert result.exit_code == 1, result.output
        assert f"/dev/full: writing the {what} failed (No space left on device)" in result.stderr
        assert "Traceback" not in result.output and "warning" not in result.stderr


def test_empty_paths_are_refused(clip, args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert "the video is an empty string" in one_line_error(cli("", *args).stderr)
    for option in ("--csv", "--jsonl", "--out", "--summary-json", "--plot"):
        result = cli(clip.path, option, "", *args)
        assert result.exit_code == 2 and f"{option} is an empty string" in one_line_error(result.stderr)
    assert os.listdir(tmp_path) == []
    with pytest.raises(VideoError, match="empty path"):
        open_source("")


@pytest.mark.parametrize("number", ["99999999999", "100", "4294967296"])
def test_camera_numbers_out_of_range_are_one_line(args, number):
    result = cli(number, *args)
    assert result.exit_code == 2
    assert f"camera {number}: not a camera number (cameras are numbered 0 to 99" in one_line_error(result.stderr)


def test_a_camera_number_is_still_a_camera(args):
    result = cli("0", *args)          # no camera on a test machine: the camera is tried, not a file "0"
    assert result.exit_code == 2 and "camera 0" in result.stderr and "file not found" not in result.stderr


# ---------------------------------------------------------------------------------------
# item 11: what is no video file


@pytest.mark.parametrize("kind", ["png", "jpeg", "webp"])
def test_still_picture_renamed_to_a_video_name_is_refused(tmp_path, args, kind):
    image = cv2.imread(str(EXAMPLE))
    path = tmp_path / f"still-{kind}.mp4"
    path.write_bytes(cv2.imencode({"png": ".png", "jpeg": ".jpg", "webp": ".webp"}[kind], image)[1].tobytes())
    result = cli(path, "--csv", tmp_path / "f.csv", *args)
    assert result.exit_code == 2, result.output
    line = one_line_error(result.stderr)
    assert "still" in line and "not a video" in line and f"emolens predict {path}" in line.replace("\n", "")
    assert not (tmp_path / "f.csv").exists()


def test_animated_gif_under_a_video_name_is_a_video(tmp_path, recognizer):
    from PIL import Image

    frames = [Image.fromarray(np.full((64, 64, 3), v, np.uint8)) for v in (0, 80, 160, 240)]
    path = tmp_path / "anim.mp4"
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    summary = run_video(recognizer, path)
    assert summary.processed == 4 and summary.error is None


@pytest.mark.parametrize("kind", ["device", "fifo", "folder"])
def test_non_regular_files_are_refused(tmp_path, args, kind):
    if kind == "device":
        path = Path("/dev/zero")
    elif kind == "fifo":
        path = tmp_path / "pipe.mp4"
        os.mkfifo(path)
    else:
        path = tmp_path / "folder.mp4"
        path.mkdir()
    result = cli(path, *args)          # a FIFO used to hang, /dev/zero to read forever
    assert result.exit_code == 2
    line = one_line_error(result.stderr)
    assert str(path) in line and ("not a regular file" in line or "is a folder" in line)


def test_every_nth_frame_near_the_clip_length_is_no_damage(clip, args, tmp_path):
    for every in (clip.frames - 1, clip.frames - 7, 20, clip.frames + 5):
        result = cli(clip.path, "--every", every, "--csv", tmp_path / "f.csv", *args)
        assert result.exit_code == 0, result.output
        assert "cut short or damaged" not in result.stderr, every
        assert len(rows(tmp_path / "f.csv")) == len(range(0, clip.frames, every))


# ---------------------------------------------------------------------------------------
# item 6b: names that are not UTF-8 and names with markup


def test_names_that_are_not_utf8_in_and_out(tmp_path, clip, tiny_model):
    folder = os.fsencode(tmp_path)
    source = folder + b"/vid\xe9o.mp4"
    shutil.copy(clip.path, source)
    out, plot = folder + b"/annot\xe9.mp4", folder + b"/courbe\xe9.png"
    temp = tmp_path / "tmp"
    temp.mkdir()
    proc = command(os.fsdecode(source), "--out", os.fsdecode(out), "--plot", os.fsdecode(plot), "--summary",
                   "--model", tiny_model, "--detector", DETECTOR, "--no-progress", env={"TMPDIR": str(temp)})
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr.decode()
    assert frame_count(os.fsdecode(out)) == clip.frames             # played through its real name
    assert open(plot, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert "vid\\xe9o.mp4: 1 person(s) in 1 track(s)" in stdout.decode("utf-8")
    assert "annot\\xe9.mp4" in stderr.decode("utf-8")
    assert not [n for n in os.listdir(temp) if n.startswith("emolens-")], "the symlinks given to OpenCV are removed"


def test_opencv_alias_is_removed(tmp_path):
    from emolens.file_names import OpenCVPath

    name = os.fsdecode(os.fsencode(tmp_path) + b"/x\xff.mp4")
    alias = OpenCVPath(name, ".mp4")
    assert alias.path != name and alias.path.isascii() and os.path.islink(alias.path)
    alias.close()
    assert not os.path.lexists(alias.path)
    assert OpenCVPath(tmp_path / "plain é.mp4").path == str(tmp_path / "plain é.mp4")


@pytest.mark.parametrize("name", ["x[bold]y.mp4", "[red]z].mp4", "esc\x1b[31m.mp4"])
def test_names_with_markup_print_as_they_are(tmp_path, clip, args, name):
    folder = tmp_path / "d["
    folder.mkdir()
    path = folder / name
    shutil.copy(clip.path, path)
    result = cli(path, "--summary", "--csv", tmp_path / "f.csv", *args[:-1], "--progress")
    assert result.exit_code == 0, result.output
    shown = str(path).replace("\x1b", "\\x1b")
    assert f"{shown}: 1 person(s) in 1 track(s), 1 shot(s), {clip.frames} frames" in result.stdout
    assert "\x1b" not in result.output
    result = cli(path, "--every", 1000, "--csv", folder / "[bold]out.csv", *args)
    assert result.exit_code == 0 and f"written: {folder / '[bold]out.csv'}" in result.stderr.replace("\n", "")


# ---------------------------------------------------------------------------------------
# item 11: SIGTERM like Ctrl-C, and signals while the outputs are finished


def outputs_in(folder: Path) -> VideoOutputs:
    return VideoOutputs(csv=folder / "f.csv", video=folder / "a.mp4", summary_json=folder / "s.json",
                        plot=folder / "t.png")


def check_outputs_hold(folder: Path, frames: int, signal_name: str):
    assert len(rows(folder / "f.csv")) == frames
    assert frame_count(folder / "a.mp4") == frames
    summary = json.loads((folder / "s.json").read_text())
    assert summary["interrupted"] and summary["interrupted_by"] == signal_name
    assert summary["frames_processed"] == frames
    assert (folder / "t.png").read_bytes()[:4] == b"\x89PNG"


def test_ctrl_c_stops_after_the_frame_in_hand_and_handlers_come_back(tmp_path, clip, recognizer):
    def ctrl_c_at_frame_4(result, run):
        if result.index == 4:
            os.kill(os.getpid(), signal.SIGINT)

    summary = run_video(recognizer, clip.path, outputs_in(tmp_path), on_frame=ctrl_c_at_frame_4)
    assert summary.interrupted and summary.processed == 5
    check_outputs_hold(tmp_path, 5, "SIGINT")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_second_ctrl_c_while_finishing_is_ignored(tmp_path, clip, args, monkeypatch):
    """A second Ctrl-C while the writer finalises used to abort with "interrupted before any frame
    was analysed" (and could leave an unplayable mp4)."""
    process = FaceTracker.process

    def first_ctrl_c(self, frame):
        if frame.index == 5:
            os.kill(os.getpid(), signal.SIGINT)
        return process(self, frame)

    close = AnnotatedVideoWriter.close

    def second_ctrl_c(self):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0)
        close(self)

    monkeypatch.setattr(FaceTracker, "process", first_ctrl_c)
    monkeypatch.setattr(AnnotatedVideoWriter, "close", second_ctrl_c)
    result = cli(clip.path, "--csv", tmp_path / "f.csv", "--out", tmp_path / "a.mp4", "--summary-json",
                 tmp_path / "s.json", "--plot", tmp_path / "t.png", *args)
    assert result.exit_code == 130, result.output
    assert "interrupted after 6 frames; the outputs hold those frames" in result.stderr
    check_outputs_hold(tmp_path, 6, "SIGINT")


def wait_for_rows(path: Path, n: int, proc: subprocess.Popen, deadline: float = 90) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end and proc.poll() is None:
        try:
            with open(path) as f:
                if sum(1 for _ in f) > n:
                    return
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    raise AssertionError(f"{path} did not reach {n} rows (exit code {proc.poll()})")


@pytest.mark.parametrize("signals, gap, code, name", [
    ((signal.SIGTERM,), 0.0, 143, "SIGTERM"),
    ((signal.SIGINT, signal.SIGINT), 0.025, 130, "SIGINT"),     # a second Ctrl-C 25 ms after the first
    ((signal.SIGTERM, signal.SIGINT, signal.SIGTERM), 0.025, 143, "SIGTERM"),
])
def test_signals_to_the_command_keep_playable_outputs(tmp_path, long_clip, tiny_model, signals, gap, code, name):
    proc = command(long_clip.path, "--csv", tmp_path / "f.csv", "--out", tmp_path / "a.mp4", "--summary-json",
                   tmp_path / "s.json", "--plot", tmp_path / "t.png", "--model", tiny_model, "--detector", DETECTOR,
                   "--no-progress")
    try:
        wait_for_rows(tmp_path / "f.csv", 10, proc)
        for i, sig in enumerate(signals):
            if i and gap:
                time.sleep(gap)
            proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = stderr.decode()
    assert proc.returncode == code, stderr
    frames = len(rows(tmp_path / "f.csv"))
    assert 10 <= frames < long_clip.frames
    check_outputs_hold(tmp_path, frames, name)
    assert f"after {frames} frames; the outputs hold those frames" in stderr
    assert "Traceback" not in stderr and "terminate called" not in stderr
