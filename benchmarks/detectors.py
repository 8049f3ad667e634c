"""Face detector recall and speed on photos-dev: is a face found, and how fast.

    python benchmarks/detectors.py                 # all registered detectors
    python benchmarks/detectors.py -d haar -d dlib --limit 20
    python benchmarks/detectors.py -d blazeface -d "blazeface box=raw" --landmarks

A photo counts as found when the detector returns at least one box (every photos-dev
picture holds one face). Time is per picture, detection only (the picture already
decoded and grey), median and mean. A detector name may carry options after it
(``"blazeface box=raw min_score=0.6"``).

--landmarks adds how well each detector's box suits dlib's 68-point shape predictor,
which was trained on dlib HOG boxes: on the photos where dlib HOG finds a face, the
mean distance between the landmarks from the detector's box and those from dlib's box,
over the inter-ocular distance (median, 95th percentile, share over 0.1 = a visibly
different fit). The predictor is given each detector's whole box (``Detection.full_box``),
as the Recognizer does.

--edge measures what that whole box is worth on the photos where the box reaches past the
picture's edge: the landmarks fitted on the clipped box and on the whole box, against the
fit on the photo padded by 200 px of replicated border (where no box is cut). Prints the
error statistics of both (mean point distance / inter-ocular distance).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_PHOTOS, markdown_table, parse_detector, photo_labels, pin_threads  # noqa: E402


def landmark_error(landmarks, expected) -> float:
    """Mean distance between two 68-point fits over the inter-ocular distance of ``expected``."""
    import numpy as np

    from emolens.faces.landmarks import eye_centres

    inter_ocular = float(np.linalg.norm(np.subtract(*eye_centres(expected))))
    return float(np.linalg.norm(landmarks - expected, axis=1).mean()) / inter_ocular


def landmark_errors(greys, boxes, reference_boxes) -> list[float]:
    """Per photo with both boxes: mean landmark distance (box vs reference box) / inter-ocular distance."""
    from emolens.faces.landmarks import LandmarkPredictor

    predictor = LandmarkPredictor()
    errors = []
    for grey, box, ref in zip(greys, boxes, reference_boxes):
        if box is None or ref is None:
            continue
        errors.append(landmark_error(predictor(grey, box), predictor(grey, ref)))
    return errors


def edge_errors(greys, detections, pad: int = 200) -> tuple[list[float], list[float]]:
    """Photos whose box is cut by the edge: landmark errors of the clipped and of the whole box
    against the whole box's fit on the photo padded by ``pad`` px (see the module docstring)."""
    import cv2

    from emolens.faces.landmarks import LandmarkPredictor

    predictor = LandmarkPredictor()
    clipped, whole = [], []
    for grey, d in zip(greys, detections):
        if d is None or d.box == d.full_box:
            continue
        padded = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x, y, w, h = d.full_box
        expected = predictor(padded, (x + pad, y + pad, w, h)) - pad
        for box, out in ((d.box, clipped), (d.full_box, whole)):
            out.append(landmark_error(predictor(grey, box), expected))
    return clipped, whole


def error_stats(errors: list[float]) -> tuple[int, float, float, int]:
    """Photos, median, 95th percentile and photos over 0.1 of landmark errors."""
    errors = sorted(errors)
    p95 = errors[min(len(errors) - 1, int(0.95 * len(errors)))]
    return len(errors), statistics.median(errors), p95, sum(e > 0.1 for e in errors)


def _edge_cells(errors: list[float]) -> list:
    n, median, p95, over = error_stats(errors)
    return [n, f"{median:.4f}", f"{p95:.4f}", f"{over}"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS, help="photos-dev folder (labels.csv, images/)")
    ap.add_argument("-d", "--detector", action="append", help="detector name (repeat; default: all registered)")
    ap.add_argument("--max-side", type=int, default=640, help="detect on a copy at most this large (default 640)")
    ap.add_argument("--no-retry", action="store_true", help="disable the padded second chance when nothing is found")
    ap.add_argument("--limit", type=int, default=0, help="only the first N photos (0 = all)")
    ap.add_argument("--threads", type=int, default=1, help="threads for OpenCV/dlib (default 1)")
    ap.add_argument("--misses", action="store_true", help="list the photos each detector missed")
    ap.add_argument("--landmarks", action="store_true",
                    help="also measure landmark agreement with dlib HOG boxes (see above)")
    ap.add_argument("--edge", action="store_true",
                    help="also measure landmarks on boxes cut by the picture's edge, clipped vs whole (see above)")
    args = ap.parse_args(argv)

    pin_threads(args.threads)
    import cv2

    from emolens.faces.detect import get_detector, list_detectors

    rows = photo_labels(args.photos)
    if args.limit:
        rows = rows[: args.limit]
    greys = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p, _ in rows]
    names = args.detector or list(list_detectors())
    reference = None
    if args.landmarks:
        dlib_hog = get_detector("dlib", max_side=args.max_side, retry_pad=0.0)
        reference = [next(iter(dlib_hog(g)), None) for g in greys]
        reference = [None if d is None else d.full_box for d in reference]
    table, edge_table = [], []
    for spec in names:
        name, options = parse_detector(spec)
        options = {"max_side": args.max_side, **options}
        if args.no_retry:
            options["retry_pad"] = 0.0
        det = get_detector(name, **options)
        det(greys[0])  # warm-up
        times, found, multi, missed, first = [], 0, 0, [], []
        for (path, _), grey in zip(rows, greys):
            t = time.perf_counter()
            boxes = det(grey)
            times.append(time.perf_counter() - t)
            found += bool(boxes)
            multi += len(boxes) > 1
            first.append(boxes[0] if boxes else None)
            if not boxes:
                missed.append(path.name)
        n = len(rows)
        row = [spec, n, f"{found / n:.1%}", multi, f"{statistics.median(times) * 1e3:.1f}",
               f"{statistics.fmean(times) * 1e3:.1f}"]
        if reference is not None:
            n, median, p95, over = error_stats(
                landmark_errors(greys, [None if d is None else d.full_box for d in first], reference))
            row += [n, f"{median:.4f}", f"{p95:.4f}", f"{over / n:.1%}"]
        table.append(row)
        if args.edge:
            clipped, whole = edge_errors(greys, first)
            if clipped:
                edge_table += [[spec, "clipped", *_edge_cells(clipped)], [spec, "whole", *_edge_cells(whole)]]
        if args.misses and missed:
            print(f"{spec} missed: {' '.join(missed)}", file=sys.stderr)
    header = ["detector", "photos", "face found", "more than 1 box", "median ms", "mean ms"]
    if reference is not None:
        header += ["landmark photos", "landmark error median", "p95", "> 0.1"]
    print(markdown_table(header, table))
    if args.edge:
        print()
        print(markdown_table(["detector", "box given to the landmarks", "photos with a cut box", "error median",
                              "p95", "photos > 0.1"], edge_table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
