"""Nets in and out of checkpoints, and run on faces in torch (training-side only).

Checkpoints are read with ``torch.load(weights_only=True)``: tensors, numbers, strings, lists,
tuples and dicts only, which is all emolens writes (weights, optimizer and scheduler state, RNG
states as byte tensors, the history and the recipe as plain dicts). A file that holds anything
else (a pickle that would import and run code) is refused with ``CheckpointError`` before any of
it runs.
"""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path

import numpy as np
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


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, unsafe or not an emolens one; the message names the file and why."""


# numpy scalars and their dtypes: not written by this version, allowed so that checkpoints whose
# history holds a numpy number still load (they rebuild a number, they cannot run code)
_scalar = np._core.multiarray.scalar
_NUMPY_SCALARS = [_scalar, (_scalar, "numpy.core.multiarray.scalar"), np.dtype,
                  *(type(np.dtype(c)) for c in "?bhilqBHILQefdg")]
_REQUIRED = ("model", "arch", "input_spec")


def read_checkpoint(path: str | Path) -> dict:
    """The state dict of an emolens checkpoint (``best.pt``, ``last.pt``, ``swa.pt``), loaded safely.

    Raises ``CheckpointError`` naming the file: missing, empty, truncated, not a torch file,
    holding objects other than plain data (refused unexecuted), or lacking what emolens writes.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "no such checkpoint"
        raise CheckpointError(f"{path}: {what}; pass a run's best.pt or last.pt")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file, not a checkpoint; pass a run's best.pt or last.pt")
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals(_NUMPY_SCALARS):
            warnings.simplefilter("ignore")  # pickle-protocol notes from the restricted unpickler
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found or "Weights only load failed" in str(exc):
            held = f" ({found.group(1)})" if found else ""
            raise CheckpointError(
                f"{path}: refused: it holds Python objects that emolens checkpoints never do{held}, which could run "
                "code when loaded; nothing was executed. Use a checkpoint written by emolens train") from None
        raise CheckpointError(f"{path}: not a torch checkpoint ({exc}); pass a run's best.pt or last.pt") from None
    except RuntimeError as exc:
        if "zip archive" in str(exc) or "PytorchStreamReader" in str(exc):
            raise CheckpointError(f"{path}: truncated or corrupt checkpoint (its zip archive is incomplete); "
                                  "copy it again, or for a run's last.pt delete it to restart the run") from None
        raise CheckpointError(f"{path}: cannot read it as a checkpoint ({str(exc).splitlines()[0][:200]})") from None
    except (PermissionError, FileNotFoundError, IsADirectoryError) as exc:
        raise CheckpointError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except OSError:  # torch's zip reader seeking past the end of a cut file: EINVAL
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint (its zip archive is incomplete); "
                              "copy it again, or for a run's last.pt delete it to restart the run") from None
    except Exception as exc:  # noqa: BLE001 - text, random bytes, other pickles: whatever torch raises
        raise CheckpointError(f"{path}: not a torch checkpoint ({type(exc).__name__}: {str(exc)[:100]}); "
                              "pass a run's best.pt or last.pt") from None
    if not isinstance(state, dict) or not all(k in state for k in _REQUIRED):
        held = f"a dict with keys {sorted(map(str, state))[:6]}" if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path}: not an emolens checkpoint (it holds {held}; expected "
                              f"{', '.join(_REQUIRED)}); pass a run's best.pt or last.pt")
    return state


def build_net(state: dict, path: str | Path, params: dict | None = None) -> EmotionNet:
    """The net a checkpoint names, with ``params`` (default: its ``model`` weights) loaded."""
    arch, kwargs = state["arch"], state.get("arch_kwargs") or {}
    try:
        net = create_net(arch, **kwargs)
    except Exception as exc:  # noqa: BLE001 - unknown arch or arguments this version cannot build
        raise CheckpointError(f"{path}: names a net this emolens cannot build ({arch} {kwargs}: {exc})") from None
    try:
        net.load_state_dict(state["model"] if params is None else params)
    except Exception as exc:  # noqa: BLE001 - missing/unexpected keys, shape mismatches
        reason = " ".join(str(exc).split())[:240]
        raise CheckpointError(f"{path}: its weights do not fit the {arch} net it names ({reason})") from None
    return net


def non_finite_parameters(net: torch.nn.Module) -> list[str]:
    """Names of the parameters and buffers holding NaN or infinity (a diverged run)."""
    return [name for name, t in net.state_dict().items()
            if t.is_floating_point() and not bool(torch.isfinite(t).all())]


def load_net(checkpoint: str | Path, weights: str = "auto") -> tuple[EmotionNet, dict]:
    """Rebuild a net from ``best.pt`` (the weights that scored best) or ``last.pt``.

    For ``last.pt``, ``weights`` picks ``raw`` or ``ema``; ``auto`` takes the one that scored
    better in the last epoch. Raises ``CheckpointError`` for a file that is not a usable checkpoint.
    """
    state = read_checkpoint(checkpoint)
    if weights == "auto" and state.get("history"):
        weights = state["history"][-1].get("scored", "ema")
    params = state["model"]
    if state.get("ema") and weights in ("auto", "ema"):
        params = {k.removeprefix("module."): v for k, v in state["ema"].items() if k.startswith("module.")}
    net = build_net(state, checkpoint, params)
    net.eval()
    return net, state
