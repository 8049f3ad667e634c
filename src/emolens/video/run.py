"""``run_video``: one source through the tracker into the chosen outputs, with a summary."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
import signal
import time
from typing import Callable

import cv2

from emolens.file_names import printable
from emolens.stop_signals import SignalTakeover
from emolens.video.outputs import (AnnotatedVideoWriter, CsvWriter, Display, JsonlWriter, VideoOutputs, _output_path,
                                   annotate_frame, audio_source, check_outputs, write_failed)
from emolens.video.sources import FrameSource, VideoError, VideoFile, open_source
from emolens.video.summary import Timeline, VideoSummary
from emolens.video.tracking import FaceTracker, FrameResult


class StopSignals(SignalTakeover):
    """While a run is on: Ctrl-C (SIGINT) and SIGTERM stop it cleanly, and never its finishing.

    The handler only takes note (``requested``: the first signal's number; ``ignored``: how
    many came after it) and asks the source to stop (``FrameSource.request_stop``); the run
    loop ends after the frame in hand. Nothing is raised from the handler: an exception
    landing at a random point can leave a lock or a queue of the writer thread in a state
    that hangs the finalisation, or end the process with the mp4 unfinished. Only signals
    whose handlers are Python's defaults are taken over, only in the main thread (where
    signals are delivered), and the previous handlers come back on exit.
    """

    def __init__(self):
        super().__init__()
        self.requested: int | None = None
        self.ignored = 0
        self.source: FrameSource | None = None

    def _handle(self, signum, frame) -> None:
        if self.requested is not None:
            self.ignored += 1
            return
        self.requested = signum
        if self.source is not None:
            self.source.request_stop()

    @property
    def name(self) -> str | None:
        return None if self.requested is None else signal.Signals(self.requested).name


def run_video(recognizer, source, outputs: VideoOutputs | None = None, show: bool = False,
              on_frame: Callable[[FrameResult, VideoSummary], object] | None = None,
              on_start: Callable[[FrameSource], None] | None = None, every: int = 1, realtime: bool = False,
              stop_signals: StopSignals | None = None, all_poses: bool = False, **tracking) -> VideoSummary:
    """Analyse a whole source and write the outputs as frames are processed.

    ``tracking``: ``detect_every``, ``half_life``, ``max_missed``, ``iou_threshold``, ``shots``,
    ``persons`` (see ``FaceTracker``). ``all_poses``: the summary and the plot count every face,
    not only frontal ones. ``on_frame(result, summary)`` runs after each frame (e.g. a
    progress bar). Ctrl-C and SIGTERM (in the main thread; or ``KeyboardInterrupt`` raised
    by a callback) end the run cleanly after the frame in hand: the outputs hold every
    frame processed so far and the summary has ``interrupted=True`` (``interrupted_by``
    says which signal); further signals while the outputs are finalised are ignored (see
    ``StopSignals``; pass one already entered as ``stop_signals`` to keep ignoring them
    after the run, e.g. while a command prints its report). Raises ``VideoError`` for an
    unusable input or output, before anything is written; a write that fails during the
    run (a full disk) ends it with ``summary.error``.
    """
    outputs = outputs or VideoOutputs()
    with contextlib.nullcontext(stop_signals) if stop_signals is not None else StopSignals() as signals:
        check_outputs(outputs, None if isinstance(source, FrameSource) else source)
        src = open_source(source, every=every, realtime=realtime)
        signals.source = src
        summary = VideoSummary(source=src.name, fps=src.fps, all_poses=all_poses)
        writers: list = []
        video_writer = display = None
        try:
            tracker = FaceTracker(recognizer, **tracking)
            if outputs.csv:
                writers.append(CsvWriter(outputs.csv))
            if outputs.jsonl:
                writers.append(JsonlWriter(outputs.jsonl))
            if outputs.video:
                video_writer = AnnotatedVideoWriter(outputs.video, src.fps / src.every, audio_from=audio_source(src))
            summary_path = _output_path(outputs.summary_json, "summary") if outputs.summary_json else None
            plot_path = _output_path(outputs.plot, "timeline plot") if outputs.plot else None
            timeline = Timeline(all_poses=all_poses) if plot_path else None
            if show:
                display = Display(f"emolens - {printable(src.name)}")
        except BaseException:
            for w in writers:
                _close(w, summary)
            src.close()
            raise
        start = time.perf_counter()
        panel_sides: dict = {}
        try:
            if on_start is not None:
                on_start(src)
            for frame in src:
                if signals.requested is not None:
                    break
                result = tracker.process(frame)
                summary.add(result)
                if timeline is not None:
                    timeline.add(result)
                for w in writers:
                    w.write(result)
                # else drawn by the writer thread
                picture = annotate_frame(result, panel_sides) if display is not None else None
                if video_writer is not None:
                    video_writer.write(result, picture)
                summary.seconds = time.perf_counter() - start
                if on_frame is not None:
                    on_frame(result, summary)
                if display is not None and not display.show(picture):
                    summary.stopped = True
                    break
                if signals.requested is not None:
                    break
        except KeyboardInterrupt:       # raised by a callback or a frame iterable
            summary.interrupted, summary.interrupted_by = True, "SIGINT"
        except VideoError as exc:
            summary.error = str(exc)
        except cv2.error as exc:
            summary.error = f"{src.name}: OpenCV failed while reading frame {summary.last_index + 1} ({exc}); " \
                            "the file may be damaged; re-encode it"
        finally:
            if signals.requested is not None:
                summary.interrupted, summary.interrupted_by = True, signals.name
            summary.seconds = time.perf_counter() - start
            summary.dropped = max(summary.dropped, src.dropped)
            for w in writers:
                _close(w, summary)
            if video_writer is not None:
                _close(video_writer, summary)
                summary.error = summary.error or video_writer.error
                if video_writer.warning:
                    summary.warnings.append(video_writer.warning)
            if display is not None:
                display.close()
            src.close()
        if isinstance(src, VideoFile) and src.truncated and not (summary.interrupted or summary.stopped
                                                                   or summary.error):
            summary.warnings.append(f"{src.name}: the video ended at frame {src.decoded} of the "
                                    f"{src.frame_count} it announces; the file may be cut short or damaged")
        if summary_path is not None:
            try:
                summary_path.write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
            except OSError as exc:
                summary.error = summary.error or str(write_failed(summary_path, "summary", exc))
        if plot_path is not None:
            from emolens.draw import plot_timeline

            try:
                cut_times = [c.timestamp for c in tracker.shots.changes]
                plot_timeline(timeline.series(), plot_path, cuts=cut_times,
                              title=f"{printable(Path(src.name).name)}: smoothed emotion scores per person")
            except OSError as exc:
                summary.error = summary.error or str(write_failed(plot_path, "timeline plot", exc))
    return summary


def _close(writer, summary: VideoSummary) -> None:
    """Close one output; its failure is the run's error (the first one kept), never a reason to skip the others."""
    try:
        writer.close()
    except VideoError as exc:
        summary.error = summary.error or str(exc)
