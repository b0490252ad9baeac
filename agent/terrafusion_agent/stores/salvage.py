"""Reading what is still readable in a damaged local copy, and putting it into a new one.

SQLite stops a query at the first unreadable page, so nothing here reads a table in one
go: the edit log is read one entry per lookup, stepping past a damaged page to the next
rowid that reads, and each edited row is fetched on its own by key. A damaged page then
costs the entries and rows it holds, and nothing else.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from terrafusion_agent.errors import LocalBusy, LocalDamaged, TerraFusionError
from terrafusion_agent.sql import quote_ident as qi
from terrafusion_agent.stores import spatialite
from terrafusion_agent.stores.base import TableInfo
from terrafusion_agent.stores.local import LocalStore, local_error, local_name

#: entry states that are edits to push again; 'refetch' (keep central) needs nothing
#: once the copy is rebuilt from central
_NOTHING_TO_PUSH = ("refetch",)
#: how far past an unreadable rowid to look for the next readable one when the table's
#: last rowid cannot be read either
_PROBE_LIMIT = 1 << 24


@dataclass(frozen=True)
class Edit:
    """One captured edit as the damaged copy recorded it."""

    table: str
    pk_json: str
    op: str
    base_json: Optional[str]
    changed_at: str

    @property
    def key(self) -> tuple:
        return tuple(json.loads(self.pk_json))


class Unreadable(Exception):
    """A row or table of the damaged copy cannot be read; the message says why."""


class DamagedCopy:
    """A local copy SQLite reports as damaged, opened for reading what it still holds.

    ``problems`` collects a sentence for each part that could not be read at all.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.problems: list[str] = []
        self.conn: Optional[sqlite3.Connection] = None
        try:
            # a plain connection: SQLite's errors are handled here, row by row
            self.conn = spatialite.connect(self.path, init_metadata=False,
                                           what="damaged local copy")
            self.conn.execute("PRAGMA query_only = 1")
        except (TerraFusionError, sqlite3.Error) as exc:
            what = (_reason(exc) if isinstance(exc, TerraFusionError)
                    else f"The damaged copy {self.path} cannot be opened ({_reason(exc)})")
            self.problems.append(f"{what}; none of its pending edits can be read.")
            if self.conn is not None:
                self.conn.close()
                self.conn = None

    def check_no_writer(self, busy_timeout: float) -> None:
        """Raise LocalBusy while another program (QGIS saving edits) holds the write lock
        longer than ``busy_timeout`` seconds: its edits would miss the recovery."""
        if self.conn is None:
            return
        self.conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        self.conn.execute("PRAGMA query_only = 0")  # it refuses to take the write lock
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            error = local_error(self.path, exc, busy_timeout=busy_timeout)
            if isinstance(error, LocalBusy):
                raise error from exc
            # a damaged file may refuse even this; then nobody writes to it either
        finally:
            self.conn.execute("PRAGMA query_only = 1")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    def table_infos(self) -> dict[str, TableInfo]:
        """The synced tables' layouts as the damaged copy knew them (readable ones)."""
        infos = {}
        for (text,) in self._scan("tf_tables", ["info_json"], "table layouts"):
            try:
                info = TableInfo.from_json(json.loads(text))
            except (ValueError, KeyError, TypeError, IndexError):
                continue
            infos[info.name] = info
        return infos

    def edits(self) -> Iterator[Edit]:
        """Every readable captured edit still to push, oldest first."""
        columns = ["table_name", "pk_json", "op", "base_json", "changed_at", "state"]
        for table, pk, op, base, changed_at, state in self._scan(
                "tf_local_changes", columns, "pending edits"):
            if state not in _NOTHING_TO_PUSH:
                yield Edit(table, pk, op, base, changed_at)

    def row(self, info: TableInfo, key: tuple) -> Optional[dict[str, Any]]:
        """The local row of ``key`` (None if the copy has none); raises Unreadable."""
        if self.conn is None:
            raise Unreadable("the damaged copy cannot be opened")
        exprs = ", ".join(f"AsBinary({qi(c.name)})" if c.kind == "geometry" else qi(c.name)
                          for c in info.columns)
        where = " AND ".join(f"{qi(p)} = ?" for p in info.pk)
        try:
            found = self.conn.execute(
                f"SELECT {exprs} FROM {qi(local_name(info.name))} WHERE {where}",
                list(key)).fetchone()
        except sqlite3.Error as exc:
            raise Unreadable(_reason(exc)) from None
        return None if found is None else dict(zip(info.column_names, found))

    # --- reading around damaged pages -------------------------------------------------

    def _scan(self, table: str, columns: list[str], what: str) -> Iterator[tuple]:
        """Every readable row of ``table``, one query per row.

        A scan cannot be trusted here: SQLite reads one row ahead, so a damaged page also
        loses the row before it, and a scan resumed past the damage seeks back into it.
        A lookup of "the first row from rowid N" reads only the pages on N's way; one that
        lands in a damaged page fails, and the next rowid is tried, until one reads.
        """
        if self.conn is None:
            return
        t = qi(table)
        sql = (f"SELECT rowid, {', '.join(qi(c) for c in columns)} FROM {t} "
               "WHERE rowid >= ? ORDER BY rowid LIMIT 1")
        first, top = self._bounds(t)
        start, limit = first, top
        while True:
            try:
                row = self.conn.execute(sql, (start,)).fetchone()
            except sqlite3.Error as exc:
                if not _is_damage(self.path, exc):
                    self.problems.append(f"The {what} cannot be read: {_reason(exc)}.")
                    return
                note = f"Some {what} cannot be read ({_reason(exc)}); the others were kept."
                if note not in self.problems:
                    self.problems.append(note)
                if limit is None:  # the last rowid is unknown: look this far ahead at most
                    limit = start + _PROBE_LIMIT
                start += 1
                if start > limit:
                    return
                continue
            if row is None:
                return
            start = row[0] + 1
            yield row[1:]

    def _bounds(self, table: str) -> tuple[int, Optional[int]]:
        """(first rowid to look from, last rowid or None when unreadable)."""
        assert self.conn is not None
        bounds: list[Any] = []
        for fn, fallback in (("min", 1), ("max", None)):  # rowids start at 1 unless forced
            try:
                value = self.conn.execute(f"SELECT {fn}(rowid) FROM {table}").fetchone()[0]
            except sqlite3.Error:
                value = fallback
            bounds.append(fallback if value is None else value)
        return bounds[0], bounds[1]


def restore_edit(local: LocalStore, info: TableInfo, edit: Edit,
                 row: Optional[dict[str, Any]]) -> None:
    """Make ``edit`` a pending edit of the rebuilt copy ``local`` again (inside
    ``local.writing()``): the local row as the damaged copy held it (``row``, None for a
    delete), and the entry with the base the damaged copy recorded, so that the next
    push compares base, local and central exactly as it would have."""
    key = edit.key
    if edit.op == "delete":
        local.delete_rows(info, [key])
    else:
        # a column added centrally since the damaged copy last synced keeps central's value
        merged = dict(local.rows_by_key(info, [key]).get(key, {}))
        merged.update({c: v for c, v in (row or {}).items() if c in info.column_names})
        local.upsert_rows(info, [merged])
    local.conn.execute(
        "INSERT INTO tf_local_changes (table_name, pk_json, op, base_json, state, changed_at, "
        "version) VALUES (?, ?, ?, ?, 'pending', ?, 1) ON CONFLICT (table_name, pk_json) "
        "DO UPDATE SET op = excluded.op, base_json = excluded.base_json, state = 'pending', "
        "changed_at = excluded.changed_at, version = version + 1",
        (edit.table, edit.pk_json, edit.op, edit.base_json, edit.changed_at))


def _is_damage(path: Path, exc: sqlite3.Error) -> bool:
    return isinstance(local_error(path, exc), LocalDamaged)


def _reason(exc: BaseException) -> str:
    return str(exc).strip().rstrip(".") or exc.__class__.__name__
