"""Detectors, landmarks and alignment geometry."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from emolens.faces import CropSpec, crop_face, get_crop, get_detector, list_detectors
from emolens.faces.align import crop_matrix, level_angle, levelling_matrix, transform_points, warp_crop
from emolens.faces.detect import Detection, FaceDetector, UnknownDetectorError, detect_faces, register_detector
from emolens.faces.landmarks import SHAPE_PREDICTOR_68, LandmarkPredictor, eye_centres, model_file


def test_registry_lists_required_backends():
    names = list_detectors()
    assert {"haar", "dlib", "dlib+haar", "blazeface"} <= set(names)
    assert all(isinstance(d, str) and d for d in names.values())
    with pytest.raises(UnknownDetectorError, match="haar"):
        get_detector("nope")


@pytest.mark.parametrize("name", ["haar", "dlib", "dlib-cnn", "dlib+haar", "blazeface"])
def test_each_detector_finds_the_face_in_a_real_photo(name, photo):
    grey = cv2.imread(str(photo), cv2.IMREAD_GRAYSCALE)
    found = get_detector(name)(grey)
    assert found, f"{name} found no face in {photo.name}"
    x, y, w, h = found[0].box
    assert 0 <= x and 0 <= y and x + w <= grey.shape[1] and y + h <= grey.shape[0]
    assert w > 100 and h > 100  # the face fills most of the 350 px picture


@pytest.mark.parametrize("name", ["haar", "dlib", "dlib+haar", "blazeface"])
def test_detectors_handle_tiny_and_blank_images(name):
    det = get_detector(name)
    assert det(np.zeros((1, 1), np.uint8)) == []
    assert det(np.full((200, 300), 128, np.uint8)) == []


def test_detectors_ignore_noise():
    noise = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 256, (480, 640), dtype=np.uint8), (0, 0), 2)
    assert get_detector("blazeface")(noise) == []


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


def test_padded_second_chance_is_an_option_of_the_detector_and_of_each_call():
    from emolens.faces.detect import FallbackDetector

    class Counting(FaceDetector):
        calls = 0

        def _detect(self, grey):
            Counting.calls += 1
            return []

    blank = np.zeros((100, 100), np.uint8)

    def passes(detector, **call):
        Counting.calls = 0
        assert detector(blank, **call) == []
        return Counting.calls

    assert passes(Counting()) == 2                       # the picture, then the padded retry
    assert passes(Counting(), retry=False) == 1
    assert passes(Counting(retry=False)) == 1
    assert passes(Counting(retry=False), retry=True) == 2  # the call decides
    assert passes(FallbackDetector([Counting(), Counting()]), retry=False) == 2
    assert get_detector("blazeface", retry=False).retry is False and get_detector("haar").retry is True

    class Older(FaceDetector):  # a detector written before the option: its __call__ has no retry
        def __call__(self, grey):
            return [Detection((1, 2, 30, 30), 1.0)]

    assert detect_faces(Older(), blank, retry=False) == [Detection((1, 2, 30, 30), 1.0)]
    Counting.calls = 0
    assert detect_faces(Counting(), blank, retry=False) == [] and Counting.calls == 1


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


def test_landmark_points_parsed_from_dlibs_text_equal_its_attributes(photo):
    import dlib

    from emolens.faces.landmarks import parts_array

    grey = cv2.imread(str(photo), cv2.IMREAD_GRAYSCALE)
    x, y, w, h = get_detector("dlib")(grey)[0].box
    predictor = LandmarkPredictor()
    for dx in (0, -x - w // 3):  # the second box hangs off the left edge: negative coordinates
        shape = predictor._predictor(grey, dlib.rectangle(x + dx, y, x + dx + w - 1, y + h - 1))
        slow = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
        fast = parts_array(shape)
        assert fast.dtype == np.float32 and fast.shape == (68, 2) and np.array_equal(fast, slow)
    assert dx < 0 and (slow[:, 0] < 0).any()


def test_landmarks_are_the_same_with_and_without_huge_pages(photo):
    from emolens.faces.landmarks import advise_huge_pages

    grey = cv2.imread(str(photo), cv2.IMREAD_GRAYSCALE)
    box = get_detector("dlib")(grey)[0].box
    plain = LandmarkPredictor(huge_pages=False)
    huge = LandmarkPredictor(huge_pages=True)
    assert plain.huge_page_bytes == 0
    if sys.platform.startswith("linux") and Path("/sys/kernel/mm/transparent_hugepage").is_dir():
        assert huge.huge_page_bytes > 32 << 20  # at least most of the model's ~70 MB
    assert np.array_equal(huge(grey, box), plain(grey, box))
    assert advise_huge_pages(None) == 0  # no "before" (not Linux): nothing done


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


def _crop_matrix_with_arrays(spec, size, box=None, landmarks=None):
    """crop_matrix as first written, with array operations on all 68 points (the reference)."""
    from emolens.faces.align import _frame

    if spec.mode == "aligned":
        rotation = levelling_matrix(landmarks)
        lm = transform_points(rotation, landmarks)
        eye_y = lm[36:48, 1].mean()
        left, right = lm[0, 0], lm[16, 0]
        top = eye_y - spec.top * (lm[8, 1] - eye_y)
        x0, y0, w, h = _frame(min(left, right), top, max(left, right), lm[8, 1], spec)
    else:
        bx, by, bw, bh = box
        rotation = np.array([[1.0, 0, 0], [0, 1.0, 0]])
        x0, y0, w, h = _frame(bx, by, bx + bw, by + bh, spec)
    sx, sy = size / w, size / h
    scale = np.array([[sx, 0, -x0 * sx], [0, sy, -y0 * sy], [0, 0, 1]])
    return (scale @ np.vstack([rotation, [0, 0, 1]]))[:2]


def test_crop_matrix_equals_the_array_formulation_and_so_do_the_crops():
    rng = np.random.default_rng(0)
    grey = cv2.GaussianBlur(rng.integers(0, 256, (480, 640), dtype=np.uint8), (0, 0), 2)
    specs = [get_crop("aligned"), get_crop("box"), get_crop("box-wide"),
             CropSpec("aligned", top=0.4, margin=0.1, shift=0.05, square=False)]
    for i in range(200):
        lm = (synthetic_landmarks(rng.uniform(-40, 40), centre=rng.uniform(150, 350, 2))
              + rng.normal(0, 3, (68, 2))).astype(np.float32)
        box = tuple(int(v) for v in rng.integers(0, 300, 4) + [0, 0, 20, 20])
        for spec in specs:
            fast = crop_matrix(spec, 48, box=box, landmarks=lm)
            reference = _crop_matrix_with_arrays(spec, 48, box=box, landmarks=lm)
            assert np.abs(fast - reference).max() < 1e-9
            if i < 20:
                assert np.array_equal(crop_face(grey, spec, 48, box=box, landmarks=lm),
                                      warp_crop(grey, reference, 48))
    with pytest.raises(ValueError, match="68"):
        crop_matrix(get_crop("aligned"), 48, landmarks=np.zeros((5, 2)))


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


# ---------------------------------------------------------------------------------------
# BlazeFace: model file, anchors, decoding, NMS, box convention


def test_blazeface_model_ships_with_the_package_and_needs_no_tensorflow():
    import sys

    from emolens.faces.blazeface import MODEL_FILE

    assert MODEL_FILE.is_file() and 300_000 < MODEL_FILE.stat().st_size < 1_000_000
    get_detector("blazeface")(np.zeros((64, 64), np.uint8))
    assert "tensorflow" not in sys.modules


def test_blazeface_shipped_graph_takes_grey_and_a_three_channel_graph_still_works(photo, tmp_path):
    """The shipped graph is rewritten for a grey input (models/NOTICE.md); a 3-channel BlazeFace
    (as tflite2onnx writes it) gets the grey plane in every channel and finds the same face."""
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    from emolens.faces.blazeface import MODEL_FILE, BlazeFaceDetector

    shipped = BlazeFaceDetector()
    assert shipped.channels == 1 and shipped.session.get_inputs()[0].shape == [1, 1, "height", "width"]
    model = onnx.load(str(MODEL_FILE))  # back to 3 channels: the first conv's weights split in three
    first = next(n for n in model.graph.node if n.input[0] == model.graph.input[0].name)
    init = next(i for i in model.graph.initializer if i.name == first.input[1])
    w = numpy_helper.to_array(init)
    init.CopyFrom(numpy_helper.from_array(np.repeat(w / 3, 3, axis=1).astype(np.float32), init.name))
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 3
    onnx.save(model, str(tmp_path / "rgb.onnx"))
    rgb = BlazeFaceDetector(model=tmp_path / "rgb.onnx")
    assert rgb.channels == 3
    grey = cv2.imread(str(photo), cv2.IMREAD_GRAYSCALE)
    a, b = shipped(grey), rgb(grey)
    assert len(a) == len(b) == 1
    assert np.abs(np.subtract(a[0].box, b[0].box)).max() <= 1 and a[0].score == pytest.approx(b[0].score, abs=1e-4)


def test_blazeface_anchors_follow_mediapipe_layout():
    from emolens.faces.blazeface import ssd_anchors

    a = ssd_anchors()
    assert a.shape == (896, 2)                           # 16*16*2 + 8*8*6
    assert np.allclose(a[0], a[1]) and np.allclose(a[0], [1 / 32, 1 / 32])
    assert np.allclose(a[2], [3 / 32, 1 / 32])          # x varies fastest
    assert np.allclose(a[512:518], [1 / 16, 1 / 16])     # second grid: 6 anchors per cell
    assert np.allclose(a[-1], [15 / 16, 15 / 16])


def test_blazeface_decode_puts_boxes_and_keypoints_around_the_anchor():
    from emolens.faces.blazeface import decode, ssd_anchors

    anchors = ssd_anchors()
    scores = np.full((1, 896, 1), -10.0, np.float32)
    regressors = np.zeros((1, 896, 16), np.float32)
    i = 600                                             # an 8 x 8 grid anchor
    scores[0, i] = 3.0
    regressors[0, i, :4] = [4, -2, 40, 30]               # centre offset (4, -2) px, size 40 x 30
    regressors[0, i, 4:6] = [-10, -8]                    # first keypoint
    boxes, conf, kps = decode(scores, regressors, anchors)
    cx, cy = anchors[i] * 128 + [4, -2]
    assert boxes.shape == (1, 4) and np.allclose(boxes[0], [cx - 20, cy - 15, 40, 30])
    assert conf[0] == pytest.approx(1 / (1 + math.exp(-3)))
    assert kps.shape == (1, 6, 2) and np.allclose(kps[0, 0], anchors[i] * 128 + [-10, -8])
    assert np.allclose(kps[0, 1], anchors[i] * 128)


def test_blazeface_weighted_nms_blends_overlaps_and_drops_parts_of_faces():
    from emolens.faces.blazeface import weighted_nms

    boxes = np.array([[10, 10, 100, 100], [14, 10, 100, 100],  # one face, two boxes
                      [40, 40, 30, 30],                         # inside it: an eye, not a face
                      [300, 300, 80, 80]], float)               # another face
    scores = np.array([0.9, 0.6, 0.55, 0.8])
    kps = np.repeat(boxes[:, None, :2], 6, axis=1)
    out, conf, out_kps = weighted_nms(boxes, scores, kps)
    assert len(out) == 2 and np.allclose(conf, [0.9, 0.8])
    assert out[0][0] == pytest.approx((10 * 0.9 + 14 * 0.6) / 1.5)  # score-weighted mean
    assert np.allclose(out[1], [300, 300, 80, 80]) and out_kps.shape == (2, 6, 2)
    empty = weighted_nms(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 6, 2)))
    assert [len(e) for e in empty] == [0, 0, 0]


def test_blazeface_boxes_follow_the_face_through_the_letterbox(photo):
    grey = cv2.imread(str(photo), cv2.IMREAD_GRAYSCALE)
    det = get_detector("blazeface")
    wide = np.full((350, 500), 90, np.uint8)             # bars above and below in the model's input
    wide[:, 150:] = grey
    tall = np.full((500, 350), 90, np.uint8)             # bars left and right, same scale
    tall[150:, :] = grey
    wx, wy, ww, wh = det(wide)[0].box
    tx, ty, tw, th = det(tall)[0].box
    assert abs((wx - 150) - tx) <= 0.05 * tw and abs(wy - (ty - 150)) <= 0.05 * th
    assert abs(ww - tw) <= 0.05 * tw and abs(wh - th) <= 0.05 * th


def test_blazeface_finds_tight_crops_and_small_pictures(photo):
    grey = cv2.imread(str(photo), cv2.IMREAD_GRAYSCALE)
    x, y, w, h = get_detector("dlib")(grey)[0].box
    tight = np.ascontiguousarray(grey[y:y + h, x:x + w])  # the face fills the picture
    det = get_detector("blazeface")
    assert det(tight)
    tiny = cv2.resize(tight, (40, 40), interpolation=cv2.INTER_AREA)
    assert det(tiny)


def test_blazeface_box_gives_the_landmarks_dlibs_box_gives(photo):
    grey = cv2.imread(str(photo), cv2.IMREAD_GRAYSCALE)
    predictor = LandmarkPredictor()
    reference = predictor(grey, get_detector("dlib")(grey)[0].box)
    inter_ocular = np.linalg.norm(np.subtract(*eye_centres(reference)))

    def error(box):
        return np.linalg.norm(predictor(grey, box) - reference, axis=1).mean() / inter_ocular

    calibrated = get_detector("blazeface")(grey)[0].box
    raw = get_detector("blazeface", box="raw")(grey)[0].box
    assert error(calibrated) < 0.03
    assert error(calibrated) <= error(raw)


def test_box_past_the_edge_is_clipped_for_the_user_but_whole_for_the_landmarks(photo, tiny_model):
    """A tight crop: the detector's box reaches past the picture. ``box`` is clipped,
    ``full_box`` is not, and landmarks fitted on ``full_box`` match the fit on the
    uncropped photo better than a fit squeezed into the clipped box."""
    grey = cv2.imread(str(photo), cv2.IMREAD_GRAYSCALE)
    predictor = LandmarkPredictor()
    det = get_detector("blazeface")
    reference = predictor(grey, det(grey)[0].full_box)
    inter_ocular = np.linalg.norm(np.subtract(*eye_centres(reference)))
    x, y, w, h = get_detector("dlib")(grey)[0].box
    x0, y0 = x + w // 10, y + h // 10
    tight = np.ascontiguousarray(grey[y0:y + h, x0:x + w])
    found = det(tight)[0]
    fx, fy, fw, fh = found.full_box
    assert min(fx, fy) < 0 and found.box[0] >= 0 and found.box[1] >= 0
    bx, by, bw, bh = found.box
    assert bx + bw <= tight.shape[1] and by + bh <= tight.shape[0]

    def error(box):
        return np.linalg.norm(predictor(tight, box) + [x0, y0] - reference, axis=1).mean() / inter_ocular

    assert error(found.full_box) < error(found.box)
    from emolens import Recognizer

    located = Recognizer(detector=det, model=tiny_model).locate(tight)[0]
    assert located.box == found.box
    assert np.allclose(located.landmarks, predictor(tight, found.full_box))


def test_blazeface_rejects_unknown_box_convention():
    with pytest.raises(ValueError, match="dlib"):
        get_detector("blazeface", box="square")


def test_blazeface_any_size_anchors_and_grid_padding():
    """The shipped graph takes any size: anchors on the 8 and 16 px grids of that size, in the
    model's output order (the 128 px anchors are the same grid in 0..1); pictures are padded
    right and below to a multiple of 16."""
    from emolens.faces.blazeface import grid_anchors, resized_to_grid, ssd_anchors

    a = grid_anchors(336, 448)
    assert a.shape == (2 * 42 * 56 + 6 * 21 * 28, 2)
    assert np.allclose(a[:3], [[4, 4], [4, 4], [12, 4]]) and np.allclose(a[2 * 42 * 56], [8, 8])
    assert np.allclose(a[-1], [448 - 8, 336 - 8])
    assert np.allclose(grid_anchors(128, 128) / 128, ssd_anchors())
    grey = np.full((480, 641), 200, np.uint8)
    small = resized_to_grid(grey, 0.7)
    assert small.shape == (336, 464) and small[:, 449:].max() == 0 and small[:, :448].min() == 200


@pytest.mark.parametrize("face_side", [70, 110])
def test_blazeface_finds_a_small_face_in_a_webcam_frame(photo, face_side):
    grey = cv2.imread(str(photo), cv2.IMREAD_GRAYSCALE)
    frame = np.full((480, 640), 110, np.uint8)
    frame[300:300 + face_side, 420:420 + face_side] = cv2.resize(grey, (face_side, face_side),
                                                                  interpolation=cv2.INTER_AREA)
    assert get_detector("blazeface", small_faces=False)(frame) == []  # too small for one 128 px pass
    found = get_detector("blazeface")(frame)
    assert len(found) == 1
    x, y, w, h = found[0].box
    assert 420 <= x + w / 2 <= 420 + face_side and 300 <= y + h / 2 <= 300 + face_side


@pytest.mark.parametrize("size", [(640, 480), (1280, 720)])
def test_blazeface_finds_no_face_on_empty_scenes(size):
    """Smooth blurred texture (clips.background, an empty room) drew near-whole-picture boxes
    scoring 0.5-0.7; the second look and the small-face pass's re-look drop them."""
    from emolens.testing.clips import background

    det = get_detector("blazeface")
    for seed in range(5):
        grey = cv2.cvtColor(background(size, seed), cv2.COLOR_BGR2GRAY)
        assert det(grey, retry=False) == [], f"seed {seed}"
        assert det(grey) == [], f"seed {seed} with the padded retry"


def test_blazeface_finds_one_face_in_a_720p_frame_without_texture_boxes(photo):
    """A 300 px face in a 1280x720 frame is found by the small-face pass, alone (no box on the background)."""
    from emolens.testing.clips import Actor, background, render

    frame = render(background((1280, 720), 0), [Actor(photo, [(0, 500, 380, 300), (1, 500, 380, 300)])], 0.5)
    found = get_detector("blazeface")(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), retry=False)
    assert len(found) == 1
    x, y, w, h = found[0].box
    assert 350 < x + w / 2 < 650 and 230 < y + h / 2 < 530


def test_blazeface_second_look_keeps_large_real_faces(photo):
    """The second look applies to large, unsure boxes; a portrait filling the picture stays found."""
    from emolens.faces.blazeface import BlazeFaceDetector

    grey = cv2.imread(str(photo), cv2.IMREAD_GRAYSCALE)
    with_look, without = BlazeFaceDetector(), BlazeFaceDetector(second_look=False)
    assert len(with_look(grey)) == len(without(grey)) == 1
    assert with_look(grey)[0].box == without(grey)[0].box
