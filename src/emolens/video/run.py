"""``run_video``: one source through the tracker into the chosen outputs, with a summary."""

from __future__ import annotations

import json
import time
from typing import Callable

import cv2

from emolens.video.outputs import (AnnotatedVideoWriter, CsvWriter, Display, JsonlWriter, VideoOutputs, _output_path, 
                                   annotate_frame)
from emolens.video.sources import FrameSource, VideoError, VideoFile, open_source
from emolens.video.summary import Timeline, VideoSummary
from emolens.video.tracking import FaceTracker, FrameResult


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
