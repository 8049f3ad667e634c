"""Hostile and careless input to train, export and evaluate (issue 25, items 3, 7, 9 and 12).

Every fixture is generated here into tmp_path: small fer2013-format csv files, class folders,
FERPlus folders, crafted checkpoints and a tiny ONNX model; runs are 1-2 epochs on 64 rows.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training tests need the [train] extra (torch)")

import cv2  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from conftest import make_tiny_model  # noqa: E402
from emolens.cli import app  # noqa: E402
from emolens.training.checkpoint import CheckpointError, load_net, read_checkpoint  # noqa: E402
from emolens.training.data import DatasetError, load_dataset, load_fer2013_csv  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAPERS = ROOT / "recipes" / "papers" / "santhapalli_baseline_cnn.toml"  # the recipe of the run in runs/papers/
FERPLUS_HEADER = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"
runner = CliRunner()


def pixels(seed: int) -> str:
    return " ".join(map(str, np.random.default_rng(seed).integers(0, 256, 48 * 48)))


def fer_csv(path: Path, usages: list[str], header: str = "emotion,pixels,Usage") -> Path:
    lines = [header] + [f"{i % 7},{pixels(i)},{u}" if "Usage" in header else f"{i % 7},{pixels(i)}"
                        for i, u in enumerate(usages)]
    path.write_text("\n".join(lines) + "\n")
    return path


def ferplus_csv(path: Path, usages: list[str]) -> Path:
    rows = [f"{u},fer{i:07d}.png,{5 + i % 3},3,0,0,2,0,0,0,0,0" for i, u in enumerate(usages)]
    path.write_text("\n".join([FERPLUS_HEADER] + rows) + "\n")
    return path


SPLITS = ["Training"] * 64 + ["PublicTest"] * 32


@pytest.fixture
def fer(tmp_path) -> Path:
    return fer_csv(tmp_path / "fer.csv", SPLITS)


def smoke_recipe(tmp_path: Path, extra: str = "", source: Path | None = None) -> Path:
    """A recipe for 1-epoch smoke runs on the generated csv (no FER+ file: ``ferplus = ""``)."""
    text = (source.read_text() if source else
            "[net]\nname = \"emonet\"\nargs = { width = 16, blocks = [1, 1, 1, 1] }\n"
            "[train]\nbatch_size = 32\nthreads = 2\nema_decay = 0.9\n")
    replaced = {"ferplus"} | {line.split("=")[0].strip() for line in extra.splitlines()}
    text = "\n".join(line for line in text.splitlines() if line.split("=")[0].strip() not in replaced)
    text = text.replace("[data]\n", "[data]\nferplus = \"\"\n") if "[data]" in text else text + "\n[data]\nferplus = \"\"\n"
    if extra:
        text = text.replace("[train]\n", f"[train]\n{extra}\n")
    path = tmp_path / "smoke.toml"
    path.write_text(text)
    return path


def train(recipe: Path, out: Path, data: Path, epochs: int = 1, *extra: str):
    return runner.invoke(app, ["train", "--recipe", str(recipe), "--out", str(out), "--data", str(data),
                               "--epochs", str(epochs), "--no-progress", *extra])


def one_line_error(result, *parts: str) -> str:
    """The output is one ``error:`` line holding ``parts``, without a traceback."""
    text = " ".join(result.output.split())  # rich wraps long lines
    assert "Traceback" not in result.output and "Aborted" not in result.output, result.output
    assert result.output.count("error:") == 1, result.output
    for part in parts:
        assert part in text, (part, result.output)
    return text


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    """A 1-epoch run of the paper's recipe (baseline_cnn, Adam, constant lr) written by this version."""
    tmp = tmp_path_factory.mktemp("smoke")
    data = fer_csv(tmp / "fer.csv", SPLITS)
    out = tmp / "run"
    result = train(smoke_recipe(tmp, source=PAPERS), out, data)
    assert result.exit_code == 0, result.output
    return out


# --- item 3: checkpoints are data, never code ------------------------------------------------------


class WritesMarker:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def crafted_checkpoint(path: Path, marker: Path, zipped: bool) -> Path:
    state = {"model": WritesMarker(marker), "arch": "emonet", "input_spec": {"size": 48}}
    if zipped:
        torch.save(state, path)  # torch's own zip format, the pickle inside runs os.system
    else:
        path.write_bytes(pickle.dumps(state))  # a bare pickle
    return path


@pytest.mark.parametrize("zipped", [True, False])
def test_export_of_a_crafted_checkpoint_runs_nothing(tmp_path, zipped):
    marker = tmp_path / "MARKER"
    evil = crafted_checkpoint(tmp_path / "evil.pt", marker, zipped)
    result = runner.invoke(app, ["export", str(evil), "--out", str(tmp_path / "m.onnx")])
    assert result.exit_code == 2
    one_line_error(result, "evil.pt", "refused", "nothing was executed")
    assert not marker.exists()
    assert not (tmp_path / "m.onnx").exists()
    with pytest.raises(CheckpointError, match="refused"):
        load_net(evil)
    assert not marker.exists()


def test_resuming_from_a_crafted_last_pt_runs_nothing(tmp_path, fer):
    marker = tmp_path / "MARKER"
    out = tmp_path / "run"
    out.mkdir()
    crafted_checkpoint(out / "last.pt", marker, zipped=True)
    result = train(smoke_recipe(tmp_path), out, tmp_path / "missing.csv")
    assert result.exit_code == 2
    one_line_error(result, "last.pt", "refused")  # before the (missing) data is read
    assert not marker.exists()


def test_a_crafted_teacher_runs_nothing(tmp_path, fer):
    marker = tmp_path / "MARKER"
    evil = crafted_checkpoint(tmp_path / "teacher.pt", marker, zipped=True)
    recipe = smoke_recipe(tmp_path, f'teacher = ["{evil}"]\nteacher_weight = 0.5')
    result = train(recipe, tmp_path / "run", tmp_path / "missing.csv")
    assert result.exit_code == 2
    one_line_error(result, "teacher.pt", "refused")
    assert not marker.exists()


@pytest.mark.parametrize("content, message", [
    (b"this is a text file, not weights\n", "not a torch checkpoint"),
    (b"", "empty file"),
    ("truncated", "truncated or corrupt"),
    ("list", "not an emolens checkpoint"),
    ("folder", "is a folder"),
])
def test_export_of_an_unusable_file_is_one_line(tmp_path, smoke_run, content, message):
    bad = tmp_path / "bad.pt"
    if content == "truncated":
        whole = (smoke_run / "best.pt").read_bytes()
        bad.write_bytes(whole[: len(whole) // 2])
    elif content == "list":
        torch.save([1, 2, 3], bad)
    elif content == "folder":
        bad.mkdir()
    else:
        bad.write_bytes(content)
    result = runner.invoke(app, ["export", str(bad), "--out", str(tmp_path / "m.onnx")])
    assert result.exit_code == 2
    one_line_error(result, "bad.pt", message)
    assert not (tmp_path / "m.onnx").exists()


def test_export_out_must_be_an_onnx_file(tmp_path, smoke_run):
    for out, message in ((tmp_path / "m.json", "a .onnx file"), (smoke_run / "best.pt", "a .onnx file")):
        result = runner.invoke(app, ["export", str(smoke_run / "best.pt"), "--out", str(out)])
        assert result.exit_code == 2
        one_line_error(result, message)
    assert read_checkpoint(smoke_run / "best.pt")  # not overwritten


def test_a_failed_export_leaves_an_earlier_model_of_that_name_as_it_was(tmp_path, smoke_run, monkeypatch):
    out = tmp_path / "m.onnx"
    first = runner.invoke(app, ["export", str(smoke_run / "best.pt"), "--out", str(out)])
    assert first.exit_code == 0, first.output
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert set(before) == {"m.onnx", "m.json", "m.md"}
    import emolens.training.export as export_module

    def fails(*args, **kwargs):
        raise export_module.ExportError("ONNX and torch outputs differ (made to fail here)")

    monkeypatch.setattr(export_module, "check_parity", fails)   # fails after the new model is written
    second = runner.invoke(app, ["export", str(smoke_run / "best.pt"), "--out", str(out)])
    assert second.exit_code == 2
    one_line_error(second, "differ")
    # it used to delete m.onnx (the earlier model), leaving its card without it
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before   # no half-written files either


def test_checkpoints_of_this_version_load_as_data_only_and_resume(smoke_run, tmp_path):
    """What the running paper run writes (baseline_cnn, AdamW, constant schedule, no EMA) loads with
    weights_only=True, and the run resumes from it with the new loader."""
    for name in ("last.pt", "best.pt"):
        state = torch.load(smoke_run / name, map_location="cpu", weights_only=True)
        assert state["arch"] == "baseline_cnn" and state["arch_kwargs"] == {}
        net, loaded = load_net(smoke_run / name)
        assert loaded.keys() == state.keys()
        assert all(torch.equal(net.state_dict()[k], v) for k, v in state["model"].items())
    state = read_checkpoint(smoke_run / "last.pt")
    assert {"optimizer", "scheduler", "generator", "torch_rng", "history", "recipe"} <= state.keys()
    assert state["recipe"]["train"]["optimizer"] == "adamw" and state["epoch"] == 0
    # resume it for one more epoch in a copy (the module's run stays as it is)
    copy = tmp_path / "run"
    copy.mkdir()
    (copy / "last.pt").write_bytes((smoke_run / "last.pt").read_bytes())
    data = fer_csv(tmp_path / "fer.csv", SPLITS)
    result = train(smoke_recipe(tmp_path, source=PAPERS), copy, data, 2)
    assert result.exit_code == 0, result.output
    assert read_checkpoint(copy / "last.pt")["epoch"] == 1


def test_numpy_numbers_in_an_older_history_still_load(tmp_path, smoke_run):
    state = read_checkpoint(smoke_run / "best.pt")
    state["epoch_entry"] = {**state["epoch_entry"], "val_accuracy": np.float64(0.5), "n": np.int64(3)}
    torch.save(state, tmp_path / "old.pt")
    assert read_checkpoint(tmp_path / "old.pt")["epoch_entry"]["val_accuracy"] == 0.5


# --- item 12 (train): refused before any data loads --------------------------------------------------


def test_resuming_into_a_run_of_another_net_is_refused(tmp_path, smoke_run):
    out = tmp_path / "run"
    out.mkdir()
    (out / "last.pt").write_bytes((smoke_run / "last.pt").read_bytes())  # a baseline_cnn run
    result = train(smoke_recipe(tmp_path), out, tmp_path / "missing.csv")  # an emonet recipe
    assert result.exit_code == 2
    one_line_error(result, "last.pt", "this run trained baseline_cnn", "asks for emonet", "--no-resume")


def test_a_folder_holding_files_no_run_wrote_is_refused(tmp_path):
    out = tmp_path / "analysis"
    out.mkdir()
    (out / "curves.png").write_bytes(b"the user's own plot")
    result = train(smoke_recipe(tmp_path), out, tmp_path / "missing.csv")
    assert result.exit_code == 2
    one_line_error(result, "holds curves.png, not written by emolens train", "new or empty folder")
    assert (out / "curves.png").read_bytes() == b"the user's own plot" and not (out / "recipe.json").exists()


def test_no_resume_starts_a_new_log_instead_of_appending_to_the_old_runs(tmp_path, fer):
    out = tmp_path / "run"
    recipe = smoke_recipe(tmp_path, "swa_epochs = 1")
    assert train(recipe, out, fer, 1, "--keep-epochs").exit_code == 0
    assert (out / "swa.json").exists() and (out / "epochs" / "e001.pt").exists()
    result = train(recipe, out, fer, 2, "--no-resume")
    assert result.exit_code == 0, result.output
    epochs = [json.loads(line)["epoch"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]                          # was [1, 1, 2]: the old run's line stayed
    assert not (out / "epochs").exists()             # the old run's kept epochs would mix into averages
    assert json.loads((out / "swa.json").read_text())["epoch"] == 2   # the new run's average


def test_a_corrupt_last_pt_is_refused(tmp_path, smoke_run):
    out = tmp_path / "run"
    out.mkdir()
    (out / "last.pt").write_bytes((smoke_run / "last.pt").read_bytes()[:5000])
    result = train(smoke_recipe(tmp_path, source=PAPERS), out, tmp_path / "missing.csv")
    assert result.exit_code == 2
    one_line_error(result, "last.pt", "truncated or corrupt")


def test_out_that_is_a_file_is_refused(tmp_path, fer):
    out = tmp_path / "run"
    out.write_text("not a folder")
    result = train(smoke_recipe(tmp_path), out, fer)
    assert result.exit_code == 2
    one_line_error(result, "--out", "is a file")
    result = train(smoke_recipe(tmp_path), out / "sub", fer)
    assert result.exit_code == 2
    one_line_error(result, "cannot create the run folder")


@pytest.mark.parametrize("extra, message", [
    ("batch_size = 0", "[train] batch_size = 0"),
    ("threads = -4", "[train] threads = -4"),
    ("seed = \"0\"", "[train] seed = '0'"),
    ("lr = nan", "[train] lr = nan"),
])
def test_train_with_wrong_values_is_one_line(tmp_path, fer, extra, message):
    result = train(smoke_recipe(tmp_path, extra), tmp_path / "run", fer)
    assert result.exit_code == 2
    one_line_error(result, "smoke.toml", message)


@pytest.mark.parametrize("args, message", [
    ('"width=16"', "[net] args = 'width=16'"),
    ("{ depth = 3 }", "unknown argument 'depth' for emonet"),
    ("{ width = 8 }", "width = 8 is too narrow"),
])
def test_train_with_bad_net_args_is_one_line(tmp_path, fer, args, message):
    recipe = tmp_path / "net.toml"
    recipe.write_text(f"[net]\nname = \"emonet\"\nargs = {args}\n[data]\nferplus = \"\"\n")
    result = train(recipe, tmp_path / "run", fer)
    assert result.exit_code == 2
    one_line_error(result, "net.toml", message)


# --- item 7: non-finite numbers stop training, export and the runtime -------------------------------


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, fer, monkeypatch):
    import emolens.training.loop as loop

    real, calls = loop.joint_loss, {"n": 0}

    def nan_in_the_second_epoch(*args, **kwargs):
        calls["n"] += 1
        total, cls, inten = real(*args, **kwargs)
        return (total * float("nan") if calls["n"] > 2 else total), cls, inten  # 2 steps per epoch

    monkeypatch.setattr(loop, "joint_loss", nan_in_the_second_epoch)
    out = tmp_path / "run"
    result = train(smoke_recipe(tmp_path), out, fer, 3)
    assert result.exit_code == 1
    one_line_error(result, "training stopped at epoch 2, step 1/2", "the loss is nan", "lr = 0.05",
                   "keeps epoch 1")
    state = read_checkpoint(out / "last.pt")
    assert state["epoch"] == 0 and len(state["history"]) == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert len((out / "log.jsonl").read_text().splitlines()) == 1


def test_non_finite_weights_at_the_end_of_an_epoch_are_not_saved(tmp_path, fer, monkeypatch):
    import emolens.training.loop as loop

    monkeypatch.setattr(loop, "non_finite_parameters", lambda net: ["features.0.0.weight"])
    out = tmp_path / "run"
    result = train(smoke_recipe(tmp_path), out, fer, 1)
    assert result.exit_code == 1
    one_line_error(result, "epoch 1, step 2/2", "weights such as features.0.0.weight are not finite",
                   "no epoch was saved")
    assert not (out / "last.pt").exists() and not (out / "best.pt").exists()


def test_an_unreadable_teacher_cache_is_recomputed(tmp_path, fer, smoke_run):
    out = tmp_path / "run"
    out.mkdir()
    np.save(out / "teacher.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)  # a pickled object
    recipe = smoke_recipe(tmp_path, f'teacher = ["{smoke_run / "best.pt"}"]\nteacher_weight = 0.5')
    result = train(recipe, out, fer, 1)
    assert result.exit_code == 0, result.output
    probs = np.load(out / "teacher.npy")
    assert probs.shape == (64, 7) and np.allclose(probs.sum(1), 1, atol=1e-4)


def test_export_refuses_non_finite_weights(tmp_path, smoke_run):
    state = read_checkpoint(smoke_run / "best.pt")
    key = next(k for k, v in state["model"].items() if v.is_floating_point() and v.ndim > 1)
    state["model"][key] = torch.full_like(state["model"][key], float("nan"))
    torch.save(state, tmp_path / "nan.pt")
    result = runner.invoke(app, ["export", str(tmp_path / "nan.pt"), "--out", str(tmp_path / "m.onnx")])
    assert result.exit_code == 2
    one_line_error(result, "nan.pt", "NaN or infinity", key)
    assert not (tmp_path / "m.onnx").exists()


def test_parity_check_fails_on_nan(tmp_path, tiny_model):
    from emolens.runtime import EmotionModel
    from emolens.training.export import ExportError, check_parity

    class NanNet(torch.nn.Module):
        def forward(self, x):
            return torch.full((len(x), 7), float("nan")), torch.full((len(x), 7), float("nan"))

    faces = np.zeros((2, 48, 48), np.uint8)
    with pytest.raises(ExportError, match="not finite"):  # NaN > tol is False: it used to pass
        check_parity(NanNet(), EmotionModel(tiny_model), faces)


@pytest.mark.parametrize("storage, fix", [("int8", "--weights float16"), ("float16", "--weights float32"),
                                           ("float32", "report it")])
def test_parity_failure_names_a_storage_that_rounds_less(tmp_path, tiny_model, storage, fix):
    from emolens.runtime import EmotionModel
    from emolens.training.export import ExportError, check_parity

    class Off(torch.nn.Module):  # torch outputs far from any exported file's
        def forward(self, x):
            logits = torch.zeros(len(x), 7)
            logits[:, 0] = 50.0
            return logits, torch.full((len(x), 7), 10.0)

    faces = np.random.default_rng(0).integers(0, 256, (4, 48, 48), dtype=np.uint8)
    with pytest.raises(ExportError, match=f"for {storage} weights.*not faithful: .*{fix}"):
        check_parity(Off(), EmotionModel(tiny_model), faces, storage)


def nan_model(path: Path) -> Path:
    import onnx
    from onnx import numpy_helper

    make_tiny_model(path)
    model = onnx.load(str(path))
    for init in model.graph.initializer:
        if init.name == "B":
            init.CopyFrom(numpy_helper.from_array(np.full(7, np.nan, np.float32), "B"))
    onnx.save(model, str(path))
    return path


def test_runtime_refuses_a_model_with_non_finite_scores(tmp_path):
    from emolens.runtime import EmotionModel, ModelError

    model = nan_model(tmp_path / "nan.onnx")
    with pytest.raises(ModelError, match="nan.onnx: the model gives scores that are not finite"):
        EmotionModel(model)
    photo = tmp_path / "p.png"
    cv2.imwrite(str(photo), np.full((64, 64, 3), 128, np.uint8))
    result = runner.invoke(app, ["predict", str(photo), "--json", "--model", str(model)])
    assert result.exit_code == 2 and "NaN" not in result.stdout and "nan.onnx" in result.output
    fer = fer_csv(tmp_path / "fer.csv", ["PublicTest"] * 3)
    result = runner.invoke(app, ["evaluate", str(fer), "--json", "--model", str(model)])
    assert result.exit_code == 2
    one_line_error(result, "nan.onnx", "not finite")


def test_evaluate_json_is_strict_json(tmp_path, tiny_model):
    fer = fer_csv(tmp_path / "fer.csv", ["PublicTest"] * 5)
    result = runner.invoke(app, ["evaluate", str(fer), "--json", "--model", str(tiny_model)])
    assert result.exit_code == 0, result.output
    json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))


# --- item 9: datasets: nothing dropped or mixed silently ---------------------------------------------


def test_a_csv_without_usage_has_no_splits(tmp_path, tiny_model):
    path = fer_csv(tmp_path / "nousage.csv", ["x"] * 6, header="emotion,pixels")
    with pytest.raises(DatasetError, match="has no Usage column"):  # training and validation were the same rows
        load_fer2013_csv(path, "Training")
    assert len(load_fer2013_csv(path, "all")) == 6
    result = runner.invoke(app, ["evaluate", str(path), "--json", "--model", str(tiny_model)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["split"] == "all" and report["n"] == 6
    result = runner.invoke(app, ["evaluate", str(path), "--split", "PublicTest", "--model", str(tiny_model)])
    assert result.exit_code == 2
    one_line_error(result, "nousage.csv", "has no Usage column")


@pytest.mark.parametrize("usage", ["Validation", "training", "", "PublicTest "])
def test_unknown_usage_values_are_errors_not_dropped(tmp_path, usage):
    path = fer_csv(tmp_path / "fer.csv", ["Training", "PublicTest", usage, "Training"])
    with pytest.raises(DatasetError) as info:
        load_fer2013_csv(path, "Training")
    assert f"line 4: Usage {usage!r} is not one of Training, PublicTest, PrivateTest" in str(info.value)


def test_all_three_usage_values_are_legitimate(tmp_path):
    path = fer_csv(tmp_path / "fer.csv", ["Training", "PublicTest", "PrivateTest", "PrivateTest"])
    assert [len(load_fer2013_csv(path, s)) for s in ("Training", "PublicTest", "PrivateTest", "all")] == [1, 1, 2, 4]


@pytest.mark.parametrize("change, message", [
    ("shifted", "not row-aligned"),       # one row missing at the top: every later row moves up
    ("short", "vote rows but"),           # a row missing at the end
    ("long", "vote rows but"),            # an extra row
    ("usage", "row 5 has Usage PublicTest but row 5 of"),
])
def test_a_misaligned_ferplus_file_is_refused(tmp_path, fer, change, message):
    usages = list(SPLITS)
    if change == "shifted":
        usages = usages[1:] + ["PublicTest"]
    elif change == "short":
        usages = usages[:-1]
    elif change == "long":
        usages = usages + ["PublicTest"]
    else:
        usages[4] = "PublicTest"
    votes = ferplus_csv(tmp_path / "fer2013new.csv", usages)
    with pytest.raises(DatasetError, match=message):
        load_fer2013_csv(fer, "PublicTest", ferplus=votes)
    if change in ("shifted", "usage"):  # a partial read (--limit) checks the rows it read
        with pytest.raises(DatasetError):
            load_fer2013_csv(fer, "PublicTest", ferplus=votes, limit=5)
    good = ferplus_csv(tmp_path / "good.csv", SPLITS)
    assert load_fer2013_csv(fer, "PublicTest", ferplus=good).intensity.shape == (32, 7)


def test_evaluate_with_a_misaligned_ferplus_is_one_line(tmp_path, fer, tiny_model):
    votes = ferplus_csv(tmp_path / "fer2013new.csv", SPLITS[1:] + ["PublicTest"])
    result = runner.invoke(app, ["evaluate", str(fer), "--ferplus", str(votes), "--model", str(tiny_model)])
    assert result.exit_code == 2
    one_line_error(result, "fer2013new.csv", "not row-aligned")


def test_byte_order_marks_are_accepted(tmp_path, fer):
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + fer.read_bytes())
    votes = ferplus_csv(tmp_path / "votes.csv", SPLITS)
    votes.write_bytes(b"\xef\xbb\xbf" + votes.read_bytes())
    a, b = load_fer2013_csv(fer, "Training"), load_fer2013_csv(bom, "Training", ferplus=votes)
    np.testing.assert_array_equal(a.images, b.images)
    assert b.intensity is not None


@pytest.mark.parametrize("spell", [
    lambda p: p.replace(" ", "  "),          # doubled spaces
    lambda p: p.replace(" ", "\t"),          # tabs
    lambda p: " " + p + "  ",                # leading and trailing blanks
    lambda p: p.replace(" ", " \t ", 100),   # mixed
])
def test_whitespace_variants_in_the_pixel_field_parse_alike(tmp_path, spell):
    row = pixels(7)
    plain, odd = tmp_path / "plain.csv", tmp_path / "odd.csv"
    plain.write_text(f"emotion,pixels,Usage\n3,{row},Training\n")
    odd.write_text(f"emotion,pixels,Usage\r\n3,{spell(row)},Training\r\n")
    np.testing.assert_array_equal(load_fer2013_csv(plain).images, load_fer2013_csv(odd).images)


@pytest.mark.parametrize("text, message", [
    ("emotion,pixels,Usage\n0," + " ".join(["abc"] * 2304) + ",PublicTest\n", "line 2: pixel value 'abc' is not an integer"),
    ("emotion,pixels,Usage\n0," + " ".join(["1.5"] * 2304) + ",PublicTest\n", "line 2: pixel value '1.5' is not an integer"),
    ("emotion,pixels,Usage\n0," + " ".join(["-1"] * 2304) + ",PublicTest\n", "line 2: pixel value '-1' is not an integer"),
    ("emotion,pixels,Usage\n0," + " ".join(["256"] * 2304) + ",PublicTest\n", "line 2: pixel value 256 is outside 0..255"),
    ("emotion,pixels,Usage\n0,1 2 3\n", "line 2: 2 fields, expected 3"),
    ("emotion,pixels,Usage\n0\n", "line 2: 1 fields, expected 3"),
    ("emotion,pixels,Usage\n0,1 2 3,PublicTest\n", "line 2: 3 pixel values, expected 2304"),
    ("emotion,pixels,Usage\n", "no data rows"),
    ("emotion,pixels,Usage\n0," + " ".join(["1"] * 2304) + ",Training\n", "no PublicTest rows; the file has Training"),
])
def test_evaluate_on_malformed_csv_is_one_line(tmp_path, tiny_model, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    result = runner.invoke(app, ["evaluate", str(path), "--split", "PublicTest", "--model", str(tiny_model)])
    assert result.exit_code == 2
    one_line_error(result, "bad.csv", message)


def test_evaluate_refuses_a_negative_limit_and_an_empty_path(tmp_path, fer, tiny_model):
    result = runner.invoke(app, ["evaluate", str(fer), "--limit", "-5", "--model", str(tiny_model)])
    assert result.exit_code == 2 and "--limit" in result.output
    with pytest.raises(DatasetError, match="limit -5"):
        load_dataset(fer, "Training", limit=-5)
    result = runner.invoke(app, ["evaluate", "", "--model", str(tiny_model)])
    assert result.exit_code == 2
    one_line_error(result, "empty string")


def test_evaluate_plot_paths_are_checked_before_the_evaluation(tmp_path, fer, tiny_model):
    missing_data = tmp_path / "missing.csv"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for plot, message in ((blocker / "c.png", "is a file, not a folder"), (tmp_path / "c.txt", ".png"),
                          (tmp_path, "is a folder")):
        result = runner.invoke(app, ["evaluate", str(missing_data), "--plot", str(plot), "--model", str(tiny_model)])
        assert result.exit_code == 2
        one_line_error(result, message)  # reported although the data is missing too: checked first
    plot = tmp_path / "new" / "folder" / "confusion.png"  # a missing folder is created
    result = runner.invoke(app, ["evaluate", str(fer), "--plot", str(plot), "--model", str(tiny_model)])
    assert result.exit_code == 0, result.output
    assert plot.stat().st_size > 1000


def faces_folder(root: Path) -> Path:
    for name in ("happy", "sad"):
        (root / name).mkdir(parents=True)
        for i in range(2):
            cv2.imwrite(str(root / name / f"{i}.png"), np.random.default_rng(i).integers(0, 256, (48, 48), np.uint8))
    return root


def test_class_folders_skip_and_count_what_is_not_a_picture(tmp_path, tiny_model, caplog):
    root = faces_folder(tmp_path / "faces")
    (root / "happy" / "x.jpg").mkdir()  # a folder named like a picture, holding one
    cv2.imwrite(str(root / "happy" / "x.jpg" / "inner.png"), np.zeros((48, 48), np.uint8))
    os.mkfifo(root / "sad" / "pipe.jpg")  # reading it would block forever
    (root / "sad" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    locked = root / "sad" / "locked.png"
    cv2.imwrite(str(locked), np.zeros((48, 48), np.uint8))
    import emolens.images as images_module

    real_read = images_module.read_image

    def unreadable(path, *args, **kwargs):  # root reads any file: make this one fail as for a user
        if str(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return real_read(path, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp, caplog.at_level("WARNING"):
        mp.setattr(images_module, "read_image", unreadable)
        ds = load_dataset(root, "all")
    assert len(ds) == 5 and ds.skipped["unreadable"] == 3
    assert "pipe.jpg" in caplog.text and "locked.png" in caplog.text
    result = runner.invoke(app, ["evaluate", str(root), "--json", "--model", str(tiny_model)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n"] == 6  # locked.png reads here (no patch); the pipe and the link do not


def ferplus_folder(root: Path, names: list[str]) -> Path:
    root.mkdir(parents=True)
    lines = []
    for i, name in enumerate(names):
        lines.append(f"{name},\"(0, 0, 48, 48)\",0,8,1,0,0,0,0,0,1,0")
        if "/" not in name:
            cv2.imwrite(str(root / name), np.random.default_rng(i).integers(0, 256, (48, 48), np.uint8))
    (root / "label.csv").write_text("\n".join(lines) + "\n")
    return root


def test_ferplus_label_csv_that_is_not_utf8_is_one_line(tmp_path, tiny_model):
    root = ferplus_folder(tmp_path / "FER2013Valid", ["fer0000001.png"])
    (root / "label.csv").write_bytes("fer0000001.png,\"(0, 0, 48, 48)\",0,8,1,0,0,0,0,0,1,0 \xe9\n".encode("latin-1"))
    result = runner.invoke(app, ["evaluate", str(root), "--model", str(tiny_model)])
    assert result.exit_code == 2
    one_line_error(result, "label.csv", "not UTF-8")
    (root / "label.csv").write_bytes(b"\xef\xbb\xbf" + "fer0000001.png,\"(0, 0, 48, 48)\",0,8,1,0,0,0,0,0,1,0\n".encode())
    assert len(load_dataset(root, "all")) == 1  # a BOM is fine


def test_ferplus_label_csv_cannot_name_files_outside_its_folder(tmp_path):
    outside = tmp_path / "secret.png"
    cv2.imwrite(str(outside), np.zeros((48, 48), np.uint8))
    for name in ("../secret.png", str(outside)):
        root = ferplus_folder(tmp_path / f"F{len(name)}", ["fer0000001.png", name])
        with pytest.raises(DatasetError, match="is not a file name beside label.csv"):
            load_dataset(root, "all")
