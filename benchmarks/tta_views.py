"""How much do more test-time views buy? PublicTest numbers for view sets beyond the mirror.

    python benchmarks/tta_views.py [--model src/emolens/weights/emolens-default.onnx] [--shift 2]

`emolens evaluate --tta` averages two views (the face and its mirror). Published FER2013
numbers often average more: the 73.28% single-network VGG (Khaireddin & Chen 2021)
averages ten 40x40 crops. This script measures what such view sets give our model, each
view set's logits averaged (probabilities and intensities from the average), through the
runtime users run:

- ``single``: one pass; ``mirror``: the shipped ``--tta``;
- ``mirror x 5 shifts``: the mirror pair at the centre and shifted by ``--shift`` px
  left, right, up, down (edge pixels repeated), 10 passes;
- ``mirror x 5 diagonal shifts``: the centre and the four diagonal shifts, 10 passes;
- ``mirror x 9 shifts``: both sets, 18 passes;
- ``mirror x 3 scales``: the centre, a 44 px centre crop and a 52 px padded frame, each
  resized back to the model's input, 6 passes.

The view sets are fixed here, not tuned; PublicTest measures, nothing is fitted. The cost
is the number of passes (one pass: §2 of BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from _common import REPO, add_fer2013_arguments, markdown_table, pin_threads
from ensemble import row

CROSS = [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)]
DIAGONAL = [(0, 0), (1, 1), (-1, -1), (1, -1), (-1, 1)]


def shifted(faces: np.ndarray, dx: int, dy: int, pad: int) -> np.ndarray:
    """``faces`` moved by (dx, dy) pixels, edge pixels repeated into the gap."""
    p = np.pad(faces, ((0, 0), (pad, pad), (pad, pad)), mode="edge")
    h, w = faces.shape[1:]
    return np.ascontiguousarray(p[:, pad - dy:pad - dy + h, pad - dx:pad - dx + w])


def rescaled(faces: np.ndarray, side: int) -> np.ndarray:
    """A ``side`` px centre crop (smaller) or edge-padded frame (larger), resized back."""
    import cv2

    n = faces.shape[1]
    if side < n:
        o = (n - side) // 2
        views = [cv2.resize(f[o:o + side, o:o + side], (n, n), interpolation=cv2.INTER_LINEAR) for f in faces]
    else:
        o = (side - n) // 2
        views = [cv2.resize(np.pad(f, o, mode="edge"), (n, n), interpolation=cv2.INTER_AREA) for f in faces]
    return np.stack(views)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=REPO / "src" / "emolens" / "weights" / "emolens-default.onnx")
    add_fer2013_arguments(ap)
    ap.add_argument("--shift", type=int, default=2, help="pixels each shifted view moves (default 2)")
    args = ap.parse_args()
    if args.shift < 1:
        raise SystemExit("--shift must be at least 1 pixel")
    pin_threads(args.threads)
    from emolens.evaluate import predict_dataset, report_for
    from emolens.runtime import EmotionModel, ModelOutput
    from emolens.training.data import load_dataset

    if not args.model.is_file():
        raise SystemExit(f"{args.model}: no such model; pass an exported .onnx with --model")
    model = EmotionModel(args.model)
    ds = load_dataset(args.data, args.split, args.ferplus if args.ferplus.is_file() else None)
    size = model.input_size
    if ds.images.shape[1:] != (size, size):
        raise SystemExit(f"{args.data}: faces are {ds.images.shape[1:]}, the model takes {size}x{size}")

    cache: dict = {}

    def view(mirror: bool, kind: str, *params) -> ModelOutput:
        key = (mirror, kind, params)
        if key not in cache:
            base = np.ascontiguousarray(ds.images[:, :, ::-1]) if mirror else ds.images
            x = shifted(base, params[0] * args.shift, params[1] * args.shift, args.shift) if kind == "shift" \
                else rescaled(base, params[0])
            cache[key] = predict_dataset(model, x)
        return cache[key]

    both = (False, True)
    sets = {
        "single": [(False, "shift", 0, 0)],
        "mirror (`--tta`)": [(m, "shift", 0, 0) for m in both],
        "mirror x 5 shifts": [(m, "shift", dx, dy) for m in both for dx, dy in CROSS],
        "mirror x 5 diagonal shifts": [(m, "shift", dx, dy) for m in both for dx, dy in DIAGONAL],
        "mirror x 9 shifts": [(m, "shift", dx, dy) for m in both for dx, dy in dict.fromkeys(CROSS + DIAGONAL)],
        "mirror x 3 scales": [(m, "shift", 0, 0) for m in both] + [(m, "scale", s) for m in both for s in (44, 52)],
    }
    rows = [[*row(name, report_for(ds, model.average_views([view(*k) for k in keys])))[:4], len(keys)] for name, keys in sets.items()]
    print(markdown_table(["views", f"{args.split} %", "macro-F1", "intensity RMSE", "passes"], rows))
    print(f"\n{args.model.name}; {args.split}: n = {len(ds)}; shifts of {args.shift} px")


if __name__ == "__main__":
    main()
