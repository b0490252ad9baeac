"""The fleet: what an agent's heartbeat carries into ``tf_agents``, and the rows of the
``tf_fleet`` view as both central stores return them (see migration c0005 for the view
and its stale rule)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from terrafusion_agent.stores.history import iso, iso_text

#: the heartbeat's figures besides who and where the agent is (agent_id, hostname,
#: local_path, version, now): its interval, how its syncs go, its local copy's backlog
HEARTBEAT_FIGURES = ("interval_seconds", "last_success_at", "last_result",
                     "consecutive_failures", "pending", "open_conflicts", "rejected")
#: the columns of ``tf_fleet``, in its order
FLEET_COLUMNS = ("agent_id", "hostname", "version", "registered_at", "last_seen_at",
                 *HEARTBEAT_FIGURES, "stale_after_seconds", "stale")
_TIMES = ("registered_at", "last_seen_at", "last_success_at")

NO_FLEET = ("The central database {} has no fleet view (its bookkeeping is older than "
            "this agent); run 'terrafusion-agent init-central' to upgrade it.")


def fleet_row(row: dict[str, Any]) -> dict[str, Any]:
    """A ``tf_fleet`` row in one form whatever the central: times as ISO 8601 UTC text
    (2026-12-01T22:26:00.123000Z), ``stale`` a boolean."""
    out = dict(row)
    for name in _TIMES:
        value = out.get(name)
        if isinstance(value, datetime):
            out[name] = iso(value)
        elif value is not None:
            out[name] = iso_text(str(value))
    out["stale"] = bool(out.get("stale"))
    return out
