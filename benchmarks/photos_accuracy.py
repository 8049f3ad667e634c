"""Whole-pipeline accuracy and macro-F1 on photos-dev, per face framing.

    python benchmarks/photos_accuracy.py                      # shipped model, crops aligned/box/box-wide
    python benchmarks/photos_accuracy.py --model m.onnx --crop aligned --crop box --detector dlib
    python benchmarks/photos_accuracy.py --top 0.4 --top 0.6  # aligned framing, other top ratios

Each photo goes through the same Recognizer users run (detect -> landmarks -> crop ->
model); the largest face is compared with the label. A photo where no face is found
counts as wrong (column "no face"). Rows: "aligned" (Xu et al. landmark alignment),
"box" / "box-wide" (detector box, margin 0 / 0.1) and "align off" (box crop, no
landmarks computed at all). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_PHOTOS, markdown_table, photo_labels, pin_threads  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS, help="photos-dev folder (labels.csv, images/)")
    ap.add_argument("--model", type=Path, default=None, help="exported .onnx model (default: the shipped one)")
    ap.add_argument("--detector", default=None, help="detector name (default: the Recognizer's)")
    ap.add_argument("--crop", action="append", help="framing name from emolens.faces.CROPS, or 'align-off' "
                    "(repeat; default: aligned, box, box-wide, align-off)")
    ap.add_argument("--top", type=float, action="append", default=[],
                    help="also try the aligned framing with this top ratio (repeat)")
    ap.add_argument("--margin", type=float, action="append", default=[],
                    help="also try the box framing with this margin (repeat)")
    ap.add_argument("--tta", action="store_true", help="average each face with its mirror image")
    ap.add_argument("--limit", type=int, default=0, help="only the first N photos (0 = all)")
    ap.add_argument("--threads", type=int, default=2, help="threads (default 2)")
    args = ap.parse_args(argv)

    pin_threads(args.threads)
    import numpy as np

    from emolens.emotions import EMOTIONS
    from emolens.faces.align import get_crop
    from emolens.images import read_image
    from emolens.metrics import classification_report
    from emolens.recognize import Recognizer
    from emolens.runtime import EmotionModel, ModelError

    rows = photo_labels(args.photos)
    if args.limit:
        rows = rows[: args.limit]
    try:
        model = EmotionModel(args.model)
    except ModelError as exc:
        raise SystemExit(str(exc))
    framings: list[tuple[str, dict]] = []
    for name in args.crop or ["aligned", "box", "box-wide", "align-off"]:
        if name == "align-off":
            framings.append((name, {"align": False, "landmarks": False}))
        else:
            framings.append((name, {"crop": get_crop(name)}))
    framings += [(f"aligned top={t}", {"crop": get_crop("aligned", top=t)}) for t in args.top]
    framings += [(f"box margin={m}", {"crop": get_crop("box", margin=m)}) for m in args.margin]

    images = [read_image(p) for p, _ in rows]
    labels = np.array([EMOTIONS.index(lab) for _, lab in rows])
    table = []
    for name, options in framings:
        if args.detector:
            options["detector"] = args.detector
        rec = Recognizer(model=model, **options)
        predicted, missing, aligned = [], 0, 0
        for img in images:
            located = rec.locate(img)
            if not located:
                missing += 1
                predicted.append(-1)
                continue
            crops = np.stack([located[0].crop])
            out = model.predict_tta(crops) if args.tta else model(crops)
            predicted.append(int(out.probabilities[0].argmax()))
            aligned += located[0].aligned
        predicted = np.array(predicted)
        found = predicted >= 0
        # A missed face is wrong: score it against a label it cannot match.
        wrong = (labels[~found] + 1) % len(EMOTIONS)
        report = classification_report(np.r_[labels[found], labels[~found]], np.r_[predicted[found], wrong])
        table.append([name, len(rows), f"{report['accuracy']:.3f}", f"{report['macro_f1']:.3f}", missing,
                      aligned])
    print(f"model: {model.path}; detector: {args.detector or 'default'}{'; TTA' if args.tta else ''}\n")
    print(markdown_table(["framing", "photos", "accuracy", "macro-F1", "no face", "aligned"], table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
