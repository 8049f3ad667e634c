"""emolens quantize refuses bad requests before any work, naming the input and the fix."""

from __future__ import annotations

import pytest

pytest.importorskip("onnxruntime.quantization", reason="quantization needs onnx (the [train] extra)")

from emolens.training.quantize import QuantizeError, quantize_model  # noqa: E402


@pytest.mark.parametrize("kwargs, message", [
    ({"rows": 0}, "--rows 0"),
    ({"ranges": "entropy"}, "use percentile or minmax"),
])
def test_bad_settings_are_clear_errors(tiny_model, tmp_path, kwargs, message):
    with pytest.raises(QuantizeError, match=message):
        quantize_model(tiny_model, tmp_path / "q.onnx", tmp_path / "fer.csv", **kwargs)


def test_source_is_never_overwritten_and_must_exist(tiny_model, tmp_path):
    with pytest.raises(QuantizeError, match="overwrite"):
        quantize_model(tiny_model, tiny_model, tmp_path / "fer.csv")
    with pytest.raises(QuantizeError, match="not found"):
        quantize_model(tmp_path / "none.onnx", tmp_path / "q.onnx", tmp_path / "fer.csv")
    assert not (tmp_path / "q.onnx").exists()
