"""Whole-pipeline time on one 640x480 frame with one face, and each stage's share.

    python benchmarks/frame_timing.py                     # blazeface, dlib, dlib+haar; 200 runs, 2 threads
    python benchmarks/frame_timing.py -d haar -d dlib --runs 300 --threads 1
    python benchmarks/frame_timing.py --face-size 0       # a frame with no face: what a miss costs

The frame is a photos-dev portrait (or --image) placed in a 640x480 grey scene at a
webcam-like size (--face-size px), detected as video detects a frame (``retry=False``: no
padded second chance, and BlazeFace's small-face pass only when its first pass is sure of
no face; photos are searched harder, benchmarks/detector_recall.py). Stages, as Recognizer.locate/classify time them:
convert (BGR -> grey), detect, landmarks, align (crop + resize), classify (ONNX
Runtime). Medians over --runs after warm-up; threads pinned; the detectors take turns
frame by frame, so background load slows them alike. Target: <= 10 ms per frame.
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

    frame = np.full((480, 640, 3), 110, np.uint8)
    cv2.randn(frame, (110, 110, 110), (25, 25, 25))
    frame = cv2.GaussianBlur(frame, (0, 0), 3)
    if face_size <= 0:
        return frame
    face = cv2.imread(str(image))
    if face is None:
        raise SystemExit(f"{image}: cannot be read")
    face = cv2.resize(face, (face_size, face_size), interpolation=cv2.INTER_AREA)
    y, x = (480 - face_size) // 2, (640 - face_size) // 2
    frame[y:y + face_size, x:x + face_size] = face
    return frame


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-d", "--detector", action="append", help="detector name (repeat; default: blazeface, dlib, dlib+haar)")
    ap.add_argument("--model", type=Path, default=None, help="exported .onnx model (default: the shipped one)")
    ap.add_argument("--image", type=Path, default=None, help="face picture to place in the frame "
                    "(default: a photos-dev portrait, else examples/astronaut.jpg)")
    ap.add_argument("--face-size", type=int, default=220, help="side of the pasted face picture in px (default 220; 0: no face)")
    ap.add_argument("--detect-side", type=int, default=None,
                    help="longest side the detector runs on (default: the Recognizer's)")
    ap.add_argument("--no-align", action="store_true", help="box crop, no landmarks")
    ap.add_argument("--runs", type=int, default=200, help="timed runs per detector (default 200)")
    ap.add_argument("--warmup", type=int, default=10, help="untimed runs first (default 10)")
    ap.add_argument("--threads", type=int, default=2, help="threads for OpenCV and ONNX Runtime (default 2)")
    args = ap.parse_args(argv)

    pin_threads(args.threads)
    from emolens.faces.detect import get_detector
    from emolens.recognize import Recognizer

    image = args.image
    if image is None:
        candidate = DEFAULT_PHOTOS / "images" / "Aaron_Guiel_0001.jpg"
        image = candidate if candidate.is_file() else REPO / "examples" / "astronaut.jpg"
    frame = make_frame(image, args.face_size)
    names = args.detector or ["blazeface", "dlib", "dlib+haar"]
    options = {} if args.detect_side is None else {"detect_side": args.detect_side}
    if args.no_align:
        options.update(align=False, landmarks=False)
    side = args.detect_side or 640  # the Recognizer's default detect_side
    recognizers = [Recognizer(detector=get_detector(name, max_side=side, retry=False), model=args.model,
                              threads=args.threads, **options) for name in names]
    for rec in recognizers:
        for _ in range(args.warmup):
            rec.analyze(frame)
    per_stage = [{s: [] for s in STAGES} for _ in names]
    totals = [[] for _ in names]
    found = [0 for _ in names]
    expected = 1 if args.face_size > 0 else 0
    for _ in range(args.runs):  # detectors take turns, so a busy machine slows them alike
        for i, rec in enumerate(recognizers):
            t = time.perf_counter()
            faces = rec.analyze(frame)
            totals[i].append(time.perf_counter() - t)
            found[i] += len(faces) == expected
            for s in STAGES:
                per_stage[i][s].append(getattr(rec.times, s))
    table = []
    for i, name in enumerate(names):
        med = {s: statistics.median(v) * 1e3 for s, v in per_stage[i].items()}
        total = statistics.median(totals[i]) * 1e3
        stage_sum = sum(med.values()) or 1.0
        table.append([name, f"{total:.2f}", *(f"{med[s]:.2f} ({med[s] / stage_sum:.0%})" for s in STAGES),
                      f"{found[i]}/{args.runs}", "yes" if total <= 10 else "no"])
    what = f"one {args.face_size}px face" if args.face_size > 0 else "no face"
    print(f"640x480 frame, {what}; threads={args.threads}; median of {args.runs} runs; "
          f"ms (share of the stage sum)\n")
    print(markdown_table(["detector", "total ms", *STAGES, "faces as expected", "<= 10 ms"], table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
