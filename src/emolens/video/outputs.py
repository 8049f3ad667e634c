"""Where a video run writes: CSV, JSON Lines, the annotated video, the on-screen window."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emolens.emotions import EMOTIONS
from emolens.file_names import OpenCVPath
from emolens.video.sources import VideoError, _quiet_opencv
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
        self._suffix = suffix
        self.fps = float(fps)
        self._writer = None
        self.frames = 0
        self.error: str | None = None
        self._queue = queue.Queue(maxsize=max(1, depth)) if threaded else None
        self._thread: threading.Thread | None = None
        self._alias: OpenCVPath | None = None

    def _open(self, width: int, height: int) -> None:
        try:
            self._alias = OpenCVPath(self.path, self._suffix)
        except OSError:
            raise VideoError(f"{self.path}: OpenCV cannot write a file whose name is not valid UTF-8; choose "
                             "another name") from None
        with _quiet_opencv():
            self._writer = cv2.VideoWriter(self._alias.path, cv2.VideoWriter_fourcc(*self.fourcc), self.fps,
                                           (width, height))
        if not self._writer.isOpened():
            self._writer = None
            self._alias.close()
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
        """Write what is queued and finalise the file (check ``error`` afterwards). The file is
        finalised even when this is interrupted: an unfinalised mp4 does not play."""
        try:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join()
                self._thread = None
        finally:
            if self._thread is not None:     # interrupted while waiting: the thread must end before release
                self._stop_thread()
            if self._writer is not None:
                self._writer.release()
                self._writer = None
            if self._alias is not None:
                self._alias.close()

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
    suffix (annotated video: .mp4/.mov/.avi/.mkv; summary: .json; plot: .png/.svg/.pdf), a place
    that cannot be written to, an output that is the input video ``source`` (through symlinks and
    other spellings), or two outputs that are one file."""
    from emolens.draw import PLOT_SUFFIXES
    from emolens.output_paths import OutputPathError, check_distinct, check_output_file

    named = [(outputs.csv, "CSV file (--csv)", None), (outputs.jsonl, "JSON Lines file (--jsonl)", None),
             (outputs.video, "annotated video (--out)", ANNOTATED_FOURCC),
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
