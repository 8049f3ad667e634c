"""Inputs -> units of work, each with the key that decides whether an earlier result still holds.

- A **video** is one unit (cut into segments later, once its frames are known).
- **Photos** go in chunks of about ``photos_per_task`` (one task and one Parquet part per
  chunk: a task and a file per photo would cost more than the photo). Chunks are cut where
  the hash of a path says so (content-defined chunking), so adding, removing or changing one
  photo changes its own chunk only and a rerun redoes just that chunk.
- An input that failed before any analysis (not found, no match) is a unit of its own,
  recorded as an error without running a task.

A unit's key is a digest of the analysis options' key and of each input's path, size and
modification time: a changed file or option gives a new key, and its old result is dropped.
A chunk whose key still holds but some of whose photos failed is tried again for those photos
only (``Ledger.reconcile``): a unit with the chunk's key, the failed photos and the next part
number, whose result is merged into the chunk's record.
"""

from __future__ import annotations

from dataclasses import dataclass

from emolens.batch.inputs import BatchInput, short_hash


@dataclass(frozen=True)
class Unit:
    """``kind``: "photos" (a chunk), "video" or "error"; ``key``: 16 hex digits; ``part``: the
    number of the ``faces/`` part a photo chunk's result is written as (above 0: a retry of the
    chunk's failed photos, merged into its record)."""

    key: str
    kind: str
    inputs: tuple[BatchInput, ...]
    part: int = 0

    @property
    def paths(self) -> list[str]:
        return [i.path for i in self.inputs]


def _chunk_ends_after(path: str, size: int) -> bool:
    return size <= 1 or int(short_hash("chunk", path), 16) % size == 0


def photo_chunks(photos: list[BatchInput], size: int) -> list[list[BatchInput]]:
    """Photos sorted by path, cut after a path whose hash is 0 modulo ``size`` (and at 4 x ``size``)."""
    chunks: list[list[BatchInput]] = []
    current: list[BatchInput] = []
    for photo in sorted(photos, key=lambda p: p.path):
        current.append(photo)
        if _chunk_ends_after(photo.path, size) or len(current) >= 4 * max(size, 1):
            chunks.append(current)
            current = []
    if current:
        chunks.append(current)
    return chunks


def plan_units(inputs: list[BatchInput], options_key: str, photos_per_task: int) -> list[Unit]:
    """The units for ``inputs``: error units first, then photo chunks, then videos (largest first,
    so the long ones start early and the short ones fill the gaps at the end)."""
    errors = [Unit(short_hash("error", i.path, i.error or ""), "error", (i,)) for i in inputs if i.error]
    photos = [i for i in inputs if not i.error and i.kind == "photo"]
    videos = sorted((i for i in inputs if not i.error and i.kind == "video"), key=lambda i: (-i.size, i.path))
    units = list(errors)
    for chunk in photo_chunks(photos, photos_per_task):
        units.append(Unit(short_hash(options_key, "photos", *(p.fingerprint for p in chunk)), "photos", tuple(chunk)))
    for video in videos:
        units.append(Unit(short_hash(options_key, "video", video.fingerprint), "video", (video,)))
    return units
