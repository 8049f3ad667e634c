"""Landmarks on small faces: aligned crops against box crops as faces shrink.

Each photos-dev photo is scaled so that its face (the largest one found at full size) is about
``--sides`` pixels across, and the whole photo pipeline (``Recognizer.analyze``) runs on it
twice: with landmarks refused below the face side ``MIN_LANDMARK_FACE`` of the old default (40:
every face here is then a box crop) and with landmarks tried down to 16 px (each fit still
checked by ``landmark_fit``; a fit that fails falls back to the box crop). Reports, per side,
faces found, faces aligned, accuracy against the photo labels and the share called frontal.
The shipped ``MIN_LANDMARK_FACE`` is chosen from this table.

    python benchmarks/small_face_landmarks.py [--photos ../shared/datasets/photos-dev]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import DEFAULT_PHOTOS, markdown_table, photo_labels, pin_threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS, help="photos-dev folder (labels.csv + images/)")
    ap.add_argument("--sides", type=int, nargs="+", default=[20, 24, 28, 32, 36, 40, 48],
                    help="face sides to scale the photos to (px)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    pin_threads(args.threads)
    import cv2

    import emolens.recognize as recognize

    rec = recognize.Recognizer(threads=args.threads)
    faces = []
    for path, label in photo_labels(args.photos):
        image = cv2.imread(str(path))
        found = rec.analyze(image)
        if found:
            faces.append((image, label, max(f.box[2] for f in found)))
    table = []
    for side in args.sides:
        row = [side]
        for floor in (40, 16):
            recognize.MIN_LANDMARK_FACE = floor
            found = aligned = right = frontal = 0
            for image, label, full_side in faces:
                scale = side / full_side
                small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                got = rec.analyze(small)
                if not got:
                    continue
                face = max(got, key=lambda f: f.box[2])
                found += 1
                aligned += face.aligned
                frontal += face.frontal
                right += face.emotion == label
            row += [f"{found}", f"{aligned}", f"{right / len(faces):.1%}", f"{frontal / len(faces):.0%}"]
        table.append(row)
    print(f"{len(faces)} photos-dev faces found at full size; accuracy and frontal share over all of them\n")
    print(markdown_table(["face side (px)", "found", "aligned (40 px floor)", "accuracy", "frontal",
                          "aligned (16 px floor)", "accuracy", "frontal"],
                         [[r[0], r[1], r[2], r[3], r[4], r[6], r[7], r[8]] for r in table]))


if __name__ == "__main__":
    main()
