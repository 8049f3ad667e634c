"""Classification and intensity metrics over the 7 emotions (numpy only)."""

from __future__ import annotations

import numpy as np

from emolens.emotions import EMOTIONS


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, n: int = len(EMOTIONS)) -> np.ndarray:
    """``[true, predicted]`` counts."""
    return np.bincount(np.asarray(labels) * n + np.asarray(predicted), minlength=n * n).reshape(n, n)


def classification_report(labels: np.ndarray, predicted: np.ndarray) -> dict:
    """accuracy, macro-F1, per-class recall/precision/F1/n and the confusion matrix."""
    cm = confusion_matrix(labels, predicted)
    support = cm.sum(axis=1)
    predicted_n = cm.sum(axis=0)
    tp = np.diag(cm)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, tp / support, 0.0)
        precision = np.where(predicted_n > 0, tp / predicted_n, 0.0)
        f1 = np.where(recall + precision > 0, 2 * recall * precision / (recall + precision), 0.0)
    present = support > 0
    n = int(cm.sum())
    return {
        "n": n,
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": {
            e: {"recall": float(recall[i]), "precision": float(precision[i]), "f1": float(f1[i]), "n": int(support[i])}
            for i, e in enumerate(EMOTIONS)
        },
        "confusion": cm.tolist(),
        "labels": list(EMOTIONS),
    }


def intensity_rmse(predicted: np.ndarray, target: np.ndarray) -> float | None:
    """RMSE over all 7 intensities of rows that have targets (rows with NaN are ignored)."""
    if target is None:
        return None
    ok = ~np.isnan(target).any(axis=1)
    if not ok.any():
        return None
    return float(np.sqrt(np.mean((predicted[ok] - target[ok]) ** 2)))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The softmax temperature minimising negative log-likelihood (grid + refinement)."""
    def nll(t):
        p = softmax(logits, t)
        return -np.mean(np.log(p[np.arange(len(labels)), labels] + 1e-12))

    grid = np.linspace(0.5, 3.0, 51)
    best = grid[np.argmin([nll(t) for t in grid])]
    fine = np.linspace(best - 0.05, best + 0.05, 21)
    return float(fine[np.argmin([nll(t) for t in fine])])
