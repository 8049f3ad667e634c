"""Latency (batch 1) and throughput (batch 64) of an exported model alone, through ONNX Runtime.

    python benchmarks/model_speed.py [--model PATH] [--threads 2] [--runs 500]

Prints a markdown table: median and p90 ms per face at batch 1, faces/s at batch 64,
with the mirror-TTA cost, model size and parameters from the model card.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from _common import markdown_table, pin_threads


def timed(fn, runs: int) -> np.ndarray:
    for _ in range(max(10, runs // 10)):
        fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return np.asarray(out) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None, help="exported .onnx (default: the shipped model)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=500)
    args = ap.parse_args()
    pin_threads(args.threads)
    from emolens.runtime import EmotionModel

    model = EmotionModel(args.model, threads=args.threads)
    s = model.input_size
    rng = np.random.default_rng(0)
    one = rng.integers(0, 256, (1, s, s), dtype=np.uint8)
    batch = rng.integers(0, 256, (64, s, s), dtype=np.uint8)
    b1 = timed(lambda: model(one), args.runs)
    b1_tta = timed(lambda: model.predict_tta(one), args.runs)
    b64 = timed(lambda: model(batch), max(20, args.runs // 10))
    card = model.card
    rows = [[
        model.path.name, card.get("architecture", "?"), f"{card.get('parameters', 0) / 1e6:.2f} M",
        f"{model.path.stat().st_size / 1e6:.2f} MB",
        f"{np.median(b1):.3f}", f"{np.percentile(b1, 90):.3f}", f"{np.median(b1_tta):.3f}",
        f"{64 / (np.median(b64) / 1000):.0f}",
    ]]
    print(markdown_table(["model", "architecture", "parameters", "ONNX size", "batch-1 ms (median)",
                          "batch-1 ms (p90)", "batch-1 + mirror TTA ms", "faces/s at batch 64"], rows))
    print(f"\nthreads={args.threads}, runs={args.runs}, onnxruntime CPUExecutionProvider")


if __name__ == "__main__":
    main()
