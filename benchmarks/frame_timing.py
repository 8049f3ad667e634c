"""Whole-pipeline time on one 640x480 frame with one face, and each stage's share.

    python benchmarks/frame_timing.py                     # default detector, 200 runs, 2 threads
    python benchmarks/frame_timing.py -d haar -d dlib --runs 300 --threads 1

The frame is a photos-dev portrait (or --image) placed in a 640x480 grey scene at a
webcam-like size (--face-size px). Stages, as Recognizer.locate/classify time them:
convert (BGR -> grey), detect, landmarks, align (crop + resize), classify (ONNX
Runtime). Medians over --runs after warm-up; threads pinned. Target: <= 10 ms per frame.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_PHOTOS, REPO, markdown_table, pin_threads  # noqa: E402

STAGES = ("convert", "detect", "landmarks", "align", "classify")


def make_frame(image: Path, face_size: int):
    import cv2
    import numpy as np

    face = cv2.imread(str(image))
    if face is None:
        raise SystemExit(f"{image}: cannot be read")
    face = cv2.resize(face, (face_size, face_size), interpolation=cv2.INTER_AREA)
    frame = np.full((480, 640, 3), 110, np.uint8)
    cv2.randn(frame, (110, 110, 110), (25, 25, 25))
    frame = cv2.GaussianBlur(frame, (0, 0), 3)
    y, x = (480 - face_size) // 2, (640 - face_size) // 2
    frame[y:y + face_size, x:x + face_size] = face
    return frame


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-d", "--detector", action="append", help="detector name (repeat; default: haar, dlib, dlib+haar)")
    ap.add_argument("--model", type=Path, default=None, help="exported .onnx model (default: the shipped one)")
    ap.add_argument("--image", type=Path, default=None, help="face picture to place in the frame "
                    "(default: a photos-dev portrait, else examples/astronaut.jpg)")
    ap.add_argument("--face-size", type=int, default=220, help="side of the pasted face picture in px (default 220)")
    ap.add_argument("--detect-side", type=int, default=None,
                    help="longest side the detector runs on (default: the Recognizer's)")
    ap.add_argument("--no-align", action="store_true", help="box crop, no landmarks")
    ap.add_argument("--runs", type=int, default=200, help="timed runs per detector (default 200)")
    ap.add_argument("--warmup", type=int, default=10, help="untimed runs first (default 10)")
    ap.add_argument("--threads", type=int, default=2, help="threads for OpenCV and ONNX Runtime (default 2)")
    args = ap.parse_args(argv)

    pin_threads(args.threads)
    from emolens.recognize import Recognizer

    image = args.image
    if image is None:
        candidate = DEFAULT_PHOTOS / "images" / "Aaron_Guiel_0001.jpg"
        image = candidate if candidate.is_file() else REPO / "examples" / "astronaut.jpg"
    frame = make_frame(image, args.face_size)
    table = []
    for name in args.detector or ["haar", "dlib", "dlib+haar"]:
        options = {} if args.detect_side is None else {"detect_side": args.detect_side}
        if args.no_align:
            options.update(align=False, landmarks=False)
        rec = Recognizer(detector=name, model=args.model, threads=args.threads, **options)
        for _ in range(args.warmup):
            rec.analyze(frame)
        per_stage = {s: [] for s in STAGES}
        totals, found = [], 0
        for _ in range(args.runs):
            t = time.perf_counter()
            faces = rec.analyze(frame)
            totals.append(time.perf_counter() - t)
            found += len(faces) == 1
            for s in STAGES:
                per_stage[s].append(getattr(rec.times, s))
        med = {s: statistics.median(v) * 1e3 for s, v in per_stage.items()}
        total = statistics.median(totals) * 1e3
        stage_sum = sum(med.values()) or 1.0
        table.append([name, f"{total:.2f}", *(f"{med[s]:.2f} ({med[s] / stage_sum:.0%})" for s in STAGES),
                      f"{found}/{args.runs}", "yes" if total <= 10 else "no"])
    print(f"640x480 frame, one {args.face_size}px face; threads={args.threads}; median of {args.runs} runs; "
          f"ms (share of the stage sum)\n")
    print(markdown_table(["detector", "total ms", *STAGES, "one face found", "<= 10 ms"], table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
