"""One sync run: pull what changed centrally, then push the local edits.

The run is recorded in the local ``tf_sync_runs`` table (also when it fails) and returns
a summary. Every step commits atomically on its own side, so a run stopped at any
instant (kill -9, power loss, central gone) leaves both sides consistent and the next
run converges.
"""

from __future__ import annotations

import logging
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Optional, Union

from terrafusion_agent import __version__, faults
from terrafusion_agent.config import Config
from terrafusion_agent.errors import (
    CentralUnavailable,
    LocalBusy,
    SyncCancelled,
    TableError,
    TerraFusionError,
)
from terrafusion_agent.redact import redact
from terrafusion_agent.stores import capture, open_central
from terrafusion_agent.stores.base import CentralStore, TableInfo
from terrafusion_agent.stores.local import LocalStore, local_error
from terrafusion_agent.sync.pull import Progress, pull
from terrafusion_agent.sync.push import push, settle_unacknowledged
from terrafusion_agent.sync.reader import pull_reading
from terrafusion_agent.timeutil import utc_now

log = logging.getLogger("terrafusion.sync")

#: refill the block of offline keys when fewer than this many are left
KEYS_LOW_WATER = 1000


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
             run_id: Optional[int] = None) -> dict:
    """Run one sync and return its summary; raises TerraFusionError after recording it.

    ``run_id`` is a run :func:`begin_run` recorded for this sync; None records one here.
    ``stop``, when set by another thread, ends the sync at the next transaction boundary
    with SyncCancelled: what was committed stays, nothing is half-applied.

    The error raised carries ``sync_run``: the recorded run's id and figures, or None
    for an attempt the local copy could not take in (busy, full): that one is recorded
    ahead of the next run instead.
    """
    started = time.monotonic()
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
    try:
        if begun:  # the record's start, not this call's: the run began when it was asked for
            summary["started_at"] = (local.run(run_id) or attempt)["started_at"]
        central = open_central(config)
        try:
            _sync(central, local, config, summary, progress, stop)
        except central.driver_errors as exc:
            # every step is transactional: a driver error leaves nothing half-done
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise CentralUnavailable(
                f"The central database {central.describe()} failed during the sync: "
                f"{redact(reason)}.") from None
        finally:
            central.close()
    except BaseException as exc:
        error = exc
        if isinstance(exc, sqlite3.Error):  # central's were worded above: this is local's
            error = local_error(config.local_path, exc,
                                busy_timeout=config.local_busy_timeout_seconds)
        message = (str(error) if isinstance(error, TerraFusionError)
                   else f"{error.__class__.__name__}: {error}")
        # A copy that stays locked would keep this write waiting as long again: the end
        # of this run is written with the next one instead.
        _finish(local, run_id, "failed", summary, redact(message),
                write_now=not isinstance(error, LocalBusy))
        local.close()
        # any exception carries the run, also one that is not a TerraFusionError
        error.sync_run = {  # type: ignore[attr-defined]
            k: summary[k] for k in ("id", "pulled", "pushed", "conflicts")}
        if isinstance(error, TerraFusionError):
            log.error("sync %d failed: %s", run_id, redact(message))
        if error is exc:
            raise
        raise error from exc
    _finish(local, run_id, "success", summary)
    try:
        summary["pending"] = local.pending_count()
        summary["open_conflicts"] = local.open_conflict_count()
        summary["open_rejected"] = local.rejected_count()
    except TerraFusionError as exc:  # the sync is done; its figures are only a courtesy
        log.warning("after sync %d: %s", run_id, exc)
    local.close()
    summary.update(result="success", finished_at=utc_now(),
                   duration_seconds=round(time.monotonic() - started, 3))
    log.info("sync %d finished: pulled %d, pushed %d, %d conflicts in %.2f s", run_id,
             summary["pulled"], summary["pushed"], summary["conflicts"],
             summary["duration_seconds"],
             extra={"sync_id": run_id, "pulled": summary["pulled"],
                    "pushed": summary["pushed"], "conflicts": summary["conflicts"],
                    "duration_seconds": summary["duration_seconds"]})
    return summary


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
                    {"id": run_id, "pulled": 0, "pushed": 0, "conflicts": 0})
    if run_id is None:
        log.error("sync attempt failed before it could be recorded: %s", message)
    else:
        log.error("sync %d failed before its end could be recorded: %s", run_id, message)


def _finish(local: LocalStore, run_id: int, result: str, summary: dict,
            error: Optional[str] = None, write_now: bool = True) -> None:
    record = {"id": run_id, "result": result, "error": error, "finished_at": utc_now(),
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
    infos = _tracked_tables(central, config)
    settle_unacknowledged(central, local, agent_id, summary)
    agent = _heartbeat(local, config, agent_id)
    pull_reading(config, central, local, lambda source: pull(
        central, local, infos, agent, summary, progress, source), summary)
    if stop is not None and stop.is_set():
        raise SyncCancelled("The sync was stopped after pulling, before pushing.")
    _refill_keys(central, local, infos, agent_id)
    push(central, local, infos, agent_id, config, summary, stop, progress)
    central.purge_change_log(config.retention_days)
    central.purge_history(config.history_retention_days)


def _tracked_tables(central: CentralStore, config: Config) -> dict[str, TableInfo]:
    if not central.has_bookkeeping():
        raise TerraFusionError(
            f"The central database {central.describe()} has no TerraFusion change tracking; "
            "run 'terrafusion-agent init-central' first.")
    if not central.bookkeeping_current():
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
    return infos


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
    """This agent's row in the central ``tf_agents`` table, written by the pull."""
    return {"agent_id": agent_id, "hostname": socket.gethostname(),
            "local_path": str(config.local_path), "version": __version__, "now": utc_now()}
