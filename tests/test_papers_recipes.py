"""The papers' recipes (issue 28): every recipe under recipes/papers/ loads, Liu's grid changes one
thing per cell, "ours" recipes are the shipped recipe, the new optimizers and brightness levels do
what they say, a Liu cell trains for one epoch on a tiny slice, and benchmarks/papers_table.py reads
run folders into the tables."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the papers' recipes build their nets: the [train] extra (torch)")

from typer.testing import CliRunner  # noqa: E402

from emolens.cli import app  # noqa: E402
from emolens.model_input import DEFAULT_INPUT  # noqa: E402
from emolens.training.augment import AugmentConfig, augment_batch  # noqa: E402
from emolens.training.loop import make_optimizer  # noqa: E402
from emolens.training.nets import create_net  # noqa: E402
from emolens.training.recipe import Recipe  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAPERS = ROOT / "recipes" / "papers"
sys.path.insert(0, str(ROOT / "benchmarks"))

import papers_table  # noqa: E402

PAPER_RECIPES = sorted(PAPERS.rglob("*.toml"))
LIU = sorted((PAPERS / "liu").glob("*.toml"))
runner = CliRunner()


def test_the_papers_have_their_recipes():
    names = {p.stem for p in PAPER_RECIPES}
    for row in papers_table.PAPERS:
        assert {row.theirs, row.ours} <= names, row
    assert {p.stem for p in LIU} == set(papers_table.LIU_CELLS)  # the table lists every cell, and only those
    assert len(LIU) == 12


@pytest.mark.parametrize("path", PAPER_RECIPES, ids=lambda p: str(p.relative_to(PAPERS)))
def test_every_paper_recipe_loads_builds_and_says_how_to_reproduce_it(path):
    r = Recipe.load(path)
    assert r.name == path.stem
    create_net(r.net.name, **r.net.args)
    text = path.read_text()
    rel = path.relative_to(ROOT)
    out = Path("runs/papers") / path.relative_to(PAPERS).with_suffix("")
    assert f"# Reproduce: emolens train --recipe {rel} --out {out}\n" in text
    assert text.startswith("# ")  # a comment saying what it is and varies
    assert r.data.train_split == "Training" and r.data.val_split == "PublicTest"  # Training trains, PublicTest selects


def as_dict(r: Recipe) -> dict:
    d = r.to_dict()
    return {**d["train"], **{f"net.{k}": v for k, v in d["net"]["args"].items()}, **d["augment"]}


def test_each_liu_cell_changes_what_its_name_says():
    ref = as_dict(Recipe.load(PAPERS / "liu" / "liu_reference.toml"))
    assert ref["optimizer"] == "adam" and ref["weight_decay"] == 1e-4 and ref["net.residual"] is True
    assert ref["schedule"] == "cosine" and ref["grad_clip"] > 0 and ref["net.dropout"] > 0 and ref["epochs"] == 15
    plain = {"schedule", "grad_clip"}
    expected = {
        "liu_act_elu": {"net.activation"}, "liu_act_tanh": {"net.activation"}, "liu_adam_plain": plain,
        "liu_rmsprop_plain": {"optimizer"} | plain, "liu_rmsprop_sched": {"optimizer"},
        "liu_sgd_plain": {"optimizer", "lr"} | plain, "liu_sgd_sched": {"optimizer", "lr"},
        "liu_no_weight_decay": {"weight_decay"}, "liu_no_dropout": {"net.dropout"}, "liu_no_residual": {"net.residual"},
        "liu_plain_cnn": {"net.dropout", "net.residual", "weight_decay"} | plain, "liu_reference": set(),
    }
    for path in LIU:
        cell = as_dict(Recipe.load(path))
        assert {k for k in ref if cell[k] != ref[k]} == expected[path.stem], path.stem
        if "schedule" in expected[path.stem]:  # "before scheduling and clipping": both off
            assert cell["schedule"] == "constant" and cell["grad_clip"] == 0


def test_the_grid_checks_repeat_their_cell_but_for_the_seed_or_the_length():
    assert {p.stem for p in [*PAPERS.glob("liu_*_50.toml"), *PAPERS.glob("liu_*_seed1.toml")]} == \
        set(papers_table.LIU_CHECKS)
    for name, cell in papers_table.LIU_CHECKS.items():
        check, grid = as_dict(Recipe.load(PAPERS / f"{name}.toml")), as_dict(Recipe.load(PAPERS / "liu" / f"{cell}.toml"))
        changed = {k for k in grid if check[k] != grid[k]}
        if name.endswith("_50"):
            assert changed == {"epochs"} and check["epochs"] == 50, name
        else:
            assert changed == {"seed"} and check["seed"] == 1 and grid["seed"] == 0, name


@pytest.mark.parametrize("name", ["santhapalli_baseline_cnn_ours", "santhapalli_resemotenet_ours",
                                  "liu_cnn_ours", "xu_vgg_compact_ours"])
def test_ours_recipes_are_the_shipped_recipe_but_for_the_length(name):
    shipped = Recipe.load(ROOT / "recipes" / "emonet_w40_s200_soft.toml").to_dict()
    ours = Recipe.load(PAPERS / f"{name}.toml").to_dict()
    assert ours["augment"] == shipped["augment"]
    assert {k: v for k, v in ours["train"].items() if k != "epochs"} == \
        {k: v for k, v in shipped["train"].items() if k != "epochs"}
    theirs = Recipe.load(next(PAPERS.rglob(f"{name.removesuffix('_ours').replace('liu_cnn', 'liu_reference')}.toml")))
    assert ours["train"]["epochs"] == theirs.train.epochs  # same budget as their setting: the recipe is what differs


def test_xu_recipe_keeps_both_heads_and_their_augmentation():
    r = Recipe.load(PAPERS / "xu_vgg_compact.toml")
    assert r.net.name == "vgg_compact" and r.train.intensity_weight > 0
    assert r.augment.brightness_levels == 7 and r.augment.brightness > 0 and r.augment.blur > 0.5
    assert r.augment.flip == r.augment.rotate == r.augment.contrast == r.augment.erase == 0


def one_step(optimizer: str, weight_decay: float = 0.1, lr: float = 0.01) -> float:
    """A weight of 1 with zero gradient after one step of ``optimizer``: only the decay moves it."""
    net = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(1.0)
    recipe = Recipe.from_dict({"train": {"optimizer": optimizer, "weight_decay": weight_decay, "lr": lr}})
    opt = make_optimizer(net, recipe)
    net.weight.grad = torch.zeros_like(net.weight)
    opt.step()
    return float(net.weight.detach())


def test_adam_decays_as_l2_and_adamw_decoupled():
    recipe = Recipe.from_dict({"train": {"optimizer": "adam"}})
    net = create_net("liu_cnn")
    opt = make_optimizer(net, recipe)
    assert type(opt) is torch.optim.Adam
    assert type(make_optimizer(net, Recipe.from_dict({"train": {"optimizer": "rmsprop"}}))) is torch.optim.RMSprop
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed and all(p.ndim > 1 for p in net.parameters() if id(p) in decayed)  # never biases or batch norm
    # L2: the decay 0.1 * w is a gradient, normalised by Adam to a full step of lr
    assert one_step("adam") == pytest.approx(1 - 0.01, abs=1e-6)
    # decoupled: w -= lr * wd * w beside a zero Adam step
    assert one_step("adamw") == pytest.approx(1 - 0.01 * 0.1, abs=1e-6)
    assert one_step("rmsprop") < 1 and one_step("adam", weight_decay=0.0) == one_step("adamw", weight_decay=0.0) == 1


def brightness_offsets(levels: int) -> torch.Tensor:
    cfg = AugmentConfig(flip=0, rotate=0, scale=0, shift=0, brightness=0.3, brightness_levels=levels, contrast=0,
                        blur=0, erase=0)
    grey = torch.full((400, 8, 8), 128, dtype=torch.uint8)
    out = augment_batch(grey, cfg, DEFAULT_INPUT, torch.Generator().manual_seed(0))
    x = out * DEFAULT_INPUT.std + DEFAULT_INPUT.mean
    return (x[:, 0, 0, 0] - 128 / 255).double()


def test_brightness_levels_are_evenly_spaced_offsets():
    seven = brightness_offsets(7)
    levels = torch.unique(torch.round(seven * 1000) / 1000)
    assert torch.allclose(levels, torch.linspace(-0.3, 0.3, 7, dtype=torch.double), atol=2e-3)
    assert len(torch.unique(torch.round(brightness_offsets(0) * 1000))) > 50  # 0: any offset, as before


@pytest.fixture(scope="module")
def liu_smoke_run(tmp_path_factory, fer2013_path, ferplus_path) -> Path:
    """One epoch of a Liu cell with Adam, ELU and residual blocks off, on 256 Training and 128 PublicTest rows."""
    tmp = tmp_path_factory.mktemp("liu")
    text = (PAPERS / "liu" / "liu_act_elu.toml").read_text()
    assert "residual = true" in text and 'optimizer = "adam"' in text
    recipe = tmp / "liu_elu_plain.toml"
    recipe.write_text(text.replace("residual = true", "residual = false").replace('name = "liu_act_elu"',
                                                                                   'name = "liu_plain_cnn"'))
    out = tmp / "run"
    result = runner.invoke(app, ["train", "--recipe", str(recipe), "--out", str(out), "--epochs", "1", "--limit", "256",
                                 "--val-limit", "128", "--data", str(fer2013_path), "--ferplus", str(ferplus_path),
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    return out


def test_a_liu_cell_trains_one_epoch_with_adam_elu_and_no_residual_blocks(liu_smoke_run):
    entries = [json.loads(line) for line in (liu_smoke_run / "log.jsonl").read_text().splitlines()]
    assert len(entries) == 1 and 0 <= entries[0]["val_accuracy"] <= 1 and entries[0]["train_loss"] > 0
    state = torch.load(liu_smoke_run / "last.pt", weights_only=True)
    assert state["arch"] == "liu_cnn"
    assert state["arch_kwargs"] == {"activation": "elu", "dropout": 0.5, "residual": False}
    assert state["recipe"]["train"]["optimizer"] == "adam"
    assert "exp_avg_sq" in next(iter(state["optimizer"]["state"].values()))  # Adam's state, not SGD's momentum
    assert not any(".body." in k for k in state["model"])  # no residual block weights
    net = create_net(state["arch"], **state["arch_kwargs"])
    net.load_state_dict(state["model"])
    assert "ELU" in {type(m).__name__ for m in net.modules()}


def test_papers_table_reads_a_real_smoke_run(liu_smoke_run, tmp_path, capsys):
    papers_table.main([str(liu_smoke_run), "--recorded", str(tmp_path / "no-logs")])
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| plain_cnn |"))
    assert re.search(r"\| \d+\.\d\d% \(best epoch 1 of 1\) \|", row), row


def fake_run(folder: Path, name: str, planned: int, accuracies: list[float], curves: bool = True) -> Path:
    folder.mkdir(parents=True)
    (folder / "recipe.json").write_text(json.dumps({"name": name, "train": {"epochs": planned}}))
    lines = [json.dumps({"epoch": i + 1, "val_accuracy": a, "train_accuracy": a + 0.1})
             for i, a in enumerate(accuracies)]
    (folder / "log.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "best.pt").write_bytes(b"not read")
    if curves:
        (folder / "curves.png").write_bytes(b"\x89PNG fake")
    return folder


def test_papers_table_on_fake_run_folders(tmp_path, capsys):
    runs = tmp_path / "runs"
    done = fake_run(runs / "a", "liu_reference", 3, [0.5, 0.61234, 0.6])
    fake_run(runs / "b", "santhapalli_resemotenet", 50, [0.4, 0.45])
    exported = fake_run(runs / "c", "xu_vgg_compact", 2, [0.5, 0.52])
    card = exported / "xu_vgg_compact.json"
    card.write_text(json.dumps({"validation": {"accuracy": 0.5301, "accuracy_tta": 0.541}}))
    later = time.time() + 5
    os.utime(card, (later, later))
    wide = fake_run(runs / "d", "santhapalli_baseline_cnn", 2, [0.6, 0.66])
    (wide / "santhapalli_baseline_cnn.json").write_text(json.dumps({"validation": {"accuracy": 0.1}}))  # stale
    os.utime(wide / "santhapalli_baseline_cnn.json", (0, 0))  # older than best.pt: not this checkpoint's
    card = wide / "santhapalli_baseline_cnn-float32.json"  # leaderboard.py --weights float32
    card.write_text(json.dumps({"weight_storage": "float32", "validation": {"accuracy": 0.6618, "accuracy_tta": 0.6705}}))
    os.utime(card, (later, later))
    check = fake_run(runs / "e", "liu_reference_50", 4, [0.55, 0.64, 0.6432, 0.64])
    (runs / "junk").mkdir()
    (runs / "file.log").write_text("x")
    shipped = tmp_path / "shipped.json"
    shipped.write_text(json.dumps({"architecture": "emonet", "weight_storage": "int8",
                                   "recipe": {"source": "recipes/emonet_w40_s200_soft.toml"},
                                   "validation": {"accuracy": 0.7112, "accuracy_tta": 0.7176}}))
    papers_table.main([str(done), str(runs / "b"), str(exported), str(wide), str(check), str(runs / "junk"),
                       str(runs / "file.log"),
                       str(runs / "missing"), "--shipped", str(shipped), "--curves", str(tmp_path / "docs"),
                       "--recorded", str(tmp_path / "no-logs")])
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    table = [line for line in lines if line.startswith("| ")]
    header = next(line for line in lines if line.startswith("| paper |"))
    assert all(line.count(" | ") == header.count(" | ") for line in table[:5])  # every row has every column

    def row(start: str) -> str:
        return next(line for line in lines if line.startswith(start))

    liu = row("| Liu |")
    assert "61.23% (best epoch 2 of 3), `recipes/papers/liu/liu_reference.toml`" in liu
    assert "not run yet, `recipes/papers/liu_cnn_ours.toml`" in liu
    assert "`emolens train --recipe recipes/papers/liu/liu_reference.toml --out runs/papers/liu/liu_reference`" in liu
    assert "71.12% (71.76% TTA; emonet, `recipes/emonet_w40_s200_soft.toml`, int8)" in liu
    assert "unfinished: 45.00% best so far (epoch 2; 2 of 50 done)" in row("| Santhapalli et al. | resemotenet |")
    assert "53.01% (54.10% TTA; exported float16, epoch 2 of 2)" in row("| Xu et al. |")
    assert "66.18% (67.05% TTA; exported float32, epoch 2 of 2), `recipes/papers/santhapalli_baseline_cnn.toml`" \
        in row("| Santhapalli et al. | baseline_cnn |")
    assert "| reference | nothing" in captured.out and row("| reference |").count("61.23%") == 1
    assert row("| act_tanh |").count("not run yet") == 1
    assert "best finished cell reference_50 at 64.32% PublicTest, 1 of 12 cells finished and 1 of 4 checks: not " \
           "reproduced (20.7 points short)" in captured.out
    checked = row("| reference | 61.23% (best epoch 2 of 3) |")  # the check table: the grid cell beside its repeats
    assert "| 70.00% | not run yet |  | 64.32% (best epoch 3 of 4) | 74.00% | `emolens train --recipe " \
           "recipes/papers/liu_reference_seed1.toml --out runs/papers/liu_reference_seed1`; " in checked
    assert row("| no_dropout | not run yet |").count("not run yet |  |") == 3
    for skipped in ("junk: not a run folder", "file.log: not a folder", "missing: no such folder"):
        assert skipped in captured.err
    docs = tmp_path / "docs"
    assert (docs / "training-curves-liu_reference.png").read_bytes() == b"\x89PNG fake"
    assert (docs / "training-curves-liu-grid.png").read_bytes()[:4] == b"\x89PNG"
    assert (docs / "training-curves-liu-checks.png").read_bytes()[:4] == b"\x89PNG"
    assert not (docs / "training-curves-junk.png").exists()


def test_papers_table_with_no_runs_marks_everything_not_run(tmp_path, capsys):
    papers_table.main(["--recorded", str(tmp_path)])
    out = capsys.readouterr().out
    assert out.count("not run yet") == 8 + 12 + 2 * 3 and "no finished cell yet" in out


def test_papers_table_reads_the_logs_committed_in_docs_when_runs_are_gone(tmp_path, capsys):
    """runs/ does not survive a new machine; the finished runs' logs in docs/ stand in for them, and a
    run folder of the same run with as many epochs (its exported card) or more wins."""
    papers_table.main([])
    out = capsys.readouterr().out
    assert "66.18% (best epoch 48 of 50; docs/training-log-santhapalli_baseline_cnn.jsonl)" in out
    short = fake_run(tmp_path / "a", "santhapalli_baseline_cnn", 50, [0.3])
    papers_table.main([str(short)])
    assert "66.18% (best epoch 48" in capsys.readouterr().out, "a run folder with fewer epochs does not hide the log"
    log = (papers_table.DOCS / "training-log-santhapalli_baseline_cnn.jsonl").read_text()
    full = fake_run(tmp_path / "b", "santhapalli_baseline_cnn", 50, [0.3])
    (full / "log.jsonl").write_text(log)
    card = full / "santhapalli_baseline_cnn-float32.json"
    card.write_text(json.dumps({"weight_storage": "float32", "validation": {"accuracy": 0.6618, "accuracy_tta": 0.6705}}))
    later = time.time() + 5
    os.utime(card, (later, later))
    papers_table.main([str(full)])
    assert "66.18% (67.05% TTA; exported float32, epoch 48 of 50)" in capsys.readouterr().out


def test_papers_table_refuses_curves_into_a_file(tmp_path):
    target = tmp_path / "x.png"
    target.write_text("x")
    with pytest.raises(SystemExit, match="is a file"):
        papers_table.main(["--curves", str(target)])


def test_xu_labels_recipe_changes_only_what_the_sigmoid_head_learns():
    base, labels = Recipe.load(PAPERS / "xu_vgg_compact.toml"), Recipe.load(PAPERS / "xu_vgg_compact_labels.toml")
    assert base.train.intensity_targets == "ferplus" and labels.train.intensity_targets == "labels"
    a, b = as_dict(base), as_dict(labels)
    assert a.pop("intensity_targets") == "ferplus" and b.pop("intensity_targets") == "labels"
    assert a == b


def test_intensity_targets_are_the_votes_or_the_labels_one_hot():
    from emolens.training.targets import intensity_targets

    labels = torch.tensor([3, 0])
    votes = torch.tensor([[0.0, 0, 0, 0.8, 0, 0, 0.2], [0.0] * 7])
    has = torch.tensor([True, False])
    got, mask = intensity_targets("ferplus", labels, 7, votes, has)
    assert torch.equal(got, votes) and torch.equal(mask, has)
    got, mask = intensity_targets("labels", labels, 7, votes, has)
    assert got.tolist() == [[0, 0, 0, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0]] and mask.all()
    with pytest.raises(ValueError, match="ferplus"):
        intensity_targets("votes", labels, 7, votes, has)


def test_a_labels_run_trains_the_sigmoid_head_for_one_epoch(tmp_path, fer2013_path, ferplus_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--recipe", str(PAPERS / "xu_vgg_compact_labels.toml"), "--out", str(out),
                                 "--epochs", "1", "--limit", "128", "--val-limit", "64", "--data", str(fer2013_path),
                                 "--ferplus", str(ferplus_path), "--no-progress"])
    assert result.exit_code == 0, result.output
    entry = json.loads((out / "log.jsonl").read_text().splitlines()[0])
    assert entry["train_intensity_loss"] > 0.1
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["recipe"]["train"]["intensity_targets"] == "labels"
    from emolens.training.export import intensity_trained_on

    assert intensity_trained_on(state["recipe"]) == "the class labels one-hot"
    assert intensity_trained_on({"train": {}}) == intensity_trained_on({}) == "FER+ vote fractions"
