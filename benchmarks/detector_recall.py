"""Face detector recall and false positives on labelled multi-face pictures, and time per frame.

    python benchmarks/detector_recall.py                       # every registered detector
    python benchmarks/detector_recall.py -d blazeface -d dlib --runs 50
    python benchmarks/detector_recall.py -d "blazeface small_faces=0" --per-picture
    python benchmarks/detector_recall.py --sweep      # BlazeFace's smallest face in its 128 px input

The labelled set (pictures read in place, never copied into the repository):

- ``voc``: the 9 PASCAL VOC pictures of ../shared/datasets/faces-multi with its 43 boxes
  (boxes.csv; many 37-50 px). Their owners' Flickr terms: evaluation only.
- ``bald_guys``: faces-multi's collage of 24 frontal faces (114-284 px in a 1986 x 1545
  picture); ``tom_cruise``: one face (409 px); boxes of both are ours,
  benchmarks/data/faces_multi_boxes.csv. ``dogs``: no human face, every box is false.
- ``crowd`` / ``crowd-dim``: composites made here, seeded: 5-15 photos-dev faces pasted at
  40-120 px (face box side) with feathered edges on a textured 640 x 480 background, the
  dim ones at a third of the light with sensor noise; ``dogs-crowd``: the same on the dogs
  picture (900 x 916). photos-dev faces are for evaluation only. The true box of a pasted
  face is dlib HOG's box on its source photo, scaled with it.

A face is found when a detection has IoU >= 0.3 with its box or contains the box's centre
(faces-multi's boxes are dlib-style squares on the eyes-mouth region, tighter than most
detectors'); one detection finds one face at most. Recall is given overall and by the
true box's side in the picture's own pixels; false positives per picture count the
detections that found no face (``voc`` pictures hold a few unlabelled background faces,
so its figure is an upper bound; ``dogs`` and the composites are exact).

``recall as video frames``: the same pictures detected as video detects a frame
(``retry=False``: no padded second chance; BlazeFace's small-face pass only when its first
pass is sure of no face), with the false positives per picture of the exact sets.

Time: median over --runs calls (after warm-up) of the detector alone on 640 x 480 frames,
1 thread: as video calls it (``retry=False``) on frame_timing.py's frame with one 220 px
face (``face ms``), on a composite with 8 faces (``crowd ms``) and on the empty textured
background (``empty ms``); and as photos are analysed (``photo ms``, the crowd frame with
the detector's second chances on). Only trustworthy on a quiet machine.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_PHOTOS, REPO, markdown_table, parse_detector, pin_threads  # noqa: E402

FACES_MULTI = REPO.parent / "shared" / "datasets" / "faces-multi"
OUR_BOXES = REPO / "benchmarks" / "data" / "faces_multi_boxes.csv"
SIZE_BINS = (("<40", 0, 40), ("40-60", 40, 60), ("60-100", 60, 100), ("100+", 100, 10 ** 9))
MATCH_IOU = 0.3


@dataclass
class Picture:
    """A labelled picture: BGR pixels and the true face boxes (x, y, w, h) in its pixels."""

    name: str
    group: str
    image: np.ndarray
    faces: list[tuple[int, int, int, int]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------
# the labelled set


def _read_boxes(path: Path) -> dict[str, list[tuple[int, int, int, int]]]:
    boxes: dict[str, list] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(line for line in f if not line.startswith("#")):
            boxes.setdefault(row["file"], []).append(tuple(int(row[k]) for k in ("x", "y", "w", "h")))
    return boxes


def faces_multi_pictures(root: Path = FACES_MULTI) -> list[Picture]:
    """voc, bald_guys, tom_cruise and dogs (see the module docstring)."""
    import cv2

    voc = _read_boxes(root / "boxes.csv")
    ours = _read_boxes(OUR_BOXES)
    groups = {**{name: "voc" for name in voc}, "bald_guys.jpg": "bald_guys",
              "Tom_Cruise_avp_2014_4.jpg": "tom_cruise", "dogs.jpg": "dogs"}
    out = []
    for name, group in groups.items():
        image = cv2.imread(str(root / "images" / name))
        if image is None:
            raise SystemExit(f"{root / 'images' / name}: cannot be read; pass --faces-multi PATH")
        out.append(Picture(name, group, image, list(voc.get(name, ours.get(name, [])))))
    return out


@dataclass
class FacePhoto:
    """A face photo and the dlib HOG box of its one face (the box convention of faces-multi)."""

    image: np.ndarray
    box: tuple[int, int, int, int]


def face_photos(photos: Path, count: int, seed: int = 0) -> list[FacePhoto]:
    """Up to ``count`` photos-dev photos (seeded order) in which dlib HOG finds exactly one face."""
    import cv2

    from emolens.faces.detect import get_detector

    paths = sorted((photos / "images").glob("*.jpg"))
    if not paths:
        raise SystemExit(f"{photos / 'images'}: no photos; pass --photos PATH to a photos-dev folder")
    rng = np.random.default_rng(seed)
    hog = get_detector("dlib", max_side=4000, retry=False)
    out = []
    for i in rng.permutation(len(paths)):
        image = cv2.imread(str(paths[i]))
        if image is None or min(image.shape[:2]) < 200:
            continue
        found = hog(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        if len(found) == 1 and found[0].box == found[0].full_box:
            out.append(FacePhoto(image, found[0].box))
        if len(out) == count:
            break
    return out


def paste_faces(base: np.ndarray, faces: list[FacePhoto], sides: list[int], rng: np.random.Generator,
                margin: float = 1.7) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """``faces`` pasted on a copy of ``base`` with face box sides ``sides``, not overlapping:
    each as a square crop ``margin`` times its box, feathered at the edge. Returns the picture
    and the true boxes (faces that found no free place are left out)."""
    import cv2

    out = base.copy()
    H, W = out.shape[:2]
    taken: list[tuple[int, int, int]] = []
    boxes = []
    for face, side in zip(faces, sides):
        sprite_side = int(round(margin * side))
        for _ in range(200):
            x0 = int(rng.integers(0, max(1, W - sprite_side)))
            y0 = int(rng.integers(0, max(1, H - sprite_side)))
            if all(abs(x0 - tx) >= (sprite_side + ts) / 2 * 0.9 or abs(y0 - ty) >= (sprite_side + ts) / 2 * 0.9
                   for tx, ty, ts in taken):
                break
        else:
            continue
        bx, by, bw, _ = face.box
        src_side = margin * bw
        cx, cy = bx + bw / 2, by + bw / 2
        scale = sprite_side / src_side
        # The source square around the face, resized to the sprite (mirrored where it leaves the photo).
        m = np.float32([[scale, 0, -(cx - src_side / 2) * scale], [0, scale, -(cy - src_side / 2) * scale]])
        sprite = cv2.warpAffine(face.image, m, (sprite_side, sprite_side), flags=cv2.INTER_AREA,
                                borderMode=cv2.BORDER_REFLECT_101)
        edge = max(1, int(round(sprite_side * 0.08)))
        mask = np.zeros((sprite_side, sprite_side), np.float32)
        mask[edge:-edge, edge:-edge] = 1.0
        mask = cv2.GaussianBlur(mask, (0, 0), edge / 2)[:, :, None]
        x1, y1 = min(W, x0 + sprite_side), min(H, y0 + sprite_side)
        roi = out[y0:y1, x0:x1].astype(np.float32)
        sp, mk = sprite[: y1 - y0, : x1 - x0].astype(np.float32), mask[: y1 - y0, : x1 - x0]
        out[y0:y1, x0:x1] = (sp * mk + roi * (1 - mk)).astype(np.uint8)
        taken.append((x0, y0, sprite_side))
        off = (sprite_side - side) / 2
        boxes.append((int(round(x0 + off)), int(round(y0 + off)), side, side))
    return out, boxes


def dim(image: np.ndarray, rng: np.random.Generator, light: float = 0.33, noise: float = 4.0) -> np.ndarray:
    """The picture at ``light`` of its brightness with Gaussian sensor noise (sigma in grey levels)."""
    out = image.astype(np.float32) * light + rng.normal(0, noise, image.shape).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def composite_pictures(photos: Path, dogs: np.ndarray | None, per_group: int = 8, seed: int = 0,
                       sides: tuple[int, int] = (40, 120), counts: tuple[int, int] = (5, 15)) -> list[Picture]:
    """``crowd`` and ``crowd-dim`` (640 x 480 textured backgrounds) and ``dogs-crowd`` pictures,
    ``per_group`` of each (dogs-crowd: half of them, half dim) with 5-15 faces of 40-120 px."""
    from emolens.testing.clips import background

    rng = np.random.default_rng(seed)
    pool = face_photos(photos, 60, seed)
    out = []
    plan = [("crowd", False)] * per_group + [("crowd-dim", True)] * per_group
    if dogs is not None:
        plan += [("dogs-crowd", i % 2 == 1) for i in range(max(2, per_group // 2))]
    for i, (group, is_dim) in enumerate(plan):
        base = dogs if group == "dogs-crowd" else background((640, 480), seed=seed * 1000 + i)
        n = int(rng.integers(counts[0], counts[1] + 1))
        chosen = [pool[j] for j in rng.choice(len(pool), size=n, replace=False)]
        picture, boxes = paste_faces(base, chosen, [int(s) for s in rng.integers(sides[0], sides[1] + 1, n)], rng)
        if is_dim:
            picture = dim(picture, rng)
        out.append(Picture(f"{group}-{i:02d}", group, picture, boxes))
    return out


# ---------------------------------------------------------------------------------------
# scoring


def iou(a, b) -> float:
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    return iw * ih / float(a[2] * a[3] + b[2] * b[3] - iw * ih)


def match(truth: list, found: list) -> tuple[list[bool], int]:
    """Which true boxes a detection finds (IoU >= 0.3 or the box's centre inside it; one-to-one,
    best overlap first) and how many detections found none."""
    pairs = []
    for i, t in enumerate(truth):
        cx, cy = t[0] + t[2] / 2, t[1] + t[3] / 2
        for j, d in enumerate(found):
            overlap = iou(t, d)
            inside = d[0] <= cx <= d[0] + d[2] and d[1] <= cy <= d[1] + d[3]
            if overlap >= MATCH_IOU or inside:
                pairs.append((overlap, i, j))
    hit, used = [False] * len(truth), set()
    for _, i, j in sorted(pairs, reverse=True):
        if not hit[i] and j not in used:
            hit[i] = True
            used.add(j)
    return hit, len(found) - len(used)


@dataclass
class Score:
    found: list[tuple[int, bool]] = field(default_factory=list)   # (true box side, found) per face
    false: dict[str, list[int]] = field(default_factory=dict)     # group -> false detections per picture

    def add(self, picture: Picture, boxes: list) -> None:
        hit, false = match(picture.faces, boxes)
        self.found += [(t[2], h) for t, h in zip(picture.faces, hit)]
        self.false.setdefault(picture.group, []).append(false)

    def recall(self, lo: int = 0, hi: int = 10 ** 9) -> tuple[int, int]:
        sel = [h for side, h in self.found if lo <= side < hi]
        return sum(sel), len(sel)


def evaluate(detector, pictures: list[Picture], retry: bool | None = None) -> tuple[dict[str, Score], dict[str, list]]:
    """Per group: the score; per picture: the detections (x, y, w, h). retry: as ``detect_faces``
    (None: the detector's own setting, as photos are analysed; False: as video frames are)."""
    import cv2

    from emolens.faces.detect import detect_faces

    scores: dict[str, Score] = {}
    boxes_of = {}
    for p in pictures:
        boxes = [d.box for d in detect_faces(detector, cv2.cvtColor(p.image, cv2.COLOR_BGR2GRAY), retry)]
        boxes_of[p.name] = boxes
        scores.setdefault(p.group, Score()).add(p, boxes)
    return scores, boxes_of


def frame_ms(detector, frame: np.ndarray, runs: int, retry: bool | None = False, warmup: int = 5,
             clock=time.perf_counter) -> float:
    """Median ms of ``detector(grey, retry=retry)`` on a BGR frame (False: as video calls it).
    clock: ``time.perf_counter`` (wall) or ``time.thread_time`` (this thread's CPU time: on a
    busy machine, what the call costs without the waits for a core; one-thread detectors only)."""
    import cv2

    from emolens.faces.detect import detect_faces

    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    for _ in range(warmup):
        detect_faces(detector, grey, retry=retry)
    times = []
    for _ in range(runs):
        t = clock()
        detect_faces(detector, grey, retry=retry)
        times.append(clock() - t)
    return statistics.median(times) * 1e3


def size_sweep(photos: Path, sides=(12, 16, 18, 20, 22, 24, 28, 32, 40, 64), count: int = 40) -> list[list]:
    """Share of ``count`` photos-dev faces one BlazeFace pass finds when pasted with box side
    ``side`` into a 128 x 128 textured picture (the model's own input: no resizing)."""
    import cv2

    from emolens.faces.blazeface import BlazeFaceDetector
    from emolens.testing.clips import background

    pool = face_photos(photos, count, seed=3)
    one_pass = BlazeFaceDetector(small_faces=False, second_look=False, retry=False, box="raw")
    rng = np.random.default_rng(0)
    rows = []
    for side in sides:
        hits = 0
        for i, face in enumerate(pool):
            picture, truth = paste_faces(background((128, 128), seed=i), [face], [side], rng)
            boxes, _, _ = one_pass._run(cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY))
            hits += match(truth, [tuple(b) for b in boxes])[0][0]
        rows.append([side, f"{hits}/{len(pool)}"])
    return rows


def _fraction(hit_total: tuple[int, int]) -> str:
    hit, total = hit_total
    return f"{hit}/{total} ({hit / total:.0%})" if total else "-"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-d", "--detector", action="append", help="detector name, options after it (repeat; default: all)")
    ap.add_argument("--faces-multi", type=Path, default=FACES_MULTI, help="faces-multi folder")
    ap.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS, help="photos-dev folder (faces for the composites)")
    ap.add_argument("--composites", type=int, default=8, help="crowd and crowd-dim pictures each (default 8)")
    ap.add_argument("--seed", type=int, default=0, help="composite seed (default 0)")
    ap.add_argument("--runs", type=int, default=50, help="timed calls per frame (default 50; 0: no timing)")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time by the thread's CPU time rather than the wall clock (a busy machine)")
    ap.add_argument("--threads", type=int, default=1, help="threads for OpenCV, dlib and ONNX Runtime (default 1)")
    ap.add_argument("--per-picture", action="store_true", help="also print faces found per picture")
    ap.add_argument("--sweep", action="store_true", help="only: faces found by one BlazeFace pass per face "
                    "size in its 128 px input")
    args = ap.parse_args(argv)

    pin_threads(args.threads)
    if args.sweep:
        print(markdown_table(["face box side in the 128 px input", "found"], size_sweep(args.photos)))
        return 0
    from emolens.faces.detect import get_detector, list_detectors

    pictures = faces_multi_pictures(args.faces_multi)
    dogs = next(p.image for p in pictures if p.group == "dogs")
    pictures += composite_pictures(args.photos, dogs, per_group=args.composites, seed=args.seed)
    crowd = next(p for p in composite_pictures(args.photos, None, per_group=1, seed=args.seed + 1,
                                               counts=(8, 8)) if p.group == "crowd")
    from emolens.testing.clips import background
    from frame_timing import make_frame

    empty = background((640, 480), seed=12345)
    one_face = make_frame(args.photos / "images" / "Aaron_Guiel_0001.jpg", 220)

    groups = list(dict.fromkeys(p.group for p in pictures))
    recall_rows, group_rows, picture_rows = [], [], []
    for spec in args.detector or list(list_detectors()):
        name, options = parse_detector(spec)
        detector = get_detector(name, **options)
        scores, boxes_of = evaluate(detector, pictures)
        total = Score()
        for s in scores.values():
            total.found += s.found
        labelled_false = [n for g, s in scores.items() if g != "voc" for n in s.false[g]]
        row = [spec, _fraction(total.recall())]
        row += [_fraction(total.recall(lo, hi)) for _, lo, hi in SIZE_BINS]
        row += [f"{statistics.fmean(labelled_false):.2f}", sum(scores["dogs"].false["dogs"]),
                f"{statistics.fmean(scores['voc'].false['voc']):.2f}"]
        video, _ = evaluate(detector, pictures, retry=False)
        video_total = Score()
        for s in video.values():
            video_total.found += s.found
        video_false = [n for g, s in video.items() if g != "voc" for n in s.false[g]]
        row += [_fraction(video_total.recall()), f"{statistics.fmean(video_false):.2f}"]
        if args.runs:
            clock = time.thread_time if args.cpu_time else time.perf_counter
            row += [f"{frame_ms(detector, f, args.runs, clock=clock):.1f}" for f in (one_face, crowd.image, empty)]
            row.append(f"{frame_ms(detector, crowd.image, args.runs, retry=None, clock=clock):.1f}")
        recall_rows.append(row)
        group_rows.append([spec] + [_fraction(scores[g].recall()) if scores[g].found else
                                    f"{sum(scores[g].false[g])} false" for g in groups])
        if args.per_picture:
            for p in pictures:
                hit, false = match(p.faces, boxes_of[p.name])
                picture_rows.append([spec, p.name, f"{sum(hit)}/{len(hit)}", false])
    header = ["detector", "recall", *(f"{label} px" for label, _, _ in SIZE_BINS),
              "false / picture (exact sets)", "false on dogs.jpg", "false / voc picture (upper bound)",
              "recall as video frames", "false / picture as video frames"]
    if args.runs:
        header += ["face ms", "crowd ms", "empty ms", "photo ms"]
    faces = sum(len(p.faces) for p in pictures)
    clock = "thread CPU time" if args.cpu_time else "wall clock"
    print(f"{len(pictures)} pictures, {faces} faces; IoU >= {MATCH_IOU} or centre inside; times: {clock}\n")
    print(markdown_table(header, recall_rows))
    print()
    print(markdown_table(["detector", *groups], group_rows))
    if picture_rows:
        print()
        print(markdown_table(["detector", "picture", "found", "false"], picture_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
