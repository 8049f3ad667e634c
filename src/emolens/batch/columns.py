"""The columns of a batch's results, and the rows made from a photo's or a video frame's faces.

``faces/`` (one row per face per photo or analysed video frame):

===================  ==========  ===========================================================
column               type        meaning
===================  ==========  ===========================================================
source               string      the input file (absolute path)
kind                 string      "photo" or "video"
frame                int64       video: frame number (0-based, every decoded frame counted,
                                 as ``emolens video``); photo: 0
time_s               float64     video: seconds from the start (container timestamps); photo: null
face                 int32       photo: the face's number in the picture (1 = largest, as
                                 ``emolens predict``); video: null
track_id             int32       video: the face's track, one id while it stays on screen (across
                                 segments too); photo: null
person               int32       video: the person the track belongs to (face descriptors; null
                                 until the face was seen well enough); photo: null
shot                 int32       video: shot number (0 from the start, +1 at every cut); photo: null
x, y, w, h           int32       the face's box in the file's pixels
emotion              string      top emotion (video: of the smoothed scores, as ``video --csv``)
score_<emotion>      float32     7 probabilities summing to 1 (video: smoothed over time)
intensity_<emotion>  float32     7 intensities 0..1 (video: smoothed)
raw_emotion          string      video: top emotion of this frame alone; photo: = emotion
raw_score_<emotion>  float32     video: this frame's own scores; photo: = score_<emotion>
raw_intensity_<e.>   float32     video: this frame's own intensities; photo: = intensity_<e.>
aligned              bool        the crop was aligned by the 68 landmarks (false: box crop)
detected             bool        video: the detector found the box on this frame (false:
                                 followed by its landmarks); photo: true
detection_score      float32     the detector's confidence
yaw, pitch, roll     float32     head pose in degrees (null: no landmarks that fit)
frontal              bool        |yaw| <= 30 degrees (what the summaries count)
model                string      the model's name and a hash of its file
===================  ==========  ===========================================================

``inputs.parquet``: one row per input (see ``INPUT_FIELDS``); ``summary.csv``: one row per
photo, per video track and per video person (see ``SUMMARY_FIELDS``).
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pyarrow as pa

from emolens.emotions import EMOTIONS

SCORE_COLUMNS = [f"score_{e}" for e in EMOTIONS]
INTENSITY_COLUMNS = [f"intensity_{e}" for e in EMOTIONS]
RAW_SCORE_COLUMNS = [f"raw_score_{e}" for e in EMOTIONS]
RAW_INTENSITY_COLUMNS = [f"raw_intensity_{e}" for e in EMOTIONS]

FACES_SCHEMA = pa.schema(
    [("source", pa.string()), ("kind", pa.string()), ("frame", pa.int64()), ("time_s", pa.float64()),
     ("face", pa.int32()), ("track_id", pa.int32()), ("person", pa.int32()), ("shot", pa.int32()),
     ("x", pa.int32()), ("y", pa.int32()), ("w", pa.int32()), ("h", pa.int32()), ("emotion", pa.string())]
    + [(c, pa.float32()) for c in SCORE_COLUMNS + INTENSITY_COLUMNS]
    + [("raw_emotion", pa.string())]
    + [(c, pa.float32()) for c in RAW_SCORE_COLUMNS + RAW_INTENSITY_COLUMNS]
    + [("aligned", pa.bool_()), ("detected", pa.bool_()), ("detection_score", pa.float32()),
       ("yaw", pa.float32()), ("pitch", pa.float32()), ("roll", pa.float32()), ("frontal", pa.bool_()),
       ("model", pa.string())])

# A video segment before stitching: local track and person ids, raw values at full precision
# (the scores are smoothed once the segments are joined).
SEGMENT_SCHEMA = pa.schema(
    [("frame", pa.int64()), ("time_s", pa.float64()), ("track", pa.int32()), ("person", pa.int32()),
     ("shot", pa.int32()), ("x", pa.int32()), ("y", pa.int32()), ("w", pa.int32()), ("h", pa.int32()),
     ("raw_emotion", pa.string())]
    + [(c, pa.float64()) for c in RAW_SCORE_COLUMNS + RAW_INTENSITY_COLUMNS]
    + [("aligned", pa.bool_()), ("detected", pa.bool_()), ("detection_score", pa.float64()),
       ("yaw", pa.float64()), ("pitch", pa.float64()), ("roll", pa.float64()), ("frontal", pa.bool_())])

INPUTS_SCHEMA = pa.schema([
    ("source", pa.string()), ("kind", pa.string()), ("size", pa.int64()), ("mtime", pa.timestamp("us", tz="UTC")),
    ("frames", pa.int64()), ("faces", pa.int64()), ("status", pa.string()), ("message", pa.string()),
    ("seconds", pa.float64()), ("worker", pa.string()), ("segments", pa.int32()), ("model", pa.string()),
    ("unit", pa.string())])
INPUT_FIELDS = INPUTS_SCHEMA.names

SUMMARY_FIELDS = (["source", "kind", "level", "track_id", "person", "shot", "frames", "first_frame", "last_frame",
                   "start_s", "end_s", "seconds_on_screen", "frames_counted", "frames_left_out", "dominant"]
                  + [f"share_{e}" for e in EMOTIONS] + [f"mean_score_{e}" for e in EMOTIONS]
                  + [f"mean_intensity_{e}" for e in EMOTIONS])


def source_name(path: str) -> str:
    """A path as Parquet can store it (UTF-8): bytes that are not UTF-8 shown as ``\\xNN``."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path).decode("utf-8", "backslashreplace")


def _pose(pose) -> tuple:
    return (None, None, None) if pose is None else (pose.yaw, pose.pitch, pose.roll)


def photo_rows(source: str, faces: list, model_id: str) -> list[dict]:
    """Rows for a photo's ``emolens.recognize.Face`` list (in the file's pixels, as predict gives them)."""
    rows = []
    for n, face in enumerate(faces, 1):
        scores = [face.scores[e] for e in EMOTIONS]
        intensity = [face.intensity[e] for e in EMOTIONS]
        yaw, pitch, roll = _pose(face.pose)
        rows.append({
            "source": source, "kind": "photo", "frame": 0, "time_s": None, "face": n, "track_id": None,
            "person": None, "shot": None, "x": face.box[0], "y": face.box[1], "w": face.box[2], "h": face.box[3],
            "emotion": face.emotion, **dict(zip(SCORE_COLUMNS, scores)), **dict(zip(INTENSITY_COLUMNS, intensity)),
            "raw_emotion": face.emotion, **dict(zip(RAW_SCORE_COLUMNS, scores)),
            **dict(zip(RAW_INTENSITY_COLUMNS, intensity)), "aligned": bool(face.aligned), "detected": True,
            "detection_score": face.detection_score, "yaw": yaw, "pitch": pitch, "roll": roll,
            "frontal": bool(face.frontal), "model": model_id})
    return rows


def segment_rows(result) -> list[dict]:
    """Rows for one analysed frame (``emolens.video.FrameResult``) of a segment, local ids and raw values."""
    rows = []
    for f in result.faces:
        yaw, pitch, roll = _pose(f.pose)
        rows.append({
            "frame": result.index, "time_s": result.timestamp, "track": f.track_id, "person": f.person,
            "shot": f.shot, "x": f.box[0], "y": f.box[1], "w": f.box[2], "h": f.box[3], "raw_emotion": f.raw_emotion,
            **{c: f.raw_scores[e] for c, e in zip(RAW_SCORE_COLUMNS, EMOTIONS)},
            **{c: f.raw_intensity[e] for c, e in zip(RAW_INTENSITY_COLUMNS, EMOTIONS)},
            "aligned": bool(f.aligned), "detected": bool(f.detected), "detection_score": f.detection_score,
            "yaw": yaw, "pitch": pitch, "roll": roll, "frontal": bool(f.frontal)})
    return rows


def counted_face(scores: np.ndarray, intensity: np.ndarray, shot: int, person: int | None):
    """The little a ``emolens.video.summary`` statistic needs of a face: scores, intensities, top label."""
    return SimpleNamespace(scores=dict(zip(EMOTIONS, scores.tolist())), intensity=dict(zip(EMOTIONS, intensity.tolist())),
                           emotion=EMOTIONS[int(np.argmax(scores))], shot=shot, person=person)


def summary_row(source: str, kind: str, level: str, stats: dict, **extra) -> dict:
    """A ``summary.csv`` row from an ``emotion_dict()``-style mapping (shares, means, dominant)."""
    row = {k: None for k in SUMMARY_FIELDS}
    row.update(source=source, kind=kind, level=level, **extra)
    for key in ("frames_counted", "frames_left_out", "dominant"):
        row[key] = stats.get(key)
    for e in EMOTIONS:
        row[f"share_{e}"] = (stats.get("shares") or {}).get(e)
        row[f"mean_score_{e}"] = (stats.get("mean_scores") or {}).get(e)
        row[f"mean_intensity_{e}"] = (stats.get("mean_intensity") or {}).get(e)
    return row


def table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema)
