"""Weight averaging after the fact: PublicTest scores of the average of a run's last K epochs.

    emolens train --recipe recipes/X.toml --out runs/X --keep-epochs
    python benchmarks/weight_average.py runs/X --last 5 10 20 [--weights raw|ema]
    python benchmarks/weight_average.py runs/X --last 10 --save recipes/X_swa.toml

Reads the per-epoch checkpoints runs/X/epochs/eNNN.pt that `--keep-epochs` keeps, averages
the raw (or EMA) weights of the last K epochs with the code the training loop runs for
`swa_epochs = K` (emolens/training/averaging.py: equal weights, batch-norm statistics
recomputed on the training rows), and scores each average on the recipe's validation split
(PublicTest) in fp32, beside the last epoch's own weights and best.pt. PublicTest selects
K; nothing is fitted on it.

`--save RECIPE` writes the average of the single K given as runs/X/swa.pt for `emolens
export`, under RECIPE: a recipe file equal to the run's recipe but for its name and
`swa_epochs = K` (checked), so that `emolens train --recipe RECIPE` reproduces it in one run.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from _common import markdown_table, pin_threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a run folder trained with --keep-epochs")
    ap.add_argument("--last", type=int, nargs="+", default=[5, 10, 20], help="window sizes K (epochs)")
    ap.add_argument("--weights", choices=["raw", "ema"], default="raw",
                    help="average each epoch's raw weights (as swa_epochs does) or its EMA weights")
    ap.add_argument("--save", type=Path, default=None, metavar="RECIPE",
                    help="write the average of the one --last K as RUN/swa.pt, recorded under this recipe file")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    pin_threads(args.threads)
    import torch

    from emolens.model_input import InputSpec
    from emolens.training.averaging import WeightAverage
    from emolens.training.checkpoint import evaluate_net, load_net
    from emolens.training.loop import load_split
    from emolens.training.recipe import Recipe

    torch.set_num_threads(args.threads)
    snaps = sorted(args.run.glob("epochs/e[0-9][0-9][0-9].pt"))
    if not snaps:
        raise SystemExit(f"{args.run}/epochs/ holds no eNNN.pt; train with 'emolens train ... --keep-epochs'")
    by_epoch = {int(re.search(r"e(\d+)\.pt$", p.name).group(1)): p for p in snaps}
    last_epoch = max(by_epoch)
    if args.save and len(args.last) != 1:
        raise SystemExit("--save needs exactly one --last K")
    if args.save and args.weights != "raw":
        raise SystemExit("--save records a swa_epochs recipe, which averages raw weights; use --weights raw")
    for k in args.last:
        missing = [e for e in range(last_epoch - k + 1, last_epoch + 1) if e not in by_epoch]
        if k < 1 or missing:
            raise SystemExit(f"--last {k}: epochs {missing or k} have no checkpoint in {args.run}/epochs/")

    last_raw, state = load_net(by_epoch[last_epoch], "raw")
    recipe = Recipe.from_dict(state["recipe"])
    spec = InputSpec.from_dict(state["input_spec"])
    train_ds = load_split(recipe, recipe.data.train_split, recipe.data.limit)
    val_ds = load_split(recipe, recipe.data.val_split, recipe.data.val_limit)
    train_images = torch.from_numpy(train_ds.images)

    def score(label: str, net) -> dict:
        rep = evaluate_net(net, val_ds, spec)
        rows.append([label, f"{100 * rep['accuracy']:.2f}%", f"{rep['macro_f1']:.3f}",
                     "n/a" if rep["intensity_rmse"] is None else f"{rep['intensity_rmse']:.4f}"])
        print(" | ".join(rows[-1]), flush=True)
        return rep

    rows: list[list[str]] = []
    score(f"epoch {last_epoch}, raw weights", last_raw)
    score(f"epoch {last_epoch}, EMA weights", load_net(by_epoch[last_epoch], "ema")[0])
    if (args.run / "best.pt").is_file():
        best, best_state = load_net(args.run / "best.pt")
        score(f"best.pt (epoch {best_state.get('epoch_entry', {}).get('epoch')})", best)
    for k in sorted(args.last):
        first = last_epoch - k + 1
        avg = None
        for e in range(first, last_epoch + 1):
            net, _ = load_net(by_epoch[e], args.weights)
            if avg is None:
                avg = WeightAverage(net)
            avg.add(net)
        net = avg.finish(train_images, spec)
        rep = score(f"average of epochs {first}-{last_epoch} ({args.weights})", net)
        if args.save:
            save_as(args.save, recipe, k, net, rep, spec, state, args.run, last_epoch)
    print()
    print(f"{args.run}: {recipe.name}, validation split {recipe.data.val_split} ({len(val_ds)} rows), fp32 torch")
    print(markdown_table(["weights", "accuracy", "macro-F1", "intensity RMSE"], rows))


def save_as(recipe_file: Path, run_recipe, k: int, net, rep: dict, spec, state: dict, run: Path,
            last_epoch: int) -> None:
    from emolens.training.checkpoint import save_inference_checkpoint
    from emolens.training.recipe import Recipe

    target = Recipe.load(recipe_file)
    expect = Recipe.from_dict(run_recipe.to_dict())
    expect.train.swa_epochs = k
    a, b = target.to_dict(), expect.to_dict()
    for d in (a, b):
        d.pop("name"), d.pop("source")
    if a != b:
        diff = {s: {key: (b[s][key], a[s][key]) for key in a[s] if a[s][key] != b[s].get(key)}
                for s in a if isinstance(a[s], dict) and a[s] != b[s]}
        raise SystemExit(f"{recipe_file} must equal the run's recipe with swa_epochs = {k}; differs (run, file): {diff}")
    entry = {"epoch": last_epoch, "scored": "swa", "swa_epochs": k, "val_accuracy": rep["accuracy"],
             "val_macro_f1": rep["macro_f1"], "val_intensity_rmse": rep["intensity_rmse"]}
    out = run / "swa.pt"
    save_inference_checkpoint(net, target, spec, entry, out, state.get("invocations", []))
    print(f"saved {out} (recipe {recipe_file}); export it with: emolens export {out} --out MODEL.onnx")


if __name__ == "__main__":
    main()
