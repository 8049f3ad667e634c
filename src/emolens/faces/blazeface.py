"""BlazeFace (MediaPipe's short-range face detector) run by ONNX Runtime.

The model is MediaPipe's ``face_detection_short_range.tflite`` (128 x 128 input,
896 anchors; Apache-2.0), converted once to ONNX, rewritten for ONNX Runtime's CPU
kernels (grey input, same outputs; ``tools/rewrite_blazeface.py``) and shipped inside emolens as
``models/blazeface_short_range.onnx`` (provenance and the commands in
``models/NOTICE.md``): nothing is downloaded at run time and no TensorFlow is needed.
ONNX Runtime runs it about 1.5x faster than ``cv2.dnn`` runs the ``.tflite``, with the
same outputs (max difference 1e-4). What the model leaves to its caller is here:

- letterbox: the picture is scaled to fit 128 x 128 with black bars (aspect kept);
- anchors: one centre per cell of a 16 x 16 grid (2 anchors each) and an 8 x 8 grid
  (6 anchors each), as MediaPipe's SSD anchor calculator makes them;
- decoding: regressors are pixel offsets from the anchor centre (box centre, size and
  6 keypoints: the two eyes, nose tip, mouth, two ear tragions); scores are logits;
- NMS: ``cv2.dnn.NMSBoxes`` picks the boxes, and each kept box is the score-weighted
  mean of the boxes it suppresses (MediaPipe's "weighted" NMS: steadier boxes on video).

False faces: on smooth, blurred texture (an empty room, a wall) the model reports a box
nearly as large as its input with a middling score (0.5-0.7), exactly as it scores a
portrait filling the picture. These checks keep them out:

- second look: a box scoring under ``LOOK_SCORE`` is kept only if the model finds it
  again on a square crop ``LOOK_CROP`` times its size around it (a real face then has
  background around it; texture is no face at any framing). On photos-dev this keeps
  186 of the 187 top boxes it applies to and removes every false box on the empty
  synthetic scenes. It applied to boxes over 0.6 of the picture's side until boxes of a
  quarter of it, drawn around two or three small faces of a crowd, were found (issue 26);
- re-look: a box of the small-face pass (below) scoring under ``SURE_SCORE`` is looked for
  again on crops ``RELOOK_CROPS`` times its size around it, where a small face is large
  enough for the model to be sure, and kept when the mean of its score and the lower
  re-look score reaches ``RELOOK_MEAN`` (a dog's face scored 0.68, then 0.60 and 0.00).

Small faces: one pass letterboxed into 128 x 128 finds faces of about a fifth of the
picture's longer side and up (the model needs a face of ~28 of its 128 px). The shipped
graph takes any input size (``tools/rewrite_blazeface.py``), so the small-face pass runs
it once more over the whole picture resized to ``SMALL_SIDE`` px (or ``SMALL_SCALE`` of it,
if larger), padded to a multiple of 16: faces down to ~40 px of the detection copy
(640 px long by default). One 448 x 336 pass costs about a third of the overlapping
128 px tiles it replaces. Photos get it always; video frames (``retry=False``) only when
the first pass finds no face scoring ``SURE_SCORE`` or more, so a frame with a clear face
costs one 128 px pass (the frame budget). Measured in
``benchmarks/detector_recall.py`` (BENCHMARKS.md, "Detector recall").

dlib's 68-point shape predictor was trained on dlib HOG boxes, which sit lower and are
tighter than BlazeFace's. ``box="dlib"`` (the default) re-centres the box on the point
45% of the way from the eyes' midpoint to the mouth and scales its side by 0.90; on
photos-dev that brings the landmarks closer to those found from dlib's own box (see
``benchmarks/box_calibration.py``).
"""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

from emolens.faces.detect import FaceDetector

MODEL_FILE = Path(__file__).with_name("models") / "blazeface_short_range.onnx"
INPUT_SIZE = 128
STRIDES = (8, 16, 16, 16)  # MediaPipe face_detection_short_range_common.pbtxt
KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth", "right_tragion", "left_tragion")  # subject's sides

# Raw BlazeFace box -> the box dlib's HOG detector would draw (fitted on photos-dev).
DLIB_BOX_SCALE = 0.90   # side of the dlib box / side of the BlazeFace box
DLIB_BOX_CENTRE = 0.45  # box centre, as a fraction of the way from the eyes' midpoint to the mouth

# False-face checks (module docstring); measured with benchmarks/detectors.py and the empty-scene test.
LOOK_SCORE = 0.8   # boxes scoring under this get a second look
LOOK_CROP = 1.6    # side of the second look's crop / side of the box
# The small-face pass (module docstring); measured with benchmarks/detector_recall.py.
SMALL_SIDE = 448   # longer side of the picture the small-face pass runs on ...
SMALL_SCALE = 0.7  # ... or this fraction of the picture's, if larger (never enlarged)
SURE_SCORE = 0.7   # small-face boxes scoring under this get a re-look ...
RELOOK_CROPS = (2.0, 3.0)  # ... on crops this many times their side ...
RELOOK_MEAN = 0.65  # ... and are kept when the mean of their score and the lower re-look score reaches this


def ssd_anchors(size: int = INPUT_SIZE, strides=STRIDES) -> np.ndarray:
    """(N, 2) anchor centres in 0..1, in the model's output order (2 per cell per layer, layers of one stride merged)."""
    return grid_anchors(size, size, strides) / size


@functools.lru_cache(maxsize=8)
def grid_anchors(height: int, width: int, strides=STRIDES) -> np.ndarray:
    """(N, 2) anchor centres in pixels of a ``height x width`` input (multiples of 16), in the model's output order."""
    out = []
    for stride in dict.fromkeys(strides):  # unique strides, in order
        per_cell = 2 * strides.count(stride)
        xs = (np.arange(width // stride, dtype=np.float32) + 0.5) * stride
        ys = (np.arange(height // stride, dtype=np.float32) + 0.5) * stride
        xy = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)  # row-major: y outer, x inner
        out.append(np.repeat(xy, per_cell, axis=0))
    out = np.concatenate(out)
    out.flags.writeable = False  # shared by every call with this size
    return out


def letterbox(grey: np.ndarray, size: int = INPUT_SIZE) -> tuple[np.ndarray, float, int, int]:
    """The picture fitted into ``size x size`` (black bars); returns it, the scale and the left/top bar widths."""
    h, w = grey.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    small = cv2.resize(grey, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    left, top = (size - nw) // 2, (size - nh) // 2
    boxed = cv2.copyMakeBorder(small, top, size - nh - top, left, size - nw - left, cv2.BORDER_CONSTANT, value=0)
    return boxed, scale, left, top


def decode(scores: np.ndarray, regressors: np.ndarray, anchors: np.ndarray, size: int = INPUT_SIZE,
           min_score: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw outputs -> ``boxes (K, 4)`` as x, y, w, h, ``scores (K,)`` and ``keypoints (K, 6, 2)`` in model pixels."""
    logits = np.clip(scores.reshape(-1), -80.0, 80.0)
    keep = logits > np.log(min_score / (1.0 - min_score))
    reg = regressors.reshape(len(anchors), -1)[keep]
    centres = anchors[keep] * size
    conf = 1.0 / (1.0 + np.exp(-logits[keep]))
    wh = reg[:, 2:4]
    boxes = np.concatenate([centres + reg[:, 0:2] - wh / 2, wh], axis=1)
    keypoints = reg[:, 4:].reshape(len(reg), (reg.shape[1] - 4) // 2, 2) + centres[:, None, :]
    return boxes, conf, keypoints


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray, min_score: float = 0.5,
                 iou: float = 0.3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``cv2.dnn.NMSBoxes`` keepers, each replaced by the score-weighted mean of the boxes overlapping it.

    A keeper lying mostly (over half its area) inside a higher-scoring one is dropped.
    """
    if len(boxes) == 0:
        return boxes, scores, keypoints
    kept = np.asarray(cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), min_score, iou), dtype=int).reshape(-1)
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
    area = boxes[:, 2] * boxes[:, 3]
    out_boxes, out_kps, out_scores, taken = [], [], [], []
    for i in kept:  # highest score first
        inter = (np.clip(np.minimum(x1, x1[i]) - np.maximum(x0, x0[i]), 0, None)
                 * np.clip(np.minimum(y1, y1[i]) - np.maximum(y0, y0[i]), 0, None))
        if any(inter[j] > 0.5 * area[i] for j in taken):
            continue  # mostly inside a surer face: a part of it (an eye, the mouth), not another face
        taken.append(i)
        out_scores.append(scores[i])
        weights = scores * ((inter / (area + area[i] - inter + 1e-9)) > iou)
        weights[i] = scores[i]  # the keeper itself, even for a degenerate box
        weights = weights / weights.sum()
        out_boxes.append(weights @ boxes)
        out_kps.append(np.tensordot(weights, keypoints, axes=1))
    return (np.array(out_boxes).reshape(-1, 4), np.array(out_scores),
            np.array(out_kps).reshape(len(taken), *keypoints.shape[1:]))


def dlib_style_box(box: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """A BlazeFace box and its keypoints -> the square box dlib's landmark predictor expects."""
    eyes = (keypoints[0] + keypoints[1]) / 2
    centre = eyes + DLIB_BOX_CENTRE * (keypoints[3] - eyes)
    side = DLIB_BOX_SCALE * (box[2] + box[3]) / 2
    return np.array([centre[0] - side / 2, centre[1] - side / 2, side, side])


def resized_to_grid(grey: np.ndarray, scale: float, multiple: int = 16) -> np.ndarray:
    """The picture resized by ``scale``, with black bars right and below up to a multiple of ``multiple``."""
    h, w = grey.shape[:2]
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    small = cv2.resize(grey, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return cv2.copyMakeBorder(small, 0, -nh % multiple, 0, -nw % multiple, cv2.BORDER_CONSTANT, value=0)


class BlazeFaceDetector(FaceDetector):
    """MediaPipe BlazeFace short-range (128 px input) on ONNX Runtime.

    One pass finds faces over ~1/5 of the picture's longer side. When it finds nothing,
    the padded second chance (``FaceDetector``) catches faces that fill the picture. With
    ``small_faces`` on, one more pass over the picture at 448 px finds faces down to ~1/16
    of the side (40 px in a 640 px frame): on photos always, on video frames
    (``retry=False``) when the first pass is sure of no face (module docstring). It needs a graph
    that takes any input size, as the shipped one does; a fixed 128 x 128 graph runs the first
    pass only.

    box: "dlib" (boxes in dlib HOG's convention, for the landmark predictor) or "raw".
    min_score: confidence threshold (MediaPipe's default 0.5). iou: NMS overlap threshold.
    threads: ONNX Runtime threads (1: the net is tiny, more threads cost more than they give).
    second_look: check unsure boxes again on a crop around them (module docstring).
    """

    name = "blazeface"

    def __init__(self, box: str = "dlib", min_score: float = 0.5, iou: float = 0.3, small_faces: bool = True,
                 model: str | Path = MODEL_FILE, threads: int = 1, second_look: bool = True, **base):
        super().__init__(**base)
        if box not in ("dlib", "raw"):
            raise ValueError(f"box must be 'dlib' or 'raw', got {box!r}")
        import onnxruntime as ort

        path = Path(model)
        if not path.is_file():
            raise RuntimeError(f"{path}: BlazeFace model missing from the emolens install; reinstall emolens")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        channels = self.session.get_inputs()[0].shape[1]
        # 1: the shipped graph, rewritten for grey input (models/NOTICE.md); 3: a tflite2onnx original.
        self.channels = channels if isinstance(channels, int) else 3
        any_size = not isinstance(self.session.get_inputs()[0].shape[2], int)
        self.anchors = ssd_anchors()
        self.box = box
        self.min_score = float(min_score)
        self.iou = float(iou)
        self.second_look = bool(second_look)
        self.small_faces = _SmallFaceSearch(self, max_side=self.max_side) if small_faces and any_size else None

    def __call__(self, grey: np.ndarray, retry: bool | None = None):
        found = super().__call__(grey, retry=retry)  # the whole picture, then the padded second chance
        photo = self.retry if retry is None else retry
        if self.small_faces is None or (not photo and any(d.score >= SURE_SCORE for d in found)):
            return found  # a video frame with a face the first pass is sure of: one 128 px pass (frame budget)
        merged: list = []
        for d in sorted(found + self.small_faces(grey), key=lambda d: d.score, reverse=True):
            # Of two boxes on one face, or a box around a group of faces and one of them, the surer one.
            if not any(_same_face(d.box, k.box, self.iou) for k in merged):
                merged.append(d)
        return sorted(merged, key=lambda d: d.box[2] * d.box[3], reverse=True)

    def _detect(self, grey):
        boxes, scores, kps = self._run(grey)
        if self.second_look and len(boxes):
            keep = [i for i, (b, s) in enumerate(zip(boxes, scores)) if self._confirmed(grey, b, s)]
            boxes, scores, kps = boxes[keep], scores[keep], kps[keep]
        if self.box == "dlib":
            boxes = np.array([dlib_style_box(b, k) for b, k in zip(boxes, kps)]).reshape(-1, 4)
        return [(*map(float, b), float(s)) for b, s in zip(boxes, scores)]

    def _confirmed(self, grey: np.ndarray, box: np.ndarray, score: float) -> bool:
        """A raw box is a face: sure enough, or found again on a crop around it."""
        h, w = grey.shape
        if score >= LOOK_SCORE:
            return True
        side = int(round(LOOK_CROP * max(box[2], box[3])))
        if not 0 < side <= LOOK_CROP * 2 * max(h, w):   # a box far larger than the picture is no face
            return False
        x0 = int(round(box[0] + box[2] / 2 - side / 2))
        y0 = int(round(box[1] + box[3] / 2 - side / 2))
        # The crop, with the picture's edge replicated where it reaches outside: side x side pixels, no more.
        cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(w, x0 + side), min(h, y0 + side)
        if cx1 <= cx0 or cy1 <= cy0:
            return False
        crop = cv2.copyMakeBorder(grey[cy0:cy1, cx0:cx1], cy0 - y0, y0 + side - cy1, cx0 - x0, x0 + side - cx1,
                                  cv2.BORDER_REPLICATE)
        again, _, _ = self._run(np.ascontiguousarray(crop))
        ref = (box[0] - x0, box[1] - y0, box[2], box[3])
        return any(_iou(b, ref) > 0.5 for b in again)

    def _relooked(self, grey: np.ndarray, box: np.ndarray, score: float) -> bool:
        """A small-face box is a face: sure enough, or scoring well again on a crop around it (module docstring)."""
        if score >= SURE_SCORE:
            return True
        h, w = grey.shape
        for times in RELOOK_CROPS:  # every crop must find it again; the first miss ends the look
            side = int(round(times * max(box[2], box[3])))
            x0 = int(round(box[0] + box[2] / 2 - side / 2))
            y0 = int(round(box[1] + box[3] / 2 - side / 2))
            cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(w, x0 + side), min(h, y0 + side)
            if side <= 0 or cx1 <= cx0 or cy1 <= cy0:
                return False
            crop = cv2.copyMakeBorder(grey[cy0:cy1, cx0:cx1], cy0 - y0, y0 + side - cy1, cx0 - x0,
                                      x0 + side - cx1, cv2.BORDER_REPLICATE)
            again, scores, _ = self._run(np.ascontiguousarray(crop))
            ref = (box[0] - x0, box[1] - y0, box[2], box[3])
            best = max((s for b, s in zip(again, scores) if _iou(b, ref) > 0.3), default=0.0)
            if (score + best) / 2 < RELOOK_MEAN:
                return False
        return True

    def _run(self, grey: np.ndarray, scale: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw boxes (x, y, w, h), scores and keypoints (K, 6, 2) in ``grey``'s pixels.

        scale None: the picture letterboxed into the 128 x 128 input; a number: the picture
        resized by it, in one pass of that size (``resized_to_grid``; the any-size graph)."""
        if scale is None:
            boxed, scale, left, top = letterbox(grey)
            anchors, unit = self.anchors, INPUT_SIZE
        else:
            boxed, left, top = resized_to_grid(grey, scale), 0, 0
            anchors, unit = grid_anchors(*boxed.shape), 1
        x = (boxed.astype(np.float32) * (1 / 127.5) - 1.0)[None, None]  # -1..1
        if self.channels != 1:
            x = np.repeat(x, self.channels, axis=1)  # grey in all channels
        regressors, scores = self.session.run(["regressors", "classificators"], {self.input_name: x})
        boxes, conf, kps = weighted_nms(*decode(scores, regressors, anchors, size=unit, min_score=self.min_score),
                                        min_score=self.min_score, iou=self.iou)
        shift = np.array([left, top], dtype=np.float64)  # model pixels -> picture pixels
        boxes = np.concatenate([(boxes[:, :2] - shift) / scale, boxes[:, 2:] / scale], axis=1)
        return boxes, conf, (kps - shift) / scale


def _iou(a, b) -> float:
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    return float(iw * ih / (a[2] * a[3] + b[2] * b[3] - iw * ih))


def _same_face(a, b, iou: float) -> bool:
    """Two boxes of one face: they overlap by more than ``iou``, or one lies mostly inside the other."""
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return False
    return _iou(a, b) > iou or iw * ih > 0.5 * min(a[2] * a[3], b[2] * b[3])


class _SmallFaceSearch(FaceDetector):
    """BlazeFace once over the picture at ``SMALL_SIDE`` px (module docstring); unsure boxes re-looked."""

    name = "blazeface-small-faces"

    def __init__(self, blazeface: BlazeFaceDetector, **base):
        super().__init__(retry=False, **base)
        self.blazeface = blazeface

    def _detect(self, grey):
        longer = max(grey.shape)
        if longer <= INPUT_SIZE:  # the first pass already saw the picture at full size
            return []
        scale = min(1.0, max(SMALL_SCALE, SMALL_SIDE / longer))
        boxes, scores, kps = self.blazeface._run(grey, scale=scale)
        keep = [i for i, (b, s) in enumerate(zip(boxes, scores)) if self.blazeface._relooked(grey, b, s)]
        boxes, scores, kps = boxes[keep], scores[keep], kps[keep]
        if self.blazeface.box == "dlib":
            boxes = np.array([dlib_style_box(b, k) for b, k in zip(boxes, kps)]).reshape(-1, 4)
        return [(*map(float, b), float(s)) for b, s in zip(boxes, scores)]
