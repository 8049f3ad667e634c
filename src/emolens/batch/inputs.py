"""What ``emolens batch`` is given: files, folders (searched recursively), glob patterns and
manifests, turned into one ``BatchInput`` per file (a photo or a video).

A manifest is a ``.txt``/``.lst`` file (one path per line; blank lines and ``#`` comments
skipped), a ``.csv`` file or a ``.parquet`` file with a ``path`` column. Relative paths in a
manifest are taken from the manifest's folder; its entries may be files, folders or globs.
A manifest that cannot be read is refused up front (``InputError``); an entry that does not
exist becomes an input with an error, reported in the results like any bad file.

Folders and patterns are searched by ``emolens.file_search``: hidden names (``._IMG.jpg``,
``.thumbnails/``) are skipped and ``**`` does not enter symlinked folders. Paths are made
absolute (not resolved through symlinks), so results and resume keys do not depend on the
folder the command runs from.
"""

from __future__ import annotations

import csv
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from emolens.file_search import GLOB_CHARS, folder_files, glob_files
from emolens.images import IMAGE_SUFFIXES

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp",
                  ".ts", ".mts", ".m2ts", ".ogv", ".mxf", ".dv"}
MANIFEST_SUFFIXES = {".txt", ".lst", ".csv", ".parquet"}
LONGEST_PATH = 4096          # Linux's PATH_MAX: a longer manifest line is not a path


class InputError(ValueError):
    """An argument that cannot be used at all (an unreadable manifest); the message names it and the fix."""


@dataclass(frozen=True)
class BatchInput:
    """One file to analyse. ``kind``: "photo" or "video"; ``error``: why it cannot be (None: fine so far)."""

    path: str
    kind: str
    size: int = -1
    mtime_ns: int = -1
    error: str | None = None

    @property
    def fingerprint(self) -> str:
        """What makes a result of this input still valid: its path, size and modification time."""
        return f"{self.path}\0{self.size}\0{self.mtime_ns}"


def classify(path: str | Path) -> str:
    """"photo" or "video", by the name's suffix; a file with another suffix is a photo when Pillow
    recognises a picture in its header, else a video (the video reader then says what it is)."""
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "photo"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    try:
        from PIL import Image

        with Image.open(path):
            return "photo"
    except Exception:
        return "video"


def _absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def _stat_input(path: str, kind: str | None = None) -> BatchInput:
    kind = kind or classify(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return BatchInput(path, kind, error=f"{path}: file not found; check the path")
    except OSError as exc:
        return BatchInput(path, kind, error=f"{path}: cannot be read ({exc.strerror}); check its permissions")
    if not stat.S_ISREG(st.st_mode):
        return BatchInput(path, kind, error=f"{path}: is not a regular file (a device, pipe or socket); "
                                            "pass photo or video files")
    return BatchInput(path, kind, st.st_size, st.st_mtime_ns)


def _folder_files(folder: Path) -> list[str]:
    wanted = IMAGE_SUFFIXES | VIDEO_SUFFIXES
    return folder_files(folder, wanted)


def read_manifest(path: str | Path) -> list[str]:
    """The entries of a manifest (relative ones joined to its folder); ``InputError`` when it cannot be read."""
    p = Path(path)
    suffix = p.suffix.lower()
    try:
        if not stat.S_ISREG(os.stat(p).st_mode):    # a pipe would block, /dev/zero never end
            raise InputError(f"{p}: the manifest is not a regular file (a device, pipe or socket); "
                             "write the list of paths to a file and pass that")
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            schema = pq.read_schema(p)
            if "path" not in schema.names:
                raise InputError(f"{p}: this Parquet manifest has no 'path' column (it has: "
                                 f"{', '.join(schema.names[:8])}); add one with the file paths")
            entries = [v for v in pq.read_table(p, columns=["path"]).column("path").to_pylist() if v]
        elif suffix == ".csv":
            with open(p, newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                if reader.fieldnames is None or "path" not in [n.strip() for n in reader.fieldnames]:
                    raise InputError(f"{p}: this CSV manifest has no 'path' column in its header; add a header "
                                     "line with a column named path")
                entries = [row["path"].strip() for row in reader if (row.get("path") or "").strip()]
        else:
            entries = []
            with open(p, encoding="utf-8", errors="surrogateescape") as f:
                for number, line in enumerate(iter(lambda: f.readline(LONGEST_PATH + 2), ""), 1):
                    if len(line.rstrip("\r\n")) > LONGEST_PATH:     # not one path a line: a binary file named .txt
                        raise InputError(f"{p}: line {number} is longer than {LONGEST_PATH} characters, so this is "
                                         "not a list of paths (one a line); check the file")
                    if line.strip() and not line.lstrip().startswith("#"):
                        entries.append(line.strip())
    except InputError:
        raise
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{p}: the manifest cannot be read ({getattr(exc, 'strerror', None) or exc}); "
                         "check the file") from None
    except Exception as exc:  # pyarrow's own errors on a damaged Parquet file
        raise InputError(f"{p}: the manifest cannot be read as Parquet ({str(exc).splitlines()[0][:120]}); "
                         "check the file") from None
    return [str(entry) if os.path.isabs(str(entry)) else str(p.parent / str(entry)) for entry in entries]


def _expand_one(text: str, manifests: bool) -> list[BatchInput]:
    if text == "":
        return [BatchInput(text, "photo", error="empty path (an unset shell variable?); pass files or folders")]
    p = Path(os.path.expanduser(text))
    if p.is_dir():
        found = _folder_files(p)
        if not found:
            return [BatchInput(_absolute(text), "photo",
                               error=f"{text}: the folder holds no photos or videos (looked for "
                                     f"{', '.join(sorted((IMAGE_SUFFIXES | VIDEO_SUFFIXES)))})")]
        return [_stat_input(_absolute(f)) for f in found]
    if p.exists():
        if manifests and p.suffix.lower() in MANIFEST_SUFFIXES:
            out = []
            for entry in read_manifest(p):
                out.extend(_expand_one(entry, manifests=False))
            return out
        return [_stat_input(_absolute(text))]
    if GLOB_CHARS & set(text):
        matches = glob_files(text)
        if not matches:
            return [BatchInput(text, classify(text), error=f"{text}: no file matches this pattern")]
        return [_stat_input(_absolute(m)) for m in matches]
    return [BatchInput(_absolute(text), classify(text), error=f"{text}: file not found; check the path")]


def expand_inputs(paths: Iterable[str | os.PathLike]) -> list[BatchInput]:
    """One ``BatchInput`` per file named by ``paths`` (each path once, first mention kept).

    Raises ``InputError`` for a manifest that cannot be read.
    """
    seen: set[str] = set()
    out: list[BatchInput] = []
    for raw in paths:
        for item in _expand_one(os.fspath(raw), manifests=True):
            if item.path in seen:
                continue
            seen.add(item.path)
            out.append(item)
    return out


def short_hash(*parts: str, length: int = 16) -> str:
    """A stable hex digest of strings (paths may hold any bytes: surrogate escapes are kept)."""
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(part.encode("utf-8", "surrogateescape"))
        h.update(b"\0")
    return h.hexdigest()[:length]
