"""Face crops for the model: landmark alignment (Xu et al.) or a plain box crop.

``CropSpec`` names the framing and its parameters; ``crop_face`` cuts one face out of
a grey image as a ``size x size`` uint8 crop, in one affine warp (no full-image
rotation), anti-aliased when it shrinks.

``aligned`` (Xu et al., "Emotion Recognition Using CNNs"): rotate about the eye
midpoint so the eye centres are level; in that levelled frame, crop left and right at
jaw landmarks 1 and 17 (1-based), bottom at the chin (landmark 9), top at
``top`` x (chin - eye level) above the eye level. ``top=0.5`` puts the eyes one third
of the way down the crop, close to FER2013's framing (eyes at ~0.37 of the height).

``box``: the detector's box, grown by ``margin`` on each side, shifted down by
``shift`` of its height, made square. Its framing depends on the detector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from emolens.faces.landmarks import CHIN, JAW_LEFT, JAW_RIGHT, eye_centres

CROP_MODES = ("aligned", "box")


@dataclass(frozen=True)
class CropSpec:
    """How a face is framed for the model."""

    mode: str = "aligned"   # "aligned" (landmarks) or "box" (detector box)
    top: float = 0.5        # aligned: crop top = eye level - top * (chin - eye level)
    margin: float = 0.0     # grow the crop by this fraction of its width/height on every side
    shift: float = 0.0      # move the crop down by this fraction of its height (negative: up)
    square: bool = True     # grow the shorter side to the longer one, about the centre

    def __post_init__(self):
        if self.mode not in CROP_MODES:
            raise ValueError(f"unknown crop mode {self.mode!r}; choose one of: {', '.join(CROP_MODES)}")


# Named framings; the CLI and benchmarks refer to these names.
CROPS: dict[str, CropSpec] = {
    "aligned": CropSpec("aligned"),
    "box": CropSpec("box", margin=0.0),
    "box-wide": CropSpec("box", margin=0.1),
}
DEFAULT_CROP = "aligned"


def get_crop(crop: str | CropSpec, **overrides) -> CropSpec:
    """A ``CropSpec`` from a name in ``CROPS`` (or a spec), with parameters overridden."""
    if isinstance(crop, CropSpec):
        spec = crop
    else:
        try:
            spec = CROPS[crop]
        except KeyError:
            raise ValueError(f"unknown crop {crop!r}; choose one of: {', '.join(CROPS)}") from None
    return replace(spec, **overrides) if overrides else spec


def level_angle(landmarks: np.ndarray) -> float:
    """Angle (radians) of the line from the image-left eye centre to the image-right one."""
    left, right = eye_centres(landmarks)
    return math.atan2(right[1] - left[1], right[0] - left[0])


def levelling_matrix(landmarks: np.ndarray) -> np.ndarray:
    """2x3 rotation about the eye midpoint that makes the eye centres level."""
    left, right = eye_centres(landmarks)
    centre = (left + right) / 2
    return cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), math.degrees(level_angle(landmarks)), 1.0)


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def _frame(x0: float, y0: float, x1: float, y1: float, spec: CropSpec) -> tuple[float, float, float, float]:
    """Apply margin, shift and squareness to a rectangle; returns (x0, y0, width, height)."""
    w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    x0, y0 = x0 - spec.margin * w, y0 - spec.margin * h + spec.shift * h
    w, h = w * (1 + 2 * spec.margin), h * (1 + 2 * spec.margin)
    if spec.square:
        side = max(w, h)
        x0, y0 = x0 - (side - w) / 2, y0 - (side - h) / 2
        w = h = side
    return x0, y0, w, h


def crop_matrix(spec: CropSpec, size: int, box=None, landmarks=None) -> np.ndarray:
    """2x3 affine map from image pixels to ``size x size`` crop pixels for one face.

    Plain float arithmetic on the few points the framing uses (eye centres, jaw sides,
    chin), not array operations on all 68: the same matrix to rounding, in a fraction of
    the time (this runs once per face per frame).
    """
    if spec.mode == "aligned":
        if landmarks is None:
            raise ValueError("the aligned crop needs 68 landmarks")
        pts = np.asarray(landmarks, dtype=np.float64)
        if pts.shape != (68, 2):
            raise ValueError(f"the aligned crop needs 68 landmarks, got an array of shape {pts.shape}")
        eyes = pts[36:48].tolist()
        lx, ly = (sum(p[0] for p in eyes[:6]) / 6, sum(p[1] for p in eyes[:6]) / 6)
        rx, ry = (sum(p[0] for p in eyes[6:]) / 6, sum(p[1] for p in eyes[6:]) / 6)
        angle = math.degrees(math.atan2(ry - ly, rx - lx))
        rotation = cv2.getRotationMatrix2D(((lx + rx) / 2, (ly + ry) / 2), angle, 1.0)
        (a, b, c), (d, e, f) = rotation.tolist()
        eye_y = sum(x * d + y * e + f for x, y in eyes) / 12
        (jx0, jy0), (cx, cy), (jx1, jy1) = pts[[JAW_LEFT, CHIN, JAW_RIGHT]].tolist()
        chin_y = cx * d + cy * e + f
        left, right = jx0 * a + jy0 * b + c, jx1 * a + jy1 * b + c
        top = eye_y - spec.top * (chin_y - eye_y)
        x0, y0, w, h = _frame(min(left, right), top, max(left, right), chin_y, spec)
    else:
        if box is None:
            raise ValueError("the box crop needs a face box")
        bx, by, bw, bh = (float(v) for v in box)
        a, b, c, d, e, f = 1.0, 0.0, 0.0, 0.0, 1.0, 0.0
        x0, y0, w, h = _frame(bx, by, bx + bw, by + bh, spec)
    sx, sy = size / w, size / h
    return np.array([[sx * a, sx * b, sx * c - x0 * sx], [sy * d, sy * e, sy * f - y0 * sy]])


def warp_crop(grey: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Warp with ``matrix`` to ``size x size``; when shrinking, warp larger then area-resize (no aliasing)."""
    (m00, m01, _), (m10, m11, _) = matrix.tolist()
    shrink = math.sqrt(abs(m00 * m11 - m01 * m10))
    factor = int(min(4, max(1, math.floor(1 / shrink)))) if shrink > 0 else 1
    big = size * factor
    m = matrix * np.array([[factor], [factor]])
    out = cv2.warpAffine(grey, m, (big, big), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if factor > 1:
        out = cv2.resize(out, (size, size), interpolation=cv2.INTER_AREA)
    return out


def crop_face(grey: np.ndarray, spec: CropSpec, size: int, box=None, landmarks=None) -> np.ndarray:
    """One face as a ``size x size`` uint8 grey crop framed by ``spec``."""
    return warp_crop(grey, crop_matrix(spec, size, box=box, landmarks=landmarks), size)


def align_face(grey: np.ndarray, landmarks: np.ndarray, size: int = 48, top: float = 0.5,
               margin: float = 0.0, square: bool = True) -> np.ndarray:
    """Xu et al. alignment: eyes levelled, cropped at jaw sides, chin and above the eyes."""
    return crop_face(grey, CropSpec("aligned", top=top, margin=margin, square=square), size, landmarks=landmarks)


def crop_box(grey: np.ndarray, box: tuple[int, int, int, int], size: int = 48, margin: float = 0.0,
             shift: float = 0.0, square: bool = True) -> np.ndarray:
    """A plain (unrotated) crop of the detector box, grown by ``margin``."""
    return crop_face(grey, CropSpec("box", margin=margin, shift=shift, square=square), size, box=box)
