"""The analysis side of ``emolens serve``: models loaded once, a bounded pool of worker threads.

One ``Recognizer`` is built at start (the emotion model and the 68-point landmark
model, the expensive parts, are loaded once and shared: ONNX Runtime sessions and
dlib's shape predictor are safe to call from several threads). Requests and streams get
light copies of it per (detector, align) choice whose detector is a ``PooledDetector``:
each call borrows a detector object from a pool (so no detector is used by two threads at
once) and gives it back, so the server holds at most one detector per worker thread and
name, however many streams come and go. WebSocket streams share the face-descriptor
model the same way. (Making a detector and a descriptor model per stream grew the
server by ~0.25 MB per session: 239 -> 594 MB over 1,400 sessions.)

Uploads stay in memory: bytes in, ``emolens.images.decode_image_scaled``, never a
temporary file. ``ByteBudget`` bounds the bytes of request bodies held at once.
"""

from __future__ import annotations

import asyncio
import copy
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from emolens.faces.detect import DEFAULT_DETECTOR, FaceDetector
from emolens.images import MAX_PIXELS, PictureTooLarge  # noqa: F401 - PictureTooLarge: HTTP 413

MiB = 1 << 20
MULTIPART_SLACK = 64 * 1024     # multipart headers and boundaries on top of the picture's bytes


def default_workers() -> int:
    """Analysis threads: one per core, at most 2 (a request runs its own stages single-threaded)."""
    return max(1, min(2, os.cpu_count() or 1))


@dataclass
class ServeConfig:
    """Everything ``create_app`` needs; ``emolens serve`` fills it from its options.

    api_key: required by every endpoint when set (header ``X-API-Key``, ``Authorization:
    Bearer``, ``api_key`` query parameter, or the cookie the page sets); a blank key is an
    error (``security.normalize_api_key``). workers: analysis threads. max_pending: analyses
    waiting or running before new requests get 503. max_upload_bytes: request body limit
    (413). max_buffered_bytes: request bodies held in memory at once, all requests together
    (more: 503 with Retry-After; default: 64 MiB or 4 uploads, whichever is larger).
    max_pixels: pictures that would decode to more pixels get 413 (``emolens.images.MAX_PIXELS``,
    the limit of every decode path). ws_max_bytes: WebSocket message limit (the connection
    closes with 1009). max_streams: concurrent WebSocket streams (more: closed with 1013, try
    again later). ws_idle_seconds: a stream that sends no message for this long is closed
    (code 4408), so idle connections cannot hold every stream slot.
    """

    api_key: str | None = None
    detector: str = DEFAULT_DETECTOR
    model: str | Path | None = None
    workers: int = field(default_factory=default_workers)
    detect_side: int = 640
    max_upload_bytes: int = 10 * MiB
    max_buffered_bytes: int | None = None
    max_pixels: int = MAX_PIXELS
    ws_max_bytes: int = 2 * MiB
    max_pending: int = 64
    max_streams: int = 8
    ws_idle_seconds: float = 30.0

    def __post_init__(self):
        from emolens import options
        from emolens.serve.security import normalize_api_key

        self.api_key = normalize_api_key(self.api_key)
        self.workers = options.check("workers_threads", self.workers, "workers")
        self.detect_side = options.check("detect_side", self.detect_side)
        self.max_pending = options.check("max_pending", self.max_pending)
        self.max_streams = options.check("max_streams", self.max_streams)
        self.ws_idle_seconds = options.check("ws_idle_seconds", self.ws_idle_seconds)
        for name in ("max_upload_bytes", "ws_max_bytes", "max_pixels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise options.OptionError(name, value, "a whole number of 1 or more")
        if self.max_buffered_bytes is None:
            self.max_buffered_bytes = max(64 * MiB, 4 * (self.max_upload_bytes + MULTIPART_SLACK))
        elif self.max_buffered_bytes < self.max_upload_bytes + MULTIPART_SLACK:
            raise options.OptionError("max_buffered_bytes", self.max_buffered_bytes,
                                      f"at least one upload ({self.max_upload_bytes + MULTIPART_SLACK} bytes)")


class ByteBudget:
    """Bytes of request bodies held in memory, all requests together (used on the event loop only).

    A request reserves its declared size (or the upload limit when it declares none) before
    reading its body and gives it back when its answer is ready; a reservation that does not
    fit is refused at once (the caller answers 503), so uploads never pile up in memory.
    """

    def __init__(self, limit: int):
        self.limit = int(limit)
        self.used = 0

    def take(self, n: int) -> bool:
        if self.used + n > self.limit:
            return False
        self.used += n
        return True

    def give(self, n: int) -> None:
        self.used -= n


class _Pool:
    """Objects made on demand and lent to one user at a time; returned ones serve the next user."""

    def __init__(self, make: Callable):
        self._make = make
        self._free: list = []
        self._lock = threading.Lock()
        self.made = 0

    def take(self):
        with self._lock:
            if self._free:
                return self._free.pop()
            self.made += 1
        return self._make()

    def give(self, obj) -> None:
        with self._lock:
            self._free.append(obj)


class PooledDetector(FaceDetector):
    """A detector by name whose every call borrows a real one from a pool (one per concurrent call).

    Attributes (``name``, ``max_side``, ...) are those of the detectors it lends.
    """

    def __init__(self, name: str, **options):
        from emolens.faces.detect import get_detector

        self._pool = _Pool(lambda: get_detector(name, **options))
        first = self._pool.take()      # unknown names and bad options fail here
        self._pool.give(first)
        self._first = first
        self.name = first.name

    def __getattr__(self, attr):
        if attr.startswith("_"):
            raise AttributeError(attr)
        return getattr(self._first, attr)

    def __call__(self, grey, retry: bool | None = None):
        detector = self._pool.take()
        try:
            return detector(grey, retry=retry)
        finally:
            self._pool.give(detector)


class SharedDescriber:
    """The face-descriptor model of ``emolens.people.persons``, one for every worker: made on the
    first call, then shared (an ONNX Runtime session runs calls from several threads at once, and
    dlib's chip cut keeps no state), unlike the detectors, which are lent one per call."""

    def __init__(self, threads: int | None = None):
        self._threads = threads
        self._describer = None
        self._lock = threading.Lock()

    def __call__(self, image, landmarks):
        if self._describer is None:
            with self._lock:
                if self._describer is None:
                    from emolens.people.persons import FaceDescriber

                    self._describer = FaceDescriber(threads=self._threads)
        return self._describer(image, landmarks)


def pin_threads(workers: int) -> int:
    """Threads each analysis may use so ``workers`` analyses in parallel fill the cores, no more.

    Sets OpenCV's thread count (process-wide) and returns the ONNX Runtime intra-op count
    for the emotion and face-descriptor models (the BlazeFace detector always runs single-threaded).
    """
    import cv2

    per = max(1, (os.cpu_count() or 1) // max(1, workers))
    cv2.setNumThreads(per)
    return per


class Engine:
    """Shared models, the worker threads and the analysis functions they run."""

    def __init__(self, config: ServeConfig):
        from emolens.recognize import Recognizer
        from emolens.runtime import EmotionModel

        self.config = config
        self._lock = threading.Lock()
        self._detectors: dict[str, PooledDetector] = {}
        self.model_threads = pin_threads(config.workers)
        self.model = EmotionModel(config.model, threads=self.model_threads)
        detector = self.detector(config.detector)  # unknown names fail here, before the landmark model loads
        self.base = Recognizer(detector=detector, model=self.model, detect_side=config.detect_side)
        self.describer = SharedDescriber(threads=self.model_threads)
        self.executor = ThreadPoolExecutor(config.workers, thread_name_prefix="emolens-serve")
        self._local = threading.local()
        self.pending = 0          # analyses queued or running
        self.analyses = 0         # finished analyses (uploads and stream frames)
        self.streams = 0          # open WebSocket streams
        self.started = time.time()

    # -- recognizers -------------------------------------------------------------------

    def detector(self, name: str | None = None) -> PooledDetector:
        """The pooled detector of this name (made once per name and server)."""
        name = name or self.config.detector
        with self._lock:
            found = self._detectors.get(name)
        if found is None:
            made = PooledDetector(name, max_side=self.config.detect_side)
            with self._lock:
                found = self._detectors.setdefault(name, made)
        return found

    def recognizer(self, detector: str | None = None, align: bool = True):
        """A ``Recognizer`` for these options sharing the loaded models (and the detector pool)."""
        from emolens.faces.align import DEFAULT_CROP, get_crop
        from emolens.recognize import StageTimes

        rec = copy.copy(self.base)
        rec.detector = self.detector(detector)
        rec.crop = get_crop(DEFAULT_CROP if align else "box")
        rec.times = StageTimes()
        return rec

    def tracker(self, detector: str | None = None, align: bool = True, **tracking):
        """A ``FaceTracker`` for one stream: its own tracks, the shared models and pools."""
        from emolens.video import FaceTracker

        # The descriptor model is lent per call, not loaded per stream (module docstring).
        return FaceTracker(self.recognizer(detector, align), describer=self.describer, **tracking)

    def _thread_recognizer(self, detector: str | None, align: bool):
        cache = getattr(self._local, "recognizers", None)
        if cache is None:
            cache = self._local.recognizers = {}
        key = (detector or self.config.detector, bool(align))
        rec = cache.get(key)
        if rec is None:
            rec = cache[key] = self.recognizer(*key)
        return rec

    # -- work --------------------------------------------------------------------------

    def analyze_bytes(self, data: bytes, name: str = "upload", detector: str | None = None,
                      align: bool = True, max_pixels: int | None = None) -> dict:
        """Decode a picture from memory and analyse it: the ``emolens predict --json`` object.

        Raises ``emolens.images.ImageError`` (undecodable) and ``PictureTooLarge``.
        Runs in a worker thread.
        """
        from emolens.predict import PhotoResult

        image, factor = self.decode(data, name, max_pixels)
        rec = self._thread_recognizer(detector, align)
        faces = rec.analyze(image, color="bgr")
        return PhotoResult(name, faces=[f.scaled(factor) for f in faces]).to_dict()

    def decode(self, data: bytes, name: str = "upload", max_pixels: int | None = None):
        """``(BGR image, factor to the file's pixels)``: the decode path of every caller, with its pixel limit."""
        from emolens.images import decode_image_scaled

        return decode_image_scaled(data, name, max_pixels=max_pixels or self.config.max_pixels)

    async def run(self, fn: Callable, *args):
        """``fn(*args)`` in a worker thread (off the event loop), counted in ``pending``."""
        with self._lock:
            self.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
        finally:
            with self._lock:
                self.pending -= 1
                self.analyses += 1

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
