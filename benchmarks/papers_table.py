"""The "Papers reproduced" tables (issue 28), from the run folders of ``recipes/papers/``.

    python benchmarks/papers_table.py runs/papers/* runs/papers/liu/* [--curves docs/]

Prints three markdown tables. "Papers reproduced": one row per paper's net with the paper's
setting and number, ours under their setting, ours under our recipe (the shipped model's
schedule and augmentation) and the shipped model, each with its recipe file and command.
"Liu's ablation grid": one row per cell of ``recipes/papers/liu/``; then two of its cells
beside their repeats with a second seed and at 50 epochs (``recipes/papers/liu_*_seed1.toml``,
``liu_*_50.toml``). A run is found by the
recipe name in its ``recipe.json`` (so any ``--out`` folder works); recipes with no run folder
among the arguments are "not run yet", runs with fewer epochs in ``log.jsonl`` than their
recipe asks are shown as unfinished with their best epoch so far.

The accuracy is PublicTest (the split that selects ``best.pt``): from the card of an exported
model in the run folder when there is one newer than ``best.pt`` (``RUN/<name>.json``, which
``python benchmarks/leaderboard.py RUN`` writes, or ``RUN/<name>-<storage>.json`` with ``--weights``:
single pass and mirror TTA), else the best
epoch of ``log.jsonl``. Reads files only: no torch, no evaluation.

``--curves DIR`` copies each run's ``curves.png`` (drawn by ``emolens train`` at every epoch)
to ``DIR/training-curves-<name>.png``, as the docs' other training curves, and draws
``DIR/training-curves-liu-grid.png``: the validation accuracy of every Liu cell by epoch (and
``DIR/training-curves-liu-checks.png``: the checked cells and their repeats).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from _common import REPO, markdown_table

RECIPES = REPO / "recipes" / "papers"
DOCS = REPO / "docs"
SHIPPED = REPO / "src" / "emolens" / "weights" / "emolens-default.json"


@dataclass(frozen=True)
class PaperRow:
    paper: str
    net: str
    setting: str
    number: str
    theirs: str  # recipe name under their setting
    ours: str    # recipe name under our recipe


PAPERS = [
    PaperRow("Santhapalli et al.", "baseline_cnn",
             "Adam lr 0.001, batch 64, 50 epochs, cross-entropy; rotation, zoom, shift, flip", "62.6% FER2013 test",
             "santhapalli_baseline_cnn", "santhapalli_baseline_cnn_ours"),
    PaperRow("Santhapalli et al.", "resemotenet",
             "Adam lr 0.001, batch 64, 50 epochs, cross-entropy; rotation, zoom, shift, flip", "61.9% FER2013 test",
             "santhapalli_resemotenet", "santhapalli_resemotenet_ours"),
    PaperRow("Liu", "liu_cnn",
             "4-layer CNN, batch norm, ReLU, Adam, weight decay 1e-4, dropout, LR schedule, gradient clipping, "
             "residual blocks (ours: 15 epochs)", "about 85% validation (FER2013)",
             "liu_reference", "liu_cnn_ours"),
    PaperRow("Xu et al.", "vgg_compact",
             "compact VGG-S, softmax and sigmoid intensity heads; 7 brightness levels and blur",
             "over 80% on their own data, not FER2013", "xu_vgg_compact", "xu_vgg_compact_ours"),
]

# Liu's grid in reading order: cell recipe name -> what it changes from liu_reference
LIU_CELLS = {
    "liu_reference": "nothing (the paper's final configuration: ReLU, Adam, cosine LR, clipping, weight decay "
                     "1e-4, dropout 0.5, residual blocks)",
    "liu_act_elu": "activation ELU",
    "liu_act_tanh": "activation Tanh",
    "liu_adam_plain": "Adam before LR scheduling and clipping (constant lr, no clipping)",
    "liu_rmsprop_plain": "RMSProp before LR scheduling and clipping",
    "liu_rmsprop_sched": "RMSProp after LR scheduling and clipping",
    "liu_sgd_plain": "SGD before LR scheduling and clipping",
    "liu_sgd_sched": "SGD after LR scheduling and clipping",
    "liu_no_weight_decay": "weight decay off",
    "liu_no_dropout": "dropout off",
    "liu_no_residual": "residual blocks off (the plain 4-layer CNN)",
    "liu_plain_cnn": "all off: plain 4-layer CNN, Adam at constant lr, no weight decay, dropout or clipping",
}

# The grid checked: a repeat of a grid cell with another seed or 50 epochs -> the cell it repeats
LIU_CHECKS = {"liu_reference_seed1": "liu_reference", "liu_no_dropout_seed1": "liu_no_dropout",
              "liu_reference_50": "liu_reference", "liu_no_dropout_50": "liu_no_dropout"}


@dataclass
class Run:
    folder: Path
    name: str
    planned: int
    log: list[dict] = field(default_factory=list)
    card: dict | None = None  # an exported model's card, newer than best.pt
    recorded: bool = False    # read from docs/training-log-<name>.jsonl, not a run folder

    @property
    def done(self) -> bool:
        return len(self.log) >= self.planned

    def best(self) -> dict | None:
        return max(self.log, key=lambda e: e.get("val_accuracy", -1.0)) if self.log else None


def read_run(folder: Path) -> Run | str:
    """The run in ``folder``, or why it is not one."""
    recipe_file = folder / "recipe.json"
    if not recipe_file.is_file():
        return "not a run folder made by 'emolens train' (no recipe.json)"
    try:
        recipe = json.loads(recipe_file.read_text())
        name, planned = recipe["name"], int(recipe["train"]["epochs"])
    except (ValueError, KeyError, TypeError):
        return "its recipe.json is not one 'emolens train' wrote"
    return Run(folder, name, planned, read_log(folder / "log.jsonl"), exported_card(folder, name))


def read_log(log_file: Path) -> list[dict]:
    log = []
    if log_file.is_file():
        for line in log_file.read_text().splitlines():
            try:
                log.append(json.loads(line))
            except ValueError:
                pass  # a line cut short by an interrupted write: the epoch before it still counts
    return log


def read_card(card_file: Path) -> dict | None:
    try:
        card = json.loads(card_file.read_text())
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) and "validation" in card else None


def recorded_run(name: str, docs: Path = DOCS, recipes: Path = RECIPES) -> Run | None:
    """A finished run as committed in ``docs``: its log ``training-log-<name>.jsonl`` and, when it
    was exported, its model card ``model-card-<name>.json`` (``benchmarks/papers_queue.py --record``
    writes both; run folders live in ``runs/``, which a new machine does not have); or None."""
    recipe, log_file = recipe_path(name, recipes), docs / f"training-log-{name}.jsonl"
    if recipe is None or not log_file.is_file():
        return None
    planned = int(tomllib.loads(recipe.read_text())["train"]["epochs"])
    log = read_log(log_file)
    card = read_card(docs / f"model-card-{name}.json")
    return Run(log_file.parent, name, planned, log, card, recorded=True) if log else None


def exported_card(folder: Path, name: str) -> dict | None:
    """The newest card of an export of ``folder``'s best.pt made after it: ``<name>.json`` (the
    recipe's weight storage) or ``<name>-<storage>.json`` (leaderboard.py --weights); else None."""
    best = folder / "best.pt"
    if not best.is_file():
        return None
    cards = [c for c in [folder / f"{name}.json", *folder.glob(f"{name}-*.json")]
             if c.is_file() and c.stat().st_mtime > best.stat().st_mtime]
    for card_file in sorted(cards, key=lambda c: c.stat().st_mtime, reverse=True):
        if (card := read_card(card_file)) is not None:
            return card
    return None


def recipe_path(name: str, recipes: Path = RECIPES) -> Path | None:
    found = sorted(recipes.rglob(f"{name}.toml"))
    return found[0] if found else None


def command(name: str, recipes: Path = RECIPES) -> tuple[str, str]:
    """(recipe file, the command that trains it into runs/papers/...) for a recipe name."""
    path = recipe_path(name, recipes)
    if path is None:
        return f"(no {name}.toml under {recipes})", ""
    rel = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    out = Path("runs/papers") / path.relative_to(recipes).with_suffix("")
    return f"`{rel}`", f"`emolens train --recipe {rel} --out {out}`"


def pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


def result(run: Run | None) -> str:
    """One table cell: the run's PublicTest accuracy, how far it got, or 'not run yet'."""
    if run is None:
        return "not run yet"
    best = run.best()
    if best is None:
        return f"started, no epoch finished (0 of {run.planned})"
    if not run.done:
        return (f"unfinished: {pct(best['val_accuracy'])} best so far (epoch {best['epoch']}; "
                f"{len(run.log)} of {run.planned} done)")
    where = f"; docs/training-log-{run.name}.jsonl" if run.recorded else ""
    if run.card is not None:
        v = run.card.get("validation", {})
        return (f"{pct(v.get('accuracy'))} ({pct(v.get('accuracy_tta'))} TTA; exported "
                f"{run.card.get('weight_storage', 'float16')}, epoch {best['epoch']} of {run.planned}{where})")
    return f"{pct(best['val_accuracy'])} (best epoch {best['epoch']} of {run.planned}{where})"


def shipped_cell(card_path: Path) -> str:
    if not card_path.is_file():
        return "n/a"
    card = json.loads(card_path.read_text())
    v = card.get("validation", {})
    source = (card.get("recipe") or {}).get("source") or "?"
    return (f"{pct(v.get('accuracy'))} ({pct(v.get('accuracy_tta'))} TTA; {card.get('architecture')}, "
            f"`{source}`, {card.get('weight_storage', 'float16')})")


def papers_table(runs: dict[str, Run], shipped: str, recipes: Path = RECIPES) -> str:
    rows = []
    for p in PAPERS:
        (theirs_file, theirs_cmd), (ours_file, ours_cmd) = command(p.theirs, recipes), command(p.ours, recipes)
        rows.append([p.paper, p.net, p.setting, p.number,
                     f"{result(runs.get(p.theirs))}, {theirs_file}", f"{result(runs.get(p.ours))}, {ours_file}",
                     shipped, f"{theirs_cmd}; {ours_cmd}"])
    return markdown_table(["paper", "net", "paper's setting", "paper's number", "ours under their setting",
                           "ours under our recipe", "emolens shipped model", "commands"], rows)


def liu_table(runs: dict[str, Run], recipes: Path = RECIPES) -> str:
    rows = []
    for name, varies in LIU_CELLS.items():
        run = runs.get(name)
        last = run.log[-1] if run is not None and run.log else None
        file, cmd = command(name, recipes)
        rows.append([name.removeprefix("liu_"), varies, result(run),
                     pct(last["val_accuracy"]) if last else "", pct(last.get("train_accuracy")) if last else "",
                     file, cmd])
    return markdown_table(["cell", "changes from the reference", "PublicTest accuracy", "last epoch",
                           "train accuracy (augmented, last epoch)", "recipe", "command"], rows)


def liu_checks_table(runs: dict[str, Run], recipes: Path = RECIPES) -> str:
    """Each checked cell as the grid ran it (15 epochs, seed 0) beside its repeats in ``LIU_CHECKS``
    (seed 1; 50 epochs), with each run's last-epoch train accuracy."""
    def cells(run: Run | None) -> list[str]:
        return [result(run), pct(run.log[-1].get("train_accuracy")) if run is not None and run.log else ""]

    rows = []
    for cell in dict.fromkeys(LIU_CHECKS.values()):
        repeats = [name for name, of in LIU_CHECKS.items() if of == cell]
        row = [cell.removeprefix("liu_"), *cells(runs.get(cell))]
        for name in repeats:
            row += cells(runs.get(name))
        row.append("; ".join(command(name, recipes)[1] for name in repeats))
        rows.append(row)
    return markdown_table(["cell", "the grid: 15 epochs, seed 0", "train accuracy", "15 epochs, seed 1", "train accuracy",
                           "50 epochs, seed 0", "train accuracy", "commands"], rows)


LIU_LIKELY_REASON = ("Likely reasons: the paper validated on something other than FER2013's test rows with "
                     "FER2013's labels (the best published single models reach 73-76% there, human agreement is "
                     "about 65%): FER+ labels, a split drawn from the training rows, or training accuracy; the "
                     "paper gives neither its split nor its epoch count. FER+ labels alone do not explain it for "
                     "nets trained on FER2013's labels: see each cell's ferplus_majority_accuracy in its model card "
                     "(BENCHMARKS.md, Liu's grid).")


def liu_verdict(runs: dict[str, Run]) -> str:
    finished = {n: r for n, r in runs.items() if (n in LIU_CELLS or n in LIU_CHECKS) and r.done and r.log}
    cells = sum(n in LIU_CELLS for n in finished)
    if not finished:
        return "Liu's claim (about 85% validation): no finished cell yet. " + LIU_LIKELY_REASON
    def accuracy(run: Run) -> float:    # as the table shows it: the exported card's, else the log's best
        return run.card["validation"]["accuracy"] if run.card is not None else run.best()["val_accuracy"]

    name, run = max(finished.items(), key=lambda kv: accuracy(kv[1]))
    acc = accuracy(run)
    verdict = "reproduced" if acc >= 0.85 else f"not reproduced ({100 * (0.85 - acc):.1f} points short)"
    return (f"Liu's claim (about 85% validation): best finished cell {name.removeprefix('liu_')} at "
            f"{pct(acc)} PublicTest, {cells} of {len(LIU_CELLS)} cells finished"
            + (f" and {len(finished) - cells} of {len(LIU_CHECKS)} checks" if len(finished) > cells else "")
            + f": {verdict}."
            + ("" if acc >= 0.85 else " " + LIU_LIKELY_REASON))


def write_curves(runs: dict[str, Run], out: Path) -> list[Path]:
    """Copy each run's curves.png to ``out``, and draw the Liu cells' validation accuracy together."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, run in sorted(runs.items()):
        src = run.folder / "curves.png"
        if src.is_file():
            dst = out / f"training-curves-{name}.png"
            shutil.copyfile(src, dst)
            written.append(dst)
    cells = [(n, runs[n]) for n in LIU_CELLS if n in runs and runs[n].log]
    if cells:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(9, 5))
        for i, (name, run) in enumerate(cells):     # 12 cells, 10 colours: the last ones dash-dotted
            ax.plot([e["epoch"] for e in run.log], [100 * e["val_accuracy"] for e in run.log],
                    label=name.removeprefix("liu_"), lw=2.2 if name == "liu_reference" else 1.2,
                    color=f"C{i % 10}", ls=(":" if not run.done else "-" if i < 10 else "-."))
        ax.set_xlabel("epoch")
        ax.set_ylabel("PublicTest accuracy, %")
        ax.set_title("Liu's ablation grid on liu_cnn, 15 epochs each (dotted: unfinished)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, ncol=2)
        fig.tight_layout()
        dst = out / "training-curves-liu-grid.png"
        fig.savefig(dst, dpi=100)
        plt.close(fig)
        written.append(dst)
    if any(name in runs and runs[name].log for name in LIU_CHECKS):
        written.append(_plot_checks(runs, out / "training-curves-liu-checks.png"))
    return written


def _plot_checks(runs: dict[str, Run], dst: Path) -> Path:
    """PublicTest accuracy by epoch of each checked cell as the grid ran it (solid) and its repeats
    (dotted: seed 1; dashed: 50 epochs), one colour per cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5))
    for i, cell in enumerate(dict.fromkeys(LIU_CHECKS.values())):
        lines = [(cell, "-", "15 epochs, seed 0")] + [
            (name, ":" if name.endswith("_seed1") else "--", "15 epochs, seed 1" if name.endswith("_seed1") else "50 epochs")
            for name, of in LIU_CHECKS.items() if of == cell]
        for name, ls, what in lines:
            run = runs.get(name)
            if run is not None and run.log:
                ax.plot([e["epoch"] for e in run.log], [100 * e["val_accuracy"] for e in run.log], color=f"C{i}",
                        ls=ls, lw=1.6, label=f"{cell.removeprefix('liu_')}, {what}" + ("" if run.done else " (unfinished)"))
    ax.set_xlabel("epoch")
    ax.set_ylabel("PublicTest accuracy, %")
    ax.set_title("Liu's grid checked: a second seed (dotted) and 50 epochs (dashed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(dst, dpi=100)
    plt.close(fig)
    return dst


def collect(folders: list[Path], docs: Path | None = None) -> dict[str, Run]:
    """The runs among ``folders`` by recipe name (the one with more epochs when two share a name);
    with ``docs``, the paper recipes' logs recorded there stand in for runs with fewer epochs."""
    runs: dict[str, Run] = {}
    if docs is not None:
        for name in [n for p in PAPERS for n in (p.theirs, p.ours)] + list(LIU_CELLS) + list(LIU_CHECKS):
            if (run := recorded_run(name, docs)) is not None:
                runs[name] = run
    for folder in folders:
        run = read_run(folder) if folder.is_dir() else "not a folder" if folder.exists() else "no such folder"
        if isinstance(run, str):
            print(f"skipped {folder}: {run}", file=sys.stderr)
            continue
        held = runs.get(run.name)
        if held is None or len(run.log) > len(held.log) or (held.recorded and len(run.log) == len(held.log)):
            runs[run.name] = run
    return runs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="*", type=Path, help="run folders (runs/papers/*, runs/papers/liu/*)")
    ap.add_argument("--curves", type=Path, default=None, help="folder for the curve plots (e.g. docs/)")
    ap.add_argument("--recorded", type=Path, default=DOCS,
                    help="folder of committed training logs (training-log-<name>.jsonl) that stand in for "
                         "run folders this machine does not have (default docs/)")
    ap.add_argument("--shipped", type=Path, default=SHIPPED, help="the shipped model's card (.json)")
    args = ap.parse_args(argv)
    if args.curves is not None and args.curves.exists() and not args.curves.is_dir():
        raise SystemExit(f"--curves {args.curves}: is a file; pass a folder for the plots")
    runs = collect(args.runs, args.recorded)
    print("### Papers reproduced\n")
    print(papers_table(runs, shipped_cell(args.shipped)))
    print("\n### Liu's ablation grid (liu_cnn, 15 epochs each)\n")
    print(liu_table(runs))
    print("\n" + liu_verdict(runs))
    print("\n### Liu's grid checked: two cells with a second seed and at 50 epochs\n")
    print(liu_checks_table(runs))
    if args.curves is not None:
        for path in write_curves(runs, args.curves):
            print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
