"""``terrafusion-agent run``: scheduler plus local HTTP API until SIGINT/SIGTERM.

SIGHUP re-reads the configuration file (as ``POST /api/v1/config/reload`` does).

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
import sqlite3
import sys
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

from terrafusion_agent import config as config_mod
from terrafusion_agent.config import Config
from terrafusion_agent.errors import (
    CentralUnavailable,
    ConfigError,
    LocalBusy,
    LocalDamaged,
    NotFound,
    SyncInProgress,
    TerraFusionError,
)
from terrafusion_agent.health import HealthMonitor
from terrafusion_agent.lock import LocalLock
from terrafusion_agent.redact import redact
from terrafusion_agent.service import reload as reload_mod
from terrafusion_agent.service.scheduler import BeginFunction, SyncFunction, SyncScheduler
from terrafusion_agent.timeutil import parse, seconds_between

log = logging.getLogger("terrafusion.agent")
#: full summaries of finished runs kept for GET /api/v1/syncs/{id}
KEPT_SUMMARIES = 50
#: how long a stop waits for the running sync to reach a transaction boundary
STOP_TIMEOUT_SECONDS = 8.0
#: worker threads of the HTTP server: /health is cheap, POSTs may wait a little
HTTP_THREADS = 6
#: worker threads of the metrics-only listener: a scraper asks every few seconds at most
METRICS_THREADS = 2
#: how long a conflict resolution sent during a sync waits for it to finish
RESOLVE_WAIT_SECONDS = 60.0
#: resolutions that may wait at once: the other HTTP threads keep answering /health
RESOLVE_WAITERS = HTTP_THREADS // 2


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

    def __init__(self, config: Config, *, sync: Optional[SyncFunction] = None,
                 begin: Optional[BeginFunction] = None,
                 load_config: Optional[Callable[[], Config]] = None):
        """``sync`` and ``begin`` replace ``run_sync`` and ``begin_run`` (tests use them
        to make a sync slow or fail); ``load_config`` reads the configuration again for
        a reload (default: the file ``config`` came from, with today's environment)."""
        self.config = config
        self._load_config = load_config or (lambda: config_mod.load(config.source))
        self._reload_lock = threading.Lock()
        self._reload_requested = threading.Event()
        self._resolve_waiters = threading.BoundedSemaphore(RESOLVE_WAITERS)
        self.lock = LocalLock(config.local_path)
        self.scheduler = SyncScheduler(config, sync=sync, begin=begin,
                                       listeners=[self._after_sync])
        self.monitor = HealthMonitor(config, sync_state=self.scheduler.state,
                                     next_sync=self.scheduler.next_sync)
        self.metrics = None
        self.token: str = ""
        self.server = None
        self._map: dict = {}
        #: the metrics-only listener (``http.metrics_host``), with its own loop
        self.metrics_server = None
        self._metrics_map: dict = {}
        self._metrics_thread: Optional[threading.Thread] = None
        self.alerts = None
        self._stop = threading.Event()
        self._server_thread: Optional[threading.Thread] = None
        self._locked = False
        self._exports = None
        self._exports_lock = threading.Lock()
        #: the full summaries of the latest runs this agent made, by id (the runs table
        #: keeps the figures; a client following its run gets the whole summary, as
        #: ``terrafusion-agent sync`` prints it)
        self._summaries: OrderedDict[int, dict[str, Any]] = OrderedDict()

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
            from terrafusion_agent.alerts import Alerts, local_state

            self.alerts = Alerts(lambda: self.config, *local_state(self.config))
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
            if self.config.metrics_host:
                self._listen_for_metrics(create_server)
            self.scheduler.start()
            self._server_thread = threading.Thread(target=self._serve, name="http",
                                                   daemon=True)
            self._server_thread.start()
            if self.metrics_server is not None:
                self._metrics_thread = threading.Thread(
                    target=self._serve_metrics, name="http-metrics", daemon=True)
                self._metrics_thread.start()
        except BaseException:
            self.stop()
            raise
        log.info("agent started; API on %s", self.base_url,
                 extra={"event": "start", "local_path": str(self.config.local_path)})
        if self.metrics_url is not None:
            log.info("metrics for the network on %s", self.metrics_url,
                     extra={"event": "start", "metrics_url": self.metrics_url})

    def _listen_for_metrics(self, create_server) -> None:
        """The second listener, for a scraper on the network: /metrics and /health/live
        only, so the API's routes (owner names in conflicts, history, pending edits)
        stay on ``http.host``."""
        from terrafusion_agent.service.http import Api, server_options
        from terrafusion_agent.service.routes import METRICS_ROUTES

        host, port = self.config.metrics_host, self.config.metrics_port
        try:
            self.metrics_server = create_server(
                Api(self, routes=METRICS_ROUTES, host=host), map=self._metrics_map,
                host=host, port=port, threads=METRICS_THREADS,
                ident="terrafusion-agent", expose_tracebacks=False, **server_options())
        except OSError as exc:
            raise TerraFusionError(
                f"The agent cannot listen for metrics on {host}:{port} "
                f"(http.metrics_host, http.metrics_port): {exc.strerror or exc}.") from None

    @property
    def metrics_url(self) -> Optional[str]:
        """Where the metrics-only listener serves /metrics; None without one."""
        if self.metrics_server is None:
            return None
        from terrafusion_agent.config import api_base_url

        return (f"{api_base_url(self.config.metrics_host, self.metrics_server.effective_port)}"
                "/metrics")

    def _serve_metrics(self) -> None:
        try:
            self.metrics_server.run()
        except (OSError, ValueError):
            if not self._stop.is_set():
                raise

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
            rejected_rows=lambda: self.monitor.figure("rejected_rows"),
            sync_interval=lambda: self.config.interval_seconds)

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
        """SIGINT/SIGTERM ask for a graceful stop, SIGHUP (where there is one) for a
        reload of the configuration (main thread only; call before start).

        A second stop signal of the same kind acts at once, the usual way.
        """
        def stop(signum, _frame):
            signal.signal(signum, signal.SIG_DFL)
            self._stop.set()

        def reload(_signum, _frame):
            # done by wait(), not here: a handler may interrupt the main thread anywhere
            self._reload_requested.set()

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        if hasattr(signal, "SIGHUP"):  # not on Windows
            signal.signal(signal.SIGHUP, reload)

    def request_stop(self) -> None:
        self._stop.set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until a stop is requested (True) or ``timeout`` passes (False); reload
        the configuration when SIGHUP asks for it meanwhile."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._stop.wait(0.5):
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                try:
                    self.reload_config()
                except ConfigError:
                    pass  # logged; the running configuration stays
                except Exception:  # noqa: BLE001 - a reload must not end the agent
                    log.exception("reloading the configuration failed")
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
        if self.metrics_server is not None:
            from waitress import wasyncore

            self.metrics_server.close()
            self.metrics_server.task_dispatcher.shutdown(timeout=1)
            wasyncore.close_all(self._metrics_map)
        if self._metrics_thread is not None:
            self._metrics_thread.join(2)
        if not clean:
            log.warning("the running sync did not stop within %.0f s; it is abandoned and "
                        "its open transaction rolled back", timeout)
        elif self._locked:
            self.lock.release()
            self._locked = False
        return clean

    # --- syncs --------------------------------------------------------------------------

    def request_sync(self) -> dict[str, Any]:
        """Start a sync now and return its id, recorded before the sync's work starts.

        Raises SyncInProgress, carrying the running run's id as ``run_id``, if a sync
        runs; the error that kept the run from being recorded (a busy or damaged local
        copy) if there is one.
        """
        try:
            run = self.scheduler.start_sync("api")
        except SyncInProgress as exc:
            running = getattr(exc, "run", None)
            exc.run_id = (running.id if running is not None
                          and running.wait_recorded(self._record_wait()) else None)
            raise
        if not run.wait_recorded(self._record_wait()):
            raise LocalBusy(f"The sync was started, but the local copy "
                            f"{self.config.local_path} did not record it within "
                            f"{self._record_wait():.0f} s.")
        if run.id is None:
            if isinstance(run.error, TerraFusionError):
                raise run.error
            raise TerraFusionError("The sync could not be recorded in the local copy; "
                                   "see the agent's log.")
        return {"id": run.id, "status": "running"}

    def _record_wait(self) -> float:
        # recording a run opens the copy and writes it: each may wait out the busy timeout
        return 2.0 * self.config.local_busy_timeout_seconds + 5.0

    def recent_runs(self, limit: int) -> list[dict[str, Any]]:
        with self._local() as local:
            runs = local.recent_runs(limit)
        return [self._presented(run) for run in runs]

    def table_figures(self) -> list[dict[str, Any]]:
        """Per synced table: rows in the copy, last pull, last rows pulled (for the status
        page); empty when the copy cannot be read (its health check says why)."""
        try:
            with self._local() as local:
                return local.table_figures(self.config.tables)
        except (TerraFusionError, sqlite3.Error) as exc:
            log.debug("the per-table figures cannot be read: %s", exc)
            return []

    def sync_run(self, run_id: int) -> dict[str, Any]:
        """One run as GET /api/v1/syncs lists it; with its progress while it runs."""
        with self._local() as local:
            run = local.run(run_id)
        if run is None:
            raise NotFound(f"There is no sync run with id {run_id}.")
        current = self.scheduler.current()
        if current is not None and current.id == run_id and run.get("result") != "running":
            # recorded, but this agent is still finishing it (metrics, its summary): a
            # client sees the end once all of it is there
            run.update(result="running", finished_at=None)
        presented = self._presented(run)
        summary = self._summaries.get(run_id)
        if summary is not None and presented.get("result") != "running":
            presented.update({k: v for k, v in summary.items() if k not in presented})
        return presented

    def _presented(self, run: dict[str, Any]) -> dict[str, Any]:
        if run.get("result") == "running":
            current = self.scheduler.current()
            ended = self.scheduler.last_ended
            if current is not None and current.id == run["id"]:
                run["progress"] = current.progress.as_dict()
            elif ended is not None and ended["id"] == run["id"]:
                # its end waits for the local copy (it was busy): say what this agent knows
                run.update({k: ended[k] for k in ("result", "finished_at", "error")})
            else:  # left by a process that ended: the next sync closes it
                run["progress"] = {"fraction": None, "table": ""}
        run["duration_seconds"] = seconds_between(run.get("started_at"), run.get("finished_at"))
        if run.get("error"):
            run["error"] = redact(str(run["error"]))
        return run

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
        """Metrics, health figures and alerts of every finished sync."""
        if summary is not None and isinstance(summary.get("id"), int):
            self._summaries[summary["id"]] = summary
            while len(self._summaries) > KEPT_SUMMARIES:
                self._summaries.popitem(last=False)
        self.monitor.local.refresh()
        if self.alerts is not None:
            try:
                self.alerts.sync_ended(result, summary, error)
            except Exception:  # noqa: BLE001 - an alert must never disturb the agent
                log.exception("the sync's alerts failed")
        if result == "success":
            self.monitor.central_seen(True)
        elif isinstance(error, CentralUnavailable):
            self.monitor.central_seen(False, str(error))
        # a failed attempt's own figures, never the previous run's: an attempt the busy
        # or full local copy could not take in has no record (and no figures) yet
        run = summary if summary is not None else getattr(error, "sync_run", None)
        if self.metrics is not None:
            if result == "success" and summary is not None:
                self.metrics.sync_succeeded(summary)
            else:
                # the run's recorded duration, as its log line and the API give it
                recorded = (run or {}).get("duration_seconds")
                self.metrics.sync_ended_badly(
                    result, recorded if recorded is not None else duration,
                    self.scheduler.consecutive_failures)
        # (the sync's one log line is the engine's, which every sync goes through)

        # an idle sync (the poll alone) freed nothing worth a full collection, which
        # would cost more CPU than the sync itself
        idle = result == "success" and run is not None and not (
            run.get("pulled") or run.get("pushed"))
        if not idle:
            release_memory()

    # --- conflicts ----------------------------------------------------------------------

    def conflicts(self, include_resolved: bool) -> list[dict[str, Any]]:
        with self._local() as local:
            return local.conflicts(include_resolved=include_resolved)

    def resolve_conflict(self, conflict_id: int, keep: Optional[str] = None,
                         merge: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        """Resolve one conflict keeping a side or with a per-column merge; during a sync,
        once it has finished (the two would race on the rows), waiting up to
        RESOLVE_WAIT_SECONDS for that."""
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
        if not self._resolve_waiters.acquire(blocking=False):
            raise SyncInProgress(
                f"{RESOLVE_WAITERS} conflict resolutions are already waiting for the running "
                "sync; send this one again when it has finished.")
        try:
            if self.scheduler.is_running():
                log.info("conflict %d waits up to %.0f s for the running sync to finish",
                         conflict_id, RESOLVE_WAIT_SECONDS,
                         extra={"event": "resolve_waits", "conflict_id": conflict_id})
            with self.scheduler.exclusive("resolving a conflict", RESOLVE_WAIT_SECONDS):
                result = resolve(self.config, conflict_id, keep, merge)
        finally:
            self._resolve_waiters.release()
        self.monitor.local.refresh()
        if isinstance(result, dict):
            return result
        return {"id": conflict_id, **({"keep": keep} if merge is None else {"merge": merge})}

    # --- pending local edits ------------------------------------------------------------

    def pending_edits(self, limit: Optional[int] = None) -> list[dict[str, Any]]:
        """The local edits not yet pushed, oldest first (see ``sync/pending.py``)."""
        from terrafusion_agent.sync.pending import listed

        with self._local() as local:
            return listed(local, limit=limit)

    def discard_pending(self, edits: Optional[list[tuple[str, list]]]) -> dict[str, Any]:
        """Discard pending edits (None: all but those in conflict); during a sync, once it
        has finished (it must not meet a row half restored), waiting up to
        RESOLVE_WAIT_SECONDS for that, as a conflict resolution does."""
        from terrafusion_agent.sync.pending import check, discard

        with self._local() as local:
            check(local, edits)  # a bad request is answered now, not after the sync
        # the waiters a resolution may use: together they leave HTTP threads for /health
        if not self._resolve_waiters.acquire(blocking=False):
            raise SyncInProgress(
                f"{RESOLVE_WAITERS} requests are already waiting for the running sync; "
                "send this discard again when it has finished.")
        try:
            if self.scheduler.is_running():
                log.info("discarding pending edits waits up to %.0f s for the running sync "
                         "to finish", RESOLVE_WAIT_SECONDS, extra={"event": "discard_waits"})
            with self.scheduler.exclusive("discarding pending edits", RESOLVE_WAIT_SECONDS):
                result = discard(self.config, edits)
        finally:
            self._resolve_waiters.release()
        self.monitor.local.refresh()
        log.info("discarded %d pending edits", len(result["discarded"]),
                 extra={"event": "discard", "discarded": len(result["discarded"])})
        return result

    # --- a feature's history ------------------------------------------------------------

    def feature_history(self, table: str, key: str, since: Optional[str],
                        until: Optional[str]) -> dict[str, Any]:
        """GET /api/v1/history/{table}/{key}: read from central, as the CLI prints it."""
        from terrafusion_agent.feature_history import report

        return report(self.config, table, key, since, until)

    # --- configuration ------------------------------------------------------------------

    def reload_config(self) -> dict[str, Any]:
        """Read the configuration again and apply what can change while running.

        A bad file raises ConfigError with the sentence ``load()`` gives at start, and the
        running configuration stays. Settings bound at start keep their value until a
        restart; the answer lists them under ``restart_required``.
        """
        with self._reload_lock:
            try:
                loaded = self._load_config()
            except ConfigError as exc:
                log.error("configuration not reloaded, the running one stays: %s", exc,
                          extra={"event": "reload", "result": "refused"})
                raise
            change = reload_mod.compare(self.config, loaded)
            self.config = change.config
            self.scheduler.reconfigure(change.config)
            self.monitor.config = change.config
            if "logging.level" in change.changed:
                logging.getLogger("terrafusion").setLevel(change.config.log_level)
        # names only: a value may be a password or a path the log should not carry
        log.info("configuration reloaded; changed: %s; needing a restart: %s",
                 ", ".join(change.changed) or "nothing",
                 ", ".join(change.restart_required) or "nothing",
                 extra={"event": "reload", "result": "reloaded", "changed": change.changed,
                        "restart_required": change.restart_required})
        return {"reloaded": True, "changed": change.changed,
                "restart_required": change.restart_required}

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

    def cancel_export(self, job_id: int) -> tuple[dict[str, Any], bool]:
        """Ask job ``job_id`` to stop; (its state, whether it was still pending or
        running)."""
        jobs = self._export_engine()
        state = jobs.cancel(self.config, job_id)
        return state, state["status"] not in jobs.FINISHED

    def export_job(self, job_id: int) -> dict[str, Any]:
        jobs = self._export_engine()
        return jobs.get(self.config, job_id)
