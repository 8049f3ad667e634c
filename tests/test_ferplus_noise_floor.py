"""benchmarks/ferplus_noise_floor.py: the sampling-noise floor and the label-only predictor."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from ferplus_noise_floor import label_means, oracle_affine, sampling_floor  # noqa: E402


def test_floor_estimates_the_error_of_knowing_the_true_distribution():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.full(7, 0.5), size=20000)
    counts = rng.integers(5, 13, size=len(p))
    votes = np.stack([rng.multinomial(n, q) for n, q in zip(counts, p)])
    f = votes / counts[:, None]
    actual = np.sqrt(((f - p) ** 2).mean())
    assert abs(sampling_floor(f, counts) - actual) < 0.002
    # a single vote says nothing about the noise: such rows are left out, not divided by zero
    assert np.isfinite(sampling_floor(np.vstack([f, np.eye(7)[:1]]), np.append(counts, 1)))


def test_label_means_average_the_fractions_of_each_label_and_fall_back_to_the_overall_mean():
    labels = np.array([0, 0, 3])
    f = np.zeros((3, 7))
    f[0, 0], f[1, 0], f[1, 1], f[2, 3] = 1.0, 0.5, 0.5, 1.0
    table = label_means(labels, f)
    assert np.allclose(table[0], [0.75, 0.25, 0, 0, 0, 0, 0])
    assert np.allclose(table[3], f[2])
    assert np.allclose(table[5], f.mean(axis=0))


def test_oracle_affine_undoes_a_linear_distortion_and_never_does_worse():
    rng = np.random.default_rng(1)
    target = rng.dirichlet(np.ones(7), size=500)
    assert np.allclose(oracle_affine(0.5 * target + 0.1, target), target)
    noisy = target + rng.normal(0, 0.1, target.shape)
    assert ((oracle_affine(noisy, target) - target) ** 2).mean() <= ((noisy - target) ** 2).mean()
