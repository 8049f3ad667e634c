"""`emolens evaluate` on a real slice of FER2013 PublicTest with the shipped model (ONNX Runtime)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from emolens.cli import app
from emolens.runtime import default_model_path

runner = CliRunner()


@pytest.fixture(scope="module")
def shipped_model():
    path = default_model_path()
    if not path.is_file():
        pytest.fail(f"the shipped model {path} is missing")
    return path


def test_evaluate_json_on_public_test_slice(fer2013_path, ferplus_path, shipped_model):
    result = runner.invoke(app, ["evaluate", str(fer2013_path), "--split", "PublicTest", "--ferplus",
                                 str(ferplus_path), "--limit", "600", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["n"] == 600 and report["split"] == "PublicTest"
    assert report["labels"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert set(report["per_class"]["happy"]) >= {"recall", "precision", "n"}
    assert sum(sum(r) for r in report["confusion"]) == 600
    # The shipped model must be a real model: far above chance (14%) and the majority class (25%).
    assert report["accuracy"] > 0.55, report["accuracy"]
    assert report["intensity_rmse"] < 0.2
    assert 0 < report["ferplus_majority_accuracy"] <= 1
    # The intensity head is trained on the FER+ fractions: its top emotion agrees with the FER+
    # majority more often than the class head's (84.5% vs 70.3% on all of PublicTest).
    assert report["ferplus_majority_accuracy_intensity"] > report["ferplus_majority_accuracy"]


def test_evaluate_table_tta_and_plot(fer2013_path, shipped_model, tmp_path):
    plot = tmp_path / "confusion.png"
    result = runner.invoke(app, ["evaluate", str(fer2013_path), "--limit", "200", "--tta", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "PublicTest" in result.output and "TTA" in result.output
    assert plot.stat().st_size > 10_000


def test_evaluate_missing_data_and_model_are_clear_errors(tmp_path, fer2013_path):
    result = runner.invoke(app, ["evaluate", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2 and "no such file" in result.output
    result = runner.invoke(app, ["evaluate", str(fer2013_path), "--model", str(tmp_path / "m.onnx"), "--limit", "5"])
    assert result.exit_code == 2 and "model file not found" in result.output


def test_shipped_card_accuracy_is_what_the_file_scores(fer2013_path, shipped_model):
    """The card's PublicTest figures were measured on this very file (int8 arithmetic may round
    differently on another CPU: a handful of the 3,587 faces at most)."""
    card = json.loads(shipped_model.with_suffix(".json").read_text())
    result = runner.invoke(app, ["evaluate", str(fer2013_path), "--split", "PublicTest", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["n"] == card["validation"]["n"] == 3587
    assert abs(report["accuracy"] - card["validation"]["accuracy"]) < 0.002, (report["accuracy"], card["validation"])
