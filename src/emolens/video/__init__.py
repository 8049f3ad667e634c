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
are kept. Outputs are checked before the run (never onto the input video or onto each
other, only where they can be written); Ctrl-C and SIGTERM stop a run with its outputs
finalised, and signals during the finalisation are ignored.

Python API::

    from emolens import Recognizer
    for result in Recognizer().stream("clip.mp4"):          # or 0 for the first camera
        for face in result.faces:
            print(result.index, result.timestamp, face.track_id, face.emotion, face.scores["happy"])

Modules: ``sources`` (files, cameras, in-memory frames), ``tracking`` (``FaceTracker``,
smoothing, ``stream``), ``summary`` (per-track statistics, timeline), ``outputs`` (CSV,
JSON Lines, annotated video, window), ``encoding`` (the annotated video's H.264/VP9 and
the source's audio, with PyAV) and ``run`` (``run_video``). Everything is importable
from ``emolens.video`` itself.
"""

from emolens.video.encoding import ANNOTATED_FORMATS, VideoEncoder, VideoFormat
from emolens.video.outputs import (CSV_COLUMNS, AnnotatedVideoWriter, CsvWriter, Display, JsonlWriter,
                                   VideoOutputs, annotate_frame, audio_source, check_outputs, face_tag, gui_problem)
from emolens.video.run import StopSignals, run_video
from emolens.video.sources import (DEFAULT_FPS, Camera, Frame, FrameIterable, FrameSource, LiveSource, VideoError,
                                   VideoFile, open_source)
from emolens.video.summary import Timeline, TrackStats, VideoSummary
from emolens.video.tracking import (DEFAULT_DETECT_EVERY, DEFAULT_HALF_LIFE, DEFAULT_IOU, DEFAULT_MAX_MISSED,
                                    DEFAULT_MIN_SIMILARITY, EmaSmoother, FaceTracker, FrameResult, Track, TrackedFace,
                                    box_iou, drop_nested, ema_alpha, greedy_match, stream)

__all__ = [
    "ANNOTATED_FORMATS", "CSV_COLUMNS", "DEFAULT_DETECT_EVERY", "DEFAULT_FPS", "DEFAULT_HALF_LIFE", "DEFAULT_IOU",
    "DEFAULT_MAX_MISSED", "DEFAULT_MIN_SIMILARITY", "AnnotatedVideoWriter", "Camera", "CsvWriter", "Display",
    "EmaSmoother", "FaceTracker", "Frame", "FrameIterable", "FrameResult", "FrameSource", "JsonlWriter", "LiveSource",
    "StopSignals", "Timeline", "Track", "TrackStats", "TrackedFace", "VideoEncoder", "VideoError", "VideoFile",
    "VideoFormat", "VideoOutputs", "VideoSummary",
    "annotate_frame", "audio_source", "box_iou", "check_outputs", "drop_nested", "ema_alpha", "face_tag",
    "gui_problem", "greedy_match", "open_source", "run_video", "stream",
]
