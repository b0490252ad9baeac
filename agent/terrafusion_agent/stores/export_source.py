"""The local copy as an export reads it: what planning asks, and the one SELECT GDAL reads.

An export never reads rows through Python: GDAL's SQLite driver runs one SELECT on the
local copy (:func:`select_sql`) and ``VectorTranslate`` writes what it returns. That
SELECT already has the selected fields under their output names, the filter, and the
geometry under :data:`GEOMETRY_ALIAS`, a name GDAL always reads as a SpatiaLite geometry
(left to its own guesses, a NULL first geometry would lose the geometry column). GDAL
reads an SQLite ``INTEGER`` as 32-bit and clamps bigger values, so such columns (and
ISO dates, which GDAL would rewrite) are selected as text.

Before that, planning reads the table's description from ``tf_tables``, checks the
filter, measures the selected rows in one pass (:func:`measure`) and looks up the CRS;
a split export asks for the rowid halfway through the rows. Every connection here is
query-only: nothing an export does may change the local copy.

A filter is the user's SQLite expression, pasted into ``WHERE (...)``; it must parse on
the table, read only, and call no function that writes files or changes the database,
which SQLite's authorizer enforces while the statement is prepared (:func:`check_filter`).
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple, Optional, Sequence

from terrafusion_agent.errors import (
    ExportError,
    ExportNotPossible,
    LocalUnavailable,
    TerraFusionError,
)
from terrafusion_agent.sql import quote_ident as qi
from terrafusion_agent.stores.base import TableInfo

#: the name GDAL's SQLite driver always reads as a SpatiaLite geometry in a SELECT
GEOMETRY_ALIAS = "GaiaGeometry"

_FILTER_FORBIDDEN = re.compile(
    # SpatiaLite functions that write files or change the database: never from a filter.
    r"^(?:import|export|blobtofile|blobfromfile|xb_loadxml|xb_storexml|load_extension|"
    r"readfile|writefile|create|drop|recover|discard|disable|enable|init|insert|update|"
    r"upgrade|register|unregister|rename|clone|copy|invalidate|remove|eliminate|rebuild|"
    r"sqlproc|storedproc|storedvar|gpkg|autogpkg|autofdo|rtreealign|se_|wms_|topogeo_|"
    r"toponet_|addgeometrycolumn|addfdogeometrycolumn|addtemporary|addvirtualtableextent|"
    r"proj_set)", re.IGNORECASE)


@contextlib.contextmanager
def open_local(path: Path, spatial: bool) -> Iterator[sqlite3.Connection]:
    """A query-only connection to the local copy; with SpatiaLite loaded when a filter
    may call its functions (loading it costs more than the rest of the checks)."""
    from terrafusion_agent.stores import spatialite
    from terrafusion_agent.stores.local import LocalConnection

    if not path.exists():
        raise ExportNotPossible(f"The local copy {path} does not exist yet; run a sync first.")
    try:
        # LocalConnection: a damaged or unreadable copy is its own sentence, never
        # mistaken for a bad filter
        if spatial:
            conn = spatialite.connect(path, create=False, init_metadata=False,
                                      what="local copy", factory=LocalConnection)
        else:
            conn = sqlite3.connect(str(path), timeout=spatialite.BUSY_TIMEOUT_MS / 1000,
                                   isolation_level=None, factory=LocalConnection)
    except LocalUnavailable:
        raise
    except TerraFusionError as exc:
        raise ExportError(str(exc)) from None
    except sqlite3.Error as exc:
        raise ExportError(f"The local copy {path} cannot be opened: {exc}.") from None
    try:
        conn.execute("PRAGMA query_only = 1")
        yield conn
    finally:
        conn.close()


def synced_tables(conn: sqlite3.Connection) -> dict[str, str]:
    """The synced tables' descriptions as the sync recorded them (JSON, for
    :meth:`TableInfo.from_json`), by name; empty before the first sync."""
    try:
        return dict(conn.execute("SELECT table_name, info_json FROM tf_tables").fetchall())
    except sqlite3.OperationalError:
        return {}


def table_info(description: str) -> TableInfo:
    """A table's description from :func:`synced_tables`."""
    return TableInfo.from_json(json.loads(description))


class FilterRefused(Exception):
    """SQLite refused a filter: ``function`` names a function a filter may not call
    (None when the filter is simply not valid SQL on the table); the message says why."""

    def __init__(self, reason: str, function: Optional[str] = None):
        super().__init__(reason)
        self.function = function


def check_filter(conn: sqlite3.Connection, table: str, where: str) -> None:
    """Prepare ``where`` on ``table`` as SQLite would run it, allowing only reads and
    harmless functions; raises :class:`FilterRefused`."""
    refused: list[str] = []

    def authorizer(action: int, arg1: Optional[str], arg2: Optional[str],
                   dbname: Optional[str], source: Optional[str]) -> int:
        if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION and not _FILTER_FORBIDDEN.match(arg2 or ""):
            return sqlite3.SQLITE_OK
        refused.append(arg2 or "")
        return sqlite3.SQLITE_DENY

    conn.set_authorizer(authorizer)
    try:
        conn.execute(f"SELECT 1 FROM {qi(table)} WHERE ({where}) LIMIT 0").fetchall()
    except (sqlite3.Error, sqlite3.Warning) as exc:
        raise FilterRefused(str(exc), refused[0] if refused and refused[0] else None) \
            from None
    finally:
        conn.set_authorizer(None)


class SpatialRef(NamedTuple):
    """A row of SpatiaLite's ``spatial_ref_sys``."""

    auth_name: Optional[str]
    auth_srid: Optional[int]
    srtext: Optional[str]


def spatial_ref(conn: sqlite3.Connection, srid: int) -> Optional[SpatialRef]:
    """What the local copy knows of ``srid`` (None when it has no such row, or no table)."""
    try:
        row = conn.execute("SELECT auth_name, auth_srid, srtext FROM spatial_ref_sys "
                           "WHERE srid = ?", (srid,)).fetchone()
    except sqlite3.Error:
        return None
    return SpatialRef(*row) if row else None


@dataclass(frozen=True)
class Measures:
    """The selected rows, measured: how many, how many without geometry, and per column
    asked for, its measures (see :func:`measure`)."""

    rows: int
    null_geometries: int
    columns: list[tuple]


#: what :func:`measure` can find out about a column
RANGE, BYTES = "range", "bytes"


def measure(conn: sqlite3.Connection, table: str, geometry: Optional[str],
            columns: Sequence[tuple[str, Optional[str]]],
            where: Optional[str] = None) -> Measures:
    """One pass over the rows ``where`` selects. ``columns`` are (column, what): for
    :data:`RANGE` the largest absolute value and the smallest value, for :data:`BYTES`
    the longest value in bytes (as dBase counts), for None nothing. Values are None
    when no row has one. Raises ``sqlite3.Error`` when the filter fails on the data."""
    exprs = ["count(*)", f"count(*) - count({qi(geometry)})" if geometry else "0"]
    slots: list[tuple[int, int]] = []
    for name, what in columns:
        col = qi(name)
        exprs_for: dict[Optional[str], list[str]] = {
            RANGE: [f"max(abs({col}))", f"min({col})"],
            BYTES: [f"max(length(CAST({col} AS BLOB)))"]}
        wanted = exprs_for.get(what, [])
        slots.append((len(exprs), len(wanted)))
        exprs += wanted
    sql = f"SELECT {', '.join(exprs)} FROM {qi(table)}"
    if where:
        sql += f" WHERE ({where})"
    row = conn.execute(sql).fetchone()
    return Measures(int(row[0]), int(row[1] or 0),
                    [tuple(row[at:at + n]) for at, n in slots])


@dataclass(frozen=True)
class Rows:
    """Which rows of a table an export reads: those ``where`` selects (all without one),
    less those whose geometry column ``skip_null`` is NULL when it is given."""

    table: str
    where: Optional[str] = None
    skip_null: Optional[str] = None

    def conditions(self) -> list[str]:
        out = [f"({self.where})"] if self.where else []
        if self.skip_null:
            out.append(f"{qi(self.skip_null)} IS NOT NULL")
        return out

    def _from(self) -> str:
        conditions = self.conditions()
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        return f" FROM {qi(self.table)}{where}"


def count(conn: sqlite3.Connection, rows: Rows) -> int:
    """How many rows there are now."""
    return int(conn.execute(f"SELECT count(*){rows._from()}").fetchone()[0])


def splits_by_rowid(columns: Iterable[str]) -> bool:
    """Whether a table with these columns can be split by its rowid (:func:`rowid_at`,
    ``rowids`` of :func:`select_sql`): a column called ``_rowid_`` would hide it."""
    return "_rowid_" not in {name.lower() for name in columns}


def rowid_at(conn: sqlite3.Connection, rows: Rows, offset: int) -> Optional[int]:
    """The rowid of the row ``offset`` rows into ``rows`` by rowid (None past the end)."""
    row = conn.execute(f"SELECT _rowid_{rows._from()} ORDER BY _rowid_ LIMIT 1 OFFSET ?",
                       (offset,)).fetchone()
    return int(row[0]) if row else None


def select_sql(rows: Rows, columns: Iterable[tuple[str, str, bool]], geometry: Optional[str],
               limit: Optional[int] = None,
               rowids: tuple[Optional[int], Optional[int]] = (None, None)) -> str:
    """The one SELECT GDAL reads: ``columns`` are (column, output name, read as text),
    the ``geometry`` column comes as :data:`GEOMETRY_ALIAS`; ``rowids`` (from, to)
    restricts it to one part of a split export, ``limit`` to its first rows."""
    exprs = [f"CAST({qi(source)} AS TEXT) AS {qi(name)}" if as_text
             else f"{qi(source)} AS {qi(name)}" for source, name, as_text in columns]
    if geometry:
        exprs.append(f"{qi(geometry)} AS {qi(GEOMETRY_ALIAS)}")
    sql = f"SELECT {', '.join(exprs)} FROM {qi(rows.table)}"
    conditions = rows.conditions()
    if rowids[0] is not None:
        conditions.append(f"_rowid_ >= {int(rowids[0])}")
    if rowids[1] is not None:
        conditions.append(f"_rowid_ < {int(rowids[1])}")
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return sql
