"""``emolens batch``: whole archives of photos and videos on Dask distributed, into Parquet.

The same per-input analysis as ``emolens predict`` (photos) and ``emolens video`` (videos)
runs as Dask tasks, on a ``LocalCluster`` bound to 127.0.0.1 (one single-threaded worker
process per core) or on any existing cluster by address (``dask scheduler`` + ``dask
worker``, dask-jobqueue on SLURM/PBS, Kubernetes). No scheduler of our own.

Modules, in the order the work flows:

- ``inputs``: files, folders, globs and manifests (text, CSV or Parquet with a ``path``
  column) -> ``BatchInput`` (path, photo or video, size, mtime).
- ``settings``: ``AnalysisOptions``, the predict/video options with their defaults, and
  the key that says whether an earlier result is still valid.
- ``plan``: inputs -> units of work (a chunk of photos, or one video) with resume keys.
- ``segments``: a video's exact frame timestamps (PyAV, container only, no decoding) and
  its cut into segments; reading one segment frame-exactly with OpenCV.
- ``stitching``: a video's segments joined: track ids and person ids carried across
  segment boundaries, scores smoothed as one run would.
- ``columns``: the Parquet schemas of ``faces/``, ``inputs.parquet`` and ``summary.csv``.
- ``storage``: the output folder, atomic writes, the lock and the ledger of finished units.
- ``tasks``: the functions the workers run (one recognizer per worker process).
- ``engine``: the Dask client (local cluster or address).
- ``progress``: the one progress bar.
- ``run``: ``run_batch``, which ties them together.

Dask, pyarrow and PyAV come with the extra: ``pip install 'emolens[batch]'``. Importing
this package needs none of them; ``missing_extra()`` says what is missing.
"""

from __future__ import annotations

import importlib.util

EXTRA_HINT = "pip install 'emolens[batch]'"
REQUIRED_MODULES = {"distributed": "dask[distributed]", "pyarrow": "pyarrow", "av": "av (PyAV)"}


def missing_extra() -> str | None:
    """A message naming the missing packages of the batch extra and how to install them (None: all there)."""
    missing = [name for module, name in REQUIRED_MODULES.items() if importlib.util.find_spec(module) is None]
    if not missing:
        return None
    return f"emolens batch needs the batch extra ({', '.join(missing)} missing): {EXTRA_HINT}"


def run_batch(*args, **kwargs):
    """See ``emolens.batch.run.run_batch``."""
    from emolens.batch.run import run_batch as run

    return run(*args, **kwargs)


__all__ = ["EXTRA_HINT", "missing_extra", "run_batch"]
