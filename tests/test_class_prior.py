"""benchmarks/class_prior.py: the Training prior and post-hoc logit adjustment."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from class_prior import adjusted, training_prior  # noqa: E402


def test_training_prior_counts_every_class_even_absent_ones():
    prior = training_prior(np.array([0, 0, 3, 3, 3, 6]), 7)
    assert np.allclose(prior, [2 / 6, 0, 0, 3 / 6, 0, 0, 1 / 6])


def test_tau_zero_keeps_the_model_and_tau_one_divides_by_the_prior():
    prior = np.array([0.7, 0.2, 0.1])
    logits = np.log(np.array([[0.5, 0.3, 0.2], [0.6, 0.3, 0.1]]))
    assert np.array_equal(adjusted(logits, prior, 0.0), logits)
    # p / prior: first face [0.71, 1.5, 2.0] -> the rarest class; second [0.86, 1.5, 1.0] -> the middle one
    assert adjusted(logits, prior, 1.0).argmax(1).tolist() == [2, 1]
    assert logits.argmax(1).tolist() == [0, 0]
    # tau moves answers monotonically toward rarer classes
    picks = [prior[adjusted(logits, prior, t).argmax(1)].sum() for t in (0, 0.5, 1)]
    assert picks == sorted(picks, reverse=True)
