"""Measure an exported model on a labelled dataset, through the runtime users run (no torch)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from emolens.emotions import EMOTIONS
from emolens.metrics import classification_report, expected_calibration_error, fit_temperature, intensity_rmse, softmax
from emolens.runtime import EmotionModel, ModelOutput
from emolens.training.data import FaceDataset, default_eval_split, load_dataset


PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def check_plot_path(plot: str | Path, data: str | Path) -> None:
    """Refuse (``ValueError``, one line) a ``--plot`` file that cannot be written or would replace an input."""
    from emolens.output_paths import check_output_file

    check_output_file(plot, "--plot confusion matrix", PLOT_SUFFIXES)
    plot, data = Path(plot), Path(data)
    inside = data.is_dir() and os.path.realpath(plot).startswith(os.path.realpath(data) + os.sep)
    if plot.exists() and (inside or (data.exists() and os.path.samefile(plot, data))):
        raise ValueError(f"--plot {plot}: would overwrite a picture of the dataset {data}; write it somewhere else")


def fit_to_input(model: EmotionModel, images: np.ndarray) -> np.ndarray:
    """``(N, H, W)`` uint8 faces resized to the model's input side when they differ from it."""
    size = model.input_size
    if images.shape[1:] == (size, size):
        return images
    return np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in images])


def predict_dataset(model: EmotionModel, images: np.ndarray, tta: bool = False, batch_size: int = 256) -> ModelOutput:
    """Model outputs for ``(N, H, W)`` uint8 faces, resized to the model's input when needed."""
    images = fit_to_input(model, images)
    run = model.predict_tta if tta else model
    parts = [run(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
    return ModelOutput(
        np.concatenate([p.probabilities for p in parts]),
        np.concatenate([p.intensity for p in parts]),
        np.concatenate([p.logits for p in parts]),
    )


def report_for(ds: FaceDataset, out: ModelOutput) -> dict:
    """accuracy, macro-F1, per-class, confusion; intensity RMSE and FER+ majority accuracy when known."""
    pred = out.logits.argmax(1)
    report = classification_report(ds.labels, pred)
    report["intensity_rmse"] = intensity_rmse(out.intensity, ds.intensity)
    report["ece"] = expected_calibration_error(softmax(out.logits), ds.labels)
    report["ece_calibrated"] = expected_calibration_error(out.probabilities, ds.labels)
    if ds.ferplus_majority is not None:
        ok = ds.ferplus_majority >= 0
        # The class head learns mostly the FER2013 labels, the intensity head the FER+ vote fractions:
        # its top intensity is the model's answer to the FER+ question.
        for key, top in (("ferplus_majority_accuracy", pred), ("ferplus_majority_accuracy_intensity", out.intensity.argmax(1))):
            report[key] = float((top[ok] == ds.ferplus_majority[ok]).mean()) if ok.any() else None
        report["ferplus_majority_n"] = int(ok.sum())
    return report


def evaluate_dataset(data: str | Path, model: str | Path | EmotionModel | None = None, split: str | None = None,
                     ferplus: str | Path | None = None, tta: bool = False, limit: int = 0) -> dict:
    """Evaluate ``model`` (default: the shipped one) on ``data``; see ``emolens evaluate --help``."""
    split = split or default_eval_split(data)
    ds = load_dataset(data, split, ferplus, limit=limit)
    m = model if isinstance(model, EmotionModel) else EmotionModel(model)
    out = predict_dataset(m, ds.images, tta=tta)
    report = report_for(ds, out)
    report.update({"model": str(m.path), "data": str(data), "split": ds.split, "tta": tta, "skipped": ds.skipped})
    return report


def card_measurements(model: EmotionModel, val: FaceDataset, data: str | Path,
                      calibrate: bool = True) -> tuple[dict, dict | None, ModelOutput]:
    """A model card's ``validation`` (single pass and mirror TTA) and ``calibration`` blocks on ``val``.

    Returns both and the single-pass outputs (for comparisons with another model on the same rows).
    ``calibration`` is None unless ``calibrate``: a softmax temperature fitted on ``val``.
    """
    single = predict_dataset(model, val.images)
    tta = predict_dataset(model, val.images, tta=True)
    rep, rep_tta = report_for(val, single), report_for(val, tta)
    validation = {
        "data": str(data), "split": val.split, "n": rep["n"],
        "accuracy": rep["accuracy"], "accuracy_tta": rep_tta["accuracy"],
        "macro_f1": rep["macro_f1"], "macro_f1_tta": rep_tta["macro_f1"],
        "intensity_rmse": rep["intensity_rmse"], "intensity_rmse_tta": rep_tta["intensity_rmse"],
        "ferplus_majority_accuracy": rep.get("ferplus_majority_accuracy"),
        "ferplus_majority_accuracy_intensity": rep.get("ferplus_majority_accuracy_intensity"),
        "per_class_recall": {e: rep["per_class"][e]["recall"] for e in EMOTIONS},
    }
    calibration = None
    if calibrate:
        temperature = fit_temperature(single.logits, val.labels)
        calibration = {
            "temperature": temperature, "fitted_on": val.split,
            "ece_before": expected_calibration_error(softmax(single.logits), val.labels),
            "ece_after": expected_calibration_error(softmax(single.logits, temperature), val.labels),
        }
    return validation, calibration, single
