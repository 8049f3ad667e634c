"""The paper runs still to train (issue 28), in the order this machine should train them, one at a time.

    python benchmarks/papers_queue.py                 # each run: status and command, in queue order
    python benchmarks/papers_queue.py --run [--wait]  # train every unfinished run in turn (resumes)

Every recipe of ``recipes/papers/`` (and ``liu/``) is a run in ``runs/papers/NAME`` (Liu's cells
in ``runs/papers/liu/NAME``), as the "Papers reproduced" table's commands say. Where the CPU has
avx512_bf16 the 50-epoch runs come first (1.2-3.5 h each in bf16, about 4x that in fp32), then
the 15-epoch ones; without bf16 only the 15-epoch ones are queued (``--all`` queues the long ones
too). A run is done when its ``log.jsonl`` holds as many epochs as its recipe asks.

``--run`` trains each unfinished run in queue order with ``nice -n 10 emolens train --recipe R
--out OUT`` (resuming from ``OUT/last.pt``), its output appended to ``OUT.log``; Ctrl-C stops the
run in hand (the epochs done are kept) and the queue. One heavy job at a time: it will not start
while another ``emolens train`` runs, unless ``--wait`` (then it waits for that one to end).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from _common import REPO
from papers_table import LIU_CELLS, PAPERS, read_run

RECIPES = REPO / "recipes" / "papers"
LONG_EPOCHS = 20        # more epochs than this: a run for a bf16 machine


@dataclass(frozen=True)
class QueuedRun:
    name: str
    recipe: Path
    out: Path
    epochs: int
    done: int            # epochs in its log.jsonl

    @property
    def finished(self) -> bool:
        return self.done >= self.epochs

    @property
    def long(self) -> bool:
        return self.epochs > LONG_EPOCHS

    def status(self) -> str:
        return "done" if self.finished else f"{self.done} of {self.epochs} epochs" if self.done else "not started"

    def command(self) -> list[str]:
        return ["emolens", "train", "--recipe", shown(self.recipe), "--out", shown(self.out)]


def shown(path: Path) -> str:
    """``path`` relative to the repository when inside it (the commands run from there)."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def recipe_order() -> list[Path]:
    """Every paper recipe: the papers' rows in table order (their setting, then ours), the other
    long recipes, then Liu's cells in the grid's order and the rest."""
    found = {p.stem: p for p in sorted(RECIPES.rglob("*.toml"))}
    first = [n for row in PAPERS if row.net != "liu_cnn" for n in (row.theirs, row.ours)]
    liu = list(LIU_CELLS) + [row.ours for row in PAPERS if row.net == "liu_cnn"]
    names = [n for n in first if n in found]
    names += [n for n in found if n not in names and n not in liu]
    names += [n for n in liu if n in found and n not in names]
    return [found[n] for n in names]


def queue(runs: Path, bf16: bool, everything: bool = False) -> list[QueuedRun]:
    """The paper runs in training order for this machine, finished ones included (``status``)."""
    out = []
    for recipe in recipe_order():
        name = recipe.stem
        epochs = int(tomllib.loads(recipe.read_text())["train"]["epochs"])
        folder = runs / "liu" / name if recipe.parent.name == "liu" else runs / name
        run = read_run(folder)                  # why it is not a run (a str) when it has not started
        out.append(QueuedRun(name, recipe, folder, epochs, 0 if isinstance(run, str) else len(run.log)))
    if not (bf16 or everything):
        out = [r for r in out if not r.long]
    return sorted(out, key=lambda r: not r.long) if bf16 else out


def has_bf16() -> bool:
    try:
        return "avx512_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def other_training() -> list[int]:
    """Process ids of ``emolens train`` runs (other than this process)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(proc.name) != os.getpid() and any(a.endswith(b"emolens") for a in argv) and b"train" in argv:
            pids.append(int(proc.name))
    return pids


def train(run: QueuedRun) -> int:
    """``emolens train`` for ``run`` at low priority, output appended to ``OUT.log``; its exit code."""
    emolens = Path(sys.executable).with_name("emolens")
    run.out.parent.mkdir(parents=True, exist_ok=True)
    with open(run.out.with_name(run.out.name + ".log"), "a") as log:
        argv = ["nice", "-n", "10", str(emolens if emolens.exists() else "emolens"), *run.command()[1:]]
        return subprocess.run(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT).returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, default=REPO / "runs" / "papers", help="run folders (default runs/papers)")
    ap.add_argument("--run", action="store_true", help="train the unfinished runs in turn")
    ap.add_argument("--wait", action="store_true", help="with --run: wait for another emolens train to end first")
    ap.add_argument("--all", action="store_true", help="queue the 50-epoch runs without bf16 too")
    args = ap.parse_args()
    bf16 = has_bf16()
    runs = queue(args.runs, bf16, args.all)
    print(f"CPU {'with' if bf16 else 'without'} avx512_bf16: "
          + ("50-epoch runs first" if bf16 else "15-epoch runs only" + (" (and, --all, the long ones)" if args.all else "")))
    for r in runs:
        print(f"  {r.name:34} {r.status():20} {' '.join(r.command())}")
    todo = [r for r in runs if not r.finished]
    if not args.run:
        print(f"{len(todo)} to train; --run trains them in this order")
        return
    while (busy := other_training()):
        if not args.wait:
            raise SystemExit(f"emolens train is running already (pid {', '.join(map(str, busy))}): one heavy job at "
                             "a time; pass --wait to start when it ends")
        time.sleep(30)
    trained: set[str] = set()
    while todo := [r for r in queue(args.runs, bf16, args.all) if not r.finished]:   # fresh: a run may have ended
        r = todo[0]
        if r.name in trained:
            raise SystemExit(f"{r.name}: emolens train ended before its last epoch; see {shown(r.out)}.log")
        trained.add(r.name)
        print(f"training {r.name} ({r.status()}), log {shown(r.out)}.log", flush=True)
        try:
            code = train(r)
        except KeyboardInterrupt:
            raise SystemExit(f"stopped during {r.name}; rerun to resume it from last.pt") from None
        if code != 0:
            raise SystemExit(f"{r.name}: emolens train exited with {code}; see {shown(r.out)}.log")
    print("every queued run is done")


if __name__ == "__main__":
    main()
