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
:func:`parse_key`, :func:`typed_key` and :func:`parse_time` turn them into values, or
into one sentence naming what does not fit.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any, Optional, Sequence, Union

from terrafusion_agent.config import Config
from terrafusion_agent.errors import InvalidArgument, UnknownTable
from terrafusion_agent.stores.base import Column, TableInfo

#: a key as callers give it: its values in key column order (a bare value for a
#: one-column key), or the text a person typed (see :func:`parse_key`)
KeyInput = Union[str, Sequence[Any], int, float]
#: a time as callers give it: ISO 8601 text or a datetime
TimeInput = Union[str, datetime, None]

_EXAMPLE_TIME = "2026-12-01 or 2026-12-01T14:30:00Z"


def synced(cfg: Config, table: str) -> None:
    """Refuse a table that is not one of the synced tables, naming those that are."""
    if table not in cfg.tables:
        listed = ", ".join(cfg.tables) or "none"
        raise UnknownTable(f"Table {table!r} is not synced (sync.tables: {listed}).")


# --- keys ---------------------------------------------------------------------------------


def parse_key(info: TableInfo, text: str) -> tuple:
    """A key as a person types it: the value itself for a one-column key (``1001``,
    ``R-1001``), a JSON array of the values in key column order for any key
    (``[1001]``, ``["x", 2]``); each value typed by its column's kind."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidArgument(f"The key is empty; give the value of {_columns(info)} "
                              f"of table {info.name}.")
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            values = json.loads(stripped)
        except ValueError:
            values = None
        if isinstance(values, list):
            return typed_key(info, values)
    if len(info.pk) > 1:
        raise InvalidArgument(
            f"Table {info.name} has a key of {len(info.pk)} columns ({_columns(info)}): "
            f"give it as a JSON array of {len(info.pk)} values in that order, such as "
            f"{_example(info)}, not {text!r}.")
    column = _key_columns(info)[0]
    # a text key is the text as typed; a number may come with spaces around it
    return (_typed(info, column, text if column.kind == "text" else stripped),)


def typed_key(info: TableInfo, key: KeyInput) -> tuple:
    """``key`` (its values in key column order, a bare value for a one-column key, or
    text as :func:`parse_key` reads it) as the values the key columns hold."""
    if isinstance(key, str):
        return parse_key(info, key)
    values = list(key) if isinstance(key, (list, tuple)) else [key]
    if len(values) != len(info.pk):
        raise InvalidArgument(
            f"Table {info.name} has a key of {len(info.pk)} column(s) ({_columns(info)}), "
            f"so a key has {len(info.pk)} value(s), not {len(values)}.")
    return tuple(_typed(info, column, value)
                 for column, value in zip(_key_columns(info), values))


def _key_columns(info: TableInfo) -> list[Column]:
    by_name = {c.name: c for c in info.columns}
    return [by_name[name] for name in info.pk]


def _columns(info: TableInfo) -> str:
    return ", ".join(info.pk)


def _example(info: TableInfo) -> str:
    samples = {"integer": "1001", "real": "2.5", "decimal": "2.5", "boolean": "true",
               "date": '"2026-12-01"', "datetime": '"2026-12-01T14:30:00"'}
    return "[" + ", ".join(samples.get(c.kind, '"A-1"') for c in _key_columns(info)) + "]"


def _typed(info: TableInfo, column: Column, value: Any) -> Any:
    """``value`` as key column ``column`` holds it; one sentence when it cannot be."""
    kind = column.kind

    def wrong(what: str) -> InvalidArgument:
        return InvalidArgument(f"{value!r} is not a key of table {info.name}: its key "
                               f"column {column.name} holds {what}.")

    if kind == "integer":
        if isinstance(value, bool):
            raise wrong("whole numbers")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise wrong("whole numbers")
    if kind in ("real", "decimal"):
        # a numeric key is matched as a double, as the sync matches it
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise wrong("numbers") from None
        else:
            raise wrong("numbers")
        if not math.isfinite(number):
            raise wrong("finite numbers")
        return number
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "t", "yes"):
            return True
        if text in ("false", "0", "f", "no"):
            return False
        raise wrong("true or false")
    if kind in ("text", "date", "datetime"):
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # [1001] for a text key: the digits are its text
        raise wrong("text")
    raise wrong(f"{kind} values, which cannot be given as a key")


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
                f"History entry {entry_id} deleted feature {_shown(typed)} of table "
                f"{table}, so it has no version to restore; restore the version before "
                "it, an older entry.")
        done = local.edit_row(local_info, typed, version)
    return {"table": table, "key": list(typed), "entry_id": entry_id, **done}


def _shown(key: tuple) -> str:
    return str(key[0]) if len(key) == 1 else json.dumps(list(key), ensure_ascii=False)
