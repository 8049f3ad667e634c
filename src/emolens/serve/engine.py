"""The analysis side of ``emolens serve``: models loaded once, a bounded pool of worker threads.

One ``Recognizer`` is built at start (the emotion model and the 68-point landmark
model, the expensive parts, are loaded once and shared: ONNX Runtime sessions and
dlib's shape predictor are safe to call from several threads). Each worker thread
gets its own light copy per (detector, align) choice, with its own detector object,
so no mutable state is shared between threads. A WebSocket stream gets a copy of its
own with a ``FaceTracker`` (see ``emolens.serve.stream``).

Uploads stay in memory: bytes in, ``cv2.imdecode`` (``emolens.images.decode_image_scaled``),
never a temporary file.
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

from emolens.faces.detect import DEFAULT_DETECTOR

MiB = 1 << 20


def default_workers() -> int:
    """Analysis threads: one per core, at most 2 (a request runs its own stages single-threaded)."""
    return max(1, min(2, os.cpu_count() or 1))


@dataclass
class ServeConfig:
    """Everything ``create_app`` needs; ``emolens serve`` fills it from its options.

    api_key: required by every endpoint when set (header ``X-API-Key``, ``Authorization:
    Bearer``, ``api_key`` query parameter, or the cookie the page sets).
    workers: analysis threads. max_pending: analyses waiting or running before new
    requests get 503. max_upload_bytes: request body limit (413). max_pixels: pictures
    whose header announces more pixels get 413. ws_max_bytes: WebSocket message limit
    (the connection closes with 1009). max_streams: concurrent WebSocket streams (more:
    closed with 1013, try again later).
    """

    api_key: str | None = None
    detector: str = DEFAULT_DETECTOR
    model: str | Path | None = None
    workers: int = field(default_factory=default_workers)
    detect_side: int = 640
    max_upload_bytes: int = 10 * MiB
    max_pixels: int = 50_000_000
    ws_max_bytes: int = 2 * MiB
    max_pending: int = 64
    max_streams: int = 8

    def __post_init__(self):
        if self.api_key is not None and not self.api_key.strip():
            self.api_key = None
        if self.workers < 1:
            raise ValueError(f"workers must be 1 or more, got {self.workers}")


class PictureTooLarge(ValueError):
    """An upload announces more pixels than the server decodes (HTTP 413)."""


def pin_threads(workers: int) -> int:
    """Threads each analysis may use so ``workers`` analyses in parallel fill the cores, no more.

    Sets OpenCV's thread count (process-wide) and returns the ONNX Runtime intra-op count
    for the emotion model (the BlazeFace detector always runs single-threaded).
    """
    import cv2

    per = max(1, (os.cpu_count() or 1) // max(1, workers))
    cv2.setNumThreads(per)
    return per


class Engine:
    """Shared models, the worker threads and the analysis functions they run."""

    def __init__(self, config: ServeConfig):
        from emolens.faces.detect import get_detector
        from emolens.recognize import Recognizer
        from emolens.runtime import EmotionModel

        self.config = config
        self.model_threads = pin_threads(config.workers)
        self.model = EmotionModel(config.model, threads=self.model_threads)
        get_detector(config.detector)  # unknown names fail here, before the landmark model loads
        self.base = Recognizer(detector=config.detector, model=self.model, detect_side=config.detect_side)
        self.executor = ThreadPoolExecutor(config.workers, thread_name_prefix="emolens-serve")
        self._local = threading.local()
        self._lock = threading.Lock()
        self.pending = 0          # analyses queued or running
        self.analyses = 0         # finished analyses (uploads and stream frames)
        self.streams = 0          # open WebSocket streams
        self.started = time.time()

    # -- recognizers -------------------------------------------------------------------

    def recognizer(self, detector: str | None = None, align: bool = True):
        """A ``Recognizer`` for these options sharing the loaded models, with a detector of its own."""
        from emolens.faces.align import DEFAULT_CROP, get_crop
        from emolens.faces.detect import get_detector
        from emolens.recognize import StageTimes

        rec = copy.copy(self.base)
        rec.detector = get_detector(detector or self.config.detector, max_side=self.config.detect_side)
        rec.crop = get_crop(DEFAULT_CROP if align else "box")
        rec.times = StageTimes()
        return rec

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
        """``(BGR image, factor to the file's pixels)``; checks the announced size first."""
        from emolens.images import decode_image_scaled, header_size

        max_pixels = max_pixels or self.config.max_pixels
        size = header_size(data)
        if size is not None and size[0] * size[1] > max_pixels:
            raise PictureTooLarge(f"{name}: {size[0]}x{size[1]} pixels is more than this server decodes "
                                  f"({max_pixels} pixels); downscale it first")
        return decode_image_scaled(data, name)

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
