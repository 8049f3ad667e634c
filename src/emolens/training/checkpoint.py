"""Nets in and out of checkpoints, and run on faces in torch (training-side only)."""

from __future__ import annotations

from pathlib import Path

import torch

from emolens.metrics import classification_report, intensity_rmse
from emolens.model_input import InputSpec
from emolens.training.augment import normalize_batch
from emolens.training.data import FaceDataset
from emolens.training.nets import EmotionNet, create_net
from emolens.training.recipe import Recipe


@torch.no_grad()
def predict(net: torch.nn.Module, images: torch.Tensor, spec: InputSpec, batch_size: int = 512, bf16: bool = False):
    """Logits and sigmoid intensities for uint8 faces, in eval mode."""
    net.eval()
    logits, inten = [], []
    for i in range(0, len(images), batch_size):
        x = normalize_batch(images[i:i + batch_size], spec).contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            lo, it = net(x)
        logits.append(lo.float())
        inten.append(torch.sigmoid(it.float()))
    return torch.cat(logits).numpy(), torch.cat(inten).numpy()


def evaluate_net(net, data: FaceDataset, spec: InputSpec, bf16: bool = False) -> dict:
    logits, inten = predict(net, torch.from_numpy(data.images), spec, bf16=bf16)
    report = classification_report(data.labels, logits.argmax(1))
    report["intensity_rmse"] = intensity_rmse(inten, data.intensity)
    return report


def save_inference_checkpoint(net: EmotionNet, recipe: Recipe, spec: InputSpec, entry: dict, path: Path,
                              invocations: list[dict] | None = None) -> None:
    """Weights only (the EMA weights when used), with what export needs to rebuild the net."""
    torch.save({
        "model": {k: v.detach().clone() for k, v in net.state_dict().items()},
        "arch": recipe.net.name, "arch_kwargs": recipe.net.args, "recipe": recipe.to_dict(),
        "input_spec": spec.to_dict(), "epoch_entry": entry, "invocations": invocations or [],
    }, path)


def load_net(checkpoint: str | Path, weights: str = "auto") -> tuple[EmotionNet, dict]:
    """Rebuild a net from ``best.pt`` (the weights that scored best) or ``last.pt``.

    For ``last.pt``, ``weights`` picks ``raw`` or ``ema``; ``auto`` takes the one that scored
    better in the last epoch.
    """
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    net = create_net(state["arch"], **state.get("arch_kwargs", {}))
    if weights == "auto" and state.get("history"):
        weights = state["history"][-1].get("scored", "ema")
    params = state["model"]
    if state.get("ema") and weights in ("auto", "ema"):
        params = {k.removeprefix("module."): v for k, v in state["ema"].items() if k.startswith("module.")}
    net.load_state_dict(params)
    net.eval()
    return net, state
