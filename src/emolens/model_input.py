"""The one definition of what a model sees: a grey face, resized and normalised.

Training (``emolens.training``) and the runtime both use ``InputSpec``; exported models
store it in their model card, so a model always runs with the preprocessing it was
trained with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class InputSpec:
    size: int = 48          # square side in pixels
    mean: float = 0.5       # after scaling to 0..1
    std: float = 0.25
    channels: int = 1       # grey

    def normalize(self, faces_uint8: np.ndarray) -> np.ndarray:
        """``(N, size, size)`` uint8 grey faces -> ``(N, 1, size, size)`` float32 model input."""
        x = faces_uint8.astype(np.float32) * (1.0 / 255.0)
        return ((x - self.mean) / self.std)[:, None]

    def to_dict(self) -> dict:
        return {**asdict(self), "layout": "NCHW", "color": "grey", "scale": "1/255"}

    @classmethod
    def from_dict(cls, d: dict) -> "InputSpec":
        return cls(size=int(d["size"]), mean=float(d["mean"]), std=float(d["std"]), channels=int(d.get("channels", 1)))


DEFAULT_INPUT = InputSpec()
