"""File names as they really are: any bytes but ``/`` and NUL on Linux, not always UTF-8.

Python hands such names over as ``str`` with surrogate escapes (``b"caf\\xe9.jpg"`` becomes
``"caf\\udce9.jpg"``). Two things break on them: OpenCV (its path arguments are converted to
UTF-8 and the conversion crashes the process) and printing (stdout is strict UTF-8).
``printable`` gives a name (or a message holding names) safe to print; ``opencv_path``
gives a name OpenCV can take for a file whose name it cannot.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: object) -> str:
    """``text`` with bytes that are not UTF-8 shown as ``\\xNN`` and control characters (terminal
    escapes, carriage returns) as ``\\xNN``; tabs and line breaks are kept."""
    text = str(text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:  # a surrogate that is not an escaped byte
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def opencv_can_take(path: str | os.PathLike) -> bool:
    """OpenCV can be given this path (it is valid Unicode; names with undecodable bytes are not)."""
    try:
        os.fspath(path).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


class OpenCVPath:
    """A path to hand to OpenCV for ``path``: the path itself when OpenCV can take it, else a
    symlink to it with a plain ASCII name in a private temporary folder (removed by ``close()``).

    The symlink may dangle (an output not written yet): opening it for writing creates the
    real file. Raises ``OSError`` where symlinks cannot be made.
    """

    def __init__(self, path: str | os.PathLike, suffix: str = ""):
        self._folder: str | None = None
        path = os.fspath(path)
        if opencv_can_take(path):
            self.path = path
            return
        suffix = suffix if opencv_can_take(suffix) else ""
        self._folder = tempfile.mkdtemp(prefix="emolens-")
        self.path = os.path.join(self._folder, "file" + suffix)
        try:
            os.symlink(os.path.abspath(path), self.path)
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def __enter__(self) -> str:
        return self.path

    def __exit__(self, *exc) -> None:
        self.close()
