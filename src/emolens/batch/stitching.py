"""A video's segments joined into one run: track ids, person ids, shots and smoothing carried
across segment boundaries, one segment at a time (memory flat in the video's length).

Each segment was tracked on its own (``FaceTracker``), starting with a detection on its
first frame; its rows hold local track and person ids and the model's raw values. Joining:

- **Tracks.** The tracks still open at the end of segment k are matched to the tracks that
  segment k+1 found in its first frames, by their boxes, the way the tracker matches a
  detection to a track (``emolens.video.greedy_match``), unless a cut starts segment k+1 or
  the face was gone longer than ``max_missed`` frames. A matched track keeps its id; the
  others get the next ids, in order of appearance, as one run would number them.
- **Persons.** A segment's person inherits the id of a matched track's person; otherwise its
  face descriptors (their sum, from the segment) are compared with the persons seen so far
  (``emolens.people.persons``, same threshold) and join the nearest close enough, or start a
  new person — never the person of a face seen on one frame with it.
- **Shots** are numbered on: a segment that does not start with a cut continues the shot.
- **Smoothing** is done here, not in the segments: the raw scores of each joined track go
  through the same exponential smoothing as ``emolens video``, so a face crossing a boundary
  is smoothed as in one run (its state is the only thing kept from segment to segment).
"""

from __future__ import annotations

import numpy as np

from emolens.batch.columns import (INTENSITY_COLUMNS, RAW_INTENSITY_COLUMNS, RAW_SCORE_COLUMNS, SCORE_COLUMNS,
                                   counted_face, summary_row)
from emolens.emotions import EMOTIONS
from emolens.people.persons import SAME_PERSON, PersonRegistry
from emolens.video.summary import TrackStats, VideoSummary
from emolens.video.tracking import DEFAULT_IOU, EmaSmoother, greedy_match


class VideoStitcher:
    """Feed the segments in order with ``add(segment, rows)``; ``summary_rows()`` at the end."""

    def __init__(self, source: str, model_id: str, fps: float, half_life: float, max_missed: int,
                 same_person: float = SAME_PERSON):
        self.source = source
        self.model_id = model_id
        self.half_life = float(half_life)
        self.max_missed = int(max_missed)
        self.registry = PersonRegistry(same_person)
        self.next_track = 1
        self.shot_base = 0
        self.open_tracks: list[tuple[int, tuple, int]] = []   # (global id, last box, frames unseen) at the last end
        self.smoothers: dict[int, tuple[EmaSmoother, EmaSmoother]] = {}
        self.track_person: dict[int, int] = {}
        self.summary = VideoSummary(source=source, fps=fps)
        self.frames = 0

    def _track_ids(self, segment: dict) -> dict[int, int]:
        mapping: dict[int, int] = {}
        if self.open_tracks and not segment["cut_at_start"]:
            candidates = [(int(t), first) for t, first in segment["first_seen"].items() if first["shot"] == 0]
            ends = self.open_tracks
            pairs = greedy_match([e[1] for e in ends], [c[1]["box"] for c in candidates], DEFAULT_IOU)
            for ei, ci in pairs:
                if ends[ei][2] + candidates[ci][1]["ordinal"] <= self.max_missed:
                    mapping[candidates[ci][0]] = ends[ei][0]
        for local in sorted(int(t) for t in segment["tracks"]):
            if local not in mapping:
                mapping[local] = self.next_track
                self.next_track += 1
        return mapping

    def _person_ids(self, segment: dict, tracks: dict[int, int], rows: list[dict]) -> dict[int, int]:
        mapping: dict[int, int] = {}
        track_person = {int(t): p for t, p in segment["track_person"].items()}
        on_frame: dict[int, set] = {}
        for row in rows:
            if row["person"] is not None:
                on_frame.setdefault(row["frame"], set()).add(int(row["person"]))
        together: dict[int, set] = {}       # local persons seen on one frame with each: other people
        for persons in on_frame.values():
            for p in persons:
                together.setdefault(p, set()).update(persons - {p})
        for local in sorted(int(p) for p in segment["persons"]):
            total, count = segment["persons"][str(local)]
            total = np.asarray(total, dtype=np.float64)
            exclude = {mapping[q] for q in together.get(local, ()) if q in mapping}
            gid = next((self.track_person[tracks[t]] for t, p in track_person.items()
                        if p == local and tracks.get(t) in self.track_person), None)
            if gid in exclude:
                gid = None
            if gid is None:
                person, distance = self.registry.nearest(total / count, exclude)
                if person is not None and distance < self.registry.threshold:
                    gid = person.id
            if gid is None:
                gid = self.registry.new_person(total, count)
            else:
                self.registry.persons[gid - 1].add(total, count)
            mapping[local] = gid
        for t, p in track_person.items():
            if p is not None and p in mapping:
                self.track_person[tracks[t]] = mapping[p]
        return mapping

    def add(self, segment: dict, rows: list[dict]) -> list[dict]:
        """The final ``faces/`` rows of one segment (its staged rows, sorted by frame and local track)."""
        tracks = self._track_ids(segment)
        persons = self._person_ids(segment, tracks, rows)
        out = []
        for row in rows:
            gid = tracks[row["track"]]
            smoothers = self.smoothers.get(gid)
            if smoothers is None:
                smoothers = self.smoothers[gid] = (EmaSmoother(self.half_life), EmaSmoother(self.half_life))
            raw_s = np.array([row[c] for c in RAW_SCORE_COLUMNS])
            raw_i = np.array([row[c] for c in RAW_INTENSITY_COLUMNS])
            s = smoothers[0].update(raw_s, row["time_s"])
            i = smoothers[1].update(raw_i, row["time_s"])
            person = persons.get(row["person"]) if row["person"] is not None else None
            shot = self.shot_base + row["shot"]
            stats = self.summary.tracks.get(gid)
            if stats is None:
                stats = self.summary.tracks[gid] = TrackStats(gid)
            stats.add(counted_face(s, i, shot, person), row["frame"], row["time_s"], counted=bool(row["frontal"]))
            out.append({
                "source": self.source, "kind": "video", "frame": row["frame"], "time_s": row["time_s"], "face": None,
                "track_id": gid, "person": person, "shot": shot,
                "x": row["x"], "y": row["y"], "w": row["w"], "h": row["h"], "emotion": EMOTIONS[int(np.argmax(s))],
                **dict(zip(SCORE_COLUMNS, s.tolist())), **dict(zip(INTENSITY_COLUMNS, i.tolist())),
                "raw_emotion": row["raw_emotion"], **{c: row[c] for c in RAW_SCORE_COLUMNS + RAW_INTENSITY_COLUMNS},
                "aligned": row["aligned"], "detected": row["detected"], "detection_score": row["detection_score"],
                "yaw": row["yaw"], "pitch": row["pitch"], "roll": row["roll"], "frontal": row["frontal"],
                "model": self.model_id})
        out.sort(key=lambda r: (r["frame"], r["track_id"]))
        self.frames += segment["frames"]
        self.summary.processed = self.frames
        if segment["frames"]:
            self.summary.duration = max(self.summary.duration, segment["last_time"])
            self.summary.last_index = max(self.summary.last_index, segment["last_frame"])
        self.open_tracks = [(tracks[int(t)], tuple(box), missed) for t, box, missed in segment["end_tracks"]]
        self.smoothers = {gid: self.smoothers[gid] for gid, _, _ in self.open_tracks if gid in self.smoothers}
        self.shot_base += segment["final_shot"]
        return out

    def summary_rows(self) -> list[dict]:
        """``summary.csv`` rows: per person (time on screen, shares, means), then per track."""
        frame_seconds = self.summary.frame_seconds
        rows = []
        for person in self.summary.persons():
            d = person.to_dict(frame_seconds)
            rows.append(summary_row(self.source, "video", "person", d, person=d["person"], frames=d["frames"],
                                    start_s=d["first_seen"], seconds_on_screen=d["seconds_on_screen"]))
        for stats in sorted(self.summary.tracks.values(), key=lambda s: s.track_id):
            d = stats.to_dict()
            rows.append(summary_row(self.source, "video", "track", d, track_id=d["track_id"], person=d["person"],
                                    shot=d["shot"], frames=d["frames"], first_frame=d["first_frame"],
                                    last_frame=d["last_frame"], start_s=d["start"], end_s=d["end"],
                                    seconds_on_screen=round(stats.seconds_on_screen(frame_seconds), 3)))
        return rows
