"""Detectors, landmarks and alignment geometry."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from emolens.faces import CropSpec, crop_face, get_crop, get_detector, list_detectors
from emolens.faces.align import crop_matrix, level_angle, levelling_matrix, transform_points
from emolens.faces.detect import Detection, FaceDetector, UnknownDetectorError, register_detector
from emolens.faces.landmarks import SHAPE_PREDICTOR_68, LandmarkPredictor, eye_centres, model_file


def test_registry_lists_required_backends():
    names = list_detectors()
    assert {"haar", "dlib", "dlib+haar"} <= set(names)
    assert all(isinstance(d, str) and d for d in names.values())
    with pytest.raises(UnknownDetectorError, match="haar"):
        get_detector("nope")


@pytest.mark.parametrize("name", ["haar", "dlib", "dlib-cnn", "dlib+haar"])
def test_each_detector_finds_the_face_in_a_real_photo(name, photo):
    grey = cv2.imread(str(photo), cv2.IMREAD_GRAYSCALE)
    found = get_detector(name)(grey)
    assert found, f"{name} found no face in {photo.name}"
    x, y, w, h = found[0].box
    assert 0 <= x and 0 <= y and x + w <= grey.shape[1] and y + h <= grey.shape[0]
    assert w > 100 and h > 100  # the face fills most of the 350 px picture


@pytest.mark.parametrize("name", ["haar", "dlib", "dlib+haar"])
def test_detectors_handle_tiny_and_blank_images(name):
    det = get_detector(name)
    assert det(np.zeros((1, 1), np.uint8)) == []
    assert det(np.full((200, 300), 128, np.uint8)) == []


def test_large_image_is_detected_downscaled_and_boxes_scaled_back(photo):
    grey = cv2.imread(str(photo), cv2.IMREAD_GRAYSCALE)
    big = cv2.resize(grey, None, fx=8, fy=8, interpolation=cv2.INTER_LINEAR)  # 2800 x 2800

    seen = []

    class Spy(FaceDetector):
        inner = get_detector("dlib")

        def _detect(self, g):
            seen.append(g.shape)
            return self.inner._detect(g)

    reference = get_detector("dlib")(cv2.resize(big, (640, 640), interpolation=cv2.INTER_AREA))[0].box
    big_box = Spy(max_side=640)(big)[0].box
    assert max(seen[0]) == 640
    assert np.allclose(big_box, np.array(reference) * 2800 / 640, atol=6)


def test_register_a_new_backend():
    @register_detector("test-fixed", "always one box")
    def _fixed(**options):
        class Fixed(FaceDetector):
            def _detect(self, grey):
                return [(10, 10, 50, 50, 1.0)]

        return Fixed(**options)

    assert "test-fixed" in list_detectors()
    assert get_detector("test-fixed")(np.zeros((100, 100), np.uint8)) == [Detection((10, 10, 50, 50), 1.0)]


def test_landmark_model_is_found_without_importing_its_package():
    import sys

    path = model_file(SHAPE_PREDICTOR_68)
    assert path.is_file() and path.stat().st_size > 50_000_000
    assert "face_recognition_models" not in sys.modules


def test_landmarks_on_a_real_face(photo):
    grey = cv2.imread(str(photo), cv2.IMREAD_GRAYSCALE)
    box = get_detector("dlib")(grey)[0].box
    lm = LandmarkPredictor()(grey, box)
    assert lm.shape == (68, 2)
    left, right = eye_centres(lm)
    assert left[0] < right[0]
    assert max(left[1], right[1]) < lm[30, 1] < lm[8, 1]  # eyes above nose tip above chin


def synthetic_landmarks(angle_deg: float = 0.0, centre=(200.0, 200.0)) -> np.ndarray:
    """A plausible frontal 68-point layout (via a mean shape), rotated about ``centre``."""
    lm = np.zeros((68, 2))
    jaw_t = np.linspace(-1, 1, 17)
    lm[0:17] = np.c_[100 * jaw_t, 40 + 60 * (1 - jaw_t**2)]       # jaw: sides at y=40, chin at y=100
    lm[17:27] = np.c_[np.linspace(-70, 70, 10), np.full(10, -35)]  # eyebrows
    lm[27:36] = np.c_[np.zeros(9), np.linspace(-10, 30, 9)]        # nose
    eye = np.c_[np.cos(np.linspace(0, 2 * np.pi, 6, endpoint=False)) * 15,
                np.sin(np.linspace(0, 2 * np.pi, 6, endpoint=False)) * 5]
    lm[36:42] = eye + [-40, -10]
    lm[42:48] = eye + [40, -10]
    lm[48:68] = np.c_[np.linspace(-30, 30, 20), np.full(20, 60)]   # mouth
    lm += centre
    m = cv2.getRotationMatrix2D(centre, angle_deg, 1.0)
    return transform_points(m, lm)


@pytest.mark.parametrize("angle", [-30, -10, 0, 15, 40])
def test_rotated_landmarks_are_levelled(angle):
    lm = synthetic_landmarks(angle)
    assert math.degrees(level_angle(lm)) == pytest.approx(-angle, abs=1e-6)
    levelled = transform_points(levellingmatrix := levelling_matrix(lm), lm)
    left, right = eye_centres(levelled)
    assert left[1] == pytest.approx(right[1], abs=1e-6)
    assert levellingmatrix.shape == (2, 3)


@pytest.mark.parametrize("angle", [-25, 0, 20])
def test_aligned_crop_geometry(angle):
    lm = synthetic_landmarks(angle)
    spec = CropSpec("aligned", top=0.5, square=False)
    m = crop_matrix(spec, 48, landmarks=lm)
    out = transform_points(m, lm)
    left, right = eye_centres(out)
    assert left[1] == pytest.approx(right[1], abs=1e-6)           # eyes level
    assert out[0, 0] == pytest.approx(0, abs=1e-6)                 # landmark 1 on the left edge
    assert out[16, 0] == pytest.approx(48, abs=1e-6)               # landmark 17 on the right edge
    assert out[8, 1] == pytest.approx(48, abs=1e-6)                # landmark 9 (chin) on the bottom edge
    assert left[1] == pytest.approx(48 / 3, abs=1e-6)              # top=0.5: eyes one third down


def test_square_crop_keeps_aspect_and_centres():
    lm = synthetic_landmarks(0)
    out = transform_points(crop_matrix(CropSpec("aligned"), 48, landmarks=lm), lm)
    width = out[16, 0] - out[0, 0]
    assert width == pytest.approx(48, abs=1e-6)  # jaw is wider than eye-to-chin + top: width sets the side
    assert out[0, 0] == pytest.approx(0, abs=1e-6)


def test_box_crop_with_margin():
    grey = np.zeros((200, 200), np.uint8)
    grey[50:150, 50:150] = 255
    tight = crop_face(grey, get_crop("box"), 48, box=(50, 50, 100, 100))
    assert tight.shape == (48, 48) and tight.dtype == np.uint8
    assert tight.min() > 200
    wide = crop_face(grey, get_crop("box", margin=0.25), 48, box=(50, 50, 100, 100))
    assert wide[0, 0] == 0 and wide[24, 24] == 255
    border = crop_face(grey, get_crop("box", margin=0.5), 48, box=(0, 0, 100, 100))  # outside the picture
    assert border.shape == (48, 48)


def test_crop_of_a_real_face_is_model_sized(photo):
    grey = cv2.imread(str(photo), cv2.IMREAD_GRAYSCALE)
    box = get_detector("dlib")(grey)[0].box
    lm = LandmarkPredictor()(grey, box)
    crop = crop_face(grey, get_crop("aligned"), 48, landmarks=lm)
    assert crop.shape == (48, 48) and crop.dtype == np.uint8 and crop.std() > 10


def test_unknown_crop_name():
    with pytest.raises(ValueError, match="aligned"):
        get_crop("nope")
