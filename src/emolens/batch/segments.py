"""Long videos cut into segments that run in parallel, frame-exactly.

Frame numbers are those of ``emolens video``: the n-th frame OpenCV decodes is frame n.
To start a segment in the middle of a file without decoding everything before it:

1. ``frame_times`` lists every frame's presentation time from the container with PyAV,
   reading packets only (no decoding; a one-hour file takes a second or two), sorted, as
   OpenCV reports them (``(pts - stream start) * time base``, in milliseconds). Frame n is
   the n-th time in that list, at a constant frame rate or not.
2. ``read_segment`` seeks OpenCV to a little before the segment's first frame (it lands on a
   keyframe and decodes forward), then names every decoded frame by looking its timestamp up
   in the list. Frames before the segment are skipped, the segment's frames are analysed,
   and it stops at the next segment's first frame. A frame whose time is not in the list, or
   that comes out of order, stops the segment with ``SegmentMismatch`` rather than
   numbering it wrongly (rerun with ``--segment-seconds 0`` to read such a file whole).

Segment boundaries are multiples of ``every * detect_every`` frames, so the analysed frames
and the detector's schedule are those of one run over the whole file. The analysed frame
before a segment is decoded as well and shown to the shot detector only, so a cut on the
boundary frame is found. A video that fits in one segment, or whose timestamps cannot be
listed, is read whole by ``emolens.video.VideoFile``, exactly as ``emolens video`` reads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from emolens.file_names import OpenCVPath
from emolens.video.sources import Frame, VideoError, VideoFile, _quiet_opencv


class SegmentMismatch(VideoError):
    """The decoder's frames do not match the container's frame list (the file cannot be split exactly)."""


@dataclass
class VideoPlan:
    """How a video is read: its frame count (None: unknown), frame rate, and segments as
    ``(start, stop)`` frame ranges (``stop`` None: to the end). ``times_ms``: every frame's
    time when the video is split (None when read whole); ``note`` says why it is read whole."""

    frames: int | None
    fps: float
    segments: list[tuple[int, int | None]]
    times_ms: np.ndarray | None = None
    note: str | None = None

    @property
    def split(self) -> bool:
        return len(self.segments) > 1


def frame_times(path: str | Path) -> np.ndarray:
    """Every frame's presentation time in ms, sorted, as OpenCV's ``CAP_PROP_POS_MSEC`` gives it.

    Raises ``VideoError`` when the container gives no usable timestamps (none, or repeated)."""
    import av

    with OpenCVPath(path, Path(path).suffix) as alias, av.open(alias) as container:
        if not container.streams.video:
            raise VideoError(f"{path}: no video stream")
        stream = container.streams.video[0]
        if stream.start_time is None or stream.time_base is None:
            raise VideoError(f"{path}: the video stream has no start time")
        pts = []
        for packet in container.demux(stream):
            stamp = packet.pts if packet.pts is not None else packet.dts
            if packet.size > 0 and stamp is not None:
                pts.append(stamp)
        start, tb = int(stream.start_time), stream.time_base
    if not pts:
        raise VideoError(f"{path}: no frame timestamps in the container")
    stamps = np.sort(np.asarray(pts, dtype=np.int64))
    if np.any(np.diff(stamps) <= 0):
        raise VideoError(f"{path}: frames share timestamps in the container")
    return (stamps - start).astype(np.float64) * (tb.numerator / tb.denominator) * 1000.0


def plan_segments(frames: int, fps: float, segment_seconds: float, every: int = 1,
                  detect_every: int = 5) -> list[tuple[int, int | None]]:
    """``(start, stop)`` ranges of about ``segment_seconds`` each, starts on multiples of
    ``every * detect_every``, the last open-ended; one range when the video fits in one."""
    if segment_seconds <= 0 or frames <= 0:
        return [(0, None)]
    step = max(1, every * detect_every)
    length = max(step, math.ceil(segment_seconds * fps / step) * step)
    if frames <= length:
        return [(0, None)]
    starts = list(range(0, frames, length))
    if len(starts) > 1 and frames - starts[-1] < step:     # a sliver of a segment: joined to the one before
        starts.pop()
    return [(a, b) for a, b in zip(starts, starts[1:])] + [(starts[-1], None)]


def plan_video(path: str | Path, segment_seconds: float, every: int = 1, detect_every: int = 5) -> VideoPlan:
    """Open the video as ``emolens video`` does (its checks and messages: ``VideoError``), then
    list its frames and cut it into segments; read whole when it cannot be split."""
    source = VideoFile(path, every=every, prefetch=0)
    try:
        fps, frames = source.fps, source.frame_count
        first_ms = source.capture.get(cv2.CAP_PROP_POS_MSEC)
    finally:
        source.close()
    if segment_seconds <= 0:
        return VideoPlan(frames, fps, [(0, None)], note="--segment-seconds 0: read whole")
    try:
        times = frame_times(path)
    except VideoError as exc:
        return VideoPlan(frames, fps, [(0, None)], note=f"read whole: {exc}")
    except Exception as exc:  # PyAV's own errors (a container it cannot demux)
        return VideoPlan(frames, fps, [(0, None)], note=f"read whole: PyAV cannot list its frames ({exc})")
    if not math.isfinite(first_ms) or abs(first_ms - times[0]) > _tolerance(times):
        return VideoPlan(len(times), fps, [(0, None)],
                         note="read whole: OpenCV's timestamps differ from the container's")
    if len(times) > 1:
        fps = 1000.0 / float(np.median(np.diff(times)))
    segments = plan_segments(len(times), fps, segment_seconds, every, detect_every)
    if len(segments) == 1:
        return VideoPlan(len(times), fps, segments)
    return VideoPlan(len(times), fps, segments, times)


def _tolerance(times: np.ndarray) -> float:
    """How far a decoder's timestamp may lie from the listed one and still name that frame (ms)."""
    gaps = np.diff(times)
    return min(0.5, 0.25 * float(gaps.min())) if len(gaps) else 0.5


def _open(path: str):
    with _quiet_opencv():
        capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    if not capture.isOpened():
        raise VideoError(f"{path}: not a video OpenCV/FFmpeg can read (damaged or unsupported format)")
    return capture


def _positioned(path: str, target_ms: float, tol: float):
    """A capture whose next frame lies at or before ``target_ms``: ``(capture, time of a frame already
    grabbed or None)``. Seeks a little before the target, further back when it landed after it."""
    capture = _open(path)
    margin = 2000.0
    while target_ms - margin > 0:
        with _quiet_opencv():
            capture.set(cv2.CAP_PROP_POS_MSEC, target_ms - margin)
            grabbed = capture.grab()
        if grabbed:
            ms = capture.get(cv2.CAP_PROP_POS_MSEC)
            if ms <= target_ms + tol:
                return capture, ms
        margin *= 4
    capture.release()
    return _open(path), None


def segment_times(times_ms: np.ndarray, start: int, stop: int | None, every: int = 1) -> tuple[np.ndarray, int]:
    """The part of a video's ``frame_times`` that ``read_segment`` needs for one segment, and the
    frame number of its first entry (a task is sent this, not the whole list)."""
    first = start - every if start >= every else start
    end = len(times_ms) if stop is None else min(stop + 1, len(times_ms))
    return times_ms[first:end].copy(), first


def read_segment(path: str | Path, start: int, stop: int | None, times_ms: np.ndarray,
                 every: int = 1, offset: int = 0) -> Iterator[tuple[bool, Frame]]:
    """The frames ``start <= index < stop`` (every ``every``-th index) of a split video, as
    ``(warm_up, Frame)``: first, for a segment that is not the first, the analysed frame just
    before it (``warm_up`` True: for the shot detector only), then the segment's frames.

    ``times_ms``: the video's ``frame_times`` from frame ``offset`` on (the whole list, or
    ``segment_times``). Raises ``SegmentMismatch`` when the decoded frames do not follow the
    list, ``VideoError`` when the file ends early."""
    first = start - every if start >= every else start
    listed = offset + len(times_ms)
    end = listed if stop is None else min(stop, listed)
    window = times_ms[first - offset:end - offset + 1]
    tol = _tolerance(window)
    alias = OpenCVPath(path, Path(path).suffix)
    capture = None
    try:
        capture, pending = _positioned(alias.path, float(window[0]), tol)
        expected = first
        while expected < end:
            if pending is None:
                with _quiet_opencv():
                    if not capture.grab():
                        break
                ms = capture.get(cv2.CAP_PROP_POS_MSEC)
            else:
                ms, pending = pending, None
            if ms < window[0] - tol:
                continue                        # before the segment: decoded to get there, not used
            j = int(np.searchsorted(window, ms - tol))
            index = first + j if j < len(window) and abs(window[j] - ms) <= tol else None
            if index != expected:
                found = "a time the container does not list" if index is None else f"frame {index}"
                raise SegmentMismatch(f"{path}: expected frame {expected} at {window[expected - first]:.3f} ms, "
                                      f"decoded {found} ({ms:.3f} ms); the file cannot be split exactly: "
                                      "rerun with --segment-seconds 0 to read it whole")
            expected += 1
            if index % every:
                continue
            ok, image = capture.retrieve()
            if not ok or image is None:
                raise VideoError(f"{path}: frame {index} cannot be decoded; the file may be damaged; re-encode it")
            yield index < start, Frame(index, ms / 1000.0, image)
        if expected < end:
            raise VideoError(f"{path}: the video ended at frame {expected}, before the {end} frames its container "
                             "lists; the file may be cut short or damaged")
    finally:
        if capture is not None:
            capture.release()
        alias.close()
