"""What the class head learns towards: soft target distributions and batch mixing.

Each training row's class target is a distribution over the 7 emotions, built from

* the FER2013 label, label-smoothed;
* optionally the row's FER+ vote fractions (``soft_targets`` weight), where the row has votes;
* optionally a teacher's predicted distribution (``teacher_weight``), e.g. an ensemble of
  our own models (knowledge distillation).

Mixup and CutMix blend pairs of images in a batch and blend their targets (class
distribution and intensity) with the same weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def class_targets(labels: torch.Tensor, n_classes: int, label_smoothing: float = 0.0,
                  votes: torch.Tensor | None = None, has_votes: torch.Tensor | None = None, votes_weight: float = 0.0,
                  teacher: torch.Tensor | None = None, teacher_weight: float = 0.0) -> torch.Tensor:
    """``(B,)`` labels (+ optional ``(B, C)`` distributions) -> ``(B, C)`` target distributions."""
    q = F.one_hot(labels, n_classes).float()
    if label_smoothing > 0:
        q = q * (1 - label_smoothing) + label_smoothing / n_classes
    if votes is not None and votes_weight > 0:
        mixed = (1 - votes_weight) * q + votes_weight * votes.float()
        keep = has_votes if has_votes is not None else torch.ones(len(q), dtype=torch.bool)
        q = torch.where(keep.view(-1, 1), mixed, q)
    if teacher is not None and teacher_weight > 0:
        q = (1 - teacher_weight) * q + teacher_weight * teacher.float()
    return q


def intensity_targets(how: str, labels: torch.Tensor, n_classes: int, votes: torch.Tensor,
                      has_votes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What the sigmoid intensity head learns, and for which rows: ``"ferplus"``, the FER+ vote
    fractions where a row has votes; ``"labels"``, the class labels one-hot, on every row."""
    if how == "labels":
        return F.one_hot(labels, n_classes).float(), torch.ones_like(has_votes)
    if how != "ferplus":
        raise ValueError(f"intensity targets must be 'ferplus' or 'labels', got {how!r}")
    return votes, has_votes


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, sample_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy of ``logits`` against target distributions."""
    per_row = -(targets * F.log_softmax(logits.float(), dim=1)).sum(1)
    if sample_weight is None:
        return per_row.mean()
    return (per_row * sample_weight).sum() / sample_weight.sum()


@dataclass
class MixedBatch:
    images: torch.Tensor        # (B, 1, H, W) normalised
    targets: torch.Tensor       # (B, C) class target distributions
    intensity: torch.Tensor     # (B, C) intensity targets
    has_intensity: torch.Tensor  # (B,) bool
    sample_weight: torch.Tensor | None


def mix_batch(images: torch.Tensor, targets: torch.Tensor, intensity: torch.Tensor, has_intensity: torch.Tensor,
              sample_weight: torch.Tensor | None, mixup: float, cutmix: float, prob: float,
              gen: torch.Generator) -> MixedBatch:
    """With probability ``prob``, blend the batch with a shuffled copy of itself.

    ``mixup``/``cutmix`` are the Beta(alpha, alpha) parameters; 0 disables each. When both
    are on, each mixed batch uses one of them at random. The mixing weight is one number per
    batch (as in the papers); CutMix's weight is the kept area.
    """
    unchanged = MixedBatch(images, targets, intensity, has_intensity, sample_weight)
    kinds = [k for k, a in (("mixup", mixup), ("cutmix", cutmix)) if a > 0]
    if not kinds or prob <= 0 or float(torch.rand(1, generator=gen)) >= prob:
        return unchanged
    kind = kinds[int(torch.randint(len(kinds), (1,), generator=gen))]
    alpha = mixup if kind == "mixup" else cutmix
    lam = _beta(alpha, gen)
    perm = torch.randperm(len(images), generator=gen)
    if kind == "mixup":
        mixed = lam * images + (1 - lam) * images[perm]
    else:
        h, w = images.shape[-2:]
        cut = (1 - lam) ** 0.5
        ch, cw = int(round(h * cut)), int(round(w * cut))
        cy, cx = int(torch.randint(h, (1,), generator=gen)), int(torch.randint(w, (1,), generator=gen))
        y0, y1 = max(cy - ch // 2, 0), min(cy + (ch + 1) // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + (cw + 1) // 2, w)
        mixed = images.clone()
        mixed[..., y0:y1, x0:x1] = images[perm][..., y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    weight = None if sample_weight is None else lam * sample_weight + (1 - lam) * sample_weight[perm]
    return MixedBatch(
        mixed,
        lam * targets + (1 - lam) * targets[perm],
        lam * intensity + (1 - lam) * intensity[perm],
        has_intensity & has_intensity[perm],
        weight,
    )


def _beta(alpha: float, gen: torch.Generator) -> float:
    """A Beta(alpha, alpha) draw from the run's own generator (reproducible with the seed)."""
    a = torch._standard_gamma(torch.full((2,), float(alpha)), generator=gen)
    return float(a[0] / a.sum())
