"""Static int8 quantization of an exported model: integer arithmetic in ONNX Runtime.

    emolens quantize MODEL.onnx --data fer2013.csv.gz --out MODEL-int8.onnx [--rows 1024]

``emolens export --weights int8`` only *stores* the weights as int8; ONNX Runtime turns them back
into float32 at load and computes in float32. This step makes the arithmetic itself 8-bit:
weights int8 per output channel, activations uint8 with ranges read off ``rows`` FER2013
Training faces (a seeded random choice; PublicTest is only measured, never calibrated on), in
the QDQ format, which ONNX Runtime fuses into integer convolutions at load. Works from the
exported file alone, so a shipped model can be quantized without its torch checkpoint.

``reduce_range`` (7-bit weights) is on: CPUs without VNNI (AVX2, AVX-512 without VNNI) multiply
uint8 by int8 in 16-bit sums that saturate with full-range weights. Measured on the shipped
model (session 17, an AVX2-only machine): 68.25% PublicTest with full-range weights against
71.12% with ``reduce_range``, 71.20% in float32 (``python benchmarks/quantize_settings.py``,
BENCHMARKS.md section 2).

The card is the source model's card with ``compute: int8``, a ``quantization`` block saying how
it was made, the PublicTest numbers measured again on the new file, and how often its top
emotion differs from the source model's on the same faces.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import json
import logging
import tempfile
from pathlib import Path

import numpy as np

from emolens.evaluate import card_measurements, fit_to_input, predict_dataset
from emolens.output_paths import OutputPathError, check_model_output, model_inputs, staged_output
from emolens.runtime import EmotionModel, ModelError, card_path_for
from emolens.training.card import card_markdown, latency_ms
from emolens.training.data import load_dataset

log = logging.getLogger(__name__)

PERCENTILE = 99.999  # activation range: this percentile of |activation| over the calibration faces


class QuantizeError(RuntimeError):
    """The model cannot be quantized; the message names the file and the fix."""


def _float_graph(model: Path, folded: Path) -> None:
    """The model with every weight as a float32 initializer (int8/float16 storage folded by ORT)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # standard ops only
    opts.optimized_model_filepath = str(folded)
    ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])


def quantize_model(model: str | Path, out: str | Path, data: str | Path, rows: int = 1024, seed: int = 0,
                   ferplus: str | Path | None = None, limit: int = 0, val_split: str = "PublicTest",
                   reduce_range: bool = True, ranges: str = "percentile") -> dict:
    """Quantize ``model`` into ``out`` (.onnx) with its card beside it; returns the card.

    ``rows`` Training faces calibrate the activation ranges; ``limit`` > 0 reads only the first
    ``limit`` rows of each split (for quick checks; the card's numbers then cover only those).
    ``reduce_range`` and ``ranges`` (``percentile`` or ``minmax``) are the settings
    ``benchmarks/quantize_settings.py`` compares; the defaults are the measured best.
    """
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)

    model, out = Path(model), Path(out)
    if not model.is_file():
        raise QuantizeError(f"{model}: model file not found; pass an exported .onnx model (emolens export)")
    try:
        source = EmotionModel(model)
    except ModelError as exc:
        raise QuantizeError(str(exc)) from None
    if source.card.get("compute") == "int8":
        raise QuantizeError(f"{model}: already quantized (its card says compute int8); pass the float model")
    try:   # --out m.json wrote the int8 model over the source model's card, then the new card
        check_model_output(out, [*model_inputs(model), (data, "dataset"), (ferplus, "FER+ votes file")])
    except OutputPathError as exc:
        raise QuantizeError(f"--out {exc}") from None
    if ranges not in ("percentile", "minmax"):
        raise QuantizeError(f"ranges {ranges!r}: use percentile or minmax")
    if rows < 1:
        raise QuantizeError(f"--rows {rows}: need at least one calibration face")

    train = load_dataset(data, "Training", limit=limit)
    if not len(train):
        raise QuantizeError(f"{data}: no Training rows to calibrate on; pass FER2013 with its Training split")
    pick = np.random.default_rng(seed).choice(len(train), min(rows, len(train)), replace=False)
    faces = source.spec.normalize(fit_to_input(source, train.images[np.sort(pick)]))

    # equal batches: the percentile calibrator stacks every batch's activations into one array
    batch = max(b for b in range(1, 65) if len(faces) % b == 0)

    class Faces(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([faces[i:i + batch] for i in range(0, len(faces), batch)])

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {"input": batch}

    out.parent.mkdir(parents=True, exist_ok=True)
    # written beside --out and moved into place at the end: a failure leaves an earlier model as it was
    with staged_output(out) as out:
        log.info("calibrating %s on %d Training faces of %s", model.name, len(faces), data)
        root = logging.getLogger()
        level = root.level
        # the quantizer prints its progress and logs a pre-processing hint on the root logger (done here
        # by the ORT folding below); keep both out of emolens' output
        with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
            root.setLevel(logging.ERROR)
            try:
                folded = Path(tmp) / "float.onnx"
                _float_graph(model, folded)
                method = CalibrationMethod.Percentile if ranges == "percentile" else CalibrationMethod.MinMax
                quantize_static(str(folded), str(out), Faces(), quant_format=QuantFormat.QDQ, per_channel=True,
                                reduce_range=reduce_range, activation_type=QuantType.QUInt8,
                                weight_type=QuantType.QInt8, calibrate_method=method,
                                extra_options={"CalibPercentile": PERCENTILE})
            finally:
                root.setLevel(level)

        import onnxruntime as ort

        card = {k: v for k, v in source.card.items() if k not in ("validation", "calibration", "latency_ms_batch1")}
        card.update({
            "name": out.stem, "compute": "int8",
            "quantization": {
                "source": model.name, "source_weight_storage": source.card.get("weight_storage"),
                "format": "QDQ (ONNX Runtime static quantization)",
                "weights": "int8 per output channel, " + ("7-bit range (reduce_range)" if reduce_range else "full range"),
                "activations": "uint8, ranges " + (f"at the {PERCENTILE}th percentile" if ranges == "percentile"
                                                   else "from the minimum and maximum"),
                "calibration": {"data": str(data), "split": train.split, "rows": len(faces), "seed": seed},
                "ferplus": str(ferplus) if ferplus else None,
                "quantized": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "onnxruntime_version": ort.__version__,
            },
        })
        card_path_for(out).write_text(json.dumps(card, indent=2, allow_nan=False) + "\n")  # before loading: it names the labels
        quantized = EmotionModel(out)
        val = load_dataset(data, val_split, ferplus, limit=limit)
        log.info("measuring %s and %s on %d %s faces", out.name, model.name, len(val), val.split)
        validation, calibration, mine = card_measurements(quantized, val, data)
        theirs = predict_dataset(source, val.images)
        validation["source_accuracy"] = (theirs.logits.argmax(1) == val.labels).mean().item()
        validation["source_top_emotion_differs"] = int((mine.logits.argmax(1) != theirs.logits.argmax(1)).sum())
        validation["source_max_abs_probability_diff"] = float(np.abs(mine.probabilities - theirs.probabilities).max())
        card["validation"], card["calibration"] = validation, calibration
        card["file_size_bytes"] = out.stat().st_size
        card["latency_ms_batch1"] = latency_ms(quantized, quantized.spec)
        card_path_for(out).write_text(json.dumps(card, indent=2, allow_nan=False) + "\n")
        if {"architecture", "recipe", "training"} <= card.keys():  # a card emolens export wrote
            out.with_suffix(".md").write_text(card_markdown(card, Path("best.pt")))  # every shipped model: best.pt
        return card
