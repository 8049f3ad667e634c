"""emolens quantize refuses bad requests before any work, naming the input and the fix."""

from __future__ import annotations

import shutil

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


@pytest.mark.parametrize("out, message", [
    ("m.onnx", "m.onnx: the model would overwrite the input model"),
    ("m.json", "must be a .onnx file"),       # wrote the int8 model over the source's card, then its own card
    ("m.ONNX", "m.json: the model card would overwrite the input model card"),   # its card is the source's
    ("fer.csv", "must be a .onnx file"),
])
def test_no_output_lands_on_the_source_model_its_card_or_the_data(tiny_model, tmp_path, out, message):
    for suffix in (".onnx", ".json"):
        shutil.copy(tiny_model.with_suffix(suffix), tmp_path / f"m{suffix}")
    (tmp_path / "fer.csv").write_text("emotion,pixels,Usage\n")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(QuantizeError, match=message):
        quantize_model(tmp_path / "m.onnx", tmp_path / out, tmp_path / "fer.csv")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_source_must_exist(tmp_path):
    with pytest.raises(QuantizeError, match="not found"):
        quantize_model(tmp_path / "none.onnx", tmp_path / "q.onnx", tmp_path / "fer.csv")
    assert not (tmp_path / "q.onnx").exists()
