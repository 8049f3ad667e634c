"""The allowed range of every numeric option, in one place: CLI, Python API and server alike.

``check("max_faces", value)`` returns the value (as its type) or raises ``OptionError``
naming the option, its range and the value given. The CLI spells the name as its flag
(``--max-faces``, via ``cli_check``), the server as its query parameter (``max_faces``,
via ``parse``); the range and the wording are the same everywhere::

    >>> check("half_life", float("inf"))
    Traceback (most recent call last):
    OptionError: half_life must be a finite number from 0 to 60 (seconds; 0: no smoothing), got inf

Booleans are not numbers here (``max_faces=True`` is refused), NaN and infinities are
refused for every float option, and ``None`` is accepted only where it has a meaning
(``max_faces=None``: all faces).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable


class OptionError(ValueError):
    """An option value outside its range; the message names the option, the range and the value."""

    def __init__(self, name: str, value: Any, allowed: str):
        self.name, self.value, self.allowed = name, value, allowed
        super().__init__(f"{name} must be {allowed}, got {value!r}")


@dataclass(frozen=True)
class Range:
    """An integer or float option from ``low`` to ``high`` (inclusive); ``none``: what None means, if allowed."""

    kind: type
    low: float
    high: float
    unit: str = ""
    none: str | None = None

    def allowed(self) -> str:
        what = "an integer" if self.kind is int else "a finite number"
        text = f"{what} from {_number(self.low)} to {_number(self.high)}"
        notes = [n for n in (self.unit, f"or none: {self.none}" if self.none else "") if n]
        return text + (f" ({'; '.join(notes)})" if notes else "")

    def check(self, name: str, value: Any):
        if value is None:
            if self.none is None:
                raise OptionError(name, value, self.allowed())
            return None
        if isinstance(value, (bool, str, bytes)):    # numbers only: True is not 1, "5" is not 5
            raise OptionError(name, value, self.allowed())
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise OptionError(name, value, self.allowed()) from None
        if not math.isfinite(number) or self.kind is int and not number.is_integer():
            raise OptionError(name, value, self.allowed())
        if self.kind is int:
            number = int(value) if not isinstance(value, float) else int(number)
        if not self.low <= number <= self.high:
            raise OptionError(name, value, self.allowed())
        return number


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


# name (as the Python API spells it) -> range. CLI flags are the same names with dashes.
RANGES: dict[str, Range] = {
    # pictures and faces (Recognizer, predict, video, serve)
    "max_faces": Range(int, 1, 10_000, none="all faces"),
    "min_face": Range(int, 1, 4096, "pixels"),
    "detect_side": Range(int, 64, 4096, "pixels"),
    "threads": Range(int, 1, 256, none="one per core, at most 2"),
    # video and streams (Recognizer.stream, emolens video, WS /v1/stream)
    "every": Range(int, 1, 1_000_000, "frames"),
    "detect_every": Range(int, 1, 1000, "analysed frames"),
    "half_life": Range(float, 0, 60, "seconds; 0: no smoothing"),
    "max_missed": Range(int, 0, 100_000, "analysed frames"),
    # persons (emolens video, batch, predict --group-people, WS /v1/stream)
    "same_person": Range(float, 0.2, 1.0, "face-descriptor distance; lower: fewer merges, more splits"),
    # emolens serve
    "port": Range(int, 1, 65535),
    "workers_threads": Range(int, 1, 64, none="one per core, at most 2"),
    "max_upload_mb": Range(float, 0.01, 1024, "MB"),
    "ws_max_mb": Range(float, 0.01, 256, "MB"),
    "max_pending": Range(int, 1, 100_000, "analyses"),
    "max_buffered_mb": Range(float, 1, 65536, "MB; default: 64 or 4 uploads, whichever is larger", none="default"),
    "max_streams": Range(int, 1, 10_000, "streams"),
    "ws_idle_seconds": Range(float, 0.1, 86_400, "seconds"),
}


def check(name: str, value: Any, spelled: str | None = None):
    """``value`` as the option's type if it is in range; else ``OptionError`` naming it as ``spelled`` (or ``name``)."""
    return RANGES[name].check(spelled or name, value)


def check_all(**values) -> dict:
    """``check`` for several options at once (keyword names as in ``RANGES``); the checked values."""
    return {name: check(name, value) for name, value in values.items()}


def allowed(name: str) -> str:
    """The range in words (``an integer from 1 to 1000 (analysed frames)``), for help texts and errors."""
    return RANGES[name].allowed()


def flag(name: str) -> str:
    """The CLI spelling: ``max_faces`` -> ``--max-faces``."""
    return "--" + name.replace("_", "-")


def parse(name: str, text: str | None, default=None, spelled: str | None = None):
    """An option from text (a query parameter): ``default`` when absent; ``OptionError`` when unreadable
    or out of range."""
    if text is None:
        return default
    spelled = spelled or name
    rng = RANGES[name]
    stripped = text.strip()
    if rng.none is not None and stripped.lower() in ("", "none", "null"):
        return None
    try:
        return rng.check(spelled, int(stripped) if rng.kind is int else float(stripped))
    except (ValueError, OptionError):
        raise OptionError(spelled, text, rng.allowed()) from None


def cli_check(name: str) -> Callable:
    """A typer/click option callback: the value checked, or a usage error (exit code 2) naming the flag."""

    def callback(value):
        if value is None and RANGES[name].none is None:
            return value          # an optional CLI option left out: nothing to check
        try:
            return check(name, value)
        except OptionError as exc:
            import typer

            raise typer.BadParameter(f"must be {exc.allowed}, got {value!r}") from None

    return callback
