"""Face detector recall and speed on photos-dev: is a face found, and how fast.

    python benchmarks/detectors.py                 # all registered detectors
    python benchmarks/detectors.py -d haar -d dlib --limit 20

A photo counts as found when the detector returns at least one box (every photos-dev
picture holds one face). Time is per picture, detection only (the picture already
decoded and grey), median and mean. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_PHOTOS, markdown_table, photo_labels, pin_threads  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS, help="photos-dev folder (labels.csv, images/)")
    ap.add_argument("-d", "--detector", action="append", help="detector name (repeat; default: all registered)")
    ap.add_argument("--max-side", type=int, default=640, help="detect on a copy at most this large (default 640)")
    ap.add_argument("--no-retry", action="store_true", help="disable the padded second chance when nothing is found")
    ap.add_argument("--limit", type=int, default=0, help="only the first N photos (0 = all)")
    ap.add_argument("--threads", type=int, default=1, help="threads for OpenCV/dlib (default 1)")
    ap.add_argument("--misses", action="store_true", help="list the photos each detector missed")
    args = ap.parse_args(argv)

    pin_threads(args.threads)
    import cv2

    from emolens.faces.detect import get_detector, list_detectors

    rows = photo_labels(args.photos)
    if args.limit:
        rows = rows[: args.limit]
    greys = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p, _ in rows]
    names = args.detector or list(list_detectors())
    table = []
    for name in names:
        options = {"max_side": args.max_side}
        if args.no_retry:
            options["retry_pad"] = 0.0
        det = get_detector(name, **options)
        det(greys[0])  # warm-up
        times, found, multi, missed = [], 0, 0, []
        for (path, _), grey in zip(rows, greys):
            t = time.perf_counter()
            boxes = det(grey)
            times.append(time.perf_counter() - t)
            found += bool(boxes)
            multi += len(boxes) > 1
            if not boxes:
                missed.append(path.name)
        n = len(rows)
        table.append([name, n, f"{found / n:.1%}", multi, f"{statistics.median(times) * 1e3:.1f}",
                      f"{statistics.fmean(times) * 1e3:.1f}"])
        if args.misses and missed:
            print(f"{name} missed: {' '.join(missed)}", file=sys.stderr)
    print(markdown_table(["detector", "photos", "face found", "more than 1 box", "median ms", "mean ms"], table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
