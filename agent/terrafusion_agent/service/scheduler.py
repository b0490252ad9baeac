"""When syncs run: the interval schedule, manual triggers, one at a time, backoff.

One lock is shared by the scheduled and the manual path, so a sync never overlaps
another: a scheduled tick that finds a sync running is skipped (the next interval comes
soon enough) and a manual trigger is refused with :class:`SyncInProgress` (HTTP 409),
which names the running run. Every sync, scheduled or asked for, is recorded as running
before its work starts, so whoever asked can follow it by its id.

Each sync runs in a thread of its own, not in the scheduler's executor: the scheduler
stays responsive, and a sync stuck in a database call cannot hold up the agent's exit.
Connect and statement timeouts of the central store bound how long one sync can hang.

After a failure the next attempt comes sooner than the interval and then backs off:
``min(interval, 30 s * 2**(failures - 1))``, less up to 10 % of jitter so that fifty
workstations that lost the same central do not all knock at the same second when it
returns. A transient network blip thus costs seconds, not a whole interval, while a
central that stays down is tried no more often than a healthy one is synced.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator, Optional

from terrafusion_agent.config import Config
from terrafusion_agent.errors import AgentBusy, SyncCancelled, SyncInProgress, TerraFusionError
from terrafusion_agent.redact import redact
from terrafusion_agent.timeutil import utc_now

log = logging.getLogger("terrafusion.agent")
JOB_ID = "sync"
#: first retry delay after a failure (capped by the interval)
RETRY_BASE_SECONDS = 30.0

#: begin_run's signature: (config, trigger) -> the id of the run it recorded
BeginFunction = Callable[[Config, str], int]
#: run_sync's signature: (config, trigger=..., stop=..., run_id=..., progress=...) -> summary
SyncFunction = Callable[..., dict]
#: called after every run with (trigger, result, summary or None, error or None, duration)
Listener = Callable[[str, str, Optional[dict], Optional[BaseException], float], None]


def _default_begin(config: Config, trigger: str) -> int:
    from terrafusion_agent.sync.engine import begin_run

    return begin_run(config, trigger)


class RunProgress:
    """How far a run is as a whole (0 to 1), and the table it is on.

    The engine counts rows per table, first while pulling and then while pushing. As in
    the plugin's progress bar, each table is an equal share in the order the tables first
    report; the fraction never goes back when the push reports a table again.
    """

    def __init__(self, tables: tuple[str, ...]):
        self._tables = list(tables) or [""]
        self._seen: list[str] = []
        self._lock = threading.Lock()
        self.fraction = 0.0
        self.table = ""

    def __call__(self, table: str, done: int, total: int) -> None:
        with self._lock:
            if table not in self._seen:
                self._seen.append(table)
            index = min(self._seen.index(table), len(self._tables) - 1)
            within = done / total if total else 1.0
            self.fraction = max(self.fraction, min(1.0, (index + within) / len(self._tables)))
            self.table = table

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {"fraction": round(self.fraction, 4), "table": self.table}


class SyncRun:
    """The sync in progress: who asked, its recorded id once there, its progress."""

    def __init__(self, trigger: str, tables: tuple[str, ...]):
        self.trigger = trigger
        self.started_at = utc_now()
        self.id: Optional[int] = None
        #: why the run could not be recorded, if it could not
        self.error: Optional[BaseException] = None
        self.progress = RunProgress(tables)
        self._recorded = threading.Event()

    def wait_recorded(self, timeout: float) -> bool:
        """True once the attempt to record the run is over (``id`` or ``error`` says how)."""
        return self._recorded.wait(timeout)


def retry_delay(failures: int, interval: float, base: float = RETRY_BASE_SECONDS) -> float:
    """Seconds to wait after ``failures`` consecutive failures (before jitter)."""
    if failures <= 0:
        return float(interval)
    return float(min(interval, base * 2 ** min(failures - 1, 30)))


class SyncScheduler:
    """The interval schedule and the single-flight sync runner behind it."""

    def __init__(self, config: Config, *, sync: Optional[SyncFunction] = None,
                 begin: Optional[BeginFunction] = None,
                 listeners: Optional[list[Listener]] = None):
        self.config = config
        self._sync = sync or self._kept_sync
        #: the central connection kept between this agent's own syncs
        self._kept = None
        self._begin = begin or _default_begin
        self._listeners = list(listeners or [])
        self._busy = threading.Lock()
        #: what holds the lock besides a sync (see :meth:`exclusive`), for a refused sync
        self._other_work = "resolving a conflict"
        self._stop = threading.Event()
        self._state_lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._scheduler = None
        self.running: Optional[SyncRun] = None
        #: how the last run that had an id ended: its end may not be in the local copy yet
        self.last_ended: Optional[dict[str, Any]] = None
        self.consecutive_failures = 0
        self.last_error: Optional[str] = None

    # --- lifecycle ----------------------------------------------------------------------

    def start(self, first_run: Optional[datetime] = None) -> None:
        """Start the schedule; the first sync runs at ``first_run`` (default: now)."""
        from apscheduler.schedulers.background import BackgroundScheduler

        interval = self.config.interval_seconds
        self._scheduler = BackgroundScheduler(timezone=timezone.utc)
        self._scheduler.add_job(
            self._tick, "interval", id=JOB_ID, seconds=interval,
            next_run_time=first_run or datetime.now(timezone.utc),
            # one tick at a time; ticks missed while the machine slept collapse into one,
            # which still runs if it is at most one interval late
            max_instances=1, coalesce=True, misfire_grace_time=interval,
        )
        self._scheduler.start()

    def reconfigure(self, config: Config) -> None:
        """Use ``config`` from the next sync on; a new interval reschedules at once.

        The next sync comes one new interval from now, or sooner if it was due sooner
        (a retry after a failure stays where it is).
        """
        old, self.config = self.config, config
        if config.interval_seconds == old.interval_seconds or not self.alive():
            return
        try:
            job = self._scheduler.get_job(JOB_ID)
            due = job.next_run_time if job is not None else None
            self._scheduler.reschedule_job(JOB_ID, trigger="interval",
                                           seconds=config.interval_seconds)
            changes: dict[str, Any] = {"misfire_grace_time": config.interval_seconds}
            job = self._scheduler.get_job(JOB_ID)
            if due is not None and job is not None and due < job.next_run_time:
                changes["next_run_time"] = due
            self._scheduler.modify_job(JOB_ID, **changes)
        except Exception:  # noqa: BLE001 - e.g. the scheduler shut down meanwhile
            log.debug("could not reschedule the sync job", exc_info=True)

    def alive(self) -> bool:
        return bool(self._scheduler is not None and self._scheduler.running
                    and not self._stop.is_set())

    def request_stop(self) -> None:
        """Ask a running sync to stop at its next boundary and start no other."""
        self._stop.set()

    def shutdown(self, timeout: float) -> bool:
        """Stop scheduling, ask a running sync to stop; True if it ended within ``timeout``."""
        self._stop.set()
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        thread = self._thread
        if thread is not None and thread.is_alive():
            log.info("waiting up to %.0f s for the running sync to stop", timeout)
            thread.join(timeout)
            if thread.is_alive():
                return False  # the sync still uses the kept connection: the exit ends it
        if self._kept is not None:
            self._kept.close()
        return True

    # --- state --------------------------------------------------------------------------

    def next_sync(self) -> Optional[str]:
        """When the schedule runs the next sync (ISO 8601, UTC), if scheduled."""
        if self._scheduler is None or self._stop.is_set():
            return None
        job = self._scheduler.get_job(JOB_ID)
        if job is None or job.next_run_time is None:
            return None
        return (job.next_run_time.astimezone(timezone.utc)
                .isoformat(timespec="milliseconds").replace("+00:00", "Z"))

    def state(self) -> dict[str, Any]:
        """What the health body shows about syncing right now."""
        with self._state_lock:
            run = self.running
            return {"sync_running": None if run is None else {
                        "id": run.id, "trigger": run.trigger, "started_at": run.started_at},
                    "consecutive_failures": self.consecutive_failures,
                    "last_error": self.last_error}

    def is_running(self) -> bool:
        return self._busy.locked()

    def current(self) -> Optional[SyncRun]:
        """The sync in progress, if any."""
        with self._state_lock:
            return self.running

    @contextmanager
    def exclusive(self, what: str, timeout: float = 0) -> Iterator[None]:
        """Hold the sync lock for other work on the data (e.g. resolving a conflict),
        waiting up to ``timeout`` seconds for a running sync to finish."""
        if not self._busy.acquire(timeout=max(0.0, timeout)):
            raise SyncInProgress(
                f"A sync is running; {what} has to wait until it has finished." if timeout <= 0
                else f"A sync was still running after {timeout:.0f} s; {what} has to wait "
                     "until it has finished.")
        try:
            if self._stop.is_set():  # the wait ended because the agent is stopping
                raise TerraFusionError(f"The agent is stopping; {what} was not done.")
            self._other_work = what
            yield
        finally:
            self._busy.release()

    # --- work ---------------------------------------------------------------------------

    def _kept_sync(self, config: Config, trigger: str, stop: threading.Event, run_id: int,
                   progress: Callable[[str, int, int], None]) -> dict:
        """``run_sync`` on the central connection kept from this agent's last sync."""
        from terrafusion_agent.sync.engine import KeptCentral, run_sync

        if self._kept is None:
            self._kept = KeptCentral()
        return run_sync(config, trigger=trigger, stop=stop, run_id=run_id, progress=progress,
                        kept=self._kept)

    def _tick(self) -> None:
        try:
            self.start_sync("schedule")
        except SyncInProgress:
            log.info("scheduled sync skipped: a sync is already running")
        except AgentBusy as exc:
            log.info("scheduled sync skipped: %s", exc)
        except TerraFusionError as exc:  # stopping
            log.debug("scheduled sync not started: %s", exc)

    def start_sync(self, trigger: str) -> SyncRun:
        """Start a sync in the background; its :class:`SyncRun` gets the recorded id.

        Raises SyncInProgress, whose ``run`` is the sync in progress, if one is running,
        and AgentBusy while other work holds the lock (a conflict being resolved).
        """
        if self._stop.is_set():
            raise TerraFusionError("The agent is stopping; no new sync is started.")
        if not self._busy.acquire(blocking=False):
            current = self.current()
            if current is None:
                raise AgentBusy(f"The agent is {self._other_work}; ask for the sync again "
                                "in a moment.")
            busy = SyncInProgress("A sync is already running; follow it, or ask again "
                                  "when it has finished.")
            busy.run = current
            raise busy
        run = SyncRun(trigger, self.config.tables)
        try:
            with self._state_lock:
                self.running = run
            thread = threading.Thread(target=self._run, args=(run,),
                                      name=f"sync-{trigger}", daemon=True)
            self._thread = thread
            thread.start()
        except BaseException:
            with self._state_lock:
                self.running = None
            self._busy.release()
            raise
        return run

    def _run(self, run: SyncRun) -> None:
        started = time.monotonic()
        summary: Optional[dict] = None
        error: Optional[BaseException] = None
        config = self.config  # one configuration for the whole run, reloaded or not
        try:
            try:
                run.id = self._begin(config, run.trigger)
            except BaseException as exc:
                run.error = exc
                raise
            finally:
                run._recorded.set()
            summary = self._sync(config, trigger=run.trigger, stop=self._stop,
                                 run_id=run.id, progress=run.progress)
            result = "success"
        except SyncCancelled as exc:
            result, error = "cancelled", exc
        except TerraFusionError as exc:
            result, error = "failed", exc
        except Exception as exc:  # noqa: BLE001 - the schedule must survive any failure
            log.exception("sync crashed")
            result, error = "failed", exc
        duration = time.monotonic() - started
        try:
            if run.id is not None:
                self.last_ended = {"id": run.id, "result": result, "finished_at": utc_now(),
                                   "error": None if error is None else redact(_sentence(error))}
            self._account(result, error)
            for listener in self._listeners:
                try:
                    listener(run.trigger, result, summary, error, duration)
                except Exception:  # noqa: BLE001 - a listener must not break the runner
                    log.exception("sync listener failed")
        finally:
            with self._state_lock:
                self.running = None
            self._busy.release()

    def _account(self, result: str, error: Optional[BaseException]) -> None:
        with self._state_lock:
            if result == "success":
                self.consecutive_failures = 0
                self.last_error = None
                return
            if result == "cancelled":
                return  # a requested stop is not a failure of the sync
            self.consecutive_failures += 1
            failures = self.consecutive_failures
            self.last_error = redact(_sentence(error))
        delay = retry_delay(failures, self.config.interval_seconds)
        delay *= random.uniform(0.9, 1.0)
        self._retry_in(delay)
        log.warning("sync failed (%d in a row); next attempt in %.0f s", failures, delay)

    def _retry_in(self, seconds: float) -> None:
        """Bring the next scheduled sync forward to ``seconds`` from now (never later)."""
        if self._scheduler is None or self._stop.is_set():
            return
        when = datetime.now(timezone.utc) + timedelta(seconds=seconds)
        try:
            job = self._scheduler.get_job(JOB_ID)
            if job is not None and (job.next_run_time is None or when < job.next_run_time):
                self._scheduler.modify_job(JOB_ID, next_run_time=when)
        except Exception:  # noqa: BLE001 - e.g. the scheduler shut down meanwhile
            log.debug("could not reschedule the retry", exc_info=True)


def _sentence(error: Optional[BaseException]) -> str:
    if error is None:
        return "The sync failed."
    if isinstance(error, TerraFusionError):
        return str(error)
    return f"The sync failed unexpectedly: {error.__class__.__name__}: {error}"
