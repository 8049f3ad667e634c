"""Video: sources, tracking, smoothing, outputs and bad inputs, on short clips made from real photos.

Clips are built in tmp_path from photos-dev faces (emolens.testing.clips) at 320x240 and
15 fps so the whole file runs in seconds; the tiny stand-in model does the classifying.
"""

from __future__ import annotations

import csv
import json
import math
import time

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from emolens.cli import app
from emolens.emotions import EMOTIONS
from emolens.testing import clips
from emolens.video import (CSV_COLUMNS, EmaSmoother, FaceTracker, Frame, FrameIterable, LiveSource,
                           Timeline, VideoError, VideoFile, VideoOutputs, box_iou, ema_alpha, greedy_match,
                           open_source, run_video)

from conftest import VIDEO_DETECTOR  # noqa: E402

SIZE = (320, 240)
FPS = 15
runner = CliRunner()


def cli(*args):
    return runner.invoke(app, ["video", *(str(a) for a in args)])


@pytest.fixture(scope="module")
def faces(photos_dev):
    paths = clips.photo_paths(photos_dev)
    assert len(paths) >= 3
    return paths


@pytest.fixture(scope="module")
def moving_clip(tmp_path_factory, faces):
    path = tmp_path_factory.mktemp("clips") / "moving.mp4"
    return clips.write_clip(path, clips.moving_face(faces[0], SIZE, 2.0), SIZE, FPS, 2.0)


@pytest.fixture(scope="module")
def enter_clip(tmp_path_factory, faces):
    path = tmp_path_factory.mktemp("clips") / "enter.avi"
    return clips.write_clip(path, clips.enter_and_leave(faces[0], faces[5], SIZE, 3.0, enter=1.0, leave=2.0),
                            SIZE, FPS, 3.0)


@pytest.fixture(scope="module")
def empty_scene(tmp_path_factory):
    path = tmp_path_factory.mktemp("clips") / "nobody.mp4"
    return clips.write_clip(path, [], SIZE, FPS, 1.0)


DETECTOR = VIDEO_DETECTOR


# ---------------------------------------------------------------------------------------
# the Recognizer steps video uses


def test_detect_then_locate_boxes_equals_locate(video_recognizer, photo):
    image = cv2.imread(str(photo))
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    whole = video_recognizer.locate(image)
    detections = video_recognizer.detect(grey)
    steps = video_recognizer.locate_boxes(grey, [d.box for d in detections], [d.score for d in detections],
                                    [d.full_box for d in detections])
    assert [f.box for f in steps] == [f.box for f in whole] and len(steps) == 1
    assert np.array_equal(steps[0].crop, whole[0].crop) and np.allclose(steps[0].landmarks, whole[0].landmarks)
    assert video_recognizer.analyze(image)[0].scores == pytest.approx(video_recognizer.classify(steps)[0].scores)
    assert video_recognizer.locate_boxes(grey, []) == []


# ---------------------------------------------------------------------------------------
# smoothing


def test_half_life_means_halfway_after_one_half_life():
    assert ema_alpha(0.5, 0.5) == pytest.approx(0.5)
    assert ema_alpha(1.0, 0.5) == pytest.approx(0.75)
    assert ema_alpha(0.1, 0.0) == 1.0          # half-life 0: smoothing off
    assert ema_alpha(0.0, 0.5) == 0.0


@pytest.mark.parametrize("fps", [15, 60, 24.7])
def test_step_response_is_the_same_at_any_frame_rate(fps):
    half_life = 0.4
    ema = EmaSmoother(half_life)
    ema.update([0.0, 1.0], 0.0)
    t, value = 0.0, None
    for k in range(1, 10_000):
        t = k / fps
        value = ema.update([1.0, 0.0], t)
        if t >= half_life - 1e-9:
            break
    # At exactly one half-life (or the first frame after it) the EMA has moved halfway.
    expected = 1 - 0.5 ** (t / half_life)
    assert value[0] == pytest.approx(expected)
    if abs(t - half_life) < 1e-9:
        assert value == pytest.approx([0.5, 0.5])


def test_irregular_frame_times_give_the_same_result():
    rng = np.random.default_rng(1)
    times = np.cumsum(rng.uniform(0.005, 0.1, 200))
    times = times[times <= 2.0]
    ema = EmaSmoother(1.0)
    ema.update([0.0], 0.0)
    for t in times:
        value = ema.update([1.0], t)
    assert value[0] == pytest.approx(1 - 0.5 ** (times[-1] / 1.0))


def test_smoothing_stops_label_flicker_on_a_steady_face(faces):
    """A model hesitating between two labels (noisy scores): the raw label flips, the smoothed one holds."""
    from emolens import Recognizer
    from emolens.faces.detect import Detection, FaceDetector
    from emolens.metrics import softmax
    from emolens.runtime import ModelOutput

    class Hesitant:
        input_size = 48
        rng = np.random.default_rng(0)

        def __call__(self, crops):
            n = len(crops)
            logits = np.tile([0, 0, 0, 1.0, 0, 0, 0.95], (n, 1)) + self.rng.normal(0, 0.1, (n, 7))
            return ModelOutput(softmax(logits, 1.0), np.full((n, 7), 0.5), logits)

    class Fixed(FaceDetector):   # the face is where the clip puts it: this test is about smoothing
        def __call__(self, grey):
            return [Detection((100, 60, 120, 120), 1.0)]

    rec = Recognizer(model=Hesitant(), detector=Fixed(), landmarks=False)
    base = clips.background(SIZE)
    actors = clips.steady_face(faces[0], SIZE, 3.0)
    rng = np.random.default_rng(0)
    frames = [Frame(i, i / 30, clips.render(base, actors, i / 30, rng, jitter=2, noise=4)) for i in range(90)]
    results = list(rec.stream(frames, half_life=0.5))
    assert all(len(r.faces) == 1 for r in results)
    raw = [r.faces[0].raw_emotion for r in results]
    smooth = [r.faces[0].emotion for r in results]
    flips = lambda labels: sum(a != b for a, b in zip(labels, labels[1:]))  # noqa: E731
    assert flips(raw) >= 20
    assert flips(smooth) <= flips(raw) / 10


# ---------------------------------------------------------------------------------------
# matching and the timeline


def test_box_iou_and_greedy_match():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert box_iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    tracks = [(0, 0, 100, 100), (200, 0, 100, 100)]
    dets = [(210, 5, 100, 100), (5, 5, 100, 100), (600, 600, 50, 50)]
    assert sorted(greedy_match(tracks, dets)) == [(0, 1), (1, 0)]
    # A fast face (low IoU, close centre, same size) still keeps its track.
    assert greedy_match([(0, 0, 100, 100)], [(60, 10, 100, 100)]) == [(0, 0)]
    assert greedy_match([(0, 0, 100, 100)], [(400, 0, 100, 100)]) == []


def test_nested_detections_are_dropped():
    from emolens.faces.detect import Detection
    from emolens.video import drop_nested

    face, mouth = Detection((100, 100, 200, 200), 5.9), Detection((140, 220, 110, 70), 1.4)
    other = Detection((320, 90, 150, 150), 0.5)
    assert drop_nested([face, mouth, other]) == [face, other]
    # A weaker box around a face loses to the face.
    around, real = Detection((40, 0, 390, 390), 0.56), Detection((200, 160, 167, 167), 0.58)
    assert drop_nested([around, real]) == [real]


def test_timeline_memory_is_bounded():
    from emolens.video import FrameResult, TrackedFace

    scores = {e: 1 / 7 for e in EMOTIONS}
    face = TrackedFace(1, (0, 0, 10, 10), None, "happy", scores, scores, "happy", scores, scores, False, True)
    timeline = Timeline(max_points=100, all_poses=True)
    for i in range(20_000):
        timeline.add(FrameResult(i, i / 30, [face], None))
    t, v = timeline.series()["track 1"]
    assert timeline.points() <= 101 and len(t) <= 101 and v.shape[1] == 7
    assert t[0] < 10 and t[-1] > 650 and np.all(np.diff(t) > 0)   # spans the whole 667 s


# ---------------------------------------------------------------------------------------
# sources


def test_video_file_reads_every_frame_or_every_nth(moving_clip):
    with VideoFile(moving_clip.path) as src:
        frames = list(src)
        assert src.fps == FPS and src.frame_count == moving_clip.frames
    assert [f.index for f in frames] == list(range(moving_clip.frames))
    assert [f.timestamp for f in frames] == pytest.approx([i / FPS for i in range(moving_clip.frames)], abs=1e-3)
    with VideoFile(moving_clip.path, every=3) as src:
        frames = list(src)
        assert src.expected == len(frames)
    assert [f.index for f in frames] == list(range(0, moving_clip.frames, 3))
    assert frames[1].timestamp == pytest.approx(3 / FPS, abs=1e-3)


def test_paced_file_drops_frames_for_a_slow_consumer(moving_clip):
    src = LiveSource(VideoFile(moving_clip.path, prefetch=0), pace=True)
    got = []
    try:
        for frame in src:
            got.append(frame)
            time.sleep(0.2)        # a consumer at 5 frames/s on a 15 fps clip
    finally:
        src.close()
    assert src.dropped > 0 and len(got) < moving_clip.frames
    assert src.max_pending <= 1                      # never more than one frame waiting
    assert sum(f.dropped for f in got) == src.dropped
    assert len(got) + src.dropped == moving_clip.frames
    indices = [f.index for f in got]
    assert indices == sorted(indices) and indices[-1] == moving_clip.frames - 1
    # Paced: the clip's 2 s take about 2 s, not the consumer's 30 x 0.2 s.
    assert got[-1].timestamp == pytest.approx(2.0 - 1 / FPS, abs=1e-3)


def test_paced_file_plays_in_real_time(moving_clip):
    start = time.monotonic()
    with LiveSource(VideoFile(moving_clip.path, prefetch=0), pace=True) as src:
        n = sum(1 for _ in src)
    elapsed = time.monotonic() - start
    assert elapsed == pytest.approx((moving_clip.frames - 1) / FPS, abs=0.5)
    assert n + src.dropped == moving_clip.frames


def test_variable_frame_rate_timestamps_drive_smoothing(tmp_path, faces, video_recognizer):
    slots = [True, True, False, False, True, False, True, True, True, False, False, False, True] * 3
    clip = clips.write_vfr_avi(tmp_path / "vfr.avi", clips.steady_face(faces[1], SIZE, 3.0), slots, SIZE, fps=FPS)
    results = list(video_recognizer.stream(clip.path, half_life=0.3))
    assert [r.timestamp for r in results] == pytest.approx(clip.timestamps, abs=2e-3)
    # Re-run the EMA by hand on the raw scores with the real time steps.
    ema = EmaSmoother(0.3)
    for r in results:
        assert len(r.faces) == 1
        expected = ema.update([r.faces[0].raw_scores[e] for e in EMOTIONS], r.timestamp)
        assert [r.faces[0].scores[e] for e in EMOTIONS] == pytest.approx(expected)


# ---------------------------------------------------------------------------------------
# tracking


def test_steady_face_keeps_its_id_and_a_new_face_gets_a_new_one(enter_clip, video_recognizer):
    results = list(video_recognizer.stream(enter_clip.path, detect_every=3, max_missed=6))
    assert len(results) == enter_clip.frames
    ids_a = {f.track_id for r in results for f in r.faces if f.box[0] + f.box[2] / 2 < SIZE[0] / 2}
    ids_b = {f.track_id for r in results for f in r.faces if f.box[0] + f.box[2] / 2 > SIZE[0] / 2}
    assert len(ids_a) == 1, "the steady face must keep one track id"
    assert len(ids_b) == 1 and ids_b != ids_a
    (b,) = ids_b
    b_frames = [r.index for r in results if any(f.track_id == b for f in r.faces)]
    # B is on screen from t=1 s to t=2 s (frames 15..30): found within a detection period of both ends.
    assert 15 <= b_frames[0] <= 15 + 3 and 30 - 3 <= b_frames[-1] <= 30 + 3
    a_frames = [r for r in results if any(f.track_id in ids_a for f in r.faces)]
    assert len(a_frames) >= enter_clip.frames - 1
    # Between detections faces are followed, not detected.
    assert {r.detected for r in results} == {True, False}
    for r in results:
        for f in r.faces:
            assert list(f.scores) == list(EMOTIONS) and list(f.raw_scores) == list(EMOTIONS)
            assert sum(f.scores.values()) == pytest.approx(1, abs=1e-4)
            assert f.emotion == max(f.scores, key=f.scores.get)
            assert f.raw_emotion == max(f.raw_scores, key=f.raw_scores.get)


def test_moving_face_is_followed_between_detections(moving_clip, video_recognizer):
    results = list(video_recognizer.stream(moving_clip.path, detect_every=5))
    assert all(len(r.faces) == 1 for r in results)
    assert len({r.faces[0].track_id for r in results}) == 1
    # The followed box moves with the face: compare it to where the clip put the face.
    actor = clips.moving_face(np.zeros((8, 8, 3), np.uint8), SIZE, 2.0)[0]
    for r in results:
        cx, cy, side = actor.pose(r.timestamp)
        x, y, w, h = r.faces[0].box
        assert abs(x + w / 2 - cx) < 0.25 * side and abs(y + h / 2 - cy) < 0.3 * side


def test_default_detector_keeps_one_id_for_a_moving_face_in_hd(tmp_path, tiny_model, faces):
    """1280x720, one real face crossing the frame (the benchmark's clip, shorter): BlazeFace's tiles
    used to add boxes on the background too (2-3 per frame), which started extra tracks."""
    from emolens import Recognizer

    size = (1280, 720)
    clip = clips.write_clip(tmp_path / "hd.mp4", clips.moving_face(faces[0], size, 2.0), size, FPS, 2.0)
    rec = Recognizer(model=tiny_model, detector="blazeface")
    results = list(rec.stream(clip.path, detect_every=5))
    assert len(results) == clip.frames
    assert all(len(r.faces) == 1 for r in results)
    assert {f.track_id for r in results for f in r.faces} == {1}


def test_lost_face_ends_its_track_after_max_missed(video_recognizer, faces):
    actors = clips.steady_face(faces[2], SIZE, 1.0)
    frame_with = clips.render(clips.background(SIZE), actors, 0.5)
    frame_without = clips.background(SIZE)
    # A half-frame face vanishing at once reads as a shot cut (which ends tracks at once): this test
    # is about the missed-frame count alone, so cut detection is off.
    tracker = FaceTracker(video_recognizer, detect_every=1, max_missed=3, shots="off")
    r = tracker.process(Frame(0, 0.0, frame_with))
    assert len(r.faces) == 1 and len(tracker.tracks) == 1
    for i in range(1, 4):
        assert tracker.process(Frame(i, i / FPS, frame_without)).faces == []
        assert len(tracker.tracks) == 1, "kept while within max_missed"
    tracker.process(Frame(4, 4 / FPS, frame_without))
    assert tracker.tracks == [] and tracker.ended == 1
    # The face coming back after its track ended is a new track.
    assert tracker.process(Frame(5, 5 / FPS, frame_with)).faces[0].track_id == 2


def test_face_missed_by_the_detector_is_still_followed(video_recognizer, faces, monkeypatch):
    from emolens.faces.detect import FaceDetector

    real = video_recognizer.detector
    calls = []

    class Flaky(FaceDetector):
        def __call__(self, grey):
            calls.append(1)
            return [] if len(calls) in (2, 3) else real(grey)

    monkeypatch.setattr(video_recognizer, "detector", Flaky())
    base = clips.background(SIZE)
    actors = clips.moving_face(faces[0], SIZE, 1.0)
    tracker = FaceTracker(video_recognizer, detect_every=1)
    results = [tracker.process(Frame(i, i / FPS, clips.render(base, actors, i / FPS))) for i in range(6)]
    assert [len(r.faces) for r in results] == [1] * 6
    assert {r.faces[0].track_id for r in results} == {1}
    assert [r.faces[0].detected for r in results] == [True, False, False, True, True, True]


def test_face_without_landmarks_is_not_kept_once_gone(tiny_model, faces):
    from emolens import Recognizer

    rec = Recognizer(model=tiny_model, detector=DETECTOR, landmarks=False)   # as for faces too small for landmarks
    actors = clips.steady_face(faces[0], SIZE, 1.0)
    base = clips.background(SIZE)
    tracker = FaceTracker(rec, detect_every=2, max_missed=4)
    with_face = [tracker.process(Frame(i, i / FPS, clips.render(base, actors, 0.0))) for i in range(3)]
    assert all(len(r.faces) == 1 and r.faces[0].landmarks is None for r in with_face)
    assert [r.faces[0].detected for r in with_face] == [True, False, True]
    gone = [tracker.process(Frame(i, i / FPS, base)) for i in range(3, 12)]
    assert all(r.faces == [] for r in gone[1:]) and tracker.tracks == []


def test_stream_accepts_arrays(video_recognizer, faces):
    actors = clips.steady_face(faces[3], SIZE, 1.0)
    base = clips.background(SIZE)
    frames = [clips.render(base, actors, i / 10) for i in range(4)]
    results = list(video_recognizer.stream(frames, detect_every=2))
    assert [r.index for r in results] == [0, 1, 2, 3] and all(len(r.faces) == 1 for r in results)


# ---------------------------------------------------------------------------------------
# the command and its outputs


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_cli_writes_every_output(tmp_path, moving_clip, tiny_video_args):
    out = tmp_path / "out"
    result = cli(moving_clip.path, "--csv", out / "faces.csv", "--jsonl", out / "faces.jsonl",
                 "--out", out / "annotated.mp4", "--summary", "--summary-json", out / "summary.json",
                 "--plot", out / "timeline.png", *tiny_video_args)
    assert result.exit_code == 0, result.output
    n = moving_clip.frames
    rows = read_csv(out / "faces.csv")
    assert list(rows[0]) == CSV_COLUMNS
    assert len(rows) == n                         # one face on every frame
    assert [int(r["frame"]) for r in rows] == list(range(n))
    assert {r["track_id"] for r in rows} == {"1"}
    for r in rows:
        assert sum(float(r[f"score_{e}"]) for e in EMOTIONS) == pytest.approx(1, abs=1e-3)
        assert r["emotion"] in EMOTIONS and 0 <= float(r["intensity_happy"]) <= 1
    lines = [json.loads(line) for line in (out / "faces.jsonl").read_text().splitlines()]
    assert len(lines) == n
    assert {"frame", "time", "track_id", "box", "emotion", "scores", "intensity", "raw", "landmarks"} <= set(lines[0])
    assert set(lines[0]["raw"]) == {"emotion", "scores", "intensity"}
    import av

    with av.open(str(out / "annotated.mp4")) as container:       # H.264 since issue 26 (browsers play it)
        assert container.streams.video[0].codec_context.name == "h264"
    cap = cv2.VideoCapture(str(out / "annotated.mp4"))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS)
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == n
    ok, frame = cap.read()
    assert ok and frame.shape[:2] == (SIZE[1], SIZE[0])
    cap.release()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames_processed"] == n and not summary["interrupted"]
    (track,) = summary["tracks"]
    assert track["frames"] == n and track["dominant"] in EMOTIONS
    assert sum(track["shares"].values()) == pytest.approx(1, abs=1e-3)
    assert track["dominant"] == max(track["mean_scores"], key=track["mean_scores"].get)
    assert (out / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "#1" in result.output and "dominant" in result.output


def test_cli_every_nth_frame_and_three_faces(tmp_path, faces, tiny_video_args):
    clip = clips.write_clip(tmp_path / "three.mkv", clips.three_faces(faces[:3], (480, 240), 1.0), (480, 240),
                            FPS, 1.0)
    out = tmp_path / "out"
    result = cli(clip.path, "--every", 2, "--csv", out / "f.csv", "--out", out / "a.avi",
                 "--summary-json", out / "s.json", *tiny_video_args)
    assert result.exit_code == 0, result.output
    processed = math.ceil(clip.frames / 2)
    rows = read_csv(out / "f.csv")
    assert sorted({int(r["frame"]) for r in rows}) == list(range(0, clip.frames, 2))
    assert len(rows) == processed * 3
    assert len({r["track_id"] for r in rows}) == 3
    cap = cv2.VideoCapture(str(out / "a.avi"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == processed
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS / 2)
    assert len(json.loads((out / "s.json").read_text())["tracks"]) == 3


def test_no_faces_gives_empty_results_and_a_clean_summary(tmp_path, empty_scene, video_recognizer, tiny_video_args):
    results = list(video_recognizer.stream(empty_scene.path))
    assert len(results) == empty_scene.frames and all(r.faces == [] for r in results)
    out = tmp_path / "out"
    result = cli(empty_scene.path, "--csv", out / "f.csv", "--summary", "--summary-json", out / "s.json",
                 "--plot", out / "t.png", *tiny_video_args)
    assert result.exit_code == 0, result.output
    assert "no face found" in result.output
    assert (out / "f.csv").read_text().strip() == ",".join(CSV_COLUMNS)
    summary = json.loads((out / "s.json").read_text())
    assert summary["tracks"] == [] and summary["frames_processed"] == empty_scene.frames
    assert (out / "t.png").stat().st_size > 0


def test_realtime_file_drops_frames_and_keeps_video_time(tmp_path, moving_clip, video_recognizer):
    out = tmp_path / "live.mp4"
    summary = run_video(video_recognizer, moving_clip.path, VideoOutputs(video=out), realtime=True,
                        on_frame=lambda result, run: time.sleep(0.15))
    assert summary.dropped > 0 and summary.processed + summary.dropped == moving_clip.frames
    cap = cv2.VideoCapture(str(out))
    # Each analysed frame stands in for the frames dropped before it: the video keeps its length.
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == moving_clip.frames


# ---------------------------------------------------------------------------------------
# interruption


def check_outputs_valid(out, frames: int):
    rows = read_csv(out / "f.csv")
    assert sorted({int(r["frame"]) for r in rows}) == list(range(frames))
    assert all(r["score_neutral"] not in ("", None) for r in rows)
    lines = (out / "f.jsonl").read_text().splitlines()
    assert [json.loads(line)["frame"] for line in lines] == list(range(frames))
    cap = cv2.VideoCapture(str(out / "a.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == frames
    summary = json.loads((out / "s.json").read_text())
    assert summary["interrupted"] and summary["frames_processed"] == frames
    assert summary["tracks"][0]["frames"] == frames


def test_ctrl_c_from_a_callback_keeps_valid_outputs(tmp_path, moving_clip, video_recognizer):
    out = tmp_path / "out"

    def stop_at_frame_5(result, run):
        if result.index == 5:
            raise KeyboardInterrupt

    outputs = VideoOutputs(csv=out / "f.csv", jsonl=out / "f.jsonl", video=out / "a.mp4",
                           summary_json=out / "s.json", plot=out / "t.png")
    summary = run_video(video_recognizer, moving_clip.path, outputs, on_frame=stop_at_frame_5)
    assert summary.interrupted
    check_outputs_valid(out, 6)
    assert (out / "t.png").is_file()


def test_ctrl_c_from_the_source_mid_stream_via_cli(tmp_path, moving_clip, tiny_video_args, monkeypatch):
    frames_before_interrupt = 7
    original = VideoFile._frames

    def interrupted(self):
        for k, frame in enumerate(original(self)):
            if k == frames_before_interrupt:
                raise KeyboardInterrupt
            yield frame

    monkeypatch.setattr(VideoFile, "_frames", interrupted)
    out = tmp_path / "out"
    result = cli(moving_clip.path, "--csv", out / "f.csv", "--jsonl", out / "f.jsonl", "--out", out / "a.mp4",
                 "--summary-json", out / "s.json", *tiny_video_args)
    assert result.exit_code == 130, result.output
    assert "interrupted after 7 frames" in result.output and "Traceback" not in result.output
    check_outputs_valid(out, frames_before_interrupt)


# ---------------------------------------------------------------------------------------
# bad inputs


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, moving_clip, photos_dev):
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.mp4").write_bytes(b"")
    (d / "noise.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    data = moving_clip.path.read_bytes()
    (d / "cut.mp4").write_bytes(data[: len(data) // 2])      # mp4v keeps its index at the end: unreadable
    writer = cv2.VideoWriter(str(d / "zero.avi"), cv2.VideoWriter_fourcc(*"MJPG"), FPS, SIZE)
    writer.release()
    (d / "folder.mp4").mkdir()
    return d


@pytest.mark.parametrize("name, expected", [
    ("missing.mp4", "file not found"),
    ("empty.mp4", "empty file"),
    ("noise.mp4", "not a video"),
    ("cut.mp4", "not a video"),
    ("zero.avi", "no video frames"),
    ("folder.mp4", "is a folder"),
])
def test_bad_video_files_fail_clearly(bad_inputs, tiny_video_args, name, expected):
    path = bad_inputs / name
    result = cli(path, "--csv", bad_inputs / "never.csv", *tiny_video_args)
    assert result.exit_code == 2, result.output
    assert expected in result.output and str(path) in result.output.replace("\n", "")
    assert "Traceback" not in result.output
    assert not (bad_inputs / "never.csv").exists(), "no output is created for an input that cannot be read"


def test_picture_is_pointed_to_predict(photo, tiny_video_args):
    result = cli(photo, *tiny_video_args)
    assert result.exit_code == 2 and "emolens predict" in result.output


def test_camera_that_cannot_open(tiny_video_args):
    with pytest.raises(VideoError, match="camera 9: cannot be opened"):
        open_source(9)
    result = cli("9", *tiny_video_args)
    assert result.exit_code == 2 and "camera 9" in result.output and "Traceback" not in result.output


def test_show_without_a_gui_says_what_to_do(moving_clip, tiny_video_args, monkeypatch):
    from emolens import video

    monkeypatch.setattr(video, "gui_problem", lambda: "--show needs OpenCV with a GUI: install opencv-python")
    result = cli(moving_clip.path, "--show", *tiny_video_args)
    assert result.exit_code == 2 and "--show needs" in result.output
    if "NONE" in cv2.getBuildInformation().split("GUI:", 1)[1].splitlines()[0]:
        monkeypatch.undo()
        assert "opencv-python" in video.gui_problem()


def test_truncated_avi_keeps_what_it_has_and_warns(tmp_path, faces, tiny_video_args):
    clip = clips.write_clip(tmp_path / "long.avi", clips.steady_face(faces[0], SIZE, 2.0), SIZE, FPS, 2.0)
    data = clip.path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 3])
    result = cli(cut, "--csv", tmp_path / "f.csv", *tiny_video_args)
    assert result.exit_code == 0, result.output
    rows = read_csv(tmp_path / "f.csv")
    assert 0 < len(rows) < clip.frames
    assert "warning" in result.output and "cut short or damaged" in result.output


def test_source_error_mid_stream_is_reported(tmp_path, video_recognizer, faces):
    base = clips.background(SIZE)

    def frames():
        for i in range(3):
            yield Frame(i, i / FPS, base)
        raise VideoError("camera 0: stopped giving pictures; check its cable")

    summary = run_video(video_recognizer, FrameIterable(frames()), VideoOutputs(csv=tmp_path / "f.csv"))
    assert summary.processed == 3 and "stopped giving pictures" in summary.error


def test_unusable_outputs_fail_before_reading(moving_clip, tmp_path, tiny_video_args):
    result = cli(moving_clip.path, "--out", tmp_path / "a.gif", *tiny_video_args)
    assert result.exit_code == 2 and ".mp4" in result.output
