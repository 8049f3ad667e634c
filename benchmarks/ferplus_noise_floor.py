"""How low can intensity RMSE against FER+ vote fractions go? Reference predictors beside a model.

    python benchmarks/ferplus_noise_floor.py [--model src/emolens/weights/emolens-default.onnx]
        [--votes ../shared/datasets/fer2013/fer2013new.csv]
        [--data ../shared/datasets/fer2013/fer2013.csv.gz] [--split PublicTest]

Issue 6 asks for intensity RMSE <= 0.10 against each face's FER+ vote fractions over the 7
emotions (the measure ``emolens evaluate --ferplus`` reports). Those fractions come from
about ten annotators per face, so even a model that knew each face's true annotator
distribution p would miss the observed fractions f by sampling noise alone:
E[(f - p)^2] = p(1 - p) / n per emotion, estimated without bias by f(1 - f) / (n - 1).
This prints that floor beside predictors that need no images:

- the Training rows' mean vote fractions for every face (a constant);
- the FER2013 label alone: for each label, the Training rows' mean vote fractions of faces
  with that label (the best any predictor can do that only knows the FER2013 label);
- the FER2013 label as a one-hot vector;

and the model's own intensities (single pass), as they are and after an *oracle* per-emotion
affine recalibration (a * intensity + b, least squares on the scored faces themselves): the
most any recalibration of the intensity head could buy, an upper bound, never a result.

Fitted on Training rows only, scored on ``--split`` rows that have emotion votes (rows
with a single emotion vote are left out of the floor, which needs n >= 2).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from _common import FER, markdown_table
from emolens.emotions import EMOTIONS
from emolens.evaluate import predict_dataset
from emolens.metrics import intensity_rmse
from emolens.runtime import EmotionModel
from emolens.training.data import FERPLUS_TO_INDEX, DatasetError, load_dataset, read_ferplus_votes


def sampling_floor(fractions: np.ndarray, counts: np.ndarray) -> float:
    """RMSE a predictor of the true annotator distribution expects, from fractions over ``counts`` votes."""
    keep = counts >= 2
    f, n = fractions[keep], counts[keep][:, None]
    return float(np.sqrt((f * (1 - f) / (n - 1)).mean()))


def label_means(labels: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """(7, 7): mean vote fractions of the faces carrying each label (the overall mean where none)."""
    out = np.tile(fractions.mean(axis=0), (len(EMOTIONS), 1))
    for k in range(len(EMOTIONS)):
        rows = labels == k
        if rows.any():
            out[k] = fractions[rows].mean(axis=0)
    return out


def oracle_affine(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Each emotion's column mapped by the least-squares a * x + b onto ``target`` (fitted on the same rows)."""
    out = np.empty_like(target)
    for k in range(target.shape[1]):
        a, b = np.polyfit(predicted[:, k], target[:, k], 1)
        out[:, k] = a * predicted[:, k] + b
    return out


def voted(ds) -> tuple[np.ndarray, np.ndarray]:
    """labels and vote fractions of the rows that have emotion votes"""
    if ds.intensity is None:
        raise SystemExit(f"{ds.source}: no FER+ votes loaded; pass --votes fer2013new.csv")
    ok = ds.has_intensity
    return ds.labels[ok], ds.intensity[ok]


def emotion_vote_counts(votes_path: Path, split: str, fractions: np.ndarray) -> np.ndarray:
    """Votes cast for the 7 emotions on each ``split`` row of fer2013new.csv (its own Usage column)."""
    votes = read_ferplus_votes(votes_path)
    with open(votes_path, encoding="utf-8", newline="") as fh:
        usage = np.array([row[0] for row in csv.reader(fh)][1:])
    votes = votes[usage == split]
    counts = votes[:, [c for c, i in enumerate(FERPLUS_TO_INDEX) if i is not None]].sum(axis=1)
    if len(counts) != len(fractions) or not np.array_equal(counts == 0, np.isnan(fractions).any(axis=1)):
        raise SystemExit(f"{votes_path}: its {split} rows do not line up with the fer2013 csv's")
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=FER / "fer2013.csv.gz")
    ap.add_argument("--votes", type=Path, default=FER / "fer2013new.csv")
    ap.add_argument("--split", default="PublicTest")
    ap.add_argument("--model", type=Path, default=None, help="exported .onnx (default: the shipped model)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    try:
        train = load_dataset(args.data, "Training", args.votes)
        test = load_dataset(args.data, args.split, args.votes)
    except DatasetError as exc:
        raise SystemExit(str(exc)) from None
    train_labels, train_f = voted(train)
    labels, f = voted(test)
    counts = emotion_vote_counts(args.votes, test.split, test.intensity)[test.has_intensity]
    table = label_means(train_labels, train_f)
    rows = [
        ["true annotator distribution (sampling-noise floor)", f"{sampling_floor(f, counts):.4f}"],
        ["FER2013 label -> Training mean fractions for that label", f"{intensity_rmse(table[labels], f):.4f}"],
        ["Training mean fractions, same for every face", f"{intensity_rmse(np.tile(train_f.mean(0), (len(f), 1)), f):.4f}"],
        ["FER2013 label as one-hot", f"{intensity_rmse(np.eye(len(EMOTIONS))[labels], f):.4f}"],
    ]
    model = EmotionModel(args.model, threads=args.threads)
    predicted = predict_dataset(model, test.images).intensity[test.has_intensity]
    rows += [
        [f"{Path(model.path).name}, single pass", f"{intensity_rmse(predicted, f):.4f}"],
        [f"{Path(model.path).name}, oracle per-emotion affine refit", f"{intensity_rmse(oracle_affine(predicted, f), f):.4f}"],
    ]
    print(markdown_table(["predictor", "intensity RMSE"], rows))
    print(f"\n{args.split}: {len(f)} faces with emotion votes, {counts.mean():.2f} votes per face on average "
          f"({int((counts < 2).sum())} with one vote left out of the floor); fitted on {len(train_f)} Training faces")
    if test.ferplus_majority is not None:
        ok = test.ferplus_majority >= 0
        agree = (test.labels[ok] == test.ferplus_majority[ok]).mean()
        print(f"the FER2013 label is the FER+ majority emotion on {100 * agree:.1f}% of the {int(ok.sum())} faces that have one")


if __name__ == "__main__":
    main()
