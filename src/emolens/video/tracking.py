"""Face tracking and temporal smoothing: detections matched to tracks, faces followed by
their landmarks between detections, per-track exponential smoothing, shot cuts that end
every track, and persons that join tracks across shots (see ``emolens.video``)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

import numpy as np

from emolens.emotions import EMOTIONS
from emolens.images import to_bgr8, to_grey
from emolens.people.persons import (IDENTITY_SPLIT, IDENTITY_SPLIT_AT_ONCE, SAME_PERSON, FaceDescriber,
                                    PersonRegistry, TrackIdentity, describable)
from emolens.people.pose import HeadPose
from emolens.people.shots import DEFAULT_SHOT_METHOD, ShotDetector
from emolens.video.sources import Frame, open_source


DEFAULT_DETECT_EVERY = 5       # processed frames between two detections
DEFAULT_HALF_LIFE = 0.5        # seconds
DEFAULT_MAX_MISSED = 15        # processed frames a lost face may stay unseen before its track ends
DEFAULT_IOU = 0.3
DEFAULT_MIN_SIMILARITY = 0.4   # a followed face whose crop correlates less with its last detection is lost
MAX_SIZE_STEP = 1.6            # a detection whose box side differs more than this factor from a track's is not that face


def ema_alpha(dt: float, half_life: float) -> float:
    """Weight of a new sample ``dt`` seconds after the last: ``1 - 0.5 ** (dt / half_life)``.

    ``half_life <= 0`` turns smoothing off (weight 1).
    """
    if half_life <= 0:
        return 1.0
    return 1.0 - 0.5 ** (max(float(dt), 0.0) / half_life)


class EmaSmoother:
    """Exponential moving average of a vector over irregular time (see ``ema_alpha``)."""

    def __init__(self, half_life: float = DEFAULT_HALF_LIFE):
        self.half_life = float(half_life)
        self.value: np.ndarray | None = None
        self.time: float | None = None

    def update(self, x, t: float) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.value is None:
            self.value = x.copy()
        else:
            self.value += ema_alpha(t - self.time, self.half_life) * (x - self.value)
        self.time = float(t)
        return self.value.copy()


# ---------------------------------------------------------------------------------------
# tracking


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = min(ax + aw, bx + bw) - max(ax, bx)
    ih = min(ay + ah, by + bh) - max(ay, by)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / (aw * ah + bw * bh - inter)


def _match_score(track_box, det_box, iou_threshold: float) -> float:
    """IoU when it reaches the threshold; else a small score for a nearby box of similar size; else 0.

    A box whose side (square root of its area) changed by more than ``MAX_SIZE_STEP`` times
    is never the same face: faces do not grow or shrink that fast between two detections.
    """
    side_ratio = math.sqrt((det_box[2] * det_box[3]) / max(track_box[2] * track_box[3], 1))
    if not 1 / MAX_SIZE_STEP <= side_ratio <= MAX_SIZE_STEP:
        return 0.0
    iou = box_iou(track_box, det_box)
    if iou >= iou_threshold:
        return iou
    tx, ty, tw, th = track_box
    dx, dy, dw, dh = det_box
    dist = math.hypot(tx + tw / 2 - dx - dw / 2, ty + th / 2 - dy - dh / 2) / max(tw, th, 1)
    ratio = (dw * dh) / max(tw * th, 1)
    if dist < 0.75 and 0.4 < ratio < 2.5:
        return iou_threshold * 0.5 * (1.0 - dist / 0.75) + 1e-6
    return 0.0


def greedy_match(track_boxes: Sequence, det_boxes: Sequence, iou_threshold: float = DEFAULT_IOU
                 ) -> list[tuple[int, int]]:
    """(track, detection) index pairs, best-scoring pairs first, each index used at most once."""
    pairs = []
    for ti, tb in enumerate(track_boxes):
        for di, db in enumerate(det_boxes):
            s = _match_score(tb, db, iou_threshold)
            if s > 0:
                pairs.append((s, ti, di))
    pairs.sort(key=lambda p: -p[0])
    used_t, used_d, out = set(), set(), []
    for _, ti, di in pairs:
        if ti not in used_t and di not in used_d:
            used_t.add(ti)
            used_d.add(di)
            out.append((ti, di))
    return out


def _nested(a, b, overlap: float = 0.4) -> bool:
    """Boxes overlapping by at least ``overlap`` of the smaller one's area (one lies mostly in the other)."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = min(ax + aw, bx + bw) - max(ax, bx)
    ih = min(ay + ah, by + bh) - max(ay, by)
    return iw > 0 and ih > 0 and iw * ih >= overlap * min(aw * ah, bw * bh)


def drop_nested(detections: list, overlap: float = 0.4) -> list:
    """Of two detections where one lies mostly (``overlap`` of the smaller's area) inside the
    other, keep the one with the higher score (ties: the larger); order kept otherwise.

    Detectors sometimes fire on part of a face (a mouth, an eye pair) or on a region around
    it as well as on the face; such a box would become a second, false track. The scores
    of one call come from one backend, so they compare.
    """
    order = sorted(range(len(detections)),
                   key=lambda i: (-detections[i].score, -detections[i].box[2] * detections[i].box[3]))
    kept: list[int] = []
    for i in order:
        if not any(_nested(detections[i].box, detections[j].box, overlap) for j in kept):
            kept.append(i)
    return [detections[i] for i in sorted(kept)]


@dataclass(eq=False)
class Track:
    """A face followed across frames (internal state of ``FaceTracker``)."""

    id: int
    box: tuple[int, int, int, int]
    half_life: float
    landmarks: np.ndarray | None = None
    box_in_marks: tuple[float, float, float, float] | None = None  # detector box relative to the landmarks' extent
    last_seen: int = 0        # processed-frame counter when last found
    lost: bool = False
    template: np.ndarray | None = None   # the model crop at the last detection, zero-mean unit-norm
    shot: int = 0
    identity: TrackIdentity = field(default_factory=TrackIdentity)
    scores: EmaSmoother = field(init=False)
    intensity: EmaSmoother = field(init=False)

    def __post_init__(self):
        self.scores = EmaSmoother(self.half_life)
        self.intensity = EmaSmoother(self.half_life)

    def remember_box(self, box, landmarks, crop=None) -> None:
        """At a detection: store where the detector's box sits relative to the landmarks, and the face's look."""
        self.box = tuple(int(v) for v in box)
        self.landmarks = landmarks
        self.template = None if crop is None else _normalized(crop)
        if landmarks is not None:
            lx, ly, lw, lh = _extent(landmarks)
            x, y, w, h = box
            self.box_in_marks = ((x - lx) / lw, (y - ly) / lh, w / lw, h / lh)

    def box_from(self, landmarks) -> tuple[int, int, int, int]:
        """The detector-like box for landmarks found between detections."""
        if self.box_in_marks is None:
            return self.box
        lx, ly, lw, lh = _extent(landmarks)
        rx, ry, rw, rh = self.box_in_marks
        return (int(round(lx + rx * lw)), int(round(ly + ry * lh)), int(round(rw * lw)), int(round(rh * lh)))


def _normalized(crop) -> np.ndarray:
    v = np.asarray(crop, dtype=np.float32).ravel()
    v = v - v.mean()
    return v / max(float(np.linalg.norm(v)), 1e-6)


def _similarity(crop, template) -> float:
    """Normalised cross-correlation of a crop with a track's template (1: same picture)."""
    return float(_normalized(crop) @ template)


def _extent(landmarks) -> tuple[float, float, float, float]:
    pts = np.asarray(landmarks, dtype=np.float64)
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    return float(x0), float(y0), max(float(x1 - x0), 1.0), max(float(y1 - y0), 1.0)


def _plausible_step(old, new, shape) -> bool:
    """A tracked box that moved like a face can between two frames and is mostly inside the picture."""
    if new[2] < 4 or new[3] < 4:
        return False
    ratio = (new[2] * new[3]) / max(old[2] * old[3], 1)
    if not 0.6 < ratio < 1.7 or box_iou(old, new) < 0.25:
        return False
    H, W = shape[:2]
    x, y, w, h = new
    inside = max(0, min(x + w, W) - max(x, 0)) * max(0, min(y + h, H) - max(y, 0))
    return inside >= 0.5 * w * h


@dataclass
class TrackedFace:
    """A face in one video frame: its track, where it is, and its emotions (smoothed and raw).

    ``scores``/``intensity``/``emotion`` are the smoothed values (what to show and
    store); ``raw_*`` the model's output for this frame alone. ``detected``: the box
    comes from the detector on this frame (False: followed by landmarks since the
    last detection).
    """

    track_id: int
    box: tuple[int, int, int, int]
    landmarks: np.ndarray | None
    emotion: str
    scores: dict[str, float]
    intensity: dict[str, float]
    raw_emotion: str
    raw_scores: dict[str, float]
    raw_intensity: dict[str, float]
    aligned: bool
    detected: bool
    detection_score: float = 0.0
    shot: int = 0
    person: int | None = None
    pose: HeadPose | None = None
    frontal: bool = False

    def to_dict(self) -> dict:
        return {
            "track_id": self.track_id,
            "person": self.person,
            "shot": self.shot,
            "box": [int(v) for v in self.box],
            "emotion": self.emotion,
            "scores": {k: round(float(v), 5) for k, v in self.scores.items()},
            "intensity": {k: round(float(v), 5) for k, v in self.intensity.items()},
            "raw": {"emotion": self.raw_emotion,
                    "scores": {k: round(float(v), 5) for k, v in self.raw_scores.items()},
                    "intensity": {k: round(float(v), 5) for k, v in self.raw_intensity.items()}},
            "aligned": bool(self.aligned),
            "detected": bool(self.detected),
            "pose": None if self.pose is None else self.pose.to_dict(),
            "frontal": bool(self.frontal),
            "landmarks": None if self.landmarks is None else np.round(self.landmarks, 1).tolist(),
        }


@dataclass
class FrameResult:
    """What ``Recognizer.stream`` yields per analysed frame."""

    index: int                      # frame number in the source
    timestamp: float                # seconds from the source's start
    faces: list[TrackedFace]        # tracked faces found in this frame (by track id)
    image: np.ndarray = field(repr=False)   # the BGR frame analysed (for drawing)
    dropped: int = 0                # frames a live source dropped just before this one
    detected: bool = False          # the detector ran on this frame
    seconds: float = 0.0            # analysis time of this frame
    shot: int = 0                   # shot number (0 from the start; +1 at every cut)
    cut: bool = False               # this frame starts a new shot

    def to_dict(self) -> dict:
        return {"frame": self.index, "time": round(self.timestamp, 4), "dropped": self.dropped, "shot": self.shot, "cut": self.cut,
                "faces": [f.to_dict() for f in self.faces]}


class FaceTracker:
    """Per-frame analysis with tracking and smoothing, on top of a ``Recognizer``.

    ``process(frame)`` -> ``FrameResult``. See the module docstring for the scheme.

    shots: the cut detector (``emolens.people.shots.SHOT_METHODS``; "off": none). A cut ends
    every track, so no track and no smoothed score crosses it. persons: give every track a
    person id from dlib face descriptors (a few per track), stable across shots;
    same_person: the descriptor distance below which two faces are one person. describer: a
    ``FaceDescriber`` (or anything called ``(image, landmarks) -> descriptor``) to share between
    trackers, e.g. the server's pool; None: one is loaded when the first face is described.
    """

    def __init__(self, recognizer, detect_every: int = DEFAULT_DETECT_EVERY, half_life: float = DEFAULT_HALF_LIFE,
                 max_missed: int = DEFAULT_MAX_MISSED, iou_threshold: float = DEFAULT_IOU,
                 color: str = "bgr", min_similarity: float = DEFAULT_MIN_SIMILARITY,
                 shots: str = DEFAULT_SHOT_METHOD, persons: bool = True, same_person: float = SAME_PERSON,
                 describer=None):
        if detect_every < 1:
            raise ValueError(f"detect_every must be 1 or more, got {detect_every}")
        if half_life < 0:
            raise ValueError(f"half_life must be 0 (off) or more seconds, got {half_life}")
        if max_missed < 0:
            raise ValueError(f"max_missed must be 0 or more frames, got {max_missed}")
        self.recognizer = recognizer
        self.detect_every = int(detect_every)
        self.half_life = float(half_life)
        self.max_missed = int(max_missed)
        self.iou_threshold = float(iou_threshold)
        self.color = color
        self.min_similarity = float(min_similarity)
        self.tracks: list[Track] = []
        self.count = 0          # processed frames
        self.next_id = 1
        self.ended = 0
        self.shots = ShotDetector(shots)
        self.persons = PersonRegistry(same_person) if persons else None
        self._describer = describer
        self.descriptors = 0    # descriptors computed so far
        self.splits = 0         # tracks another face took over, split in two

    def _new_track(self, box) -> Track:
        track = Track(self.next_id, tuple(int(v) for v in box), self.half_life, last_seen=self.count,
                      shot=self.shots.shot)
        self.next_id += 1
        self.tracks.append(track)
        return track

    def _follow(self, grey: np.ndarray, tracks: list[Track], missed: bool = False) -> tuple[list[Track], list]:
        """Re-fit each track's landmarks from its last box; the tracks (and crops) that still hold a face.

        A track fails (becomes lost) when its new box jumps or resizes more than a face can
        between frames, leaves the picture, or its crop stops resembling the face at its
        last detection. Faces without landmarks (small) keep their box between detections;
        ``missed``: the detector just missed these tracks, and those without landmarks,
        which cannot be followed, are lost.
        """
        located = self.recognizer.locate_boxes(grey, [t.box for t in tracks], [0.0] * len(tracks))
        keep_t, keep_l = [], []
        for track, loc in zip(tracks, located):
            if loc.landmarks is not None and track.box_in_marks is not None:
                box = track.box_from(loc.landmarks)
                if not _plausible_step(track.box, box, grey.shape):
                    track.lost = True       # the fit jumped: the face left or turned away
                    continue
            elif missed:
                track.lost = True
                continue
            else:
                box = track.box
            if track.template is not None and _similarity(loc.crop, track.template) < self.min_similarity:
                track.lost = True           # no longer looks like the face: wait for the detector
                continue
            loc.box = box
            track.box, track.landmarks = box, loc.landmarks
            keep_t.append(track)
            keep_l.append(loc)
        return keep_t, keep_l

    def _identify(self, track: Track, face, crop, image: np.ndarray, timestamp: float,
                  on_frame: Iterable[Track] = ()) -> None:
        """Describe the face when its track wants another descriptor; name or refine its person,
        or split the track when the face is no longer its person (``TrackIdentity``). A track is
        never named after the person of another track ``on_frame`` (the tracks on this frame)."""
        if self.persons is None or not describable(face):
            return
        identity = track.identity
        # the look compares landmark-aligned crops only (a box crop of the same face is framed otherwise)
        look = None if identity.template is None or not face.aligned else _similarity(crop, identity.template)
        if not identity.wants(timestamp, look):
            return
        if self._describer is None:
            self._describer = FaceDescriber()
        descriptor = self._describer(to_bgr8(image, self.color) if self.color != "bgr" else image, face.landmarks)
        self.descriptors += 1
        distance = identity.distance(descriptor)      # inf before the track's first descriptor
        split_at = max(IDENTITY_SPLIT, self.persons.threshold)
        if identity.own is not None and distance >= split_at:
            # one far descriptor may be the face caught badly: confirm it, unless it is very far
            if not identity.doubted and distance < split_at + IDENTITY_SPLIT_AT_ONCE - IDENTITY_SPLIT:
                identity.doubt(timestamp)
                return
            self._split(track)
            identity, distance = track.identity, float("inf")
        if identity.person is None:
            identity.person = self.persons.assign(descriptor, {t.identity.person for t in on_frame if t is not track})
        elif identity.naming:
            self.persons.refine(identity.person, descriptor)
        identity.described(descriptor, _normalized(crop) if face.aligned else None, timestamp, distance)

    def _separate(self, tracks: list[Track]) -> None:
        """Faces on one frame are different people. Tracks named apart (one unseen for a few frames
        while the other was named) may hold one person when they meet: the older track keeps it,
        the others move to the nearest other person or a new one (``PersonRegistry.move``)."""
        if self.persons is None:
            return
        on_screen = {t.identity.person for t in tracks if t.identity.person is not None}
        holders: set[int] = set()
        for track in sorted(tracks, key=lambda t: t.id):
            identity = track.identity
            if identity.person is None:
                continue
            if identity.person in holders and identity.own is not None:
                identity.person = self.persons.move(identity.person, identity.own, identity.own_count, on_screen)
                on_screen.add(identity.person)
            holders.add(identity.person)

    def _split(self, track: Track) -> None:
        """Another face took ``track`` over: it goes on under a new id, smoothing and person afresh."""
        self.ended += 1
        self.splits += 1
        track.id = self.next_id
        self.next_id += 1
        track.scores = EmaSmoother(self.half_life)
        track.intensity = EmaSmoother(self.half_life)
        track.identity = TrackIdentity()

    def process(self, frame: Frame) -> FrameResult:
        rec = self.recognizer
        t0 = time.perf_counter()
        # the skipped frames' thumbnails chain this frame to the last one, unless a live source dropped some
        cut = self.shots.update(frame.image, frame.index, frame.timestamp, () if frame.dropped else frame.between)
        if cut:                 # a new shot: nobody on screen continues, smoothing starts afresh
            self.ended += len(self.tracks)
            self.tracks = []
        grey = to_grey(frame.image, self.color)
        detect = cut or self.count % self.detect_every == 0
        if not detect:
            active = [t for t in self.tracks if not t.lost]
            chosen, located = self._follow(grey, active)
            n_detected = 0
            # A followed face was lost (fast motion, a turn): the detector looks for it on this frame
            # rather than leaving it unreported until the next scheduled detection.
            detect = len(chosen) < len(active)
        if detect:
            # No padded second chance (made for tight photo crops): in a video frame a face rarely
            # fills the picture, and the retry would double the cost of every frame without a face.
            detections = drop_nested(rec.detect(grey, retry=False))
            pairs = greedy_match([t.box for t in self.tracks], [d.box for d in detections], self.iou_threshold)
            owner = {di: self.tracks[ti] for ti, di in pairs}
            # Faces the detector missed this time are still followed while they look like themselves
            # (a turned head, blur); one that overlaps a detection claimed by another track is a duplicate.
            claimed = {id(t) for t in owner.values()}
            missed, missed_located = self._follow(grey, [t for t in self.tracks if id(t) not in claimed
                                                         and not t.lost], missed=True)
            followed, followed_located = [], []
            for track, loc in zip(missed, missed_located):
                if any(box_iou(loc.box, detections[di].box) > 0.5 for di in owner):
                    track.lost = True
                else:
                    followed.append(track)
                    followed_located.append(loc)
            # A detection no track claims is a new face, unless it overlaps a face still followed
            # (a box around or inside it).
            fresh = [d for di, d in enumerate(detections) if di not in owner and not any(
                _nested(d.box, loc.box) for loc in followed_located)]
            found = [detections[di] for di in sorted(owner)] + fresh
            chosen = [owner[di] for di in sorted(owner)] + [self._new_track(d.box) for d in fresh]
            located = rec.locate_boxes(grey, [d.box for d in found], [d.score for d in found],
                                       [d.full_box for d in found])
            for track, loc in zip(chosen, located):
                track.remember_box(loc.box, loc.landmarks, loc.crop)
                track.lost = False
            n_detected = len(chosen)
            chosen += followed
            located += followed_located
        faces = rec.classify(located)
        for track, face, loc in zip(chosen, faces, located):
            track.last_seen = self.count
            self._identify(track, face, loc.crop, frame.image, frame.timestamp, chosen)   # may split the track
        self._separate(chosen)
        out = []
        for k, (track, face) in enumerate(zip(chosen, faces)):
            raw_s = np.array([face.scores[e] for e in EMOTIONS])
            raw_i = np.array([face.intensity[e] for e in EMOTIONS])
            s = track.scores.update(raw_s, frame.timestamp)
            i = track.intensity.update(raw_i, frame.timestamp)
            out.append(TrackedFace(
                track_id=track.id, box=face.box, landmarks=face.landmarks,
                emotion=EMOTIONS[int(np.argmax(s))],
                scores={e: float(v) for e, v in zip(EMOTIONS, s)},
                intensity={e: float(v) for e, v in zip(EMOTIONS, i)},
                raw_emotion=face.emotion, raw_scores=face.scores, raw_intensity=face.intensity,
                aligned=face.aligned, detected=detect and k < n_detected, detection_score=face.detection_score,
                shot=track.shot, person=track.identity.person, pose=face.pose, frontal=face.frontal))
        before = len(self.tracks)
        self.tracks = [t for t in self.tracks if self.count - t.last_seen <= self.max_missed]
        self.ended += before - len(self.tracks)
        self.count += 1
        out.sort(key=lambda f: f.track_id)
        return FrameResult(frame.index, frame.timestamp, out, frame.image, frame.dropped, detect,
                           time.perf_counter() - t0, shot=self.shots.shot, cut=cut)


def stream(recognizer, source, every: int = 1, realtime: bool = False, detect_every: int = DEFAULT_DETECT_EVERY,
           half_life: float = DEFAULT_HALF_LIFE, max_missed: int = DEFAULT_MAX_MISSED,
           iou_threshold: float = DEFAULT_IOU, color: str = "bgr", shots: str = DEFAULT_SHOT_METHOD,
           persons: bool = True, same_person: float = SAME_PERSON) -> Iterator[FrameResult]:
    """Analyse a video file, camera or ``FrameSource`` frame by frame (see ``Recognizer.stream``).

    The source is opened here when given as a path or camera number, and closed when
    the iteration ends, fails or is abandoned.
    """
    tracker = FaceTracker(recognizer, detect_every=detect_every, half_life=half_life, max_missed=max_missed,
                          iou_threshold=iou_threshold, color=color, shots=shots, persons=persons,
                          same_person=same_person)
    src = open_source(source, every=every, realtime=realtime)
    try:
        for frame in src:
            yield tracker.process(frame)
    finally:
        src.close()


# ---------------------------------------------------------------------------------------
# summary and timeline
