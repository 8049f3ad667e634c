"""Teachers for knowledge distillation: our own earlier models as soft class targets.

Two ways (``[train] teacher_online`` in a recipe):

* static: the teachers' averaged mirror-TTA predictions on the clean training rows, computed
  once per run and cached as ``teacher.npy``; checkpoints or exported ``.onnx`` models;
* online ("consistent teaching"): the teachers score every augmented batch the student sees,
  so target and input always match; ``best.pt`` checkpoints, run in torch beside the student.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from emolens.emotions import EMOTIONS
from emolens.model_input import InputSpec
from emolens.training.checkpoint import load_net, predict
from emolens.training.data import FaceDataset

log = logging.getLogger(__name__)


def teacher_targets(checkpoints: list[str], temperature: float, data: FaceDataset, spec: InputSpec,
                    out: Path) -> torch.Tensor:
    """The averaged (flip-TTA) softened predictions of teacher checkpoints on the training rows.

    Computed once per run and cached in the run folder as ``teacher.npy``.
    """
    if not checkpoints:
        raise ValueError("teacher_weight > 0 needs teacher = [\"runs/X/best.pt\", ...] in [train]")
    cache = out / "teacher.npy"
    if cache.is_file():
        try:
            probs = np.load(cache, allow_pickle=False)  # numbers only, never pickled objects
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable (%s); computing the teacher predictions again", cache, exc)
            probs = None
        if probs is not None and probs.shape == (len(data), len(EMOTIONS)) and np.isfinite(probs).all():
            return torch.from_numpy(probs.astype(np.float32))
    images = torch.from_numpy(data.images)
    total = np.zeros((len(data), len(EMOTIONS)), np.float64)
    for path in checkpoints:
        for logits in teacher_logits(path, images, spec):
            z = torch.from_numpy(logits) / temperature
            total += torch.softmax(z, 1).numpy() / (2 * len(checkpoints))
        log.info("teacher %s: predictions on %d training rows", path, len(data))
    probs = total.astype(np.float32)
    np.save(cache, probs)
    return torch.from_numpy(probs)


def teacher_logits(path: str | Path, images: torch.Tensor, spec: InputSpec) -> list[np.ndarray]:
    """Logits of one teacher on ``images`` and on their mirror images.

    A teacher is a run's checkpoint (``best.pt``) or an exported ``.onnx`` model, e.g. an
    earlier shipped model recovered from git history, run through the same runtime users run.
    """
    flips = (images, images.flip(-1))
    if str(path).endswith(".onnx"):
        from emolens.runtime import EmotionModel

        model = EmotionModel(path)
        if model.input_size != spec.size:
            raise ValueError(f"teacher {path} takes {model.input_size}px faces; this run trains on {spec.size}px")
        from emolens.evaluate import predict_dataset

        return [predict_dataset(model, f.numpy(), batch_size=512).logits for f in flips]
    net, _ = load_net(path)
    return [predict(net, f, spec)[0] for f in flips]


class OnlineTeacher:
    """Teacher checkpoints that score each augmented training batch the student sees.

    ``__call__`` takes the student's normalised ``(B, 1, H, W)`` batch and returns the
    teachers' averaged class distributions at ``temperature`` and their averaged sigmoid
    intensities, both ``(B, 7)``. No mirror averaging: the teacher sees exactly the view the
    student learns from (the flip is part of the augmentation).
    """

    def __init__(self, nets: list[torch.nn.Module], temperature: float = 1.0, bf16: bool = False):
        self.nets = [net.eval().to(memory_format=torch.channels_last) for net in nets]
        self.temperature = temperature
        self.bf16 = bf16

    @classmethod
    def from_checkpoints(cls, checkpoints: list[str], temperature: float = 1.0, bf16: bool = False) -> "OnlineTeacher":
        """The teachers of a recipe: run checkpoints (``best.pt``); exported models are refused."""
        if not checkpoints:
            raise ValueError("teacher_online needs teacher = [\"runs/X/best.pt\", ...] in [train]")
        onnx = [p for p in checkpoints if str(p).endswith(".onnx")]
        if onnx:
            raise ValueError(f"teacher_online runs teachers in torch beside the student: {onnx[0]} is an exported "
                             "model; pass the run's best.pt, or set teacher_online = false")
        nets = []
        for path in checkpoints:
            nets.append(load_net(path)[0])
            log.info("online teacher %s", path)
        return cls(nets, temperature, bf16)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.contiguous(memory_format=torch.channels_last)
        probs = torch.zeros(len(x), len(EMOTIONS))
        inten = torch.zeros(len(x), len(EMOTIONS))
        for net in self.nets:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                logits, it = net(x)
            probs += torch.softmax(logits.float() / self.temperature, 1)
            inten += torch.sigmoid(it.float())
        return probs / len(self.nets), inten / len(self.nets)
