"""When syncs run: the interval schedule, manual triggers, one at a time, backoff.

One lock is shared by the scheduled and the manual path, so a sync never overlaps
another: a scheduled tick that finds a sync running is skipped (the next interval comes
soon enough) and a manual trigger is refused with :class:`SyncInProgress` (HTTP 409).

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
from terrafusion_agent.errors import SyncCancelled, SyncInProgress, TerraFusionError
from terrafusion_agent.redact import redact
from terrafusion_agent.timeutil import utc_now

log = logging.getLogger("terrafusion.agent")
JOB_ID = "sync"
#: first retry delay after a failure (capped by the interval)
RETRY_BASE_SECONDS = 30.0

#: run_sync's signature: (config, trigger=..., stop=...) -> summary
SyncFunction = Callable[..., dict]
#: called after every run with (trigger, result, summary or None, error or None, duration)
Listener = Callable[[str, str, Optional[dict], Optional[BaseException], float], None]


def _default_sync(config: Config, trigger: str, stop: threading.Event) -> dict:
    from terrafusion_agent.sync.engine import run_sync

    return run_sync(config, trigger=trigger, stop=stop)


def retry_delay(failures: int, interval: float, base: float = RETRY_BASE_SECONDS) -> float:
    """Seconds to wait after ``failures`` consecutive failures (before jitter)."""
    if failures <= 0:
        return float(interval)
    return float(min(interval, base * 2 ** min(failures - 1, 30)))


class SyncScheduler:
    """The interval schedule and the single-flight sync runner behind it."""

    def __init__(self, config: Config, *, sync: Optional[SyncFunction] = None,
                 listeners: Optional[list[Listener]] = None):
        self.config = config
        self._sync = sync or _default_sync
        self._listeners = list(listeners or [])
        self._busy = threading.Lock()
        self._stop = threading.Event()
        self._state_lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._scheduler = None
        self.running: Optional[dict[str, Any]] = None
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
                return False
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
            return {"sync_running": dict(self.running) if self.running else None,
                    "consecutive_failures": self.consecutive_failures,
                    "last_error": self.last_error}

    def is_running(self) -> bool:
        return self._busy.locked()

    @contextmanager
    def exclusive(self, what: str) -> Iterator[None]:
        """Hold the sync lock for other work on the data (e.g. resolving a conflict)."""
        if not self._busy.acquire(blocking=False):
            raise SyncInProgress(f"A sync is running; {what} has to wait until it has finished.")
        try:
            yield
        finally:
            self._busy.release()

    # --- work ---------------------------------------------------------------------------

    def _tick(self) -> None:
        try:
            self.start_sync("schedule")
        except SyncInProgress:
            log.info("scheduled sync skipped: a sync is already running")
        except TerraFusionError as exc:  # stopping
            log.debug("scheduled sync not started: %s", exc)

    def start_sync(self, trigger: str) -> threading.Thread:
        """Start a sync in the background; raises SyncInProgress if one is running."""
        if self._stop.is_set():
            raise TerraFusionError("The agent is stopping; no new sync is started.")
        if not self._busy.acquire(blocking=False):
            raise SyncInProgress("A sync is already running; try again when it has finished.")
        try:
            with self._state_lock:
                self.running = {"trigger": trigger, "started_at": utc_now()}
            thread = threading.Thread(target=self._run, args=(trigger,),
                                      name=f"sync-{trigger}", daemon=True)
            self._thread = thread
            thread.start()
        except BaseException:
            with self._state_lock:
                self.running = None
            self._busy.release()
            raise
        return thread

    def _run(self, trigger: str) -> None:
        started = time.monotonic()
        summary: Optional[dict] = None
        error: Optional[BaseException] = None
        try:
            summary = self._sync(self.config, trigger=trigger, stop=self._stop)
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
            self._account(result, error)
            for listener in self._listeners:
                try:
                    listener(trigger, result, summary, error, duration)
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
