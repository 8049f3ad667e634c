"""benchmarks/papers_queue.py: the paper runs in the order this machine should train them, with
their status from the run folders, and --run's refusals (no training is started here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import papers_queue  # noqa: E402


def fake_run(folder: Path, name: str, epochs: int, done: int) -> None:
    folder.mkdir(parents=True)
    (folder / "recipe.json").write_text(json.dumps({"name": name, "train": {"epochs": epochs}}))
    (folder / "log.jsonl").write_text("".join(json.dumps({"epoch": e + 1, "val_accuracy": 0.5}) + "\n"
                                              for e in range(done)))


def test_long_runs_first_where_bf16_only_short_ones_elsewhere(tmp_path):
    fake_run(tmp_path / "santhapalli_baseline_cnn", "santhapalli_baseline_cnn", 50, 50)
    fake_run(tmp_path / "liu" / "liu_reference", "liu_reference", 15, 3)
    every = {p.stem for p in (ROOT / "recipes" / "papers").rglob("*.toml")}
    bf16 = papers_queue.queue(tmp_path, bf16=True)
    assert {r.name for r in bf16} == every and len(bf16) == len(every)
    longs = [r.long for r in bf16]
    assert longs == sorted(longs, reverse=True), "the 50-epoch runs come first"
    status = {r.name: r.status() for r in bf16}
    assert status["santhapalli_baseline_cnn"] == "done" and status["liu_reference"] == "3 of 15 epochs"
    assert status["liu_cnn_ours"] == "not started"
    cell = next(r for r in bf16 if r.name == "liu_reference")
    assert cell.command() == ["emolens", "train", "--recipe", "recipes/papers/liu/liu_reference.toml", "--out",
                              str(tmp_path / "liu" / "liu_reference")]
    plain = papers_queue.queue(tmp_path, bf16=False)
    assert plain and not any(r.long for r in plain), "without bf16 only the 15-epoch runs"
    assert [r.name for r in plain][0] == "liu_reference"
    assert len(papers_queue.queue(tmp_path, bf16=False, everything=True)) == len(every)


def test_run_refuses_beside_another_training_and_stops_when_all_done(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(papers_queue, "other_training", lambda: [4242])
    monkeypatch.setattr(sys, "argv", ["papers_queue.py", "--runs", str(tmp_path), "--run"])
    with pytest.raises(SystemExit, match="running already .pid 4242.: one heavy job at a time"):
        papers_queue.main()
    for r in papers_queue.queue(tmp_path, bf16=True, everything=True):
        fake_run(r.out, r.name, r.epochs, r.epochs)
    monkeypatch.setattr(papers_queue, "other_training", lambda: [])
    monkeypatch.setattr(papers_queue, "train", lambda run: pytest.fail(f"trained {run.name}"))
    papers_queue.main()
    assert "every queued run is done" in capsys.readouterr().out


def test_a_run_that_ends_early_stops_the_queue(tmp_path, monkeypatch):
    monkeypatch.setattr(papers_queue, "other_training", lambda: [])
    monkeypatch.setattr(papers_queue, "has_bf16", lambda: False)
    monkeypatch.setattr(papers_queue, "train", lambda run: 0)          # returns, but no epoch was logged
    monkeypatch.setattr(sys, "argv", ["papers_queue.py", "--runs", str(tmp_path), "--run"])
    with pytest.raises(SystemExit, match="liu_reference: emolens train ended before its last epoch"):
        papers_queue.main()
