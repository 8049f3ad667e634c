"""The Python API: Recognizer.analyze on real photos, arrays of every layout, batching."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from emolens import Face, Recognizer
from emolens.emotions import EMOTIONS


def check_face(face: Face, shape):
    x, y, w, h = face.box
    assert all(isinstance(v, int) for v in face.box)
    assert 0 <= x and 0 <= y and x + w <= shape[1] and y + h <= shape[0]
    assert list(face.scores) == list(EMOTIONS) and list(face.intensity) == list(EMOTIONS)
    assert sum(face.scores.values()) == pytest.approx(1.0, abs=1e-4)
    assert all(0.0 <= v <= 1.0 for v in face.intensity.values())
    assert face.emotion == max(face.scores, key=face.scores.get)
    if face.aligned:
        assert face.landmarks.shape == (68, 2)
    json.dumps(face.to_dict())


def test_analyze_path_and_array_agree(recognizer, photo):
    by_path = recognizer.analyze(photo)
    by_array = recognizer.analyze(cv2.imread(str(photo)))
    assert len(by_path) == 1 and len(by_array) == 1
    check_face(by_path[0], (350, 350))
    assert by_path[0].box == by_array[0].box and by_path[0].aligned
    assert by_path[0].scores == pytest.approx(by_array[0].scores)


def test_rgb_grey_rgba_uint16_arrays(recognizer, photo):
    bgr = cv2.imread(str(photo))
    reference = recognizer.analyze(bgr)[0]
    variants = {
        "rgb": (cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), "rgb"),
        "grey": (cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), None),
        "bgra": (cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA), None),
        "uint16": (bgr.astype(np.uint16) * 257, None),
    }
    for name, (array, color) in variants.items():
        faces = recognizer.analyze(array, color=color)
        assert len(faces) == 1, name
        assert faces[0].box == reference.box, name


def test_no_face_gives_empty_list(recognizer):
    assert recognizer.analyze(np.full((240, 320, 3), 90, np.uint8)) == []
    assert recognizer.analyze(np.zeros((1, 1, 3), np.uint8)) == []


def test_all_faces_go_through_the_model_in_one_call(tiny_model, photo):
    from emolens.runtime import EmotionModel

    calls = []

    class Counting(EmotionModel):
        def __call__(self, faces):
            calls.append(len(faces))
            return super().__call__(faces)

    rec = Recognizer(model=Counting(tiny_model))
    calls.clear()                      # the model may run a check face when it loads
    face = cv2.imread(str(photo))
    group = np.hstack([face, np.full((350, 60, 3), 120, np.uint8), cv2.flip(face, 1)])
    faces = rec.analyze(group)
    assert len(faces) == 2 and calls == [2]
    for f in faces:
        check_face(f, group.shape)


def _small_face_canvas(photo, side: int = 38) -> np.ndarray:
    tiny = cv2.resize(cv2.imread(str(photo)), (side, side), interpolation=cv2.INTER_AREA)
    canvas = np.full((300, 300, 3), 127, np.uint8)
    canvas[100:100 + side, 100:100 + side] = tiny
    return canvas


def test_a_small_face_gets_landmarks_and_a_pose(recognizer, photo):
    """A face of ~30 px (a 38 px photo with margin) is aligned and gets a head pose: a 40 px floor
    once made every such face a box crop and "not frontal" (BENCHMARKS "Landmarks on small faces")."""
    canvas = _small_face_canvas(photo)
    faces = recognizer.analyze(canvas)
    assert len(faces) == 1
    assert faces[0].box[2] < 40 and faces[0].aligned is True and faces[0].landmarks is not None
    assert faces[0].pose is not None and faces[0].frontal is True
    check_face(faces[0], canvas.shape)


def test_a_face_below_the_landmark_floor_falls_back_to_the_box_crop(recognizer, photo, monkeypatch):
    import emolens.recognize as recognize

    monkeypatch.setattr(recognize, "MIN_LANDMARK_FACE", 60)
    canvas = _small_face_canvas(photo)
    faces = recognizer.analyze(canvas)
    assert len(faces) == 1
    assert faces[0].aligned is False and faces[0].landmarks is None and faces[0].pose is None
    assert faces[0].frontal is False
    check_face(faces[0], canvas.shape)


def test_align_off_and_named_crops(tiny_model, photo):
    img = cv2.imread(str(photo))
    off = Recognizer(model=tiny_model, align=False).analyze(img)[0]
    assert off.aligned is False and off.landmarks is not None
    wide = Recognizer(model=tiny_model, crop="box-wide").analyze(img)[0]
    assert wide.aligned is False


def test_exif_rotated_phone_photo_is_analysed_upright(recognizer, photo, tmp_path):
    from PIL import Image

    upright = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
    stored = np.ascontiguousarray(np.rot90(upright, 1))  # as a sideways phone sensor stores it
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    p = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(p, "JPEG", quality=95, exif=exif.tobytes())
    faces = recognizer.analyze(p)
    assert len(faces) == 1 and faces[0].aligned


def test_huge_picture_boxes_are_in_file_pixels(recognizer, photo, tmp_path):
    big = cv2.resize(cv2.imread(str(photo)), (5600, 5600), interpolation=cv2.INTER_LINEAR)
    p = tmp_path / "big.jpg"
    cv2.imwrite(str(p), big, [cv2.IMWRITE_JPEG_QUALITY, 80])
    faces = recognizer.analyze(p)
    assert len(faces) == 1
    x, y, w, h = faces[0].box
    assert w > 3000 and x + w <= 5600 and faces[0].landmarks.max() > 3000


def test_shipped_model_when_present(photo):
    from emolens.runtime import default_model_path

    if not default_model_path().is_file():
        pytest.skip(f"no shipped model yet at {default_model_path()}")
    faces = Recognizer().analyze(photo)
    assert len(faces) == 1
    check_face(faces[0], (350, 350))
