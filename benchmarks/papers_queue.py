"""The paper runs still to train (issue 28), in the order this machine should train them, one at a time.

    python benchmarks/papers_queue.py                 # each run: status and command, in queue order
    python benchmarks/papers_queue.py --run [--wait] [--short] [--record docs]
                                      # train every unfinished run in turn (resumes), exporting
                                      # (and recording) each finished one
    python benchmarks/papers_queue.py --record docs   # record every run finished here, at once

Every recipe of ``recipes/papers/`` (and ``liu/``) is a run in ``runs/papers/NAME`` (Liu's cells
in ``runs/papers/liu/NAME``), as the "Papers reproduced" table's commands say. Where the CPU has
avx512_bf16 the 50-epoch runs come first (0.5-3.5 h each in bf16, about 4x that in fp32), then
the 15-epoch ones; without bf16 only the 15-epoch ones are queued (``--all`` queues the long ones
too); ``--short`` queues only those even with bf16. A run is done when its ``log.jsonl`` holds as
many epochs as its recipe asks, or when its full log is committed as
``docs/training-log-NAME.jsonl`` (``runs/`` does not survive a new machine; the committed log does,
and ``benchmarks/papers_table.py`` reads it too).

``--run`` trains each unfinished run in queue order with ``nice -n 10 emolens train --recipe R
--out OUT`` (resuming from ``OUT/last.pt``), its output appended to ``OUT.log``; Ctrl-C stops the
run in hand (the epochs done are kept) and the queue. One heavy job at a time: it will not start
while another ``emolens train`` runs, unless ``--wait`` (then it waits for that one to end).

A finished run without an exported model is exported next, before any other training (unless
``--no-export``): ``benchmarks/leaderboard.py OUT`` (best.pt to ``OUT/NAME.onnx`` with its card,
measured on PublicTest), with ``--weights float32`` when float16 weights move the outputs past the
export's bound; its output goes to ``OUT.log`` too. So a session that ends between the two loses
nothing: the next ``--run`` exports first.

``--record docs`` copies a finished run's ``log.jsonl``, ``curves.png`` and exported model card to
``docs/training-log-NAME.jsonl``, ``docs/training-curves-NAME.png`` and
``docs/model-card-NAME.json``: commit them, and the run is done on every later machine and keeps its
row in ``benchmarks/papers_table.py`` (with the card's TTA and FER+ figures).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from _common import REPO
from papers_table import DOCS, LIU_CELLS, LIU_CHECKS, PAPERS, exported_card, read_run, recorded_run

RECIPES = REPO / "recipes" / "papers"
LONG_EPOCHS = 20        # more epochs than this: a run for a bf16 machine


@dataclass(frozen=True)
class QueuedRun:
    name: str
    recipe: Path
    out: Path
    epochs: int
    done: int            # epochs in its log.jsonl
    recorded: int = 0    # epochs in docs/training-log-NAME.jsonl (committed when it finished elsewhere)

    @property
    def finished(self) -> bool:
        return self.trained or self.recorded >= self.epochs

    @property
    def trained(self) -> bool:
        """Finished in its run folder on this machine (so it can be exported)."""
        return self.done >= self.epochs

    @property
    def long(self) -> bool:
        return self.epochs > LONG_EPOCHS

    @property
    def exported(self) -> bool:
        """An export of its best.pt made after it (the card papers_table shows and --record copies)."""
        return exported_card(self.out, self.name) is not None

    def status(self) -> str:
        if self.trained:
            return "done, exported" if self.exported else "done, not exported"
        if self.finished:
            return "done, log in docs/"
        return f"{self.done} of {self.epochs} epochs" if self.done else "not started"

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
    long recipes, then Liu's cells in the grid's order, its net under our recipe and the grid's checks."""
    found = {p.stem: p for p in sorted(RECIPES.rglob("*.toml"))}
    first = [n for row in PAPERS if row.net != "liu_cnn" for n in (row.theirs, row.ours)]
    liu = list(LIU_CELLS) + [row.ours for row in PAPERS if row.net == "liu_cnn"] + list(LIU_CHECKS)
    names = [n for n in first if n in found]
    names += [n for n in found if n not in names and n not in liu]
    names += [n for n in liu if n in found and n not in names]
    return [found[n] for n in names]


def queue(runs: Path, bf16: bool, everything: bool = False, short: bool = False,
          docs: Path | None = None) -> list[QueuedRun]:
    """The paper runs in training order for this machine, finished ones included (``status``):
    only the short ones without bf16 (unless ``everything``) or with ``short``. A run whose full log
    is committed in ``docs`` (``main`` passes ``DOCS``) is finished though this machine has no run folder of it."""
    out = []
    for recipe in recipe_order():
        name = recipe.stem
        epochs = int(tomllib.loads(recipe.read_text())["train"]["epochs"])
        folder = runs / "liu" / name if recipe.parent.name == "liu" else runs / name
        run = read_run(folder)                  # why it is not a run (a str) when it has not started
        recorded = recorded_run(name, docs) if docs is not None else None
        out.append(QueuedRun(name, recipe, folder, epochs, 0 if isinstance(run, str) else len(run.log),
                             len(recorded.log) if recorded else 0))
    if short or not (bf16 or everything):
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


def export(run: QueuedRun) -> int:
    """``benchmarks/leaderboard.py OUT`` at low priority (float32 weights when float16 is refused),
    output appended to ``OUT.log``; the last exit code."""
    with open(run.out.with_name(run.out.name + ".log"), "a") as log:
        for weights in ([], ["--weights", "float32"]):
            argv = ["nice", "-n", "10", sys.executable, str(REPO / "benchmarks" / "leaderboard.py"), str(run.out),
                    *weights]
            log.write(f"$ {' '.join(argv[3:])}\n")
            log.flush()
            code = subprocess.run(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT).returncode
            if code == 0:
                break
    return code


def record(run: QueuedRun, docs: Path) -> list[Path]:
    """Copy a run trained here into ``docs`` so it outlives the machine: ``training-log-NAME.jsonl``,
    ``training-curves-NAME.png`` and, when exported, ``model-card-NAME.json``; the files written."""
    docs.mkdir(parents=True, exist_ok=True)
    written = []
    for src, dst in ((run.out / "log.jsonl", docs / f"training-log-{run.name}.jsonl"),
                     (run.out / "curves.png", docs / f"training-curves-{run.name}.png")):
        if src.is_file():
            shutil.copyfile(src, dst)
            written.append(dst)
    if (card := exported_card(run.out, run.name)) is not None:
        dst = docs / f"model-card-{run.name}.json"
        dst.write_text(json.dumps(card, indent=2) + "\n")
        written.append(dst)
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, default=REPO / "runs" / "papers", help="run folders (default runs/papers)")
    ap.add_argument("--run", action="store_true", help="train the unfinished runs in turn")
    ap.add_argument("--wait", action="store_true", help="with --run: wait for another emolens train to end first")
    ap.add_argument("--all", action="store_true", help="queue the 50-epoch runs without bf16 too")
    ap.add_argument("--short", action="store_true",
                    help="only the 15-epoch runs, even with bf16 (a session too short for a 50-epoch run)")
    ap.add_argument("--record", type=Path, metavar="DIR", default=None,
                    help="copy each run finished here (log, curves, exported model card) into DIR, e.g. docs: "
                         "with --run after each export, else at once for every finished run")
    ap.add_argument("--no-export", dest="export", action="store_false",
                    help="with --run: do not export finished runs (benchmarks/leaderboard.py)")
    args = ap.parse_args()
    bf16 = has_bf16()
    runs = queue(args.runs, bf16, args.all, args.short, DOCS)
    print(f"CPU {'with' if bf16 else 'without'} avx512_bf16: "
          + ("15-epoch runs only (--short)" if args.short else "50-epoch runs first" if bf16
             else "15-epoch runs only" + (" (and, --all, the long ones)" if args.all else "")))
    for r in runs:
        print(f"  {r.name:34} {r.status():20} {' '.join(r.command())}")
    todo = [r for r in runs if not r.finished]
    if args.record is not None and not args.run:
        for r in runs:
            if r.trained:
                for path in record(r, args.record):
                    print(f"recorded {shown(path)}")
    if not args.run:
        unexported = sum(r.trained and not r.exported for r in runs)
        print(f"{len(todo)} to train, {unexported} to export; --run trains them in this order and exports each")
        return
    while (busy := other_training()):
        if not args.wait:
            raise SystemExit(f"emolens train is running already (pid {', '.join(map(str, busy))}): one heavy job at "
                             "a time; pass --wait to start when it ends")
        time.sleep(30)
    trained: set[str] = set()
    exported: set[str] = set()
    while True:
        runs = queue(args.runs, bf16, args.all, args.short, DOCS)  # fresh: a run may have ended
        if args.export and (ready := [r for r in runs if r.trained and not r.exported and r.name not in exported]):
            r = ready[0]
            exported.add(r.name)
            print(f"exporting {r.name}, log {shown(r.out)}.log", flush=True)
            if export(r) != 0:
                print(f"{r.name}: the export failed; see {shown(r.out)}.log (the queue goes on)", flush=True)
            if args.record is not None:
                print(f"recorded {', '.join(shown(p) for p in record(r, args.record))}", flush=True)
            continue
        if not (todo := [r for r in runs if not r.finished]):
            break
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
