"""The export engine: one table of the local copy to one file, on GDAL's own writers.

Public API (also re-exported by :mod:`terrafusion_agent.export`)::

    plan_export(config, request) -> ExportPlan          # validate only; raises InvalidExport
    export_table(config, request, progress=None, cancel=None) -> ExportResult
    add_listener(fn) / remove_listener(fn)              # fn(event: dict) after every export

This module runs an export from start to end; the rooms it goes through:

* :mod:`.plan` checks the request and decides everything (fields, types, CRS, rows);
* :mod:`.writer` writes with GDAL, one :class:`~.writer.GdalWriter` per thread, reading
  the local copy with one SELECT (:mod:`terrafusion_agent.stores.export_source`);
* :mod:`.parallel` writes a big text export in two halves at once;
* :mod:`.publish` keeps the file hidden beside its target until it is complete, and
  :mod:`.diskfull` makes sure a full disk never passes for a complete file.

GDAL runs in a worker thread while the calling thread watches: it reports progress,
forwards a cancel (which interrupts GDAL's running SQLite statement, so it takes effect
within a fraction of a second even in the middle of a big table) and takes Ctrl+C in the
CLI. GDAL releases the GIL, so an API server keeps answering meanwhile. Only when the
worker is done, and nothing was cancelled or failed, is the file published; otherwise
everything it wrote is removed. Every export that starts ends with one event to the
listeners (the agent's metrics).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

from terrafusion_agent.config import Config
from terrafusion_agent.errors import ExportCancelled
from terrafusion_agent.export import diskfull, parallel, publish
from terrafusion_agent.export.plan import ExportPlan, plan_export
from terrafusion_agent.export.request import ExportRequest
from terrafusion_agent.export.writer import SAMPLE_ROWS, GdalWriter, Work, detached

log = logging.getLogger("terrafusion.export")

#: how often the watching thread looks at cancel and progress
POLL_SECONDS = 0.1
PROGRESS_EVERY_SECONDS = 0.25


# --- data -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    table: str
    format: str
    path: Path
    features: int
    bytes: int
    duration_seconds: float
    crs: Optional[str]
    fields: tuple[str, ...]
    renamed: dict[str, str] = field(default_factory=dict)
    where: Optional[str] = None
    preset: Optional[str] = None
    warnings: tuple[str, ...] = ()
    #: the moment the table was exported as of (UTC, ISO 8601); None: as it is now
    as_of: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON summary the CLI prints."""
        return {
            "table": self.table, "format": self.format, "path": str(self.path),
            "features": self.features, "bytes": self.bytes,
            "duration_seconds": round(self.duration_seconds, 3), "crs": self.crs,
            "fields": list(self.fields), "renamed": dict(self.renamed), "where": self.where,
            "preset": self.preset, "warnings": list(self.warnings), "as_of": self.as_of,
        }


@dataclass(frozen=True)
class ExportProgress:
    """A progress report; ``fraction`` is None while it cannot be estimated."""

    #: "history" (an as-of export rebuilding its table from central's history),
    #: "writing", "joining" (split export), "packing" (shapefile zip) or "done"
    stage: str
    #: features being exported in total (while rebuilding: rows rebuilt so far)
    features: int
    bytes_written: int
    elapsed_seconds: float
    fraction: Optional[float] = None


class CancelToken:
    """Thread-safe cancel flag for :func:`export_table` (the jobs API uses one per job)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the export to stop; safe from any thread, any number of times."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """Whether a cancel was asked for."""
        return self._event.is_set()


class Worker:
    """A daemon thread whose end is told by an event of its own, not by the thread.

    Python 3.11's ``Thread.join``, when Ctrl+C interrupts it, can mark a thread that still
    runs as ended (``is_alive()`` False): GDAL then wrote on while its files were removed,
    and the process died in GDAL's C++ at exit. An event set by the thread itself as its
    last act cannot be fooled that way.
    """

    def __init__(self, target: Callable[[], None], name: str):
        self._done = threading.Event()

        def run() -> None:
            try:
                target()
            finally:
                self._done.set()

        self._thread = threading.Thread(target=run, name=name, daemon=True)
        self._started = False

    def start(self) -> None:
        self._thread.start()
        self._started = True

    def alive(self) -> bool:
        """Started and not yet at its end."""
        return self._started and not self._done.is_set()

    def wait(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for its end."""
        self._done.wait(timeout)


ProgressCallback = Callable[[ExportProgress], None]
#: a token, or any callable answering "stop now?" (QgsTask.isCanceled, for one)
CancelCheck = Union[CancelToken, Callable[[], bool]]


# --- listeners ----------------------------------------------------------------------------

_listeners: list[Callable[[dict[str, Any]], None]] = []
_listeners_lock = threading.Lock()


def add_listener(fn: Callable[[dict[str, Any]], None]) -> None:
    """Call ``fn(event)`` when any export ends (the agent's metrics feed on it).

    ``event``: ``format``, ``result`` (completed, failed or cancelled), ``features``,
    ``bytes``, ``duration_seconds``, ``table``, ``preset``, ``error``. Requests refused as
    invalid never start, so they send no event. ``fn`` runs on the exporting thread and
    must be quick; its exceptions are logged, never raised.
    """
    with _listeners_lock:
        if fn not in _listeners:
            _listeners.append(fn)


def remove_listener(fn: Callable[[dict[str, Any]], None]) -> None:
    """Stop calling ``fn`` (no error if it was not added)."""
    with _listeners_lock:
        if fn in _listeners:
            _listeners.remove(fn)


def notify_listeners(event: dict[str, Any]) -> None:
    """Send one export-ended event to every listener (the jobs API uses it too)."""
    with _listeners_lock:
        listeners = list(_listeners)
    for fn in listeners:
        try:
            fn(dict(event))
        except Exception:  # a broken listener must not break exports
            log.exception("export listener %r failed", fn)


# --- running an export --------------------------------------------------------------------


def export_table(config: Config, request: ExportRequest,
                 progress: Optional[ProgressCallback] = None,
                 cancel: Optional[CancelCheck] = None) -> ExportResult:
    """Export one table of the local copy to one file; the one code path for every caller.

    Raises :class:`InvalidExport` for a bad request (nothing written, no event),
    :class:`ExportCancelled` when ``cancel`` fired and :class:`ExportError` when writing
    failed; in both cases no file, complete or partial, is left behind. A request with
    ``as_of`` exports the table as it stood then (:mod:`.asof`), which also reads central.
    """
    if request.as_of is not None:
        from terrafusion_agent.export import asof

        return asof.export_as_of(config, request, progress=progress, cancel=cancel)
    started = time.monotonic()
    plan = plan_export(config, request)
    return run_plan(plan, progress=progress, cancel=cancel, started=started)


def run_plan(plan: ExportPlan, progress: Optional[ProgressCallback] = None,
             cancel: Optional[CancelCheck] = None,
             started: Optional[float] = None) -> ExportResult:
    """Write a planned export (see :func:`export_table`)."""
    started = time.monotonic() if started is None else started
    event: dict[str, Any] = {"table": plan.table.name, "format": plan.spec.name,
                             "preset": plan.preset, "features": 0, "bytes": 0, "error": None}
    try:
        size = _write(plan, progress, cancel_check(cancel), started)
    except ExportCancelled as exc:
        event.update(result="cancelled", error=str(exc))
        raise
    except KeyboardInterrupt:
        event.update(result="cancelled", error="Interrupted.")
        raise
    except BaseException as exc:
        event.update(result="failed", error=str(exc) or exc.__class__.__name__)
        raise
    else:
        event.update(result="completed", features=plan.features, bytes=size)
    finally:
        event["duration_seconds"] = time.monotonic() - started
        notify_listeners(event)
    duration = event["duration_seconds"]
    log.info("exported %d features of %s to %s (%s) in %.2f s", plan.features,
             plan.table.name, plan.out, plan.spec.name, duration)
    return ExportResult(
        table=plan.table.name, format=plan.spec.name, path=plan.out, features=plan.features,
        bytes=size, duration_seconds=duration, crs=plan.target_srs,
        fields=tuple(c.name for c in plan.columns), renamed=plan.renamed, where=plan.where,
        preset=plan.preset, warnings=plan.warnings)


def cancel_check(cancel: Optional[CancelCheck]) -> Callable[[], bool]:
    """``cancel`` (a token, a callable or None) as a callable answering "stop now?"."""
    if cancel is None:
        return lambda: False
    if isinstance(cancel, CancelToken):
        return lambda: cancel.cancelled
    return lambda: bool(cancel())


def _write(plan: ExportPlan, progress: Optional[ProgressCallback],
           cancelled: Callable[[], bool], started: float) -> int:
    """Write to a temp file beside the target, watch, then publish; returns the size."""
    output = publish.TempOutput(plan.out, plan.spec, plan.overwrite, layer=plan.layer_name)
    work = Work()

    def target() -> None:
        try:
            _gdal_write(plan, work, output, want_estimate=progress is not None)
        except (OSError, sqlite3.Error) as exc:
            work.error = detached(publish.failure(plan.out, exc))
        except BaseException as exc:
            work.error = detached(exc)

    worker = Worker(target, name=f"export-{plan.table.name}")
    try:
        if cancelled():
            raise ExportCancelled("The export was cancelled before it started.")
        worker.start()
        _watch(plan, worker, work, output, progress, cancelled, started)
        if cancelled():
            raise ExportCancelled(f"The export of {plan.table.name} was cancelled; "
                                  "no file was written.")
        if work.error is not None:
            raise work.error
        size = output.publish()
        if progress:
            progress(ExportProgress("done", plan.features, size,
                                    time.monotonic() - started, 1.0))
        return size
    except BaseException:
        # Ctrl+C or an error in a progress callback: stop GDAL before cleaning up.
        if worker.alive():
            _stop(worker, work)
        raise
    finally:
        output.discard()


def _gdal_write(plan: ExportPlan, work: Work, output: publish.TempOutput,
                want_estimate: bool) -> None:
    """The GDAL thread: write the temp file the fastest way its format allows, and make
    sure the file is whole before it may be published."""
    with GdalWriter.opened(plan, work) as writer:
        if want_estimate and plan.spec.streaming and plan.features > SAMPLE_ROWS:
            work.estimated_bytes = writer.estimate_size()
        _write_temp(writer, output)
    writer.verify(output)


def _write_temp(writer: GdalWriter, output: publish.TempOutput) -> None:
    """A shapefile is zipped after GDAL wrote it; a whole GeoPackage gets the local copy's
    spatial index; a big text export is written in halves; the rest in one piece."""
    plan, work = writer.plan, writer.work
    if output.shapefile:
        writer.translate(str(output.start()))
        work.stage = "packing"
        output.pack()
        return
    index = writer.copyable_index()
    if index is not None:
        writer.translate_copying_index(output.temp, index)
        return
    split = parallel.split_point(plan) if parallel.worth_splitting(plan) else None
    if split is not None:
        try:
            parallel.translate_halves(writer, output.temp, split)
            return
        except parallel.SpliceError as exc:
            if diskfull.nearly_full(plan.out.parent):
                # halves cut short by a full disk: the whole export written again onto
                # it would only fail again, later
                raise diskfull.error(plan.out) from None
            log.warning("cannot join the halves of %s (%s); writing it in one piece",
                        plan.out.name, str(exc))
            output.discard()
    writer.translate(str(output.temp))


def _watch(plan: ExportPlan, worker: Worker, work: Work,
           output: publish.TempOutput, progress: Optional[ProgressCallback],
           cancelled: Callable[[], bool], started: float) -> None:
    """Wait for the GDAL thread, forwarding cancels and reporting progress."""
    last = 0.0
    while worker.alive():
        worker.wait(POLL_SECONDS)
        if cancelled():
            work.abort()  # again and again: a statement started after a cancel runs on
            continue
        now = time.monotonic()
        if progress and now - last >= PROGRESS_EVERY_SECONDS and worker.alive():
            last = now
            # the temp file, both halves of a split export, the shapefile's parts or .zip
            written = output.written_bytes()
            fraction = None
            if work.stage == "writing" and work.estimated_bytes:
                fraction = min(0.99, written / work.estimated_bytes)
            progress(ExportProgress(work.stage, plan.features, written, now - started,
                                    fraction))


def _stop(worker: Worker, work: Work) -> None:
    while worker.alive():
        work.abort()
        worker.wait(POLL_SECONDS)
