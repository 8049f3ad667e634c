"""benchmarks/tta_views.py: the shifted and rescaled test-time views."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from tta_views import rescaled, shifted  # noqa: E402


def test_shift_moves_content_and_repeats_the_edge():
    faces = np.arange(2 * 6 * 6, dtype=np.uint8).reshape(2, 6, 6)
    right = shifted(faces, 2, 0, 2)
    assert right.shape == faces.shape
    assert (right[:, :, 2:] == faces[:, :, :4]).all()  # content moved 2 px right
    assert (right[:, :, 0] == faces[:, :, 0]).all() and (right[:, :, 1] == faces[:, :, 0]).all()
    down = shifted(faces, 0, -1, 2)  # up by one
    assert (down[:, :5] == faces[:, 1:]).all() and (down[:, 5] == faces[:, 5]).all()
    assert (shifted(faces, 0, 0, 2) == faces).all()


def test_rescaled_views_keep_the_input_size_and_a_flat_face_flat():
    faces = np.full((3, 48, 48), 90, np.uint8)
    for side in (44, 52):
        out = rescaled(faces, side)
        assert out.shape == faces.shape and out.dtype == np.uint8 and (out == 90).all()
