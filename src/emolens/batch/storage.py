"""The output folder of a batch: what is in it, how files get there whole, and what is done.

::

    DIR/faces/<unit>-<part>.parquet   the face rows, one part per photo chunk or video segment
    DIR/inputs.parquet                one row per input (status, timing, worker)
    DIR/summary.csv                   per photo, per video track and per video person
    DIR/.emolens/done/<unit>.json     the ledger: one record per finished unit (what resume reads)
    DIR/.emolens/segments/<unit>-<n>/ a video's analysed segments until they are joined
    DIR/.emolens/tmp/                 files being written (renamed into place when complete)
    DIR/.emolens/lock                 held by the running batch

Every file is written under ``.emolens/tmp`` and renamed into place once complete and
flushed to disk (``os.replace`` is atomic), so a reader, a SIGINT or a SIGKILL never meets a
half-written file. Workers write parts into ``.emolens/tmp`` only; the client moves a unit's
parts into ``faces/`` when it receives the unit's result, then writes its ledger record; parts whose unit
has no record (a run killed in between) are removed when the next run starts, and that run
redoes the unit. ``inputs.parquet`` and ``summary.csv`` are rebuilt from the ledger at the
end of every run, interrupted or not: they describe exactly what ``faces/`` holds.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import uuid
from dataclasses import replace
from pathlib import Path

from emolens.batch.columns import INPUTS_SCHEMA, SUMMARY_FIELDS, source_name


class OutputError(ValueError):
    """The output folder cannot be used; the message names it and the fix."""


class Layout:
    """Paths inside a batch's output folder (the folders are made by ``prepare``)."""

    def __init__(self, root: str | Path):
        self.root = Path(root).absolute()
        self.faces = self.root / "faces"
        self.state = self.root / ".emolens"
        self.done = self.state / "done"
        self.segments = self.state / "segments"
        self.tmp = self.state / "tmp"
        self.inputs = self.root / "inputs.parquet"
        self.summary = self.root / "summary.csv"

    def prepare(self) -> None:
        from emolens.output_paths import OutputPathError, prepare_output_folder

        if self.root.is_dir() and not self.state.exists():     # not an earlier batch's folder
            # faces/*.parquet without a ledger record are removed, the tables rewritten: never the user's
            theirs = [p.name for p in (self.faces, self.inputs, self.summary) if os.path.lexists(p)]
            if theirs:
                raise OutputError(f"{self.root}: holds {', '.join(theirs)}, not written by an emolens batch (it "
                                  "has no .emolens/ folder); the batch would replace them: give --out a new or "
                                  "empty folder")
        try:
            prepare_output_folder(self.root, "batch results")
        except OutputPathError as exc:
            raise OutputError(str(exc)) from None
        for folder in (self.faces, self.done, self.segments, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)

    def part(self, unit: str, n: int) -> Path:
        return self.faces / f"{unit}-{n:05d}.parquet"

    def staging(self, unit: str, segment_frames: int) -> Path:
        return self.segments / f"{unit}-{segment_frames}"


def _fsync_and_replace(tmp: Path, final: Path) -> None:
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)


def _tmp_name(tmp_dir: Path, final: Path) -> Path:
    return tmp_dir / f"{final.name}.{uuid.uuid4().hex[:12]}.tmp"


def write_bytes_atomic(final: Path, data: bytes, tmp_dir: Path) -> None:
    tmp = _tmp_name(tmp_dir, final)
    try:
        tmp.write_bytes(data)
        _fsync_and_replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet_atomic(final: Path, table, tmp_dir: Path) -> None:
    import pyarrow.parquet as pq

    tmp = _tmp_name(tmp_dir, final)
    try:
        pq.write_table(table, tmp, compression="zstd")
        _fsync_and_replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


class RunLock:
    """One batch per output folder: an exclusive ``flock`` on ``.emolens/lock``, released on exit
    (the kernel releases it when the process dies, so a killed run leaves no stale lock)."""

    def __init__(self, layout: Layout):
        self.path = layout.state / "lock"
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        import fcntl

        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._fd)
            self._fd = None
            raise OutputError(f"{self.path.parent.parent}: another emolens batch is writing into this folder; "
                              "wait for it to finish or choose another --out") from None
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)      # closing releases the lock
            self._fd = None


class Ledger:
    """The records of finished units (``.emolens/done/<unit>.json``): ``{"unit", "kind", "parts",
    "inputs": [INPUTS rows], "summary": [summary rows]}``."""

    def __init__(self, layout: Layout):
        self.layout = layout
        self.records: dict[str, dict] = {}
        for path in sorted(layout.done.glob("*.json")):
            try:
                self.records[path.stem] = json.loads(path.read_text())
            except (OSError, ValueError):       # unreadable: as if not done (its parts are orphans)
                path.unlink(missing_ok=True)

    def ok(self, unit: str) -> bool:
        record = self.records.get(unit)
        return record is not None and all(row["status"] == "ok" for row in record["inputs"])

    def record(self, unit: str, record: dict) -> None:
        record = {**record, "unit": unit}
        write_bytes_atomic(self.layout.done / f"{unit}.json", json.dumps(record).encode(), self.layout.tmp)
        self.records[unit] = record

    def merged(self, unit: str, retry: dict) -> dict:
        """The record of ``unit`` with the result of a retry of some of its inputs: their old
        rows (inputs and summary) replaced by the retry's, its parts added."""
        old = self.records[unit]
        redone = {row["source"] for row in retry["inputs"]}
        return {**old, "parts": list(old["parts"]) + [p for p in retry["parts"] if p not in old["parts"]],
                "inputs": [r for r in old["inputs"] if r["source"] not in redone] + list(retry["inputs"]),
                "summary": [r for r in old.get("summary", []) if r["source"] not in redone] + list(retry["summary"])}

    def retry(self, unit):
        """A photo chunk with a record whose key still holds and some of whose photos failed:
        the unit that tries those photos again, as the chunk's next part (None: redo it all)."""
        record = self.records.get(unit.key)       # the same key: the same photos, as they were then
        if unit.kind != "photos" or record is None:
            return None
        failed = {row["source"] for row in record["inputs"] if row["status"] != "ok"}
        inputs = tuple(i for i in unit.inputs if source_name(i.path) in failed)
        if not inputs or len(inputs) == len(unit.inputs):
            return None
        # parts are numbered 0, 1, ... in order: part 0 is always written, a retry's only with faces
        return replace(unit, inputs=inputs, part=len(record["parts"]))

    def drop(self, unit: str) -> None:
        """Remove a unit's record and its parts (a changed input, an option changed, or a failed unit redone)."""
        (self.layout.done / f"{unit}.json").unlink(missing_ok=True)
        self.records.pop(unit, None)
        for part in self.layout.faces.glob(f"{unit}-*.parquet"):
            part.unlink(missing_ok=True)

    def reconcile(self, units) -> list:
        """Before a run: the units still to do. Drops records superseded by these units (a path
        now planned under another key), records of failed units about to be redone (a photo
        chunk with some photos done is kept, and only its failed photos are tried again), parts
        no record lists, leftover temporary files and segments of units no longer planned."""
        planned = {u.key: u for u in units}
        by_path: dict[str, str] = {}
        for key, record in self.records.items():
            for row in record["inputs"]:
                by_path[row["source"]] = key
        todo = []
        for unit in units:
            for path in unit.paths:
                old = by_path.get(source_name(path))
                if old is not None and old != unit.key and old in self.records:
                    self.drop(old)
            if self.ok(unit.key):
                continue
            retry = self.retry(unit)
            if retry is not None:
                todo.append(retry)
                continue
            if unit.key in self.records:
                self.drop(unit.key)
            todo.append(unit)
        for part in self.layout.faces.glob("*.parquet"):
            record = self.records.get(part.name.split("-")[0])
            if record is None or part.name not in record["parts"]:
                part.unlink(missing_ok=True)
        for stale in self.layout.tmp.iterdir():
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
        for staging in self.layout.segments.iterdir():
            if staging.name.split("-")[0] not in planned or self.ok(staging.name.split("-")[0]):
                shutil.rmtree(staging, ignore_errors=True)
        return todo

    def write_tables(self) -> None:
        """``inputs.parquet`` and ``summary.csv`` from every record (atomically, sorted by source)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        inputs = sorted((row for r in self.records.values() for row in r["inputs"]), key=lambda r: r["source"])
        for row in inputs:
            row["mtime"] = None if row.get("mtime_ns") is None else row["mtime_ns"] // 1000
        table = pa.Table.from_pylist([{k: row.get(k) for k in INPUTS_SCHEMA.names} for row in inputs],
                                     schema=INPUTS_SCHEMA)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        write_bytes_atomic(self.layout.inputs, sink.getvalue().to_pybytes(), self.layout.tmp)
        text = io.StringIO()
        writer = csv.DictWriter(text, SUMMARY_FIELDS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        order = {"photo": 0, "person": 1, "track": 2}
        rows = sorted((row for r in self.records.values() for row in r.get("summary", [])),
                      key=lambda r: (r["source"], order.get(r["level"], 3), r.get("person") or 0, r.get("track_id") or 0))
        for row in rows:
            writer.writerow({k: _csv_value(v) for k, v in row.items()})
        write_bytes_atomic(self.layout.summary, text.getvalue().encode("utf-8"), self.layout.tmp)


def _csv_value(value):
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value == value else ""
    return "" if value is None else value
