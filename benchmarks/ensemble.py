"""How good would a teacher ensemble be? PublicTest numbers of each model and of their average.

    git show d748c80:src/emolens/weights/emolens-default.onnx > runs/teachers/emonet_s45.onnx
    python benchmarks/ensemble.py runs/teachers/*.onnx [--tta] [--agreement]

Each model runs through the runtime users run; the ensemble averages the models'
probabilities (and intensities). This is the measure for choosing distillation teachers
(`teacher = [...]` in a recipe, see docs/training.md): PublicTest selects, nothing is fitted.
``--agreement`` adds how far each model's outputs are from the first model's (e.g. the same
checkpoint exported with float16 and with int8 weights): faces whose top emotion differs, and
the mean / 99th-percentile / largest probability and intensity differences per face.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from _common import add_fer2013_arguments, markdown_table, pin_threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", type=Path, help="exported .onnx models")
    add_fer2013_arguments(ap)
    ap.add_argument("--tta", action="store_true", help="mirror TTA for every model")
    ap.add_argument("--agreement", action="store_true", help="compare every model's outputs with the first's")
    args = ap.parse_args()
    pin_threads(args.threads)
    from emolens.evaluate import predict_dataset, report_for
    from emolens.runtime import EmotionModel, ModelOutput
    from emolens.training.data import load_dataset

    for m in args.models:
        if not m.is_file():
            raise SystemExit(f"{m}: no such model; export one with 'emolens export' or recover it with git show")
    ds = load_dataset(args.data, args.split, args.ferplus if args.ferplus.is_file() else None)
    outs, rows = [], []
    for m in args.models:
        out = predict_dataset(EmotionModel(m), ds.images, tta=args.tta)
        outs.append(out)
        rows.append(row(m.name, report_for(ds, out)))
    if len(outs) > 1:
        probs = np.mean([o.probabilities for o in outs], axis=0)
        mean = ModelOutput(probs, np.mean([o.intensity for o in outs], axis=0), np.log(np.clip(probs, 1e-12, 1)))
        rows.append(row(f"average of {len(outs)}", report_for(ds, mean)))
    print(markdown_table(["model", f"{args.split} %", "macro-F1", "intensity RMSE", "FER+ majority %",
                          "FER+ majority % (top intensity)"], rows))
    print(f"\n{args.split}: n = {len(ds)}, tta = {args.tta}")
    if args.agreement and len(outs) > 1:
        print()
        print(markdown_table(
            ["model vs " + args.models[0].name, "top emotion differs", "mean prob. diff", "p99 of per-face max",
             "max prob. diff", "max intensity diff"],
            [[m.name, *agreement(outs[0], o)] for m, o in zip(args.models[1:], outs[1:])]))


def agreement(a, b) -> list:
    dp = np.abs(a.probabilities - b.probabilities)
    flips = int((a.probabilities.argmax(1) != b.probabilities.argmax(1)).sum())
    return [f"{flips} of {len(dp)} ({100 * flips / len(dp):.1f}%)", f"{dp.mean():.4f}",
            f"{np.percentile(dp.max(1), 99):.4f}", f"{dp.max():.4f}", f"{np.abs(a.intensity - b.intensity).max():.4f}"]


def row(name: str, rep: dict) -> list:
    rmse = rep.get("intensity_rmse")
    pct = [rep.get(k) for k in ("ferplus_majority_accuracy", "ferplus_majority_accuracy_intensity")]
    return [name, f"{100 * rep['accuracy']:.2f}", f"{rep['macro_f1']:.3f}", "n/a" if rmse is None else f"{rmse:.4f}",
            *("n/a" if p is None else f"{100 * p:.2f}" for p in pct)]


if __name__ == "__main__":
    main()
