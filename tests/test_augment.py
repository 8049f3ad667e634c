"""Batched augmentation: shapes, ranges, determinism with a seed."""

import pytest

torch = pytest.importorskip("torch", reason="augmentation tests need the [train] extra (torch)")

from emolens.model_input import DEFAULT_INPUT  # noqa: E402
from emolens.training.augment import AugmentConfig, augment_batch, normalize_batch  # noqa: E402


def batch():
    return torch.randint(0, 256, (16, 48, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


def test_augment_is_deterministic_for_a_seed_and_varies_across_seeds():
    cfg = AugmentConfig()
    a = augment_batch(batch(), cfg, DEFAULT_INPUT, torch.Generator().manual_seed(0))
    b = augment_batch(batch(), cfg, DEFAULT_INPUT, torch.Generator().manual_seed(0))
    c = augment_batch(batch(), cfg, DEFAULT_INPUT, torch.Generator().manual_seed(1))
    assert a.shape == (16, 1, 48, 48) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_no_augmentation_equals_normalisation():
    off = AugmentConfig(flip=0, rotate=0, scale=0, shift=0, brightness=0, contrast=0, blur=0, erase=0)
    x = batch()
    assert torch.allclose(augment_batch(x, off, DEFAULT_INPUT, torch.Generator()), normalize_batch(x, DEFAULT_INPUT))


def test_flip_only_mirrors():
    flip = AugmentConfig(flip=1.0, rotate=0, scale=0, shift=0, brightness=0, contrast=0, blur=0, erase=0)
    x = batch()
    out = augment_batch(x, flip, DEFAULT_INPUT, torch.Generator())
    assert torch.allclose(out, normalize_batch(x.flip(-1), DEFAULT_INPUT))


def test_values_stay_in_the_normalised_pixel_range():
    out = augment_batch(batch(), AugmentConfig(brightness=0.5, contrast=0.5), DEFAULT_INPUT, torch.Generator())
    lo = (0 - DEFAULT_INPUT.mean) / DEFAULT_INPUT.std
    hi = (1 - DEFAULT_INPUT.mean) / DEFAULT_INPUT.std
    assert out.min() >= lo - 1e-5 and out.max() <= hi + 1e-5
