"""Weight storage of exported models: per-channel int8 rounding."""

import numpy as np
import pytest

pytest.importorskip("torch", reason="export tests need the [train] extra (torch)")

from emolens.training.export import quantize_int8  # noqa: E402


def test_int8_rounding_error_is_at_most_half_a_step_per_channel():
    rng = np.random.default_rng(0)
    w = rng.normal(0, 1, (8, 4, 3, 3)).astype(np.float32) * np.arange(1, 9, dtype=np.float32)[:, None, None, None]
    q, scale = quantize_int8(w)
    assert q.dtype == np.int8 and scale.shape == (8, 1, 1, 1)
    assert np.abs(q).max() == 127  # each channel's largest weight uses the full range
    err = np.abs(q * scale - w)
    assert (err <= scale / 2 + 1e-7).all()


def test_int8_handles_an_all_zero_channel_and_dense_weights():
    w = np.zeros((3, 5), dtype=np.float32)
    w[1] = [0.5, -1.0, 0.25, 0.0, 1.0]
    q, scale = quantize_int8(w)
    assert scale.shape == (3, 1) and np.isfinite(scale).all()
    assert (q[0] == 0).all() and (q[2] == 0).all()
    np.testing.assert_allclose(q[1] * scale[1], w[1], atol=1 / 254)
