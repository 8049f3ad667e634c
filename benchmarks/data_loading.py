"""How long loading FER2013 takes (the whole training split into one uint8 array).

    python benchmarks/data_loading.py [--data ../shared/datasets/fer2013/fer2013.csv.gz] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _common import FER, markdown_table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=FER / "fer2013.csv.gz")
    ap.add_argument("--ferplus", type=Path, default=FER / "fer2013new.csv")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from emolens.training.data import load_dataset

    rows = []
    for split, ferplus in (("Training", None), ("Training", args.ferplus), ("PublicTest", args.ferplus)):
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            ds = load_dataset(args.data, split, ferplus)
            times.append(time.perf_counter() - t)
        rows.append([args.data.name, split, "yes" if ferplus else "no", len(ds),
                     f"{ds.images.nbytes / 1e6:.1f} MB", f"{min(times):.2f}", f"{sorted(times)[len(times) // 2]:.2f}"])
    print(markdown_table(["file", "split", "FER+ votes", "rows", "array", "best s", "median s"], rows))


if __name__ == "__main__":
    main()
