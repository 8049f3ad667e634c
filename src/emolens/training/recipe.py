"""A training recipe: everything that determines a run, read from a TOML file under ``recipes/``."""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from emolens.training.augment import AugmentConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass
class DataConfig:
    path: str = "../shared/datasets/fer2013/fer2013.csv.gz"
    ferplus: str | None = "../shared/datasets/fer2013/fer2013new.csv"
    train_split: str = "Training"
    val_split: str = "PublicTest"
    limit: int = 0            # >0: use only the first N training rows (smoke runs)
    val_limit: int = 0


@dataclass
class NetConfig:
    name: str = "emonet"
    args: dict = field(default_factory=dict)


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 128
    optimizer: str = "sgd"          # sgd | adamw
    lr: float = 0.05                # peak learning rate
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "onecycle"      # onecycle | cosine | constant
    warmup: float = 0.15            # fraction of steps warming up (onecycle)
    label_smoothing: float = 0.1
    class_weighting: str = "none"   # none | sqrt_inverse
    intensity_weight: float = 1.0   # weight of the FER+ intensity loss
    soft_targets: float = 0.0       # weight of the FER+ vote distribution in the class target
    mixup: float = 0.0              # Beta(a, a) of mixup; 0 = off
    cutmix: float = 0.0             # Beta(a, a) of CutMix; 0 = off
    mix_prob: float = 0.5           # fraction of batches mixed when mixup/cutmix is on
    teacher: list = field(default_factory=list)  # best.pt checkpoints or .onnx models whose averaged predictions are soft targets
    teacher_weight: float = 0.0     # weight of the teacher distribution in the class target
    teacher_temperature: float = 1.0
    teacher_online: bool = False    # teachers score every augmented batch (best.pt only) instead of the clean rows once
    teacher_intensity_weight: float = 0.0  # online only: weight of the teachers' intensities in the intensity target
    ema_decay: float = 0.999        # 0 disables the weight average
    swa_epochs: int = 0             # >0: also average the raw weights of the last N epochs (SWA) into swa.pt
    sam_rho: float = 0.0            # >0: sharpness-aware minimisation with this radius (two passes per step)
    grad_clip: float = 5.0
    bf16: str = "auto"              # auto (only where the CPU has native bf16) | on | off
    threads: int = 0                # 0 = all cores
    seed: int = 0


@dataclass
class ExportConfig:
    weights: str = "float16"        # float16 | int8: how `emolens export` stores the weights by default


@dataclass
class Recipe:
    name: str = "run"
    source: str = ""          # the recipe file it was read from
    data: DataConfig = field(default_factory=DataConfig)
    net: NetConfig = field(default_factory=NetConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        def build(kind, values):
            known = {f.name for f in fields(kind)}
            unknown = set(values) - known
            if unknown:
                raise ValueError(f"unknown recipe keys for [{kind.__name__}]: {sorted(unknown)}; known: {sorted(known)}")
            return kind(**values)

        return cls(
            name=d.get("name", "run"),
            source=d.get("source", ""),
            data=build(DataConfig, d.get("data", {})),
            net=build(NetConfig, d.get("net", {})),
            train=build(TrainConfig, d.get("train", {})),
            augment=build(AugmentConfig, d.get("augment", {})),
            export=build(ExportConfig, d.get("export", {})),
        )

    @classmethod
    def load(cls, path: str | Path) -> "Recipe":
        path = Path(path)
        try:
            with open(path, "rb") as fh:
                d = tomllib.load(fh)
        except FileNotFoundError:
            raise ValueError(f"{path}: no such recipe file; see recipes/ for examples") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not valid TOML ({exc})") from None
        d.setdefault("name", path.stem)
        d["source"] = str(path)
        return cls.from_dict(d)
