"""Class imbalance after training: how accuracy and macro-F1 trade as rare classes are favoured.

    python benchmarks/class_prior.py [MODEL.onnx] [--tta] [--taus 0,0.25,0.5,0.75,1]

FER2013's Training rows are 25% happy and 1.5% disgust. A model trained on them learns that
prior; dividing its probabilities by prior**tau before the argmax (post-hoc logit adjustment,
Menon et al. 2021, arXiv 2007.07314) moves answers toward rare classes: tau = 0 is the model as
shipped, tau = 1 the balanced-error decision rule, tau = 0.5 roughly the decision boundary that
training with ``class_weighting = "sqrt_inverse"`` aims at (without its effect on the learned
features). The prior comes from the Training labels; PublicTest is only scored — nothing is fitted
to it — and each row reports accuracy, macro-F1 and every class's recall.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from _common import add_fer2013_arguments, markdown_table, pin_threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", type=Path, default=None, help="exported .onnx (default: the shipped model)")
    add_fer2013_arguments(ap, ferplus=False)
    ap.add_argument("--taus", default="0,0.25,0.5,0.75,1", help="comma-separated prior exponents")
    ap.add_argument("--tta", action="store_true", help="mirror TTA")
    args = ap.parse_args()
    try:
        taus = [float(t) for t in args.taus.split(",")]
    except ValueError:
        raise SystemExit(f"--taus {args.taus!r}: expected comma-separated numbers such as 0,0.5,1") from None
    if args.model is not None and not args.model.is_file():
        raise SystemExit(f"{args.model}: no such model; export one with 'emolens export'")
    pin_threads(args.threads)
    from emolens.emotions import EMOTIONS
    from emolens.evaluate import predict_dataset
    from emolens.metrics import classification_report
    from emolens.runtime import EmotionModel
    from emolens.training.data import DatasetError, load_dataset

    try:
        prior = training_prior(load_dataset(args.data, "Training").labels, len(EMOTIONS))
        ds = load_dataset(args.data, args.split)
    except DatasetError as exc:
        raise SystemExit(f"{exc} (--data)") from None
    model = EmotionModel(args.model)
    logits = predict_dataset(model, ds.images, tta=args.tta).logits
    rows = []
    for tau in taus:
        rep = classification_report(ds.labels, adjusted(logits, prior, tau).argmax(1))
        pc = rep["per_class"]
        rows.append([f"{tau:g}", f"{100 * rep['accuracy']:.2f}", f"{rep['macro_f1']:.3f}",
                     *(f"{100 * pc[e]['recall']:.1f}" for e in EMOTIONS)])
    print(markdown_table(["tau", f"{args.split} %", "macro-F1", *(f"{e} recall %" for e in EMOTIONS)], rows))
    print(f"\nmodel {model.path.name}, {args.split} n = {len(ds)}, tta = {args.tta}; Training prior: "
          + ", ".join(f"{e} {100 * p:.1f}%" for e, p in zip(EMOTIONS, prior)))


def training_prior(labels: np.ndarray, n_classes: int) -> np.ndarray:
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    return counts / counts.sum()


def adjusted(logits: np.ndarray, prior: np.ndarray, tau: float) -> np.ndarray:
    """Logits with tau * log(prior) taken off: argmax of p(class | face) / prior**tau."""
    return logits - tau * np.log(prior)[None, :]


if __name__ == "__main__":
    main()
