"""A training recipe: everything that determines a run, read from a TOML file under ``recipes/``.

The whole recipe is validated against a schema (pydantic) before any data loads: every key
typed and range-checked, enums as literals, ``[net] args`` against the net's signature (the
net is built on the meta device), unknown sections and keys refused with a "did you mean"
hint. A bad recipe is one ``RecipeError`` line naming the file, the key and the fix.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from emolens.training.augment import AugmentConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# every section: exact TOML types (no "3" for 3, no true for 1), no NaN or infinity, no unknown keys
SECTION = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, validate_assignment=True)


class RecipeError(ValueError):
    """A recipe is unreadable or invalid; the message names the file, the key and the fix."""


class DataConfig(BaseModel):
    model_config = SECTION

    path: str = Field("../shared/datasets/fer2013/fer2013.csv.gz", min_length=1)
    ferplus: str | None = "../shared/datasets/fer2013/fer2013new.csv"  # "" (None): no FER+ votes
    train_split: str = "Training"
    val_split: str = "PublicTest"
    limit: int = Field(0, ge=0)      # >0: use only the first N training rows (smoke runs)
    val_limit: int = Field(0, ge=0)

    @field_validator("ferplus", mode="before")
    @classmethod
    def _no_ferplus(cls, value):
        return None if value == "" else value  # TOML has no null: ferplus = "" trains without FER+ votes

    @field_validator("train_split", "val_split")
    @classmethod
    def _known_split(cls, value: str) -> str:
        from emolens.training.data import canonical_split

        canonical_split(value)  # DatasetError (a ValueError) names the accepted splits
        return value


class NetConfig(BaseModel):
    model_config = SECTION

    name: str = "emonet"
    args: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _buildable(self) -> "NetConfig":
        from emolens.training.nets import check_net

        check_net(self.name, self.args)
        return self


class TrainConfig(BaseModel):
    model_config = SECTION

    epochs: int = Field(30, ge=1, le=100_000)
    batch_size: int = Field(128, ge=1, le=65_536)
    # sgd: Nesterov momentum | adamw: decoupled decay | adam, rmsprop: decay as L2 (added to the gradient)
    optimizer: Literal["sgd", "adamw", "adam", "rmsprop"] = "sgd"
    lr: float = Field(0.05, gt=0, le=100)           # peak learning rate
    momentum: float = Field(0.9, gt=0, lt=1)        # SGD (Nesterov) momentum
    weight_decay: float = Field(5e-4, ge=0, le=1)   # on conv and dense weights, never on biases or batch norm
    schedule: Literal["onecycle", "cosine", "constant"] = "onecycle"
    warmup: float = Field(0.15, ge=0, lt=1)         # fraction of steps warming up (onecycle)
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    class_weighting: Literal["none", "sqrt_inverse"] = "none"
    intensity_weight: float = Field(1.0, ge=0, le=100)  # weight of the FER+ intensity loss
    # what the sigmoid intensity head learns: the FER+ vote fractions (rows without votes add no loss), or
    # the class labels one-hot, so both heads learn the same labels (Xu et al.'s sigmoid-vs-softmax ablation)
    intensity_targets: Literal["ferplus", "labels"] = "ferplus"
    soft_targets: float = Field(0.0, ge=0, le=1)    # weight of the FER+ vote distribution in the class target
    mixup: float = Field(0.0, ge=0, le=100)         # Beta(a, a) of mixup; 0 = off
    cutmix: float = Field(0.0, ge=0, le=100)        # Beta(a, a) of CutMix; 0 = off
    mix_prob: float = Field(0.5, ge=0, le=1)        # fraction of batches mixed when mixup/cutmix is on
    teacher: list[str] = Field(default_factory=list)  # best.pt checkpoints or .onnx models whose averaged predictions are soft targets
    teacher_weight: float = Field(0.0, ge=0, le=1)  # weight of the teacher distribution in the class target
    teacher_temperature: float = Field(1.0, gt=0, le=100)
    teacher_online: bool = False    # teachers score every augmented batch (best.pt only) instead of the clean rows once
    teacher_intensity_weight: float = Field(0.0, ge=0, le=1)  # online only: weight of the teachers' intensities in the intensity target
    ema_decay: float = Field(0.999, ge=0, lt=1)     # 0 disables the weight average
    swa_epochs: int = Field(0, ge=0)                # >0: also average the raw weights of the last N epochs (SWA) into swa.pt
    sam_rho: float = Field(0.0, ge=0, le=10)        # >0: sharpness-aware minimisation with this radius (two passes per step)
    grad_clip: float = Field(5.0, ge=0)             # 0 = off
    bf16: Literal["auto", "on", "off"] = "auto"     # auto (only where the CPU has native bf16) | on | off
    threads: int = Field(0, ge=0, le=1024)          # 0 = all cores
    seed: int = Field(0, ge=0, lt=2**63)

    @field_validator("bf16", mode="before")
    @classmethod
    def _bf16_bool(cls, value):
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


class ExportConfig(BaseModel):
    model_config = SECTION

    weights: Literal["float16", "int8", "float32"] = "float16"  # how `emolens export` stores the weights by default


SECTIONS: dict[str, type[BaseModel]] = {
    "data": DataConfig, "net": NetConfig, "train": TrainConfig, "augment": AugmentConfig, "export": ExportConfig,
}


class Recipe(BaseModel):
    model_config = SECTION

    name: str = "run"
    source: str = ""          # the recipe file it was read from
    data: DataConfig = Field(default_factory=DataConfig)
    net: NetConfig = Field(default_factory=NetConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)

    @model_validator(mode="after")
    def _consistent(self) -> "Recipe":
        t = self.train
        if t.swa_epochs > t.epochs:
            raise ValueError(f"[train] swa_epochs = {t.swa_epochs} must be between 0 and epochs ({t.epochs})")
        if t.teacher_intensity_weight > 0 and not t.teacher_online:
            raise ValueError("[train] teacher_intensity_weight needs teacher_online = true "
                             "(static teachers cache classes only)")
        if (t.teacher_weight > 0 or t.teacher_intensity_weight > 0) and not t.teacher:
            raise ValueError("[train] teacher_weight > 0 needs teacher = [\"runs/X/best.pt\", ...]")
        return self

    def to_dict(self) -> dict:
        return self.model_dump()

    @classmethod
    def from_dict(cls, d: dict, overrides: dict | None = None) -> "Recipe":
        """A validated recipe from a TOML-shaped dict (``overrides``: ``{section: {key: value}}`` on top)."""
        where = d.get("source") if isinstance(d, dict) and isinstance(d.get("source"), str) and d.get("source") else "recipe"
        if not isinstance(d, dict):
            raise RecipeError(f"{where}: a recipe is a table of sections, not {type(d).__name__}")
        if overrides:
            d = dict(d)
            for section, values in overrides.items():
                d[section] = {**(d.get(section) if isinstance(d.get(section), dict) else {}), **values}
        try:
            return cls.model_validate(d)
        except ValidationError as exc:
            problems = [describe_error(err) for err in exc.errors(include_url=False)]
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            raise RecipeError(f"{where}: " + "; ".join(problems[:3]) + more) from None

    @classmethod
    def load(cls, path: str | Path, overrides: dict | None = None) -> "Recipe":
        path = Path(path)
        try:
            with open(path, "rb") as fh:
                d = tomllib.load(fh)
        except FileNotFoundError:
            raise RecipeError(f"{path}: no such recipe file; see recipes/ for examples") from None
        except IsADirectoryError:
            raise RecipeError(f"{path}: is a folder; pass a recipe .toml file (see recipes/)") from None
        except OSError as exc:
            raise RecipeError(f"{path}: cannot read it ({exc.strerror or exc})") from None
        except UnicodeDecodeError:
            raise RecipeError(f"{path}: not UTF-8 text; a recipe is a UTF-8 TOML file") from None
        except tomllib.TOMLDecodeError as exc:
            raise RecipeError(f"{path}: not valid TOML ({exc})") from None
        d.setdefault("name", path.stem)
        d["source"] = str(path)
        return cls.from_dict(d, overrides)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _did_you_mean(word: str, choices, form: str = "{}") -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.7)
    return f" (did you mean {form.format(close[0])}?)" if close else ""


def describe_error(err: dict) -> str:
    """One pydantic error as ``[section] key = value: what is wrong``, with a hint for unknown names."""
    loc = [str(p) if not isinstance(p, int) else p for p in err["loc"]]
    if err["type"] == "extra_forbidden":
        if len(loc) == 1:  # a top-level name: an unknown section, or a key that belongs in one
            word = loc[0]
            owner = [s for s, model in SECTIONS.items() if word in model.model_fields]
            if owner:
                return f"{word} belongs in [{owner[0]}], not at the top of the recipe"
            hint = _did_you_mean(word, SECTIONS, "[{}]")
            shown = word if word.isprintable() and word else repr(word)
            return (f"unknown section [{shown}]{hint}; the sections are "
                    + ", ".join(f"[{s}]" for s in SECTIONS))
        section, key = loc[0], loc[1]
        fields = SECTIONS[section].model_fields if section in SECTIONS else {}
        hint = _did_you_mean(key, fields)
        if not hint:
            owner = [s for s, model in SECTIONS.items() if key in model.model_fields and s != section]
            hint = f" (it belongs in [{owner[0]}])" if owner else ""
        return f"unknown key {key!r} in [{section}]" + (hint or f"; known keys: {', '.join(fields)}")
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "value_error" and len(loc) < 2:  # our own checks: the message says what and where
        return (f"[{loc[0]}] " if loc else "") + msg
    if not loc:
        return msg
    if len(loc) == 1:
        name = loc[0]
        if name in SECTIONS:
            return f"[{name}] must be a table of keys (got {_shown(err.get('input'))})"
        return f"{name} = {_shown(err.get('input'))}: {msg.lower()}"
    key = loc[1] + "".join(f"[{p}]" for p in loc[2:])
    return f"[{loc[0]}] {key} = {_shown(err.get('input'))}: {msg.lower()}"
