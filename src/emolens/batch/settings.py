"""The analysis options of a batch: those of ``emolens predict`` and ``emolens video``, with
their defaults, so a row of ``emolens batch`` is the row either command gives for the same
input; and the key that says whether an earlier result was made with the same options."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from emolens import options as ranges
from emolens.people.persons import SAME_PERSON
from emolens.video.tracking import DEFAULT_DETECT_EVERY, DEFAULT_HALF_LIFE, DEFAULT_MAX_MISSED

DEFAULT_SEGMENT_SECONDS = 60.0
DEFAULT_PHOTOS_PER_TASK = 32


@dataclass(frozen=True)
class AnalysisOptions:
    """Everything that changes a face row. ``model_id`` is filled by ``resolved()`` (the model
    card's name and a hash of the model file), so a changed model file is a changed option."""

    detector: str | None = None        # None: the default detector (as predict and video)
    align: bool = True
    crop: str | None = None
    model: str | None = None           # None: the shipped model
    max_faces: int | None = None
    detect_side: int = 640
    every: int = 1
    detect_every: int = DEFAULT_DETECT_EVERY
    half_life: float = DEFAULT_HALF_LIFE
    max_missed: int = DEFAULT_MAX_MISSED
    same_person: float = SAME_PERSON
    model_id: str = ""

    def resolved(self) -> "AnalysisOptions":
        """The options checked (ranges, detector and crop names, the model file) with ``model_id`` set;
        ``ValueError`` (``OptionError``, ``UnknownDetectorError``, ``ModelError``) naming the problem."""
        from emolens.faces.align import CROPS
        from emolens.faces.detect import DEFAULT_DETECTOR, UnknownDetectorError, list_detectors
        from emolens.runtime import ModelError, card_path_for, default_model_path

        ranges.check_all(max_faces=self.max_faces, detect_side=self.detect_side, every=self.every,
                         detect_every=self.detect_every, half_life=self.half_life, max_missed=self.max_missed,
                         same_person=self.same_person)
        detector = self.detector or DEFAULT_DETECTOR
        if detector not in list_detectors():
            raise UnknownDetectorError(f"unknown detector {detector!r}; choose one of: "
                                       f"{', '.join(list_detectors())} (see `emolens detectors`)")
        if self.crop is not None and self.crop not in CROPS:
            raise ValueError(f"unknown crop {self.crop!r}; choose one of: {', '.join(CROPS)}")
        path = Path(self.model) if self.model is not None else default_model_path()
        if not path.is_file():
            raise ModelError(f"{path}: model file not found; pass --model PATH to an exported .onnx model")
        card = card_path_for(path)
        try:
            name = json.loads(card.read_text()).get("name") if card.is_file() else None
        except (OSError, ValueError):
            name = None
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        model = None if self.model is None else str(path.absolute())
        return replace(self, model=model, model_id=f"{name or path.stem}@{digest}")

    def key(self) -> str:
        """A digest of every option that changes a row (the model by its content, not its path)."""
        from emolens import __version__

        values = asdict(self)
        values.pop("model")
        if values["same_person"] == SAME_PERSON:    # results made before the option existed stay valid
            values.pop("same_person")
        values["emolens"] = __version__
        return hashlib.blake2b(json.dumps(values, sort_keys=True).encode(), digest_size=8).hexdigest()

    def recognizer_kwargs(self) -> dict:
        """Arguments of ``Recognizer``, as ``emolens predict`` / ``emolens video`` build it (one thread:
        a worker process per core)."""
        kwargs = {"model": self.model, "align": self.align, "crop": self.crop, "max_faces": self.max_faces,
                  "detect_side": self.detect_side, "threads": 1}
        if self.detector is not None:
            kwargs["detector"] = self.detector
        return kwargs

    def tracking_kwargs(self) -> dict:
        """Arguments of ``FaceTracker``, as ``emolens video`` passes them."""
        return {"detect_every": self.detect_every, "half_life": self.half_life, "max_missed": self.max_missed,
                "same_person": self.same_person}
