"""benchmarks/leaderboard.py: which run folders get a row (finished runs only)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from leaderboard import unfinished  # noqa: E402


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
