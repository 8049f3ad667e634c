"""How accuracy falls with head pose: faces binned by their estimated yaw (and pitch).

Two sets, each through the shipped model:

- FER2013 ``--split`` (PublicTest): each 48x48 face is classified as ``emolens evaluate``
  does, and its pose is estimated from the 68 landmarks fitted on a 4x enlarged copy
  (the face fills the picture, so the box is the picture less a margin). Faces whose
  landmarks do not fit (``landmark_fit``) form their own row.
- photos-dev: the whole photo pipeline (``Recognizer.analyze``) on each photo, the largest face.

    python benchmarks/pose_accuracy.py [--data ...] [--photos ../shared/datasets/photos-dev]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from _common import DEFAULT_PHOTOS, REPO, add_fer2013_arguments, markdown_table, photo_labels, pin_threads

BINS = [(0, 10), (10, 20), (20, 30), (30, 40), (40, 60), (60, 180)]


def binned(rows: list[tuple], key: int) -> list[list]:
    """rows: (|yaw|, |pitch|, correct or None for unfit) -> table rows per |angle| bin."""
    out = []
    fitted = [r for r in rows if r[0] is not None]
    for lo, hi in BINS:
        sel = [r[2] for r in fitted if lo <= r[key] < hi]
        out.append([f"{lo}-{hi}" if hi < 180 else f">= {lo}", len(sel), f"{100 * np.mean(sel):.1f}" if sel else "-"])
    unfit = [r[2] for r in rows if r[0] is None]
    out.append(["landmarks do not fit", len(unfit), f"{100 * np.mean(unfit):.1f}" if unfit else "-"])
    allc = [r[2] for r in rows]
    out.append(["all", len(allc), f"{100 * np.mean(allc):.1f}"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=REPO / "src" / "emolens" / "weights" / "emolens-default.onnx")
    ap.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    ap.add_argument("--limit", type=int, default=0, help="first N FER2013 faces only (0: all)")
    add_fer2013_arguments(ap, ferplus=False)
    args = ap.parse_args()
    pin_threads(args.threads)
    import cv2

    from emolens import Recognizer
    from emolens.emotions import EMOTIONS
    from emolens.evaluate import predict_dataset
    from emolens.faces.landmarks import LandmarkPredictor
    from emolens.people.pose import head_pose, landmark_fit
    from emolens.runtime import EmotionModel
    from emolens.training.data import load_dataset

    model = EmotionModel(args.model)
    ds = load_dataset(args.data, args.split, None)
    images, labels = (ds.images[:args.limit], ds.labels[:args.limit]) if args.limit else (ds.images, ds.labels)
    predicted = predict_dataset(model, images).probabilities.argmax(1)
    landmarker = LandmarkPredictor()
    scale, margin = 4, 0.08
    side = images.shape[1] * scale
    box = (int(side * margin), int(side * margin), int(side * (1 - 2 * margin)), int(side * (1 - 2 * margin)))
    fer_rows = []
    for face, label, guess in zip(images, labels, predicted):
        big = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
        lm = landmarker(big, box)
        pose = head_pose(lm, (side, side))
        ok = landmark_fit(lm, box, pose) and pose is not None
        fer_rows.append((abs(pose.yaw) if ok else None, abs(pose.pitch) if ok else None, bool(label == guess)))
    print(f"FER2013 {args.split} ({len(fer_rows)} faces), accuracy by |yaw|:")
    print(markdown_table(["|yaw| degrees", "faces", "accuracy %"], binned(fer_rows, 0)))
    print("\nby |pitch|:")
    print(markdown_table(["|pitch| degrees", "faces", "accuracy %"], binned(fer_rows, 1)))

    if args.photos.is_dir():
        rec = Recognizer(model=model)
        photo_rows = []
        for path, label in photo_labels(args.photos):
            faces = rec.analyze(path)
            if not faces:
                continue
            f = max(faces, key=lambda f: f.box[2] * f.box[3])
            correct = f.emotion == label
            photo_rows.append((abs(f.pose.yaw) if f.pose else None, abs(f.pose.pitch) if f.pose else None, correct))
        print(f"\nphotos-dev ({len(photo_rows)} photos with a face), accuracy by |yaw|:")
        print(markdown_table(["|yaw| degrees", "faces", "accuracy %"], binned(photo_rows, 0)))
    print(f"\nmodel {args.model.name}; emotions {', '.join(EMOTIONS)}")


if __name__ == "__main__":
    main()
