"""benchmarks/compare_logs.py: runs of different lengths matched by schedule fraction."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from compare_logs import matched  # noqa: E402


def log(n: int) -> list[dict]:
    return [{"epoch": k} for k in range(1, n + 1)]


def test_long_run_matches_the_short_one_at_every_second_epoch():
    pairs = matched(log(200), log(100))
    assert len(pairs) == 100 and pairs[0] == ({"epoch": 2}, {"epoch": 1}) and pairs[-1] == ({"epoch": 200}, {"epoch": 100})


def test_equal_lengths_match_epoch_by_epoch_and_odd_ratios_only_at_whole_epochs():
    assert [(x["epoch"], y["epoch"]) for x, y in matched(log(3), log(3))] == [(1, 1), (2, 2), (3, 3)]
    assert [(x["epoch"], y["epoch"]) for x, y in matched(log(3), log(2))] == [(3, 2)]
