"""Train -> resume -> export -> evaluate, on a few hundred real FER2013 rows (1-epoch smoke runs).

CI never trains for real: these runs use tiny slices and exist to prove the commands work
end to end and that a run is deterministic and resumable.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training tests need the [train] extra (torch)")

from typer.testing import CliRunner  # noqa: E402

from emolens.cli import app  # noqa: E402
from emolens.training.card import train_commands  # noqa: E402
from emolens.training.loop import format_duration  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "emonet_s20.toml"
SHIPPED = ROOT / "src" / "emolens" / "weights" / "emolens-default.onnx"
runner = CliRunner()


def train_args(out: Path, fer: Path, ferplus: Path, epochs: int, limit: int = 256, recipe: Path = RECIPE) -> list[str]:
    return ["train", "--recipe", str(recipe), "--out", str(out), "--epochs", str(epochs), "--limit", str(limit),
            "--val-limit", "128", "--data", str(fer), "--ferplus", str(ferplus), "--no-progress"]


def recipe_with(tmp_path: Path, train_lines: str) -> Path:
    """The smoke recipe with ``train_lines`` added to its ``[train]`` table."""
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(RECIPE.read_text().replace("[train]\n", f"[train]\n{train_lines}\n"))
    return recipe


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, fer2013_path, ferplus_path) -> Path:
    out = tmp_path_factory.mktemp("run")
    result = runner.invoke(app, train_args(out, fer2013_path, ferplus_path, epochs=1))
    assert result.exit_code == 0, result.output
    return out


def test_training_writes_log_checkpoints_and_curves(smoke_run):
    entries = [json.loads(line) for line in (smoke_run / "log.jsonl").read_text().splitlines()]
    assert len(entries) == 1
    e = entries[0]
    assert e["epoch"] == 1 and 0 <= e["val_accuracy"] <= 1 and e["train_loss"] > 0
    assert e["val_intensity_rmse"] is not None
    assert isinstance(e["bf16"], bool)  # the precision the run trained in, for the leaderboard
    for name in ("last.pt", "best.pt", "curves.png", "recipe.json"):
        assert (smoke_run / name).is_file(), name


def test_interrupted_run_resumes_to_the_same_weights(tmp_path, fer2013_path, ferplus_path, caplog):
    """A 2-epoch run split in two invocations ends with exactly the weights of one straight run."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    with caplog.at_level("INFO", logger="emolens.training.loop"):
        assert runner.invoke(app, train_args(straight, fer2013_path, ferplus_path, epochs=2, limit=128)).exit_code == 0
    epoch_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert len(epoch_lines) == 2
    assert epoch_lines[0].endswith(" left") and not epoch_lines[1].endswith(" left")  # time left, until the last
    first = runner.invoke(app, train_args(split, fer2013_path, ferplus_path, epochs=2, limit=128) + ["--stop-after", "1"])
    assert first.exit_code == 0, first.output
    assert len((split / "log.jsonl").read_text().splitlines()) == 1
    second = runner.invoke(app, train_args(split, fer2013_path, ferplus_path, epochs=2, limit=128))
    assert second.exit_code == 0, second.output
    entries = [json.loads(line) for line in (split / "log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in entries] == [1, 2]
    a = torch.load(straight / "last.pt", weights_only=True)
    b = torch.load(split / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 1
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    # ... and a different seed gives different weights (the check above can fail).
    other = tmp_path / "other"
    recipe = tmp_path / "seed1.toml"
    recipe.write_text(RECIPE.read_text().replace("seed = 0", "seed = 1"))
    assert runner.invoke(app, train_args(other, fer2013_path, ferplus_path, epochs=1, limit=128, recipe=recipe)).exit_code == 0
    c = torch.load(other / "last.pt", weights_only=True)["model"]
    assert any(not torch.equal(a["model"][k], c[k]) for k in c)


def test_time_left_reads_in_minutes_then_hours():
    assert format_duration(20) == "0 min"
    assert format_duration(14 * 60 + 10) == "14 min"
    assert format_duration(125 * 60) == "2h05m"


def test_resume_with_more_epochs_retargets_the_schedule(tmp_path, fer2013_path, ferplus_path):
    out = tmp_path / "run"
    assert runner.invoke(app, train_args(out, fer2013_path, ferplus_path, epochs=1, limit=128)).exit_code == 0
    result = runner.invoke(app, train_args(out, fer2013_path, ferplus_path, epochs=2, limit=128))
    assert result.exit_code == 0, result.output
    entries = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in entries] == [1, 2]
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["scheduler"]["total_steps"] == 2 * (128 // 128)  # epochs x steps per epoch
    assert state["invocations"] == [{"from_epoch": 0, "epochs": 1}, {"from_epoch": 1, "epochs": 2}]
    assert train_commands(state["invocations"], "r.toml", "runs/x") == [
        "emolens train --recipe r.toml --out runs/x --epochs 1 --stop-after 1",
        "emolens train --recipe r.toml --out runs/x --epochs 2",
    ]


def test_train_commands_merge_resumes_that_kept_the_epoch_target():
    runs = [{"from_epoch": 0, "epochs": 45}, {"from_epoch": 6, "epochs": 45}, {"from_epoch": 11, "epochs": 55},
            {"from_epoch": 30, "epochs": 55}]
    assert train_commands(runs, "recipes/a.toml", "runs/a") == [
        "emolens train --recipe recipes/a.toml --out runs/a --epochs 45 --stop-after 11",
        "emolens train --recipe recipes/a.toml --out runs/a --epochs 55",
    ]
    assert train_commands([], "recipes/a.toml", "runs/a") == ["emolens train --recipe recipes/a.toml --out runs/a"]


def test_export_parity_and_model_card(smoke_run, tmp_path):
    onnx_path = tmp_path / "model.onnx"
    result = runner.invoke(app, ["export", str(smoke_run / "best.pt"), "--out", str(onnx_path), "--limit", "200"])
    assert result.exit_code == 0, result.output
    card = json.loads(onnx_path.with_suffix(".json").read_text())
    assert card["architecture"] == "emonet"
    assert card["labels"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert card["input"]["size"] == 48
    assert card["validation"]["onnx_torch_max_abs_diff"] < 1e-3
    assert card["validation"]["n"] == 200
    assert card["file_size_bytes"] == onnx_path.stat().st_size
    assert card["parameters"] > 1e6
    assert card["calibration"]["temperature"] > 0
    assert card["training"]["invocations"] and card["validation"]["intensity_rmse_tta"] > 0
    assert card["training"]["precision"] in ("bf16", "fp32")
    assert 0 <= card["validation"]["ferplus_majority_accuracy_intensity"] <= 1
    assert "emolens train --recipe" in onnx_path.with_suffix(".md").read_text()
    assert "top class / top intensity" in onnx_path.with_suffix(".md").read_text()

    from emolens.runtime import EmotionModel

    model = EmotionModel(onnx_path)
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    out = model(faces)
    assert out.probabilities.shape == (5, 7) and out.intensity.shape == (5, 7)
    np.testing.assert_allclose(out.probabilities.sum(1), 1, rtol=1e-5)
    assert ((out.intensity >= 0) & (out.intensity <= 1)).all()


def test_export_with_int8_weights_is_a_quarter_of_float32_and_agrees(smoke_run, tmp_path):
    from emolens.runtime import EmotionModel

    paths = {}
    for storage in ("float32", "float16", "int8"):
        paths[storage] = tmp_path / f"{storage}.onnx"
        result = runner.invoke(app, ["export", str(smoke_run / "best.pt"), "--out", str(paths[storage]),
                                     "--limit", "64", "--weights", storage, "--no-calibrate"])
        assert result.exit_code == 0, result.output
        card = json.loads(paths[storage].with_suffix(".json").read_text())
        assert card["weight_storage"] == storage
        md = paths[storage].with_suffix(".md").read_text()
        assert f"weights stored as {storage}" in md
        assert (f"--weights {storage}" in md) == (storage != "float16")
    # float32 keeps the weights as trained: only operator rounding is left
    assert json.loads(paths["float32"].with_suffix(".json").read_text())["validation"]["onnx_torch_max_abs_diff"] < 1e-4
    assert paths["float16"].stat().st_size < 0.6 * paths["float32"].stat().st_size
    card = json.loads(paths["int8"].with_suffix(".json").read_text())
    assert card["validation"]["onnx_torch_max_abs_diff"] < 3e-2
    # float16 stores 2 bytes per weight, int8 1 (+ a float32 scale per output channel)
    assert card["file_size_bytes"] < 0.6 * paths["float16"].stat().st_size
    faces = np.random.default_rng(1).integers(0, 256, (32, 48, 48), dtype=np.uint8)
    a, b = EmotionModel(paths["float16"])(faces), EmotionModel(paths["int8"])(faces)
    assert np.abs(a.probabilities - b.probabilities).mean() < 5e-3


def test_export_storage_defaults_to_the_recipes(smoke_run, tmp_path):
    from emolens.training.recipe import Recipe

    state = torch.load(smoke_run / "best.pt", weights_only=True)
    assert state["recipe"]["export"] == {"weights": "float16"}
    state["recipe"]["export"] = {"weights": "int8"}
    torch.save(state, tmp_path / "best.pt")
    result = runner.invoke(app, ["export", str(tmp_path / "best.pt"), "--out", str(tmp_path / "m.onnx"),
                                 "--limit", "32", "--no-calibrate"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "m.json").read_text())["weight_storage"] == "int8"
    assert Recipe.from_dict({"export": {"weights": "int8"}}).export.weights == "int8"
    with pytest.raises(ValueError, match=r"unknown key 'weight' in \[export\] \(did you mean weights\?\)"):
        Recipe.from_dict({"export": {"weight": "int8"}})


def test_export_rejects_an_unknown_weight_storage(smoke_run, tmp_path):
    result = runner.invoke(app, ["export", str(smoke_run / "best.pt"), "--out", str(tmp_path / "m.onnx"),
                                 "--weights", "int4"])
    assert result.exit_code == 2
    assert "unknown weight storage 'int4'; choose one of: float16, int8" in result.output


def test_training_precision_reads_the_log():
    from emolens.training.export import training_precision

    assert training_precision([{"bf16": True}, {"bf16": True}]) == "bf16"
    assert training_precision([{"bf16": False}]) == "fp32"
    assert training_precision([{"bf16": False}, {"bf16": True}]) == "mixed"  # resumed on another machine
    assert training_precision([{"epoch": 1}, {"bf16": True}]) is None  # partly logged before the field existed
    assert training_precision([]) is None


def test_export_of_missing_checkpoint_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["export", str(tmp_path / "none.pt"), "--out", str(tmp_path / "m.onnx")])
    assert result.exit_code == 2
    assert "no such checkpoint" in result.output


def test_bad_recipe_is_a_clear_error(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text("[train]\nepochz = 3\n")
    result = runner.invoke(app, ["train", "--recipe", str(recipe), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "unknown key 'epochz' in [train] (did you mean epochs?)" in result.output


def test_soft_targets_mixing_and_teacher_train(smoke_run, tmp_path, fer2013_path, ferplus_path):
    """FER+ soft targets, mixup + CutMix and two teachers (a checkpoint and an exported ONNX model) run
    through a 1-epoch smoke run."""
    recipe = recipe_with(tmp_path, f'soft_targets = 0.5\nmixup = 0.4\ncutmix = 1.0\nmix_prob = 1.0\n'
                                   f'teacher = ["{smoke_run / "best.pt"}", "{SHIPPED}"]\nteacher_weight = 0.5\nteacher_temperature = 2.0')
    out = tmp_path / "run"
    result = runner.invoke(app, train_args(out, fer2013_path, ferplus_path, epochs=1, limit=128, recipe=recipe))
    assert result.exit_code == 0, result.output
    teacher = np.load(out / "teacher.npy")
    assert teacher.shape == (128, 7) and np.allclose(teacher.sum(1), 1, atol=1e-4)
    saved = json.loads((out / "recipe.json").read_text())["train"]
    assert saved["soft_targets"] == 0.5 and saved["teacher"] == [str(smoke_run / "best.pt"), str(SHIPPED)]


def test_onnx_teacher_matches_its_runtime_predictions(fer2013_path):
    from emolens.evaluate import predict_dataset
    from emolens.runtime import EmotionModel
    from emolens.training.data import load_dataset
    from emolens.training.teachers import teacher_logits
    from emolens.model_input import DEFAULT_INPUT

    ds = load_dataset(fer2013_path, "Training", limit=64)
    plain, mirrored = teacher_logits(SHIPPED, torch.from_numpy(ds.images), DEFAULT_INPUT)
    model = EmotionModel(SHIPPED)
    np.testing.assert_allclose(plain, predict_dataset(model, ds.images).logits, atol=1e-4)
    np.testing.assert_allclose(mirrored, predict_dataset(model, ds.images[:, :, ::-1].copy()).logits, atol=1e-4)


def test_online_teacher_scores_each_augmented_batch(smoke_run, tmp_path, fer2013_path, ferplus_path):
    """``teacher_online``: the teachers run on every augmented batch (nothing cached) and may
    also teach the intensity head."""
    ckpt = smoke_run / "best.pt"
    recipe = recipe_with(tmp_path, f'teacher = ["{ckpt}", "{ckpt}"]\nteacher_weight = 0.5\nteacher_online = true\n'
                                   'teacher_intensity_weight = 0.5\nteacher_temperature = 2.0')
    out = tmp_path / "run"
    result = runner.invoke(app, train_args(out, fer2013_path, ferplus_path, epochs=1, limit=128, recipe=recipe))
    assert result.exit_code == 0, result.output
    assert not (out / "teacher.npy").exists()
    saved = json.loads((out / "recipe.json").read_text())["train"]
    assert saved["teacher_online"] is True and saved["teacher_intensity_weight"] == 0.5


def test_online_teacher_outputs_are_its_checkpoint_predictions(smoke_run, fer2013_path):
    from emolens.model_input import DEFAULT_INPUT
    from emolens.training.augment import normalize_batch
    from emolens.training.checkpoint import load_net, predict
    from emolens.training.data import load_dataset
    from emolens.training.teachers import OnlineTeacher

    images = torch.from_numpy(load_dataset(fer2013_path, "Training", limit=32).images)
    logits, inten = predict(load_net(smoke_run / "best.pt")[0], images, DEFAULT_INPUT)
    probs, taught_inten = OnlineTeacher.from_checkpoints([str(smoke_run / "best.pt")] * 2, temperature=2.0)(normalize_batch(images, DEFAULT_INPUT))
    np.testing.assert_allclose(probs.numpy(), torch.softmax(torch.from_numpy(logits) / 2.0, 1).numpy(), atol=1e-5)
    np.testing.assert_allclose(taught_inten.numpy(), inten, atol=1e-5)


@pytest.mark.parametrize("lines, message", [
    (f'teacher = ["{SHIPPED}"]\nteacher_weight = 0.5\nteacher_online = true', "exported model"),
    ('teacher_intensity_weight = 0.5', "needs teacher_online"),
])
def test_misconfigured_online_teacher_is_a_clear_error(tmp_path, fer2013_path, ferplus_path, lines, message):
    recipe = recipe_with(tmp_path, lines)
    result = runner.invoke(app, train_args(tmp_path / "run", fer2013_path, ferplus_path, epochs=1, limit=128, recipe=recipe))
    assert result.exit_code != 0
    assert message in result.output


def test_sharpness_aware_run_trains_and_records_its_radius(tmp_path, fer2013_path, ferplus_path):
    recipe = recipe_with(tmp_path, "sam_rho = 0.05")
    out = tmp_path / "run"
    result = runner.invoke(app, train_args(out, fer2013_path, ferplus_path, epochs=1, limit=128, recipe=recipe))
    assert result.exit_code == 0, result.output
    assert json.loads((out / "recipe.json").read_text())["train"]["sam_rho"] == 0.05
    entry = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    assert np.isfinite(entry["train_loss"]) and entry["val_accuracy"] > 0


def test_negative_sam_radius_is_a_clear_error(tmp_path, fer2013_path, ferplus_path):
    recipe = recipe_with(tmp_path, "sam_rho = -0.05")
    result = runner.invoke(app, train_args(tmp_path / "run", fer2013_path, ferplus_path, epochs=1, limit=128, recipe=recipe))
    assert result.exit_code != 0
    assert "sam_rho = -0.05" in result.output and "greater than or equal to 0" in result.output


def test_missing_teacher_is_a_clear_error(tmp_path, fer2013_path, ferplus_path):
    recipe = recipe_with(tmp_path, 'teacher = ["nope/best.pt"]\nteacher_weight = 0.5')
    result = runner.invoke(app, train_args(tmp_path / "run", fer2013_path, ferplus_path, epochs=1, limit=128, recipe=recipe))
    assert result.exit_code != 0
    assert "nope/best.pt" in result.output and "not found" in result.output


def test_weight_average_of_the_last_epochs_resumes_and_matches_kept_epochs(tmp_path, fer2013_path, ferplus_path):
    """``swa_epochs = 2`` writes swa.pt: the average of the raw weights of the last two epochs, with
    batch-norm statistics recomputed; a resumed run gives the same average, and averaging the
    epochs that ``--keep-epochs`` kept (what benchmarks/weight_average.py does) gives it too."""
    from emolens.model_input import DEFAULT_INPUT
    from emolens.training.averaging import WeightAverage
    from emolens.training.data import load_dataset
    from emolens.training.checkpoint import load_net

    recipe = recipe_with(tmp_path, "swa_epochs = 2")

    def run(out: Path, *extra: str):
        result = runner.invoke(app, train_args(out, fer2013_path, ferplus_path, epochs=3, limit=128, recipe=recipe) + list(extra))
        assert result.exit_code == 0, result.output

    straight, split = tmp_path / "straight", tmp_path / "split"
    run(straight, "--keep-epochs")
    run(split, "--stop-after", "2")  # interrupted inside the averaging window
    run(split)
    assert sorted(p.name for p in (straight / "epochs").iterdir()) == ["e001.pt", "e002.pt", "e003.pt"]
    assert not (split / "epochs").exists()
    entry = json.loads((straight / "swa.json").read_text())
    assert entry["scored"] == "swa" and entry["swa_epochs"] == 2 and 0 <= entry["val_accuracy"] <= 1
    swa = torch.load(straight / "swa.pt", weights_only=True)["model"]
    resumed = torch.load(split / "swa.pt", weights_only=True)["model"]
    nets = [load_net(straight / "epochs" / f"e00{e}.pt", "raw")[0] for e in (2, 3)]
    avg = WeightAverage(nets[0])
    for net in nets:
        avg.add(net)
    ds = load_dataset(fer2013_path, "Training", ferplus_path, limit=128)
    rebuilt = avg.finish(torch.from_numpy(ds.images), DEFAULT_INPUT).state_dict()
    assert set(rebuilt) == set(swa)
    for k, v in rebuilt.items():  # same net up to float rounding (batch layout differs in the loop)
        torch.testing.assert_close(swa[k], v, rtol=1e-4, atol=1e-5, msg=lambda m, k=k: f"{k}: {m}")
        assert torch.equal(resumed[k], swa[k]), k
    stats = [k for k in swa if k.endswith("running_mean")]
    assert stats and not any(torch.equal(swa[k], nets[1].state_dict()[k]) for k in stats)  # recomputed, not copied

def test_weight_average_longer_than_the_run_is_a_clear_error(tmp_path, fer2013_path, ferplus_path):
    recipe = recipe_with(tmp_path, "swa_epochs = 5")
    result = runner.invoke(app, train_args(tmp_path / "run", fer2013_path, ferplus_path, epochs=1, limit=128, recipe=recipe))
    assert result.exit_code != 0
    assert "swa_epochs = 5" in result.output and "epochs (1)" in result.output


def test_quantize_makes_an_int8_model_measured_against_its_float_source(smoke_run, tmp_path, fer2013_path, ferplus_path):
    import onnx

    from emolens.runtime import EmotionModel

    source, out = tmp_path / "float.onnx", tmp_path / "q.onnx"
    result = runner.invoke(app, ["export", str(smoke_run / "best.pt"), "--out", str(source), "--limit", "64",
                                 "--weights", "int8", "--no-calibrate"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["quantize", str(source), "--out", str(out), "--data", str(fer2013_path),
                                 "--ferplus", str(ferplus_path), "--rows", "70", "--limit", "300"])
    assert result.exit_code == 0, result.output
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    card = json.loads(out.with_suffix(".json").read_text())
    # 70 faces: not a multiple of 64, so the calibration batches must still be equal
    assert card["compute"] == "int8" and card["quantization"]["calibration"]["rows"] == 70
    v = card["validation"]
    assert v["n"] == 300 and 0 <= v["accuracy"] <= 1 and v["intensity_rmse"] > 0
    assert v["source_max_abs_probability_diff"] < 0.1, v  # 8-bit arithmetic moves outputs, not answers
    assert v["source_top_emotion_differs"] <= 30, v
    md = out.with_suffix(".md").read_text()
    assert "computed in int8" in md and "--weights int8" in md and "emolens quantize float.onnx" in md
    faces = np.random.default_rng(2).integers(0, 256, (8, 48, 48), dtype=np.uint8)
    np.testing.assert_allclose(EmotionModel(out)(faces).probabilities.sum(1), 1, rtol=1e-5)
    # a quantized model is not quantized again, and the source is never overwritten
    again = runner.invoke(app, ["quantize", str(out), "--out", str(tmp_path / "qq.onnx"), "--data", str(fer2013_path)])
    assert again.exit_code == 2 and "already quantized" in again.output
    same = runner.invoke(app, ["quantize", str(source), "--out", str(source), "--data", str(fer2013_path)])
    assert same.exit_code == 2 and "overwrite" in same.output


def test_quantize_of_missing_model_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["quantize", str(tmp_path / "none.onnx"), "--out", str(tmp_path / "q.onnx"),
                                 "--data", str(tmp_path / "fer.csv")])
    assert result.exit_code == 2 and "none.onnx" in result.output and "not found" in result.output
