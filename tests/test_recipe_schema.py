"""The recipe schema (issue 25, items 8 and 12): every key typed and range-checked before any data
loads, unknown sections and keys refused with a hint, one line naming the file, the key and the fix."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="recipes build their net: the [train] extra (torch)")
pytest.importorskip("pydantic", reason="the recipe schema needs pydantic (the [train] extra)")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from emolens.cli import app  # noqa: E402
from emolens.training.recipe import SECTIONS, Recipe, RecipeError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def load(tmp_path: Path, text: str) -> Recipe:
    path = tmp_path / "r.toml"
    path.write_text(text)
    return Recipe.load(path)


def test_every_shipped_recipe_validates_and_round_trips():
    recipes = sorted((ROOT / "recipes").rglob("*.toml"))
    assert len(recipes) >= 6
    for path in recipes:
        r = Recipe.load(path)
        assert r.source == str(path) and r.name
        again = Recipe.from_dict(json.loads(json.dumps(r.to_dict())))  # what recipe.json and checkpoints hold
        assert again == r, path


def test_dataclass_like_api_is_kept():
    r = Recipe()
    assert r.train.lr == 0.05 and r.train.epochs == 30 and r.net.name == "emonet" and r.augment.flip == 0.5
    assert r.export.weights == "float16" and r.data.ferplus.endswith("fer2013new.csv")
    r.train.epochs = 3  # assignment still works, and is validated
    assert r.train.epochs == 3
    with pytest.raises(ValueError):
        r.train.batch_size = 0
    assert set(r.to_dict()) == {"name", "source", "data", "net", "train", "augment", "export"}


@pytest.mark.parametrize("text, expected", [
    # misspelt sections were dropped silently (a 1-epoch smoke run became 30 epochs)
    ("[training]\nepochs = 1\n", "unknown section [training] (did you mean [train]?)"),
    ("[trian]\nepochs = 1\n", "unknown section [trian] (did you mean [train]?)"),
    ("epochs = 1\n", "epochs belongs in [train]"),
    ("[train]\nepochz = 3\n", "unknown key 'epochz' in [train] (did you mean epochs?)"),
    ("[train]\npath = 'x.csv'\n", "unknown key 'path' in [train] (it belongs in [data])"),
    # nonsense values
    ("[train]\nbatch_size = -8\n", "[train] batch_size = -8: input should be greater than or equal to 1"),
    ("[train]\nbatch_size = 0\n", "[train] batch_size = 0"),
    ("[train]\nmixup = -1\n", "[train] mixup = -1: input should be greater than or equal to 0"),
    ("[train]\nbf16 = \"maybe\"\n", "[train] bf16 = 'maybe': input should be 'auto', 'on' or 'off'"),
    ("[export]\nweights = \"int4\"\n", "[export] weights = 'int4': input should be 'float16', 'int8' or 'float32'"),
    ("[train]\nlr = nan\n", "[train] lr = nan: input should be a finite number"),
    ("[train]\nlr = inf\n", "[train] lr = inf"),
    ("[train]\nlr = 0\n", "[train] lr = 0: input should be greater than 0"),
    ("[train]\nthreads = -4\n", "[train] threads = -4"),
    ("[train]\nepochs = 0\n", "[train] epochs = 0"),
    ("[train]\nmix_prob = 1.5\n", "[train] mix_prob = 1.5"),
    ("[augment]\nflip = 2.0\n", "[augment] flip = 2.0: input should be less than or equal to 1"),
    ("[augment]\nscale = 1.0\n", "[augment] scale = 1.0"),
    ("[train]\noptimizer = \"adagrad\"\n",
     "[train] optimizer = 'adagrad': input should be 'sgd', 'adamw', 'adam' or 'rmsprop'"),
    ("[augment]\nbrightness_levels = 1\n", "[augment] brightness_levels = 1 is no choice of offset"),
    ("[augment]\nbrightness_levels = 7\nbrightness = 0.0\n", "brightness_levels = 7 needs brightness > 0"),
    ("[augment]\nbrightness_levels = -7\n", "[augment] brightness_levels = -7: input should be greater than"),
    ("[train]\nschedule = \"step\"\n", "[train] schedule = 'step'"),
    ("[train]\nmomentum = 0.0\n", "[train] momentum = 0.0"),  # Nesterov SGD needs momentum
    ("[train]\nwarmup = 1.0\n", "[train] warmup = 1.0"),  # OneCycleLR divides by zero
    ("[train]\nswa_epochs = 50\nepochs = 10\n", "swa_epochs = 50 must be between 0 and epochs (10)"),
    ("[train]\nteacher_weight = 0.5\n", "teacher_weight > 0 needs teacher"),
    ("[data]\ntrain_split = \"holdout\"\n", "unknown split 'holdout'"),
    ("[data]\nlimit = -5\n", "[data] limit = -5"),
    # wrong types gave TypeError / ZeroDivisionError tracebacks
    ("[train]\nepochs = \"3\"\n", "[train] epochs = '3': input should be a valid integer"),
    ("[train]\nepochs = 2.5\n", "[train] epochs = 2.5: input should be a valid integer"),
    ("[train]\nbatch_size = true\n", "[train] batch_size = True: input should be a valid integer"),
    ("[train]\nteacher = \"runs/a/best.pt\"\n", "[train] teacher = 'runs/a/best.pt': input should be a valid list"),
    ("[train]\nteacher = [1]\n", "[train] teacher[0] = 1: input should be a valid string"),
    ("train = 5\n", "[train] must be a table of keys (got 5)"),
    ("name = 3\n", "name = 3: input should be a valid string"),
    # [net] args checked against the net's signature, and the net built
    ("[net]\nname = \"emonett\"\n", "unknown network 'emonett' (did you mean emonet?)"),
    ("[net]\nname = \"emonet\"\nargs = \"width=40\"\n", "[net] args = 'width=40': input should be a valid dictionary"),
    ("[net]\nname = \"emonet\"\nargs = { widht = 40 }\n", "unknown argument 'widht' for emonet (did you mean width?)"),
    ("[net]\nname = \"baseline_cnn\"\nargs = { width = 40 }\n", "it takes no arguments"),
    ("[net]\nname = \"emonet\"\nargs = { width = \"40\" }\n", "width = '40' for emonet: input should be a valid integer"),
    ("[net]\nname = \"emonet\"\nargs = { width = 8 }\n", "width = 8 is too narrow for squeeze-excitation"),
    ("[net]\nname = \"emonet\"\nargs = { width = 0 }\n", "width = 0 for emonet"),
    ("[net]\nname = \"emonet\"\nargs = { blocks = [1, \"x\"] }\n", "blocks[1] = 'x' for emonet"),
    ("[net]\nname = \"emonet\"\nargs = { width = 512, blocks = [16, 16, 16, 16] }\n", "M parameters"),
    # Liu's ablation switches (issue 28)
    ("[net]\nname = \"liu_cnn\"\nargs = { activation = \"swish\" }\n",
     "activation = 'swish' for liu_cnn: input should be 'relu', 'elu' or 'tanh'"),
    ("[net]\nname = \"liu_cnn\"\nargs = { dropout = 1.5 }\n",
     "dropout = 1.5 for liu_cnn: input should be less than or equal to 0.9"),
    ("[net]\nname = \"liu_cnn\"\nargs = { dropout = -0.1 }\n", "dropout = -0.1 for liu_cnn"),
    ("[net]\nname = \"liu_cnn\"\nargs = { residual = \"yes\" }\n",
     "residual = 'yes' for liu_cnn: input should be a valid boolean"),
    ("[net]\nname = \"liu_cnn\"\nargs = { activaton = \"elu\" }\n",
     "unknown argument 'activaton' for liu_cnn (did you mean activation?)"),
])
def test_bad_recipes_are_one_line_naming_file_and_key(tmp_path, text, expected):
    with pytest.raises(RecipeError) as info:
        load(tmp_path, text)
    message = str(info.value)
    assert expected in message, message
    assert message.startswith(str(tmp_path / "r.toml") + ": ") and "\n" not in message


def test_liu_ablation_options_are_accepted(tmp_path):
    """Every switch of Liu's grid: activation, dropout, residual, the four optimizers, and "before and
    after learning-rate scheduling and gradient clipping" as schedule constant/cosine and grad_clip 0/>0."""
    for optimizer in ("sgd", "adamw", "adam", "rmsprop"):
        for activation in ("relu", "elu", "tanh"):
            r = load(tmp_path, f"[net]\nname = \"liu_cnn\"\nargs = {{ activation = \"{activation}\", dropout = 0.0, "
                               f"residual = false }}\n[train]\noptimizer = \"{optimizer}\"\nschedule = \"constant\"\n"
                               "grad_clip = 0.0\nweight_decay = 0.0\n")
            assert r.train.optimizer == optimizer and r.net.args["activation"] == activation
    r = load(tmp_path, "[net]\nname = \"liu_cnn\"\nargs = { dropout = 0.9, residual = true }\n"
                       "[train]\noptimizer = \"adam\"\nschedule = \"cosine\"\ngrad_clip = 1.0\nweight_decay = 1e-4\n"
                       "[augment]\nbrightness = 0.3\nbrightness_levels = 7\n")
    assert (r.train.schedule, r.train.grad_clip, r.augment.brightness_levels) == ("cosine", 1.0, 7)


def test_several_problems_are_reported_together(tmp_path):
    with pytest.raises(RecipeError) as info:
        load(tmp_path, "[train]\nbatch_size = -8\nmixup = -1\nbf16 = \"maybe\"\nlr = 0\n")
    message = str(info.value)
    assert "batch_size" in message and "lr" in message and "(and 1 more)" in message


def test_good_spellings_are_accepted(tmp_path):
    r = load(tmp_path, "[train]\nlr = 1\nbf16 = true\nteacher = []\n[data]\nferplus = \"\"\ntrain_split = \"train\"\n"
                       "[net]\nname = \"emonet\"\nargs = { width = 16, blocks = [1, 1, 1, 1], se = false }\n")
    assert r.train.lr == 1.0 and r.train.bf16 == "on" and r.data.ferplus is None
    assert r.net.args == {"width": 16, "blocks": [1, 1, 1, 1], "se": False}  # stored as written (checkpoints compare them)


@pytest.mark.parametrize("content, expected", [
    (None, "no such recipe file"),
    (b"[train\n", "not valid TOML"),
    (b"[train]\nname = \"\xff\xfe\"\n", "not UTF-8"),
    ("folder", "is a folder"),
])
def test_unreadable_recipe_files(tmp_path, content, expected):
    path = tmp_path / "r.toml"
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(RecipeError, match=expected):
        Recipe.load(path)


def test_train_refuses_a_bad_recipe_before_any_data_loads(tmp_path):
    """The recipe is validated first: the missing dataset is never reached, nothing is created."""
    recipe = tmp_path / "smoke.toml"
    recipe.write_text("[training]\nepochs = 1\n")
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--recipe", str(recipe), "--out", str(out), "--data",
                                 str(tmp_path / "missing.csv")])
    assert result.exit_code == 2
    assert "unknown section [training]" in result.output and "missing.csv" not in result.output
    assert "Traceback" not in result.output and not out.exists()


@pytest.mark.parametrize("option, value", [("--epochs", "0"), ("--limit", "-5"), ("--val-limit", "-1"),
                                           ("--stop-after", "-2")])
def test_train_option_overrides_are_range_checked(tmp_path, option, value):
    recipe = tmp_path / "r.toml"
    recipe.write_text("[train]\nepochs = 1\n")
    result = runner.invoke(app, ["train", "--recipe", str(recipe), "--out", str(tmp_path / "run"), option, value])
    assert result.exit_code == 2 and option in result.output


def test_train_option_overrides_are_validated_with_the_recipe(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text("[train]\nepochs = 10\nswa_epochs = 5\n")
    result = runner.invoke(app, ["train", "--recipe", str(recipe), "--out", str(tmp_path / "run"), "--epochs", "2"])
    assert result.exit_code == 2 and "swa_epochs = 5 must be between 0 and epochs (2)" in result.output
    r = Recipe.load(recipe, {"train": {"epochs": 7}, "data": {"limit": 3}})
    assert r.train.epochs == 7 and r.data.limit == 3


# --- property: any TOML-shaped dict gives a Recipe or one clean RecipeError (a ValueError), nothing else

KNOWN = sorted({k for model in SECTIONS.values() for k in model.model_fields} | set(SECTIONS)
               | {"name", "source", "training", "trian", "width", "blocks", "se", "dropout", "args"})
keys = st.sampled_from(KNOWN) | st.text(max_size=8)
scalars = (st.booleans() | st.integers() | st.integers(-3, 600) | st.floats() | st.floats(0, 1)
           | st.text(max_size=12) | st.sampled_from(["emonet", "baseline_cnn", "sgd", "adamw", "auto", "int8",
                                                      "Training", "PublicTest", "onecycle", ""])
           | st.datetimes() | st.dates())
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
                      max_leaves=12)
net_args = st.dictionaries(st.sampled_from(["width", "blocks", "se", "dropout"]) | st.text(max_size=5),
                           st.integers(-2, 600) | st.lists(st.integers(-1, 20), max_size=7) | st.booleans()
                           | st.floats() | st.text(max_size=4), max_size=3)
sections = st.fixed_dictionaries({}, optional={
    "net": st.fixed_dictionaries({}, optional={"name": st.sampled_from(["emonet", "baseline_cnn", "vgg"]) | st.text(max_size=6),
                                               "args": net_args | values}),
    "train": st.dictionaries(keys, values, max_size=6),
    "data": st.dictionaries(keys, values, max_size=4),
    "augment": st.dictionaries(keys, values, max_size=4),
    "export": st.dictionaries(keys, values, max_size=2),
})
recipe_dicts = st.one_of(sections, st.dictionaries(keys, values, max_size=6),
                         st.builds(lambda a, b: {**a, **b}, sections, st.dictionaries(keys, values, max_size=3)))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recipe_dicts)
def test_recipe_loader_gives_a_recipe_or_a_clean_error(d):
    try:
        r = Recipe.from_dict({**d, "source": "prop.toml"} if isinstance(d, dict) else d)
    except RecipeError as exc:
        message = str(exc)
        assert message.startswith("prop.toml: ") and "\n" not in message
        return
    # a valid recipe is plain data: it is saved as recipe.json and inside checkpoints
    text = json.dumps(r.to_dict(), allow_nan=False)
    assert Recipe.from_dict(json.loads(text)) == r
    assert r.train.batch_size >= 1 and r.train.epochs >= 1 and math.isfinite(r.train.lr) and r.train.lr > 0
    assert 0 <= r.augment.flip <= 1 and r.train.bf16 in ("auto", "on", "off")


@settings(max_examples=50, deadline=None)
@given(st.none() | st.integers() | st.text(max_size=5) | st.lists(st.integers(), max_size=3))
def test_a_recipe_that_is_not_a_table_is_a_clean_error(d):
    with pytest.raises(RecipeError, match="a recipe is a table of sections"):
        Recipe.from_dict(d)
