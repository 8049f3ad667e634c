"""The annotated video (`emolens video IN --out OUT`): H.264 (VP9 in .webm) with the source's audio,
frames at their real times, finished files only, and playback in a real browser (issue 26 item 5).

Source clips are made in tmp_path with PyAV: the bundled example photo's face on a textured
background (``emolens.testing.clips``), an H.264 or MPEG-4 Part 2 video stream and a 440 Hz
tone as AAC, PCM or MP3. Outputs are checked with PyAV (no ffprobe); the browser test loads a
local page with ``<video>`` in headless Chromium (Debian's chromium, installed as
tests/test_serve_browser.py does, or skipped saying why).
"""

from __future__ import annotations

import http.server
import json
import math
import os
import shutil
import threading
from fractions import Fraction
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

import emolens
from emolens.cli import app
from emolens.testing import clips
from emolens.video import FrameIterable, VideoError, VideoOutputs, check_outputs, run_video
from conftest import VIDEO_DETECTOR  # noqa: E402

av = pytest.importorskip("av", reason="the annotated video is written with PyAV")

EXAMPLE = Path(emolens.__file__).parent / "examples" / "astronaut.jpg"
SIZE = (320, 240)
FPS = 15
SECONDS = 2.0
TONE = 440.0
DETECTOR = VIDEO_DETECTOR
runner = CliRunner()


def write_source(path: Path, seconds: float = SECONDS, fps: int = FPS, size=SIZE, video: str = "libx264",
                 audio: str | None = "aac", rate: int = 44100, audio_start: float = 0.0) -> int:
    """A clip of the example face with (``audio``) a 440 Hz tone of the same length; returns its frame count."""
    face = cv2.imread(str(EXAMPLE))[36:204, 131:299]
    actors = clips.steady_face(face, size, seconds)
    base = clips.background(size)
    n = int(round(seconds * fps))
    with av.open(os.fspath(path), "w") as out:
        v = out.add_stream(video, rate=fps)
        v.width, v.height, v.pix_fmt = size[0], size[1], "yuv420p"
        a = None
        if audio is not None:
            a = out.add_stream(audio, rate=rate)
            a.layout = "stereo"
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(clips.render(base, actors, i / fps), format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in v.encode(frame):
                out.mux(packet)
        if a is not None:
            t = np.arange(int((seconds - audio_start) * rate)) / rate
            tone = np.tile((0.3 * np.sin(2 * np.pi * TONE * t)).astype(np.float32), (2, 1))
            for k in range(0, tone.shape[1], 1024):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, k:k + 1024]), format="fltp",
                                                   layout="stereo")
                frame.sample_rate = rate
                frame.pts, frame.time_base = k + int(audio_start * rate), Fraction(1, rate)
                for packet in a.encode(frame):
                    out.mux(packet)
            for packet in a.encode(None):
                out.mux(packet)
        for packet in v.encode(None):
            out.mux(packet)
    return n


def probe(path) -> dict:
    """What PyAV finds in a file: codecs, decoded frame times, audio duration and its main frequency."""
    info: dict = {}
    with av.open(os.fspath(path)) as c:
        v = c.streams.video[0]
        info["video"] = v.codec_context.name
        info["pix_fmt"] = v.codec_context.pix_fmt
        info["size"] = (v.codec_context.width, v.codec_context.height)
        info["times"] = [float(f.time) for f in c.decode(v)]
    with av.open(os.fspath(path)) as c:
        info["audio"] = None
        if c.streams.audio:
            a = c.streams.audio[0]
            info["audio"] = a.codec_context.codec.canonical_name
            chunks, start = [], None
            for f in c.decode(a):
                start = float(f.time) if start is None else start
                data = f.to_ndarray()
                chunks.append((data[0] if f.format.is_planar else data[0, ::len(f.layout.channels)]).astype(float))
                rate = f.sample_rate
            samples = np.concatenate(chunks)
            info["audio_start"] = start
            info["audio_seconds"] = len(samples) / rate
            spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
            info["tone"] = float(np.argmax(spectrum) * rate / len(samples))
    return info


def cli(*args):
    return runner.invoke(app, ["video", *(str(a) for a in args)])


@pytest.fixture(scope="module")
def with_aac(tmp_path_factory) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("src") / "aac.mp4"
    return path, write_source(path, video="mpeg4", audio="aac")


def faststart(path) -> bool:
    data = Path(path).read_bytes()
    return 0 <= data.find(b"moov") < data.find(b"mdat")


# ---------------------------------------------------------------------------------------
# codecs, frames and audio


@pytest.mark.parametrize("source, audio, expected_audio", [
    ("aac.mp4", "aac", "aac"),                  # AAC fits mp4: its packets are copied
    ("pcm.mkv", "pcm_s16le", "aac"),            # PCM does not: re-encoded as AAC
    ("mp3.mkv", "libmp3lame", "mp3"),           # MP3 fits mp4: copied
    ("silent.mp4", None, None),                 # no audio in, none out
])
def test_annotated_mp4_is_h264_with_the_source_audio(tmp_path, tiny_video_args, source, audio, expected_audio):
    src = tmp_path / source
    n = write_source(src, video="mpeg4" if source.endswith(".mp4") else "libx264", audio=audio)
    out = tmp_path / "out" / "annotated.mp4"
    result = cli(src, "--out", out, "--summary-json", tmp_path / "s.json", *tiny_video_args)
    assert result.exit_code == 0, result.output
    info = probe(out)
    assert (info["video"], info["pix_fmt"]) == ("h264", "yuv420p")
    assert len(info["times"]) == n == json.loads((tmp_path / "s.json").read_text())["frames_processed"]
    assert info["times"] == pytest.approx([i / FPS for i in range(n)], abs=1e-3)
    assert info["audio"] == expected_audio
    if audio is not None:
        assert info["audio_seconds"] == pytest.approx(SECONDS, abs=0.1)
        assert info["tone"] == pytest.approx(TONE, abs=5)
    assert faststart(out), "the index is at the front (browsers play while loading)"
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~current_umask())
    assert [p.name for p in out.parent.iterdir()] == ["annotated.mp4"], "no temporary file left"


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_every_nth_frame_keeps_real_time_and_the_whole_audio(tmp_path, with_aac, tiny_video_args):
    src, n = with_aac
    out = tmp_path / "a.mp4"
    result = cli(src, "--every", 3, "--out", out, *tiny_video_args)
    assert result.exit_code == 0, result.output
    info = probe(out)
    assert len(info["times"]) == math.ceil(n / 3)
    assert info["times"] == pytest.approx([3 * k / FPS for k in range(math.ceil(n / 3))], abs=1e-3)
    assert info["audio_seconds"] == pytest.approx(SECONDS, abs=0.1)


def test_interrupted_run_keeps_audio_up_to_the_last_frame(tmp_path, with_aac, video_recognizer):
    src, n = with_aac

    def stop_at_frame_9(result, run):
        if result.index == 9:
            raise KeyboardInterrupt

    summary = run_video(video_recognizer, src, VideoOutputs(video=tmp_path / "a.mp4"), on_frame=stop_at_frame_9)
    assert summary.interrupted and summary.processed == 10
    info = probe(tmp_path / "a.mp4")
    assert len(info["times"]) == 10 and info["video"] == "h264"
    assert info["audio_seconds"] == pytest.approx(10 / FPS, abs=0.05)


def test_audio_that_starts_late_stays_in_step(tmp_path, tiny_video_args):
    src = tmp_path / "late.mkv"
    write_source(src, audio="aac", audio_start=0.5)
    result = cli(src, "--out", tmp_path / "a.mp4", *tiny_video_args)
    assert result.exit_code == 0, result.output
    info = probe(tmp_path / "a.mp4")
    assert info["audio_start"] == pytest.approx(0.5, abs=0.03)
    assert info["audio_seconds"] == pytest.approx(SECONDS - 0.5, abs=0.1)


def test_webm_is_vp9_and_opus(tmp_path, with_aac, tiny_video_args):
    src, n = with_aac
    result = cli(src, "--out", tmp_path / "a.webm", *tiny_video_args)
    assert result.exit_code == 0, result.output
    info = probe(tmp_path / "a.webm")
    assert (info["video"], info["audio"]) == ("vp9", "opus")
    assert len(info["times"]) == n and info["tone"] == pytest.approx(TONE, abs=5)


@pytest.mark.parametrize("suffix, video", [(".mkv", "h264"), (".mov", "h264"), (".avi", "h264"), (".m4v", "h264")])
def test_other_containers(tmp_path, with_aac, tiny_video_args, suffix, video):
    src, n = with_aac
    out = tmp_path / f"a{suffix}"
    result = cli(src, "--out", out, *tiny_video_args)
    assert result.exit_code == 0, result.output
    info = probe(out)
    assert info["video"] == video and len(info["times"]) == n and info["audio"] is not None


def test_odd_frame_size_and_frames_without_a_file(tmp_path, video_recognizer):
    frames = [np.full((241, 321, 3), 40 + 10 * i, np.uint8) for i in range(5)]
    summary = run_video(video_recognizer, FrameIterable(frames, fps=10), VideoOutputs(video=tmp_path / "a.mp4"))
    assert summary.error is None and summary.processed == 5
    info = probe(tmp_path / "a.mp4")
    assert info["size"] == (322, 242) and len(info["times"]) == 5 and info["audio"] is None


def test_names_that_are_not_utf8_keep_their_audio(tmp_path, with_aac, tiny_model):
    import subprocess
    import sys

    folder = os.fsencode(tmp_path)
    source, out = folder + b"/vid\xe9o.mp4", folder + b"/annot\xe9.mp4"
    shutil.copy(with_aac[0], source)
    env = dict(os.environ, LC_ALL="C.UTF-8", PYTHONIOENCODING="utf-8")
    proc = subprocess.run([sys.executable, "-m", "emolens.cli", "video", os.fsdecode(source), "--out",
                           os.fsdecode(out), "--model", str(tiny_model), "--detector", DETECTOR, "--no-progress"],
                          env=env, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    info = probe(os.fsdecode(out))
    assert info["video"] == "h264" and info["audio"] == "aac" and len(info["times"]) == with_aac[1]
    assert sorted(os.listdir(folder)) == sorted([b"vid\xe9o.mp4", b"annot\xe9.mp4"])


def test_write_failure_is_one_line_and_leaves_no_partial_file(tmp_path, with_aac, tiny_video_args, monkeypatch):
    from emolens.video.encoding import VideoEncoder

    add = VideoEncoder.add

    def disk_full(self, picture, timestamp, repeats=1):
        if self.frames == 5:
            raise OSError(28, "No space left on device")
        add(self, picture, timestamp, repeats)

    monkeypatch.setattr(VideoEncoder, "add", disk_full)
    result = cli(with_aac[0], "--out", tmp_path / "a.mp4", "--csv", tmp_path / "f.csv", *tiny_video_args)
    assert result.exit_code == 1, result.output
    assert "a.mp4: writing the annotated video failed (No space left on device)" in result.stderr
    assert "Traceback" not in result.output
    # The frames before the failure are finished into a playable file; nothing else is left.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "f.csv"]
    assert len(probe(tmp_path / "a.mp4")["times"]) == 5


def test_missing_pyav_is_a_clear_error(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "av", None)        # import av raises ImportError
    with pytest.raises(VideoError, match=r"a\.mp4: the annotated video needs PyAV; install it: pip install av"):
        check_outputs(VideoOutputs(video=tmp_path / "a.mp4"))


def test_panels_stay_on_their_side_between_frames(video_recognizer):
    """The writer remembers each track's panel side, so a panel does not hop while it still fits."""
    from emolens.video import annotate_frame
    from emolens.video.tracking import FrameResult, TrackedFace

    scores = {e: 1 / 7 for e in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")}

    def face(track, box):
        return TrackedFace(track, box, None, "happy", scores, scores, "happy", scores, scores, True, True, person=track)

    image = np.zeros((480, 640, 3), np.uint8)
    sides: dict = {}
    annotate_frame(FrameResult(0, 0.0, [face(1, (60, 150, 120, 120))], image), sides)
    assert sides == {1: "right"}
    sides[1] = "below"          # as if the previous frame had it below
    annotate_frame(FrameResult(1, 0.1, [face(1, (60, 150, 120, 120))], image), sides)
    assert sides == {1: "below"}


# ---------------------------------------------------------------------------------------
# in the real browser


@pytest.fixture(scope="module")
def chromium():
    from test_serve_browser import _install_chromium

    problem = _install_chromium()
    if problem:
        pytest.skip(problem)


@pytest.fixture(scope="module")
def local_site(tmp_path_factory):
    """A folder served over HTTP on 127.0.0.1 (a free port) while the tests run."""
    folder = tmp_path_factory.mktemp("site")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(folder)))
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


PLAYER = """<!doctype html><meta charset="utf-8"><title>player</title>
<video id="v" src="{name}" muted playsinline preload="auto"></video>
<script>
  const v = document.getElementById("v");
  window.state = {{error: null}};
  v.addEventListener("error", () => window.state.error = v.error ? v.error.code + " " + v.error.message : "?");
</script>"""


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_annotated_video_plays_in_chromium(chromium, local_site, with_aac, tiny_video_args, suffix):
    from selenium.webdriver.support.ui import WebDriverWait
    from test_serve_browser import make_driver

    folder, base = local_site
    src, n = with_aac
    name = f"annotated{suffix}"
    result = cli(src, "--out", folder / name, *tiny_video_args)
    assert result.exit_code == 0, result.output
    (folder / f"play{suffix}.html").write_text(PLAYER.format(name=name))
    driver = make_driver("--autoplay-policy=no-user-gesture-required")
    try:
        driver.get(f"{base}/play{suffix}.html")
        state = "return [document.getElementById('v').readyState, window.state.error]"
        WebDriverWait(driver, 30, poll_frequency=0.1).until(
            lambda d: d.execute_script(state)[0] >= 1 or d.execute_script(state)[1])
        error = driver.execute_script("return window.state.error")
        assert error is None, f"Chromium cannot play the {suffix}: {error}"
        width, height, duration = driver.execute_script(
            "const v = document.getElementById('v'); return [v.videoWidth, v.videoHeight, v.duration]")
        assert (width, height) == SIZE
        assert duration == pytest.approx(SECONDS, abs=0.15)
        driver.execute_script("document.getElementById('v').play()")
        WebDriverWait(driver, 30, poll_frequency=0.1).until(
            lambda d: d.execute_script("return document.getElementById('v').currentTime") > 0.5)
        assert driver.execute_script("return window.state.error") is None
        audio_bytes = driver.execute_script("return document.getElementById('v').webkitAudioDecodedByteCount")
        assert audio_bytes > 0, "the audio track is decoded"
    finally:
        driver.quit()
