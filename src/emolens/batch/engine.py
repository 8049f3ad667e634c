"""The Dask client a batch runs on: an existing scheduler by address, or a ``LocalCluster`` on
127.0.0.1 with one single-threaded worker process per core (the analysis is single-threaded
per worker; processes, not threads, so the GIL does not serialise them)."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator


class EngineError(ValueError):
    """The cluster cannot be reached or started; the message says what to check."""


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


@contextlib.contextmanager
def open_client(scheduler: str | None = None, workers: int | None = None, memory_limit: str | float | None = "auto",
                quiet_logs: bool = True, connect_timeout: float = 30.0) -> Iterator:
    """A ``distributed.Client``: on ``scheduler`` (``tcp://HOST:PORT``) when given, else on a new
    ``LocalCluster`` bound to 127.0.0.1 (``workers`` processes, default one per core, one thread
    each, no dashboard). Closes what it started."""
    import dask
    from distributed import Client, LocalCluster

    if quiet_logs:      # a worker restarted after a crash is reported by the batch itself
        for name in ("distributed", "distributed.nanny", "distributed.scheduler", "distributed.worker"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    with dask.config.set({"distributed.scheduler.allowed-failures": 3}):
        if scheduler:
            try:
                client = Client(scheduler, timeout=connect_timeout)
            except (OSError, TimeoutError) as exc:
                raise EngineError(f"{scheduler}: cannot reach the Dask scheduler ({exc}); check the address "
                                  "(tcp://HOST:PORT, printed by `dask scheduler`) and that it is running") from None
            try:
                yield client
            finally:
                client.close()
            return
        cluster = LocalCluster(n_workers=workers or default_workers(), threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None, memory_limit=memory_limit,
                               silence_logs=logging.CRITICAL if quiet_logs else logging.WARNING)
        try:
            client = Client(cluster)
            try:
                yield client
            finally:
                client.close()
        finally:
            cluster.close()
