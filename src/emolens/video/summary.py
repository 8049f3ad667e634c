"""What a video run adds up: per-person and per-track statistics, the whole-video summary
and the bounded emotion timeline behind the plot.

Only frontal faces (``emolens.people.pose``) count towards the means and shares unless
``all_poses`` is set; the faces left out are counted and reported, never hidden.
A person is the unit: tracks live inside one shot, and the tracks a face descriptor
ties to one person are added up together (``PersonStats``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from emolens.emotions import EMOTIONS
from emolens.video.sources import DEFAULT_FPS
from emolens.video.tracking import FrameResult, TrackedFace


class EmotionSums:
    """Frames counted, frames left out (not frontal), and the sums behind means and shares."""

    def __init__(self):
        self.frames = 0             # frames the face was on screen (analysed frames)
        self.counted = 0            # of which counted in the means (frontal, or every pose)
        self.score_sum = np.zeros(len(EMOTIONS))
        self.intensity_sum = np.zeros(len(EMOTIONS))
        self.top_counts = np.zeros(len(EMOTIONS), dtype=np.int64)

    def add_face(self, face: TrackedFace, counted: bool) -> None:
        self.frames += 1
        if not counted:
            return
        self.counted += 1
        self.score_sum += [face.scores[e] for e in EMOTIONS]
        self.intensity_sum += [face.intensity[e] for e in EMOTIONS]
        self.top_counts[EMOTIONS.index(face.emotion)] += 1

    def merge(self, other: "EmotionSums") -> None:
        self.frames += other.frames
        self.counted += other.counted
        self.score_sum += other.score_sum
        self.intensity_sum += other.intensity_sum
        self.top_counts += other.top_counts

    def emotion_dict(self) -> dict:
        """dominant, mean scores, mean intensities and shares of time per top emotion (None: nothing counted)."""
        out = {"frames_counted": self.counted, "frames_left_out": self.frames - self.counted}
        if self.counted == 0:
            return {**out, "dominant": None, "mean_scores": None, "mean_intensity": None, "shares": None}
        n = self.counted
        mean = self.score_sum / n
        return {
            **out,
            "dominant": EMOTIONS[int(np.argmax(mean))],
            "mean_scores": {e: round(float(v), 4) for e, v in zip(EMOTIONS, mean)},
            "mean_intensity": {e: round(float(v), 4) for e, v in zip(EMOTIONS, self.intensity_sum / n)},
            "shares": {e: round(float(c) / n, 4) for e, c in zip(EMOTIONS, self.top_counts)},
        }


# A step between two frames of a track longer than this many times its shortest step is a gap
# (the face was missed for a while): only the shortest step is counted for the frame before it.
GAP_STEPS = 4.0


class TrackStats(EmotionSums):
    """Running per-track sums: frames, time span, shot, person, smoothed score and intensity sums, top-label counts.

    Time on screen is summed from the frames' own timestamps (each frame lasts until the track's
    next frame, gaps excepted), so a variable-frame-rate file or a camera that drops frames is
    measured in its own seconds, not in frames times a mean frame time."""

    def __init__(self, track_id: int):
        super().__init__()
        self.track_id = track_id
        self.first_frame = self.last_frame = -1
        self.start = self.end = 0.0
        self.shot = 0
        self.person: int | None = None
        self.seconds = 0.0                  # on screen, every frame but the last
        self.shortest_step: float | None = None

    def add(self, face: TrackedFace, index: int, timestamp: float, counted: bool = True) -> None:
        if self.frames == 0:
            self.first_frame, self.start, self.shot = index, timestamp, face.shot
        else:
            step = timestamp - self.end
            if step > 0:
                self.shortest_step = step if self.shortest_step is None else min(self.shortest_step, step)
                self.seconds += step if step <= GAP_STEPS * self.shortest_step else self.shortest_step
        self.last_frame, self.end = index, timestamp
        if face.person is not None:
            self.person = face.person
        self.add_face(face, counted)

    def seconds_on_screen(self, frame_seconds: float) -> float:
        """Time on screen; the last frame lasts the track's shortest step (one seen alone: ``frame_seconds``)."""
        return self.seconds + (self.shortest_step or frame_seconds) if self.frames else 0.0

    def to_dict(self) -> dict:
        return {
            "track_id": self.track_id,
            "person": self.person,
            "shot": self.shot,
            "frames": self.frames,
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            **self.emotion_dict(),
        }


class PersonStats(EmotionSums):
    """A person's tracks added up: time on screen, shots, shares of time per emotion, mean intensities."""

    def __init__(self, person: int, identified: bool):
        super().__init__()
        self.person = person
        self.identified = identified
        self.tracks: list[TrackStats] = []
        self.shots: set[int] = set()
        self.first_seen = float("inf")

    def add_track(self, track: TrackStats) -> None:
        self.tracks.append(track)
        self.shots.add(track.shot)
        self.first_seen = min(self.first_seen, track.start)
        self.merge(track)

    def seconds_on_screen(self, frame_seconds: float) -> float:
        return sum(t.seconds_on_screen(frame_seconds) for t in self.tracks)

    def to_dict(self, frame_seconds: float) -> dict:
        return {
            "person": self.person,
            "identified": self.identified,
            "seconds_on_screen": round(self.seconds_on_screen(frame_seconds), 3),
            "first_seen": round(self.first_seen, 3),
            "frames": self.frames,
            "tracks": sorted(t.track_id for t in self.tracks),
            "shots": sorted(self.shots),
            **self.emotion_dict(),
        }


@dataclass
class VideoSummary:
    """What a whole run saw: counts, timing, and ``TrackStats`` per track (see ``to_dict``)."""

    source: str
    fps: float = DEFAULT_FPS
    processed: int = 0
    with_faces: int = 0
    dropped: int = 0
    last_index: int = -1
    duration: float = 0.0
    seconds: float = 0.0            # wall-clock time of the run
    interrupted: bool = False
    interrupted_by: str | None = None   # "SIGINT" (Ctrl-C) or "SIGTERM"
    stopped: bool = False           # the viewer closed the window
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    tracks: dict[int, TrackStats] = field(default_factory=dict)
    all_poses: bool = False         # count every face, not only frontal ones
    shots: int = 1                  # shots seen (cuts + 1)
    cuts: list[int] = field(default_factory=list)   # first frame of every shot after the first

    def add(self, result: FrameResult) -> None:
        self.processed += 1
        self.with_faces += bool(result.faces)
        self.dropped += result.dropped
        self.last_index = result.index
        self.duration = result.timestamp
        if result.cut:
            self.cuts.append(result.index)
        self.shots = result.shot + 1
        for face in result.faces:
            stats = self.tracks.get(face.track_id)
            if stats is None:
                stats = self.tracks[face.track_id] = TrackStats(face.track_id)
            stats.add(face, result.index, result.timestamp, counted=self.all_poses or face.frontal)

    @property
    def frame_seconds(self) -> float:
        """Mean time between two analysed frames (what one analysed frame on screen stands for)."""
        if self.processed > 1 and self.duration > 0:
            return self.duration / (self.processed - 1)
        return 1.0 / self.fps if self.fps > 0 else 1.0 / DEFAULT_FPS

    def persons(self) -> list[PersonStats]:
        """Tracks grouped by person, persons in order of first appearance. A track no descriptor
        named (small or turned faces) is a person of its own (``identified: false``)."""
        by_id: dict[int, PersonStats] = {}
        known = max([t.person for t in self.tracks.values() if t.person is not None], default=0)
        for track in sorted(self.tracks.values(), key=lambda t: t.track_id):
            if track.person is None:
                known += 1
                pid, identified = known, False
            else:
                pid, identified = track.person, True
            if pid not in by_id:
                by_id[pid] = PersonStats(pid, identified)
            by_id[pid].add_track(track)
        return sorted(by_id.values(), key=lambda p: (p.first_seen, p.person))

    @property
    def left_out(self) -> int:
        """Face-frames not counted in the means because the face was not frontal."""
        return sum(t.frames - t.counted for t in self.tracks.values())

    @property
    def processing_fps(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "source_fps": round(self.fps, 3),
            "frames_processed": self.processed,
            "frames_with_faces": self.with_faces,
            "frames_dropped": self.dropped,
            "last_frame": self.last_index,
            "duration": round(self.duration, 3),
            "processing_seconds": round(self.seconds, 3),
            "processing_fps": round(self.processing_fps, 2),
            "interrupted": self.interrupted,
            "interrupted_by": self.interrupted_by,
            "error": self.error,
            "warnings": self.warnings,
            "shots": self.shots,
            "cuts": self.cuts,
            "counted": "all poses" if self.all_poses else "frontal faces only",
            "face_frames_left_out": self.left_out,
            "persons": [p.to_dict(self.frame_seconds) for p in self.persons()],
            "tracks": [s.to_dict() for s in sorted(self.tracks.values(), key=lambda s: s.track_id)],
        }


class Timeline:
    """Smoothed scores over time per person (a track not yet named by a descriptor: per track), in
    bounded memory; frontal faces only unless ``all_poses``.

    Each line keeps at most ``max_points`` points; when full, neighbouring points are
    averaged in pairs and later samples are averaged in buckets twice as long, so a
    ten-hour video costs what a ten-minute one does.
    """

    def __init__(self, max_points: int = 2000, all_poses: bool = False):
        self.max_points = max(4, int(max_points) // 2 * 2)
        self.all_poses = all_poses
        self._series: dict[str, dict] = {}

    def add(self, result: FrameResult) -> None:
        for face in result.faces:
            if not (self.all_poses or face.frontal):
                continue
            key = f"track {face.track_id}" if face.person is None else f"person {face.person}"
            s = self._series.get(key)
            if s is None:
                s = self._series[key] = {"t": [], "v": [], "bucket": 1, "n": 0, "sum_t": 0.0,
                                                   "sum_v": np.zeros(len(EMOTIONS))}
            s["n"] += 1
            s["sum_t"] += result.timestamp
            s["sum_v"] += [face.scores[e] for e in EMOTIONS]
            if s["n"] >= s["bucket"]:
                s["t"].append(s["sum_t"] / s["n"])
                s["v"].append((s["sum_v"] / s["n"]).astype(np.float32))
                s["n"], s["sum_t"], s["sum_v"] = 0, 0.0, np.zeros(len(EMOTIONS))
                if len(s["t"]) >= self.max_points:
                    s["t"] = [(a + b) / 2 for a, b in zip(s["t"][0::2], s["t"][1::2])]
                    s["v"] = [(a + b) / 2 for a, b in zip(s["v"][0::2], s["v"][1::2])]
                    s["bucket"] *= 2

    def series(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """``{"person 1" or "track 7": (times (n,), scores (n, 7))}`` (a track no descriptor named keeps its own line)."""
        out = {}
        for tid, s in sorted(self._series.items()):
            t, v = list(s["t"]), list(s["v"])
            if s["n"]:
                t.append(s["sum_t"] / s["n"])
                v.append((s["sum_v"] / s["n"]).astype(np.float32))
            out[tid] = (np.asarray(t), np.asarray(v).reshape(-1, len(EMOTIONS)))
        return out

    def points(self) -> int:
        """Points held (at most ``max_points`` per track)."""
        return sum(len(s["t"]) for s in self._series.values())


# ---------------------------------------------------------------------------------------
# outputs
