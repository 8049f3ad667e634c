"""benchmarks/net_budget.py: how architecture specs on its command line are read."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
pytest.importorskip("cv2")

from _common import parse_spec  # noqa: E402


def test_spec_with_ints_lists_booleans_and_floats():
    assert parse_spec("emonet:width=48,blocks=1-2-3-2,se=false,dropout=0.2") == (
        "emonet", {"width": 48, "blocks": [1, 2, 3, 2], "se": False, "dropout": 0.2})
    assert parse_spec("vgg_compact") == ("vgg_compact", {})


def test_spec_without_a_value_is_a_clear_error():
    with pytest.raises(SystemExit, match="expected key=value, got 'width'"):
        parse_spec("emonet:width")
