"""Video files and live cameras: frame sources, face tracking, temporal smoothing, outputs.

The pipeline per frame is the photo one (``Recognizer``), with two video additions:

- **Tracking.** Faces are *detected* every ``detect_every`` processed frames; in between,
  each tracked face is re-fitted from its previous box by the 68-point landmark model
  (a few milliseconds, against tens for detection) and its box follows the landmarks.
  Detections are matched to tracks greedily by IoU (a centre-distance fallback catches
  fast faces), so a face keeps its ``track_id``; a detection no track claims starts a
  new track. A face the detector misses is still followed while its box moves like a
  face and its crop looks like the face at its last detection; when that fails it is
  *lost* (not reported), and its track ends after ``max_missed`` processed frames unseen.
- **Smoothing.** Each track's 7 scores and 7 intensities go through an exponential
  moving average whose weight comes from the real time between frames,
  ``alpha = 1 - 0.5 ** (dt / half_life)``: after ``half_life`` seconds a step change
  is half absorbed at any frame rate, fixed or variable. Raw values are kept beside
  the smoothed ones; ``emotion`` is the top smoothed label.

Sources: ``VideoFile`` (every frame, or every Nth; decoding runs ahead in a thread),
``Camera`` (a reader thread keeps only the newest frame: frames that arrive while one
is analysed are dropped, never queued) and ``LiveSource(VideoFile(...), pace=True)``,
which plays a file at its own speed with the camera's dropping behaviour.

Outputs (``run_video``) stream to disk frame by frame: CSV, JSON Lines, an annotated
video, and at the end a per-track summary (JSON) and a timeline plot (PNG). Memory
stays flat: per track only running sums and a bounded, progressively thinned timeline
are kept.

Python API::

    from emolens import Recognizer
    for result in Recognizer().stream("clip.mp4"):          # or 0 for the first camera
        for face in result.faces:
            print(result.index, result.timestamp, face.track_id, face.emotion, face.scores["happy"])
"""

from __future__ import annotations

import collections
import contextlib
import csv
import json
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import cv2
import numpy as np

from emolens.emotions import EMOTIONS
from emolens.images import IMAGE_SUFFIXES, to_grey

DEFAULT_DETECT_EVERY = 5       # processed frames between two detections
DEFAULT_HALF_LIFE = 0.5        # seconds
DEFAULT_MAX_MISSED = 15        # processed frames a lost face may stay unseen before its track ends
DEFAULT_IOU = 0.3
DEFAULT_MIN_SIMILARITY = 0.4   # a followed face whose crop correlates less with its last detection is lost
DEFAULT_FPS = 30.0             # when a source does not say
# FFmpeg's own log lines ("moov atom not found", ...) would bury our messages; users can set it back.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


def _reported_fps(capture) -> float:
    """The frame rate a capture reports, or ``DEFAULT_FPS`` when it reports none or nonsense."""
    fps = capture.get(cv2.CAP_PROP_FPS)
    return float(fps) if fps and math.isfinite(fps) and 0 < fps < 1000 else DEFAULT_FPS


class VideoError(ValueError):
    """A video input or output cannot be used; the message names it and the fix."""


@contextlib.contextmanager
def _quiet_opencv():
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(previous)


# ---------------------------------------------------------------------------------------
# frame sources


@dataclass
class Frame:
    """One picture of a source: ``index`` counts every frame of the source (0-based),
    ``timestamp`` is seconds from its start, ``dropped`` how many frames a live source
    dropped just before this one."""

    index: int
    timestamp: float
    image: np.ndarray
    dropped: int = 0


class FrameSource:
    """Base of the frame sources: iterate for ``Frame`` objects; ``close()`` (or ``with``) when done."""

    name: str = "frames"
    live: bool = False            # frames arrive in real time and are dropped when analysis lags
    fps: float = DEFAULT_FPS
    frame_count: int | None = None    # frames the source announces (files), None when unknown
    every: int = 1

    @property
    def dropped(self) -> int:
        return 0

    @property
    def expected(self) -> int | None:
        """Frames that iteration should yield (the announced count over ``every``), or None."""
        if not self.frame_count:
            return None
        return -(-self.frame_count // self.every)

    def _frames(self) -> Iterator[Frame]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Frame]:
        return self._frames()

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _ReaderThread:
    """Runs a frame iterator in a thread and hands frames over through a buffer.

    ``latest_only``: a one-frame slot; a frame not taken before the next arrives is
    dropped (live sources). Otherwise a bounded queue of ``depth`` frames, the thread
    waiting when it is full (decoding ahead, nothing lost). ``pace``: release frames at
    their timestamps in wall-clock time (a file played like a camera).
    """

    def __init__(self, frames: Iterator[Frame], latest_only: bool, depth: int = 4, pace: bool = False,
                 name: str = "emolens-reader"):
        self._frames = frames
        self.latest_only = latest_only
        self.depth = 1 if latest_only else max(1, depth)
        self.pace = pace
        self._cond = threading.Condition()
        self._buffer: collections.deque[Frame] = collections.deque()
        self._stop = threading.Event()
        self._done = False
        self._error: BaseException | None = None
        self._pending_drops = 0
        self.read = 0
        self.dropped = 0
        self.max_pending = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        start = None
        try:
            for frame in self._frames:
                if self._stop.is_set():
                    break
                if self.pace:
                    now = time.monotonic()
                    if start is None:
                        start = now - frame.timestamp
                    delay = start + frame.timestamp - now
                    if delay > 0 and self._stop.wait(delay):
                        break
                with self._cond:
                    self.read += 1
                    if self.latest_only:
                        if self._buffer:
                            self._buffer.popleft()
                            self.dropped += 1
                            self._pending_drops += 1
                    else:
                        while len(self._buffer) >= self.depth and not self._stop.is_set():
                            self._cond.wait(0.05)
                    self._buffer.append(frame)
                    self.max_pending = max(self.max_pending, len(self._buffer))
                    self._cond.notify_all()
        except BaseException as exc:  # handed to the consumer
            self._error = exc
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def __iter__(self) -> Iterator[Frame]:
        while True:
            with self._cond:
                while not self._buffer and not self._done:
                    self._cond.wait(0.05)
                if self._buffer:
                    frame = self._buffer.popleft()
                    if self.latest_only:
                        frame.dropped, self._pending_drops = self._pending_drops, 0
                    self._cond.notify_all()
                elif self._error is not None:
                    raise self._error
                else:
                    return
            yield frame

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=5)


class VideoFile(FrameSource):
    """Frames of a video file (anything OpenCV's FFmpeg reads), every ``every``-th one.

    Timestamps come from the container (so variable-frame-rate files keep their real
    timing), falling back to ``index / fps``. ``prefetch`` frames are decoded ahead in
    a thread (0: decode in the caller's thread).
    Raises ``VideoError`` for a missing, unreadable or empty file.
    """

    def __init__(self, path: str | Path, every: int = 1, prefetch: int = 4):
        self.path = Path(path)
        self.name = str(path)
        if every < 1:
            raise VideoError(f"--every must be 1 or more, got {every}")
        self.every = int(every)
        self.prefetch = prefetch
        self._reader: _ReaderThread | None = None
        self.frames_read = 0
        self.last_index = -1
        p = self.path
        if not p.exists():
            raise VideoError(f"{p}: file not found; check the path (or pass a camera number such as 0)")
        if p.is_dir():
            raise VideoError(f"{p}: is a folder; pass one video file")
        if p.stat().st_size == 0:
            raise VideoError(f"{p}: empty file (0 bytes); re-copy or re-export the video")
        if p.suffix.lower() in IMAGE_SUFFIXES:
            raise VideoError(f"{p}: is a picture; use `emolens predict {p}` for pictures")
        with _quiet_opencv():
            self.capture = cv2.VideoCapture(str(p), cv2.CAP_FFMPEG)
            opened = self.capture.isOpened()
            first = self.capture.read() if opened else (False, None)
        if not opened:
            self.capture.release()
            raise VideoError(f"{p}: not a video OpenCV/FFmpeg can read (damaged or unsupported format); "
                             "re-encode it, e.g. `ffmpeg -i INPUT -c:v libx264 fixed.mp4`")
        if not first[0] or first[1] is None:
            self.capture.release()
            raise VideoError(f"{p}: has no video frames (empty or damaged video); check the file plays, "
                             "or re-encode it")
        self.fps = _reported_fps(self.capture)
        count = self.capture.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = int(count) if count and math.isfinite(count) and count > 0 else None
        self.size = (first[1].shape[1], first[1].shape[0])
        self._first = (first[1], self._position(0, None))

    def _position(self, index: int, previous: float | None) -> float:
        ms = self.capture.get(cv2.CAP_PROP_POS_MSEC)
        t = ms / 1000.0 if ms is not None and math.isfinite(ms) and ms >= 0 else None
        if t is None or (previous is not None and t <= previous) or (index > 0 and t == 0.0):
            t = index / self.fps if previous is None else max(index / self.fps, previous + 1e-3)
        return t

    def _frames(self) -> Iterator[Frame]:
        image, t = self._first
        index = 0
        self._first = None
        while True:
            self.frames_read += 1
            self.last_index = index
            yield Frame(index, t, image)
            for _ in range(self.every - 1):
                if not self.capture.grab():
                    return
                index += 1
            ok, image = self.capture.read()
            if not ok or image is None:
                return
            index += 1
            t = self._position(index, t)

    def __iter__(self) -> Iterator[Frame]:
        if self._first is None:
            raise VideoError(f"{self.name}: a VideoFile can be iterated once; open it again")
        if self.prefetch <= 0:
            return self._frames()
        self._reader = _ReaderThread(self._frames(), latest_only=False, depth=self.prefetch,
                                     name="emolens-decode")
        return iter(self._reader)

    @property
    def truncated(self) -> bool:
        """The file ended clearly before the frame count it announced (damaged or cut short)."""
        if not self.frame_count:
            return False
        return self.last_index + 1 < self.frame_count * 0.95 - 2

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self.capture.release()


class LiveSource(FrameSource):
    """Any source delivered like a camera: a reader thread keeps only the newest frame.

    ``pace=True`` releases frames at their timestamps in wall-clock time, so a file
    plays at its own speed and frames are dropped when analysis is slower than the
    video (``LiveSource(VideoFile("clip.mp4", prefetch=0), pace=True)``). ``dropped``
    counts frames discarded so far; at most one frame ever waits (``max_pending``).
    """

    live = True

    def __init__(self, source: FrameSource, pace: bool = True):
        self.source = source
        self.name = source.name
        self.fps = source.fps
        self.frame_count = source.frame_count
        self.every = source.every
        self.pace = pace
        self._reader: _ReaderThread | None = None

    def __iter__(self) -> Iterator[Frame]:
        self._reader = _ReaderThread(self.source._frames(), latest_only=True, pace=self.pace,
                                     name="emolens-live")
        return iter(self._reader)

    @property
    def dropped(self) -> int:
        return self._reader.dropped if self._reader is not None else 0

    @property
    def max_pending(self) -> int:
        return self._reader.max_pending if self._reader is not None else 0

    @property
    def expected(self) -> int | None:
        return None

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self.source.close()


class _CameraFrames(FrameSource):
    def __init__(self, index: int):
        self.index = index
        self.name = f"camera {index}"
        with _quiet_opencv():
            self.capture = cv2.VideoCapture(index)
            opened = self.capture.isOpened()
            first = self.capture.read() if opened else (False, None)
        if not opened:
            self.capture.release()
            raise VideoError(f"camera {index}: cannot be opened; check that it is connected and not in use by "
                             "another program, that this user may use it (Linux: /dev/video*, group 'video'), "
                             "or try another number; or pass a video file")
        if not first[0] or first[1] is None:
            self.capture.release()
            raise VideoError(f"camera {index}: opened but gives no pictures; close other programs using it "
                             "or try another camera number")
        self.fps = _reported_fps(self.capture)
        self._first = first[1]
        self.size = (first[1].shape[1], first[1].shape[0])

    def _frames(self) -> Iterator[Frame]:
        start = time.monotonic()
        image, index = self._first, 0
        self._first = None
        while image is not None:
            yield Frame(index, time.monotonic() - start if index else 0.0, image)
            ok, image = self.capture.read()
            if not ok:
                return
            index += 1

    def close(self) -> None:
        self.capture.release()


class Camera(LiveSource):
    """A camera by number (0 = the first): always live, newest frame only."""

    def __init__(self, index: int = 0):
        super().__init__(_CameraFrames(int(index)), pace=False)


class FrameIterable(FrameSource):
    """Frames from any iterable of ``Frame`` objects or BGR arrays (arrays are timed ``i / fps``)."""

    def __init__(self, frames: Iterable, fps: float = DEFAULT_FPS, name: str = "frames", live: bool = False):
        self._items = frames
        self.fps = float(fps)
        self.name = name
        self.live = live

    def _frames(self) -> Iterator[Frame]:
        for i, item in enumerate(self._items):
            yield item if isinstance(item, Frame) else Frame(i, i / self.fps, np.asarray(item))

    def close(self) -> None:
        close = getattr(self._items, "close", None)
        if callable(close):
            close()


def open_source(source, every: int = 1, realtime: bool = False, prefetch: int = 4) -> FrameSource:
    """A ``FrameSource`` for a file path, a camera number (int or digit string) or an existing source.

    ``realtime``: play a file at its own speed and drop frames when analysis lags, like a camera.
    """
    if isinstance(source, FrameSource):
        return source
    if isinstance(source, bool):
        raise VideoError(f"not a video source: {source!r}")
    if isinstance(source, int) or (isinstance(source, str) and source.strip().isdigit()
                                   and not Path(source).exists()):
        return Camera(int(source))
    if isinstance(source, (str, os.PathLike)):
        if realtime:
            return LiveSource(VideoFile(source, every=every, prefetch=0), pace=True)
        return VideoFile(source, every=every, prefetch=prefetch)
    if isinstance(source, Iterable):
        return FrameIterable(source)
    raise VideoError(f"not a video source: {source!r}; pass a file path or a camera number")


# ---------------------------------------------------------------------------------------
# smoothing


def ema_alpha(dt: float, half_life: float) -> float:
    """Weight of a new sample ``dt`` seconds after the last: ``1 - 0.5 ** (dt / half_life)``.

    ``half_life <= 0`` turns smoothing off (weight 1).
    """
    if half_life <= 0:
        return 1.0
    return 1.0 - 0.5 ** (max(float(dt), 0.0) / half_life)


class EmaSmoother:
    """Exponential moving average of a vector over irregular time (see ``ema_alpha``)."""

    def __init__(self, half_life: float = DEFAULT_HALF_LIFE):
        self.half_life = float(half_life)
        self.value: np.ndarray | None = None
        self.time: float | None = None

    def update(self, x, t: float) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.value is None:
            self.value = x.copy()
        else:
            self.value += ema_alpha(t - self.time, self.half_life) * (x - self.value)
        self.time = float(t)
        return self.value.copy()


# ---------------------------------------------------------------------------------------
# tracking


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = min(ax + aw, bx + bw) - max(ax, bx)
    ih = min(ay + ah, by + bh) - max(ay, by)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / (aw * ah + bw * bh - inter)


def _match_score(track_box, det_box, iou_threshold: float) -> float:
    """IoU when it reaches the threshold; else a small score for a nearby box of similar size; else 0."""
    iou = box_iou(track_box, det_box)
    if iou >= iou_threshold:
        return iou
    tx, ty, tw, th = track_box
    dx, dy, dw, dh = det_box
    dist = math.hypot(tx + tw / 2 - dx - dw / 2, ty + th / 2 - dy - dh / 2) / max(tw, th, 1)
    ratio = (dw * dh) / max(tw * th, 1)
    if dist < 0.75 and 0.4 < ratio < 2.5:
        return iou_threshold * 0.5 * (1.0 - dist / 0.75) + 1e-6
    return 0.0


def greedy_match(track_boxes: Sequence, det_boxes: Sequence, iou_threshold: float = DEFAULT_IOU
                 ) -> list[tuple[int, int]]:
    """(track, detection) index pairs, best-scoring pairs first, each index used at most once."""
    pairs = []
    for ti, tb in enumerate(track_boxes):
        for di, db in enumerate(det_boxes):
            s = _match_score(tb, db, iou_threshold)
            if s > 0:
                pairs.append((s, ti, di))
    pairs.sort(key=lambda p: -p[0])
    used_t, used_d, out = set(), set(), []
    for _, ti, di in pairs:
        if ti not in used_t and di not in used_d:
            used_t.add(ti)
            used_d.add(di)
            out.append((ti, di))
    return out


def _nested(a, b, overlap: float = 0.4) -> bool:
    """Boxes overlapping by at least ``overlap`` of the smaller one's area (one lies mostly in the other)."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = min(ax + aw, bx + bw) - max(ax, bx)
    ih = min(ay + ah, by + bh) - max(ay, by)
    return iw > 0 and ih > 0 and iw * ih >= overlap * min(aw * ah, bw * bh)


def drop_nested(detections: list, overlap: float = 0.4) -> list:
    """Of two detections where one lies mostly (``overlap`` of the smaller's area) inside the
    other, keep the one with the higher score (ties: the larger); order kept otherwise.

    Detectors sometimes fire on part of a face (a mouth, an eye pair) or on a region around
    it as well as on the face; such a box would become a second, false track. The scores
    of one call come from one backend, so they compare.
    """
    order = sorted(range(len(detections)),
                   key=lambda i: (-detections[i].score, -detections[i].box[2] * detections[i].box[3]))
    kept: list[int] = []
    for i in order:
        if not any(_nested(detections[i].box, detections[j].box, overlap) for j in kept):
            kept.append(i)
    return [detections[i] for i in sorted(kept)]


@dataclass(eq=False)
class Track:
    """A face followed across frames (internal state of ``FaceTracker``)."""

    id: int
    box: tuple[int, int, int, int]
    half_life: float
    landmarks: np.ndarray | None = None
    box_in_marks: tuple[float, float, float, float] | None = None  # detector box relative to the landmarks' extent
    last_seen: int = 0        # processed-frame counter when last found
    lost: bool = False
    template: np.ndarray | None = None   # the model crop at the last detection, zero-mean unit-norm
    scores: EmaSmoother = field(init=False)
    intensity: EmaSmoother = field(init=False)

    def __post_init__(self):
        self.scores = EmaSmoother(self.half_life)
        self.intensity = EmaSmoother(self.half_life)

    def remember_box(self, box, landmarks, crop=None) -> None:
        """At a detection: store where the detector's box sits relative to the landmarks, and the face's look."""
        self.box = tuple(int(v) for v in box)
        self.landmarks = landmarks
        self.template = None if crop is None else _normalized(crop)
        if landmarks is not None:
            lx, ly, lw, lh = _extent(landmarks)
            x, y, w, h = box
            self.box_in_marks = ((x - lx) / lw, (y - ly) / lh, w / lw, h / lh)

    def box_from(self, landmarks) -> tuple[int, int, int, int]:
        """The detector-like box for landmarks found between detections."""
        if self.box_in_marks is None:
            return self.box
        lx, ly, lw, lh = _extent(landmarks)
        rx, ry, rw, rh = self.box_in_marks
        return (int(round(lx + rx * lw)), int(round(ly + ry * lh)), int(round(rw * lw)), int(round(rh * lh)))


def _normalized(crop) -> np.ndarray:
    v = np.asarray(crop, dtype=np.float32).ravel()
    v = v - v.mean()
    return v / max(float(np.linalg.norm(v)), 1e-6)


def _similarity(crop, template) -> float:
    """Normalised cross-correlation of a crop with a track's template (1: same picture)."""
    return float(_normalized(crop) @ template)


def _extent(landmarks) -> tuple[float, float, float, float]:
    pts = np.asarray(landmarks, dtype=np.float64)
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    return float(x0), float(y0), max(float(x1 - x0), 1.0), max(float(y1 - y0), 1.0)


def _plausible_step(old, new, shape) -> bool:
    """A tracked box that moved like a face can between two frames and is mostly inside the picture."""
    if new[2] < 4 or new[3] < 4:
        return False
    ratio = (new[2] * new[3]) / max(old[2] * old[3], 1)
    if not 0.6 < ratio < 1.7 or box_iou(old, new) < 0.25:
        return False
    H, W = shape[:2]
    x, y, w, h = new
    inside = max(0, min(x + w, W) - max(x, 0)) * max(0, min(y + h, H) - max(y, 0))
    return inside >= 0.5 * w * h


@dataclass
class TrackedFace:
    """A face in one video frame: its track, where it is, and its emotions (smoothed and raw).

    ``scores``/``intensity``/``emotion`` are the smoothed values (what to show and
    store); ``raw_*`` the model's output for this frame alone. ``detected``: the box
    comes from the detector on this frame (False: followed by landmarks since the
    last detection).
    """

    track_id: int
    box: tuple[int, int, int, int]
    landmarks: np.ndarray | None
    emotion: str
    scores: dict[str, float]
    intensity: dict[str, float]
    raw_emotion: str
    raw_scores: dict[str, float]
    raw_intensity: dict[str, float]
    aligned: bool
    detected: bool
    detection_score: float = 0.0

    def to_dict(self) -> dict:
        return {
            "track_id": self.track_id,
            "box": [int(v) for v in self.box],
            "emotion": self.emotion,
            "scores": {k: round(float(v), 5) for k, v in self.scores.items()},
            "intensity": {k: round(float(v), 5) for k, v in self.intensity.items()},
            "raw": {"emotion": self.raw_emotion,
                    "scores": {k: round(float(v), 5) for k, v in self.raw_scores.items()},
                    "intensity": {k: round(float(v), 5) for k, v in self.raw_intensity.items()}},
            "aligned": bool(self.aligned),
            "detected": bool(self.detected),
            "landmarks": None if self.landmarks is None else np.round(self.landmarks, 1).tolist(),
        }


@dataclass
class FrameResult:
    """What ``Recognizer.stream`` yields per analysed frame."""

    index: int                      # frame number in the source
    timestamp: float                # seconds from the source's start
    faces: list[TrackedFace]        # tracked faces found in this frame (by track id)
    image: np.ndarray = field(repr=False)   # the BGR frame analysed (for drawing)
    dropped: int = 0                # frames a live source dropped just before this one
    detected: bool = False          # the detector ran on this frame
    seconds: float = 0.0            # analysis time of this frame

    def to_dict(self) -> dict:
        return {"frame": self.index, "time": round(self.timestamp, 4), "dropped": self.dropped,
                "faces": [f.to_dict() for f in self.faces]}


class FaceTracker:
    """Per-frame analysis with tracking and smoothing, on top of a ``Recognizer``.

    ``process(frame)`` -> ``FrameResult``. See the module docstring for the scheme.
    """

    def __init__(self, recognizer, detect_every: int = DEFAULT_DETECT_EVERY, half_life: float = DEFAULT_HALF_LIFE,
                 max_missed: int = DEFAULT_MAX_MISSED, iou_threshold: float = DEFAULT_IOU,
                 color: str = "bgr", min_similarity: float = DEFAULT_MIN_SIMILARITY):
        if detect_every < 1:
            raise ValueError(f"detect_every must be 1 or more, got {detect_every}")
        if half_life < 0:
            raise ValueError(f"half_life must be 0 (off) or more seconds, got {half_life}")
        if max_missed < 0:
            raise ValueError(f"max_missed must be 0 or more frames, got {max_missed}")
        self.recognizer = recognizer
        self.detect_every = int(detect_every)
        self.half_life = float(half_life)
        self.max_missed = int(max_missed)
        self.iou_threshold = float(iou_threshold)
        self.color = color
        self.min_similarity = float(min_similarity)
        self.tracks: list[Track] = []
        self.count = 0          # processed frames
        self.next_id = 1
        self.ended = 0

    def _new_track(self, box) -> Track:
        track = Track(self.next_id, tuple(int(v) for v in box), self.half_life, last_seen=self.count)
        self.next_id += 1
        self.tracks.append(track)
        return track

    def _follow(self, grey: np.ndarray, tracks: list[Track], missed: bool = False) -> tuple[list[Track], list]:
        """Re-fit each track's landmarks from its last box; the tracks (and crops) that still hold a face.

        A track fails (becomes lost) when its new box jumps or resizes more than a face can
        between frames, leaves the picture, or its crop stops resembling the face at its
        last detection. Faces without landmarks (small) keep their box between detections;
        ``missed``: the detector just missed these tracks, and those without landmarks,
        which cannot be followed, are lost.
        """
        located = self.recognizer.locate_boxes(grey, [t.box for t in tracks], [0.0] * len(tracks))
        keep_t, keep_l = [], []
        for track, loc in zip(tracks, located):
            if loc.landmarks is not None and track.box_in_marks is not None:
                box = track.box_from(loc.landmarks)
                if not _plausible_step(track.box, box, grey.shape):
                    track.lost = True       # the fit jumped: the face left or turned away
                    continue
            elif missed:
                track.lost = True
                continue
            else:
                box = track.box
            if track.template is not None and _similarity(loc.crop, track.template) < self.min_similarity:
                track.lost = True           # no longer looks like the face: wait for the detector
                continue
            loc.box = box
            track.box, track.landmarks = box, loc.landmarks
            keep_t.append(track)
            keep_l.append(loc)
        return keep_t, keep_l

    def process(self, frame: Frame) -> FrameResult:
        rec = self.recognizer
        t0 = time.perf_counter()
        grey = to_grey(frame.image, self.color)
        detect = self.count % self.detect_every == 0
        if not detect:
            active = [t for t in self.tracks if not t.lost]
            chosen, located = self._follow(grey, active)
            n_detected = 0
            # A followed face was lost (fast motion, a turn): the detector looks for it on this frame
            # rather than leaving it unreported until the next scheduled detection.
            detect = len(chosen) < len(active)
        if detect:
            # No padded second chance (made for tight photo crops): in a video frame a face rarely
            # fills the picture, and the retry would double the cost of every frame without a face.
            detections = drop_nested(rec.detect(grey, retry=False))
            pairs = greedy_match([t.box for t in self.tracks], [d.box for d in detections], self.iou_threshold)
            owner = {di: self.tracks[ti] for ti, di in pairs}
            # Faces the detector missed this time are still followed while they look like themselves
            # (a turned head, blur); one that overlaps a detection claimed by another track is a duplicate.
            claimed = {id(t) for t in owner.values()}
            missed, missed_located = self._follow(grey, [t for t in self.tracks if id(t) not in claimed
                                                         and not t.lost], missed=True)
            followed, followed_located = [], []
            for track, loc in zip(missed, missed_located):
                if any(box_iou(loc.box, detections[di].box) > 0.5 for di in owner):
                    track.lost = True
                else:
                    followed.append(track)
                    followed_located.append(loc)
            # A detection no track claims is a new face, unless it overlaps a face still followed
            # (a box around or inside it).
            fresh = [d for di, d in enumerate(detections) if di not in owner and not any(
                _nested(d.box, loc.box) for loc in followed_located)]
            found = [detections[di] for di in sorted(owner)] + fresh
            chosen = [owner[di] for di in sorted(owner)] + [self._new_track(d.box) for d in fresh]
            located = rec.locate_boxes(grey, [d.box for d in found], [d.score for d in found],
                                       [d.full_box for d in found])
            for track, loc in zip(chosen, located):
                track.remember_box(loc.box, loc.landmarks, loc.crop)
                track.lost = False
            n_detected = len(chosen)
            chosen += followed
            located += followed_located
        faces = rec.classify(located)
        out = []
        for k, (track, face) in enumerate(zip(chosen, faces)):
            track.last_seen = self.count
            raw_s = np.array([face.scores[e] for e in EMOTIONS])
            raw_i = np.array([face.intensity[e] for e in EMOTIONS])
            s = track.scores.update(raw_s, frame.timestamp)
            i = track.intensity.update(raw_i, frame.timestamp)
            out.append(TrackedFace(
                track_id=track.id, box=face.box, landmarks=face.landmarks,
                emotion=EMOTIONS[int(np.argmax(s))],
                scores={e: float(v) for e, v in zip(EMOTIONS, s)},
                intensity={e: float(v) for e, v in zip(EMOTIONS, i)},
                raw_emotion=face.emotion, raw_scores=face.scores, raw_intensity=face.intensity,
                aligned=face.aligned, detected=detect and k < n_detected, detection_score=face.detection_score))
        before = len(self.tracks)
        self.tracks = [t for t in self.tracks if self.count - t.last_seen <= self.max_missed]
        self.ended += before - len(self.tracks)
        self.count += 1
        out.sort(key=lambda f: f.track_id)
        return FrameResult(frame.index, frame.timestamp, out, frame.image, frame.dropped, detect,
                           time.perf_counter() - t0)


def stream(recognizer, source, every: int = 1, realtime: bool = False, detect_every: int = DEFAULT_DETECT_EVERY,
           half_life: float = DEFAULT_HALF_LIFE, max_missed: int = DEFAULT_MAX_MISSED,
           iou_threshold: float = DEFAULT_IOU, color: str = "bgr") -> Iterator[FrameResult]:
    """Analyse a video file, camera or ``FrameSource`` frame by frame (see ``Recognizer.stream``).

    The source is opened here when given as a path or camera number, and closed when
    the iteration ends, fails or is abandoned.
    """
    tracker = FaceTracker(recognizer, detect_every=detect_every, half_life=half_life, max_missed=max_missed,
                          iou_threshold=iou_threshold, color=color)
    src = open_source(source, every=every, realtime=realtime)
    try:
        for frame in src:
            yield tracker.process(frame)
    finally:
        src.close()


# ---------------------------------------------------------------------------------------
# summary and timeline


class TrackStats:
    """Running per-track sums: frames, time span, smoothed score and intensity sums, top-label counts."""

    def __init__(self, track_id: int):
        self.track_id = track_id
        self.frames = 0
        self.first_frame = self.last_frame = -1
        self.start = self.end = 0.0
        self.score_sum = np.zeros(len(EMOTIONS))
        self.intensity_sum = np.zeros(len(EMOTIONS))
        self.top_counts = np.zeros(len(EMOTIONS), dtype=np.int64)

    def add(self, face: TrackedFace, index: int, timestamp: float) -> None:
        if self.frames == 0:
            self.first_frame, self.start = index, timestamp
        self.frames += 1
        self.last_frame, self.end = index, timestamp
        self.score_sum += [face.scores[e] for e in EMOTIONS]
        self.intensity_sum += [face.intensity[e] for e in EMOTIONS]
        self.top_counts[EMOTIONS.index(face.emotion)] += 1

    def to_dict(self) -> dict:
        n = max(self.frames, 1)
        mean = self.score_sum / n
        return {
            "track_id": self.track_id,
            "frames": self.frames,
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "dominant": EMOTIONS[int(np.argmax(mean))],
            "mean_scores": {e: round(float(v), 4) for e, v in zip(EMOTIONS, mean)},
            "mean_intensity": {e: round(float(v), 4) for e, v in zip(EMOTIONS, self.intensity_sum / n)},
            "shares": {e: round(float(c) / n, 4) for e, c in zip(EMOTIONS, self.top_counts)},
        }


@dataclass
class VideoSummary:
    """What a whole run saw: counts, timing, and ``TrackStats`` per track (see ``to_dict``)."""

    source: str
    fps: float = DEFAULT_FPS
    processed: int = 0
    with_faces: int = 0
    dropped: int = 0
    last_index: int = -1
    duration: float = 0.0
    seconds: float = 0.0            # wall-clock time of the run
    interrupted: bool = False
    stopped: bool = False           # the viewer closed the window
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    tracks: dict[int, TrackStats] = field(default_factory=dict)

    def add(self, result: FrameResult) -> None:
        self.processed += 1
        self.with_faces += bool(result.faces)
        self.dropped += result.dropped
        self.last_index = result.index
        self.duration = result.timestamp
        for face in result.faces:
            stats = self.tracks.get(face.track_id)
            if stats is None:
                stats = self.tracks[face.track_id] = TrackStats(face.track_id)
            stats.add(face, result.index, result.timestamp)

    @property
    def processing_fps(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "source_fps": round(self.fps, 3),
            "frames_processed": self.processed,
            "frames_with_faces": self.with_faces,
            "frames_dropped": self.dropped,
            "last_frame": self.last_index,
            "duration": round(self.duration, 3),
            "processing_seconds": round(self.seconds, 3),
            "processing_fps": round(self.processing_fps, 2),
            "interrupted": self.interrupted,
            "error": self.error,
            "warnings": self.warnings,
            "tracks": [s.to_dict() for s in sorted(self.tracks.values(), key=lambda s: s.track_id)],
        }


class Timeline:
    """Smoothed scores over time per track, in bounded memory.

    Each track keeps at most ``max_points`` points; when full, neighbouring points are
    averaged in pairs and later samples are averaged in buckets twice as long, so a
    ten-hour video costs what a ten-minute one does.
    """

    def __init__(self, max_points: int = 2000):
        self.max_points = max(4, int(max_points) // 2 * 2)
        self._series: dict[int, dict] = {}

    def add(self, result: FrameResult) -> None:
        for face in result.faces:
            s = self._series.get(face.track_id)
            if s is None:
                s = self._series[face.track_id] = {"t": [], "v": [], "bucket": 1, "n": 0, "sum_t": 0.0,
                                                   "sum_v": np.zeros(len(EMOTIONS))}
            s["n"] += 1
            s["sum_t"] += result.timestamp
            s["sum_v"] += [face.scores[e] for e in EMOTIONS]
            if s["n"] >= s["bucket"]:
                s["t"].append(s["sum_t"] / s["n"])
                s["v"].append((s["sum_v"] / s["n"]).astype(np.float32))
                s["n"], s["sum_t"], s["sum_v"] = 0, 0.0, np.zeros(len(EMOTIONS))
                if len(s["t"]) >= self.max_points:
                    s["t"] = [(a + b) / 2 for a, b in zip(s["t"][0::2], s["t"][1::2])]
                    s["v"] = [(a + b) / 2 for a, b in zip(s["v"][0::2], s["v"][1::2])]
                    s["bucket"] *= 2

    def series(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """``{track_id: (times (n,), scores (n, 7))}``."""
        out = {}
        for tid, s in sorted(self._series.items()):
            t, v = list(s["t"]), list(s["v"])
            if s["n"]:
                t.append(s["sum_t"] / s["n"])
                v.append((s["sum_v"] / s["n"]).astype(np.float32))
            out[tid] = (np.asarray(t), np.asarray(v).reshape(-1, len(EMOTIONS)))
        return out

    def points(self) -> int:
        """Points held (at most ``max_points`` per track)."""
        return sum(len(s["t"]) for s in self._series.values())


# ---------------------------------------------------------------------------------------
# outputs


def _output_path(path: str | Path, what: str) -> Path:
    path = Path(path)
    if path.is_dir():
        raise VideoError(f"{path}: is a folder; give a file name for the {what}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VideoError(f"{path.parent}: cannot create the folder for the {what} ({exc.strerror})") from None
    return path


def _open_text(path: Path, what: str):
    try:
        return path.open("w", newline="", encoding="utf-8")
    except OSError as exc:
        raise VideoError(f"{path}: cannot write the {what} ({exc.strerror}); check the folder's permissions") from None


CSV_COLUMNS = (["frame", "time", "track_id", "x", "y", "w", "h", "emotion"]
               + [f"score_{e}" for e in EMOTIONS] + [f"intensity_{e}" for e in EMOTIONS])


class CsvWriter:
    """One row per (frame, track), smoothed values; flushed every frame, so an interrupted run leaves whole rows."""

    def __init__(self, path: str | Path):
        self.path = _output_path(path, "CSV file")
        self._file = _open_text(self.path, "CSV file")
        self._csv = csv.writer(self._file)
        self._csv.writerow(CSV_COLUMNS)
        self.rows = 0

    def write(self, result: FrameResult) -> None:
        for f in result.faces:
            self._csv.writerow([result.index, f"{result.timestamp:.4f}", f.track_id, *f.box, f.emotion,
                                *(f"{f.scores[e]:.5f}" for e in EMOTIONS),
                                *(f"{f.intensity[e]:.5f}" for e in EMOTIONS)])
            self.rows += 1
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class JsonlWriter:
    """One JSON object per (frame, track): ``{"frame", "time", **TrackedFace.to_dict()}`` (smoothed and raw)."""

    def __init__(self, path: str | Path):
        self.path = _output_path(path, "JSON Lines file")
        self._file = _open_text(self.path, "JSON Lines file")
        self.rows = 0

    def write(self, result: FrameResult) -> None:
        lines = [json.dumps({"frame": result.index, "time": round(result.timestamp, 4), **f.to_dict()})
                 for f in result.faces]
        if lines:
            self._file.write("\n".join(lines) + "\n")
            self.rows += len(lines)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


ANNOTATED_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "XVID"}


def annotate_frame(result: FrameResult) -> np.ndarray:
    """The frame with each tracked face's box, landmarks, track id, top emotion and score bars (smoothed)."""
    from emolens.draw import draw_faces

    return draw_faces(result.image, result.faces, min_side=0, tags=[f"#{f.track_id}" for f in result.faces])


class AnnotatedVideoWriter:
    """The annotated frames as a video at ``fps`` (the frame size is taken from the first frame).

    Drawing and encoding run in a thread of their own (OpenCV releases the GIL), fed
    through a queue of at most ``depth`` frames, so they overlap with the analysis of
    the next frames on a second core. Live sources: a processed frame is written once
    more per frame dropped before it, so the video keeps real time.
    """

    def __init__(self, path: str | Path, fps: float, threaded: bool = True, depth: int = 4):
        import queue

        self.path = _output_path(path, "annotated video")
        suffix = self.path.suffix.lower()
        if suffix not in ANNOTATED_FOURCC:
            raise VideoError(f"{self.path}: the annotated video must be .mp4, .mov, .avi or .mkv")
        self.fourcc = ANNOTATED_FOURCC[suffix]
        self.fps = float(fps)
        self._writer = None
        self.frames = 0
        self.error: str | None = None
        self._queue = queue.Queue(maxsize=max(1, depth)) if threaded else None
        self._thread: threading.Thread | None = None

    def _open(self, width: int, height: int) -> None:
        with _quiet_opencv():
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*self.fourcc), self.fps,
                                           (width, height))
        if not self._writer.isOpened():
            raise VideoError(f"{self.path}: OpenCV cannot write a {self.fourcc} video there; check the folder "
                             "and try .mp4 or .avi")
        if self._queue is not None:
            self._thread = threading.Thread(target=self._run, name="emolens-video-writer", daemon=True)
            self._thread.start()

    def _encode(self, result: FrameResult, picture: np.ndarray | None) -> None:
        picture = annotate_frame(result) if picture is None else picture
        for _ in range(1 + result.dropped):
            self._writer.write(picture)
            self.frames += 1

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self.error is None:
                try:
                    self._encode(*item)
                except Exception as exc:  # reported by write() and run_video
                    self.error = f"{self.path}: writing the annotated video failed ({exc}); check the disk space"

    def write(self, result: FrameResult, picture: np.ndarray | None = None) -> None:
        """Queue (or write) one analysed frame; ``picture``: the annotated frame when already drawn."""
        import queue

        if self.error is not None:
            raise VideoError(self.error)
        if self._writer is None:
            h, w = result.image.shape[:2] if picture is None else picture.shape[:2]
            self._open(w, h)
        if self._queue is None:
            self._encode(result, picture)
            return
        while True:
            try:
                self._queue.put((result, picture), timeout=0.1)
                return
            except queue.Full:
                if self.error is not None:
                    raise VideoError(self.error) from None

    def close(self) -> None:
        """Write what is queued and finalise the file (check ``error`` afterwards)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._writer is not None:
            self._writer.release()


def gui_problem() -> str | None:
    """Why OpenCV cannot open a window here (None when it can)."""
    if "GUI:" in cv2.getBuildInformation():
        gui = cv2.getBuildInformation().split("GUI:", 1)[1].splitlines()[0].strip()
        if gui.upper() == "NONE":
            return ("--show needs OpenCV with a GUI: this is opencv-python-headless; install opencv-python "
                    "in its place (pip uninstall opencv-python-headless && pip install opencv-python), or drop "
                    "--show and write --out FILE.mp4")
    if os.name == "posix" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) \
            and "darwin" not in os.uname().sysname.lower():
        return "--show needs a display (no DISPLAY is set); drop --show and write --out FILE.mp4"
    return None


class Display:
    """A live window (``q`` or Esc stops). Raises ``VideoError`` when no window can be opened."""

    def __init__(self, title: str = "emolens"):
        problem = gui_problem()
        if problem:
            raise VideoError(problem)
        self.title = title
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            raise VideoError(f"--show: OpenCV cannot open a window ({exc}); drop --show and write --out "
                             "FILE.mp4") from None

    def show(self, picture: np.ndarray) -> bool:
        """Show a picture; False when the user asked to stop."""
        cv2.imshow(self.title, picture)
        key = cv2.waitKey(1) & 0xFF
        return key not in (ord("q"), 27)

    def close(self) -> None:
        with contextlib.suppress(cv2.error):
            cv2.destroyWindow(self.title)


@dataclass
class VideoOutputs:
    """Where ``run_video`` writes: each None is skipped."""

    csv: str | Path | None = None
    jsonl: str | Path | None = None
    video: str | Path | None = None
    summary_json: str | Path | None = None
    plot: str | Path | None = None


def check_outputs(outputs: VideoOutputs) -> None:
    """Raise ``VideoError`` for an output that cannot be written (folder given, wrong video suffix),
    without creating anything: lets a command fail before loading models or reading the video."""
    for path, what in ((outputs.csv, "CSV file"), (outputs.jsonl, "JSON Lines file"),
                       (outputs.video, "annotated video"), (outputs.summary_json, "summary"),
                       (outputs.plot, "timeline plot")):
        if path is not None and Path(path).is_dir():
            raise VideoError(f"{path}: is a folder; give a file name for the {what}")
    if outputs.video is not None and Path(outputs.video).suffix.lower() not in ANNOTATED_FOURCC:
        raise VideoError(f"{outputs.video}: the annotated video must be .mp4, .mov, .avi or .mkv")


def run_video(recognizer, source, outputs: VideoOutputs | None = None, show: bool = False,
              on_frame: Callable[[FrameResult, VideoSummary], object] | None = None,
              on_start: Callable[[FrameSource], None] | None = None, every: int = 1, realtime: bool = False,
              **tracking) -> VideoSummary:
    """Analyse a whole source and write the outputs as frames are processed.

    ``tracking``: ``detect_every``, ``half_life``, ``max_missed``, ``iou_threshold``
    (see ``FaceTracker``). ``on_frame(result, summary)`` runs after each frame (e.g. a
    progress bar). Ctrl-C (``KeyboardInterrupt``) ends the run cleanly: the outputs
    hold every frame processed so far and the summary has ``interrupted=True``.
    Raises ``VideoError`` for an unusable input or output, before anything is written.
    """
    outputs = outputs or VideoOutputs()
    src = open_source(source, every=every, realtime=realtime)
    summary = VideoSummary(source=src.name, fps=src.fps)
    writers: list = []
    display = None
    try:
        tracker = FaceTracker(recognizer, **tracking)
        if outputs.csv:
            writers.append(CsvWriter(outputs.csv))
        if outputs.jsonl:
            writers.append(JsonlWriter(outputs.jsonl))
        video_writer = None
        if outputs.video:
            video_writer = AnnotatedVideoWriter(outputs.video, src.fps / src.every)
        summary_path = _output_path(outputs.summary_json, "summary") if outputs.summary_json else None
        plot_path = _output_path(outputs.plot, "timeline plot") if outputs.plot else None
        timeline = Timeline() if plot_path else None
        if show:
            display = Display(f"emolens - {src.name}")
    except BaseException:
        for w in writers:
            w.close()
        src.close()
        raise
    start = time.perf_counter()
    try:
        if on_start is not None:
            on_start(src)
        for frame in src:
            result = tracker.process(frame)
            summary.add(result)
            if timeline is not None:
                timeline.add(result)
            for w in writers:
                w.write(result)
            picture = annotate_frame(result) if display is not None else None   # else drawn by the writer thread
            if video_writer is not None:
                video_writer.write(result, picture)
            summary.seconds = time.perf_counter() - start
            if on_frame is not None:
                on_frame(result, summary)
            if display is not None and not display.show(picture):
                summary.stopped = True
                break
    except KeyboardInterrupt:
        summary.interrupted = True
    except VideoError as exc:
        summary.error = str(exc)
    except cv2.error as exc:
        summary.error = f"{src.name}: OpenCV failed while reading frame {summary.last_index + 1} ({exc}); " \
                        "the file may be damaged; re-encode it"
    finally:
        summary.seconds = time.perf_counter() - start
        summary.dropped = max(summary.dropped, src.dropped)
        for w in writers:
            w.close()
        if video_writer is not None:
            video_writer.close()
            summary.error = summary.error or video_writer.error
        if display is not None:
            display.close()
        src.close()
    if isinstance(src, VideoFile) and src.truncated and not summary.interrupted and not summary.stopped:
        summary.warnings.append(f"{src.name}: the video ended at frame {src.last_index + 1} of the "
                                f"{src.frame_count} it announces; the file may be cut short or damaged")
    if summary_path is not None:
        summary_path.write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
    if plot_path is not None:
        from emolens.draw import plot_timeline

        plot_timeline(timeline.series(), plot_path, title=f"{src.name}: smoothed emotion scores per face")
    return summary
