"""``run_batch``: inputs -> units -> Dask tasks -> Parquet parts, a ledger record per unit.

The client (this process) plans and records; the workers analyse and write the rows. Photo
chunks and video plans are submitted at once; a video's segments once its plan is back,
with a task that joins them depending on all of them (Dask passes their results along).
A worker that dies takes its running tasks with it and Dask runs them again elsewhere
(their files are rewritten whole under the same names), so every input ends up exactly
once in the results; a task whose worker dies ``allowed-failures`` (3) times over becomes an
error row for its input. Ctrl-C or SIGTERM stops the run: what finished is recorded, the
rest is redone by the same command.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable

from emolens.batch.inputs import expand_inputs
from emolens.batch.plan import plan_units
from emolens.batch.settings import DEFAULT_PHOTOS_PER_TASK, DEFAULT_SEGMENT_SECONDS, AnalysisOptions
from emolens.batch.storage import Layout, Ledger, RunLock
from emolens.stop_signals import SignalTakeover


@dataclass
class BatchReport:
    """What a run did. ``skipped``: inputs already done by an earlier run (same file, same
    options); ``analysed``: inputs finished by this run; ``failed``: inputs in error at the end."""

    out: Path
    inputs: int = 0
    skipped: int = 0
    analysed: int = 0
    failed: int = 0
    frames: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    interrupted_by: str | None = None
    errors: list[str] = field(default_factory=list)
    units_by_worker: dict[str, int] = field(default_factory=dict)
    loads_by_worker: dict[str, int] = field(default_factory=dict)


class Terminated(KeyboardInterrupt):
    """SIGTERM during a batch: it stops as on Ctrl-C."""


class StopSignals(SignalTakeover):
    """While a batch runs: the first SIGINT or SIGTERM stops it (``KeyboardInterrupt``,
    ``Terminated``, raised where the client waits on its tasks); once ``finishing`` is set,
    further signals are ignored, so the results are always recorded. Inside ``held()`` a stop
    waits until the block has run to its end (a finished unit's parts and its record land
    together, a submitted task is always known). Handlers are taken over as
    ``emolens.stop_signals.SignalTakeover`` says."""

    def __init__(self):
        super().__init__()
        self.finishing = False
        self._holding = 0
        self._pending: int | None = None

    @staticmethod
    def _stop(signum: int) -> KeyboardInterrupt:
        import signal

        return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    def _handle(self, signum, frame) -> None:
        if self.finishing:
            return
        self.finishing = True
        if self._holding:
            self._pending = signum
            return
        raise self._stop(signum)

    @contextmanager
    def held(self):
        """A block a stop does not break into: a signal arriving inside is raised when it ends."""
        self._holding += 1
        try:
            yield
        finally:
            self._holding -= 1
        if not self._holding and self._pending is not None:
            signum, self._pending = self._pending, None
            raise self._stop(signum)


def _describe_failure(unit, exc: BaseException) -> str:
    path = unit.inputs[0].path if len(unit.inputs) == 1 else f"{len(unit.inputs)} photos from {unit.inputs[0].path}"
    if type(exc).__name__ == "KilledWorker":
        return (f"{path}: the worker analysing it died again and again (out of memory, or the decoder crashed on "
                "this file); give the workers more memory (--memory-limit) or check the file")
    first = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{path}: analysis failed ({type(exc).__name__}: {first}); please report this with the file"


def run_batch(paths: Iterable[str], out: str | Path, options: AnalysisOptions | None = None, *,
              client=None, scheduler: str | None = None, workers: int | None = None,
              memory_limit: str | float | None = "auto", segment_seconds: float = DEFAULT_SEGMENT_SECONDS,
              photos_per_task: int = DEFAULT_PHOTOS_PER_TASK, progress: bool = True, console=None,
              on_result: Callable[[str, dict | None, object], None] | None = None) -> BatchReport:
    """Analyse ``paths`` (files, folders, globs, manifests) into ``out``; see ``emolens.batch``.

    ``client``: an existing ``distributed.Client`` (else one is made: on ``scheduler`` or a
    local cluster of ``workers`` processes). ``on_result(role, result, client)`` is called on
    this side after every finished task is recorded (role: photos, plan, segment, finalise).
    Raises ``InputError``, ``OutputError``, ``EngineError`` or ``ValueError`` (options) before
    any analysis; bad inputs are error rows, never exceptions.
    """
    from emolens.batch.engine import open_client
    from emolens.batch.progress import BatchProgress
    from emolens.batch.tasks import error_record

    options = (options or AnalysisOptions()).resolved()
    inputs = expand_inputs(paths)
    layout = Layout(out)
    layout.prepare()
    report = BatchReport(out=layout.root, inputs=len(inputs))
    units: list = []
    started = time.perf_counter()
    with RunLock(layout), StopSignals() as signals, BatchProgress(console, enabled=progress) as bar:
        ledger = Ledger(layout)
        try:
            units = plan_units(inputs, options.key(), photos_per_task)
            todo = ledger.reconcile(units)
            report.skipped = sum(len(u.inputs) for u in units) - sum(len(u.inputs) for u in todo)
            bar.add_work(inputs=len(inputs), frames=sum(len(u.inputs) for u in todo if u.kind == "photos"))
            bar.advance(done=report.skipped)
            for unit in [u for u in todo if u.kind == "error"]:
                record = error_record(unit, options, "not found")
                ledger.record(unit.key, {"parts": [], **{k: record[k] for k in ("kind", "inputs", "summary")}})
                bar.advance(done=1, errors=1)
            work = [u for u in todo if u.kind != "error"]
            if work:
                if client is not None:
                    _run_units(client, work, options, layout, ledger, bar, report, segment_seconds, on_result,
                               signals.held)
                else:
                    with open_client(scheduler, workers, memory_limit) as own:
                        _run_units(own, work, options, layout, ledger, bar, report, segment_seconds, on_result,
                                   signals.held)
        except KeyboardInterrupt as exc:
            signals.finishing = True
            report.interrupted = True
            report.interrupted_by = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
        finally:
            signals.finishing = True
            ledger.write_tables()
            for stale in layout.tmp.iterdir():
                shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    for unit in units:
        for row in ledger.records.get(unit.key, {}).get("inputs", []):
            if row["status"] != "ok":
                report.failed += 1
                report.errors.append(row["message"] or f"{row['source']}: failed")
    report.frames = bar.frames
    report.seconds = time.perf_counter() - started
    return report


def _run_units(client, units, options, layout, ledger, bar, report, segment_seconds, on_result,
               held: Callable = nullcontext) -> None:
    """Submit ``units`` and record each as it finishes; ``held()`` wraps the handling of a result
    (a stop is taken only while waiting for the next one)."""
    from distributed import as_completed

    from emolens.batch.segments import VideoPlan, segment_times
    from emolens.batch.tasks import analyse_photos, analyse_segment, error_record, finalise_video, plan_video_task

    if not client.scheduler_info().get("workers"):
        try:
            client.wait_for_workers(1, timeout=60)
        except TimeoutError:
            from emolens.batch.engine import EngineError

            raise EngineError("no Dask worker joined the scheduler within 60 s; start workers with "
                              "`dask worker tcp://HOST:PORT`") from None
    token = uuid.uuid4().hex[:8]
    roles: dict[str, tuple] = {}
    flow = as_completed()

    def submit(role: str, unit, tag: int, fn, *args, extra=None):
        future = client.submit(fn, *args, key=f"emolens-{role}-{unit.key}-{tag}-{token}")
        roles[future.key] = (role, unit, extra)
        flow.add(future)
        return future

    def record(unit, result: dict) -> None:
        parts = []
        for ready, name in result["ready"]:       # parts land in faces/ here, then the record
            os.replace(ready, layout.faces / name)
            parts.append(name)
        done = {"parts": parts, **{k: result[k] for k in ("kind", "inputs", "summary")}}
        ledger.record(unit.key, ledger.merged(unit.key, done) if unit.part else done)
        errors = sum(row["status"] != "ok" for row in result["inputs"])
        for row in result["inputs"]:
            if row["status"] != "ok":
                bar.print(f"[bold red]error:[/] {_shown(row['message'])}")
        bar.advance(done=len(result["inputs"]), errors=errors,
                    frames=len(unit.inputs) if unit.kind == "photos" else 0)
        report.analysed += len(result["inputs"])

    try:
        with held():
            for unit in units:
                if unit.kind == "photos":
                    submit("photos", unit, 0, analyse_photos, unit, options, str(layout.root))
                else:
                    submit("plan", unit, 0, plan_video_task, unit, options, segment_seconds)
        for future in flow:
            role, unit, extra = roles.pop(future.key)
            failure = None
            try:
                result = future.result()
            except Exception as exc:  # a task that failed for good (KilledWorker, ...): its unit is an error
                result, failure = None, _describe_failure(unit, exc)
            with held():     # a stop waits until this result is handled
                future.release()
                if result is not None and "worker" in result:
                    w = result["worker"]
                    report.units_by_worker[w] = report.units_by_worker.get(w, 0) + 1
                    report.loads_by_worker[w] = max(report.loads_by_worker.get(w, 0), result.get("loads", 0))
                if role in ("photos", "finalise"):
                    record(unit, result if result is not None else error_record(unit, options, failure))
                    if role == "finalise":
                        shutil.rmtree(extra, ignore_errors=True)     # the staged segments, now joined
                elif role == "plan" and (result is None or "error" in result):
                    record(unit, error_record(unit, options, failure if result is None else result["error"]))
                elif role == "plan":
                    plan: VideoPlan = result["plan"]
                    staging = layout.staging(unit.key, plan.segments[1][0] if plan.split else 0)
                    bar.add_work(frames=(plan.frames or 0) / options.every)
                    segment_futures = []
                    for number, (start, stop) in enumerate(plan.segments):
                        times, offset = (segment_times(plan.times_ms, start, stop, options.every) if plan.split
                                         else (None, 0))
                        segment_futures.append(submit("segment", unit, number, analyse_segment, unit.inputs[0].path,
                                                      number, start, stop, times, offset, options, str(staging),
                                                      str(layout.tmp)))
                    light = replace(plan, times_ms=None)
                    submit("finalise", unit, 0, finalise_video, unit, light, options, str(layout.root),
                           str(staging), *segment_futures, extra=str(staging))
                elif role == "segment" and result is not None:
                    bar.advance(frames=result["frames"])
                if on_result is not None:
                    on_result(role, result, client)
    except BaseException:
        client.cancel(list(getattr(flow, "futures", ())))
        _let_running_tasks_end(client, token)
        raise


STOP_WAIT_SECONDS = 15.0


def _running_keys(token: str, dask_worker=None) -> list[str]:
    """On a worker: the keys of this run's tasks still executing (cancelling a task does not
    stop a thread that is running it)."""
    state = dask_worker.state
    return [str(ts.key) for ts in (*state.executing, *state.long_running) if token in str(ts.key)]


def _let_running_tasks_end(client, token: str, seconds: float = STOP_WAIT_SECONDS) -> None:
    """After a stop, wait (at most ``seconds``) until the run's cancelled tasks have left the
    workers, so none writes into ``.emolens/tmp`` after the client has emptied it. A task
    still running after that is left; its file is removed by the next run."""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            running = client.run(_running_keys, token, on_error="return")
            if not any(isinstance(keys, list) and keys for keys in running.values()):
                return
            time.sleep(0.1)
    except BaseException:  # a scheduler gone, or another signal: stop waiting, never mask the stop
        return


def _shown(text) -> str:
    from rich.markup import escape

    from emolens.file_names import printable

    return escape(printable(text))
