"""The face descriptor in ONNX Runtime (weights/dlib_face_descriptor.onnx) against dlib's own network,
and the converter that made it (tools/dlib_descriptor_to_onnx.py)."""

from __future__ import annotations

import importlib.util
import os
import struct
import sys

import cv2
import numpy as np
import pytest

from emolens.people.persons import FaceDescriber

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ASTRONAUT = os.path.join(ROOT, "src", "emolens", "examples", "astronaut.jpg")
DLIB_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
PARITY = 1e-3   # Euclidean distance to dlib's descriptor (float16 weights); the same-person threshold is 0.55


def load_converter():
    spec = importlib.util.spec_from_file_location("dlib_descriptor_to_onnx",
                                                  os.path.join(ROOT, "tools", "dlib_descriptor_to_onnx.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def pictures() -> list[np.ndarray]:
    import matplotlib

    hopper = cv2.imread(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"))
    astronaut = cv2.imread(ASTRONAUT)
    return [astronaut, hopper, cv2.flip(hopper, 1), cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)]


@pytest.fixture(scope="module")
def faces():
    from emolens import Recognizer

    recognizer = Recognizer(threads=1)
    return [(image, recognizer.analyze(image)[0].landmarks) for image in pictures()]


def test_descriptors_match_dlibs_own_network(faces):
    import dlib

    from emolens.faces.landmarks import model_file

    dlib_net = dlib.face_recognition_model_v1(str(model_file(DLIB_MODEL)))
    describe = FaceDescriber(threads=1)
    for image, landmarks in faces:
        ours = describe(image, landmarks)
        assert ours.shape == (128,) and ours.dtype == np.float32
        theirs = np.asarray(dlib_net.compute_face_descriptor(describe.chip(image, landmarks)), np.float32)
        assert np.linalg.norm(ours - theirs) < PARITY


def test_a_batch_of_chips_gives_each_chips_descriptor(faces):
    describe = FaceDescriber(threads=1)
    chips = np.stack([describe.chip(image, landmarks) for image, landmarks in faces])
    assert chips.shape == (len(faces), 150, 150, 3) and chips.dtype == np.uint8
    batch = describe.describe_chips(chips)
    one_by_one = np.stack([describe(image, landmarks) for image, landmarks in faces])
    np.testing.assert_allclose(batch, one_by_one, atol=1e-6)


def test_missing_model_file_is_named(tmp_path):
    with pytest.raises(RuntimeError, match="nothing.onnx"):
        FaceDescriber(model=tmp_path / "nothing.onnx")


# ---------------------------------------------------------------- the converter

def test_reader_decodes_dlibs_primitives():
    conv = load_converter()
    # integers: control byte (0x80 negative, low bits the byte count), then little-endian bytes
    data = bytes([0x01, 0x00, 0x01, 0x7F, 0x02, 0x2C, 0x01, 0x81, 0x05])
    # float 0.75 as float_details: mantissa 3, exponent -2; the string "relu_"; bools '1' '0'
    data += bytes([0x01, 0x03, 0x81, 0x02]) + bytes([0x01, 0x05]) + b"relu_" + b"10"
    # a tensor: version 2, shape (1, 2, 1, 1), two little-endian float32
    data += bytes([0x01, 0x02, 0x01, 0x01, 0x01, 0x02, 0x01, 0x01, 0x01, 0x01]) + struct.pack("<2f", 1.5, -2.0)
    r = conv.DlibReader(data)
    assert [r.integer() for _ in range(4)] == [0, 127, 300, -5]
    assert r.floating() == 0.75
    assert r.string() == "relu_"
    assert (r.boolean(), r.boolean()) == (True, False)
    t = r.tensor()
    assert t.shape == (1, 2, 1, 1) and t.ravel().tolist() == [1.5, -2.0]
    assert r.pos == len(data)
    with pytest.raises(conv.DlibFormatError):
        conv.DlibReader(bytes([0x00])).integer()


def test_reader_finds_dlibs_declared_network_in_the_model_file():
    from emolens.faces.landmarks import model_file

    conv = load_converter()
    mean, layers = conv.read_descriptor_network(model_file(DLIB_MODEL).read_bytes())
    np.testing.assert_allclose(mean, [122.782, 117.001, 104.298], atol=1e-4)
    kinds = [layer.kind for layer in layers]
    assert kinds.count("con") == kinds.count("affine") == 29 and kinds.count("add_prev") == 14
    assert layers[0].values["weight"].shape == (32, 3, 7, 7) and layers[-1].values["weight"].shape == (256, 128)
    data = model_file(DLIB_MODEL).read_bytes()
    for damaged in (data[:-4], data + b"\x00"):  # cut short; something after the last layer
        with pytest.raises(conv.DlibFormatError):
            conv.read_descriptor_network(damaged)


def test_serve_shares_one_descriptor_model_across_threads(faces, monkeypatch):
    """emolens serve's workers share one descriptor session: calls from several threads at once give
    what one-by-one calls give, and the model is loaded once."""
    from concurrent.futures import ThreadPoolExecutor

    import emolens.people.persons as persons_module
    from emolens.serve.engine import SharedDescriber

    alone = [FaceDescriber(threads=1)(image, landmarks) for image, landmarks in faces]
    made = []

    class Counted(FaceDescriber):
        def __init__(self, *args, **kwargs):
            made.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(persons_module, "FaceDescriber", Counted)
    shared = SharedDescriber(threads=1)
    jobs = [faces[k % len(faces)] for k in range(24)]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda job: shared(*job), jobs))
    assert len(made) == 1
    for k, descriptor in enumerate(together):
        assert np.linalg.norm(descriptor - alone[k % len(faces)]) < 1e-5
