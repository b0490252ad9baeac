"""One sync run: pull what changed centrally, then push the local edits.

The run is recorded in the local ``tf_sync_runs`` table (also when it fails) and returns
a summary. Every step commits atomically on its own side, so a run stopped at any
instant (kill -9, power loss, central gone) leaves both sides consistent and the next
run converges.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Callable, Optional

from terrafusion_agent import __version__, faults
from terrafusion_agent.config import Config
from terrafusion_agent.errors import (
    CentralUnavailable,
    SyncCancelled,
    TableError,
    TerraFusionError,
)
from terrafusion_agent.redact import redact
from terrafusion_agent.stores import capture, open_central
from terrafusion_agent.stores.local import LocalStore
from terrafusion_agent.sync.pull import pull
from terrafusion_agent.sync.push import push, settle_unacknowledged
from terrafusion_agent.timeutil import utc_now

log = logging.getLogger("terrafusion.sync")

#: progress(table, rows_done, rows_total)
Progress = Callable[[str, int, int], None]
#: refill the block of offline keys when fewer than this many are left
KEYS_LOW_WATER = 1000


def run_sync(config: Config, trigger: str = "manual",
             progress: Optional[Progress] = None,
             stop: Optional[threading.Event] = None) -> dict:
    """Run one sync and return its summary; raises TerraFusionError after recording it.

    ``stop``, when set by another thread, ends the sync at the next transaction boundary
    with SyncCancelled: what was committed stays, nothing is half-applied.
    """
    started = time.monotonic()
    local = LocalStore.open(config.local_path)
    run_id = local.start_run(trigger)
    summary: dict = {"id": run_id, "trigger": trigger, "started_at": utc_now(),
                     "pulled": 0, "pushed": 0, "conflicts": 0, "rejected": 0, "tables": {},
                     "rows": {d: {"insert": 0, "update": 0, "delete": 0}
                              for d in ("pull", "push")}}
    try:
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
        message = (str(exc) if isinstance(exc, TerraFusionError)
                   else f"{exc.__class__.__name__}: {exc}")
        local.finish_run(run_id, "failed", pulled=summary["pulled"], pushed=summary["pushed"],
                         conflicts=summary["conflicts"], error=redact(message))
        local.close()
        if isinstance(exc, TerraFusionError):
            log.error("sync %d failed: %s", run_id, redact(message))
        raise
    local.finish_run(run_id, "success", pulled=summary["pulled"], pushed=summary["pushed"],
                     conflicts=summary["conflicts"])
    summary["pending"] = local.pending_count()
    summary["open_conflicts"] = local.open_conflict_count()
    summary["open_rejected"] = local.rejected_count()
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


def _sync(central, local: LocalStore, config: Config, summary: dict,
          progress: Optional[Progress], stop: Optional[threading.Event]) -> None:
    agent_id = local.agent_id()
    infos = _tracked_tables(central, config)
    settle_unacknowledged(central, local, agent_id, summary)
    pull(central, local, infos, _heartbeat(local, config, agent_id), summary, progress)
    if stop is not None and stop.is_set():
        raise SyncCancelled("The sync was stopped after pulling, before pushing.")
    _refill_keys(central, local, infos, agent_id)
    push(central, local, infos, agent_id, config, summary, stop, progress)
    central.purge_change_log(config.retention_days)


def _tracked_tables(central, config: Config) -> dict:
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
        infos[name] = info
    return infos


def _refill_keys(central, local: LocalStore, infos: dict, agent_id: str) -> None:
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
