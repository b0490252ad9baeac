"""An export of a table as it stood at a past moment ("as of"), from central's history.

Central keeps the audit history of every synced table, and its store hands back every row
of a table as it stood at a moment (``CentralStore.rows_as_of``). An as-of export writes
those rows into a SpatiaLite file of its own, with the local store's own table builder
(:meth:`~terrafusion_agent.stores.local.LocalStore.replace_table`: the same column types,
geometry column, spatial index and exact decimals as the local copy), runs the unchanged
export engine on that file instead of the local copy, and removes the file, whether the
export completed, failed, was cancelled or interrupted by Ctrl+C::

    export_as_of(config, request, progress=None, cancel=None) -> ExportResult
    check(config, request) -> ExportPlan       # everything but the rows (the jobs API)

The request is checked completely before a row is read: the time, the preset, the
target, the table (a synced one: central keeps the history of those only), the history's
start, and then the fields, filter and CRS, by planning the export of the table with no
rows in it. Rebuilding the rows is the first share of the progress (stage "history");
a cancel interrupts central's running statement as it interrupts GDAL's.

**Where the file goes**: into a private folder (``mkdtemp``: only this user may read it)
beside the output, hidden and named like the engine's own temp files
(``.NAME.tf-as-of-*``), not in the system's temp folder. The user chose that folder and
its room, so a full disk there is the export's usual sentence, naming a folder the user
can change (choosing another one helps, which it would not for a temp folder they never
chose); the system's temp folder is often a RAM disk (tmpfs, half the memory) or the
smallest drive, too small for a county's parcels; and a process killed half way leaves
the folder where the engine's sweep of ``.NAME.tf-*`` leftovers (the export jobs, when
the agent starts again) removes it with the rest.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sqlite3
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from terrafusion_agent.config import Config
from terrafusion_agent.errors import (
    CentralUnavailable,
    ExportCancelled,
    ExportError,
    InvalidExport,
    LocalUnavailable,
    TerraFusionError,
)
from terrafusion_agent.export import diskfull, engine, presets, protected, publish
from terrafusion_agent.export.messages import fragment
from terrafusion_agent.export.plan import ExportPlan, plan_export
from terrafusion_agent.export.request import ExportRequest, parse_as_of
from terrafusion_agent.export.writer import detached
from terrafusion_agent.redact import redact
from terrafusion_agent.stores import history, open_central
from terrafusion_agent.stores.base import CentralStore, TableInfo
from terrafusion_agent.stores.local import LocalStore

log = logging.getLogger("terrafusion.export")

#: the share of the progress that rebuilding the table takes; writing the file has the rest
HISTORY_SHARE = 0.5
#: the progress stage of the rebuild
STAGE = "history"
#: the rebuilt table's file, in its private folder
SOURCE_NAME = "as-of.sqlite"
#: the room a new file with the local copy's layout takes before any row: SpatiaLite's
#: reference tables (~7 MB), twice while SQLite writes them through its write-ahead log
ROOM_FOR_LAYOUT = 16 << 20


def export_as_of(config: Config, request: ExportRequest,
                 progress: Optional[engine.ProgressCallback] = None,
                 cancel: Optional[engine.CancelCheck] = None) -> engine.ExportResult:
    """Export ``request``'s table as it stood at ``request.as_of``; see
    :func:`~terrafusion_agent.export.engine.export_table`, whose errors it raises, and
    :class:`CentralUnavailable` when central cannot be read."""
    started = time.monotonic()
    cancelled = engine.cancel_check(cancel)
    with _Rebuild.prepared(config, request) as rebuild:
        plan = rebuild.plan
        event: dict[str, Any] = {"table": plan.table.name, "format": plan.spec.name,
                                 "preset": plan.preset, "features": 0, "bytes": 0}
        try:
            rebuild.fill(progress, cancelled, started)
        except BaseException as exc:
            # the engine tells the listeners of the exports it writes; this one ends first
            interrupted = isinstance(exc, (ExportCancelled, KeyboardInterrupt))
            event.update(result="cancelled" if interrupted else "failed",
                         error=str(exc) or ("Interrupted." if interrupted
                                            else exc.__class__.__name__),
                         duration_seconds=time.monotonic() - started)
            engine.notify_listeners(event)
            raise
        plan = plan_export(config, request, source=rebuild.path)
        result = engine.run_plan(plan, progress=_after_rebuild(progress), cancel=cancel,
                                 started=started)
    return replace(result, as_of=rebuild.at)


def check(config: Config, request: ExportRequest) -> ExportPlan:
    """Check an as-of request as :func:`export_as_of` does before it reads a row; raises
    :class:`InvalidExport` or :class:`CentralUnavailable`. The plan returned is that of
    the table without rows: what would be written where (its source file is gone)."""
    with _Rebuild.prepared(config, request) as rebuild:
        return rebuild.plan


def _after_rebuild(progress: Optional[engine.ProgressCallback]
                   ) -> Optional[engine.ProgressCallback]:
    """``progress`` for the engine's part: its fractions fill the rest of the bar."""
    if progress is None:
        return None

    def shifted(p: engine.ExportProgress) -> None:
        fraction = None if p.fraction is None else \
            HISTORY_SHARE + (1.0 - HISTORY_SHARE) * p.fraction
        progress(replace(p, fraction=fraction))

    return shifted


class _Rebuild:
    """The table as it stood at ``at``, in its own file (made by :meth:`prepared`)."""

    def __init__(self, central: CentralStore, info: TableInfo, at: str, local: LocalStore,
                 out: Path, plan: ExportPlan):
        self.central = central
        self.info = info
        self.at = at
        self.local = local
        self.path = local.path
        self.out = out
        #: the plan of the table without rows (every choice of the request checked)
        self.plan = plan
        self.rows = 0
        self.stop = threading.Event()

    @classmethod
    @contextlib.contextmanager
    def prepared(cls, config: Config, request: ExportRequest) -> Iterator[_Rebuild]:
        """Check the request, connect to central and make the file with the table's
        layout and no rows; everything is closed and removed when the block ends."""
        at = parse_as_of(request.as_of or "")
        resolved = presets.resolve(config, request)
        protected.refuse_own_file(config, resolved.out)
        publish.check_target(resolved.out, resolved.overwrite)  # before the long part
        _refuse_unsynced(config, resolved.table)
        central = open_central(config)
        try:
            info = central.table_info(resolved.table)
            _refuse_before_history(central, info, at)
            folder = _private_folder(resolved.out)
            try:
                local = _made(resolved.out, lambda: _open_copy(folder / SOURCE_NAME))
                try:
                    _made(resolved.out, lambda: _replace(local, info, ()))
                    plan = plan_export(config, request, source=local.path)
                    yield cls(central, info, at, local, resolved.out, plan)
                finally:
                    local.close()
            finally:
                shutil.rmtree(folder, ignore_errors=True)
        finally:
            central.close()

    def fill(self, progress: Optional[engine.ProgressCallback],
             cancelled: Callable[[], bool], started: float) -> None:
        """Write the table's rows as they stood at ``at``, in a thread of its own while
        this one reports progress and forwards a cancel (or Ctrl+C) to both databases.
        The file is closed afterwards, complete, for GDAL to read."""
        total = self.central.count(self.info) if progress else 0  # rows now: an estimate
        failure: list[BaseException] = []

        def target() -> None:
            try:
                _made(self.out, lambda: _replace(self.local, self.info, self._rows()))
            except BaseException as exc:
                failure.append(detached(exc))

        worker = engine.Worker(target, name=f"as-of-{self.info.name}")
        try:
            if cancelled():
                raise ExportCancelled("The export was cancelled before it started.")
            worker.start()
            last = 0.0
            while worker.alive():
                worker.wait(engine.POLL_SECONDS)
                if cancelled():
                    self._halt(worker)
                    break
                now = time.monotonic()
                if progress and now - last >= engine.PROGRESS_EVERY_SECONDS \
                        and worker.alive():
                    last = now
                    fraction = HISTORY_SHARE * min(0.99, self.rows / total) if total else None
                    progress(engine.ExportProgress(STAGE, self.rows, _size(self.path.parent),
                                                   now - started, fraction))
            if cancelled():
                raise ExportCancelled(f"The export of {self.info.name} as of {self.at} was "
                                      "cancelled; no file was written.")
            if failure:
                raise failure[0]
        except BaseException:
            if worker.alive():  # Ctrl+C, or a progress callback that failed
                self._halt(worker)
            raise
        finally:
            self.local.close()
        log.info("rebuilt %d rows of %s as of %s", self.rows, self.info.name, self.at)

    def _rows(self) -> Iterator[tuple]:
        """Central's rows as of ``at``, counted; its failures worded as central's."""
        rows = self.central.rows_as_of(self.info, self.at)
        while not self.stop.is_set():
            try:
                row = next(rows)
            except StopIteration:
                return
            except TerraFusionError:
                raise
            except self.central.driver_errors as exc:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                raise CentralUnavailable(
                    f"The central database {self.central.describe()} failed while reading "
                    f"the history of {self.info.name}: {redact(reason)}.") from None
            self.rows += 1
            yield row
        raise ExportCancelled("cancelled")

    def _halt(self, worker: engine.Worker) -> None:
        """Stop the worker: its loop, and the statement running on either database."""
        self.stop.set()
        while worker.alive():
            self.central.interrupt()
            self.local.interrupt()
            worker.wait(engine.POLL_SECONDS)


def _refuse_unsynced(config: Config, table: str) -> None:
    if table not in config.tables:
        raise InvalidExport(
            f"Table {table!r} is not synced, so central keeps no history of it; the synced "
            f"tables are {', '.join(config.tables)}.")


def _refuse_before_history(central: CentralStore, info: TableInfo, at: str) -> None:
    """The history's own sentence, before anything is read, for a moment it does not
    reach (the store would say it too, but only once the rows are asked for)."""
    refusal = history.before_start(info, central.history_start(info.name),
                                   history.parse_instant(at))
    if refusal:
        raise InvalidExport(refusal)


def _private_folder(out: Path) -> Path:
    """A new folder only this user may read, beside ``out`` and named as the engine's
    temp files are (its sweep of leftovers finds it).

    A disk without room for the empty layout is said to be full before it is tried:
    SpatiaLite, failing to write its reference tables, prints its own lines to stderr.
    """
    free = diskfull.free_bytes(out.parent)
    if free is not None and free < ROOM_FOR_LAYOUT:
        raise diskfull.error(out)
    try:
        return Path(tempfile.mkdtemp(prefix=f".{out.name}{publish.TEMP_MARK}as-of-",
                                     dir=out.parent))
    except OSError as exc:
        raise publish.failure(out, exc) from None


def _open_copy(path: Path) -> LocalStore:
    """A new file with the local copy's bookkeeping, for its table builder."""
    return LocalStore.open(path)


def _replace(local: LocalStore, info: TableInfo, rows: Any) -> None:
    with local.writing():
        local.replace_table(info, rows)


def _made(out: Path, make: Callable[[], Any]) -> Any:
    """``make()``; a failure of the rebuilt file as a sentence about the export's folder
    (the disk-full one when it is full), never as one about "the local copy"."""
    try:
        return make()
    except (LocalUnavailable, OSError, sqlite3.Error) as exc:
        cause = _system_cause(exc)
        if diskfull.is_full_error(cause) or diskfull.nearly_full(out.parent):
            raise diskfull.error(out) from None
        reason = getattr(cause, "strerror", None) or fragment(str(cause))
        raise ExportError(f"{out.name} could not be written in {out.parent}: the table "
                          f"as of its time could not be rebuilt there ({reason}).") from None


def _system_cause(exc: BaseException) -> BaseException:
    """What SQLite or the system said, under the sentences and wrappers (SQLAlchemy's,
    in the migrations) laid over it; ``exc`` itself when there is nothing under it."""
    seen = exc
    for _ in range(8):
        if isinstance(seen, (OSError, sqlite3.Error)):
            return seen
        under = getattr(seen, "orig", None) or seen.__cause__
        if under is None:
            break
        seen = under
    return exc


def _size(folder: Path) -> int:
    try:
        return sum(p.stat().st_size for p in folder.iterdir())
    except OSError:
        return 0
