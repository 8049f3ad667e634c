"""Export a trained checkpoint to ONNX with both heads, plus its model card.

The card (``MODEL.json`` beside ``MODEL.onnx``) records the architecture, the input
spec, labels, data and recipe, measured PublicTest accuracy (single pass and mirror
TTA), FER+ intensity RMSE, calibration, parameter count and file size. Export fails
when ONNX Runtime and torch disagree, and refuses a checkpoint whose weights or outputs are
not finite (a diverged run).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from pathlib import Path

import numpy as np
import torch

from emolens import __version__
from emolens.emotions import EMOTIONS
from emolens.evaluate import card_measurements
from emolens.metrics import softmax
from emolens.model_input import InputSpec
from emolens.output_paths import OutputPathError, check_model_output, staged_output
from emolens.runtime import EmotionModel, card_path_for
from emolens.training.data import load_dataset
from emolens.training.checkpoint import load_net, non_finite_parameters
from emolens.training.card import card_markdown, latency_ms
from emolens.training.nets import count_parameters

log = logging.getLogger(__name__)


class ExportError(RuntimeError):
    pass


class InferenceWrapper(torch.nn.Module):
    """What the ONNX graph computes: logits and sigmoid intensities."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        logits, intensity_logits = self.net(x)
        return logits, torch.sigmoid(intensity_logits)


def to_onnx(net: torch.nn.Module, spec: InputSpec, out: Path) -> None:
    wrapper = InferenceWrapper(net).eval()
    dummy = torch.zeros(2, spec.channels, spec.size, spec.size)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        wrapper, (dummy,), str(out), input_names=["input"], output_names=["logits", "intensity"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}, "intensity": {0: "batch"}},
        opset_version=17, do_constant_folding=True, dynamo=False,
    )


# the weight storages, each with the largest probability / intensity difference between torch and
# the exported file that still counts as a faithful export (int8 rounding moves outputs more; float32
# keeps the weights as trained, so only operator rounding is left)
PARITY_TOLERANCE = {"float16": 1e-3, "int8": 3e-2, "float32": 1e-4}
# a storage that rounds less than each one, for the parity error's fix
WIDER_STORAGE = {"int8": "float16", "float16": "float32"}
WEIGHT_STORAGE = tuple(PARITY_TOLERANCE)


def parity_tolerance(storage: str) -> float:
    """The parity bound of a weight storage; a clear error for an unknown one."""
    if not isinstance(storage, str) or storage not in PARITY_TOLERANCE:
        raise ExportError(f"unknown weight storage {storage!r}; choose one of: {', '.join(WEIGHT_STORAGE)}")
    return PARITY_TOLERANCE[storage]


def quantize_int8(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-output-channel int8: ``w ~= q * scale`` with ``scale`` shaped to broadcast."""
    flat = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
    scale = np.where(flat > 0, flat / 127.0, 1.0).astype(np.float32)
    scale = scale.reshape((-1,) + (1,) * (w.ndim - 1))
    q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    return q, scale


def store_weights(path: Path, storage: str = "float16") -> None:
    """Store the float weights compactly, with nodes that turn them back into float32.

    ``float32`` leaves the file as exported (the weights as trained: for research runs whose
    outputs must match torch closely, not for shipping); ``float16`` halves the file (a Cast
    back to float32); ``int8`` quarters it (per-output-channel int8 with one float32 scale per channel: a Cast and a Mul). ONNX Runtime folds
    these constant nodes when it loads the model, so it still computes in float32 at the
    same speed; the only change is the rounding of the weights, which ``check_parity``
    bounds and the card's measured accuracy shows.
    """
    parity_tolerance(storage)  # rejects an unknown storage
    if storage == "float32":
        return
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    nodes, extra = [], []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or len(init.dims) < 2:
            continue  # biases and scalars stay float32: they are tiny
        w = numpy_helper.to_array(init)
        name = init.name
        if storage == "float16":
            init.CopyFrom(numpy_helper.from_array(w.astype(np.float16), name + "_fp16"))
            nodes.append(helper.make_node("Cast", [name + "_fp16"], [name], to=TensorProto.FLOAT, name=name + "_cast"))
        else:
            q, scale = quantize_int8(w)
            init.CopyFrom(numpy_helper.from_array(q, name + "_int8"))
            extra.append(numpy_helper.from_array(scale, name + "_scale"))
            nodes += [helper.make_node("Cast", [name + "_int8"], [name + "_q"], to=TensorProto.FLOAT, name=name + "_cast"),
                      helper.make_node("Mul", [name + "_q", name + "_scale"], [name], name=name + "_dequant")]
    graph.initializer.extend(extra)
    for i, node in enumerate(nodes):
        graph.node.insert(i, node)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def training_precision(entries: list[dict]) -> str | None:
    """``bf16``, ``fp32`` or ``mixed`` (a resumed run changed machine) from a run's log entries;
    None when some entry predates the field (logs before session 8)."""
    used = [e.get("bf16") for e in entries]
    if not used or None in used:
        return None
    return "mixed" if len(set(used)) > 1 else "bf16" if used[0] else "fp32"


def intensity_trained_on(recipe: dict) -> str:
    """What a run's sigmoid head learned, for the card: ``[train] intensity_targets``."""
    train = recipe.get("train") if isinstance(recipe.get("train"), dict) else {}
    return "the class labels one-hot" if train.get("intensity_targets") == "labels" else "FER+ vote fractions"


def check_parity(net: torch.nn.Module, model: EmotionModel, faces: np.ndarray, storage: str = "float16") -> float:
    """Max absolute difference of probabilities and intensities between torch and ONNX Runtime;
    an ExportError naming a storage that rounds less when it exceeds ``storage``'s bound."""
    tol = parity_tolerance(storage)
    x = model.spec.normalize(faces)
    with torch.no_grad():
        logits, inten = net(torch.from_numpy(x))
    p_torch = softmax(logits.numpy())
    i_torch = torch.sigmoid(inten).numpy()
    o_logits, o_inten = model.run_normalized(x)
    outputs = (p_torch, i_torch, o_logits, o_inten)
    if not all(np.isfinite(o).all() for o in outputs):  # NaN compares false: it would pass the bound below
        raise ExportError(f"{model.path}: the model's outputs are not finite (NaN or infinity) on real faces; "
                          "the run diverged: retrain with a lower [train] lr")
    diff = max(float(np.abs(softmax(o_logits) - p_torch).max()), float(np.abs(o_inten - i_torch).max()))
    if not diff <= tol:
        wider = WIDER_STORAGE.get(storage)
        fix = (f"export with --weights {wider} (or recipe key [export] weights = \"{wider}\"), which rounds the "
               "weights less" if wider else "the net's operators do not export faithfully; report it with the checkpoint")
        raise ExportError(f"ONNX and torch outputs differ by {diff:.3e} (> {tol:.0e} for {storage} weights); "
                          f"the export is not faithful: {fix}")
    return diff


def export_model(checkpoint: str | Path, out: str | Path, data: str | Path | None = None,
                 calibrate: bool = True, limit: int = 0, weights: str | None = None) -> dict:
    """Export ``checkpoint`` to ``out`` (.onnx) and write the model card beside it; returns the card.

    ``weights`` is the storage (``float16`` or ``int8``); None takes the run recipe's
    ``[export] weights`` (float16 for runs whose recipe does not say).
    """
    checkpoint, out = Path(checkpoint), Path(out)
    if out.suffix.lower() != ".onnx":
        raise ExportError(f"--out {out}: an exported model is a .onnx file (its card is written beside it as .json "
                          "and .md); pass e.g. --out model.onnx")
    if out.is_dir():
        raise ExportError(f"--out {out}: is a folder; pass a .onnx file path")
    net, state = load_net(checkpoint)  # CheckpointError: missing, unreadable, unsafe or not an emolens checkpoint
    if bad := non_finite_parameters(net):
        raise ExportError(f"{checkpoint}: {len(bad)} weight tensors hold NaN or infinity (e.g. {bad[0]}): the run "
                          "diverged; retrain with a lower [train] lr and export that run's best.pt")
    try:
        spec = InputSpec.from_dict(state["input_spec"])
    except (KeyError, TypeError, ValueError):
        raise ExportError(f"{checkpoint}: its input_spec {state['input_spec']!r} is not one emolens writes") from None
    recipe = state.get("recipe") if isinstance(state.get("recipe"), dict) else {}
    if weights is None:
        exported = recipe.get("export")
        weights = exported.get("weights", "float16") if isinstance(exported, dict) else "float16"
    parity_tolerance(weights)  # an unknown storage is refused before anything is written
    data_cfg = recipe.get("data") if isinstance(recipe.get("data"), dict) else {}
    try:
        check_model_output(out, [(checkpoint, "checkpoint"), (data or data_cfg.get("path"), "dataset"),
                                 (data_cfg.get("ferplus"), "FER+ votes file")])
        out.parent.mkdir(parents=True, exist_ok=True)
    except OutputPathError as exc:
        raise ExportError(f"--out {exc}") from None
    except OSError as exc:
        raise ExportError(f"--out {out}: cannot create its folder ({exc.strerror or exc}); pick a writable place") from None
    # written beside --out and moved into place at the end: a failed or interrupted export leaves no
    # model without its card, and an earlier model of that name as it was
    with staged_output(out) as staged:
        card = _export(net, state, recipe, spec, checkpoint, staged, data, calibrate, limit, weights)
    return card


def _export(net, state: dict, recipe: dict, spec: InputSpec, checkpoint: Path, out: Path, data, calibrate: bool,
            limit: int, weights: str) -> dict:
    to_onnx(net, spec, out)
    store_weights(out, weights)
    model = EmotionModel(out)

    data_cfg = recipe.get("data") if isinstance(recipe.get("data"), dict) else {}
    data_path = Path(data) if data is not None else Path(data_cfg.get("path", ""))
    ferplus = data_cfg.get("ferplus")
    card: dict = {
        "name": out.stem,
        "format": 1,
        "architecture": state["arch"],
        "architecture_args": state.get("arch_kwargs", {}),
        "parameters": count_parameters(net),
        "weight_storage": weights,
        "input": spec.to_dict(),
        "labels": list(EMOTIONS),
        "outputs": {"logits": "(N, 7) class logits; softmax(logits / temperature) = probabilities",
                    "intensity": "(N, 7) sigmoid intensities, trained on " + intensity_trained_on(recipe)},
        "recipe": recipe,
        "training": {"epochs": len(state.get("history", [])) or state.get("epoch_entry", {}).get("epoch"),
                     "checkpoint_epoch": state.get("epoch_entry", {}).get("epoch"),
                     "weights": state.get("epoch_entry", {}).get("scored"),
                     "wall_time_minutes": None, "invocations": state.get("invocations", [])},
        "exported": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "emolens_version": __version__,
        "torch_version": torch.__version__,
    }
    run_log = checkpoint.parent / "log.jsonl"
    try:
        entries = [json.loads(line) for line in run_log.read_text().splitlines() if line.strip()] \
            if run_log.is_file() else None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        log.warning("%s: unreadable (%s); the card has no training time", run_log, exc)
        entries = None
    if entries:
        card["training"]["epochs"] = len(entries)
        card["training"]["wall_time_minutes"] = round(sum(e.get("epoch_seconds", 0) for e in entries) / 60, 1)
        card["training"]["precision"] = training_precision(entries)

    if data_path.exists():
        ferplus_path = Path(ferplus) if ferplus and Path(ferplus).exists() else None
        val = load_dataset(data_path, data_cfg.get("val_split", "PublicTest"), ferplus_path, limit=limit)
        diff = check_parity(net, model, val.images[:256], weights)
        validation, calibration, _ = card_measurements(model, val, data_path, calibrate)
        card["validation"] = {**validation, "onnx_torch_max_abs_diff": diff}
        if calibration:
            card["calibration"] = calibration
    else:
        faces = np.random.default_rng(0).integers(0, 256, (16, spec.size, spec.size), dtype=np.uint8)
        card["validation"] = {"onnx_torch_max_abs_diff": check_parity(net, model, faces, weights)}
        log.warning("%s not found: the card has no measured accuracy", data_path)

    card["file_size_bytes"] = out.stat().st_size
    card["latency_ms_batch1"] = latency_ms(model, spec)
    card_path_for(out).write_text(json.dumps(card, indent=2, allow_nan=False) + "\n")
    out.with_suffix(".md").write_text(card_markdown(card, checkpoint))
    return card
