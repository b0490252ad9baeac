"""One sync run: central -> local (and, once edits are captured, local -> central).

At this stage a run copies every configured table in full, each in one local
transaction, so a run that fails half-way leaves the previous copy of that table intact
and a second run never duplicates anything.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Callable, Optional

from terrafusion_agent import __version__
from terrafusion_agent.config import Config
from terrafusion_agent.errors import SyncCancelled, TerraFusionError
from terrafusion_agent.redact import redact
from terrafusion_agent.stores import open_central
from terrafusion_agent.stores.local import LocalStore
from terrafusion_agent.timeutil import utc_now

log = logging.getLogger("terrafusion.sync")

#: progress(table, rows_done, rows_total)
Progress = Callable[[str, int, int], None]


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
                     "pulled": 0, "pushed": 0, "conflicts": 0, "tables": {},
                     "rows": {d: {"insert": 0, "update": 0, "delete": 0}
                              for d in ("pull", "push")}}
    try:
        central = open_central(config)
        try:
            _register_agent(central, local, config)
            for name in config.tables:
                if stop is not None and stop.is_set():
                    raise SyncCancelled("The sync was stopped before it finished.")
                info = central.table_info(name)
                total = central.count(info)
                report = (lambda done, n=name, t=total: progress(n, done, t)) if progress else None
                rows = local.replace_table(info, central.read_rows(info), report)
                summary["tables"][name] = {"mode": "full", "pulled": rows}
                summary["pulled"] += rows
                summary["rows"]["pull"]["insert"] += rows
        finally:
            central.close()
    except TerraFusionError as exc:
        local.finish_run(run_id, "failed", pulled=summary["pulled"], error=redact(str(exc)))
        local.close()
        log.error("sync failed: %s", redact(str(exc)))
        raise
    except BaseException as exc:
        local.finish_run(run_id, "failed", error=redact(f"{exc.__class__.__name__}: {exc}"))
        local.close()
        raise
    local.finish_run(run_id, "success", pulled=summary["pulled"])
    local.close()
    summary.update(result="success", finished_at=utc_now(),
                   duration_seconds=round(time.monotonic() - started, 3))
    log.info("sync %d finished: pulled %d rows in %.2f s", run_id, summary["pulled"],
             summary["duration_seconds"])
    return summary


def _register_agent(central, local: LocalStore, config: Config) -> None:
    """Record (or refresh) this agent in the central ``tf_agents`` table."""
    now = utc_now()
    p = "%s" if central.kind == "postgis" else "?"
    central.execute(
        "INSERT INTO tf_agents (agent_id, hostname, local_path, version, registered_at, "
        f"last_seen_at) VALUES ({p}, {p}, {p}, {p}, {p}, {p}) ON CONFLICT (agent_id) DO UPDATE "
        "SET hostname = excluded.hostname, local_path = excluded.local_path, "
        "version = excluded.version, last_seen_at = excluded.last_seen_at",
        (local.agent_id(), socket.gethostname(), str(config.local_path), __version__, now, now))
