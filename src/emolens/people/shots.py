"""Shot boundaries (cuts) in a stream of frames, with PySceneDetect's detectors.

``ShotDetector.update(image, index, timestamp)`` is called once per analysed frame and says
whether that frame starts a new shot; ``shot`` is the current shot number (0 from the
first frame). It works frame by frame, with no look-ahead, so files, cameras and the
server's WebSocket stream share it. Frames are compared on a small copy (``width`` px
wide), which keeps the cost per frame well under a millisecond at 640x480.

Detectors (``SHOT_METHODS``), chosen by measurement on edited clips of real faces
(``benchmarks/shot_cuts.py``, BENCHMARKS.md "Shot cuts"):

- ``hash`` (default): PySceneDetect's ``HashDetector`` (distance between perceptual hashes
  of consecutive frames) at threshold 0.2: every cut found and no false cut on the clips,
  analysing every frame or every third; photographers' flashes, pans, dim light and
  exposure ramps do not cut. At 0.1 every third frame gives false cuts, at 0.25 cuts are
  missed; PySceneDetect's own default, 0.35, misses 40% of them;
- ``content``: its ``ContentDetector`` (mean change of hue, saturation and luma), threshold
  27: cuts between shots of one set are missed (and, without the confirmation below, every
  photographer's flash was a false cut);
- ``histogram``: its ``HistogramDetector`` (luma histogram correlation), threshold 0.2:
  misses most cuts between similar-looking shots;
- ``off``: never cuts.

Every cut a detector reports is then confirmed on 16x12 grey thumbnails of the two frames:
their normalised cross-correlation (zero mean, unit norm: blind to brightness and contrast)
must be below ``confirm`` (0.89). On filmed footage (``emolens.testing.footage``) the hash
flips inside continuous shots (a hand passing over a face, a quick head turn in a dim
close-up: distances of 0.25-0.28 on ``sad_to_laughing``) where the thumbnails still correlate
at 0.96-0.97 frame to frame and 0.90 or more three frames apart, while every true cut of the
edited clips and of ``face_then_cartoon`` correlates at 0.88 or less (BENCHMARKS.md "Shot
cuts").

Ten frames apart (``--every 10``) a moving close-up or a pan decorrelates as much as a cut, so
the frames in between are looked at too: a ``VideoFile`` reading every Nth frame keeps the
thumbnail of every ``BETWEEN_STRIDE``-th frame it skips (``Frame.between``), and a cut is
confirmed only when some step of the chain previous frame -> those thumbnails -> this frame
correlates below ``confirm``. Two frames apart, continuous shots of the filmed and edited clips
correlate at 0.93 or more and true cuts at 0.87 or less; at ``--every 10`` the false cuts of
both sets go from 17 to 0 and decoding costs about 3 ms more per analysed frame (colour
conversion and resize of frames the decoder has decoded anyway; BENCHMARKS.md "Shot cuts").
Live sources that drop frames give no chain: their cuts are confirmed on the two frames alone.

``min_shot_seconds`` suppresses a second cut sooner than that after the last one (a flash
or a fast pan counts once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

DEFAULT_SHOT_METHOD = "hash"
DEFAULT_MIN_SHOT_SECONDS = 0.4
SHOT_METHODS = ("hash", "content", "histogram", "off")
# Each method's threshold on the small copy: PySceneDetect's own defaults unless the
# cut-clip measurement said otherwise (see BENCHMARKS.md "Shot cuts").
DEFAULT_THRESHOLDS = {"content": 27.0, "histogram": 0.2, "hash": 0.2}
DEFAULT_CONFIRM = 0.89      # a cut needs the two frames' thumbnails to correlate less than this
THUMBNAIL = (16, 12)
BETWEEN_STRIDE = 2          # with --every N, a thumbnail of every 2nd skipped frame joins the chain


def _scenedetect():
    try:
        from scenedetect import FrameTimecode
        from scenedetect.detectors import ContentDetector, HashDetector, HistogramDetector
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise RuntimeError("shot detection needs PySceneDetect: pip install scenedetect-headless") from exc
    return FrameTimecode, {"content": ContentDetector, "histogram": HistogramDetector, "hash": HashDetector}


@dataclass
class ShotChange:
    """A cut: the first frame (index, seconds) of shot ``shot``."""

    shot: int
    index: int
    timestamp: float


class ShotDetector:
    """Frame-by-frame cut detection; ``update`` returns True on the first frame of a new shot."""

    def __init__(self, method: str = DEFAULT_SHOT_METHOD, threshold: float | None = None,
                 min_shot_seconds: float = DEFAULT_MIN_SHOT_SECONDS, width: int = 160,
                 confirm: float | None = DEFAULT_CONFIRM):
        if method not in SHOT_METHODS:
            raise ValueError(f"unknown shot detector {method!r}; choose one of {', '.join(SHOT_METHODS)}")
        if not (min_shot_seconds >= 0 and np.isfinite(min_shot_seconds)):
            raise ValueError(f"min_shot_seconds must be 0 or more seconds, got {min_shot_seconds}")
        if width < 16:
            raise ValueError(f"width must be 16 px or more, got {width}")
        if confirm is not None and not -1.0 < confirm <= 1.0:
            raise ValueError(f"confirm must be a correlation in (-1, 1] or None (off), got {confirm}")
        self.confirm = confirm
        self._thumbnail: np.ndarray | None = None
        self.method = method
        self.width = int(width)
        self.min_shot_seconds = float(min_shot_seconds)
        self.threshold = DEFAULT_THRESHOLDS.get(method) if threshold is None else float(threshold)
        self.shot = 0
        self.changes: list[ShotChange] = []
        self._detector = None
        self._last_cut_time: float | None = None
        self._previous_time: float | None = None
        if method != "off":
            self._timecode, detectors = _scenedetect()
            kind = detectors[method]
            # Our own min-shot rule below works on timestamps (variable frame rates, --every):
            # PySceneDetect's own minimum scene length is off (0 frames: its flash filter passes every cut).
            self._detector = kind(threshold=self.threshold, min_scene_len=0)

    def small(self, image: np.ndarray) -> np.ndarray:
        """The copy frames are compared on: ``width`` px wide, BGR (grey is expanded)."""
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        h, w = image.shape[:2]
        if w > self.width:
            image = cv2.resize(image, (self.width, max(1, round(h * self.width / w))), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(image)

    def update(self, image: np.ndarray, index: int, timestamp: float, between: Sequence[np.ndarray] = ()) -> bool:
        """Feed the next analysed frame (BGR or grey); True when it starts a new shot.

        ``between``: ``thumbnail``s of frames skipped since the previous analysed frame, in
        order (``Frame.between``); a cut is confirmed when any step of that chain decorrelates."""
        if self._detector is None:
            return False
        if self._previous_time is not None and timestamp < self._previous_time:
            timestamp = self._previous_time       # a camera clock that stepped back: keep order
        self._previous_time = timestamp
        # The detector needs increasing frame numbers; a frame rate of 1000 turns seconds into them.
        tc = self._timecode(int(round(timestamp * 1000)), fps=1000.0)
        small = self.small(image)
        cuts = self._detector.process_frame(tc, small)
        previous, self._thumbnail = self._thumbnail, thumbnail(small)
        if not cuts or previous is None:       # the first frame starts shot 0, it is no cut
            return False
        if self.confirm is not None and chain_correlation([previous, *between, self._thumbnail]) >= self.confirm:
            return False          # the same picture, moved or re-lit: no cut
        if self._last_cut_time is not None and timestamp - self._last_cut_time < self.min_shot_seconds:
            return False
        self._last_cut_time = timestamp
        self.shot += 1
        self.changes.append(ShotChange(self.shot, int(index), float(timestamp)))
        return True


def thumbnail(image: np.ndarray) -> np.ndarray:
    """A frame's (BGR or grey, any size) 16x12 grey thumbnail, zero mean and unit norm (what
    ``correlation`` compares)."""
    t = cv2.resize(image, THUMBNAIL, interpolation=cv2.INTER_AREA)
    if t.ndim == 3:
        t = cv2.cvtColor(t, cv2.COLOR_BGR2GRAY)
    t = t.astype(np.float32)
    t -= t.mean()
    norm = float(np.sqrt((t * t).sum()))
    return t / norm if norm > 1e-3 else t


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised cross-correlation of two thumbnails (1: the same picture up to brightness and
    contrast; a flat grey thumbnail correlates 0 with anything)."""
    return float((a * b).sum())


def chain_correlation(thumbnails: Sequence[np.ndarray]) -> float:
    """The lowest ``correlation`` between consecutive thumbnails: a cut anywhere in the chain
    shows as one low step."""
    return min(correlation(a, b) for a, b in zip(thumbnails, thumbnails[1:]))


def detect_shots(frames, method: str = DEFAULT_SHOT_METHOD, threshold: float | None = None,
                 min_shot_seconds: float = DEFAULT_MIN_SHOT_SECONDS) -> list[ShotChange]:
    """Cuts in an iterable of ``(index, timestamp, image)``: the first frame of every shot after the first."""
    det = ShotDetector(method, threshold, min_shot_seconds)
    for index, timestamp, image in frames:
        det.update(image, index, timestamp)
    return det.changes
