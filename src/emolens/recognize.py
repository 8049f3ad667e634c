"""``Recognizer``: image -> faces -> landmarks -> aligned crops -> model -> ``Face`` results.

One path for every caller (API, CLI, video, benchmarks)::

    from emolens import Recognizer
    rec = Recognizer()                      # loads detector, landmarks and model once
    for face in rec.analyze("photo.jpg"):   # or a BGR / RGB / grey numpy array
        print(face.emotion, face.scores["happy"], face.box)

All faces of an image go through the model in one batched call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from emolens import options
from emolens.emotions import EMOTIONS
from emolens.faces.align import DEFAULT_CROP, CropSpec, crop_face, get_crop
from emolens.faces.detect import DEFAULT_DETECTOR, Detection, FaceDetector, detect_faces, get_detector
from emolens.faces.landmarks import MIN_LANDMARK_FACE, LandmarkPredictor
from emolens.images import ImageError, read_image, read_image_scaled, to_bgr8, to_grey
from emolens.people.pose import HeadPose, head_pose, is_frontal, landmark_fit


@dataclass
class Face:
    """One face found in a picture and its emotions.

    ``box`` is ``(x, y, w, h)`` in the picture's pixels; ``landmarks`` the 68 points
    ``(68, 2)`` or ``None`` (face too small); ``scores`` the 7 emotion probabilities
    (sum 1); ``intensity`` each emotion's strength 0..1; ``emotion`` the top label;
    ``aligned`` whether the crop was landmark-aligned (False: box crop fallback);
    ``pose`` the head's yaw, pitch and roll in degrees (None: no landmarks, or landmarks
    that do not fit a face, such as dlib's frontal template on a profile); ``frontal``
    whether the face is seen near enough from the front for its answer to be trusted
    (``emolens.people.pose``).
    """

    box: tuple[int, int, int, int]
    landmarks: np.ndarray | None
    scores: dict[str, float]
    intensity: dict[str, float]
    emotion: str
    aligned: bool
    detection_score: float = 0.0
    pose: HeadPose | None = None
    frontal: bool = False

    def scaled(self, factor: float) -> "Face":
        """The same face in a picture ``factor`` times larger (boxes and landmarks scaled)."""
        if factor == 1.0:
            return self
        box = tuple(int(round(v * factor)) for v in self.box)
        lm = None if self.landmarks is None else self.landmarks * factor
        return Face(box, lm, self.scores, self.intensity, self.emotion, self.aligned, self.detection_score,
                    self.pose, self.frontal)

    def to_dict(self) -> dict:
        """JSON-ready: lists and floats only (see ``emolens.predict`` for the documented shape)."""
        return {
            "box": [int(v) for v in self.box],
            "emotion": self.emotion,
            "scores": {k: round(float(v), 5) for k, v in self.scores.items()},
            "intensity": {k: round(float(v), 5) for k, v in self.intensity.items()},
            "aligned": bool(self.aligned),
            "landmarks": None if self.landmarks is None else np.round(self.landmarks, 1).tolist(),
            "detection_score": round(float(self.detection_score), 4),
            "pose": None if self.pose is None else self.pose.to_dict(),
            "frontal": bool(self.frontal),
        }


@dataclass
class LocatedFace:
    """A face before classification: where it is and the model's input crop."""

    box: tuple[int, int, int, int]
    landmarks: np.ndarray | None
    crop: np.ndarray          # (S, S) uint8 grey
    aligned: bool
    detection_score: float = 0.0
    pose: HeadPose | None = None


@dataclass
class StageTimes:
    """Seconds spent per stage by the last ``analyze`` call (for benchmarks and video stats)."""

    convert: float = 0.0
    detect: float = 0.0
    landmarks: float = 0.0
    align: float = 0.0
    classify: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def total(self) -> float:
        return self.convert + self.detect + self.landmarks + self.align + self.classify


class Recognizer:
    """Finds faces and recognises their emotions.

    detector: a name from ``emolens.faces.list_detectors()`` or a ``FaceDetector``.
    model: path to an exported ``.onnx`` model, an ``EmotionModel``, or None (the shipped one).
    align: False is shorthand for ``crop="box"``.
    crop: framing name from ``emolens.faces.CROPS`` or a ``CropSpec``.
    color: channel order of colour arrays passed to ``analyze`` ("bgr" as OpenCV, or "rgb").
    landmarks: False skips the shape predictor (faster; implies the box crop).
    max_faces: keep only the largest N faces (None: all).
    min_face: ignore boxes smaller than this many pixels (side).
    detect_side: longest side of the copy the detector runs on.
    """

    def __init__(self, detector: str | FaceDetector = DEFAULT_DETECTOR, model=None, align: bool = True,
                 crop: str | CropSpec | None = None, color: str = "bgr", landmarks: bool = True,
                 max_faces: int | None = None, min_face: int = 12, detect_side: int = 640,
                 threads: int | None = None):
        from emolens.runtime import EmotionModel

        checked = options.check_all(max_faces=max_faces, min_face=min_face, detect_side=detect_side, threads=threads)
        max_faces, min_face, detect_side, threads = checked.values()
        if color not in ("bgr", "rgb"):
            raise ValueError(f"color must be 'bgr' or 'rgb', got {color!r}")
        if model is None or isinstance(model, (str, Path)):
            self.model = EmotionModel(model, threads=threads)
        else:  # an EmotionModel, or anything with its interface (input_size, __call__)
            self.model = model
        if isinstance(detector, FaceDetector):
            self.detector = detector
        else:
            self.detector = get_detector(detector, max_side=detect_side)
        self.crop = get_crop(crop if crop is not None else (DEFAULT_CROP if align else "box"))
        if not align and self.crop.mode == "aligned":
            self.crop = get_crop("box")
        self.use_landmarks = landmarks
        if not landmarks and self.crop.mode == "aligned":
            self.crop = get_crop("box")
        self.landmarker = LandmarkPredictor() if landmarks else None
        self.box_crop = get_crop("box")
        self.color = color
        self.max_faces = max_faces
        self.min_face = min_face
        self.times = StageTimes()

    @property
    def input_size(self) -> int:
        return self.model.input_size

    def locate(self, image, color: str | None = None) -> list[LocatedFace]:
        """Faces with their landmarks and model crops, not yet classified."""
        t0 = time.perf_counter()
        grey = self._grey(image, color)
        t1 = time.perf_counter()
        detections = self.detect(grey)
        t2 = time.perf_counter()
        located = self.locate_boxes(grey, [d.box for d in detections], [d.score for d in detections],
                                    [d.full_box for d in detections])
        self.times.convert, self.times.detect = t1 - t0, t2 - t1
        return located

    def detect(self, grey: np.ndarray, retry: bool | None = None) -> list[Detection]:
        """Face boxes in a grey uint8 image (largest first), after ``min_face`` and ``max_faces``.

        The detection step of ``locate`` alone: video runs it every few frames and tracks
        the faces in between with ``locate_boxes``. retry: False skips the detector's padded
        second chance for pictures where it finds nothing (see ``emolens.faces.detect``).
        """
        found = detect_faces(self.detector, grey, retry)
        detections = [d for d in found if min(d.box[2], d.box[3]) >= self.min_face]
        if self.max_faces is not None:
            detections = detections[: self.max_faces]
        return detections

    def locate_boxes(self, grey: np.ndarray, boxes: Sequence[tuple[int, int, int, int]],
                     scores: Sequence[float] | None = None,
                     full_boxes: Sequence[tuple[int, int, int, int]] | None = None) -> list[LocatedFace]:
        """Landmarks and model crops for faces whose boxes are already known (no detection).

        ``grey``: the picture as 2-D uint8; ``boxes``: ``(x, y, w, h)`` in its pixels, as
        reported. ``full_boxes``: the same boxes before clipping to the picture
        (``Detection.full_box``), which the landmark predictor and the box crop use; None:
        ``boxes``. Sets ``times.landmarks`` and ``times.align`` (``convert`` and ``detect`` to 0).
        """
        t2 = time.perf_counter()
        scores = list(scores) if scores is not None else [0.0] * len(boxes)
        full_boxes = list(full_boxes) if full_boxes is not None else list(boxes)
        marks: list[np.ndarray | None] = []
        poses: list[HeadPose | None] = []
        image_size = (grey.shape[1], grey.shape[0])
        for box, full in zip(boxes, full_boxes):
            lm = pose = None
            if self.landmarker is not None and min(box[2], box[3]) >= MIN_LANDMARK_FACE:
                lm = self.landmarker(grey, full)
                pose = head_pose(lm, image_size)
                if not landmark_fit(lm, full, pose):
                    lm = pose = None    # a frontal template on a profile or a blur: box crop, no pose
            marks.append(lm)
            poses.append(pose)
        t3 = time.perf_counter()
        located = []
        size = self.input_size
        for box, full, lm, score, pose in zip(boxes, full_boxes, marks, scores, poses):
            aligned = self.crop.mode == "aligned" and lm is not None
            if aligned:
                crop = crop_face(grey, self.crop, size, landmarks=lm)
            else:
                spec = self.crop if self.crop.mode == "box" else self.box_crop
                crop = crop_face(grey, spec, size, box=full)
            located.append(LocatedFace(tuple(int(v) for v in box), lm, crop, aligned, score, pose))
        t4 = time.perf_counter()
        self.times = StageTimes(landmarks=t3 - t2, align=t4 - t3)
        return located

    def classify(self, located: Sequence[LocatedFace]) -> list[Face]:
        """Run the model once on all crops."""
        t0 = time.perf_counter()
        if not located:
            self.times.classify = 0.0
            return []
        out = self.model(np.stack([f.crop for f in located]))
        faces = []
        for i, f in enumerate(located):
            probs = out.probabilities[i]
            faces.append(Face(
                box=tuple(int(v) for v in f.box),
                landmarks=f.landmarks,
                scores={e: float(p) for e, p in zip(EMOTIONS, probs)},
                intensity={e: float(v) for e, v in zip(EMOTIONS, out.intensity[i])},
                emotion=EMOTIONS[int(np.argmax(probs))],
                aligned=f.aligned,
                detection_score=f.detection_score,
                pose=f.pose,
                frontal=is_frontal(f.pose),
            ))
        self.times.classify = time.perf_counter() - t0
        return faces

    def analyze(self, image, color: str | None = None) -> list[Face]:
        """Faces and emotions in a picture: a path, or a BGR/RGB/grey numpy array (any of uint8/uint16/float).

        For a path, boxes and landmarks are in the file's pixels even when a huge picture
        was analysed downscaled. Raises ``emolens.images.ImageError`` for unusable files.
        """
        if isinstance(image, (str, Path)):
            bgr, factor = read_image_scaled(image)
            return [f.scaled(factor) for f in self.classify(self.locate(bgr, "bgr"))]
        return self.classify(self.locate(image, color))

    def stream(self, source, every: int = 1, realtime: bool = False, detect_every: int | None = None,
               half_life: float | None = None, max_missed: int | None = None, same_person: float | None = None,
               **more):
        """Faces and emotions frame by frame in a video file, a camera or a ``emolens.video.FrameSource``.

        ``source``: a file path, a camera number (``0``), a ``FrameSource``, or an iterable of
        BGR frames. Yields an ``emolens.video.FrameResult`` per analysed frame: ``index``,
        ``timestamp`` (s), and ``faces`` (``TrackedFace``: ``track_id``, ``box``,
        ``landmarks``, smoothed ``scores``/``intensity``/``emotion`` and their ``raw_*``).

        every: analyse every Nth frame of a file. realtime: play a file at its own speed,
        dropping frames when analysis lags (cameras always do). detect_every: run the face
        detector every N analysed frames and follow faces by their landmarks in between.
        half_life: smoothing half-life in seconds (0: off). max_missed: analysed frames a face
        may go unseen before its track ends. same_person: two faces closer than this face-descriptor
        distance are one person (default ``emolens.people.persons.SAME_PERSON``). See
        ``emolens.video`` for the details.
        """
        from emolens import video

        tuning = {k: v for k, v in (("detect_every", detect_every), ("half_life", half_life),
                                    ("max_missed", max_missed), ("same_person", same_person)) if v is not None}
        tuning = options.check_all(**tuning)        # every range in one place (emolens.options)
        every = options.check("every", every)
        if not isinstance(source, (str, Path, int, video.FrameSource)) and hasattr(source, "__iter__"):
            source = _checked_frames(source)        # an empty array names its frame, not a cv2 assertion
        return video.stream(self, source, every=every, realtime=realtime, color=more.pop("color", "bgr"),
                            **tuning, **more)

    def _grey(self, image, color: str | None) -> np.ndarray:
        if isinstance(image, (str, Path)):
            return to_grey(read_image(image))
        return to_grey(image, color or self.color)

    @staticmethod
    def load(image, color: str = "bgr") -> np.ndarray:
        """A picture (path or array) as the 8-bit BGR image ``analyze`` sees (for drawing)."""
        if isinstance(image, (str, Path)):
            return read_image(image)
        return to_bgr8(image, color)


def _checked_frames(frames):
    """The frames of an iterable, each refused with its number when it holds no pixel (or is None)."""
    from emolens.video import Frame

    for i, item in enumerate(frames):
        image = item.image if isinstance(item, Frame) else item
        if image is None or np.asarray(image).size == 0:
            shape = "None" if image is None else f"shape {np.asarray(image).shape}"
            raise ImageError(f"frame {item.index if isinstance(item, Frame) else i}: an empty frame ({shape}); "
                             "a stream needs pictures with pixels (check the camera or the code making the frames)")
        yield item
