"""Training throughput of each architecture on this CPU (forward + backward + SGD step).

    python benchmarks/train_speed.py [--nets emonet "emonet:width=40" vgg_compact ...] [--batch 128]
        [--threads 2] [--steps 6] [--compile]

Random 48x48 batches, channels-last, fp32 and (where the CPU has native bf16) bf16
autocast. Prints parameters, images/s and the implied minutes per FER2013 epoch (28,697 rows).
Nets are names or ``net:key=value,...`` specs (as in net_budget.py). ``--compile`` adds each net
under ``torch.compile`` (its one-off compile time printed apart, left out of the median).
"""

from __future__ import annotations

import argparse
import time

from _common import markdown_table, parse_spec

FER2013_TRAIN_ROWS = 28_697


def median_seconds(step, steps: int) -> float:
    """Median wall time of ``step()`` over ``steps`` calls, the first (warm-up) left out."""
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    rest = sorted(times[1:])
    return rest[len(rest) // 2]


def train_images_per_second(net, batch: int = 128, steps: int = 6, bf16: bool = False, compiled: bool = False) -> float:
    """Median training throughput of ``net`` (forward + backward + SGD step) on random faces;
    ``compiled`` runs the forward through ``torch.compile`` (compiled in a first, untimed step)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    net = net.to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 1, 48, 48).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (batch,))
    forward = torch.compile(net) if compiled else net

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits, _ = forward(x)
        loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    if compiled:
        t = time.perf_counter()
        step()
        print(f"torch.compile: first step {time.perf_counter() - t:.0f} s", flush=True)
    return batch / median_seconds(step, steps)


def teacher_ms_per_image(net, batch: int = 128, steps: int = 6, bf16: bool = False) -> float:
    """Median time per image of ``net`` as an online teacher (the training loop's ``OnlineTeacher``)."""
    import torch

    from emolens.training.teachers import OnlineTeacher

    teacher = OnlineTeacher([net], bf16=bf16)
    x = torch.randn(batch, 1, 48, 48)
    return 1000 * median_seconds(lambda: teacher(x), steps) / batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", nargs="*", default=None, help="architectures (default: all registered)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--compile", action="store_true", help="also time each net under torch.compile")
    args = ap.parse_args()
    import torch

    from emolens.training.loop import cpu_has_native_bf16
    from emolens.training.nets import count_parameters, create_net, list_nets

    torch.set_num_threads(args.threads)
    modes = [False] + ([True] if cpu_has_native_bf16() else [])
    rows = []
    for spec in args.nets or list_nets():
        name, kwargs = parse_spec(spec)
        for bf16 in modes:
            for compiled in [False] + [True] * args.compile:
                net = create_net(name, **kwargs)
                ips = train_images_per_second(net, args.batch, args.steps, bf16, compiled)
                rows.append([spec, f"{count_parameters(net) / 1e6:.2f} M", "bf16" if bf16 else "fp32",
                             "torch.compile" if compiled else "eager", f"{ips:.0f}", f"{FER2013_TRAIN_ROWS / ips / 60:.1f}"])
    print(markdown_table(["net", "parameters", "precision", "mode", "images/s", "min per FER2013 epoch"], rows))
    print(f"\nbatch {args.batch}, {args.threads} threads, native bf16: {cpu_has_native_bf16()}")


if __name__ == "__main__":
    main()
