"""emolens: emotion recognition on faces in photos, video and live camera, on a CPU.

``from emolens import Recognizer`` is the entry point; see ``emolens.recognize``.
Nothing here imports torch (training lives in ``emolens.training``).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["EMOTIONS", "Face", "Recognizer", "__version__"]


def __getattr__(name: str):
    # Lazy, so `import emolens` (and the CLI's start-up) stays light.
    if name in ("Recognizer", "Face"):
        from emolens import recognize

        return getattr(recognize, name)
    if name == "EMOTIONS":
        from emolens.emotions import EMOTIONS

        return EMOTIONS
    raise AttributeError(f"module 'emolens' has no attribute {name!r}")
