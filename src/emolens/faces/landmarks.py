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
import sys
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

# Below this box side (pixels) no landmarks are tried: the box crop is used. Above it every
# fit is still checked (``emolens.people.pose.landmark_fit``). Measured on photos-dev faces
# scaled to 20-48 px (benchmarks/small_face_landmarks.py, BENCHMARKS.md "Landmarks on small
# faces"): aligned crops classify as well as box crops from 20 px up, and only faces with
# landmarks get a head pose, so a floor of 40 px (the first guess) called every face of
# 20-36 px "not frontal" and left it out of video summaries.
MIN_LANDMARK_FACE = 20


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
    """``predictor(grey, box) -> (68, 2) float32`` landmark coordinates in image pixels.

    huge_pages: on Linux, ask for the predictor's memory to be backed by 2 MB pages (see
    ``advise_huge_pages``); False leaves the memory as the allocator made it.
    """

    def __init__(self, path: str | Path | None = None, huge_pages: bool = True):
        import dlib

        self.path = Path(path) if path is not None else model_file(SHAPE_PREDICTOR_68)
        before = _anonymous_regions() if huge_pages else None
        try:
            self._predictor = dlib.shape_predictor(str(self.path))
        except RuntimeError as exc:
            raise LandmarkModelError(f"{self.path}: not a dlib shape predictor ({exc})") from None
        self.huge_page_bytes = advise_huge_pages(before) if huge_pages else 0
        self._rectangle = dlib.rectangle

    def __call__(self, grey: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        x, y, w, h = (int(v) for v in box)
        shape = self._predictor(grey, self._rectangle(x, y, x + w - 1, y + h - 1))
        return parts_array(shape)


def parts_array(shape) -> np.ndarray:
    """A dlib ``full_object_detection``'s points as ``(N, 2)`` float32.

    Parsed from the points' text, ``points[(x, y), ...]``: one call into dlib instead of two
    per point (a third of the time for 68 points). Falls back to the per-point attributes
    if the text is not in that form.
    """
    parts = shape.parts()
    text = str(parts)
    if text.startswith("points[") and text.endswith("]"):
        values = np.fromstring(text[7:-1].replace("(", "").replace(")", ""), dtype=np.float32, sep=",")
        if values.size == 2 * len(parts):
            return values.reshape(-1, 2)
    return np.array([(p.x, p.y) for p in parts], dtype=np.float32).reshape(-1, 2)


# ---------------------------------------------------------------------------------------
# memory: dlib's 68-point model is 15 cascades x 500 trees, ~65 MB of leaves and nodes
# spread over the heap. Each face walks ~7500 trees, and with 4 KB pages nearly every node
# and leaf it reads is a TLB miss as well as a cache miss; on 2 MB pages the whole model
# is ~35 TLB entries. Measured on the project machine: the predictor call takes ~20%
# less time (BENCHMARKS.md, frame timing).

_MADV_HUGEPAGE = 14
_MADV_COLLAPSE = 25  # Linux 6.1+: collapse now rather than whenever khugepaged gets to it
_HUGE = 2 << 20


def _anonymous_regions() -> dict[int, tuple[int, bool]] | None:
    """Writable anonymous mappings of this process: start -> (end, is the heap). None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    regions = {}
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split()
                if len(fields) < 5 or not fields[1].startswith("rw"):
                    continue
                if len(fields) > 5 and fields[5] != "[heap]":
                    continue  # files, stacks, vdso
                lo, hi = (int(v, 16) for v in fields[0].split("-"))
                regions[lo] = (hi, len(fields) > 5)
    except OSError:
        return None
    return regions


def advise_huge_pages(before: dict | None) -> int:
    """Ask Linux for 2 MB pages on the memory a load just filled; ``before``: ``_anonymous_regions()`` first.

    The load's small allocations land on the heap (the main thread's; all of it is
    advised, as freed memory may have been reused) or in mappings that are new or grew
    since ``before`` (another thread's allocator arena). Best effort:
    ``madvise(MADV_HUGEPAGE)``, then ``MADV_COLLAPSE`` where the kernel has it (Linux 6.1+)
    so it happens now rather than whenever khugepaged gets there; nothing happens off
    Linux, with transparent huge pages disabled, or on any error. Returns the bytes advised.
    """
    after = _anonymous_regions()
    if before is None or after is None:
        return 0
    try:
        import ctypes

        madvise = ctypes.CDLL(None, use_errno=True).madvise
        madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        madvise.restype = ctypes.c_int
    except (OSError, AttributeError):
        return 0
    advised = 0
    for lo, (hi, heap) in after.items():
        old_end = before.get(lo, (None, False))[0]
        start = lo if heap or old_end is None else old_end  # elsewhere, only what is new
        start = (start + _HUGE - 1) // _HUGE * _HUGE
        end = hi // _HUGE * _HUGE
        if end - start < 4 * _HUGE:
            continue
        if madvise(start, end - start, _MADV_HUGEPAGE) == 0:
            madvise(start, end - start, _MADV_COLLAPSE)  # fails harmlessly on kernels without it
            advised += end - start
    return advised


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the image-left and image-right eyes (means of their 6 points)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    return lm[LEFT_EYE].mean(axis=0), lm[RIGHT_EYE].mean(axis=0)
