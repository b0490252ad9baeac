"""``terrafusion-agent run``: scheduler plus local HTTP API until SIGINT/SIGTERM.

The :class:`Agent` owns the local lock (one agent per local copy), the sync schedule,
the cached health figures, the metrics and the HTTP server, and offers the routes the few
operations they need. Heavy modules (the sync engine's drivers, GDAL for exports) are
imported where they are used, which keeps an idle agent small.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import signal
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator, Optional

from terrafusion_agent.config import Config
from terrafusion_agent.errors import CentralUnavailable, LocalDamaged, TerraFusionError
from terrafusion_agent.health import HealthMonitor
from terrafusion_agent.lock import LocalLock
from terrafusion_agent.redact import redact
from terrafusion_agent.service.scheduler import SyncFunction, SyncScheduler
from terrafusion_agent.timeutil import parse

log = logging.getLogger("terrafusion.agent")
#: how long a stop waits for the running sync to reach a transaction boundary
STOP_TIMEOUT_SECONDS = 8.0
#: how long POST /api/v1/syncs waits for the new run's id
RUN_ID_WAIT_SECONDS = 3.0
#: worker threads of the HTTP server: /health is cheap, POSTs may wait a little
HTTP_THREADS = 6


def release_memory() -> None:
    """Hand the heap a sync (or an export) freed back to the OS.

    A first copy of a county churns through many megabytes of rows; glibc keeps freed
    heap pages for reuse, so an idle agent would go on holding them for hours. Trimming
    after the work costs a few milliseconds and keeps the idle footprint small.
    """
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).malloc_trim(0)  # the process's own symbols include libc's
        except (OSError, AttributeError):  # musl and others: nothing to trim with
            pass


class ExportUnavailable(TerraFusionError):
    """The export engine cannot be loaded in this installation."""

    http_status = 503
    http_code = "export_unavailable"


class Agent:
    """The long-running agent: owns the local lock, the scheduler and the HTTP server."""

    def __init__(self, config: Config, *, sync: Optional[SyncFunction] = None):
        """``sync`` replaces ``run_sync`` (tests use it to make a sync slow or fail)."""
        self.config = config
        self.lock = LocalLock(config.local_path)
        self.scheduler = SyncScheduler(config, sync=sync, listeners=[self._after_sync])
        self.monitor = HealthMonitor(config, sync_state=self.scheduler.state,
                                     next_sync=self.scheduler.next_sync)
        self.metrics = None
        self.token: str = ""
        self.server = None
        self._map: dict = {}
        self._stop = threading.Event()
        self._server_thread: Optional[threading.Thread] = None
        self._locked = False
        self._exports = None
        self._exports_lock = threading.Lock()

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Take the lock, prepare the local copy, listen, then start the schedule."""
        from waitress import create_server

        from terrafusion_agent.service import token as token_mod
        from terrafusion_agent.service.http import Api, server_options
        from terrafusion_agent.stores.local import LocalStore

        self.lock.acquire()
        self._locked = True
        try:
            self.token = token_mod.load_or_create(self.config.token_file)
            try:
                LocalStore.open(self.config.local_path).close()  # create + migrate up front
            except LocalDamaged as exc:
                # keep serving: /health and every scheduled sync say so until it is recovered
                log.error("%s", exc)
            self.metrics = self._make_metrics()
            last_ok = parse(self.monitor.local.refresh()["last_success"])
            if last_ok is not None and self.metrics is not None:
                # the gauge survives restarts, so "last success too old" alerts stay true
                self.metrics.last_success.set(last_ok.timestamp())
            try:
                self.server = create_server(
                    Api(self), map=self._map, host=self.config.http_host,
                    port=self.config.http_port, threads=HTTP_THREADS,
                    ident="terrafusion-agent", expose_tracebacks=False, **server_options())
            except OSError as exc:
                raise TerraFusionError(
                    f"The agent cannot listen on {self.config.http_host}:"
                    f"{self.config.http_port}: {exc.strerror or exc}."
                ) from None
            self.scheduler.start()
            self._server_thread = threading.Thread(target=self._serve, name="http",
                                                   daemon=True)
            self._server_thread.start()
        except BaseException:
            self.stop()
            raise
        log.info("agent started; API on %s", self.base_url,
                 extra={"event": "start", "local_path": str(self.config.local_path)})

    def _make_metrics(self):
        try:
            from terrafusion_agent.metrics import AgentMetrics
        except ImportError as exc:
            # an incomplete bundle must not stop syncing: /metrics then answers 503
            log.warning("metrics unavailable: %s", exc)
            return None
        return AgentMetrics(
            open_conflicts=lambda: self.monitor.figure("open_conflicts"),
            pending_changes=lambda: self.monitor.figure("pending_local_edits"),
            rejected_rows=lambda: self.monitor.figure("rejected_rows"))

    @property
    def port(self) -> int:
        return int(self.server.effective_port)

    @property
    def base_url(self) -> str:
        from terrafusion_agent.config import api_base_url

        return api_base_url(self.config.http_host, self.port)

    @property
    def health_url(self) -> str:
        return f"{self.base_url}/health"

    def install_signal_handlers(self) -> None:
        """SIGINT/SIGTERM ask for a graceful stop (main thread only; call before start).

        A second signal of the same kind acts at once, the usual way.
        """
        def handler(signum, _frame):
            signal.signal(signum, signal.SIG_DFL)
            self._stop.set()

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    def request_stop(self) -> None:
        self._stop.set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until a stop is requested (True) or ``timeout`` passes (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._stop.wait(0.5):
            if deadline is not None and time.monotonic() >= deadline:
                return False
        return True

    def _serve(self) -> None:
        try:
            self.server.run()
        except (OSError, ValueError):
            # stop() closes the sockets under the loop's select(): expected then
            if not self._stop.is_set():
                raise

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> bool:
        """Stop the schedule, let a running sync end its batch, close the server.

        Returns False if the sync did not stop within ``timeout``: the caller should then
        end the process, whose death rolls the open transaction back; the local lock is
        kept until then so no other agent starts on a copy still being written.
        """
        self._stop.set()
        if self._server_thread is not None:
            log.info("stopping", extra={"event": "stop"})
        deadline = time.monotonic() + timeout
        self.scheduler.request_stop()  # the sync heads for a boundary while exports stop
        self._stop_exports(min(3.0, timeout / 2))
        clean = self.scheduler.shutdown(max(0.1, deadline - time.monotonic()))
        if self.server is not None:
            from waitress import wasyncore

            self.server.close()
            self.server.task_dispatcher.shutdown(timeout=1)
            wasyncore.close_all(self._map)
        if self._server_thread is not None:
            self._server_thread.join(2)
        if not clean:
            log.warning("the running sync did not stop within %.0f s; it is abandoned and "
                        "its open transaction rolled back", timeout)
        elif self._locked:
            self.lock.release()
            self._locked = False
        return clean

    # --- syncs --------------------------------------------------------------------------

    def request_sync(self) -> dict[str, Any]:
        """Start a sync now (409 via SyncInProgress if one runs); returns its id."""
        baseline = self._last_run_id()
        thread = self.scheduler.start_sync("api")
        run_id = None
        # The engine numbers the run when it starts; wait briefly so the caller gets an
        # id to look for in GET /api/v1/syncs.
        deadline = time.monotonic() + RUN_ID_WAIT_SECONDS
        while time.monotonic() < deadline:
            latest = self._last_run_id()
            if latest is not None and latest > (baseline or 0):
                run_id = latest
                break
            if not thread.is_alive():
                latest = self._last_run_id()
                run_id = latest if latest is not None and latest > (baseline or 0) else None
                break
            time.sleep(0.02)
        return {"id": run_id, "trigger": "api",
                "status": "running" if thread.is_alive() else "finished"}

    def recent_runs(self, limit: int) -> list[dict[str, Any]]:
        with self._local() as local:
            runs = local.recent_runs(limit)
        for run in runs:
            start, end = parse(run.get("started_at")), parse(run.get("finished_at"))
            run["duration_seconds"] = (round((end - start).total_seconds(), 3)
                                       if start and end else None)
            if run.get("error"):
                run["error"] = redact(str(run["error"]))
        return runs

    def _last_run_id(self) -> Optional[int]:
        with self._local() as local:
            runs = local.recent_runs(1)
        return int(runs[0]["id"]) if runs else None

    @contextmanager
    def _local(self) -> Iterator[Any]:
        from terrafusion_agent.stores.local import LocalStore

        local = LocalStore.open(self.config.local_path, migrate=False)
        try:
            yield local
        finally:
            local.close()

    def _after_sync(self, trigger: str, result: str, summary: Optional[dict],
                    error: Optional[BaseException], duration: float) -> None:
        """Metrics, health figures and the one log line of every finished sync."""
        figures = self.monitor.local.refresh()
        if result == "success":
            self.monitor.central_seen(True)
        elif isinstance(error, CentralUnavailable):
            self.monitor.central_seen(False, str(error))
        if self.metrics is not None:
            if result == "success" and summary is not None:
                self.metrics.sync_succeeded(summary)
            else:
                self.metrics.sync_ended_badly(result, duration,
                                              self.scheduler.consecutive_failures)
        # a failed attempt's own figures, never the previous run's: an attempt the busy
        # or full local copy could not take in has no record (and no figures) yet
        run = summary if summary is not None else getattr(error, "sync_run", None)
        fields: dict[str, Any] = {
            "event": "sync", "trigger": trigger, "result": result,
            "duration_seconds": round(duration, 3), "run_id": (run or {}).get("id"),
        }
        fields.update({k: (run or {}).get(k) for k in ("pulled", "pushed", "conflicts", "rows")
                       if run is not None and k in run})
        fields["pending_local_edits"] = figures.get("pending_local_edits")
        fields["open_conflicts"] = figures.get("open_conflicts")
        fields["rejected_rows"] = figures.get("rejected_rows")
        if error is not None:
            fields["error"] = redact(str(error))
        level = logging.INFO if result in ("success", "cancelled") else logging.WARNING
        if run is None:
            log.log(level, "sync %s (%s) in %.2f s, not recorded: %s", result, trigger,
                    duration, fields.get("error"), extra=fields)
        else:
            log.log(level, "sync %s (%s) in %.2f s: pulled %s, pushed %s, conflicts %s",
                    result, trigger, duration, fields.get("pulled"), fields.get("pushed"),
                    fields.get("conflicts"), extra=fields)
        release_memory()

    # --- conflicts ----------------------------------------------------------------------

    def conflicts(self, include_resolved: bool) -> list[dict[str, Any]]:
        with self._local() as local:
            return local.conflicts(include_resolved=include_resolved)

    def resolve_conflict(self, conflict_id: int, keep: str) -> dict[str, Any]:
        """Resolve one conflict, never while a sync runs (the two would race on the rows)."""
        with self._local() as local:
            conflict = local.conflict(conflict_id)  # NotFound -> 404 before anything else
        if conflict.get("resolved_at"):
            raise TerraFusionError(
                f"Conflict {conflict_id} was already resolved ({conflict.get('resolution')}).")
        try:
            from terrafusion_agent.sync.conflicts import resolve
        except ImportError:
            raise TerraFusionError(
                "Conflict resolution is not available in this version of the agent.") from None
        with self.scheduler.exclusive("resolving a conflict"):
            result = resolve(self.config, conflict_id, keep)
        self.monitor.local.refresh()
        return result if isinstance(result, dict) else {"id": conflict_id, "keep": keep}

    # --- exports ------------------------------------------------------------------------

    def _export_engine(self):
        """The export jobs API, loaded on first use (GDAL costs ~50 MB: not while idle)."""
        with self._exports_lock:
            if self._exports is None:
                try:
                    from terrafusion_agent.export import engine, jobs
                except ImportError as exc:
                    log.debug("export engine unavailable: %s", exc)
                    raise ExportUnavailable(
                        f"The export engine is unavailable in this installation: {exc}."
                    ) from None
                engine.add_listener(self._after_export)
                self._exports = jobs
        return self._exports

    def _after_export(self, event: dict[str, Any]) -> None:
        """Listener of the export engine: metrics, and the memory GDAL used given back."""
        if self.metrics is not None:
            self.metrics.export_finished(event)
        release_memory()

    def _stop_exports(self, timeout: float) -> None:
        if self._exports is None:
            return
        from terrafusion_agent.export import engine

        engine.remove_listener(self._after_export)
        try:
            self._exports.shutdown(timeout)
        except Exception:  # noqa: BLE001 - stopping must go on
            log.exception("stopping the export jobs failed")

    def submit_export(self, body: dict[str, Any]) -> dict[str, Any]:
        jobs = self._export_engine()
        job_id = jobs.submit(self.config, body, trigger="api")
        return jobs.get(self.config, job_id)

    def export_job(self, job_id: int) -> dict[str, Any]:
        jobs = self._export_engine()
        return jobs.get(self.config, job_id)
