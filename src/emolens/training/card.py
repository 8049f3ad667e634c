"""Model cards for people (``MODEL.md``) and the batch-1 latency they record; torch-free.

Written by ``emolens export`` and ``emolens quantize``; ``train_commands`` turns a run's recorded
invocations into the commands that reproduce it.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from emolens.model_input import InputSpec
from emolens.runtime import EmotionModel

def train_commands(invocations: list[dict], recipe_file: str, out_dir: str) -> list[str]:
    """The ``emolens train`` commands that reproduce a run exactly, from its recorded invocations.

    Resuming is deterministic, so only a change of the epoch target matters: each target but
    the last becomes a command with ``--stop-after`` at the epoch where the next one began.
    """
    segments: list[dict] = []
    for inv in invocations:
        if segments and segments[-1]["epochs"] == inv["epochs"]:
            continue
        segments.append(dict(inv))
    base = f"emolens train --recipe {recipe_file} --out {out_dir}"
    if not segments:
        return [base]
    commands = []
    for seg, nxt in zip(segments, segments[1:] + [None]):
        cmd = f"{base} --epochs {seg['epochs']}"
        if nxt is not None:
            cmd += f" --stop-after {nxt['from_epoch'] - seg['from_epoch']}"
        commands.append(cmd)
    return commands


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


def card_markdown(card: dict, checkpoint: Path) -> str:
    """The model card for people: what the model is, how it was made, what it scores."""
    v = card.get("validation", {})
    c = card.get("calibration", {})
    r = card.get("recipe", {})
    t = r.get("train", {})
    name = r.get("name", "RECIPE")
    source = r.get("source") or f"recipes/{name}.toml"
    storage = card.get("weight_storage", "float16")  # cards before session 12 have no field: float16
    q = card.get("quantization")  # set by emolens quantize: exported under another name first
    exported = q["source"] if q else f"{card['name']}.onnx"
    exported_storage = q.get("source_weight_storage", storage) if q else storage
    quantize_cmd = [f"  emolens quantize {q['source']} --data {q['calibration']['data']} "
                    f"--rows {q['calibration']['rows']} --seed {q['calibration']['seed']}"
                    + (f" --ferplus {q['ferplus']}" if q.get("ferplus") else "") + f" --out {card['name']}.onnx"] if q else []
    lines = [
        f"# Model card: {card['name']}",
        "",
        f"- **Architecture**: `{card['architecture']}` {card.get('architecture_args') or ''} "
        f"({card['parameters'] / 1e6:.2f} M parameters), two heads: 7-way softmax classification and "
        "7 sigmoid intensities.",
        f"- **Input**: {card['input']['size']}x{card['input']['size']} grey face, pixels / 255, "
        f"then (x - {card['input']['mean']}) / {card['input']['std']}; NCHW float32.",
        f"- **Labels**: {', '.join(card['labels'])} (FER2013 order).",
        f"- **File**: {card['file_size_bytes'] / 1e6:.2f} MB ONNX (weights stored as {storage}, computed in {card.get('compute', 'float32')}); "
        f"batch-1 latency at export {card.get('latency_ms_batch1')} ms.",
        "",
        "## How it was made",
        "",
        f"- **Data**: FER2013 `{r.get('data', {}).get('train_split', 'Training')}` rows only "
        f"(`{r.get('data', {}).get('path')}`), "
        + ("the class labels one-hot" if t.get("intensity_targets") == "labels" else
           f"FER+ vote fractions (`{r.get('data', {}).get('ferplus')}`)")
        + " as intensity targets; model selected on `PublicTest`. PrivateTest was never used.",
        f"- **Recipe**: `{source}` — {t.get('epochs')} epochs, {t.get('optimizer')} "
        f"lr {t.get('lr')} ({t.get('schedule')}), batch {t.get('batch_size')}, weight decay {t.get('weight_decay')}, "
        f"label smoothing {t.get('label_smoothing')}, intensity loss weight {t.get('intensity_weight')}, "
        f"EMA {t.get('ema_decay')}, seed {t.get('seed')}; augmentation {r.get('augment')}"
        + _levers(t) + ".",
        f"- **Training time**: {card['training'].get('wall_time_minutes')} min for "
        f"{card['training'].get('epochs')} epochs on a 2-core CPU "
        f"({card['training'].get('precision') or 'precision not logged'}).",
        "- **Reproduce**:",
        "",
        "  ```",
        *(f"  {cmd}" for cmd in train_commands(card["training"].get("invocations", []), source, f"runs/{name}")),
        f"  emolens export runs/{name}/{checkpoint.name} --out {exported}"
        + ("" if exported_storage == "float16" else f" --weights {exported_storage}"),
        *quantize_cmd,
        "  ```",
        "",
        "## Measured at export (FER2013 PublicTest)",
        "",
        "| metric | value |",
        "| --- | --- |",
        f"| accuracy, single pass | {_pct(v.get('accuracy'))} |",
        f"| accuracy, mirror TTA | {_pct(v.get('accuracy_tta'))} |",
        f"| macro-F1 | {v.get('macro_f1', float('nan')):.4f} |",
        f"| intensity RMSE vs FER+ vote fractions, single / mirror TTA | {v.get('intensity_rmse') or float('nan'):.4f} / "
        f"{v.get('intensity_rmse_tta') or float('nan'):.4f} |",
        f"| FER+ majority-vote accuracy: top class / top intensity | {_pct(v.get('ferplus_majority_accuracy'))} / "
        f"{_pct(v.get('ferplus_majority_accuracy_intensity'))} |",
        f"| ECE before / after temperature {c.get('temperature', 1.0):.2f} | "
        f"{c.get('ece_before', float('nan')):.4f} / {c.get('ece_after', float('nan')):.4f} |",
        f"| rows | {v.get('n')} |",
        *([f"| float model ({q['source']}) on the same rows: accuracy / top emotion differs / largest probability "
           f"difference | {_pct(v.get('source_accuracy'))} / {v.get('source_top_emotion_differs')} / "
           f"{v.get('source_max_abs_probability_diff', float('nan')):.3f} |"] if q else []),
        "",
        "Per-class recall: " + ", ".join(f"{k} {100 * x:.1f}%" for k, x in v.get("per_class_recall", {}).items()),
        "",
        "Limits: trained on 48x48 grey web faces with noisy labels; weakest on disgust and fear; "
        "scores describe facial appearance, not felt emotion.",
        "",
    ]
    return "\n".join(lines)


def latency_ms(model: EmotionModel, spec: InputSpec, runs: int = 200) -> float:
    face = np.zeros((1, spec.size, spec.size), np.uint8)
    for _ in range(20):
        model(face)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        model(face)
        times.append(time.perf_counter() - t)
    return round(float(np.median(times)) * 1000, 3)


def _levers(t: dict) -> str:
    """The optional target levers of a recipe, in words (empty when all are off)."""
    parts = []
    if t.get("soft_targets"):
        parts.append(f"FER+ vote distributions as soft class targets (weight {t['soft_targets']})")
    if t.get("mixup") or t.get("cutmix"):
        parts.append(f"mixup {t.get('mixup')} / CutMix {t.get('cutmix')} on {t.get('mix_prob')} of batches")
    if t.get("teacher_weight") or t.get("teacher_intensity_weight"):
        how = "each augmented batch (online)" if t.get("teacher_online") else "the clean training rows, mirror-averaged"
        parts.append(f"distilled from {', '.join(map(str, t.get('teacher', [])))} on {how} "
                     f"(class weight {t.get('teacher_weight')}, temperature {t.get('teacher_temperature')}"
                     + (f", intensity weight {t['teacher_intensity_weight']}" if t.get("teacher_intensity_weight") else "")
                     + ")")
    if t.get("swa_epochs"):
        parts.append(f"weights averaged over the last {t['swa_epochs']} epochs (SWA, swa.pt)")
    return "; " + "; ".join(parts) if parts else ""
