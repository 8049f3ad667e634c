"""Where a video run writes: CSV, JSON Lines, the annotated video, the on-screen window."""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emolens.emotions import EMOTIONS
from emolens.video.encoding import ANNOTATED_FORMATS, EncodingError, VideoEncoder, require_av
from emolens.video.sources import VideoError
from emolens.video.tracking import FrameResult


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


def write_failed(path: str | Path, what: str, exc: OSError) -> VideoError:
    """The error for a write that failed half-way (a full disk, /dev/full, a removed drive)."""
    return VideoError(f"{path}: writing the {what} failed ({exc.strerror or exc}); free some disk space or "
                      "write it somewhere else")


class _TextWriter:
    """A text output flushed every frame; write errors become ``VideoError`` naming the file."""

    what = "file"

    def __init__(self, path: str | Path):
        self.path = _output_path(path, self.what)
        self._file = _open_text(self.path, self.what)
        self.rows = 0

    def _flush(self) -> None:
        try:
            self._file.flush()
        except OSError as exc:
            raise write_failed(self.path, self.what, exc) from None

    def close(self) -> None:
        """Close the file; raises ``VideoError`` when its last write fails (the file is closed either way)."""
        if self._file.closed:
            return
        try:
            self._file.close()
        except OSError as exc:
            raise write_failed(self.path, self.what, exc) from None


CSV_COLUMNS = (["frame", "time", "shot", "track_id", "person", "x", "y", "w", "h", "emotion", "frontal",
                "yaw", "pitch", "roll"]
               + [f"score_{e}" for e in EMOTIONS] + [f"intensity_{e}" for e in EMOTIONS])


def csv_row(result: FrameResult, f) -> list:
    """One CSV row (``CSV_COLUMNS``) of a tracked face: ``person`` empty until a descriptor named it,
    ``yaw``/``pitch``/``roll`` empty when the landmarks did not fit (small or turned faces)."""
    pose = ("", "", "") if f.pose is None else (f"{f.pose.yaw:.1f}", f"{f.pose.pitch:.1f}", f"{f.pose.roll:.1f}")
    return [result.index, f"{result.timestamp:.4f}", f.shot, f.track_id, "" if f.person is None else f.person,
            *f.box, f.emotion, int(bool(f.frontal)), *pose,
            *(f"{f.scores[e]:.5f}" for e in EMOTIONS),
            *(f"{f.intensity[e]:.5f}" for e in EMOTIONS)]


class CsvWriter(_TextWriter):
    """One row per (frame, track), smoothed values; flushed every frame, so an interrupted run leaves whole rows.

    The header is flushed at once, so a file that cannot take data (a full disk) fails before the run."""

    what = "CSV file"

    def __init__(self, path: str | Path):
        super().__init__(path)
        self._csv = csv.writer(self._file)
        try:
            self._csv.writerow(CSV_COLUMNS)
            self._flush()
        except VideoError:
            with contextlib.suppress(OSError):   # closes the file although its buffer cannot be written
                self._file.close()
            raise

    def write(self, result: FrameResult) -> None:
        try:
            for f in result.faces:
                self._csv.writerow(csv_row(result, f))
                self.rows += 1
        except OSError as exc:
            raise write_failed(self.path, self.what, exc) from None
        self._flush()


class JsonlWriter(_TextWriter):
    """One JSON object per (frame, track): ``{"frame", "time", **TrackedFace.to_dict()}`` (smoothed and raw)."""

    what = "JSON Lines file"

    def write(self, result: FrameResult) -> None:
        lines = [json.dumps({"frame": result.index, "time": round(result.timestamp, 4), **f.to_dict()})
                 for f in result.faces]
        if lines:
            try:
                self._file.write("\n".join(lines) + "\n")
            except OSError as exc:
                raise write_failed(self.path, self.what, exc) from None
            self.rows += len(lines)
        self._flush()


def annotate_frame(result: FrameResult, sides: dict | None = None) -> np.ndarray:
    """The frame with each tracked face's box, landmarks, person (track when not yet known), top
    emotion and score bars (smoothed) placed where they cover no face (``emolens.draw``); faces
    not seen from the front are marked "~". ``sides``: a dict kept between the frames of one
    video (track id -> side of its panel), so a panel stays on its side while it fits there."""
    from emolens.draw import annotation_layout, draw_faces

    faces = result.faces
    tags = [face_tag(f) for f in faces]
    prefer = None if sides is None else [sides.get(f.track_id) for f in faces]
    layout = annotation_layout(faces, *result.image.shape[:2], min_side=0, tags=tags, prefer=prefer)
    if sides is not None:
        sides.clear()
        sides.update((f.track_id, p.side) for f, p in zip(faces, layout))
    return draw_faces(result.image, faces, min_side=0, tags=tags, layout=layout)


def face_tag(face) -> str:
    """A tracked face's short name on the video: ``P2`` (person 2), or ``#5`` (track 5) until a
    descriptor named the person."""
    return f"#{face.track_id}" if face.person is None else f"P{face.person}"


def audio_source(source) -> Path | None:
    """The file whose audio goes into the annotated video: a video file's path (also when played
    live), None for cameras and in-memory frames."""
    from emolens.video.sources import LiveSource, VideoFile

    if isinstance(source, LiveSource):
        source = source.source
    return source.path if isinstance(source, VideoFile) else None


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or exc)


class AnnotatedVideoWriter:
    """The annotated frames as a video at ``fps`` (the frame size is taken from the first frame).

    H.264 (yuv420p) in .mp4, .m4v, .mov, .mkv and .avi, VP9 + Opus in .webm
    (``emolens.video.encoding``); ``audio_from``: the source video file, whose audio is
    written beside the frames (copied when the container takes its codec, else re-encoded)
    up to the last frame written. Frames keep their real times, so ``--every N`` keeps the
    video in step with the audio. The file appears under its name only once finished.

    Drawing and encoding run in a thread of their own (FFmpeg releases the GIL), fed
    through a queue of at most ``depth`` frames, so they overlap with the analysis of
    the next frames on a second core. Live sources: a processed frame is written once
    more per frame dropped before it, so the video keeps real time.
    """

    def __init__(self, path: str | Path, fps: float, threaded: bool = True, depth: int = 4, audio_from=None):
        import queue

        self.path = _output_path(path, "annotated video")
        suffix = self.path.suffix.lower()
        if suffix not in ANNOTATED_FORMATS:
            raise VideoError(f"{self.path}: the annotated video must be .mp4, .webm, .mov, .mkv or .avi")
        self.format = ANNOTATED_FORMATS[suffix]
        try:
            require_av(self.path, self.format)
        except EncodingError as exc:
            raise VideoError(str(exc)) from None
        self.fps = float(fps)
        self.audio_from = audio_from
        self.audio: str | None = None         # the source's audio in the output ("aac copied"), once opened
        self.warning: str | None = None       # why the source's audio was left out
        self._encoder: VideoEncoder | None = None
        self.frames = 0
        self.error: str | None = None
        self._queue = queue.Queue(maxsize=max(1, depth)) if threaded else None
        self._thread: threading.Thread | None = None
        self._sides: dict = {}                # where each track's panel was (see ``annotate_frame``)

    def _open(self, width: int, height: int, start: float) -> None:
        import av

        try:
            self._encoder = VideoEncoder(self.path, self.format, self.fps, width, height, audio_from=self.audio_from,
                                         start=start if math.isfinite(start) else 0.0)
        except (OSError, av.FFmpegError, ValueError) as exc:
            raise VideoError(f"{self.path}: cannot write the annotated video there ({_reason(exc)}); check the "
                             "folder, or try .mp4 or .webm") from None
        self.warning = self._encoder.warning
        self.audio = None if self._encoder.audio is None else self._encoder.audio.description
        if self._queue is not None:
            self._thread = threading.Thread(target=self._run, name="emolens-video-writer", daemon=True)
            self._thread.start()

    def _encode(self, result: FrameResult, picture: np.ndarray | None) -> None:
        picture = annotate_frame(result, self._sides) if picture is None else picture
        self._encoder.add(picture, result.timestamp, 1 + result.dropped)
        self.frames = self._encoder.frames

    def _failed(self, exc: BaseException) -> str:
        return f"{self.path}: writing the annotated video failed ({_reason(exc)}); free some disk space or " \
               "write it somewhere else"

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self.error is None:
                try:
                    self._encode(*item)
                except Exception as exc:  # reported by write() and run_video
                    self.error = self._failed(exc)

    def write(self, result: FrameResult, picture: np.ndarray | None = None) -> None:
        """Queue (or write) one analysed frame; ``picture``: the annotated frame when already drawn."""
        import queue

        if self.error is not None:
            raise VideoError(self.error)
        if self._encoder is None:
            h, w = result.image.shape[:2] if picture is None else picture.shape[:2]
            self._open(w, h, result.timestamp)
        if self._queue is None:
            try:
                self._encode(result, picture)
            except Exception as exc:
                self.error = self._failed(exc)
                raise VideoError(self.error) from None
            return
        while True:
            try:
                self._queue.put((result, picture), timeout=0.1)
                return
            except queue.Full:
                if self.error is not None:
                    raise VideoError(self.error) from None

    def close(self) -> None:
        """Write what is queued and finish the file (check ``error`` afterwards). The file is
        finished even when this is interrupted: an unfinished mp4 does not play."""
        try:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join()
                self._thread = None
        finally:
            if self._thread is not None:     # interrupted while waiting: the thread must end before the file
                self._stop_thread()
            if self._encoder is not None:
                encoder, self._encoder = self._encoder, None
                try:
                    encoder.close()
                except Exception as exc:
                    self.error = self.error or self._failed(exc)

    def _stop_thread(self) -> None:
        while self._thread.is_alive():
            try:
                self._queue.put(None, timeout=0.1)
            except Exception:  # queue.Full: the thread is still encoding
                pass
            self._thread.join(timeout=0.1)
        self._thread = None


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


def check_outputs(outputs: VideoOutputs, source=None) -> None:
    """Raise ``VideoError`` for an output that cannot be written, without creating anything, so a
    command fails before loading models or reading the video: a folder given for a file, a wrong
    suffix (annotated video: .mp4/.m4v/.mov/.mkv/.webm/.avi; summary: .json; plot: .png/.svg/.pdf), a place
    that cannot be written to, an output that is the input video ``source`` (through symlinks and
    other spellings), or two outputs that are one file."""
    from emolens.draw import PLOT_SUFFIXES
    from emolens.output_paths import OutputPathError, check_distinct, check_output_file

    named = [(outputs.csv, "CSV file (--csv)", None), (outputs.jsonl, "JSON Lines file (--jsonl)", None),
             (outputs.video, "annotated video (--out)", ANNOTATED_FORMATS),
             (outputs.summary_json, "summary (--summary-json)", (".json",)),
             (outputs.plot, "timeline plot (--plot)", PLOT_SUFFIXES)]
    inputs = []
    if isinstance(source, (str, os.PathLike)) and os.fspath(source) and os.path.isfile(source):
        inputs.append((source, "input video"))
    for path, what, _ in named:
        if path is not None and os.fspath(path) == "":
            raise VideoError(f"the {what} is an empty path (an unset shell variable?); give a file name")
    try:
        check_distinct(inputs, [(path, what) for path, what, _ in named])
        for path, what, suffixes in named:
            if path is not None:
                check_output_file(path, what, suffixes)
    except OutputPathError as exc:
        raise VideoError(str(exc)) from None
    fmt = None if outputs.video is None else ANNOTATED_FORMATS.get(Path(outputs.video).suffix.lower())
    if fmt is not None:
        try:
            require_av(outputs.video, fmt)
        except EncodingError as exc:
            raise VideoError(str(exc)) from None
