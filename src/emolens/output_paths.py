"""Where commands may write: never onto an input, never two outputs into one file, and only
where writing will work, checked before any long work.

Two paths are the same file when their resolved forms are equal (``./a.mp4``, ``dir/../a.mp4``
and a symlink to ``a.mp4`` all resolve to one path) or, for files that exist, when
``os.path.samefile`` says so (hard links). ``OutputPathError`` messages name both paths.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Iterable

PathLike = str | os.PathLike


class OutputPathError(ValueError):
    """An output would overwrite an input or another output, or cannot be written; the message names the paths."""


def same_file(a: PathLike, b: PathLike) -> bool:
    """``a`` and ``b`` name one file (through symlinks, ``./`` and ``..`` spellings, or hard links)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:                 # one of them does not exist (yet)
        return False


def check_distinct(inputs: Iterable[tuple[PathLike, str]], outputs: Iterable[tuple[PathLike | None, str]]) -> None:
    """Raise ``OutputPathError`` when an output is an input or two outputs are one file.

    ``inputs`` and ``outputs``: ``(path, what)`` pairs, ``what`` saying what the path is for
    (``"input video"``, ``"--csv"``); outputs that are None are skipped.
    """
    inputs = list(inputs)
    seen: list[tuple[PathLike, str]] = []
    for path, what in outputs:
        if path is None:
            continue
        for other, other_what in inputs:
            if same_file(path, other):
                raise OutputPathError(f"{path}: the {what} would overwrite the {other_what} {other}; "
                                      "write it somewhere else")
        for other, other_what in seen:
            if same_file(path, other):
                raise OutputPathError(f"{path} and {other} are the same file: the {what} would overwrite the "
                                      f"{other_what}; give each its own file")
        seen.append((path, what))


def _nearest_existing(path: Path) -> Path:
    for parent in [path, *path.parents]:
        if os.path.lexists(parent):
            return parent
    return Path(".")


def _probe_folder(folder: Path, path: PathLike, what: str) -> None:
    """Create and remove a file in ``folder``: the one test of "can write here" that root, read-only
    file systems and /proc all answer truthfully."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".emolens-probe-")
    except OSError as exc:
        raise OutputPathError(f"{path}: cannot write the {what} into {folder} ({exc.strerror}); "
                              "choose a folder you can write to") from None
    os.close(fd)
    os.unlink(probe)


def check_output_file(path: PathLike, what: str, suffixes: Iterable[str] | None = None) -> None:
    """Raise ``OutputPathError`` unless ``path`` can be written as a file, creating nothing.

    ``suffixes``: the accepted file name endings (lower case, with the dot); existing
    non-regular files (``/dev/stdout``, a pipe) are accepted whatever their name.
    Missing folders on the way are fine (they are created when writing), as long as the
    nearest existing one is a folder that can be written to.
    """
    text = os.fspath(path)
    if text == "":
        raise OutputPathError(f"the {what} is an empty path (an unset shell variable?); give a file name")
    p = Path(text)
    if p.is_dir():
        raise OutputPathError(f"{p}: is a folder; give a file name for the {what}")
    if p.exists():
        if not stat.S_ISREG(p.stat().st_mode):
            return                  # /dev/stdout, a pipe: written as they are
        if suffixes is not None:
            _check_suffix(p, what, suffixes)
        try:
            with open(p, "ab"):     # opens for writing without changing the file
                pass
        except OSError as exc:
            raise OutputPathError(f"{p}: cannot write the {what} ({exc.strerror}); "
                                  "check its permissions or choose another file") from None
        return
    if suffixes is not None:
        _check_suffix(p, what, suffixes)
    existing = _nearest_existing(p.parent)
    if not existing.is_dir():
        raise OutputPathError(f"{p}: cannot write the {what}: {existing} is a file, not a folder; "
                              "choose another place")
    _probe_folder(existing, p, what)


def _check_suffix(p: Path, what: str, suffixes: Iterable[str]) -> None:
    suffixes = sorted(suffixes)
    if p.suffix.lower() not in suffixes:
        raise OutputPathError(f"{p}: the {what} must be a {', '.join(suffixes[:-1])} or {suffixes[-1]} file"
                              if len(suffixes) > 1 else f"{p}: the {what} must be a {suffixes[0]} file")


def prepare_output_folder(path: PathLike, what: str) -> Path:
    """Create the folder ``path`` (and its parents) and check files can be written in it;
    ``OutputPathError`` names the folder and the fix."""
    text = os.fspath(path)
    if text == "":
        raise OutputPathError(f"the folder for the {what} is an empty path (an unset shell variable?); "
                              "give a folder name")
    p = Path(text)
    if os.path.lexists(p) and not p.is_dir():
        raise OutputPathError(f"{p}: is a file, not a folder; give a folder for the {what}")
    existing = _nearest_existing(p)
    if not existing.is_dir():
        raise OutputPathError(f"{p}: cannot create the folder for the {what}: {existing} is a file; "
                              "choose another place")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(f"{p}: cannot create the folder for the {what} ({exc.strerror}); "
                              "choose a place you can write to") from None
    _probe_folder(p, p, what)
    return p


MODEL_FILES = {".onnx": "model", ".json": "model card", ".md": "model card page"}


def check_model_output(out: PathLike, inputs: Iterable[tuple[PathLike | None, str]]) -> None:
    """Raise ``OutputPathError`` unless ``out`` is a ``.onnx`` path whose model, card (``.json``)
    and card page (``.md``) all land on no input: ``inputs`` are ``(path, what)`` pairs, None skipped
    (``quantize m.onnx --out m.json`` wrote the quantized model over the source's card)."""
    out = Path(out)
    check_output_file(out, "model", {".onnx"})
    check_distinct([(path, what) for path, what in inputs if path is not None],
                   [(out if suffix == ".onnx" else out.with_suffix(suffix), what) for suffix, what in MODEL_FILES.items()])


def model_inputs(model: PathLike) -> list[tuple[Path, str]]:
    """An input model's files as ``check_model_output`` inputs: the model, its card and card page."""
    model = Path(model)
    return [(model.with_suffix(suffix), f"input {what}") for suffix, what in MODEL_FILES.items()]


@contextlib.contextmanager
def staged_output(path: PathLike):
    """Yields where to write ``path`` (and files beside it: a model's card) inside a hidden folder
    next to it; they are moved into place only when the block ends without an error. A failed or
    interrupted export leaves an earlier file of that name as it was, and no half-written one."""
    final = Path(path)
    folder = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.partial-"))
    try:
        yield folder / final.name
        for staged in sorted(folder.iterdir()):
            os.replace(staged, final.parent / staged.name)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
