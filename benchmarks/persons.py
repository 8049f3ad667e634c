"""Grouping faces into persons: how well dlib's descriptors and our distance threshold sort
24 faces of 4 people (faces-multi/bald_guys.jpg, labelled in benchmarks/data/bald_guys_persons.csv).

For each threshold: number of persons found, purity (share of faces whose person's
majority label is theirs), and pair precision / recall (pairs of faces put together that
are the same person / same-person pairs put together). Also the distribution of
same-person and different-person distances. Then what one descriptor costs: the network
emolens runs (``weights/dlib_face_descriptor.onnx`` in ONNX Runtime, 1 and 2 threads) against
dlib's own build of the same network, on the same chips, and how far apart their descriptors lie.
Last, small faces: each face shrunk to ``--sizes`` px (its detected box's shorter side), found
and fitted again by the pipeline, described below emolens's 40 px floor too: how many are found,
how far their descriptors move from the full-size ones, and how they group at the default distance.

Then the same on photos-dev (187 photos, one face each): its file names carry the person's name
(``Andre_Agassi_0002.jpg``), so 19 people with 2-11 photos each (62 photos) among 125 people
seen once: a harder test with many more people, at full size and shrunk.

Last, ``emolens predict --group-people`` on every picture of faces-multi, in one call: the group
photos hold different people, so a person named twice in one picture is a merge; with
``--collages`` (faces of one picture may be one person) and without (the default).

    python benchmarks/persons.py [--faces-multi ../shared/datasets/faces-multi] [--thresholds 0.45 0.5 ...]
                                 [--rounds 3] [--sizes 24 32 40 48 64] [--photos ../shared/datasets/photos-dev]
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
from _common import DEFAULT_PHOTOS, REPO, markdown_table, pin_threads  # noqa: E402

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


def pair_distances(desc: list[np.ndarray], labels: list[str]) -> tuple[list[float], list[float]]:
    """Distances of every pair of descriptors: (same-person pairs, different-person pairs)."""
    same, diff = [], []
    for i, j in combinations(range(len(desc)), 2):
        (same if labels[i] == labels[j] else diff).append(float(np.linalg.norm(desc[i] - desc[j])))
    return same, diff


def spread(values: list[float]) -> str:
    return " / ".join(f"{x:.3f}" for x in np.percentile(values, [0, 5, 50, 95, 100]))


def threshold_table(desc: list[np.ndarray], labels: list[str], thresholds: list[float]) -> str:
    """The online grouping (``group_faces``) at each threshold against the labels."""
    from emolens.people.persons import group_faces

    rows = []
    for t in thresholds:
        sc = grouping_scores(labels, group_faces(desc, t))
        rows.append([t, sc["persons"], f"{sc['purity']:.3f}", f"{sc['pair_precision']:.3f}",
                     f"{sc['pair_recall']:.3f}"])
    return markdown_table(["threshold", f"persons (true: {len(set(labels))})", "purity", "pair precision",
                           "pair recall"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces-multi", type=Path, default=FACES_MULTI)
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.4, 0.45, 0.5, 0.55, 0.6, 0.65])
    ap.add_argument("--rounds", type=int, default=3, help="timing passes over the chips (the best counts)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[24, 32, 40, 48, 64],
                    help="face sizes (px, the box's shorter side) of the small-face table")
    ap.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS, help="photos-dev (skipped when missing)")
    args = ap.parse_args()
    pin_threads(2)
    from emolens.people.persons import FaceDescriber

    picture = args.faces_multi / "images" / "bald_guys.jpg"
    if not picture.is_file():
        raise SystemExit(f"{picture} not found; pass --faces-multi PATH")
    faces = labelled_faces(picture)
    describe = FaceDescriber()
    found = [(describe(c, lm), lab) for c, lm, lab in faces if lm is not None]
    print(f"{len(found)} of {len(faces)} labelled faces found with landmarks by the default detector")
    desc = [d for d, _ in found]
    labels = [lab for _, lab in found]
    same, diff = pair_distances(desc, labels)
    print(f"same-person distances (min / 5% / median / 95% / max): {spread(same)}")
    print(f"different-person distances:                         {spread(diff)}")
    print(threshold_table(desc, labels, args.thresholds))
    chips = [describe.chip(c, lm) for c, lm, _ in faces if lm is not None]
    print(descriptor_cost(chips, args.rounds))
    print(small_faces(faces, describe, args.sizes))
    if (args.photos / "images").is_dir():
        print(photos_dev_persons(args.photos / "images", describe, args.thresholds, args.sizes))
    else:
        print(f"\n{args.photos}/images not found: the photos-dev tables are skipped")
    print(group_photos(args.faces_multi / "images"))


def group_photos(folder: Path) -> str:
    """``predict --group-people`` over faces-multi, with and without ``--collages``: per picture the
    faces found, described (40 px+, landmarks) and the persons named more than once in it."""
    from collections import Counter

    from emolens.predict import predict_files
    from emolens.recognize import Recognizer

    recognizer = Recognizer(threads=2)
    pictures = sorted(folder.glob("*.jpg"))
    runs = {collages: list(predict_files(recognizer, pictures, group_people=True, collages=collages))
            for collages in (True, False)}
    rows = []
    seen = {True: set(), False: set()}           # persons named so far, per run
    for merged, apart in zip(runs[True], runs[False]):
        cells = []
        for collages, r in ((True, merged), (False, apart)):
            named = [p for p in r.persons if p is not None]
            repeated = [n for n in Counter(named).values() if n > 1]
            cells.append(f"{len(repeated)} ({sum(repeated)} faces)")
            seen[collages].update(named)
        rows.append([Path(merged.file).name, len(merged.faces), sum(p is not None for p in merged.persons), *cells,
                     len(seen[True]), len(seen[False])])
    return ("\nfaces-multi through `predict --group-people` (one call, pictures in name order; bald_guys.jpg is "
            "a montage of 4 people, 6 photos each, the rest group photos)\n"
            + markdown_table(["picture", "faces", "described", "persons twice in it, --collages",
                              "persons twice in it, default", "persons so far, --collages", "persons so far, default"],
                             rows))


def photos_dev_persons(folder: Path, describe, thresholds: list[float], sizes: list[int]) -> str:
    """Persons among photos-dev's photos, the name in each file name as the truth: distances, the
    grouping at each threshold, then with every face shrunk to ``sizes`` px (found again by the
    pipeline); "mixed": every second photo of a person shrunk, the others at full size."""
    import cv2

    from emolens import Recognizer
    from emolens.people.persons import SAME_PERSON, group_faces

    rec = Recognizer(threads=2)
    items = []
    for path in sorted(folder.glob("*.jpg")):
        image = cv2.imread(str(path))
        faces = [f for f in rec.analyze(image) if f.landmarks is not None]
        if faces:
            face = max(faces, key=lambda f: f.box[2] * f.box[3])
            items.append((image, face.box, describe(image, face.landmarks), path.stem.rsplit("_", 1)[0]))
    labels = [lab for *_, lab in items]
    counts = {lab: labels.count(lab) for lab in labels}
    desc = [d for _, _, d, _ in items]
    same, diff = pair_distances(desc, labels)
    out = [f"\nphotos-dev: {len(items)} faces found of {len(list(folder.glob('*.jpg')))} photos, {len(counts)} people "
           f"({sum(c > 1 for c in counts.values())} with 2+ photos, {sum(c for c in counts.values() if c > 1)} photos)",
           f"same-person distances (min / 5% / median / 95% / max): {spread(same)} ({len(same)} pairs)",
           f"different-person distances:                         {spread(diff)}; under {SAME_PERSON}: "
           f"{sum(d < SAME_PERSON for d in diff)} of {len(diff)} pairs",
           threshold_table(desc, labels, thresholds)]
    rows = []
    for size in sizes:
        small, moved, seen = [], [], {}
        for image, (x, y, w, h), full, label in items:
            f = size / min(w, h)
            if f >= 1:
                small.append(full)          # already this small
                continue
            shrunk = cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
            cx, cy = (x + w / 2) * f, (y + h / 2) * f
            near = [g for g in rec.analyze(shrunk) if g.landmarks is not None
                    and abs(g.box[0] + g.box[2] / 2 - cx) < g.box[2] / 2 and abs(g.box[1] + g.box[3] / 2 - cy) < g.box[3] / 2]
            small.append(describe(shrunk, near[0].landmarks) if near else None)
            if near:
                moved.append(float(np.linalg.norm(small[-1] - full)))
        found = [k for k, d in enumerate(small) if d is not None]
        row = [size, f"{len(found)} of {len(items)}", f"{np.median(moved):.3f}" if moved else "",
               f"{max(moved):.3f}" if moved else ""]
        mixed = []
        for k, (_, _, full, label) in enumerate(items):
            seen[label] = seen.get(label, 0) + 1
            mixed.append(small[k] if seen[label] % 2 == 0 and small[k] is not None else full)
        for group_desc, group_labels in (([small[k] for k in found], [labels[k] for k in found]), (mixed, labels)):
            sc = grouping_scores(group_labels, group_faces(group_desc, SAME_PERSON))
            row += [sc["persons"], f"{sc['purity']:.3f}", f"{sc['pair_precision']:.3f}", f"{sc['pair_recall']:.3f}"]
        rows.append(row)
    out.append(f"\nphotos-dev faces shrunk (at {SAME_PERSON}; all shrunk, then every second photo of a person shrunk)")
    out.append(markdown_table(["face px", "found with landmarks", "median distance to full size", "max",
                               "persons", "purity", "pair precision", "pair recall",
                               "mixed: persons", "purity", "pair precision", "pair recall"], rows))
    return "\n".join(out)


def small_faces(faces, describe, sizes: list[int]) -> str:
    """Each labelled face shrunk (INTER_AREA) so its detected box's shorter side is ``size`` px, then
    detected, fitted and described as the pipeline would (below ``MIN_DESCRIPTOR_FACE`` too): faces
    found with landmarks, distance of each descriptor to the same face's full-size one, and the
    grouping of the found faces at the default same-person distance."""
    import cv2

    from emolens import Recognizer
    from emolens.people.persons import MIN_DESCRIPTOR_FACE, SAME_PERSON, group_faces

    rec = Recognizer(threads=2)
    full = []
    for crop, lm, label in faces:
        if lm is None:
            continue
        centre = lm.mean(0)
        box = min((f.box for f in rec.analyze(crop) if f.landmarks is not None),
                  key=lambda b: (b[0] + b[2] / 2 - centre[0]) ** 2 + (b[1] + b[3] / 2 - centre[1]) ** 2)
        full.append((crop, centre, min(box[2], box[3]), describe(crop, lm), label))
    rows = []
    for size in sizes:
        found, moved = [], []
        for crop, centre, side, reference, label in full:
            f = size / side
            small = cv2.resize(crop, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
            near = [x for x in rec.analyze(small) if x.landmarks is not None
                    and abs(x.box[0] + x.box[2] / 2 - centre[0] * f) < x.box[2] / 2
                    and abs(x.box[1] + x.box[3] / 2 - centre[1] * f) < x.box[3] / 2]
            if not near:
                continue
            d = describe(small, near[0].landmarks)
            found.append((d, label))
            moved.append(float(np.linalg.norm(d - reference)))
        row = [size, f"{len(found)} of {len(full)}"]
        if found:
            row += [f"{np.median(moved):.3f}", f"{max(moved):.3f}", f"{sum(m >= SAME_PERSON for m in moved)}"]
            # alone, then after the full-size faces (a person seen close first, then far away)
            for group in (found, [(ref, lab) for *_, ref, lab in full] + found):
                score = grouping_scores([lab for _, lab in group], group_faces([d for d, _ in group], SAME_PERSON))
                row += [score["persons"], f"{score['purity']:.3f}", f"{score['pair_precision']:.3f}",
                        f"{score['pair_recall']:.3f}"]
        rows.append(row + [""] * (13 - len(row)))
    return (f"\nsmall faces (emolens describes faces of {MIN_DESCRIPTOR_FACE} px and up; same-person distance "
            f"{SAME_PERSON}; grouped alone, then after the {len(full)} full-size faces)\n"
            + markdown_table(["face px", "found with landmarks", "median distance to full size", "max",
                              f"moved {SAME_PERSON}+", "persons (true: 4)", "purity", "pair precision", "pair recall",
                              "with full size: persons", "purity", "pair precision", "pair recall"], rows))


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
