"""The functions Dask workers run. Each returns a small record and writes its rows as whole
Parquet files under ``.emolens/tmp``; the client renames the files of the one result it
receives into ``faces/`` (names fixed by the unit), so a task run twice (its worker died)
or cancelled (Ctrl-C) never leaves a part of its own in ``faces/``.

One ``Recognizer`` per worker process (and thread), built on its first task and kept
(``worker_recognizer``): the models load once per worker, not once per task.

- ``analyse_photos``: a chunk of photos through ``emolens.predict.predict_files`` (the
  function behind ``emolens predict``) into one part.
- ``plan_video_task``: a video opened as ``emolens video`` opens it, its frames listed and cut.
- ``analyse_segment``: one segment through ``FaceTracker`` (as ``emolens video``), staged.
- ``finalise_video``: the staged segments joined (``stitching``) into the video's parts.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from emolens.batch.columns import FACES_SCHEMA, SEGMENT_SCHEMA, photo_rows, segment_rows, source_name, summary_row, table
from emolens.batch.storage import Layout, write_bytes_atomic, write_parquet_atomic

_RECOGNIZERS: dict = {}
_LOADS = 0      # recognizers built in this process (the test checks it stays at 1 per worker)


def worker_recognizer(options):
    """This worker's ``Recognizer`` for these options, built once."""
    global _LOADS
    key = (options.key(), threading.get_ident())
    recognizer = _RECOGNIZERS.get(key)
    if recognizer is None:
        import cv2

        from emolens.recognize import Recognizer

        cv2.setNumThreads(1)            # one worker per core: no thread pools of its own
        recognizer = _RECOGNIZERS[key] = Recognizer(**options.recognizer_kwargs())
        _LOADS += 1
    return recognizer


def worker_name() -> str:
    """The Dask worker's address, or the process id outside a worker."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


def _worker_info() -> dict:
    return {"worker": worker_name(), "loads": _LOADS}


def _ready_part(layout: Layout, name: str, rows: list[dict]) -> list[str]:
    """A part written whole under ``.emolens/tmp``: ``[its path, its name in faces/]``. The client
    renames it into ``faces/`` when it records the unit, so a task cancelled or repeated never
    puts a file there itself."""
    import uuid

    ready = layout.tmp / f"{name}.{uuid.uuid4().hex[:12]}.ready"
    write_parquet_atomic(ready, table(rows, FACES_SCHEMA), layout.tmp)
    return [str(ready), name]


def input_row(unit_key: str, inp, options, **values) -> dict:
    row = {"source": source_name(inp.path), "kind": inp.kind, "size": inp.size if inp.size >= 0 else None,
           "mtime_ns": inp.mtime_ns if inp.mtime_ns >= 0 else None, "frames": 0, "faces": 0, "status": "ok",
           "message": None, "seconds": 0.0, "worker": None, "segments": None, "model": options.model_id,
           "unit": unit_key}
    row.update(values)
    if row["message"] is not None:          # it names the file: a name that is not UTF-8 as source_name shows it
        row["message"] = source_name(row["message"])
    return row


def error_record(unit, options, message: str, worker: str | None = None) -> dict:
    """The ledger record of a unit whose inputs all failed with ``message``."""
    return {"kind": unit.kind, "ready": [], "summary": [],
            "inputs": [input_row(unit.key, inp, options, status="error", message=inp.error or message, worker=worker)
                       for inp in unit.inputs]}


# ---------------------------------------------------------------------------------------
# photos


def analyse_photos(unit, options, root: str) -> dict:
    """A chunk of photos -> one part ``faces/<unit>-<part>.parquet`` (part 0; a retry of the
    chunk's failed photos the next number); the ledger record."""
    from emolens.predict import predict_files
    from emolens.video.summary import EmotionSums

    layout = Layout(root)
    recognizer = worker_recognizer(options)
    worker = worker_name()
    rows, inputs, summary = [], [], []
    for inp in unit.inputs:
        start = time.perf_counter()
        result = next(predict_files(recognizer, [(inp.path, None)]))
        seconds = time.perf_counter() - start
        source = source_name(inp.path)
        rows.extend(photo_rows(source, result.faces, options.model_id))
        inputs.append(input_row(unit.key, inp, options, frames=1, faces=len(result.faces),
                                status="ok" if result.error is None else "error", message=result.error,
                                seconds=round(seconds, 4), worker=worker))
        if result.error is None:
            sums = EmotionSums()
            for face in result.faces:
                sums.add_face(face, counted=face.frontal)
            summary.append(summary_row(source, "photo", "photo", sums.emotion_dict(), frames=len(result.faces)))
    # a retry of failed photos that found no faces (they failed again) adds no empty part
    ready = [_ready_part(layout, layout.part(unit.key, unit.part).name, rows)] if rows or not unit.part else []
    return {"kind": "photos", "ready": ready,
            "inputs": inputs, "summary": summary,
            "frames": len(unit.inputs), **_worker_info()}


# ---------------------------------------------------------------------------------------
# videos


def plan_video_task(unit, options, segment_seconds: float) -> dict:
    """``{"plan": VideoPlan}``, or ``{"error": message}`` for a video that cannot be read."""
    from emolens.batch.segments import plan_video
    from emolens.video.sources import VideoError

    path = unit.inputs[0].path
    try:
        return {"plan": plan_video(path, segment_seconds, options.every, options.detect_every), **_worker_info()}
    except VideoError as exc:
        return {"error": str(exc), **_worker_info()}
    except Exception as exc:  # a library failing on odd data must not stop the batch
        return {"error": f"{path}: could not be opened ({type(exc).__name__}: {exc}); re-encode it, e.g. "
                         "`ffmpeg -i INPUT -c:v libx264 fixed.mp4`", **_worker_info()}


def _segment_frames(path: str, start: int, stop: int | None, times, offset: int, every: int):
    from emolens.batch.segments import read_segment
    from emolens.video.sources import open_source

    if times is None:       # read whole, exactly as emolens video reads it
        source = open_source(path, every=every)
        try:
            for frame in source:
                yield False, frame
        finally:
            source.close()
    else:
        yield from read_segment(path, start, stop, times, every, offset)


def analyse_segment(path: str, number: int, start: int, stop: int | None, times, offset: int, options,
                    staging: str, tmp: str) -> dict:
    """One segment of a video tracked as ``emolens video`` tracks it; its rows staged (local ids,
    raw values) in ``staging/seg-<n>.parquet`` and what joining needs in ``seg-<n>.json``.
    A segment already staged (a rerun, or this task run again) is not analysed again."""
    import cv2

    from emolens.video.sources import VideoError
    from emolens.video.tracking import FaceTracker

    staging_dir = Path(staging)
    meta_path = staging_dir / f"seg-{number:05d}.json"
    rows_path = staging_dir / f"seg-{number:05d}.parquet"
    if meta_path.is_file() and rows_path.is_file():
        try:
            return {**json.loads(meta_path.read_text()), "resumed": True, **_worker_info()}
        except (OSError, ValueError):
            pass
    recognizer = worker_recognizer(options)
    tracker = FaceTracker(recognizer, **options.tracking_kwargs())
    rows: list[dict] = []
    first_seen: dict[str, dict] = {}
    track_person: dict[str, int | None] = {}
    tracks: set[int] = set()
    frames, last_frame, last_time, cut_at_start, error = 0, -1, 0.0, False, None
    started = time.perf_counter()
    try:
        for warm_up, frame in _segment_frames(path, start, stop, times, offset, options.every):
            if warm_up:                     # the frame before the segment: for the shot detector only
                tracker.shots.update(frame.image, frame.index, frame.timestamp)
                continue
            ordinal = tracker.count
            result = tracker.process(frame)
            if frames == 0:
                cut_at_start = bool(result.cut)
            frames += 1
            last_frame, last_time = result.index, result.timestamp
            rows.extend(segment_rows(result))
            for face in result.faces:
                key = str(face.track_id)
                tracks.add(face.track_id)
                if key not in first_seen and ordinal <= options.max_missed:
                    first_seen[key] = {"ordinal": ordinal, "box": [int(v) for v in face.box], "shot": face.shot}
                if face.person is not None:
                    track_person[key] = face.person
    except VideoError as exc:
        error = str(exc)
    except cv2.error as exc:
        error = f"{path}: OpenCV failed after frame {last_frame} ({exc}); the file may be damaged; re-encode it"
    except MemoryError:
        error = f"{path}: out of memory while analysing segment {number}; give the workers more memory"
    persons = {}
    if tracker.persons is not None:
        persons = {str(p.id): [p.total.tolist(), p.count] for p in tracker.persons.persons
                   if p.total is not None}
    meta = {"number": number, "start": start, "stop": stop, "frames": frames, "last_frame": last_frame,
            "last_time": last_time, "rows": rows_path.name, "cut_at_start": cut_at_start,
            "final_shot": tracker.shots.shot, "tracks": sorted(tracks), "first_seen": first_seen,
            "track_person": track_person, "persons": persons, "error": error,
            "end_tracks": [[t.id, [int(v) for v in t.box], tracker.count - 1 - t.last_seen] for t in tracker.tracks],
            "seconds": round(time.perf_counter() - started, 4), "worker": worker_name()}
    staging_dir.mkdir(parents=True, exist_ok=True)
    write_parquet_atomic(rows_path, table(rows, SEGMENT_SCHEMA), Path(tmp))
    write_bytes_atomic(meta_path, json.dumps(meta).encode(), Path(tmp))
    return {**meta, **_worker_info()}


def finalise_video(unit, plan, options, root: str, staging: str, *segments: dict) -> dict:
    """A video's staged segments joined, in order, into its parts ``faces/<unit>-<n>.parquet``
    (one per segment, handed to the client to rename into place); the ledger record."""
    import pyarrow.parquet as pq

    from emolens.batch.stitching import VideoStitcher

    layout = Layout(root)
    inp = unit.inputs[0]
    source = source_name(inp.path)
    stitcher = VideoStitcher(source, options.model_id, plan.fps, options.half_life, options.max_missed,
                             options.same_person)
    ready, faces = [], 0
    segments = sorted(segments, key=lambda s: s["number"])
    for segment in segments:
        rows = pq.read_table(Path(staging) / segment["rows"]).to_pylist()
        out = stitcher.add(segment, rows)
        faces += len(out)
        ready.append(_ready_part(layout, layout.part(unit.key, segment["number"]).name, out))
    errors = [s["error"] for s in segments if s.get("error")]
    workers = sorted({s["worker"] for s in segments})
    row = input_row(unit.key, inp, options, frames=stitcher.frames, faces=faces,
                    status="error" if errors else "ok", message="; ".join(errors) if errors else plan.note,
                    seconds=round(sum(s["seconds"] for s in segments), 4), worker=", ".join(workers),
                    segments=len(segments))
    return {"kind": "video", "ready": ready, "inputs": [row], "summary": stitcher.summary_rows(),
            "frames": 0, **_worker_info()}
