"""One sync run: pull what changed centrally, then push the local edits.

The run is recorded in the local ``tf_sync_runs`` table (also when it fails) and returns
a summary. Every step commits atomically on its own side, so a run stopped at any
instant (kill -9, power loss, central gone) leaves both sides consistent and the next
run converges.
"""

from __future__ import annotations

import json
import logging
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable, Optional, Union

from terrafusion_agent import __version__, faults
from terrafusion_agent.config import Config
from terrafusion_agent.errors import (
    CentralUnavailable,
    LocalBusy,
    LocalUnavailable,
    NotFound,
    SyncCancelled,
    TableError,
    TerraFusionError,
)
from terrafusion_agent.redact import redact
from terrafusion_agent.stores import capture, open_central
from terrafusion_agent.stores.base import CentralStore, Poll, TableInfo
from terrafusion_agent.stores.local import LocalStore, local_error
from terrafusion_agent.sync.pull import CENTRAL_ID, CHECKPOINT, Progress, pull
from terrafusion_agent.sync.push import push, settle_unacknowledged
from terrafusion_agent.sync.reader import pull_reading, record_floor
from terrafusion_agent.timeutil import format_duration, seconds_between, utc_now

log = logging.getLogger("terrafusion.sync")

#: refill the block of offline keys when fewer than this many are left
KEYS_LOW_WATER = 1000
#: this agent's row in central's ``tf_agents`` is refreshed at most this often (s)
HEARTBEAT_SECONDS = 300
#: the change log and the history are purged once per central per this period (s)
PURGE_SECONDS = 3600
#: local meta: the synced tables' descriptions and the fingerprint they were read under
TABLES_META = "central_tables"
#: local meta: "<central id> <time>" of this agent's latest heartbeat
HEARTBEAT_META = "heartbeat"
#: the engine's clock in seconds (tests set their own)
clock: Callable[[], float] = time.time


class KeptCentral:
    """The central store a long-running agent keeps open between its syncs.

    A store whose connection is gone, or whose sync failed, is closed and the next
    sync connects afresh: a dead connection fails at most the one sync that found it
    (its first statement, the poll, even reconnects once by itself). Only a PostGIS
    central is kept; an embedded file is opened per sync, as the CLI does.
    """

    def __init__(self) -> None:
        self._store: Optional[CentralStore] = None
        self._key: Optional[tuple] = None
        self._lock = threading.Lock()

    @staticmethod
    def _key_of(config: Config) -> tuple:
        return (config.central_url, config.central_schema, config.connect_timeout_seconds,
                config.statement_timeout_seconds)

    def acquire(self, config: Config) -> CentralStore:
        with self._lock:
            store, self._store = self._store, None
        if store is not None and (self._key != self._key_of(config) or not store.healthy()):
            _close_quietly(store)
            store = None
        return store if store is not None else open_central(config)

    def release(self, config: Config, store: CentralStore, ok: bool) -> None:
        """Keep ``store`` for the next sync, unless its sync failed."""
        if not ok or store.kind != "postgis" or not store.healthy():
            _close_quietly(store)
            return
        with self._lock:
            old, self._store, self._key = self._store, store, self._key_of(config)
        if old is not None:
            _close_quietly(old)

    def close(self) -> None:
        with self._lock:
            store, self._store = self._store, None
        if store is not None:
            _close_quietly(store)


def _close_quietly(store: CentralStore) -> None:
    try:
        store.close()
    except Exception:  # noqa: BLE001 - a connection already gone has nothing to close
        log.debug("closing the central store failed", exc_info=True)


def begin_run(config: Config, trigger: str = "manual") -> int:
    """Record a run as ``running`` and return its id, before any of its work is done.

    The agent answers a sync request with this id, then hands it to :func:`run_sync`.
    Raises TerraFusionError when the local copy cannot take the record (busy, full,
    damaged): that attempt is then written ahead of the next run, and ``sync_run`` of the
    error is None.
    """
    attempt = {"trigger": trigger, "started_at": utc_now()}
    local = _open_local(config, attempt)
    try:
        return _begin(local, config, attempt)
    finally:
        local.close()


def run_sync(config: Config, trigger: str = "manual",
             progress: Optional[Progress] = None,
             stop: Optional[threading.Event] = None,
             run_id: Optional[int] = None,
             kept: Optional[KeptCentral] = None) -> dict:
    """Run one sync and return its summary; raises TerraFusionError after recording it
    (KeyboardInterrupt too: that run is recorded as ``cancelled``, as a requested stop is).

    ``run_id`` is a run :func:`begin_run` recorded for this sync; None records one here.
    ``kept``: the central connection of a long-running agent, used and kept again;
    None connects for this sync only.
    ``stop``, when set by another thread, ends the sync at the next transaction boundary
    with SyncCancelled: what was committed stays, nothing is half-applied.

    The error raised carries ``sync_run``: the recorded run's id and figures, or None
    for an attempt the local copy could not take in (busy, full): that one is recorded
    ahead of the next run instead.
    """
    attempt = {"trigger": trigger, "started_at": utc_now()}
    local = _open_local(config, attempt, run_id)
    begun = run_id is not None
    if run_id is None:
        try:
            run_id = _begin(local, config, attempt)
        except BaseException:
            local.close()
            raise
    summary: dict = {"id": run_id, "trigger": trigger, "started_at": attempt["started_at"],
                     "pulled": 0, "pushed": 0, "conflicts": 0, "rejected": 0, "tables": {},
                     "rows": {d: {"insert": 0, "update": 0, "delete": 0}
                              for d in ("pull", "push")}}
    central: Optional[CentralStore] = None
    ok = False
    try:
        if begun:  # the record's start, not this call's: the run began when it was asked for
            summary["started_at"] = (local.run(run_id) or attempt)["started_at"]
        central = kept.acquire(config) if kept is not None else open_central(config)
        try:
            _sync(central, local, config, summary, progress, stop)
            ok = True
            # recorded before the heartbeat, so the fleet sees this run's outcome
            _finish(local, run_id, "success", summary)
            _heartbeat_after(central, local, config)
        except central.driver_errors as exc:
            # every step is transactional: a driver error leaves nothing half-done
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise CentralUnavailable(
                f"The central database {central.describe()} failed during the sync: "
                f"{redact(reason)}.") from None
    except BaseException as exc:
        error = exc
        if isinstance(exc, sqlite3.Error):  # central's were worded above: this is local's
            error = local_error(config.local_path, exc,
                                busy_timeout=config.local_busy_timeout_seconds)
        # a stop asked for (the agent stopping, the plugin's Cancel, Ctrl+C or SIGTERM
        # of a one-off sync) ends the run at a clean point: not a failure of the sync
        result = "cancelled" if isinstance(error, CANCELS) else "failed"
        message = _error_sentence(error)
        # A copy that stays locked would keep this write waiting as long again: the end
        # of this run is written with the next one instead.
        _finish(local, run_id, result, summary, redact(message),
                write_now=not isinstance(error, LocalBusy))
        if (central is not None and isinstance(error, TerraFusionError)
                and not isinstance(error, (CentralUnavailable, LocalUnavailable))):
            # central still answers and the local copy can be read: the fleet learns of
            # the failure (when due)
            _heartbeat_after(central, local, config)
        if not isinstance(error, LocalUnavailable):  # a struggling copy is left alone
            _backlog(local, summary, run_id)
        local.close()
        # any exception carries the run, also one that is not a TerraFusionError
        error.sync_run = {  # type: ignore[attr-defined]
            "result": result, **{k: summary[k] for k in (
                "id", "started_at", "finished_at", "duration_seconds", "pulled", "pushed",
                "conflicts", "rows")}}
        log_end(summary, result, redact(message))
        if error is exc:
            raise
        raise error from exc
    finally:
        if central is not None:
            if kept is not None:
                kept.release(config, central, ok)
            else:
                central.close()
    _backlog(local, summary, run_id)
    local.close()
    summary["result"] = "success"
    log_end(summary, "success")
    return summary


#: what ends a sync as ``cancelled`` rather than ``failed``
CANCELS = (SyncCancelled, KeyboardInterrupt)
#: the error of a run that Ctrl+C (or SIGTERM of a one-off sync) stopped
INTERRUPTED = ("The sync was interrupted (Ctrl+C or a stop signal); what it had committed "
               "stays, and the next sync goes on from there.")


def _error_sentence(error: BaseException) -> str:
    if isinstance(error, KeyboardInterrupt):
        return INTERRUPTED
    if isinstance(error, TerraFusionError):
        return str(error)
    return f"{error.__class__.__name__}: {error}"


def _backlog(local: LocalStore, summary: dict, run_id: int) -> None:
    """The copy's backlog after the run (pending edits, open conflicts, refused rows),
    into the summary: only a courtesy, so a copy that cannot say leaves them out."""
    try:
        summary["pending"] = local.pending_count()
        summary["open_conflicts"] = local.open_conflict_count()
        summary["open_rejected"] = local.rejected_count()
    except (TerraFusionError, sqlite3.Error) as exc:
        log.debug("after sync %d the backlog cannot be read: %s", run_id, exc)


def log_end(summary: dict, result: str, error: Optional[str] = None) -> None:
    """The one log line of a finished sync, whoever ran it (the agent, ``terrafusion-agent
    sync``, the plugin): its result, its recorded duration and its figures."""
    fields = {"event": "sync", "run_id": summary["id"], "trigger": summary["trigger"],
              "result": result, "started_at": summary["started_at"],
              "finished_at": summary.get("finished_at"),
              "duration_seconds": summary.get("duration_seconds"),
              **{k: summary[k] for k in ("pulled", "pushed", "conflicts", "rejected", "rows")},
              "pending_local_edits": summary.get("pending"),
              "open_conflicts": summary.get("open_conflicts"),
              "rejected_rows": summary.get("open_rejected")}
    took = format_duration(summary.get("duration_seconds"))
    if error is not None:
        fields["error"] = error
        log.log(logging.INFO if result == "cancelled" else logging.WARNING,
                "sync %d %s (%s) after %s: %s", summary["id"], result, summary["trigger"],
                took, error, extra=fields)
        return
    log.info("sync %d succeeded (%s) in %s: pulled %s, pushed %s, %s conflicts",
             summary["id"], summary["trigger"], took, f"{summary['pulled']:,}",
             f"{summary['pushed']:,}", f"{summary['conflicts']:,}", extra=fields)


# Ends of runs this process could not write into the local copy (it was busy, or full),
# by local copy: written ahead of its next run, so its history misses no attempt.
_pending_records: dict[str, list[dict]] = {}
_pending_lock = threading.Lock()
#: what a run left 'running' by an earlier process is closed with
_NO_END = ("The sync ended without recording its result: its process was stopped, or the "
           "local copy could not be written.")


def _open_local(config: Config, attempt: dict, run_id: Optional[int] = None) -> LocalStore:
    try:
        # a run begin_run recorded was recorded by an open that brought the copy's
        # bookkeeping up to date, moments ago and under the same lock
        return LocalStore.open(config.local_path, migrate=run_id is None,
                               busy_timeout=config.local_busy_timeout_seconds)
    except TerraFusionError as exc:
        _unrecorded(config, attempt, exc, run_id)
        raise


def _begin(local: LocalStore, config: Config, attempt: dict) -> int:
    """Record the new run in one transaction with what earlier attempts could not write,
    so the newest run is always this one, never an earlier attempt written just now."""
    try:
        earlier = _deferred(local.path)
        with local.writing():
            _record_earlier_attempts(local, earlier)
            run_id = local.start_run(attempt["trigger"], attempt["started_at"])
            # the caller holds the local lock: no other sync of this copy is under way
            local.close_abandoned_runs(_NO_END, keep=run_id)
        _forget(local.path, earlier)
        return run_id
    except TerraFusionError as exc:
        _unrecorded(config, attempt, exc)
        raise


def _unrecorded(config: Config, attempt: dict, exc: TerraFusionError,
                run_id: Optional[int] = None) -> None:
    """Keep the end of an attempt that ``exc`` stopped before the local copy could take
    it (the start of a new run, or the end of run ``run_id``), for the next run."""
    message = redact(str(exc))
    _defer(config.local_path, {**attempt, "id": run_id, "finished_at": utc_now(),
                               "result": "failed", "error": message})
    exc.sync_run = (None if run_id is None else
                    {"id": run_id, "result": "failed", "pulled": 0, "pushed": 0,
                     "conflicts": 0})
    # the one log line of this attempt: there is no run to say more of
    fields = {"event": "sync", "run_id": run_id, "trigger": attempt["trigger"],
              "result": "failed", "started_at": attempt["started_at"], "error": message}
    if run_id is None:
        log.warning("sync attempt (%s) failed before it could be recorded: %s",
                    attempt["trigger"], message, extra=fields)
    else:
        log.warning("sync %d (%s) failed before its end could be recorded: %s", run_id,
                    attempt["trigger"], message, extra=fields)


def _finish(local: LocalStore, run_id: int, result: str, summary: dict,
            error: Optional[str] = None, write_now: bool = True) -> None:
    """Record the end of run ``run_id``; its end time and duration go into ``summary``
    too, so that everyone shows the figure the record holds."""
    finished_at = utc_now()
    summary["finished_at"] = finished_at
    summary["duration_seconds"] = seconds_between(summary["started_at"], finished_at)
    record = {"id": run_id, "result": result, "error": error, "finished_at": finished_at,
              **{k: summary[k] for k in ("pulled", "pushed", "conflicts")}}
    if write_now:
        try:
            _write_record(local, record)
            return
        except TerraFusionError as exc:
            log.warning("the end of sync %d cannot be recorded yet: %s", run_id, exc)
    _defer(local.path, record)


def _defer(path: Union[str, Path], record: dict) -> None:
    with _pending_lock:
        _pending_records.setdefault(str(path), []).append(record)


def _write_record(local: LocalStore, r: dict) -> None:
    run_id = r["id"]
    if run_id is None:
        run_id = local.start_run(r["trigger"], r["started_at"])
    local.finish_run(run_id, r["result"], pulled=r.get("pulled", 0),
                     pushed=r.get("pushed", 0), conflicts=r.get("conflicts", 0),
                     error=r["error"], finished_at=r["finished_at"])


def _deferred(path: Union[str, Path]) -> list[dict]:
    with _pending_lock:
        return list(_pending_records.get(str(path), []))


def _forget(path: Union[str, Path], written: list[dict]) -> None:
    with _pending_lock:
        left = [r for r in _pending_records.get(str(path), [])
                if not any(r is w for w in written)]
        _pending_records[str(path)] = left


def _record_earlier_attempts(local: LocalStore, records: list[dict]) -> None:
    for record in records:
        _write_record(local, record)


def _sync(central: CentralStore, local: LocalStore, config: Config, summary: dict,
          progress: Optional[Progress], stop: Optional[threading.Event]) -> None:
    agent_id = local.agent_id()
    checkpoint = local.meta(CHECKPOINT)
    poll = central.poll(config.tables, checkpoint, agent_id, PURGE_SECONDS)
    infos = _tracked_tables(central, config, local, poll)
    if poll is not None and _idle(poll, local, infos, checkpoint):
        # nothing to pull or push: the poll was the whole sync, unless a heartbeat or
        # a purge is due
        for name in infos:
            summary["tables"][name] = {"mode": "incremental", "pulled": 0}
        if poll.snapshot != checkpoint and (poll.flushed or _heartbeat_due(local)):
            # the snapshot moves on even with nothing in it, so the checkpoint never
            # grows old enough for a purge to force a full copy; a snapshot showing
            # commits not yet flushed is made durable first (at most once a period)
            if not poll.flushed:
                central.make_durable()
            with local.writing():
                local.set_meta(CHECKPOINT, poll.snapshot)
                if config.central_read_url:
                    # the checkpoint is part of the floor a read replica is held to
                    record_floor(local, poll.snapshot)
        _purge_if_due(central, config, poll)
        return
    settle_unacknowledged(central, local, agent_id, summary)
    central_id = poll.central_id if poll is not None else None
    pull_reading(config, central, local, lambda source: pull(
        central, local, infos, agent_id, summary, progress, central_id, source), summary)
    if stop is not None and stop.is_set():
        raise SyncCancelled("The sync was stopped after pulling, before pushing.")
    _refill_keys(central, local, infos, agent_id)
    push(central, local, infos, agent_id, config, summary, stop, progress)
    _purge_if_due(central, config, poll)


def _idle(poll: Poll, local: LocalStore, infos: dict[str, TableInfo],
          checkpoint: Optional[str]) -> bool:
    """Whether the poll said everything: central has nothing new for this agent, the
    local copy has the tables as central describes them, and nothing local waits for
    central (edits, a batch in flight, a refetch, a block of offline keys)."""
    if (checkpoint is None or poll.changed is not False or poll.lost or not poll.current
            or poll.central_id is None or poll.central_id != local.meta(CENTRAL_ID)):
        return False
    if local.batches_in_flight():
        return False
    for name, info in infos.items():
        try:
            if local.table_info(name) != info:
                return False
        except NotFound:
            return False
        if local.has_pending(name, ("pending", "refetch")):
            return False
        if capture.has_key_allocation(info):
            left = local.keys_left(name)
            if left is None or left < KEYS_LOW_WATER:
                return False
    return True


def _heartbeat_due(local: LocalStore) -> bool:
    """Whether this agent's heartbeat is :data:`HEARTBEAT_SECONDS` old, or went to
    another central than the one this copy syncs with now."""
    last = (local.meta(HEARTBEAT_META) or "").split(" ")
    return not (len(last) == 2 and last[0] == (local.meta(CENTRAL_ID) or "")
                and 0 <= clock() - _number(last[1]) < HEARTBEAT_SECONDS)


def _heartbeat_after(central: CentralStore, local: LocalStore, config: Config) -> None:
    """Write this agent's heartbeat when due, at the end of a sync whose outcome the
    local copy has just recorded. The sync is done: a heartbeat central cannot take is
    only logged, and tried again at the next sync."""
    if not _heartbeat_due(local):
        return
    errors: tuple[type[BaseException], ...] = (TerraFusionError, sqlite3.Error,
                                               *central.driver_errors)
    try:
        central.heartbeat(_heartbeat(local, config, local.agent_id()))
        with local.writing():
            local.set_meta(HEARTBEAT_META, f"{local.meta(CENTRAL_ID) or ''} {clock()}")
    except errors as exc:
        log.warning("the heartbeat was not written: %s", redact(str(exc)))


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("-inf")


def _purge_if_due(central: CentralStore, config: Config, poll: Optional[Poll]) -> None:
    if poll is not None and not poll.purge_due:
        return
    central.purge(config.retention_days, config.history_retention_days, PURGE_SECONDS)


def _tracked_tables(central: CentralStore, config: Config, local: LocalStore,
                    poll: Optional[Poll]) -> dict[str, TableInfo]:
    """The synced tables as central describes them, checked to be tracked; read from
    the local copy when the poll's fingerprint says nothing changed since."""
    cached = _cached_tables(local, config, poll)
    if cached is not None:
        return cached
    if poll is None and not central.has_bookkeeping():
        raise TerraFusionError(
            f"The central database {central.describe()} has no TerraFusion change tracking; "
            "run 'terrafusion-agent init-central' first.")
    if not (poll.current if poll is not None else central.bookkeeping_current()):
        raise TerraFusionError(
            f"The central database {central.describe()} has TerraFusion bookkeeping older "
            "than this agent; run 'terrafusion-agent init-central' to upgrade it (the data "
            "and the other agents' checkpoints are kept).")
    infos = {}
    for name in config.tables:
        info = central.table_info(name)
        if not central.tracking_installed(name):
            raise TableError(
                f"Table {name} is not tracked in the central database; "
                "run 'terrafusion-agent init-central' to install its change tracking.")
        central.refresh_tracking(info)
        infos[name] = info
    if poll is not None:
        # read after the poll: a change in between shows as a new fingerprint next time
        with local.writing():
            local.set_meta(TABLES_META, json.dumps({
                "fingerprint": poll.fingerprint, "central_id": poll.central_id,
                "schema": config.central_schema,
                "tables": [info.to_json() for info in infos.values()]}))
    return infos


def _cached_tables(local: LocalStore, config: Config, poll: Optional[Poll]
                   ) -> Optional[dict[str, TableInfo]]:
    if poll is None or not poll.current or not poll.fingerprint:
        return None
    try:
        cached = json.loads(local.meta(TABLES_META) or "null")
        if (not isinstance(cached, dict) or cached.get("fingerprint") != poll.fingerprint
                or cached.get("central_id") != poll.central_id
                or cached.get("schema") != config.central_schema):
            return None
        infos = {t["name"]: TableInfo.from_json(t) for t in cached["tables"]}
    except (ValueError, KeyError, TypeError, IndexError):
        return None  # not ours, or from another version: read central again
    return infos if list(infos) == list(config.tables) else None


def _refill_keys(central: CentralStore, local: LocalStore, infos: dict[str, TableInfo],
                 agent_id: str) -> None:
    """Keep a block of permanent keys for rows digitised offline in each table."""
    for name, info in infos.items():
        if not capture.has_key_allocation(info):
            continue
        left = local.keys_left(name)
        if left is not None and left >= KEYS_LOW_WATER:
            continue
        block = central.allocate_keys(info, agent_id)
        faults.point("keys.after_allocation")
        if block is not None:
            with local.writing():
                local.set_key_block(name, *block)


def _heartbeat(local: LocalStore, config: Config, agent_id: str) -> dict:
    """This agent's row in the central ``tf_agents`` table (written by
    :func:`_heartbeat_after`): who and where it is, how its syncs go as its local copy
    recorded them, this one included, and the copy's backlog."""
    outcome = local.sync_outcome()
    return {"agent_id": agent_id, "hostname": socket.gethostname(),
            "local_path": str(config.local_path), "version": __version__, "now": utc_now(),
            "interval_seconds": config.interval_seconds,
            "last_success_at": outcome["last_success_at"],
            "last_result": outcome["last_result"],
            "consecutive_failures": outcome["consecutive_failures"],
            "pending": local.pending_count(), "open_conflicts": local.open_conflict_count(),
            "rejected": local.rejected_count()}
