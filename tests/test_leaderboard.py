"""benchmarks/leaderboard.py: which run folders get a row (finished runs only), which ONNX file each row measures."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from leaderboard import card_for, run_recipe, unfinished  # noqa: E402


def make_run(root: Path, epochs_target: int, epochs_done: int, best: bool = True) -> Path:
    run = root / "run"
    run.mkdir()
    (run / "recipe.json").write_text(json.dumps({"name": "r", "train": {"epochs": epochs_target}}))
    (run / "log.jsonl").write_text("".join(json.dumps({"epoch": i + 1}) + "\n" for i in range(epochs_done)))
    if best:
        (run / "best.pt").write_bytes(b"")
    return run


def test_finished_run_gets_a_row(tmp_path):
    assert unfinished(make_run(tmp_path, 10, 10)) is None


def test_run_still_training_is_skipped_with_the_resume_hint(tmp_path):
    reason = unfinished(make_run(tmp_path, 10, 3))
    assert reason.startswith("unfinished (3 of 10 epochs)") and "last.pt" in reason


def test_run_without_best_checkpoint_is_skipped(tmp_path):
    assert "unfinished (10 of 10" in unfinished(make_run(tmp_path, 10, 10, best=False))


def test_log_file_or_other_folder_is_not_a_run(tmp_path):
    log = tmp_path / "seeds_x.log"
    log.write_text("epoch 1/10 ...\n")
    assert "not a run folder" in unfinished(log)
    assert "not a run folder" in unfinished(tmp_path)


def exports_seen(monkeypatch) -> list:
    """Replace the real export with a recorder (returns a card naming the file and storage)."""
    import emolens.training.export as export

    seen = []

    def fake_export(best, onnx, weights=None):
        seen.append((Path(onnx).name, weights))
        return {"file": Path(onnx).name, "weight_storage": weights}

    monkeypatch.setattr(export, "export_model", fake_export)
    return seen


def write_card(run: Path, name: str, card: dict) -> None:
    path = run / name
    path.write_text(json.dumps(card))
    later = (run / "best.pt").stat().st_mtime + 10
    os.utime(path, (later, later))


def test_card_newer_than_best_and_stored_alike_is_reused(tmp_path, monkeypatch):
    seen = exports_seen(monkeypatch)
    run = make_run(tmp_path, 10, 10)
    write_card(run, "r.json", {"weight_storage": "float16", "reused": True})
    assert card_for(run, run_recipe(run))["reused"] and seen == []


def test_weights_override_exports_a_second_file_beside_the_recipes(tmp_path, monkeypatch):
    seen = exports_seen(monkeypatch)
    run = make_run(tmp_path, 10, 10)
    write_card(run, "r.json", {"reused": True})  # a card from before weight_storage existed: float16
    assert card_for(run, run_recipe(run), "int8")["file"] == "r-int8.onnx"
    assert seen == [("r-int8.onnx", "int8")]


def test_recipe_export_storage_is_the_default_and_a_stale_storage_is_re_exported(tmp_path, monkeypatch):
    seen = exports_seen(monkeypatch)
    run = make_run(tmp_path, 10, 10)
    recipe = {**run_recipe(run), "export": {"weights": "int8"}}
    write_card(run, "r.json", {"weight_storage": "float16"})  # made before the recipe said int8
    card_for(run, recipe)
    card_for(run, recipe, "float16")
    assert seen == [("r.onnx", "int8"), ("r-float16.onnx", "float16")]


def test_a_run_that_does_not_export_is_reported_and_the_others_measured(tmp_path, monkeypatch, capsys):
    import leaderboard

    import emolens.training.export as export

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    good, bad = make_run(tmp_path / "a", 1, 1), make_run(tmp_path / "b", 1, 1)

    def fake_export(best, onnx, weights=None):
        if Path(best).parent == bad:
            raise export.ExportError("ONNX and torch outputs differ by 2.00e-03 (> 1e-03 for float16 weights); "
                                     "the export is not faithful: export with --weights float32")
        return {"recipe": {}, "architecture": "tiny", "parameters": 1, "file_size_bytes": 1,
                "validation": {"accuracy": 0.5, "macro_f1": 0.4}, "training": {"epochs": 1}}

    monkeypatch.setattr(export, "export_model", fake_export)
    monkeypatch.setattr(sys, "argv", ["leaderboard.py", str(bad), str(good)])
    with pytest.raises(SystemExit, match=r"1 run\(s\) did not export: .*b/run"):
        leaderboard.main()
    out, err = capsys.readouterr()
    assert "| 50.00 |" in out and out.count("| tiny |") == 1  # the good run's row
    assert f"skipped {bad}: ONNX and torch outputs differ" in err and "--weights float32" in err
