"""benchmarks/papers_queue.py: the paper runs in the order this machine should train them, with
their status from the run folders, and --run's refusals (no training is started here)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import papers_queue  # noqa: E402
import papers_table  # noqa: E402


@pytest.fixture(autouse=True)
def no_committed_logs(tmp_path, monkeypatch):
    """main() reads the repository's docs/ (runs recorded there are done): not in these tests, which
    must not change as the real runs get recorded."""
    monkeypatch.setattr(papers_queue, "DOCS", tmp_path / "no-docs")


def fake_export(folder: Path, name: str) -> None:
    """What benchmarks/leaderboard.py leaves: the model and its card, newer than best.pt."""
    (folder / f"{name}.onnx").write_bytes(b"model")
    card = folder / f"{name}.json"
    card.write_text(json.dumps({"validation": {"accuracy": 0.5}}))
    later = time.time() + 5
    os.utime(card, (later, later))


def fake_run(folder: Path, name: str, epochs: int, done: int) -> None:
    folder.mkdir(parents=True)
    (folder / "recipe.json").write_text(json.dumps({"name": name, "train": {"epochs": epochs}}))
    (folder / "log.jsonl").write_text("".join(json.dumps({"epoch": e + 1, "val_accuracy": 0.5}) + "\n"
                                              for e in range(done)))
    if done:
        (folder / "best.pt").write_bytes(b"weights")     # emolens train keeps the best epoch so far


def test_long_runs_first_where_bf16_only_short_ones_elsewhere(tmp_path):
    fake_run(tmp_path / "santhapalli_baseline_cnn", "santhapalli_baseline_cnn", 50, 50)
    fake_run(tmp_path / "liu" / "liu_reference", "liu_reference", 15, 3)
    every = {p.stem for p in (ROOT / "recipes" / "papers").rglob("*.toml")}
    bf16 = papers_queue.queue(tmp_path, bf16=True)
    assert {r.name for r in bf16} == every and len(bf16) == len(every)
    longs = [r.long for r in bf16]
    assert longs == sorted(longs, reverse=True), "the 50-epoch runs come first"
    status = {r.name: r.status() for r in bf16}
    assert status["santhapalli_baseline_cnn"] == "done, not exported" and status["liu_reference"] == "3 of 15 epochs"
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
        fake_export(r.out, r.name)
    monkeypatch.setattr(papers_queue, "other_training", lambda: [])
    monkeypatch.setattr(papers_queue, "train", lambda run: pytest.fail(f"trained {run.name}"))
    monkeypatch.setattr(papers_queue, "export", lambda run: pytest.fail(f"exported {run.name} again"))
    papers_queue.main()
    assert "every queued run is done" in capsys.readouterr().out


def test_a_run_that_ends_early_stops_the_queue(tmp_path, monkeypatch):
    monkeypatch.setattr(papers_queue, "other_training", lambda: [])
    monkeypatch.setattr(papers_queue, "has_bf16", lambda: False)
    monkeypatch.setattr(papers_queue, "train", lambda run: 0)          # returns, but no epoch was logged
    monkeypatch.setattr(sys, "argv", ["papers_queue.py", "--runs", str(tmp_path), "--run"])
    with pytest.raises(SystemExit, match="liu_reference: emolens train ended before its last epoch"):
        papers_queue.main()


def test_finished_runs_are_exported_before_the_next_training(tmp_path, monkeypatch, capsys):
    """A session that ended between training and export loses nothing: --run exports first."""
    monkeypatch.setattr(papers_queue, "other_training", lambda: [])
    monkeypatch.setattr(papers_queue, "has_bf16", lambda: False)
    runs = papers_queue.queue(tmp_path, bf16=False)
    first, second = runs[0], runs[1]
    fake_run(first.out, first.name, first.epochs, first.epochs)       # trained, never exported
    events = []

    def export(run):
        events.append(("export", run.name))
        if run.name == first.name:
            fake_export(run.out, run.name)
            return 0
        return 1                                                      # a failed export: reported, the queue goes on

    def train(run):
        events.append(("train", run.name))
        fake_run(run.out, run.name, run.epochs, run.epochs)
        return 0

    monkeypatch.setattr(papers_queue, "export", export)
    monkeypatch.setattr(papers_queue, "train", train)
    monkeypatch.setattr(sys, "argv", ["papers_queue.py", "--runs", str(tmp_path), "--run"])
    papers_queue.main()
    assert events[:4] == [("export", first.name), ("train", second.name), ("export", second.name),
                          ("train", runs[2].name)]
    assert len(events) == 2 * len(runs) - 1 and not [e for e in events if e == ("train", first.name)]
    out = capsys.readouterr().out
    assert f"{second.name}: the export failed" in out and "every queued run is done" in out
    assert "done, exported" in [r.status() for r in papers_queue.queue(tmp_path, bf16=False)][0]


def test_runs_whose_log_is_committed_in_docs_are_not_trained_again(tmp_path, monkeypatch):
    """A new machine has no runs/: the finished runs recorded in docs/ stay done (and are not exported:
    there is no checkpoint), --short keeps the 50-epoch runs for a session that can finish one."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "training-log-santhapalli_resemotenet.jsonl").write_text(
        "".join(json.dumps({"epoch": e + 1, "val_accuracy": 0.5}) + "\n" for e in range(50)))
    (docs / "training-log-xu_vgg_compact.jsonl").write_text(json.dumps({"epoch": 1, "val_accuracy": 0.5}) + "\n")
    status = {r.name: r.status() for r in papers_queue.queue(tmp_path / "runs", bf16=True, docs=docs)}
    assert status["santhapalli_resemotenet"] == "done, log in docs/"
    assert status["xu_vgg_compact"] == "not started", "a log cut short in docs/ is not a finished run"
    real = {r.name: r for r in papers_queue.queue(tmp_path / "runs", bf16=True, docs=papers_table.DOCS)}
    assert real["santhapalli_baseline_cnn"].finished and not real["santhapalli_baseline_cnn"].trained
    short = papers_queue.queue(tmp_path / "runs", bf16=True, short=True, docs=docs)
    assert short and not any(r.long for r in short)
    events = []
    monkeypatch.setattr(papers_queue, "other_training", lambda: [])
    monkeypatch.setattr(papers_queue, "has_bf16", lambda: True)
    monkeypatch.setattr(papers_queue, "DOCS", docs)
    monkeypatch.setattr(papers_queue, "export", lambda run: events.append(("export", run.name)) or 1)

    def train(run):
        events.append(("train", run.name))
        raise KeyboardInterrupt

    monkeypatch.setattr(papers_queue, "train", train)
    monkeypatch.setattr(sys, "argv", ["papers_queue.py", "--runs", str(tmp_path / "runs"), "--run"])
    with pytest.raises(SystemExit, match="stopped during santhapalli_baseline_cnn"):
        papers_queue.main()
    assert events == [("train", "santhapalli_baseline_cnn")], "the recorded resemotenet run is skipped"


def test_record_copies_a_finished_run_into_docs_so_it_outlives_the_machine(tmp_path, monkeypatch, capsys):
    runs, docs = tmp_path / "runs", tmp_path / "docs"
    run = next(r for r in papers_queue.queue(runs, bf16=False) if r.name == "liu_act_elu")
    fake_run(run.out, run.name, run.epochs, run.epochs)
    (run.out / "curves.png").write_bytes(b"\x89PNG curves")
    (run.out / "best.pt").write_bytes(b"weights")
    card = {"weight_storage": "float16", "validation": {"accuracy": 0.61, "accuracy_tta": 0.62,
                                                        "ferplus_majority_accuracy": 0.7}}
    (run.out / f"{run.name}.json").write_text(json.dumps(card))
    later = time.time() + 5
    os.utime(run.out / f"{run.name}.json", (later, later))      # exported after best.pt
    half = next(r for r in papers_queue.queue(runs, bf16=False) if r.name == "liu_act_tanh")
    fake_run(half.out, half.name, half.epochs, 3)                # unfinished: not recorded
    monkeypatch.setattr(papers_queue, "has_bf16", lambda: False)
    monkeypatch.setattr(sys, "argv", ["papers_queue.py", "--runs", str(runs), "--record", str(docs)])
    papers_queue.main()
    assert sorted(p.name for p in docs.iterdir()) == ["model-card-liu_act_elu.json", "training-curves-liu_act_elu.png",
                                                      "training-log-liu_act_elu.jsonl"]
    assert "recorded" in capsys.readouterr().out
    # a new machine: no runs/, the run is done and its row keeps the card's figures
    status = {r.name: r.status() for r in papers_queue.queue(tmp_path / "new", bf16=False, docs=docs)}
    assert status["liu_act_elu"] == "done, log in docs/" and status["liu_act_tanh"] == "not started"
    recorded = papers_queue.recorded_run("liu_act_elu", docs)
    assert recorded.card["validation"]["accuracy"] == 0.61
    assert papers_table.result(recorded) == ("61.00% (62.00% TTA; exported float16, epoch 1 of 15; "
                                             "docs/training-log-liu_act_elu.jsonl)")
