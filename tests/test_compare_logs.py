"""benchmarks/compare_logs.py: runs of different lengths matched by schedule fraction."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from compare_logs import matched, planned_epochs, timing  # noqa: E402


def log(n: int) -> list[dict]:
    return [{"epoch": k} for k in range(1, n + 1)]


def test_long_run_matches_the_short_one_at_every_second_epoch():
    pairs = matched(log(200), log(100))
    assert len(pairs) == 100 and pairs[0] == ({"epoch": 2}, {"epoch": 1}) and pairs[-1] == ({"epoch": 200}, {"epoch": 100})


def test_equal_lengths_match_epoch_by_epoch_and_odd_ratios_only_at_whole_epochs():
    assert [(x["epoch"], y["epoch"]) for x, y in matched(log(3), log(3))] == [(1, 1), (2, 2), (3, 3)]
    assert [(x["epoch"], y["epoch"]) for x, y in matched(log(3), log(2))] == [(3, 2)]


def test_a_run_still_training_is_matched_by_its_planned_schedule():
    # 30 epochs into a planned 100, against a finished 100-epoch run: epoch by epoch
    assert [(x["epoch"], y["epoch"]) for x, y in matched(log(30), log(100), 100, 100)][-1] == (30, 30)
    # ... against a finished 200-epoch run: epoch k against 2k
    assert matched(log(30), log(200), 100, 200)[0] == ({"epoch": 1}, {"epoch": 2})
    # the other way round, only epochs the unfinished run has logged are matched
    assert matched(log(200), log(30), 200, 100)[-1] == ({"epoch": 60}, {"epoch": 30})


def test_planned_epochs_come_from_the_recipe_beside_the_log(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "recipe.json").write_text('{"train": {"epochs": 100}}')
    assert planned_epochs(run / "log.jsonl", log(31)) == 100
    assert planned_epochs(tmp_path / "copy.jsonl", log(31)) == 31


def test_timing_sums_the_training_passes_and_takes_medians():
    log = [{"epoch_seconds": 60, "images_per_second": 300}, {"epoch_seconds": 120, "images_per_second": 200},
           {"epoch_seconds": 90, "images_per_second": 250}]
    assert timing(log) == "4.5 min of training passes, 1.00-2.00 min per epoch (median 1.50), median 250 images/s"
    assert timing([{"epoch": 1}]) == "no epoch times logged"
