"""Encoding the annotated video with PyAV (FFmpeg): H.264 (VP9 for .webm) and the source's audio.

``VideoEncoder`` writes frames at their real times (a frame's slot is its timestamp times
the frame rate, so ``--every N`` and dropped live frames keep the video in time with the
audio) into a hidden temporary file beside the output, interleaves the source's first
audio stream up to the last frame written (packets copied when the codec fits the
container, else transcoded), and on ``close`` finishes the file (mp4: the index at the
front, "faststart", so browsers play it while loading) and renames it into place: the
output name never holds a half-written file. PyAV takes file names that are not UTF-8.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import stat
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class VideoFormat:
    """How one output suffix is encoded: container, video encoder and options, audio encoder,
    and the audio codecs the container takes as they are (copied, not transcoded)."""

    container: str
    video: str
    video_options: dict = field(default_factory=dict)
    audio: str = "aac"
    copy_audio: frozenset = frozenset()
    options: dict = field(default_factory=dict)


_X264 = {"preset": "superfast", "crf": "23"}   # ~3.5 ms of CPU per 640x480 frame here
_MP4 = VideoFormat("mp4", "libx264", _X264, "aac", frozenset({"aac", "mp3"}), {"movflags": "+faststart"})

# The annotated video's formats by file suffix. H.264 in yuv420p plays in every browser
# and player; WebM is VP9 + Opus (libvpx at its real-time speed setting).
ANNOTATED_FORMATS: dict[str, VideoFormat] = {
    ".mp4": _MP4,
    ".m4v": _MP4,
    ".mov": VideoFormat("mov", "libx264", _X264, "aac", frozenset({"aac", "mp3", "alac", "pcm_s16le"}),
                        {"movflags": "+faststart"}),
    ".mkv": VideoFormat("matroska", "libx264", _X264, "aac",
                        frozenset({"aac", "mp3", "opus", "vorbis", "flac", "ac3", "eac3", "pcm_s16le"})),
    ".webm": VideoFormat("webm", "libvpx-vp9",
                         {"deadline": "realtime", "cpu-used": "8", "row-mt": "1", "crf": "33", "b": "0"},
                         "libopus", frozenset({"opus", "vorbis"})),
    ".avi": VideoFormat("avi", "libx264", _X264, "libmp3lame", frozenset({"mp3", "ac3", "pcm_s16le"})),
}


class EncodingError(ValueError):
    """The annotated video cannot be written; the message names the file and the fix."""


def require_av(path, fmt: VideoFormat) -> None:
    """Raise ``EncodingError`` when PyAV is missing or lacks the encoders ``fmt`` needs."""
    try:
        import av
    except ImportError:
        raise EncodingError(f"{path}: the annotated video needs PyAV; install it: pip install av") from None
    missing = [name for name in (fmt.video, fmt.audio) if name not in av.codecs_available]
    if missing:
        raise EncodingError(f"{path}: this PyAV's FFmpeg has no {' or '.join(missing)} encoder; install PyAV's "
                            "wheel from PyPI, which has them (pip install --force-reinstall av)")


def frame_rate(fps: float) -> Fraction:
    """The video's frame rate as a fraction (29.97 -> 30000/1001); 30 when ``fps`` makes no sense."""
    if not (math.isfinite(fps) and fps > 0):
        fps = 30.0
    return Fraction(fps).limit_denominator(1001)


def _zero_time(container) -> float:
    """Where the source's frame timestamps count from (OpenCV counts from its video stream's start)."""
    for stream in container.streams.video[:1]:
        if stream.start_time is not None:
            return float(stream.start_time * stream.time_base)
    return container.start_time / 1_000_000 if container.start_time is not None else 0.0


class SourceAudio:
    """The source file's first audio stream, written into ``output`` in step with the video.

    Copied packet by packet when its codec is one ``fmt.copy_audio`` lists, else decoded
    and encoded with ``fmt.audio``. Times are shifted so that the source's video time
    ``start`` (seconds from its video stream's start) is the output's zero.
    ``SourceAudio.open`` returns None for a source without (readable) audio.
    """

    def __init__(self, source, audio, output, fmt: VideoFormat, start: float):
        self._source = source
        self._in = audio
        self._zero = _zero_time(source) + start
        codec = audio.codec_context.codec.canonical_name       # "mp3" (its decoder is "mp3float")
        self.copied = codec in fmt.copy_audio
        if self.copied:
            self.stream = output.add_stream_from_template(audio)
            self._shift = int(round(self._zero / audio.time_base))
        else:
            rate = audio.codec_context.sample_rate or 48000
            if fmt.audio == "libopus":
                rate = 48000
            self.stream = output.add_stream(fmt.audio, rate=rate)
            self.stream.layout = "stereo" if audio.codec_context.channels >= 2 else "mono"
            self.stream.time_base = Fraction(1, rate)
        self._output = output
        self._packets = source.demux(audio)
        self._pending = None
        self.description = f"{codec} copied" if self.copied else f"{codec} re-encoded as {fmt.audio}"

    @classmethod
    def open(cls, path, output, fmt: VideoFormat, start: float = 0.0) -> "SourceAudio | None":
        """The source's audio added to ``output``; None when the source has no audio stream.
        Raises ``EncodingError`` when it has one that cannot be read or converted."""
        import av

        try:
            source = av.open(os.fspath(path))
        except (av.FFmpegError, OSError, UnicodeError) as exc:
            raise EncodingError(f"{path}: PyAV cannot read the audio ({exc}); the annotated video has none") from None
        if not source.streams.audio:
            source.close()
            return None
        try:
            return cls(source, source.streams.audio[0], output, fmt, start)
        except (av.FFmpegError, ValueError, TypeError) as exc:
            source.close()
            raise EncodingError(f"{path}: its audio cannot go into a {fmt.container} file ({exc}); the annotated "
                                "video has none") from None

    def _time(self, packet) -> float | None:
        if packet.pts is None or packet.time_base is None:
            return None
        return float(packet.pts * packet.time_base) - self._zero

    def write_until(self, end: float) -> None:
        """Write the audio that starts before ``end`` seconds of the output."""
        while True:
            packet = self._pending if self._pending is not None else next(self._packets, None)
            self._pending = None
            if packet is None:
                return
            t = self._time(packet)
            if t is None:                       # the demuxer's empty packet at the end of the stream
                continue
            if t >= end:
                self._pending = packet
                return
            if t < 0:                           # before the first frame written
                continue
            if self.copied:
                packet.pts -= self._shift
                if packet.dts is not None:
                    packet.dts -= self._shift
                packet.stream = self.stream
                self._output.mux(packet)
            else:
                self._transcode(packet)

    def _transcode(self, packet) -> None:
        for frame in packet.decode():
            if frame.pts is None:
                continue
            t = float(frame.pts * frame.time_base) - self._zero
            frame.pts = int(round(t * frame.sample_rate))
            frame.time_base = Fraction(1, frame.sample_rate)
            for out in self.stream.encode(frame):
                self._output.mux(out)

    def finish(self) -> None:
        """Flush the audio encoder (transcoding) and close the source."""
        try:
            if not self.copied:
                for out in self.stream.encode(None):
                    self._output.mux(out)
        finally:
            self._source.close()

    def close(self) -> None:
        self._source.close()


class VideoEncoder:
    """An annotated video being written: ``add`` BGR pictures at their times, then ``close``.

    ``audio_from``: the source video file whose audio goes into the output (None: no audio,
    e.g. a camera). Errors while writing raise PyAV's or the OS's exceptions (the caller
    names the file); ``abort`` removes the unfinished file.
    """

    def __init__(self, path: Path, fmt: VideoFormat, fps: float, width: int, height: int,
                 audio_from=None, start: float = 0.0):
        import av

        self.path = path
        self.rate = frame_rate(fps)
        self.size = (width, height)
        self.frames = 0
        self._next = 0                  # the next free frame slot
        self._start = start
        self.audio: SourceAudio | None = None
        self.warning: str | None = None       # why the source's audio is left out
        self._output = None
        self._target = self._temporary(path)
        try:
            self._output = av.open(os.fspath(self._target), "w", format=fmt.container, options=dict(fmt.options))
            stream = self._output.add_stream(fmt.video, rate=self.rate, options=dict(fmt.video_options))
            stream.width, stream.height = width + width % 2, height + height % 2    # 4:2:0 needs even sides
            stream.pix_fmt = "yuv420p"
            stream.time_base = 1 / self.rate
            self._video = stream
            if audio_from is not None:
                try:
                    self.audio = SourceAudio.open(audio_from, self._output, fmt, start)
                except EncodingError as exc:
                    self.warning = str(exc)
        except BaseException:
            self.abort()
            raise

    @staticmethod
    def _temporary(path: Path) -> Path:
        """A new hidden file beside ``path`` (so the rename stays on one file system); ``path``
        itself when it is no regular file (a pipe, /dev/null)."""
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISREG(os.stat(path).st_mode):
                return path
        while True:                     # like mkstemp, but with the mode a new file gets here (umask)
            name = path.parent / f".emolens-{secrets.token_hex(6)}.partial{path.suffix}"
            try:
                os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                return name
            except FileExistsError:
                continue

    def slot(self, timestamp: float) -> int:
        """The frame slot of a source time (seconds): its place in the output at ``rate``."""
        if not math.isfinite(timestamp):
            return self._next
        return int(round((timestamp - self._start) * self.rate))

    def add(self, picture: np.ndarray, timestamp: float, repeats: int = 1) -> None:
        """Write ``picture`` ``repeats`` times (frames dropped before it), ending at the slot of ``timestamp``."""
        import av

        picture = self._fit(picture)
        frame = av.VideoFrame.from_ndarray(picture, format="bgr24")
        first = max(self._next, self.slot(timestamp) - (repeats - 1))
        for k in range(repeats):
            frame.pts = first + k
            for packet in self._video.encode(frame):
                self._output.mux(packet)
        self._next = first + repeats
        self.frames += repeats
        if self.audio is not None:
            self.audio.write_until(self.duration)

    @property
    def duration(self) -> float:
        """Seconds of video written so far (up to the end of the last frame)."""
        return float(self._next / self.rate)

    def _fit(self, picture: np.ndarray) -> np.ndarray:
        import cv2

        w, h = self.size
        if picture.shape[1] != w or picture.shape[0] != h:
            picture = cv2.resize(picture, (w, h), interpolation=cv2.INTER_AREA)
        if w % 2 or h % 2:
            picture = cv2.copyMakeBorder(picture, 0, h % 2, 0, w % 2, cv2.BORDER_REPLICATE)
        return np.ascontiguousarray(picture)

    def close(self) -> None:
        """Flush the encoders, write the audio up to the last frame, finish the file and move it into place.
        On failure the unfinished file is removed and the error raised."""
        try:
            for packet in self._video.encode(None):
                self._output.mux(packet)
            if self.audio is not None:
                self.audio.write_until(self.duration)
                self.audio.finish()
            self._output.close()
        except BaseException:
            self.abort()
            raise
        if self._target != self.path:
            os.replace(self._target, self.path)

    def abort(self) -> None:
        """Close without finishing and remove the unfinished file."""
        if self.audio is not None:
            with contextlib.suppress(Exception):
                self.audio.close()
        if self._output is not None:
            with contextlib.suppress(Exception):
                self._output.close()
        if self._target != self.path:
            with contextlib.suppress(OSError):
                os.unlink(self._target)
