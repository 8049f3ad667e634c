"""Fit BlazeFace's box -> dlib-box mapping: which scale and centre give dlib's landmarks.

    python benchmarks/box_calibration.py            # grid over both constants, photos-dev

dlib's 68-point shape predictor was trained on dlib HOG boxes. For each candidate
(``DLIB_BOX_SCALE``, ``DLIB_BOX_CENTRE``) of ``emolens.faces.blazeface``, the landmarks
found from BlazeFace's mapped box are compared with those found from dlib HOG's own box
on the photos where dlib finds a face (error = mean point distance / inter-ocular
distance). Prints the grid as a markdown table, best mean first; the shipped constants
are marked. Errors are capped at 0.2 so that the few photos where dlib's box is clipped
by the picture's border do not decide the fit.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_PHOTOS, markdown_table, photo_labels, pin_threads  # noqa: E402
from detectors import landmark_errors  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS, help="photos-dev folder (labels.csv, images/)")
    ap.add_argument("--scales", type=float, nargs="+", default=[0.80, 0.85, 0.90, 0.95, 1.00])
    ap.add_argument("--centres", type=float, nargs="+", default=[0.30, 0.35, 0.40, 0.45, 0.50])
    args = ap.parse_args(argv)

    pin_threads(1)
    import cv2

    from emolens.faces import blazeface
    from emolens.faces.detect import get_detector

    greys = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p, _ in photo_labels(args.photos)]
    reference = [next((d.box for d in get_detector("dlib", retry_pad=0.0)(g)), None) for g in greys]
    detector = get_detector("blazeface")
    shipped = (blazeface.DLIB_BOX_SCALE, blazeface.DLIB_BOX_CENTRE)
    table = []
    try:
        for scale, centre in itertools.product(args.scales, args.centres):
            blazeface.DLIB_BOX_SCALE, blazeface.DLIB_BOX_CENTRE = scale, centre
            boxes = [next((d.box for d in detector(g)), None) for g in greys]
            errors = sorted(min(e, 0.2) for e in landmark_errors(greys, boxes, reference))
            table.append([scale, centre, statistics.fmean(errors), statistics.median(errors),
                          errors[int(0.95 * (len(errors) - 1))], len(errors)])
    finally:
        blazeface.DLIB_BOX_SCALE, blazeface.DLIB_BOX_CENTRE = shipped
    table.sort(key=lambda r: r[2])
    rows = [[f"{s:.2f}", f"{c:.2f}" + (" (shipped)" if (s, c) == shipped else ""), f"{m:.4f}", f"{md:.4f}",
             f"{p:.4f}", n] for s, c, m, md, p, n in table]
    print(markdown_table(["scale", "centre", "mean error", "median", "p95", "photos"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
