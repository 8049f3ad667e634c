"""Taking over Ctrl-C (SIGINT) and SIGTERM for the length of a run, and giving them back.

``SignalTakeover`` is the mechanism ``emolens video`` and ``emolens batch`` share: on entry it
installs ``self._handle`` for SIGINT and SIGTERM, but only where their handlers are still
Python's defaults (an embedding program's own handlers are left alone) and only in the main
thread (where signals are delivered); on exit the previous handlers come back. What a signal
does is the subclass's ``_handle``: video takes note and lets its loop stop after the frame in
hand (``emolens.video.run.StopSignals``), batch stops waiting on its tasks
(``emolens.batch.run.StopSignals``).
"""

from __future__ import annotations

import signal
import threading


class SignalTakeover:
    """Context manager: ``_handle(signum, frame)`` receives SIGINT and SIGTERM while it is entered."""

    def __init__(self):
        self._previous: dict = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig, default in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL)):
                if signal.getsignal(sig) == default:
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:  # pragma: no cover - subclasses decide
        raise NotImplementedError

    def __exit__(self, *exc) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
