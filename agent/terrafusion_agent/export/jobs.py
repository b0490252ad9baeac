"""Export jobs: exports queued and run in a background thread, recorded in ``tf_export_jobs``.

The API's ``POST /api/v1/exports`` and ``GET /api/v1/exports/{id}`` sit on this module::

    submit(config, body, trigger="api") -> int     # body: API dict or ExportRequest
    get(config, job_id) -> dict                    # NotFound for an unknown id
    list_jobs(config, limit=20) -> list[dict]      # newest first
    cancel(config, job_id) -> dict                 # idempotent; a finished job is unchanged
    wait(config, job_id, timeout=None) -> dict     # once finished (or at the timeout)
    shutdown(timeout=10.0) -> None                 # the agent stops: cancel and join

``submit`` validates the request completely before queueing it, so every bad input
raises :class:`~terrafusion_agent.errors.InvalidExport` (a ``BadRequest``: 4xx) and no job
is made; a request with ``as_of`` asks central too (its table, where its history starts:
:class:`~terrafusion_agent.errors.CentralUnavailable`, 503, when it cannot be reached),
and its job rebuilds the table from that history when it runs. A job dict has ``id``
(int), ``status`` (pending, running, completed, failed, cancelled), ``table``,
``format``, ``out``, ``preset``, ``trigger``, ``request``, ``features``, ``bytes``,
``duration_seconds``, ``error``, ``created_at``, ``started_at``, ``finished_at`` and,
while running in this process, ``progress``.

Jobs of one local copy run one at a time, in order, on one worker thread: exports are
disk- and CPU-bound and the sync shares the machine. Every function is thread-safe. A job
left pending or running by a process that died is marked failed (and its temp files
removed) the next time jobs are used.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Optional, Union

from terrafusion_agent.config import Config
from terrafusion_agent.errors import (
    ExportCancelled,
    ExportNotPossible,
    LocalUnavailable,
    NotFound,
    TerraFusionError,
)
from terrafusion_agent.export import asof, engine, publish
from terrafusion_agent.export.plan import ExportPlan, plan_export
from terrafusion_agent.export.request import ExportRequest, request_from_body
from terrafusion_agent.redact import redact
from terrafusion_agent.stores.export_jobs import ExportJobsTable
from terrafusion_agent.timeutil import utc_now

# The agent loads this module on the first export request and answers 503 when it cannot:
# an installation without GDAL's bindings should say so there, not fail on every job.
if importlib.util.find_spec("osgeo") is None:  # pragma: no cover - GDAL ships with QGIS
    raise ImportError("GDAL's Python bindings (osgeo) are not installed")

log = logging.getLogger("terrafusion.export.jobs")

STATUSES = ("pending", "running", "completed", "failed", "cancelled")
FINISHED = ("completed", "failed", "cancelled")
#: finished jobs kept in memory (with their progress); older ones are read from the table
KEEP_IN_MEMORY = 200


#: how a job writes its file: (progress, cancel) -> the result
Runner = Callable[[engine.ProgressCallback, engine.CancelToken], engine.ExportResult]


class _Job:
    """A job of this process: its plan, how it runs, its cancel token and its state.

    ``plan`` says what is written where; an as-of export's is the plan of its table
    without rows, since the rows are rebuilt only when the job runs (``run``).
    """

    def __init__(self, row: dict[str, Any], plan: ExportPlan, run: Runner):
        self.row = row
        self.plan = plan
        self.run = run
        self.token = engine.CancelToken()
        self.progress: Optional[engine.ExportProgress] = None
        self.done = threading.Event()

    def snapshot(self) -> dict[str, Any]:
        out = _public(self.row)
        if self.progress is not None and self.row["status"] == "running":
            p = self.progress
            out["progress"] = {"stage": p.stage, "fraction": p.fraction,
                               "bytes_written": p.bytes_written,
                               "elapsed_seconds": round(p.elapsed_seconds, 3)}
        return out


class _Jobs:
    """The jobs of one local copy in this process: a queue and its worker thread."""

    def __init__(self, path: Path):
        self.path = path
        self.table = ExportJobsTable(path)
        self.lock = threading.Lock()
        self.jobs: dict[int, _Job] = {}
        self.queue: deque[int] = deque()
        self.wakeup = threading.Condition(self.lock)
        self.worker: Optional[threading.Thread] = None
        self.stopping = False
        _ensure_table(path, self.table)
        self._recover()

    # --- the table --------------------------------------------------------------------

    def save(self, job: _Job, *names: str) -> None:
        """Write some of a job's columns; the in-memory state stays authoritative."""
        try:
            self.table.update(job.row["id"], {n: job.row[n] for n in names})
        except (sqlite3.Error, LocalUnavailable) as exc:  # a sync holding the write lock
            log.warning("cannot record export job %s: %s", job.row["id"], exc)

    def _recover(self) -> None:
        """Fail the jobs that a process which no longer runs left unfinished."""
        for job_id, pid, out in self.table.unfinished():
            if pid is not None and (pid == os.getpid() or _alive(pid)):
                continue
            self.table.update(job_id, {
                "status": "failed", "finished_at": utc_now(),
                "error": "The agent stopped before this export finished."})
            if out:
                publish.remove_stale_temp_files(out)
            log.warning("export job %s was interrupted by a stop of its agent", job_id)

    # --- queue ------------------------------------------------------------------------

    def add(self, plan: ExportPlan, request: ExportRequest, run: Runner) -> int:
        row: dict[str, Any] = {
            "status": "pending", "table_name": plan.table.name, "format": plan.spec.name,
            "out_path": str(plan.out), "preset": plan.preset,
            "request_json": json.dumps(request.to_dict()), "trigger": request.trigger,
            "features": None, "bytes": None, "duration_seconds": None, "error": None,
            "pid": os.getpid(), "created_at": utc_now(), "started_at": None,
            "finished_at": None,
        }
        if self.stopping:
            raise TerraFusionError("The agent is stopping; submit the export again later.")
        row["id"] = self.table.insert(row)
        job = _Job(row, plan, run)
        with self.lock:
            self.jobs[row["id"]] = job
            self.queue.append(row["id"])
            self._forget_old()
            if self.worker is None or not self.worker.is_alive():
                self.worker = threading.Thread(target=self._work, name="export-jobs",
                                               daemon=True)
                self.worker.start()
            self.wakeup.notify()
        log.info("export job %s queued: %s to %s (%s)", row["id"], plan.table.name,
                 plan.out, plan.spec.name)
        return row["id"]

    def _forget_old(self) -> None:
        finished = [i for i, j in self.jobs.items() if j.done.is_set()]
        for job_id in sorted(finished)[:-KEEP_IN_MEMORY or None]:
            del self.jobs[job_id]

    def _work(self) -> None:
        while True:
            with self.lock:
                while not self.queue and not self.stopping:
                    self.wakeup.wait()
                if not self.queue:
                    return
                job = self.jobs[self.queue.popleft()]
            self._run(job)

    def _run(self, job: _Job) -> None:
        if job.token.cancelled:  # cancelled while it waited: it never starts
            self._finish(job, "cancelled", error="Cancelled before it started.")
            engine.notify_listeners({
                "table": job.plan.table.name, "format": job.plan.spec.name,
                "preset": job.plan.preset, "result": "cancelled", "features": 0,
                "bytes": 0, "duration_seconds": 0.0, "error": job.row["error"]})
            return
        job.row.update(status="running", started_at=utc_now(), pid=os.getpid())
        self.save(job, "status", "started_at", "pid")
        started = time.monotonic()

        def progress(p: engine.ExportProgress) -> None:
            job.progress = p

        try:
            result = job.run(progress, job.token)
        except ExportCancelled as exc:
            self._finish(job, "cancelled", started, error=str(exc))
        except TerraFusionError as exc:
            self._finish(job, "failed", started, error=str(exc))
        except Exception as exc:  # a bug: keep the worker alive, keep the reason
            log.exception("export job %s failed unexpectedly", job.row["id"])
            self._finish(job, "failed", started,
                         error=f"The export failed unexpectedly: {exc.__class__.__name__}: "
                               f"{exc}.")
        else:
            job.row.update(features=result.features, bytes=result.bytes)
            self._finish(job, "completed", started)

    def _finish(self, job: _Job, status: str, started: Optional[float] = None,
                error: Optional[str] = None) -> None:
        duration = None if started is None else round(time.monotonic() - started, 3)
        error = None if error is None else redact(error)  # kept, and served, for good
        job.row.update(status=status, error=error, finished_at=utc_now(),
                       duration_seconds=duration)
        self.save(job, "status", "error", "finished_at", "duration_seconds", "features",
                  "bytes")
        job.done.set()
        log.info("export job %s %s%s", job.row["id"], status, f": {error}" if error else "")

    def cancel(self, job_id: int) -> Optional[dict[str, Any]]:
        with self.lock:
            job = self.jobs.get(job_id)
        if job is None:
            return None
        if not job.done.is_set():
            job.token.cancel()  # the worker notices within a fraction of a second
        return job.snapshot()

    def stop(self, timeout: float) -> None:
        with self.lock:
            self.stopping = True
            for job in self.jobs.values():
                if not job.done.is_set():
                    job.token.cancel()
            self.wakeup.notify_all()
            worker = self.worker
        if worker is not None:
            worker.join(timeout)


_registry: dict[Path, _Jobs] = {}
_registry_lock = threading.Lock()


def _jobs_for(config: Config) -> _Jobs:
    path = Path(config.local_path).absolute()
    with _registry_lock:
        jobs = _registry.get(path)
        if jobs is None or jobs.stopping:
            jobs = _registry[path] = _Jobs(path)
        return jobs


def _ensure_table(path: Path, table: ExportJobsTable) -> None:
    """Create ``tf_export_jobs`` through the migrations if this copy predates it."""
    if not path.exists():
        raise ExportNotPossible(f"The local copy {path} does not exist yet; run a sync "
                                "first.")
    if not table.exists():
        from terrafusion_agent import migrate

        migrate.upgrade_local(path)


def _alive(pid: int) -> bool:
    """Whether a process with this id runs (on this machine: the local copy is local)."""
    if os.name == "nt":  # pragma: no cover - exercised on Windows workstations
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # QUERY_LIMITED
        if not handle:
            return False
        code = ctypes.c_ulong()
        ctypes.windll.kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        ctypes.windll.kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _public(row: dict[str, Any]) -> dict[str, Any]:
    try:
        request = json.loads(row.get("request_json") or "{}")
    except ValueError:
        request = {}
    return {
        "id": row["id"], "status": row["status"], "table": row["table_name"],
        "format": row["format"], "out": row["out_path"], "preset": row["preset"],
        "trigger": row["trigger"], "request": request, "features": row["features"],
        "bytes": row["bytes"], "duration_seconds": row["duration_seconds"],
        "error": row["error"], "created_at": row["created_at"],
        "started_at": row["started_at"], "finished_at": row["finished_at"],
    }


def _job_id(job_id: Union[int, str]) -> int:
    try:
        value = int(str(job_id).strip())
    except ValueError:
        raise NotFound(f"There is no export job {job_id!r}.") from None
    if not 1 <= value < 2**63:  # SQLite integers are 64-bit
        raise NotFound(f"There is no export job {job_id!r}.")
    return value


# --- the API ------------------------------------------------------------------------------


def submit(config: Config, body: Union[dict[str, Any], ExportRequest],
           trigger: str = "api") -> int:
    """Validate an export request and queue it; returns the job id.

    Raises :class:`~terrafusion_agent.errors.InvalidExport` (4xx) for anything wrong with
    the request: nothing is queued then.
    """
    request = body if isinstance(body, ExportRequest) else request_from_body(body,
                                                                             trigger=trigger)
    run: Runner
    if request.as_of is not None:
        # checked whole now (central asked for the table and its history), the rows
        # rebuilt when the job runs
        plan = asof.check(config, request)

        def run(progress: engine.ProgressCallback,
                cancel: engine.CancelToken) -> engine.ExportResult:
            return asof.export_as_of(config, request, progress=progress, cancel=cancel)
    else:
        plan = plan_export(config, request)

        def run(progress: engine.ProgressCallback,
                cancel: engine.CancelToken) -> engine.ExportResult:
            return engine.run_plan(plan, progress=progress, cancel=cancel)
    return _jobs_for(config).add(plan, request, run)


def get(config: Config, job_id: Union[int, str]) -> dict[str, Any]:
    """One job's state; :class:`~terrafusion_agent.errors.NotFound` if there is none."""
    value = _job_id(job_id)
    jobs = _jobs_for(config)
    with jobs.lock:
        job = jobs.jobs.get(value)
    if job is not None:
        return job.snapshot()
    row = jobs.table.read(value)
    if row is None:
        raise NotFound(f"There is no export job {job_id!r}.")
    return _public(row)


def list_jobs(config: Config, limit: int = 20) -> list[dict[str, Any]]:
    """The most recent jobs, newest first."""
    jobs = _jobs_for(config)
    out = []
    for row in jobs.table.recent(max(1, int(limit))):
        with jobs.lock:
            job = jobs.jobs.get(row["id"])
        out.append(job.snapshot() if job is not None else _public(row))
    return out


def cancel(config: Config, job_id: Union[int, str]) -> dict[str, Any]:
    """Ask a job to stop; returns its state (a finished job is left as it is)."""
    value = _job_id(job_id)
    jobs = _jobs_for(config)
    snapshot = jobs.cancel(value)
    if snapshot is not None:
        return snapshot
    row = jobs.table.read(value)
    if row is None:
        raise NotFound(f"There is no export job {job_id!r}.")
    if row["status"] not in FINISHED:
        raise TerraFusionError(f"Export job {value} runs in another process "
                               f"(pid {row['pid']}); cancel it there.")
    return _public(row)


def wait(config: Config, job_id: Union[int, str],
         timeout: Optional[float] = None) -> dict[str, Any]:
    """The job's state once it has finished, or when ``timeout`` seconds have passed."""
    value = _job_id(job_id)
    jobs = _jobs_for(config)
    with jobs.lock:
        job = jobs.jobs.get(value)
    if job is not None:
        job.done.wait(timeout)
        return job.snapshot()
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        state = get(config, value)
        if state["status"] in FINISHED or (deadline and time.monotonic() >= deadline):
            return state
        time.sleep(0.2)


def shutdown(timeout: float = 10.0) -> None:
    """Cancel every job of this process and wait for the workers (agent stop)."""
    with _registry_lock:
        all_jobs = list(_registry.values())
        _registry.clear()
    for jobs in all_jobs:
        jobs.stop(timeout)
