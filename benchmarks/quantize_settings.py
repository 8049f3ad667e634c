"""Which static-quantization settings keep a model's accuracy: each setting quantizes the same float model.

    git show ad25d2e:src/emolens/weights/emolens-default.onnx > /tmp/float.onnx
    git show ad25d2e:src/emolens/weights/emolens-default.json > /tmp/float.json
    python benchmarks/quantize_settings.py /tmp/float.onnx [--rows 1024] [--limit 0]

Settings: activation ranges (99.999th percentile or min/max over ``--rows`` seeded Training
faces) x weight range (7-bit ``reduce_range`` or full 8-bit). Each row is ``emolens quantize``
with that setting (``quantize_model``), measured on PublicTest through the runtime users run,
beside the float model on the same faces: accuracy, macro-F1, intensity RMSE, faces whose top
emotion differs from the float model's, file size and batch-1 latency (the card's, 200 runs).
The float row is the source's own numbers on the same faces. On a CPU without VNNI (AVX2 or
AVX-512 without VNNI) the full 8-bit weight range saturates.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import add_fer2013_arguments, markdown_table, pin_threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path, help="an exported float32-arithmetic .onnx model with its .json card")
    add_fer2013_arguments(ap)
    ap.add_argument("--rows", type=int, default=1024, help="calibration faces (default 1024)")
    ap.add_argument("--limit", type=int, default=0, help="first N rows of each split only (0 = all)")
    args = ap.parse_args()
    pin_threads(args.threads)
    from emolens.training.data import DatasetError
    from emolens.training.quantize import QuantizeError, quantize_model

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for ranges in ("percentile", "minmax"):
            for reduce_range in (True, False):
                out = Path(tmp) / f"{ranges}-{reduce_range}.onnx"
                try:
                    card = quantize_model(args.model, out, args.data, rows=args.rows, ferplus=args.ferplus,
                                          limit=args.limit, val_split=args.split, reduce_range=reduce_range,
                                          ranges=ranges)
                except (QuantizeError, DatasetError) as exc:
                    raise SystemExit(f"error: {exc}") from None
                v = card["validation"]
                if not rows:
                    rows.append(["float32 (source)", "", f"{100 * v['source_accuracy']:.2f}", "", "", "", "", ""])
                rows.append([ranges, "7-bit" if reduce_range else "8-bit", f"{100 * v['accuracy']:.2f}",
                             f"{v['macro_f1']:.3f}", f"{v['intensity_rmse']:.4f}", v["source_top_emotion_differs"],
                             f"{card['file_size_bytes'] / 1e6:.2f} MB", card["latency_ms_batch1"]])
                print(f"{ranges}, reduce_range={reduce_range}: {100 * v['accuracy']:.2f}%", flush=True)
    print()
    print(markdown_table(["activation ranges", "weights", f"{args.split} %", "macro-F1", "RMSE",
                          "top emotion differs", "file", "batch-1 ms"], rows))
    print(f"\n{args.model}, {args.rows} calibration faces, n={v['n']}, threads={args.threads}")


if __name__ == "__main__":
    main()
