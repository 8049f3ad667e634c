"""Two training runs side by side, at the same point of their schedules, from their log.jsonl files.

    python benchmarks/compare_logs.py docs/training-log-emonet_w40_s200_soft.jsonl \
        docs/training-log-emonet_w40_s100_soft.jsonl [--at 0.3 0.5 0.8 1.0]

Runs of different lengths are matched by schedule fraction: epoch k of a run of n epochs
against epoch k * m / n of a run of m epochs, wherever that is a whole epoch (a 200- and a
100-epoch run match at every second epoch of the long one). Prints the validation accuracy
and intensity RMSE of each at the ``--at`` fractions, at how many matched points the first
run is ahead (accuracy) and lower (RMSE), each run's best epoch and its final augmented
training accuracy. Only reads the logs ``emolens train`` wrote.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import markdown_table


def read_log(path: Path) -> list[dict]:
    if not path.is_file():
        raise SystemExit(f"{path}: no such log; pass a run's log.jsonl (or a copy in docs/)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def matched(a: list[dict], b: list[dict]) -> list[tuple[dict, dict]]:
    """(entry of a, entry of b) pairs at the same schedule fraction, at whole epochs of both."""
    pairs = []
    for k in range(1, len(a) + 1):
        j, rest = divmod(k * len(b), len(a))
        if rest == 0 and j >= 1:
            pairs.append((a[k - 1], b[j - 1]))
    return pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("logs", nargs=2, type=Path, help="two log.jsonl files (first: the run compared)")
    ap.add_argument("--at", nargs="+", type=float, default=[0.3, 0.5, 0.8, 1.0], help="schedule fractions to list")
    args = ap.parse_args()
    a, b = (read_log(p) for p in args.logs)
    pairs = matched(a, b)
    if not pairs:
        raise SystemExit("the two logs share no whole-epoch schedule point")
    names = [p.name for p in args.logs]
    rows = []
    for frac in args.at:
        x, y = min(pairs, key=lambda pair: abs(pair[0]["epoch"] / len(a) - frac))
        rows.append([f"{x['epoch'] / len(a):.0%}", x["epoch"], f"{100 * x['val_accuracy']:.2f}",
                     f"{x['val_intensity_rmse']:.4f}", y["epoch"], f"{100 * y['val_accuracy']:.2f}",
                     f"{y['val_intensity_rmse']:.4f}"])
    print(markdown_table(["schedule", "epoch", "accuracy %", "RMSE", "epoch ", "accuracy % ", "RMSE "], rows))
    ahead = sum(x["val_accuracy"] > y["val_accuracy"] for x, y in pairs)
    lower = sum(x["val_intensity_rmse"] < y["val_intensity_rmse"] for x, y in pairs)
    print(f"\ncolumns 2-4: {names[0]}; 5-7: {names[1]}")
    print(f"{names[0]} ahead at {ahead} of {len(pairs)} matched points; RMSE lower at {lower}")
    for name, log in zip(names, (a, b)):
        best = max(log, key=lambda e: e["val_accuracy"])
        low = min(log, key=lambda e: e["val_intensity_rmse"])
        print(f"{name}: best epoch {best['epoch']} of {len(log)} ({100 * best['val_accuracy']:.2f}%), "
              f"lowest RMSE {low['val_intensity_rmse']:.4f} at epoch {low['epoch']}, "
              f"final training accuracy {100 * log[-1]['train_accuracy']:.1f}%")


if __name__ == "__main__":
    main()
