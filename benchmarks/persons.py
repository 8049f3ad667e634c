"""Grouping faces into persons: how well dlib's descriptors and our distance threshold sort
24 faces of 4 people (faces-multi/bald_guys.jpg, labelled in benchmarks/data/bald_guys_persons.csv).

For each threshold: number of persons found, purity (share of faces whose person's
majority label is theirs), and pair precision / recall (pairs of faces put together that
are the same person / same-person pairs put together). Also the distribution of
same-person and different-person distances. Then what one descriptor costs: the network
emolens runs (``weights/dlib_face_descriptor.onnx`` in ONNX Runtime, 1 and 2 threads) against
dlib's own build of the same network, on the same chips, and how far apart their descriptors lie.

    python benchmarks/persons.py [--faces-multi ../shared/datasets/faces-multi] [--thresholds 0.45 0.5 ...]
                                 [--rounds 3]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from itertools import combinations
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, markdown_table, pin_threads  # noqa: E402

LABELS = REPO / "benchmarks" / "data" / "bald_guys_persons.csv"
FACES_MULTI = REPO.parent / "shared" / "datasets" / "faces-multi"


def labelled_faces(picture: Path, labels: Path = LABELS):
    """(crop, landmarks in the crop, label) for every labelled face: the default detector on a
    600 px square around each labelled centre, the face nearest the centre."""
    import cv2

    from emolens import Recognizer

    rows = [r for r in csv.DictReader(line for line in labels.open() if not line.startswith("#"))]
    image = cv2.imread(str(picture))
    rec = Recognizer(threads=2)
    out = []
    for r in rows:
        cx, cy = int(r["cx"]), int(r["cy"])
        x0, y0 = max(0, cx - 300), max(0, cy - 300)
        crop = image[y0:cy + 300, x0:cx + 300]
        faces = [f for f in rec.analyze(crop) if f.landmarks is not None]
        if not faces:
            out.append((crop, None, r["person"]))
            continue
        near = min(faces, key=lambda f: (f.box[0] + f.box[2] / 2 - (cx - x0)) ** 2 + (f.box[1] + f.box[3] / 2 - (cy - y0)) ** 2)
        out.append((crop, near.landmarks, r["person"]))
    return out


def labelled_face_crops(picture: Path, labels: Path = LABELS, scale: float = 1.6) -> list[tuple]:
    """(square crop around the face, person label) for every labelled face found: ``scale`` times
    the detected box, for pasting into clips (``emolens.testing.clips.Actor``)."""
    import cv2

    out = []
    for crop, lm, label in labelled_faces(picture, labels):
        if lm is None:
            continue
        (x0, y0), (x1, y1) = lm.min(0), lm.max(0)
        cx, cy, side = (x0 + x1) / 2, (y0 + y1) / 2 - 0.1 * (y1 - y0), scale * max(x1 - x0, y1 - y0)
        half = int(side / 2)
        padded = cv2.copyMakeBorder(crop, half, half, half, half, cv2.BORDER_REPLICATE)
        cx, cy = int(cx) + half, int(cy) + half
        out.append((padded[cy - half:cy + half, cx - half:cx + half].copy(), label))
    return out


def grouping_scores(labels: list[str], persons: list[int]) -> dict:
    pure = 0
    for p in set(persons):
        members = [lab for lab, q in zip(labels, persons) if q == p]
        pure += max(members.count(x) for x in set(members))
    together = same = both = 0
    for i, j in combinations(range(len(labels)), 2):
        t, s = persons[i] == persons[j], labels[i] == labels[j]
        together += t
        same += s
        both += t and s
    return {"persons": len(set(persons)), "purity": pure / len(labels),
            "pair_precision": both / together if together else 1.0, "pair_recall": both / same if same else 1.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces-multi", type=Path, default=FACES_MULTI)
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.4, 0.45, 0.5, 0.55, 0.6, 0.65])
    ap.add_argument("--rounds", type=int, default=3, help="timing passes over the chips (the best counts)")
    args = ap.parse_args()
    pin_threads(2)
    from emolens.people.persons import FaceDescriber, group_faces

    picture = args.faces_multi / "images" / "bald_guys.jpg"
    if not picture.is_file():
        raise SystemExit(f"{picture} not found; pass --faces-multi PATH")
    faces = labelled_faces(picture)
    describe = FaceDescriber()
    found = [(describe(c, lm), lab) for c, lm, lab in faces if lm is not None]
    print(f"{len(found)} of {len(faces)} labelled faces found with landmarks by the default detector")
    desc = [d for d, _ in found]
    labels = [lab for _, lab in found]
    same, diff = [], []
    for i, j in combinations(range(len(desc)), 2):
        (same if labels[i] == labels[j] else diff).append(float(np.linalg.norm(desc[i] - desc[j])))
    q = lambda v: " / ".join(f"{x:.3f}" for x in np.percentile(v, [0, 5, 50, 95, 100]))  # noqa: E731
    print(f"same-person distances (min / 5% / median / 95% / max): {q(same)}")
    print(f"different-person distances:                         {q(diff)}")
    rows = []
    for t in args.thresholds:
        s = grouping_scores(labels, group_faces(desc, t))
        rows.append([t, s["persons"], f"{s['purity']:.3f}", f"{s['pair_precision']:.3f}", f"{s['pair_recall']:.3f}"])
    print(markdown_table(["threshold", "persons (true: 4)", "purity", "pair precision", "pair recall"], rows))
    chips = [describe.chip(c, lm) for c, lm, _ in faces if lm is not None]
    print(descriptor_cost(chips, args.rounds))


def descriptor_cost(chips: list[np.ndarray], rounds: int) -> str:
    """ms per descriptor (one chip per call, the chip cut not included) of the ONNX network at 1 and 2
    threads and of dlib's own network, best of ``rounds`` passes over ``chips``; and the largest
    distance between the ONNX and dlib descriptors of a chip."""
    import dlib

    from emolens.faces.landmarks import model_file
    from emolens.people.persons import FaceDescriber

    dlib_net = dlib.face_recognition_model_v1(str(model_file("dlib_face_recognition_resnet_model_v1.dat")))
    runners = {}
    for n in (1, 2):
        runners[f"ONNX Runtime, {n} thread{'s' * (n > 1)} (emolens)"] = FaceDescriber(threads=n).describe_chips
    runners["dlib's own build (dlib-bin)"] = lambda batch: np.asarray([dlib_net.compute_face_descriptor(batch[0])])
    rows, outputs = [], {}
    for name, run in runners.items():
        run(chips[0][None])  # warm-up
        best = float("inf")
        for _ in range(rounds):
            t0 = time.perf_counter()
            outputs[name] = [run(c[None])[0] for c in chips]
            best = min(best, (time.perf_counter() - t0) / len(chips))
        rows.append([name, len(chips), f"{best * 1000:.1f}"])
    ours, theirs = list(outputs.values())[0], list(outputs.values())[-1]
    gap = max(float(np.linalg.norm(a - b)) for a, b in zip(ours, theirs))
    return (markdown_table(["network", "chips", "ms per descriptor (best of rounds)"], rows)
            + f"\nlargest distance between emolens's and dlib's descriptor of a chip: {gap:.1e}")


if __name__ == "__main__":
    main()
