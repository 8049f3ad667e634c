"""The training leaderboard: one row per run folder, measured through the exported ONNX model.

    python benchmarks/leaderboard.py runs/emonet_s20 runs/emonet_s45 [--weights int8] [--threads 2]

For each run folder (made by ``emolens train``) it exports ``best.pt`` to
``RUN/<name>.onnx`` with its model card (``emolens export``; reused when newer than
``best.pt`` and stored the same way) and prints a markdown table: recipe, epochs, PublicTest accuracy single and
with mirror TTA, macro-F1, FER+ intensity RMSE, FER+ majority accuracy, parameters, ONNX
size and weight storage, batch-1 latency, training precision (bf16 autocast or fp32, from the run's log) and
training wall time — the numbers of the card, which ``export`` measures on the recipe's
validation split (PublicTest) through the same runtime users run.
A run still training (fewer epochs in ``log.jsonl`` than its recipe's target) gets no row,
so ``runs/seeds/*`` can be passed while one seed is half done; it and anything that is not
a run folder are named on stderr as skipped.
Weights are stored as the run's recipe says (``[export] weights``, float16 when it says
nothing); ``--weights`` overrides that for every run, writing ``RUN/<name>-<storage>.onnx``
when it differs from the recipe's storage, so both files can sit side by side.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _common import markdown_table, pin_threads


def run_recipe(run: Path) -> dict | None:
    """The recipe ``emolens train`` saved in ``run``, or None when ``run`` is not a run folder."""
    recipe_file = run / "recipe.json"
    return json.loads(recipe_file.read_text()) if run.is_dir() and recipe_file.is_file() else None


def unfinished(run: Path, recipe: dict | None = None) -> str | None:
    """Why ``run`` has no row yet (not a run folder, or still training), or None."""
    recipe = recipe if recipe is not None else run_recipe(run)
    best = run / "best.pt"
    if recipe is None:
        return "not a run folder made by 'emolens train'"
    target = recipe["train"]["epochs"]
    log = run / "log.jsonl"
    done = len(log.read_text().splitlines()) if log.is_file() else 0
    if done < target or not best.is_file():
        return (f"unfinished ({done} of {target} epochs); rerun its 'emolens train' command "
                "to resume from last.pt")
    return None


def card_for(run: Path, recipe: dict, weights: str | None = None) -> dict:
    """The model card of ``run``'s best.pt exported with ``weights`` storage (None: the recipe's)."""
    best = run / "best.pt"
    own = recipe.get("export", {}).get("weights", "float16")
    storage = weights or own
    name = recipe.get("name", run.name)
    onnx = run / (f"{name}.onnx" if storage == own else f"{name}-{storage}.onnx")
    card_path = onnx.with_suffix(".json")
    if card_path.is_file() and card_path.stat().st_mtime > best.stat().st_mtime:
        card = json.loads(card_path.read_text())
        if card.get("weight_storage", "float16") == storage:  # cards before session 12: float16
            return card
    from emolens.training.export import export_model

    print(f"exporting {best} -> {onnx} ({storage} weights)", file=sys.stderr)
    return export_model(best, onnx, weights=storage)


def pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="run folders (runs/NAME)")
    ap.add_argument("--weights", default=None,
                    help="float16, int8 or float32: weight storage for every run's ONNX file (default: each recipe's [export] weights)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    pin_threads(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    from emolens.training.checkpoint import CheckpointError
    from emolens.training.export import ExportError, parity_tolerance

    if args.weights is not None:
        try:
            parity_tolerance(args.weights)  # an unknown storage stops before any run is exported
        except ExportError as e:
            raise SystemExit(f"--weights: {e}") from None
    rows, failed = [], []
    for run in args.runs:
        recipe = run_recipe(run)
        reason = unfinished(run, recipe)
        if reason:
            print(f"skipped {run}: {reason}", file=sys.stderr)
            continue
        try:
            card = card_for(run, recipe, args.weights)
        except (ExportError, CheckpointError) as e:  # one run that does not export faithfully: report it, measure the others
            failed.append(run)
            print(f"skipped {run}: {e}", file=sys.stderr)
            continue
        v, t = card.get("validation", {}), card.get("training", {})
        rows.append([
            f"`{card['recipe'].get('source') or run.name}`", card["architecture"], t.get("epochs"),
            pct(v.get("accuracy")), pct(v.get("accuracy_tta")), f"{v.get('macro_f1', float('nan')):.3f}",
            f"{v['intensity_rmse']:.4f}" if v.get("intensity_rmse") is not None else "n/a",
            pct(v.get("ferplus_majority_accuracy")), f"{card['parameters'] / 1e6:.2f} M",
            f"{card['file_size_bytes'] / 1e6:.2f} MB", card.get("weight_storage", "float16"),
            card.get("latency_ms_batch1"),
            t.get("precision") or "not logged", t.get("wall_time_minutes"),
        ])
    if not rows and not failed:
        raise SystemExit("no finished run folders among: " + " ".join(map(str, args.runs)))
    if rows:
        print(markdown_table(["recipe", "net", "epochs", "PublicTest % single", "% TTA", "macro-F1", "intensity RMSE",
                              "FER+ majority %", "params", "ONNX", "weights", "batch-1 ms", "precision", "train min"],
                             rows))
    if failed:
        raise SystemExit(f"{len(failed)} run(s) did not export: {' '.join(map(str, failed))} (reasons above)")


if __name__ == "__main__":
    main()
