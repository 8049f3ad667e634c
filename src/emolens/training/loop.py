"""The training loop: one recipe in, a run folder out.

A run folder holds ``recipe.toml``-equivalent ``recipe.json``, ``log.jsonl`` (one line per
epoch), ``last.pt`` (resumable: model, EMA, optimizer, scheduler, RNG, history),
``best.pt`` (best PublicTest accuracy) and ``curves.png``; with ``swa_epochs`` also
``swa.pt`` and ``swa.json`` (the weight average of the last epochs, and its scores). Rerunning
the same command resumes from ``last.pt``; a run that starts afresh (``--no-resume``) first
clears the earlier run's log and averages, and refuses a folder holding files of these names
that no run wrote (``start_afresh``).

What can be known up front is checked before any data loads (the run folder, the teachers, a
``last.pt`` to resume from and whether it is a run of the same net); a loss that stops being
finite ends the run with ``TrainingError``, leaving the last good ``last.pt`` in place.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from emolens.emotions import EMOTIONS
from emolens.model_input import DEFAULT_INPUT, InputSpec
from emolens.training.augment import augment_batch
from emolens.training.averaging import WeightAverage
from emolens.training.data import FaceDataset, load_dataset
from emolens.training.checkpoint import (CheckpointError, evaluate_net, non_finite_parameters, read_checkpoint,
                                         save_inference_checkpoint)
from emolens.training.nets import count_parameters, create_net
from emolens.training.recipe import Recipe
from emolens.training.sam import SharpnessAware
from emolens.training.targets import MixedBatch, class_targets, intensity_targets, mix_batch, soft_cross_entropy
from emolens.training.teachers import OnlineTeacher, teacher_targets

log = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """A run stopped part-way (e.g. its loss stopped being finite); the message says where and why."""


def cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def use_bf16(setting: str) -> bool:
    if setting == "on":
        return True
    if setting == "off":
        return False
    return cpu_has_native_bf16()


@dataclass
class TensorData:
    images: torch.Tensor      # (N, 48, 48) uint8
    labels: torch.Tensor      # (N,) int64
    intensity: torch.Tensor   # (N, 7) float32, 0 where missing
    has_intensity: torch.Tensor  # (N,) bool

    @classmethod
    def from_dataset(cls, ds: FaceDataset) -> "TensorData":
        mask = ds.has_intensity
        inten = np.zeros((len(ds), len(EMOTIONS)), np.float32)
        if ds.intensity is not None:
            inten[mask] = ds.intensity[mask]
        return cls(torch.from_numpy(ds.images), torch.from_numpy(ds.labels), torch.from_numpy(inten), torch.from_numpy(mask))


def load_split(recipe: Recipe, split: str, limit: int) -> FaceDataset:
    return load_dataset(recipe.data.path, split, recipe.data.ferplus, limit=limit)


def batch_loss(net: torch.nn.Module, batch: MixedBatch, recipe: Recipe, bf16: bool):
    """The net's class logits on the batch and its losses (total, class, intensity)."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits, inten = net(batch.images.contiguous(memory_format=torch.channels_last))
    return (logits, *joint_loss(logits, inten, batch, recipe))


def joint_loss(logits, intensity_logits, batch: MixedBatch, recipe: Recipe):
    """Class loss against the batch's target distributions plus the FER+ intensity loss."""
    cls_loss = soft_cross_entropy(logits, batch.targets, batch.sample_weight)
    has = batch.has_intensity
    if has.any() and recipe.train.intensity_weight > 0:
        bce = F.binary_cross_entropy_with_logits(intensity_logits.float(), batch.intensity, reduction="none").mean(1)
        int_loss = (bce * has).sum() / has.sum()
    else:
        int_loss = torch.zeros((), dtype=torch.float32)
    return cls_loss + recipe.train.intensity_weight * int_loss, cls_loss, int_loss


def class_weights_for(labels: torch.Tensor, how: str) -> torch.Tensor | None:
    if how == "none":
        return None
    counts = torch.bincount(labels, minlength=len(EMOTIONS)).float().clamp(min=1)
    if how == "sqrt_inverse":
        w = counts.sum() / counts
        w = w.sqrt()
        return w / (w * counts / counts.sum()).sum()
    raise ValueError(f"unknown class_weighting {how!r}; use none or sqrt_inverse")


def make_optimizer(net: torch.nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """The recipe's optimizer; weight decay on conv and dense weights only (not biases or batch norm).

    ``adam`` and ``rmsprop`` take the decay as L2 regularisation, as Keras' kernel regularisers and
    torch's ``Adam(weight_decay=...)`` do: ``wd * w`` is added to the gradient before the adaptive
    scaling, so weights with large gradients decay less. ``adamw`` decouples it (``w -= lr * wd * w``
    beside the Adam step, the same pull on every weight); with ``weight_decay = 0`` both are Adam.
    """
    t = recipe.train
    decay, no_decay = [], []
    for p in net.parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": t.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if t.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum, nesterov=True)
    if t.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=t.lr)
    if t.optimizer == "adam":
        return torch.optim.Adam(groups, lr=t.lr)
    if t.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, lr=t.lr)
    raise ValueError(f"unknown optimizer {t.optimizer!r}; use sgd, adamw, adam or rmsprop")


def make_scheduler(opt, recipe: Recipe, steps_per_epoch: int):
    t = recipe.train
    total = t.epochs * steps_per_epoch
    if t.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=t.lr, total_steps=total, pct_start=t.warmup,
                                                   div_factor=20, final_div_factor=200)
    if t.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    if t.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    raise ValueError(f"unknown schedule {t.schedule!r}; use onecycle, cosine or constant")


def prepare_run_folder(out: Path) -> None:
    """Create the run folder, or refuse (``ValueError``) a path that is a file or cannot be created."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: is a file; the run folder must be a folder (a new one, or an earlier run's "
                         "to resume it)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"--out {out}: cannot create the run folder ({exc.strerror or exc}); pick a writable place") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out}: the run folder is not writable; pick a writable place")


RUN_FILES = ("recipe.json", "log.jsonl", "last.pt", "best.pt", "curves.png", "swa.pt", "swa.json", "epochs")


def _is_run_folder(out: Path) -> bool:
    """``out`` holds a run emolens train wrote: its last.pt, or its recipe.json (a run stopped
    before its first epoch ended)."""
    if (out / "last.pt").is_file():
        return True
    try:
        recipe = json.loads((out / "recipe.json").read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(recipe, dict) and {"net", "train"} <= recipe.keys()


def start_afresh(out: Path) -> None:
    """Before a run starts from epoch 1 in ``out``: refuse (``ValueError``) a folder holding files
    of a run's names that no run wrote (the user's own curves.png or log.jsonl); in an earlier
    run's folder (``--no-resume``) remove its log, weight averages and kept epochs, which the new
    run's would otherwise be appended to or mixed with."""
    present = [name for name in RUN_FILES if os.path.lexists(out / name)]
    if not present:
        return
    if not _is_run_folder(out):
        raise ValueError(f"--out {out}: holds {', '.join(present)}, not written by emolens train (no last.pt or "
                         "recipe.json of a run); training would replace them: give --out a new or empty folder")
    for name in ("log.jsonl", "swa.pt", "swa.json"):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "epochs", ignore_errors=True)


def _same_args(a, b) -> bool:
    """Net arguments equal up to TOML lists against tuples."""
    norm = lambda v: tuple(norm(x) for x in v) if isinstance(v, (list, tuple)) else v  # noqa: E731
    return {k: norm(v) for k, v in (a or {}).items()} == {k: norm(v) for k, v in (b or {}).items()}


def resume_state(last: Path, recipe: Recipe) -> dict:
    """``last.pt`` of the run to resume, checked to be a run of the recipe's net and optimizer."""
    state = read_checkpoint(last)
    missing = [k for k in ("optimizer", "scheduler", "generator", "torch_rng", "epoch", "history") if k not in state]
    if missing:
        raise CheckpointError(f"{last}: not a resumable last.pt (no {', '.join(missing)}); pass another --out, "
                              "or --no-resume to start this run afresh (overwrites it)")
    ran = (state["arch"], state.get("arch_kwargs") or {}, state.get("recipe", {}).get("train", {}).get("optimizer"))
    asked = (recipe.net.name, recipe.net.args, recipe.train.optimizer)
    if ran[0] != asked[0] or not _same_args(ran[1], asked[1]) or (ran[2] is not None and ran[2] != asked[2]):
        raise CheckpointError(
            f"{last}: this run trained {ran[0]} {ran[1]} with {ran[2]}, the recipe asks for {asked[0]} {asked[1]} "
            f"with {asked[2]}; pass another --out for a new run, or --no-resume to start this one afresh "
            "(overwrites it)")
    return state


def train(recipe: Recipe, out_dir: str | Path, resume: bool = True, progress: bool = True,
          stop_after: int = 0, keep_epochs: bool = False) -> dict:
    """Train per ``recipe`` into ``out_dir``; returns the last epoch's log entry.

    ``stop_after`` > 0 ends this invocation after that many epochs (the run resumes from
    ``last.pt`` next time), to split a long run across sessions. ``keep_epochs`` keeps each
    epoch's ``last.pt`` as ``epochs/eNNN.pt`` (a hard link: no copy), for weight averaging
    after the fact (``benchmarks/weight_average.py``).
    """
    out = Path(out_dir)
    prepare_run_folder(out)
    t = recipe.train
    threads = t.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    torch.manual_seed(t.seed)
    bf16 = use_bf16(t.bf16)
    spec = DEFAULT_INPUT

    distil = t.teacher_weight > 0 or t.teacher_intensity_weight > 0
    if t.teacher_intensity_weight > 0 and not t.teacher_online:
        raise ValueError("teacher_intensity_weight needs teacher_online = true (static teachers cache classes only)")
    for path in t.teacher if distil else []:
        if not Path(path).is_file():
            raise ValueError(f"teacher checkpoint {path} not found; train it first or fix [train] teacher in the recipe")
        if not str(path).endswith(".onnx"):
            read_checkpoint(path)  # a bad teacher is reported before the data loads
    if not 0 <= t.swa_epochs <= t.epochs:
        raise ValueError(f"swa_epochs = {t.swa_epochs} must be between 0 and epochs ({t.epochs})")
    last = out / "last.pt"
    state = resume_state(last, recipe) if resume and last.exists() else None
    if state is None:
        start_afresh(out)
    online = OnlineTeacher.from_checkpoints(t.teacher, t.teacher_temperature, bf16) if distil and t.teacher_online else None
    t0 = time.time()
    train_ds = load_split(recipe, recipe.data.train_split, recipe.data.limit)
    val_ds = load_split(recipe, recipe.data.val_split, recipe.data.val_limit)
    log.info("data: %d training rows, %d validation rows (%.1f s)", len(train_ds), len(val_ds), time.time() - t0)
    data = TensorData.from_dataset(train_ds)

    net = create_net(recipe.net.name, **recipe.net.args).to(memory_format=torch.channels_last)
    ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(t.ema_decay), use_buffers=True) if t.ema_decay > 0 else None
    swa = WeightAverage(net) if t.swa_epochs > 0 else None
    opt = make_optimizer(net, recipe)
    sam = SharpnessAware(net, t.sam_rho) if t.sam_rho > 0 else None
    steps_per_epoch = max(1, len(data.labels) // t.batch_size)
    sched = make_scheduler(opt, recipe, steps_per_epoch)
    gen = torch.Generator().manual_seed(t.seed)
    weights = class_weights_for(data.labels, t.class_weighting)
    teacher = (teacher_targets(t.teacher, t.teacher_temperature, train_ds, spec, out)
               if distil and not t.teacher_online else None)
    history: list[dict] = []
    invocations: list[dict] = []  # how this run was invoked (epoch it started from, epoch target): see card.train_commands
    start_epoch, best_acc = 0, -1.0

    if state is not None:
        try:
            net.load_state_dict(state["model"])
            if ema is not None and state.get("ema"):
                ema.load_state_dict(state["ema"])
            if swa is not None and state.get("swa"):
                swa.load_state_dict(state["swa"])
            opt.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            reason = " ".join(str(exc).split())[:200]
            raise CheckpointError(f"{last}: cannot resume from it ({reason}); pass another --out, or --no-resume to "
                                  "start this run afresh (overwrites it)") from None
        done_steps = state["scheduler"]["last_epoch"]
        if state["scheduler"].get("total_steps", t.epochs * steps_per_epoch) == t.epochs * steps_per_epoch:
            sched.load_state_dict(state["scheduler"])
        else:
            # The epoch count changed: re-target the schedule, continuing from the current step.
            sched = make_scheduler(opt, recipe, steps_per_epoch)
            sched.last_epoch = done_steps - 1
            with warnings.catch_warnings():  # stepping before the optimizer is deliberate here: it sets the lr
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler")
                sched.step()
            log.info("schedule re-targeted to %d epochs from step %d (lr now %.4g)", t.epochs, done_steps,
                     opt.param_groups[0]["lr"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        history = state["history"]
        invocations = state.get("invocations", [])
        start_epoch = state["epoch"] + 1
        best_acc = state.get("best_acc", -1.0)
        log.info("resuming %s at epoch %d/%d", last, start_epoch + 1, t.epochs)
    (out / "recipe.json").write_text(json.dumps(recipe.to_dict(), indent=2))
    invocations = invocations + [{"from_epoch": start_epoch, "epochs": t.epochs}]

    n_params = count_parameters(net)
    end_epoch = min(t.epochs, start_epoch + stop_after) if stop_after > 0 else t.epochs
    run_start = time.time()
    for epoch in range(start_epoch, end_epoch):
        net.train()
        e0 = time.time()
        perm = torch.randperm(len(data.labels), generator=gen)
        sums = {"loss": 0.0, "cls": 0.0, "int": 0.0, "correct": 0, "seen": 0}
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{t.epochs}", disable=not progress,
                   unit="batch", leave=False)
        for step in bar:
            idx = perm[step * t.batch_size:(step + 1) * t.batch_size]
            x = augment_batch(data.images[idx], recipe.augment, spec, gen)
            y = data.labels[idx]
            inten_target, has_inten = intensity_targets(t.intensity_targets, y, len(EMOTIONS), data.intensity[idx],
                                                        data.has_intensity[idx])
            if online is not None:
                taught, taught_inten = online(x)
                w = t.teacher_intensity_weight
                inten_target = (1 - w) * inten_target + w * taught_inten
            else:
                taught = None if teacher is None else teacher[idx]
            targets = class_targets(y, len(EMOTIONS), t.label_smoothing, data.intensity[idx], data.has_intensity[idx],
                                    t.soft_targets, taught, t.teacher_weight)
            batch = mix_batch(x, targets, inten_target, has_inten,
                              None if weights is None else weights[y], t.mixup, t.cutmix, t.mix_prob, gen)
            logits, loss, cls_loss, int_loss = batch_loss(net, batch, recipe, bf16)
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise TrainingError(diverged(out, recipe, epoch, step, steps_per_epoch, f"the loss is {loss_value}",
                                             history))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if sam is not None:  # step with the gradient at the worst nearby weights instead
                sam.climb()
                opt.zero_grad(set_to_none=True)
                with sam.frozen_batch_norm_statistics():
                    batch_loss(net, batch, recipe, bf16)[1].backward()
                sam.return_to_weights()
            if t.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(net.parameters(), t.grad_clip)
            opt.step()
            sched.step()
            if ema is not None:
                ema.update_parameters(net)
            sums["loss"] += loss_value * len(y)
            sums["cls"] += float(cls_loss.detach()) * len(y)
            sums["int"] += float(int_loss.detach()) * len(y)
            sums["correct"] += int((logits.argmax(1) == y).sum())
            sums["seen"] += len(y)
            if step % 20 == 0:
                bar.set_postfix(loss=f"{sums['loss'] / sums['seen']:.3f}", acc=f"{sums['correct'] / sums['seen']:.3f}")
        train_time = time.time() - e0
        if bad := non_finite_parameters(net):  # the last step made them so: keep the last good last.pt
            raise TrainingError(diverged(out, recipe, epoch, steps_per_epoch - 1, steps_per_epoch,
                                         f"weights such as {bad[0]} are", history))
        # Score the raw weights and their moving average; the better one is this epoch's model.
        val = evaluate_net(net, val_ds, spec, bf16)
        scored, val_raw = net, val
        if ema is not None:
            val_ema = evaluate_net(ema.module, val_ds, spec, bf16)
            if val_ema["accuracy"] >= val["accuracy"]:
                scored, val = ema.module, val_ema
        entry = {
            "epoch": epoch + 1,
            "train_loss": sums["loss"] / sums["seen"],
            "train_cls_loss": sums["cls"] / sums["seen"],
            "train_intensity_loss": sums["int"] / sums["seen"],
            "train_accuracy": sums["correct"] / sums["seen"],
            "val_accuracy": val["accuracy"],
            "val_accuracy_raw": val_raw["accuracy"],
            "val_accuracy_ema": val_ema["accuracy"] if ema is not None else None,
            "scored": "ema" if scored is not net else "raw",
            "val_macro_f1": val["macro_f1"],
            "val_intensity_rmse": val["intensity_rmse"],
            "lr": opt.param_groups[0]["lr"],
            "epoch_seconds": train_time,
            "images_per_second": sums["seen"] / train_time,
            "bf16": bf16,
        }
        if swa is not None and epoch + 1 > t.epochs - t.swa_epochs:
            swa.add(net)
        history.append(entry)
        with open(out / "log.jsonl", "a") as fh:
            fh.write(json.dumps(entry) + "\n")
        msg = (f"epoch {epoch + 1}/{t.epochs}: loss {entry['train_loss']:.3f} train acc {entry['train_accuracy']:.3f} "
               f"val acc {val['accuracy']:.4f} f1 {val['macro_f1']:.3f} "
               f"rmse {val['intensity_rmse'] if val['intensity_rmse'] is not None else float('nan'):.4f} "
               f"({train_time / 60:.1f} min, {entry['images_per_second']:.0f} img/s)")
        if epoch + 1 < t.epochs:  # the whole run, validation included, at this invocation's pace
            per_epoch = (time.time() - run_start) / (epoch + 1 - start_epoch)
            msg += f", {format_duration(per_epoch * (t.epochs - epoch - 1))} left"
        (tqdm.write if progress else log.info)(msg)
        state = {
            "model": net.state_dict(), "ema": ema.state_dict() if ema is not None else None,
            "swa": swa.state_dict() if swa is not None else None,
            "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
            "epoch": epoch, "history": history, "best_acc": max(best_acc, val["accuracy"]),
            "recipe": recipe.to_dict(), "arch": net.arch, "arch_kwargs": net.arch_kwargs,
            "input_spec": spec.to_dict(), "n_params": n_params, "invocations": invocations,
        }
        torch.save(state, out / "last.pt.tmp")
        os.replace(out / "last.pt.tmp", last)
        if keep_epochs:
            kept = out / "epochs" / f"e{epoch + 1:03d}.pt"
            kept.parent.mkdir(exist_ok=True)
            kept.unlink(missing_ok=True)
            os.link(last, kept)
        if val["accuracy"] > best_acc:
            best_acc = val["accuracy"]
            save_inference_checkpoint(scored, recipe, spec, entry, out / "best.pt", invocations)
        plot_history(history, out / "curves.png")
    if swa is not None and history and history[-1]["epoch"] == t.epochs and not (out / "swa.pt").is_file():
        best_acc = finish_weight_average(swa, data, val_ds, spec, bf16, recipe, history[-1], out, best_acc, invocations)
    return history[-1] if history else {}


def diverged(out: Path, recipe: Recipe, epoch: int, step: int, steps: int, what: str, history: list[dict]) -> str:
    """The one-line reason a run stopped on a non-finite loss: where, the likely cause, what is kept."""
    t = recipe.train
    cause = f"the learning rate (lr = {t.lr}, {t.optimizer}, {t.schedule}) is likely too high: lower [train] lr"
    if t.grad_clip == 0:
        cause += " or set grad_clip (e.g. 5.0)"
    kept = (f"{out / 'last.pt'} keeps epoch {history[-1]['epoch']} (rerun to resume from it)" if history
            else "no epoch was saved")
    return (f"{out}: training stopped at epoch {epoch + 1}, step {step + 1}/{steps}: {what} not finite (NaN or "
            f"infinity); {cause}; {kept}")


def finish_weight_average(swa: WeightAverage, data: TensorData, val_ds: FaceDataset, spec: InputSpec, bf16: bool,
                          recipe: Recipe, last_entry: dict, out: Path, best_acc: float,
                          invocations: list[dict]) -> float:
    """Score the average of the last epochs' weights; save it as ``swa.pt`` (and ``best.pt`` if it beats it)."""
    t0 = time.time()
    net = swa.finish(data.images, spec)
    val = evaluate_net(net, val_ds, spec, bf16)
    entry = {k: v for k, v in last_entry.items() if k not in ("val_accuracy_raw", "val_accuracy_ema")}
    entry.update({"scored": "swa", "swa_epochs": swa.count, "val_accuracy": val["accuracy"],
                  "val_macro_f1": val["macro_f1"], "val_intensity_rmse": val["intensity_rmse"]})
    (out / "swa.json").write_text(json.dumps(entry, indent=2))
    log.info("weight average of the last %d epochs: val acc %.4f f1 %.3f rmse %.4f (%.0f s)", swa.count,
             val["accuracy"], val["macro_f1"], val["intensity_rmse"] or float("nan"), time.time() - t0)
    save_inference_checkpoint(net, recipe, spec, entry, out / "swa.pt", invocations)
    if val["accuracy"] > best_acc:
        save_inference_checkpoint(net, recipe, spec, entry, out / "best.pt", invocations)
        return val["accuracy"]
    return best_acc


def format_duration(seconds: float) -> str:
    """``2h05m`` or ``14 min``: the remaining time of a run, for its epoch lines."""
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes} min"


def plot_history(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    a1.plot(epochs, [h["train_loss"] for h in history], label="train loss")
    a1.plot(epochs, [h["train_cls_loss"] for h in history], label="train class loss")
    a1.plot(epochs, [h["train_intensity_loss"] for h in history], label="train intensity loss")
    a1.set_xlabel("epoch")
    a1.legend()
    a2.plot(epochs, [h["train_accuracy"] for h in history], label="train accuracy (augmented)")
    a2.plot(epochs, [h["val_accuracy"] for h in history], label="validation accuracy")
    a2.plot(epochs, [h["val_macro_f1"] for h in history], label="validation macro-F1")
    a2.set_xlabel("epoch")
    a2.legend()
    a2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
