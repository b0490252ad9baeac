"""What both central stores share about the audit history: reading the times a caller
names, and shaping one entry the way the contract describes it (see
:meth:`CentralStore.history`). The SQL lives in each store."""

from __future__ import annotations

import getpass
import socket
from datetime import datetime, timezone
from typing import Any, Callable, Optional, Sequence

from terrafusion_agent.errors import TerraFusionError
from terrafusion_agent.stores.base import Column, TableInfo

OPS = {"I": "insert", "U": "update", "D": "delete"}


def os_identity() -> tuple[Optional[str], Optional[str]]:
    """The analyst's OS user and this machine's name, recorded with an agent's pushes;
    None for what the system cannot tell (a service account without a user name)."""
    try:
        user: Optional[str] = getpass.getuser() or None
    except (KeyError, OSError, ImportError):
        user = None
    try:
        host: Optional[str] = socket.gethostname() or None
    except OSError:
        host = None
    return user, host


def parse_instant(text: str, what: str = "time") -> datetime:
    """An ISO-8601 time as an aware UTC datetime; one without a zone is UTC."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00")
                                       .replace("z", "+00:00"))
    except (AttributeError, ValueError):
        raise TerraFusionError(f"The {what} {text!r} is not an ISO-8601 time such as "
                               "2026-12-01T22:26:00Z.") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def iso(value: datetime) -> str:
    """``value`` as the history reports times: 2026-12-01T22:26:00.123456Z."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_text(text: Optional[str]) -> Optional[str]:
    """A stored ISO UTC time (any number of fraction digits) in the history's form."""
    return None if text is None else iso(parse_instant(text))


def before_start(info: TableInfo, start: Optional[str], at: datetime) -> Optional[str]:
    """The sentence refusing to show ``info`` as of ``at``, or None when its history
    covers that moment."""
    if start is None:
        return (f"Table {info.name} has no history in the central database; "
                "'terrafusion-agent init-central' starts it.")
    if at < parse_instant(start):
        return (f"The history of table {info.name} starts at {start}; it cannot show the "
                f"table as of {iso(at)}.")
    return None


def entry(info: TableInfo, *, entry_id: int, op: str, key: list, committed_at: str,
          role: Optional[str], application: Optional[str], agent_id: Optional[str],
          os_user: Optional[str], host: Optional[str],
          old: Sequence[tuple[str, Any]], new: Sequence[tuple[str, Any]],
          value: Callable[[Column, Any], Any]) -> dict:
    """One history entry as the contract shapes it. ``old``/``new`` are (column, stored
    value) pairs; ``value`` turns a stored value of a column into its JSON form."""
    columns = {c.name: c for c in info.columns}
    order = {name: i for i, name in enumerate(info.column_names)}
    names = list(dict.fromkeys([n for n, _ in old] + [n for n, _ in new]))
    # columns dropped since the entry was written come last, as they were stored
    names.sort(key=lambda n: order.get(n, len(order)))

    def shaped(pairs: Sequence[tuple[str, Any]]) -> dict:
        got = dict(pairs)
        return {n: value(columns.get(n, Column(n, "text")), got[n]) for n in names
                if n in got}

    return {
        "id": int(entry_id), "table": info.name, "key": list(key), "op": OPS[op],
        "committed_at": committed_at, "role": role, "application": application,
        "agent": None if agent_id is None else {"id": agent_id, "os_user": os_user,
                                                "host": host},
        "columns": names, "old": shaped(old), "new": shaped(new),
    }
