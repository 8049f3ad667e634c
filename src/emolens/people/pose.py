"""Head pose from the 68 landmarks, and whether the landmarks fit a face at all.

``head_pose(landmarks, image_size)`` fits a generic 3-D face (six anthropometric points:
nose tip, chin, outer eye corners, mouth corners; the model of the OpenCV head-pose
tutorials) to the corresponding landmarks with ``cv2.solvePnP`` and a pinhole camera whose
focal length is the picture's width, and returns ``HeadPose(yaw, pitch, roll)`` in degrees:
yaw > 0 when the face turns towards the picture's right, pitch > 0 when it looks up,
roll > 0 when the head tilts clockwise in the picture. Measured in-plane roll comes from
the eye line, which is more precise than the fitted roll.

``landmark_fit(landmarks, box)`` says whether a 68-point fit can be believed: dlib's
predictor always returns a frontal-looking template, even on a profile or a blur, and
such a template sits oddly in the detector's box (too small, shifted out of it, or
squashed). Faces whose fit fails fall back to the box crop (``aligned: false``), and
their box is the detector's, not one grown from the landmarks.

``is_frontal(pose)``: |yaw| <= ``FRONTAL_YAW`` (30 degrees), the limit measured in
BENCHMARKS.md "Pose" (``benchmarks/pose_accuracy.py``): on FER2013 PublicTest accuracy is
74.5% at |yaw| < 10, 68.7% at 10-20, 65.6% at 20-30 and 58.1% at 30-40 degrees; on
photos-dev 66-74% up to 30 and 25% (8 photos) at 30-40. Pitch is reported but not used:
the estimate moves with the mouth (the chin is one of the six points), and accuracy
*rises* with estimated |pitch| because open-mouthed faces (surprise, laughter) read as
pitched. Summaries count only frontal faces by default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

FRONTAL_YAW = 30.0      # degrees; see BENCHMARKS.md "Pose"

# A generic head, millimetres, x to the subject's left in the picture (viewer's right),
# y up, z towards the camera; origin at the nose tip.
MODEL_POINTS = np.array([
    (0.0, 0.0, 0.0),          # nose tip            (landmark 31, 1-based)
    (0.0, -63.6, -12.5),      # chin                (9)
    (-43.3, 32.7, -26.0),     # outer corner of the eye on the picture's left (37)
    (43.3, 32.7, -26.0),      # outer corner of the eye on the picture's right (46)
    (-28.9, -28.9, -24.1),    # mouth corner on the picture's left (49)
    (28.9, -28.9, -24.1),     # mouth corner on the picture's right (55)
], dtype=np.float64)
LANDMARK_INDEX = [30, 8, 36, 45, 48, 54]   # 0-based indices of the points above


@dataclass(frozen=True)
class HeadPose:
    """Head orientation in degrees (see the module docstring for the signs) and the fit's error.

    ``error``: root-mean-square reprojection error of the six model points, as a fraction of
    the distance between the outer eye corners (0.05 = 5%).
    """

    yaw: float
    pitch: float
    roll: float
    error: float = 0.0

    def to_dict(self) -> dict:
        return {"yaw": round(self.yaw, 1), "pitch": round(self.pitch, 1), "roll": round(self.roll, 1)}


def head_pose(landmarks: np.ndarray, image_size: tuple[int, int]) -> HeadPose | None:
    """Yaw, pitch and roll of a face from its 68 landmarks; ``image_size`` is (width, height). None if unsolvable."""
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape != (68, 2) or not np.isfinite(pts).all():
        return None
    image_points = pts[LANDMARK_INDEX]
    w, h = float(image_size[0]), float(image_size[1])
    focal = max(w, h)
    camera = np.array([[focal, 0, w / 2], [0, focal, h / 2], [0, 0, 1]], dtype=np.float64)
    # Image y points down; the model's y points up: flip the model so both agree.
    model = MODEL_POINTS * np.array([1.0, -1.0, -1.0])
    ok, rvec, tvec = cv2.solvePnP(model, image_points, camera, None, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return None
    rot, _ = cv2.Rodrigues(rvec)
    # Angles of the head relative to the camera (rotation applied to the model).
    sy = math.hypot(rot[0, 0], rot[1, 0])
    pitch = math.degrees(math.atan2(rot[2, 1], rot[2, 2]))
    yaw = math.degrees(math.atan2(-rot[2, 0], sy))
    projected, _ = cv2.projectPoints(model, rvec, tvec, camera, None)
    eye_span = float(np.linalg.norm(image_points[3] - image_points[2]))
    error = float(np.sqrt(((projected.reshape(-1, 2) - image_points) ** 2).sum(1).mean())) / max(eye_span, 1e-6)
    # Pitch from atan2 lives near +-180 for an upright face with this model flip: bring it to 0.
    pitch = (pitch + 180.0) % 360.0 - 180.0
    pitch = pitch - 180.0 if pitch > 90 else pitch + 180.0 if pitch < -90 else pitch
    left_eye = pts[36:42].mean(0)
    right_eye = pts[42:48].mean(0)
    roll = math.degrees(math.atan2(right_eye[1] - left_eye[1], right_eye[0] - left_eye[0]))
    return HeadPose(yaw=float(-yaw), pitch=float(-pitch), roll=float(roll), error=error)


def is_frontal(pose: HeadPose | None, max_yaw: float = FRONTAL_YAW, max_pitch: float | None = None) -> bool:
    """A face seen near enough from the front for the model's answer to be trusted (False when unknown).

    max_pitch: also limit |pitch| (off by default: see the module docstring)."""
    if pose is None or abs(pose.yaw) > max_yaw:
        return False
    return max_pitch is None or abs(pose.pitch) <= max_pitch


def landmark_fit(landmarks: np.ndarray | None, box: tuple[int, int, int, int], pose: HeadPose | None = None,
                 max_error: float = 0.25) -> bool:
    """Whether 68 landmarks plausibly describe the face in the detector's ``box`` (x, y, w, h).

    Fails when the landmarks' extent covers too little or too much of the box, when their
    centre lies outside the box's middle, when the face is squashed (eye span tiny for
    its height: a profile), or when the 3-D fit's reprojection error is large.
    """
    if landmarks is None:
        return False
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape != (68, 2) or not np.isfinite(pts).all():
        return False
    x, y, w, h = (float(v) for v in box)
    if w <= 0 or h <= 0:
        return False
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
    lw, lh = max(x1 - x0, 1e-6), max(y1 - y0, 1e-6)
    area_ratio = (lw * lh) / (w * h)
    if not 0.2 <= area_ratio <= 3.0:
        return False
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if abs(cx - (x + w / 2)) > 0.4 * w or abs(cy - (y + h / 2)) > 0.4 * h:
        return False
    eye_span = float(np.linalg.norm(pts[45] - pts[36]))
    face_height = float(np.linalg.norm(pts[8] - pts[27]))
    if face_height <= 0 or eye_span / face_height < 0.35:
        return False
    if pose is not None and pose.error > max_error:
        return False
    return True
