"""Shared fixtures: the shared datasets (skipped when absent) and a tiny stand-in ONNX model."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("EMOLENS_DATASETS", REPO.parent / "shared" / "datasets"))
PHOTOS_DEV = DATASETS / "photos-dev"
FER2013 = DATASETS / "fer2013" / "fer2013.csv.gz"
FERPLUS = DATASETS / "fer2013" / "fer2013new.csv"

os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def fer2013_path() -> Path:
    if not FER2013.is_file():
        pytest.skip(f"FER2013 not found at {FER2013} (the shared datasets sit beside the repo)")
    return FER2013


@pytest.fixture(scope="session")
def ferplus_path() -> Path:
    if not FERPLUS.is_file():
        pytest.skip(f"FER+ votes not found at {FERPLUS} (the shared datasets sit beside the repo)")
    return FERPLUS


@pytest.fixture(scope="session")
def photos_dev() -> Path:
    if not (PHOTOS_DEV / "labels.csv").is_file():
        pytest.skip(f"photos-dev not found at {PHOTOS_DEV} (the shared datasets sit beside the repo)")
    return PHOTOS_DEV


@pytest.fixture(scope="session")
def photo(photos_dev) -> Path:
    return photos_dev / "images" / "Aaron_Guiel_0001.jpg"


def make_tiny_model(path: Path, size: int = 48) -> Path:
    """A minimal model with emolens' ONNX interface: logits and intensity from the crop's mean and contrast."""
    onnx = pytest.importorskip("onnx", reason="building the stand-in model needs the onnx package")
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    w = rng.normal(size=(2, 7)).astype(np.float32)
    b = rng.normal(size=(7,)).astype(np.float32)
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["m"], keepdims=0, axes=[1, 2, 3]),
        helper.make_node("Mul", ["input", "input"], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["m2"], keepdims=0, axes=[1, 2, 3]),
        helper.make_node("Unsqueeze", ["m", "ax"], ["m_"]),
        helper.make_node("Unsqueeze", ["m2", "ax"], ["m2_"]),
        helper.make_node("Concat", ["m_", "m2_"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "W", "B"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["intensity"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 7]),
         helper.make_tensor_value_info("intensity", TensorProto.FLOAT, ["N", 7])],
        [helper.make_tensor("W", TensorProto.FLOAT, w.shape, w.ravel()),
         helper.make_tensor("B", TensorProto.FLOAT, b.shape, b),
         helper.make_tensor("ax", TensorProto.INT64, [1], [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    if model.opset_import[0].version >= 18:  # pragma: no cover
        pass
    onnx.save(model, str(path))
    card = {"labels": ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"],
            "input": {"size": size, "mean": 0.5, "std": 0.25, "channels": 1}, "note": "test stand-in"}
    path.with_suffix(".json").write_text(json.dumps(card))
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("model") / "tiny.onnx")


@pytest.fixture(scope="session")
def recognizer(tiny_model):
    from emolens import Recognizer

    return Recognizer(model=tiny_model)


# The video tests use one fixed detector (dlib finds every face of their clips), so they do not
# depend on which backend is the default.
VIDEO_DETECTOR = "dlib"


@pytest.fixture(scope="session")
def tiny_video_args(tiny_model) -> list:
    """`emolens video` options for the tiny model and the video tests' detector."""
    return ["--model", tiny_model, "--detector", VIDEO_DETECTOR, "--no-progress"]


@pytest.fixture(scope="session")
def video_recognizer(tiny_model):
    from emolens import Recognizer

    return Recognizer(model=tiny_model, detector=VIDEO_DETECTOR)


@pytest.fixture(scope="module")
def engine():
    """The serve tests' analysis engine (the shipped model, landmarks, BlazeFace), one per test module."""
    import cv2

    from emolens.serve import ServeConfig
    from emolens.serve.engine import Engine

    threads = cv2.getNumThreads()
    eng = Engine(ServeConfig(workers=2))
    yield eng
    eng.close()
    cv2.setNumThreads(threads)           # the engine pins OpenCV's threads process-wide


@pytest.fixture(autouse=True)
def restore_signal_handlers():
    """An interrupted `emolens video` or `emolens batch` ignores further signals until the process
    ends; run in-process, every test puts the SIGINT and SIGTERM handlers back."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
