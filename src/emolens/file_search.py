"""Finding the files a user names by folder or glob pattern, safely on real disks.

Two rules, the same for ``predict``, ``batch`` and image-folder training data:

- **Hidden names are not searched**: files and folders whose name starts with a dot
  (``._IMG_0001.jpg`` AppleDouble files a Mac leaves on USB sticks, ``.thumbnails/``,
  ``.git/``). A pattern that spells the dot itself (``photos/.cache/*.jpg``) still reaches them.
- **Symlinked folders are not descended** by a folder search or a ``**`` pattern (as ``find``
  does not): a link back to a parent folder made ``glob.glob`` list one picture 2**40 times.
  Symlinked files are found; a ``*`` that names a linked folder in a pattern is followed.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Iterable

GLOB_CHARS = set("*?[")


def _hidden(name: str) -> bool:
    return name.startswith(".") and name not in {".", ".."}


def folder_files(folder: str | os.PathLike, suffixes: Iterable[str], regular_only: bool = True) -> list[str]:
    """Files below ``folder`` (recursively) whose suffix (any case) is one of ``suffixes``,
    sorted; hidden names and symlinked folders are skipped (see the module's rules).
    ``regular_only=False`` keeps what is not a folder but not a file either (pipes, dangling
    links), for a caller that reports them."""
    wanted = {s.lower() for s in suffixes}
    found = []
    for parent, dirs, files in os.walk(folder):   # followlinks=False: linked folders are not entered
        dirs[:] = [d for d in dirs if not _hidden(d)]
        for name in files:
            path = os.path.join(parent, name)
            if (not _hidden(name) and os.path.splitext(name)[1].lower() in wanted
                    and (os.path.isfile(path) or not regular_only)):
                found.append(path)
    return sorted(found)


def glob_files(pattern: str) -> list[str]:
    """The files a glob pattern matches (``~`` expanded; ``**`` = this folder and every folder
    below), sorted, each once. Unlike ``glob.glob(recursive=True)``, ``**`` does not enter
    symlinked folders; like it, wildcards do not match hidden names unless the pattern spells
    the dot."""
    text = os.path.expanduser(pattern)
    parts = Path(text).parts
    first = next((i for i, part in enumerate(parts) if GLOB_CHARS & set(part)), len(parts))
    if first == len(parts):
        return [text] if os.path.isfile(text) else []
    root = Path(*parts[:first]) if first else Path(".")
    rest = parts[first:]
    dots = any(part.startswith(".") for part in rest)
    try:
        matches = list(root.glob("/".join(rest)))   # pathlib's "**" does not follow symlinked folders
    except ValueError:   # "**" inside a name ("a**b.jpg"): pathlib refuses it, glob reads it as "*"
        matches = [Path(m) for m in glob.glob(text)]
    except OSError:
        return []
    return sorted({str(m) for m in matches
                   if (dots or not any(_hidden(p) for p in m.parts[len(root.parts):])) and os.path.isfile(m)})
