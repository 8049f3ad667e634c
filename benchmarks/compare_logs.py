"""Two training runs side by side, at the same point of their schedules, from their log.jsonl files.

    python benchmarks/compare_logs.py docs/training-log-emonet_w40_s200_soft.jsonl \
        docs/training-log-emonet_w40_s100_soft.jsonl [--at 0.3 0.5 0.8 1.0]

Runs of different lengths are matched by schedule fraction: epoch k of a run of n epochs
against epoch k * m / n of a run of m epochs, wherever that is a whole epoch (a 200- and a
100-epoch run match at every second epoch of the long one). Prints the validation accuracy
and intensity RMSE of each at the ``--at`` fractions, at how many matched points the first
run is ahead (accuracy) and lower (RMSE), each run's best epoch, its final augmented
training accuracy and its time (training passes: total, range and median per epoch, median
images/s, from ``epoch_seconds`` and ``images_per_second``). Only reads the logs ``emolens
train`` wrote. A run still training is compared by its planned schedule, read from the
``recipe.json`` beside its log (a log copied elsewhere is taken as a finished run): ``--at``
fractions it has not reached are skipped.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import median

from _common import markdown_table


def read_log(path: Path) -> list[dict]:
    if not path.is_file():
        raise SystemExit(f"{path}: no such log; pass a run's log.jsonl (or a copy in docs/)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def planned_epochs(path: Path, log: list[dict]) -> int:
    """The run's schedule length: its recipe.json's epochs when the log sits in a run folder."""
    recipe = path.parent / "recipe.json"
    if recipe.is_file():
        epochs = json.loads(recipe.read_text()).get("train", {}).get("epochs")
        if isinstance(epochs, int) and epochs >= len(log):
            return epochs
    return len(log)


def matched(a: list[dict], b: list[dict], n_a: int | None = None, n_b: int | None = None) -> list[tuple[dict, dict]]:
    """(entry of a, entry of b) pairs at the same schedule fraction, at whole epochs of both.

    ``n_a``/``n_b`` are the planned schedule lengths (default: the logs' lengths, finished runs).
    """
    n_a, n_b = n_a or len(a), n_b or len(b)
    pairs = []
    for k in range(1, len(a) + 1):
        j, rest = divmod(k * n_b, n_a)
        if rest == 0 and 1 <= j <= len(b):
            pairs.append((a[k - 1], b[j - 1]))
    return pairs


def timing(log: list[dict]) -> str:
    """Training-pass time of a log: total minutes, per-epoch range and median, median images/s."""
    minutes = sorted(e["epoch_seconds"] / 60 for e in log if "epoch_seconds" in e)
    if not minutes:
        return "no epoch times logged"
    rates = [e["images_per_second"] for e in log if "images_per_second" in e]
    text = (f"{sum(minutes):.1f} min of training passes, {minutes[0]:.2f}-{minutes[-1]:.2f} min per epoch "
            f"(median {median(minutes):.2f})")
    return text + (f", median {median(rates):.0f} images/s" if rates else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("logs", nargs=2, type=Path, help="two log.jsonl files (first: the run compared)")
    ap.add_argument("--at", nargs="+", type=float, default=[0.3, 0.5, 0.8, 1.0], help="schedule fractions to list")
    args = ap.parse_args()
    a, b = (read_log(p) for p in args.logs)
    n_a, n_b = (planned_epochs(p, log) for p, log in zip(args.logs, (a, b)))
    pairs = matched(a, b, n_a, n_b)
    if not pairs:
        raise SystemExit("the two logs share no whole-epoch schedule point")
    names = [p.name if p.name != "log.jsonl" else f"{p.parent.name}/log.jsonl" for p in args.logs]
    rows = []
    reached = pairs[-1][0]["epoch"] / n_a
    for frac in sorted({min(f, reached) for f in args.at}):
        x, y = min(pairs, key=lambda pair: abs(pair[0]["epoch"] / n_a - frac))
        rows.append([f"{x['epoch'] / n_a:.0%}", x["epoch"], f"{100 * x['val_accuracy']:.2f}",
                     f"{x['val_intensity_rmse']:.4f}", y["epoch"], f"{100 * y['val_accuracy']:.2f}",
                     f"{y['val_intensity_rmse']:.4f}"])
    print(markdown_table(["schedule", "epoch", "accuracy %", "RMSE", "epoch ", "accuracy % ", "RMSE "], rows))
    ahead = sum(x["val_accuracy"] > y["val_accuracy"] for x, y in pairs)
    lower = sum(x["val_intensity_rmse"] < y["val_intensity_rmse"] for x, y in pairs)
    print(f"\ncolumns 2-4: {names[0]}; 5-7: {names[1]}")
    print(f"{names[0]} ahead at {ahead} of {len(pairs)} matched points; RMSE lower at {lower}")
    for name, log, n in zip(names, (a, b), (n_a, n_b)):
        best = max(log, key=lambda e: e["val_accuracy"])
        low = min(log, key=lambda e: e["val_intensity_rmse"])
        so_far = "" if len(log) == n else f" so far ({len(log)} of {n} epochs)"
        print(f"{name}{so_far}: best epoch {best['epoch']} of {len(log)} ({100 * best['val_accuracy']:.2f}%), "
              f"lowest RMSE {low['val_intensity_rmse']:.4f} at epoch {low['epoch']}, "
              f"{'final' if not so_far else 'latest'} training accuracy {100 * log[-1]['train_accuracy']:.1f}%; "
              f"{timing(log)}")


if __name__ == "__main__":
    main()
