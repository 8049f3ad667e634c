"""Soft class targets (label smoothing, FER+ votes, teacher) and mixup/CutMix batch mixing."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="training tests need the [train] extra (torch)")
import torch.nn.functional as F  # noqa: E402

from emolens.training.targets import class_targets, mix_batch, soft_cross_entropy  # noqa: E402


def test_smoothed_one_hot_matches_torch_label_smoothing():
    labels = torch.tensor([0, 3, 6, 2])
    logits = torch.randn(4, 7, generator=torch.Generator().manual_seed(1))
    q = class_targets(labels, 7, label_smoothing=0.1)
    assert torch.allclose(q.sum(1), torch.ones(4))
    expected = F.cross_entropy(logits, labels, label_smoothing=0.1)
    assert torch.allclose(soft_cross_entropy(logits, q), expected, atol=1e-6)


def test_votes_mix_only_into_rows_that_have_votes():
    labels = torch.tensor([0, 1])
    votes = torch.tensor([[0, 0, 0, 1.0, 0, 0, 0], [0] * 7], dtype=torch.float32)
    has = torch.tensor([True, False])
    q = class_targets(labels, 7, 0.0, votes, has, votes_weight=0.5)
    assert q[0, 0] == pytest.approx(0.5) and q[0, 3] == pytest.approx(0.5)
    assert torch.equal(q[1], F.one_hot(torch.tensor(1), 7).float())


def test_teacher_distribution_mixes_in():
    teacher = torch.full((1, 7), 1 / 7)
    q = class_targets(torch.tensor([4]), 7, teacher=teacher, teacher_weight=0.7)
    assert q[0, 4] == pytest.approx(0.3 + 0.1)
    assert q.sum() == pytest.approx(1.0)


def batch(n=8):
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(n, 1, 48, 48, generator=gen)
    labels = torch.arange(n) % 7
    q = class_targets(labels, 7)
    inten = torch.rand(n, 7, generator=gen)
    has = torch.ones(n, dtype=torch.bool)
    has[0] = False
    return images, q, inten, has


@pytest.mark.parametrize("kind", ["mixup", "cutmix"])
def test_mixing_blends_images_and_targets_with_one_weight(kind):
    images, q, inten, has = batch()
    gen = torch.Generator().manual_seed(3)
    out = mix_batch(images, q, inten, has, None, mixup=1.0 if kind == "mixup" else 0.0,
                    cutmix=1.0 if kind == "cutmix" else 0.0, prob=1.0, gen=gen)
    assert out.images.shape == images.shape and not torch.equal(out.images, images)
    assert torch.allclose(out.targets.sum(1), torch.ones(len(q)))
    # Every mixed row's target puts weight lam on its own label and 1 - lam on its partner's.
    own = out.targets[torch.arange(len(q)), q.argmax(1)]
    assert bool((own >= 0).all()) and bool((own <= 1 + 1e-6).all())
    assert int(out.has_intensity.sum()) <= int(has.sum())   # a row mixed with the no-votes row loses its target
    if kind == "cutmix":
        changed = (out.images != images).float().mean(dim=(1, 2, 3))
        assert float(changed.max()) < 1.0   # a box, not the whole picture


def test_mixing_off_or_skipped_returns_the_batch_unchanged():
    images, q, inten, has = batch()
    gen = torch.Generator().manual_seed(0)
    out = mix_batch(images, q, inten, has, None, mixup=0.0, cutmix=0.0, prob=1.0, gen=gen)
    assert out.images is images and out.targets is q
    out = mix_batch(images, q, inten, has, None, mixup=0.4, cutmix=0.0, prob=0.0, gen=gen)
    assert out.images is images


def test_mixing_is_reproducible_with_the_seed():
    images, q, inten, has = batch()
    a = mix_batch(images, q, inten, has, None, 0.4, 1.0, 1.0, torch.Generator().manual_seed(5))
    b = mix_batch(images, q, inten, has, None, 0.4, 1.0, 1.0, torch.Generator().manual_seed(5))
    assert torch.equal(a.images, b.images) and torch.equal(a.targets, b.targets)
