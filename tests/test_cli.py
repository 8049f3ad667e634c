"""`emolens predict` and `emolens detectors` end to end, through typer's CliRunner."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from emolens.cli import app
from emolens.draw import annotated_size
from emolens.emotions import EMOTIONS

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def check_record(rec: dict):
    """The documented JSON Lines shape (see emolens.predict)."""
    assert set(rec) == {"file", "faces", "error"}
    assert isinstance(rec["file"], str)
    assert rec["error"] is None or isinstance(rec["error"], str)
    for face in rec["faces"]:
        assert {"box", "emotion", "scores", "intensity", "aligned", "landmarks"} <= set(face)
        assert len(face["box"]) == 4 and all(isinstance(v, int) for v in face["box"])
        assert face["emotion"] in EMOTIONS
        assert list(face["scores"]) == list(EMOTIONS) and list(face["intensity"]) == list(EMOTIONS)
        assert sum(face["scores"].values()) == pytest.approx(1, abs=1e-3)
        assert isinstance(face["aligned"], bool)
        assert face["landmarks"] is None or (len(face["landmarks"]) == 68 and len(face["landmarks"][0]) == 2)


@pytest.fixture
def bad_folder(tmp_path, photo):
    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(photo, d / "good.jpg")
    (d / "empty.jpg").write_bytes(b"")
    (d / "text.png").write_text("not a picture")
    (d / "cut.jpg").write_bytes(photo.read_bytes()[:3000])
    cv2.imwrite(str(d / "blank.png"), np.full((120, 160, 3), 200, np.uint8))
    cv2.imwrite(str(d / "deep.png"), (cv2.imread(str(photo), cv2.IMREAD_GRAYSCALE).astype(np.uint16) * 257))
    cv2.imwrite(str(d / "alpha.png"), cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(d / "dot.png"), np.zeros((1, 1, 3), np.uint8))
    return d


def test_help_texts():
    result = run("--help")
    assert result.exit_code == 0 and "predict" in result.output and "detectors" in result.output
    for command in ("predict", "detectors"):
        result = run(command, "--help")
        assert result.exit_code == 0, result.output
    assert "--annotate" in run("predict", "--help").output


def test_detectors_command():
    result = run("detectors")
    assert result.exit_code == 0
    assert "haar" in result.output and "dlib" in result.output
    from emolens.faces.detect import DEFAULT_DETECTOR

    assert f"{DEFAULT_DETECTOR} (default)" in result.output
    assert DEFAULT_DETECTOR in run("predict", "--help").output


def test_predict_table(tiny_model, photo):
    result = run("predict", photo, "--model", tiny_model)
    assert result.exit_code == 0, result.output
    assert photo.name in result.output and "1 face" in result.output


def test_predict_json_and_annotate(tiny_model, photo, tmp_path):
    out = tmp_path / "ann"
    result = run("predict", photo, "--model", tiny_model, "--json", "--annotate", out)
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    rec = json.loads(lines[0])
    check_record(rec)
    assert rec["file"] == str(photo) and len(rec["faces"]) == 1 and rec["error"] is None
    written = out / photo.name
    img = cv2.imread(str(written))
    assert img is not None and img.shape[:2] == annotated_size(350, 350) == (720, 720)


def test_bad_inputs_are_reported_and_the_batch_goes_on(tiny_model, bad_folder, tmp_path):
    missing = tmp_path / "missing.jpg"
    result = run("predict", bad_folder, missing, "--model", tiny_model, "--json")
    assert result.exit_code == 1
    records = {json.loads(line)["file"]: json.loads(line) for line in result.stdout.strip().splitlines()}
    for rec in records.values():
        check_record(rec)
    by_name = {k.rsplit("/", 1)[-1]: v for k, v in records.items()}
    assert len(by_name["good.jpg"]["faces"]) == 1
    assert len(by_name["deep.png"]["faces"]) == 1 and by_name["deep.png"]["error"] is None
    assert len(by_name["alpha.png"]["faces"]) == 1 and by_name["alpha.png"]["error"] is None
    assert by_name["blank.png"] == {"file": str(bad_folder / "blank.png"), "faces": [], "error": None}
    assert by_name["dot.png"]["faces"] == [] and by_name["dot.png"]["error"] is None
    assert "empty file" in by_name["empty.jpg"]["error"] and "empty.jpg" in by_name["empty.jpg"]["error"]
    assert "not a" in by_name["text.png"]["error"]
    assert "truncated JPEG" in by_name["cut.jpg"]["error"]
    assert "file not found" in by_name["missing.jpg"]["error"]
    assert "Traceback" not in result.output
    assert "4 of 9 input(s) failed" in result.stderr


def test_table_mode_reports_errors_on_stderr(tiny_model, bad_folder):
    result = run("predict", bad_folder / "empty.jpg", bad_folder / "good.jpg", "--model", tiny_model)
    assert result.exit_code == 1
    assert "empty.jpg: empty file" in result.stderr
    assert "good.jpg" in result.stdout and "Traceback" not in result.output


def test_glob_and_no_face(tiny_model, bad_folder):
    result = run("predict", str(bad_folder / "bl*.png"), "--model", tiny_model)
    assert result.exit_code == 0, result.output
    assert "no face found" in result.stdout


def test_unknown_detector_and_missing_model(tiny_model, photo, tmp_path):
    result = run("predict", photo, "--model", tiny_model, "--detector", "nope")
    assert result.exit_code == 2 and "unknown face detector" in result.stderr
    result = run("predict", photo, "--model", tmp_path / "none.onnx")
    assert result.exit_code == 2 and "model file not found" in result.stderr


def test_real_photos_through_the_cli(tiny_model, photos_dev, tmp_path):
    images = sorted((photos_dev / "images").glob("*.jpg"))[:5]
    result = run("predict", *images, "--model", tiny_model, "--json", "--annotate", tmp_path / "ann")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert len(records) == 5
    for rec in records:
        check_record(rec)
    assert sum(len(r["faces"]) >= 1 for r in records) >= 4
    assert len(list((tmp_path / "ann").iterdir())) == 5


def test_cli_does_not_import_torch(tiny_model, photo):
    import subprocess
    import sys

    code = ("import sys; from typer.testing import CliRunner; from emolens.cli import app; "
            f"r = CliRunner().invoke(app, ['predict', {str(photo)!r}, '--model', {str(tiny_model)!r}, '--json']); "
            "assert r.exit_code == 0, r.output; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("command", ["predict", "video", "batch", "serve", "train", "export", "quantize", "evaluate"])
def test_help_keeps_brackets_and_shows_no_placeholder_after_flags(command):
    """Issue 26 item 7: rich markup ate '[serve]' from the help; flags showed '<bool>', inviting '--json true'."""
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    assert "[/" not in result.output and "[bold" not in result.output
    if command in ("serve", "batch"):
        assert f"pip install 'emolens[{command}]'" in result.output.replace("\n  ", " ")
