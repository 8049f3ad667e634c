"""Video clips made from real face photos, for tests and benchmarks of ``emolens video``.

A clip is a static textured background with face photos ("actors") pasted in with feathered
edges. Each actor follows keyframes ``(t, cx, cy, side)`` (seconds, pixels),
linearly interpolated, and is visible from its first keyframe time to its last, so faces
move, grow, shrink, enter and leave::

    from emolens.testing.clips import Actor, write_clip
    write_clip("clip.mp4", [Actor(photo, [(0, 200, 240, 160), (3, 440, 240, 220)])],
               size=(640, 480), fps=30, seconds=3)

``write_clip`` uses ``cv2.VideoWriter`` (mp4v in .mp4/.mov, MJPG in .avi, ...);
``write_vfr_avi`` writes a variable-frame-rate MJPEG AVI (skipped frame slots are empty
chunks, which FFmpeg reads as gaps in the timestamps). Presets build the clips the
tests and ``benchmarks/video_fps.py`` share.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

FOURCC_BY_SUFFIX = {".mp4": "mp4v", ".mov": "mp4v", ".m4v": "mp4v", ".avi": "MJPG", ".mkv": "XVID",
                    ".webm": "VP80"}


@dataclass
class Actor:
    """A face photo following ``keyframes`` ``[(t, cx, cy, side), ...]`` (visible from first to last t)."""

    photo: str | Path | np.ndarray
    keyframes: Sequence[tuple[float, float, float, float]]
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.keyframes = sorted(self.keyframes)
        if isinstance(self.photo, np.ndarray):
            self.image = self.photo
        else:
            self.image = cv2.imread(str(self.photo))
            if self.image is None:
                raise FileNotFoundError(f"{self.photo}: cannot read the actor's photo")

    @property
    def start(self) -> float:
        return self.keyframes[0][0]

    @property
    def end(self) -> float:
        return self.keyframes[-1][0]

    def pose(self, t: float) -> tuple[float, float, float] | None:
        """(cx, cy, side) at time t, or None when not on screen."""
        if t < self.start or t > self.end:
            return None
        times = [k[0] for k in self.keyframes]
        return tuple(float(np.interp(t, times, [k[i] for k in self.keyframes])) for i in (1, 2, 3))

    def sprite(self, side: int) -> tuple[np.ndarray, np.ndarray]:
        """The photo resized to ``side`` and its alpha mask with feathered edges (float32 0..1, HxWx1)."""
        if side not in self._cache:
            if len(self._cache) > 64:
                self._cache.clear()
            patch = cv2.resize(self.image, (side, side), interpolation=cv2.INTER_AREA)
            edge = max(1, int(round(side * 0.06)))
            mask = np.zeros((side, side), np.float32)
            mask[edge:side - edge, edge:side - edge] = 1.0
            mask = cv2.GaussianBlur(mask, (0, 0), edge / 2)[:, :, None]
            self._cache[side] = (patch, mask)
        return self._cache[side]


@dataclass
class ClipInfo:
    path: Path
    frames: int
    fps: float
    size: tuple[int, int]
    timestamps: list[float] | None = None   # seconds per written frame (variable frame rate clips)


def background(size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A smooth textured BGR background (blurred noise over a gradient), like a room behind a person."""
    w, h = size
    rng = np.random.default_rng(seed)
    grey = rng.normal(0, 35, (max(2, h // 40), max(2, w // 40), 1)).astype(np.float32)
    tint = rng.normal(0, 8, (max(2, h // 40), max(2, w // 40), 3)).astype(np.float32)
    noise = cv2.resize(grey + tint, (w, h), interpolation=cv2.INTER_CUBIC)
    ramp = np.linspace(80, 150, w, dtype=np.float32)[None, :, None]
    return np.clip(noise + ramp + np.array([12, 0, -12], np.float32), 0, 255).astype(np.uint8)


def render(base: np.ndarray, actors: Sequence[Actor], t: float, rng: np.random.Generator | None = None,
           jitter: float = 0.0, noise: float = 0.0) -> np.ndarray:
    """One frame at time ``t``: actors pasted on ``base``; optional per-frame position jitter (px) and noise (sigma)."""
    frame = base.copy()
    H, W = frame.shape[:2]
    for actor in actors:
        pose = actor.pose(t)
        if pose is None:
            continue
        cx, cy, side = pose
        if rng is not None and jitter > 0:
            cx += rng.uniform(-jitter, jitter)
            cy += rng.uniform(-jitter, jitter)
        side = max(4, int(round(side)))
        patch, mask = actor.sprite(side)
        x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
        fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + side, W), min(y0 + side, H)
        if fx1 <= fx0 or fy1 <= fy0:
            continue
        p = patch[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0].astype(np.float32)
        m = mask[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
        roi = frame[fy0:fy1, fx0:fx1].astype(np.float32)
        frame[fy0:fy1, fx0:fx1] = (p * m + roi * (1 - m)).astype(np.uint8)
    if rng is not None and noise > 0:
        frame = np.clip(frame + rng.normal(0, noise, frame.shape).astype(np.float32), 0, 255).astype(np.uint8)
    return frame


def open_writer(path: Path, size: tuple[int, int], fps: float, fourcc: str | None = None) -> "cv2.VideoWriter":
    """An OpenCV writer for ``path`` (its folder created; the codec by suffix unless ``fourcc``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    code = fourcc or FOURCC_BY_SUFFIX.get(path.suffix.lower(), "mp4v")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*code), float(fps), tuple(size))
    if not writer.isOpened():
        raise RuntimeError(f"{path}: OpenCV cannot write {code} video here")
    return writer


def write_clip(path: str | Path, actors: Sequence[Actor], size: tuple[int, int] = (640, 480), fps: float = 30,
               seconds: float = 3.0, jitter: float = 0.0, noise: float = 0.0, seed: int = 0,
               fourcc: str | None = None, on_frame: Callable[[int], None] | None = None) -> ClipInfo:
    """Render and encode a constant-frame-rate clip; ``size`` is (width, height)."""
    path = Path(path)
    writer = open_writer(path, size, fps, fourcc)
    base = background(size, seed)
    rng = np.random.default_rng(seed)
    n = int(round(seconds * fps))
    try:
        for i in range(n):
            writer.write(render(base, actors, i / fps, rng, jitter, noise))
            if on_frame is not None:
                on_frame(i)
    finally:
        writer.release()
    return ClipInfo(path, n, float(fps), tuple(size))


def write_vfr_avi(path: str | Path, actors: Sequence[Actor], slots: Sequence[bool], size=(640, 480),
                  fps: float = 30, seed: int = 0, quality: int = 90) -> ClipInfo:
    """A variable-frame-rate MJPEG AVI: one frame per True slot of a ``1/fps`` grid, nothing for False.

    AVI stores time as slot counts; an empty chunk is a slot without a frame, so
    the frames that exist have irregular timestamps (FFmpeg reports the gaps).
    """
    path = Path(path)
    w, h = size
    base = background(size, seed)
    rng = np.random.default_rng(seed)
    chunks, timestamps = [], []
    for i, present in enumerate(slots):
        if present:
            t = i / fps
            ok, data = cv2.imencode(".jpg", render(base, actors, t, rng), [cv2.IMWRITE_JPEG_QUALITY, quality])
            chunks.append(data.tobytes())
            timestamps.append(t)
        else:
            chunks.append(b"")
    _write_mjpeg_avi(path, chunks, fps, w, h)
    return ClipInfo(path, len(timestamps), float(fps), tuple(size), timestamps)


def _write_mjpeg_avi(path: Path, chunks: list[bytes], fps: float, w: int, h: int) -> None:
    def chunk(fcc: bytes, data: bytes) -> bytes:
        return fcc + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")

    def lst(kind: bytes, body: bytes) -> bytes:
        return b"LIST" + struct.pack("<I", len(body) + 4) + kind + body

    n = len(chunks)
    rate, scale = int(round(fps * 1000)), 1000
    avih = struct.pack("<IIIIIIIIII4I", int(1e6 / fps), 0, 0, 0x10, n, 0, 1, 1 << 20, w, h, 0, 0, 0, 0)
    strh = b"vids" + b"MJPG" + struct.pack("<IHHIIIIIIIIhhhh", 0, 0, 0, 0, scale, rate, 0, n, 1 << 20,
                                           0xFFFFFFFF, 0, 0, 0, w, h)
    strf = struct.pack("<IiiHH4sIiiII", 40, w, h, 1, 24, b"MJPG", w * h * 3, 0, 0, 0, 0)
    hdrl = lst(b"hdrl", chunk(b"avih", avih) + lst(b"strl", chunk(b"strh", strh) + chunk(b"strf", strf)))
    movi, index = [], []
    offset = 4
    for data in chunks:
        c = chunk(b"00dc", data)
        index.append(b"00dc" + struct.pack("<III", 0x10 if data else 0, offset, len(data)))
        movi.append(c)
        offset += len(c)
    body = b"AVI " + hdrl + lst(b"movi", b"".join(movi)) + chunk(b"idx1", b"".join(index))
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


# ---------------------------------------------------------------------------------------
# presets shared by tests and benchmarks


def photo_paths(photos: str | Path) -> list[Path]:
    """The face photos of a photos-dev folder (``photos/images/*.jpg``), sorted."""
    photos = Path(photos)
    folder = photos / "images" if (photos / "images").is_dir() else photos
    return sorted(folder.glob("*.jpg"))


def moving_face(photo, size=(640, 480), seconds: float = 3.0) -> list[Actor]:
    """One face crossing the frame left to right while growing then shrinking (about 0.35 to 0.5 of the height)."""
    w, h = size
    s = h / 480
    return [Actor(photo, [(0.0, w * 0.3, h * 0.5, 170 * s), (seconds / 2, w * 0.5, h * 0.47, 240 * s),
                          (seconds, w * 0.7, h * 0.5, 190 * s)])]


def steady_face(photo, size=(640, 480), seconds: float = 3.0) -> list[Actor]:
    """One still face in the middle (use ``jitter``/``noise`` in ``write_clip`` for camera-like shake)."""
    w, h = size
    return [Actor(photo, [(0.0, w / 2, h / 2, h * 0.5), (seconds, w / 2, h / 2, h * 0.5)])]


def three_faces(photos: Sequence, size=(640, 480), seconds: float = 3.0) -> list[Actor]:
    """Three faces side by side, drifting slowly (about 0.3 of the width each)."""
    w, h = size
    side = min(w * 0.3, h * 0.5)
    return [Actor(p, [(0.0, w * (0.18 + 0.32 * i), h * 0.45 + 15 * (i - 1), side),
                      (seconds, w * (0.18 + 0.32 * i) + 10, h * 0.5 - 15 * (i - 1), side * 0.92)])
            for i, p in enumerate(photos[:3])]


def enter_and_leave(photo_a, photo_b, size=(640, 480), seconds: float = 3.0,
                    enter: float | None = None, leave: float | None = None) -> list[Actor]:
    """Face A stays on the left all along; face B appears on the right at ``enter`` and goes at ``leave``."""
    w, h = size
    enter = seconds / 3 if enter is None else enter
    leave = 2 * seconds / 3 if leave is None else leave
    side = h * 0.42
    return [Actor(photo_a, [(0.0, w * 0.27, h * 0.5, side), (seconds, w * 0.29, h * 0.5, side)]),
            Actor(photo_b, [(enter, w * 0.73, h * 0.5, side), (leave, w * 0.72, h * 0.52, side)])]


# ---------------------------------------------------------------------------------------
# edited clips: shots separated by cuts, for cut detection and person grouping


@dataclass
class Shot:
    """One shot of an edited clip: its actors (times from the shot's start), length and look.

    ``seed`` picks the background; ``brightness`` scales the whole frame (dim light < 1);
    ``pan`` moves the background sideways (px per second, a camera pan); ``ramp`` fades the
    brightness from ``ramp`` to ``brightness`` over the first second (a camera's exposure
    adjusting); ``flash`` lists times (s) of one-frame flashes (press photographers).
    ``dissolve`` (s) blends into the shot from the previous shot's last frame over its first
    ``dissolve`` seconds (a cross-dissolve instead of a hard cut; the truth's "cut" is the
    shot's first frame, where the blend starts). ``people`` names each actor's person (ground
    truth for grouping).
    """

    actors: Sequence[Actor]
    seconds: float
    seed: int = 0
    brightness: float = 1.0
    pan: float = 0.0
    ramp: float | None = None
    flash: Sequence[float] = ()
    people: Sequence[str] = ()
    dissolve: float = 0.0


@dataclass
class EditedClipInfo(ClipInfo):
    cuts: list[int] = field(default_factory=list)            # first frame of every shot after the first
    shot_starts: list[float] = field(default_factory=list)   # seconds


def _shot_frame(shot: Shot, base: np.ndarray, t: float, fps: float) -> np.ndarray:
    if shot.pan:
        base = np.roll(base, int(round(shot.pan * t)), axis=1)
    frame = render(base, shot.actors, t).astype(np.float32)
    level = shot.brightness
    if shot.ramp is not None and t < 1.0:
        level = shot.ramp + (shot.brightness - shot.ramp) * t
    frame *= level
    if any(abs(t - f) < 0.5 / fps for f in shot.flash):
        frame = frame * 0.4 + 255 * 0.6
    return np.clip(frame, 0, 255).astype(np.uint8)


def write_edited_clip(path: str | Path, shots: Sequence[Shot], size: tuple[int, int] = (640, 480),
                      fps: float = 30, fourcc: str | None = None) -> EditedClipInfo:
    """Shots one after the other with hard cuts; returns the cut frames (ground truth)."""
    path = Path(path)
    writer = open_writer(path, size, fps, fourcc)
    n, cuts, starts = 0, [], []
    last = None
    try:
        for k, shot in enumerate(shots):
            if k:
                cuts.append(n)
            starts.append(n / fps)
            base = background(size, shot.seed)
            for i in range(int(round(shot.seconds * fps))):
                frame = _shot_frame(shot, base, i / fps, fps)
                if last is not None and i / fps < shot.dissolve:
                    a = (i + 1) / (shot.dissolve * fps + 1)       # from the last frame to this shot
                    frame = cv2.addWeighted(frame, a, last, 1 - a, 0)
                writer.write(frame)
                n += 1
            last = _shot_frame(shot, base, (int(round(shot.seconds * fps)) - 1) / fps, fps)
    finally:
        writer.release()
    return EditedClipInfo(path, n, float(fps), tuple(size), cuts=cuts, shot_starts=starts)
