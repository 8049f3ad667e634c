"""Which architectures fit the shipped model's budget (<= 10 MB file, <= 3 ms per face at batch 1)?

    python benchmarks/net_budget.py emonet:width=40 emonet:width=56 "emonet:width=40,blocks=1-2-3-2" \
        [--threads 2] [--runs 300] [--train-steps 6]

Each spec is ``net:key=value,...`` (lists as ``1-2-3-2``, booleans as true/false). For each,
an untrained net is exported the way ``emolens export`` does it (float16 and int8 weight
storage), and the script prints parameters, each file's size and its median batch-1 latency
through ONNX Runtime (the weights' values do not change the time) and, with ``--train-steps``, the
bf16 training throughput and minutes per FER2013 epoch (forward + backward + step, without
validation or augmentation) and what the net adds per training image as an online teacher
(``teacher_online``: its eval-mode forward at batch 128).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np

from _common import markdown_table, parse_spec, pin_threads
from model_speed import timed
from train_speed import FER2013_TRAIN_ROWS, teacher_ms_per_image, train_images_per_second


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("specs", nargs="+", help="net:key=value,... (e.g. emonet:width=48)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--train-steps", type=int, default=0, help="also time N bf16 training steps (0 = skip)")
    args = ap.parse_args()
    pin_threads(args.threads)
    import torch

    from emolens.model_input import InputSpec
    from emolens.runtime import EmotionModel
    from emolens.training.export import store_weights, to_onnx
    from emolens.training.loop import cpu_has_native_bf16
    from emolens.training.nets import count_parameters, create_net

    torch.set_num_threads(args.threads)
    spec_in = InputSpec()
    face = np.random.default_rng(0).integers(0, 256, (1, spec_in.size, spec_in.size), dtype=np.uint8)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.specs:
            name, kwargs = parse_spec(spec)
            try:
                net = create_net(name, **kwargs).eval()
            except (TypeError, ValueError) as exc:
                raise SystemExit(f"{spec}: {exc}")
            row = [spec, f"{count_parameters(net) / 1e6:.2f} M"]
            exported = Path(tmp) / "float32.onnx"
            to_onnx(net, spec_in, exported)  # once; each storage rewrites a copy
            for storage in ("float16", "int8"):
                path = Path(tmp) / f"{storage}.onnx"
                shutil.copyfile(exported, path)
                store_weights(path, storage)
                model = EmotionModel(path, threads=args.threads)
                ms = float(np.median(timed(lambda: model(face), args.runs)))
                row += [f"{path.stat().st_size / 1e6:.2f} MB", f"{ms:.3f}"]
            if args.train_steps:
                ips = train_images_per_second(net, 128, args.train_steps, cpu_has_native_bf16())
                teach = teacher_ms_per_image(net, 128, args.train_steps, cpu_has_native_bf16())
                row += [f"{ips:.0f}", f"{FER2013_TRAIN_ROWS / ips / 60:.2f}", f"{1000 / ips:.2f}", f"{teach:.2f}"]
            rows.append(row)
    header = ["net", "parameters", "ONNX float16", "batch-1 ms", "ONNX int8", "batch-1 ms"]
    if args.train_steps:
        header += ["train images/s", "min per FER2013 epoch", "train ms per image", "as teacher ms per image"]
    print(markdown_table(header, rows))
    print(f"\n{args.threads} threads, {args.runs} batch-1 runs; training at batch 128, "
          f"bf16: {cpu_has_native_bf16()}")


if __name__ == "__main__":
    main()
