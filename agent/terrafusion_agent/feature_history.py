"""A feature's history as central records it, and restoring one of its versions.

Central keeps an entry for every change of a synced table's row: when, who (the
database role and application, or the agent that pushed it), the operation, and the
old and new value of each column it changed. Reading that history asks central
directly and changes nothing anywhere.

Restoring a version reads the row as it was right after one entry and writes it into
the local copy *as the analyst's edit*, the way QGIS writes one: outside the agent's
apply guard, so the local capture triggers record it, and the next sync pushes it and
reconciles it with central like any other edit (a column central changed meanwhile is
a conflict, never overwritten). So, like an edit in QGIS, it needs neither the running
agent nor the copy's lock: SQLite's own write lock orders it with a sync.

Keys and times come from people (a command line, a URL, a picked feature):
``stores/keys.py`` and :func:`parse_time` turn them into values, or into one sentence
naming what does not fit.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional, Union

from terrafusion_agent.config import Config
from terrafusion_agent.errors import InvalidArgument, UnknownTable
from terrafusion_agent.stores.keys import KeyInput, key_text, typed_key

#: a time as callers give it: ISO 8601 text or a datetime
TimeInput = Union[str, datetime, None]

_EXAMPLE_TIME = "2026-12-01 or 2026-12-01T14:30:00Z"


def synced(cfg: Config, table: str) -> None:
    """Refuse a table that is not one of the synced tables, naming those that are."""
    if table not in cfg.tables:
        listed = ", ".join(cfg.tables) or "none"
        raise UnknownTable(f"Table {table!r} is not synced (sync.tables: {listed}).")


# --- times --------------------------------------------------------------------------------


def parse_time(name: str, value: TimeInput) -> Optional[str]:
    """A time bounding the history (``name`` is ``since`` or ``until``) as central's
    entries write theirs (UTC, microseconds, Z); None stays None. ISO 8601 text: a
    date (its midnight), a date and time, with an offset or Z; a time without one is
    UTC, like every time the agent reports."""
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip()
        try:
            moment = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "zZ"
                                            and text else text)
        except ValueError:
            raise InvalidArgument(f"{name} must be a time in ISO 8601 form, such as "
                                  f"{_EXAMPLE_TIME}, not {str(value)!r}.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _bounds(since: TimeInput, until: TimeInput) -> tuple[Optional[str], Optional[str]]:
    start, end = parse_time("since", since), parse_time("until", until)
    if start is not None and end is not None and start > end:
        raise InvalidArgument(f"since ({start}) is later than until ({end}); nothing can "
                              "lie between them.")
    return start, end


# --- reading and restoring ----------------------------------------------------------------


def report(cfg: Config, table: str, key: KeyInput, since: TimeInput = None,
           until: TimeInput = None) -> dict[str, Any]:
    """The history of one feature, as the CLI prints it and the HTTP API answers it:
    ``{"table", "key", "history_start", "entries"}``, entries newest first.
    ``history_start`` is the time of the oldest change central still keeps for the
    table (None when it keeps none): an older change may have been purged."""
    from terrafusion_agent.stores import open_central

    synced(cfg, table)
    start, end = _bounds(since, until)
    central = open_central(cfg)
    try:
        info = central.table_info(table)
        typed = typed_key(info, key)
        entries = central.history(info, typed, start, end)
        kept_since = central.history_start(table)
    finally:
        central.close()
    return {"table": table, "key": list(typed), "history_start": kept_since,
            "entries": entries}


def restore(cfg: Config, table: str, key: KeyInput, entry_id: int) -> dict[str, Any]:
    """Make the feature in the local copy what it was right after history entry
    ``entry_id``, as the analyst's edit (see the module's docstring).

    Returns ``{"table", "key", "entry_id", "op", "columns"}``: ``op`` "update", "insert"
    (the feature was deleted since and comes back) or None when the local row already is
    that version, ``columns`` the columns it wrote. A delete entry has no version to go
    back to: that is refused, naming the entry to restore instead.
    """
    from terrafusion_agent.errors import BadRequest
    from terrafusion_agent.stores import open_central
    from terrafusion_agent.stores.local import LocalStore

    synced(cfg, table)
    if isinstance(entry_id, bool) or not isinstance(entry_id, int) or entry_id < 1:
        raise InvalidArgument(f"A history entry is a whole number from 1 up, not "
                              f"{entry_id!r}.")
    with LocalStore.open_existing(cfg.local_path) as local:
        local_info = local.table_info(table)
        central = open_central(cfg)
        try:
            info = central.table_info(table)
            typed = typed_key(info, key)
            version = central.row_version(info, typed, entry_id)
        finally:
            central.close()
        if version is None:
            raise BadRequest(
                f"History entry {entry_id} deleted feature {key_text(typed)} of table "
                f"{table}, so it has no version to restore; restore the version before "
                "it, an older entry.")
        done = local.edit_row(local_info, typed, version)
    return {"table": table, "key": list(typed), "entry_id": entry_id, **done}

