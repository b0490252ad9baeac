"""Read and resolve sync conflicts for the Conflicts dialog (no Qt).

The open conflicts are read from the local copy itself (reading never disturbs the
agent). A resolution writes, so it goes through the running agent when one serves the
copy (``POST /api/v1/conflicts/{id}/resolve``: the agent makes it wait for a running
sync); without an agent it is made here, under the copy's lock, with the agent package's
own ``resolve``, like ``terrafusion-agent conflicts resolve``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

from .agent_client import ApiError, NoAnswer
from .sync_runner import agent_client_for

#: how long a resolution waits for a sync the agent is running
SYNC_WAIT_SECONDS = 120.0
RETRY_SECONDS = 0.5


@dataclass(frozen=True)
class TableShape:
    """What the dialog needs to show a table's rows: column order, key, geometry."""

    columns: tuple
    pk: tuple
    geometry_column: Optional[str] = None
    srid: Optional[int] = None


@dataclass
class Resolution:
    resolved: list = field(default_factory=list)  #: ids resolved
    errors: list = field(default_factory=list)  #: one sentence per failed id
    via: str = ""  #: "agent" or "plugin"


def load_conflicts(cfg) -> tuple[list[dict], dict[str, TableShape]]:
    """The open conflicts, oldest first, and the shape of each table they are about."""
    from terrafusion_agent.errors import NotFound
    from terrafusion_agent.stores.local import LocalStore

    local = LocalStore.open_existing(cfg.local_path)
    try:
        conflicts = local.conflicts()
        shapes = {}
        for table in {c["table"] for c in conflicts}:
            try:
                info = local.table_info(table)
            except NotFound:
                continue  # no longer synced; the values are still shown, without a map
            g = info.geometry
            shapes[table] = TableShape(columns=info.column_names, pk=info.pk,
                                       geometry_column=g.column if g else None,
                                       srid=g.srid if g else None)
    finally:
        local.close()
    return conflicts, shapes


def resolve_conflicts(cfg, ids: list[int], keep: str) -> Resolution:
    """Resolve every conflict in ``ids`` keeping ``keep`` ("local" or "central")."""
    client = agent_client_for(cfg)
    if client is not None:
        try:
            return _via_agent(client, ids, keep)
        except NoAnswer:
            pass  # the agent went away meanwhile: resolve here, under the lock
    return _in_process(cfg, ids, keep)


def _via_agent(client, ids: list[int], keep: str) -> Resolution:
    out = Resolution(via="agent")
    for conflict_id in ids:
        deadline = time.monotonic() + SYNC_WAIT_SECONDS
        while True:
            try:
                status, body = client.post(f"/api/v1/conflicts/{int(conflict_id)}/resolve",
                                           {"keep": keep})
                client.checked(status, body, 200)
            except ApiError as exc:
                # The agent refuses while it syncs (the two would race on the rows): the
                # user's decision waits for the end of that sync instead of failing.
                if exc.code == "sync_in_progress" and time.monotonic() < deadline:
                    time.sleep(RETRY_SECONDS)
                    continue
                out.errors.append(str(exc))
                break
            out.resolved.append(conflict_id)
            break
    return out


def _in_process(cfg, ids: list[int], keep: str) -> Resolution:
    from terrafusion_agent.errors import TerraFusionError
    from terrafusion_agent.lock import LocalLock
    from terrafusion_agent.sync.conflicts import resolve

    out = Resolution(via="plugin")
    try:
        with LocalLock(cfg.local_path):
            for conflict_id in ids:
                try:
                    resolve(cfg, int(conflict_id), keep)
                except TerraFusionError as exc:
                    out.errors.append(str(exc))
                    continue
                out.resolved.append(conflict_id)
    except TerraFusionError as exc:  # the lock: an agent we cannot reach holds the copy
        out.errors.append(str(exc))
    return out
