"""What a video run adds up: per-track statistics, the whole-video summary and the
bounded emotion timeline behind the plot."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from emolens.emotions import EMOTIONS
from emolens.video.sources import DEFAULT_FPS
from emolens.video.tracking import FrameResult, TrackedFace


class TrackStats:
    """Running per-track sums: frames, time span, smoothed score and intensity sums, top-label counts."""

    def __init__(self, track_id: int):
        self.track_id = track_id
        self.frames = 0
        self.first_frame = self.last_frame = -1
        self.start = self.end = 0.0
        self.score_sum = np.zeros(len(EMOTIONS))
        self.intensity_sum = np.zeros(len(EMOTIONS))
        self.top_counts = np.zeros(len(EMOTIONS), dtype=np.int64)

    def add(self, face: TrackedFace, index: int, timestamp: float) -> None:
        if self.frames == 0:
            self.first_frame, self.start = index, timestamp
        self.frames += 1
        self.last_frame, self.end = index, timestamp
        self.score_sum += [face.scores[e] for e in EMOTIONS]
        self.intensity_sum += [face.intensity[e] for e in EMOTIONS]
        self.top_counts[EMOTIONS.index(face.emotion)] += 1

    def to_dict(self) -> dict:
        n = max(self.frames, 1)
        mean = self.score_sum / n
        return {
            "track_id": self.track_id,
            "frames": self.frames,
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "dominant": EMOTIONS[int(np.argmax(mean))],
            "mean_scores": {e: round(float(v), 4) for e, v in zip(EMOTIONS, mean)},
            "mean_intensity": {e: round(float(v), 4) for e, v in zip(EMOTIONS, self.intensity_sum / n)},
            "shares": {e: round(float(c) / n, 4) for e, c in zip(EMOTIONS, self.top_counts)},
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
    stopped: bool = False           # the viewer closed the window
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    tracks: dict[int, TrackStats] = field(default_factory=dict)

    def add(self, result: FrameResult) -> None:
        self.processed += 1
        self.with_faces += bool(result.faces)
        self.dropped += result.dropped
        self.last_index = result.index
        self.duration = result.timestamp
        for face in result.faces:
            stats = self.tracks.get(face.track_id)
            if stats is None:
                stats = self.tracks[face.track_id] = TrackStats(face.track_id)
            stats.add(face, result.index, result.timestamp)

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
            "error": self.error,
            "warnings": self.warnings,
            "tracks": [s.to_dict() for s in sorted(self.tracks.values(), key=lambda s: s.track_id)],
        }


class Timeline:
    """Smoothed scores over time per track, in bounded memory.

    Each track keeps at most ``max_points`` points; when full, neighbouring points are
    averaged in pairs and later samples are averaged in buckets twice as long, so a
    ten-hour video costs what a ten-minute one does.
    """

    def __init__(self, max_points: int = 2000):
        self.max_points = max(4, int(max_points) // 2 * 2)
        self._series: dict[int, dict] = {}

    def add(self, result: FrameResult) -> None:
        for face in result.faces:
            s = self._series.get(face.track_id)
            if s is None:
                s = self._series[face.track_id] = {"t": [], "v": [], "bucket": 1, "n": 0, "sum_t": 0.0,
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
        """``{track_id: (times (n,), scores (n, 7))}``."""
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
