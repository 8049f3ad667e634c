"""68 facial landmarks (iBUG 300-W layout) with dlib's shape predictor.

The predictor file ships in the PyPI package ``face_recognition_models``. Its
``__init__`` imports ``pkg_resources`` (gone from recent setuptools), so the file is
located through the import system's metadata without running that module.

Points are 0-based here: jaw 0-16 (0 = right side of the picture's subject, i.e. the
left of the image), eyebrows 17-26, nose 27-35, eyes 36-41 (image left) and 42-47
(image right), mouth 48-67; the chin tip is 8.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

import numpy as np

MODELS_PACKAGE = "face_recognition_models"
SHAPE_PREDICTOR_68 = "shape_predictor_68_face_landmarks.dat"

JAW = slice(0, 17)
LEFT_EYE = slice(36, 42)    # the eye on the image's left
RIGHT_EYE = slice(42, 48)   # the eye on the image's right
CHIN = 8
JAW_LEFT = 0
JAW_RIGHT = 16

# Below this box side (pixels), the shape predictor is unreliable: use the box crop.
MIN_LANDMARK_FACE = 40


class LandmarkModelError(RuntimeError):
    pass


def model_file(name: str) -> Path:
    """Path of a model file shipped by ``face_recognition_models``, without importing it."""
    candidates: list[Path] = []
    spec = importlib.util.find_spec(MODELS_PACKAGE)  # finds, does not execute, the package
    if spec is not None:
        for location in spec.submodule_search_locations or []:
            candidates.append(Path(location) / "models" / name)
    try:
        for f in importlib.metadata.files(MODELS_PACKAGE) or []:
            if f.name == name:
                candidates.append(Path(f.locate()))
    except importlib.metadata.PackageNotFoundError:
        pass
    for path in candidates:
        if path.is_file():
            return path
    raise LandmarkModelError(
        f"{name} not found: install the landmark models with `pip install face-recognition-models`")


class LandmarkPredictor:
    """``predictor(grey, box) -> (68, 2) float32`` landmark coordinates in image pixels."""

    def __init__(self, path: str | Path | None = None):
        import dlib

        self.path = Path(path) if path is not None else model_file(SHAPE_PREDICTOR_68)
        try:
            self._predictor = dlib.shape_predictor(str(self.path))
        except RuntimeError as exc:
            raise LandmarkModelError(f"{self.path}: not a dlib shape predictor ({exc})") from None
        self._rectangle = dlib.rectangle

    def __call__(self, grey: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        x, y, w, h = (int(v) for v in box)
        shape = self._predictor(grey, self._rectangle(x, y, x + w - 1, y + h - 1))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the image-left and image-right eyes (means of their 6 points)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    return lm[LEFT_EYE].mean(axis=0), lm[RIGHT_EYE].mean(axis=0)
