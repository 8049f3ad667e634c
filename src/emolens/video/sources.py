"""Frame sources: video files (decoded ahead in a thread), cameras (newest frame only),
files paced like a camera, and in-memory frames; ``open_source`` picks one."""

from __future__ import annotations

import collections
import contextlib
import math
import os
import re
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

from emolens.file_names import OpenCVPath
from emolens.images import IMAGE_SUFFIXES
from emolens.people.shots import BETWEEN_STRIDE, thumbnail


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


def _open_capture(args: tuple, cannot_open: str, no_frames: str):
    """``cv2.VideoCapture(*args)`` opened quietly and its first frame read: ``(capture, image)``.
    Raises ``VideoError(cannot_open)`` when it does not open, ``VideoError(no_frames)`` when
    it gives no first frame (the capture is released either way)."""
    with _quiet_opencv():
        capture = cv2.VideoCapture(*args)
        opened = capture.isOpened()
        ok, image = capture.read() if opened else (False, None)
    if not opened or not ok or image is None:
        capture.release()
        raise VideoError(cannot_open if not opened else no_frames)
    return capture, image


# ---------------------------------------------------------------------------------------
# frame sources


@dataclass
class Frame:
    """One picture of a source: ``index`` counts every frame of the source (0-based),
    ``timestamp`` is seconds from its start, ``dropped`` how many frames a live source
    dropped just before this one, ``between`` the shot detector's thumbnails of frames a
    ``VideoFile`` skipped (``--every``) since the one before (``emolens.people.shots``)."""

    index: int
    timestamp: float
    image: np.ndarray
    dropped: int = 0
    between: tuple = ()      # thumbnails of frames skipped since the previous one (VideoFile --every)


class FrameSource:
    """Base of the frame sources: iterate for ``Frame`` objects; ``close()`` (or ``with``) when done."""

    name: str = "frames"
    stop_requested: bool = False      # see ``request_stop``
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

    def request_stop(self) -> None:
        """Make iteration end soon, even while it waits for a frame (safe to call from a signal
        handler: it only sets flags, it takes no lock)."""
        self.stop_requested = True
        reader = getattr(self, "_reader", None)
        if reader is not None:
            reader.cancelled = True

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
        self.cancelled = False        # set by ``FrameSource.request_stop``: iteration ends at the next wait
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
                while not self._buffer and not self._done and not self.cancelled:
                    self._cond.wait(0.05)
                if self.cancelled:
                    return
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


def _check_video_file(p: Path) -> None:
    """Refuse, naming the file and the fix, what is no video file: missing, a folder, a device or
    pipe (endless reads), empty, unreadable, or named as a picture."""
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise VideoError(f"{p}: file not found; check the path (or pass a camera number such as 0)") from None
    except OSError as exc:
        raise VideoError(f"{p}: cannot be read ({exc.strerror}); check the path and its permissions") from None
    if stat.S_ISDIR(mode):
        raise VideoError(f"{p}: is a folder; pass one video file")
    if not stat.S_ISREG(mode):
        hint = ""
        if m := re.fullmatch(r"/dev/video(\d+)", os.path.realpath(p)):
            hint = f"; for this camera pass its number: emolens video {m.group(1)}"
        raise VideoError(f"{p}: is not a regular file (a device, pipe or socket); pass a video file{hint}")
    if p.stat().st_size == 0:
        raise VideoError(f"{p}: empty file (0 bytes); re-copy or re-export the video")
    if p.suffix.lower() in IMAGE_SUFFIXES:
        raise VideoError(f"{p}: is a picture; use `emolens predict {p}` for pictures")
    try:
        with open(p, "rb") as f:
            f.read(1)
    except OSError as exc:
        raise VideoError(f"{p}: cannot be read ({exc.strerror}); check its permissions") from None


def _picture_format(p: Path) -> str | None:
    """The picture format Pillow recognises in the file's header (PNG, JPEG, ...), or None."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib
        return None
    try:
        with Image.open(p) as im:
            return im.format or "picture"
    except Image.DecompressionBombError:
        return "picture"
    except Exception:
        return None


def _has_second_frame(path: str) -> bool:
    """FFmpeg decodes more than one frame from the file (an animation, a motion-JPEG stream)."""
    with _quiet_opencv():
        capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
        try:
            return capture.isOpened() and capture.grab() and capture.grab()
        finally:
            capture.release()


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
        self._alias: OpenCVPath | None = None
        self.frames_read = 0
        self.last_index = -1
        self.decoded = 0              # frames the decoder got through (analysed or skipped by ``every``)
        p = self.path
        if str(path) == "":
            raise VideoError("the video is an empty path (an unset shell variable?); pass a video file "
                             "or a camera number")
        _check_video_file(p)
        try:
            self._alias = OpenCVPath(p, p.suffix)
        except OSError:
            raise VideoError(f"{p}: OpenCV cannot open a file whose name is not valid UTF-8; rename it "
                             "(e.g. `convmv -f latin1 -t utf8 FILE`)") from None
        cannot_open = (f"{p}: not a video OpenCV/FFmpeg can read (damaged or unsupported format); "
                       "re-encode it, e.g. `ffmpeg -i INPUT -c:v libx264 fixed.mp4`")
        try:
            self.capture, first = _open_capture(
                (self._alias.path, cv2.CAP_FFMPEG), cannot_open=cannot_open,
                no_frames=f"{p}: has no video frames (empty or damaged video); check the file plays, or "
                          "re-encode it")
            picture = _picture_format(p)
            if picture is not None and not _has_second_frame(self._alias.path):
                self.capture.release()
                raise VideoError(f"{p}: is a still {picture} picture, not a video (whatever its name says); "
                                 f"use `emolens predict {p}` for pictures")
        except BaseException:
            self._alias.close()
            raise
        self.fps = _reported_fps(self.capture)
        count = self.capture.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = int(count) if count and math.isfinite(count) and count > 0 else None
        self.size = (first.shape[1], first.shape[0])
        self._first = (first, self._position(0, None))

    def _position(self, index: int, previous: float | None) -> float:
        ms = self.capture.get(cv2.CAP_PROP_POS_MSEC)
        t = ms / 1000.0 if ms is not None and math.isfinite(ms) and ms >= 0 else None
        if t is None or (previous is not None and t <= previous) or (index > 0 and t == 0.0):
            t = index / self.fps if previous is None else max(index / self.fps, previous + 1e-3)
        return t

    def _frames(self) -> Iterator[Frame]:
        image, t = self._first
        index = 0
        between: list[np.ndarray] = []
        self._first = None
        while True:
            self.frames_read += 1
            self.last_index = index
            self.decoded = index + 1
            yield Frame(index, t, image, between=tuple(between))
            between = []
            for skip in range(1, self.every):
                if not self.capture.grab():
                    return
                index += 1
                self.decoded = index + 1
                if skip % BETWEEN_STRIDE == 0:   # decoded anyway: its thumbnail keeps the cut check continuous
                    ok, skipped = self.capture.retrieve()
                    if ok and skipped is not None:
                        between.append(thumbnail(skipped))
            ok, image = self.capture.read()
            if not ok or image is None:
                return
            index += 1
            self.decoded = index + 1
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
        """The file ended clearly before the frame count it announced (damaged or cut short).

        Counts every frame decoded, those ``every`` skips included, so the last analysed frame
        lying up to ``every - 1`` frames before the end is no sign of damage."""
        if not self.frame_count:
            return False
        return self.decoded < self.frame_count * 0.95 - 2

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self.capture.release()
        if self._alias is not None:
            self._alias.close()


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


MAX_CAMERA = 99    # OpenCV reads larger numbers as a backend code plus a camera number


class _CameraFrames(FrameSource):
    def __init__(self, index: int):
        if not 0 <= index <= MAX_CAMERA:
            raise VideoError(f"camera {index}: not a camera number (cameras are numbered 0 to {MAX_CAMERA}: "
                             "0 is the first); check the number, or pass a video file")
        self.index = index
        self.name = f"camera {index}"
        self.capture, self._first = _open_capture(
            (index,),
            cannot_open=f"camera {index}: cannot be opened; check that it is connected and not in use by "
                        "another program, that this user may use it (Linux: /dev/video*, group 'video'), "
                        "or try another number; or pass a video file",
            no_frames=f"camera {index}: opened but gives no pictures; close other programs using it "
                      "or try another camera number")
        self.fps = _reported_fps(self.capture)
        self.size = (self._first.shape[1], self._first.shape[0])

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
    if isinstance(source, int) or (isinstance(source, str) and source.strip().isascii()
                                   and source.strip().isdigit() and not Path(source).exists()):
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
