"""The model as users run it: an ONNX Runtime session, batched, torch-free.

An exported model is ``NAME.onnx`` with its model card ``NAME.json`` beside it. The
ONNX graph takes ``input`` ``(N, 1, S, S)`` float32 (normalised per the card's
``input`` spec) and returns ``logits`` ``(N, 7)`` and ``intensity`` ``(N, 7)`` (already
sigmoid, 0..1).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from emolens.emotions import EMOTIONS
from emolens.metrics import softmax
from emolens.model_input import InputSpec

DEFAULT_MODEL_NAME = "emolens-default.onnx"


class ModelError(RuntimeError):
    """A model file is missing or unusable; the message names the file and the fix."""


def shipped_weights(name: str) -> Path:
    """A file of ``emolens/weights`` (the models installed with the package)."""
    return Path(str(resources.files("emolens") / "weights" / name))


def default_model_path() -> Path:
    return shipped_weights(DEFAULT_MODEL_NAME)


def card_path_for(model_path: str | Path) -> Path:
    return Path(model_path).with_suffix(".json")


@dataclass
class ModelOutput:
    probabilities: np.ndarray  # (N, 7), rows sum to 1
    intensity: np.ndarray      # (N, 7), each 0..1
    logits: np.ndarray         # (N, 7), before temperature


def default_threads() -> int:
    return int(os.environ.get("EMOLENS_THREADS", 0)) or min(2, os.cpu_count() or 1)


def spin_during_runs_only(opts) -> None:
    """ONNX Runtime session options: pool threads busy-wait inside a run, and sleep once it returns.

    Without spinning, every operator wakes the pool's threads anew, which costs more than
    the small operators of these models take (2 threads were no faster than 1). Spinning
    left on after a run would keep a core busy between frames, the core other work (and
    other processes) need; ``session.force_spinning_stop`` ends it when ``run`` returns.
    """
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1")
    opts.add_session_config_entry("session.force_spinning_stop", "1")


def cpu_session(path: str | Path, threads: int | None = None):
    """An ONNX Runtime CPU session as emolens runs its models: ``threads`` intra-op threads
    (``default_threads()`` when None), one inter-op thread, pool threads spinning during runs
    only, all graph optimisations. onnxruntime's own exceptions pass through."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or default_threads()
    spin_during_runs_only(opts)
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class EmotionModel:
    """An exported emolens model: ``model(faces_uint8)`` -> probabilities and intensities."""

    def __init__(self, path: str | Path | None = None, threads: int | None = None):
        self.path = Path(path) if path is not None else default_model_path()
        if not self.path.is_file():
            raise ModelError(f"{self.path}: model file not found; pass --model PATH to an exported .onnx model")
        card_file = card_path_for(self.path)
        self.card: dict = json.loads(card_file.read_text()) if card_file.is_file() else {}
        self.spec = InputSpec.from_dict(self.card["input"]) if "input" in self.card else InputSpec()
        labels = self.card.get("labels", list(EMOTIONS))
        if list(labels) != list(EMOTIONS):
            raise ModelError(f"{card_file}: labels {labels} differ from emolens' {list(EMOTIONS)}")
        self.temperature = float(self.card.get("calibration", {}).get("temperature", 1.0))
        try:
            self.session = cpu_session(self.path, threads)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"{self.path}: not a usable ONNX model ({exc})") from None
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        # one grey face through it now: a broken model (e.g. from a diverged training run) is refused
        # here, before a batch or a server starts, rather than answering NaN
        try:
            self(np.full((1, self.spec.size, self.spec.size), 128, np.uint8))
        except ModelError:
            raise
        except Exception as exc:  # onnxruntime's own types: wrong input shape or outputs
            raise ModelError(f"{self.path}: not a usable emolens model: a {self.spec.size}x{self.spec.size} face "
                             f"does not run through it ({str(exc).splitlines()[0][:160]})") from None

    @property
    def input_size(self) -> int:
        return self.spec.size

    def run_normalized(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw logits and intensities for an already-normalised ``(N, 1, S, S)`` batch."""
        outputs = dict(zip(self.output_names, self.session.run(self.output_names, {self.input_name: x})))
        logits, intensity = outputs["logits"], outputs["intensity"]
        if not (np.isfinite(logits).all() and np.isfinite(intensity).all()):
            raise ModelError(f"{self.path}: the model gives scores that are not finite (NaN or infinity), so it is "
                             "broken (a diverged training run?); export a working model, or leave --model out for "
                             "the shipped one")
        return logits, intensity

    def __call__(self, faces: np.ndarray) -> ModelOutput:
        """``faces``: ``(N, S, S)`` uint8 grey crops (already the model's size)."""
        faces = np.asarray(faces)
        if faces.ndim == 2:
            faces = faces[None]
        if faces.shape[1:] != (self.spec.size, self.spec.size):
            raise ValueError(f"faces must be (N, {self.spec.size}, {self.spec.size}) uint8, got {faces.shape}")
        if len(faces) == 0:
            empty = np.zeros((0, len(EMOTIONS)), np.float32)
            return ModelOutput(empty, empty, empty)
        logits, intensity = self.run_normalized(self.spec.normalize(faces))
        return ModelOutput(softmax(logits, self.temperature), intensity, logits)

    def average_views(self, views: list[ModelOutput]) -> ModelOutput:
        """One output from several views of the same faces: mean logits (then softmax) and mean intensities."""
        logits = np.mean([v.logits for v in views], axis=0)
        return ModelOutput(softmax(logits, self.temperature), np.mean([v.intensity for v in views], axis=0), logits)

    def predict_tta(self, faces: np.ndarray) -> ModelOutput:
        """Test-time augmentation: average of the face and its mirror image (2 passes)."""
        faces = np.asarray(faces)
        both = self(np.concatenate([faces, faces[:, :, ::-1]]))
        n = len(faces)
        return self.average_views([ModelOutput(both.probabilities[:n], both.intensity[:n], both.logits[:n]),
                                   ModelOutput(both.probabilities[n:], both.intensity[n:], both.logits[n:])])
