"""A GeoPackage's spatial index, copied from the local copy instead of rebuilt.

Used by the export's GDAL writer (:mod:`terrafusion_agent.export.writer`) once GDAL has
written the rows: it reads the local copy's index and writes SQL into the new
GeoPackage, so it lives with the other stores.

GDAL fills a new GeoPackage's R*Tree after the rows, one entry at a time: two thirds of
the time of exporting 100k parcels. Yet when a whole table is exported in its own CRS
with its integer key as the feature id, that R*Tree holds exactly what the local copy's
SpatiaLite index already holds: per row with a geometry, the key and the bounding box,
rounded outwards to 32-bit floats by the same SQLite rtree module. Both are ordinary
SQLite R*Trees over five columns, so the local index's three shadow tables (``_node``,
``_rowid``, ``_parent``) are copied into the GeoPackage's as they are: a few thousand
pages instead of a hundred thousand tree insertions.

The index is then registered the way GDAL registers its own: the ``gpkg_rtree_index``
extension and the triggers of the GeoPackage specification (1.2, as GDAL 3.6 writes
them), so later edits in QGIS keep it up to date. The local index is checked before
anything is written (keyed by the rowid, one entry per geometry); when it does not
qualify, GDAL builds the index as usual.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Optional

from terrafusion_agent.sql import quote_ident as qi

_EXTENSIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS gpkg_extensions (table_name TEXT,column_name TEXT,"
    "extension_name TEXT NOT NULL,definition TEXT NOT NULL,scope TEXT NOT NULL,"
    "CONSTRAINT ge_tce UNIQUE (table_name, column_name, extension_name))")
_RTREE_EXTENSION = ("gpkg_rtree_index", "http://www.geopackage.org/spec120/#extension_rtree",
                    "write-only")


class IndexNotCopied(Exception):
    """Copying the index into the GeoPackage failed; the reason is the message."""


def usable_index(conn: sqlite3.Connection, table: str, key: str,
                 geometry: str) -> Optional[str]:
    """The name of the local copy's SpatiaLite index of ``table``.``geometry`` when it can
    serve as the GeoPackage's: it exists, ``key`` is the rowid it is keyed by, and it
    holds one entry per geometry. None otherwise."""
    row = conn.execute(
        "SELECT spatial_index_enabled FROM geometry_columns WHERE "
        "lower(f_table_name) = lower(?) AND lower(f_geometry_column) = lower(?)",
        (table, geometry)).fetchone()
    if not row or row[0] != 1:
        return None
    index = f"idx_{table}_{geometry}"
    if not _is_rowid(conn, table, key):
        return None
    entries = conn.execute(f"SELECT count(*) FROM {qi(index + '_rowid')}").fetchone()[0]
    rows = conn.execute(f"SELECT count({qi(geometry)}) FROM {qi(table)}").fetchone()[0]
    return index if entries == rows else None


def _is_rowid(conn: sqlite3.Connection, table: str, key: str) -> bool:
    """Whether ``key`` is ``table``'s rowid: its one primary key column, declared
    INTEGER, in a rowid table (SQLite's rule, leaving out its DESC quirk)."""
    keys = [(name, decl) for _, name, decl, _, _, pk in
            conn.execute(f"PRAGMA table_info({qi(table)})") if pk]
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                       (table,)).fetchone()
    text = (sql[0] if sql else "").upper()
    return (len(keys) == 1 and keys[0][0] == key and keys[0][1].upper() == "INTEGER"
            and not re.search(r"WITHOUT\s+ROWID|PRIMARY\s+KEY\s+DESC", text))


def copy_index(gpkg: Path, local_path: Path, index: str, layer: str, geometry: str,
               fid: str) -> None:
    """Make the local copy's SpatiaLite ``index`` (see :func:`usable_index`) the spatial
    index of ``layer``.``geometry`` in ``gpkg``, which GDAL wrote without one and with
    the same key as its feature id column ``fid``."""
    rtree = f"rtree_{layer}_{geometry}"
    conn = sqlite3.connect(str(gpkg), isolation_level=None)
    try:
        conn.execute("ATTACH DATABASE ? AS local", (str(local_path),))
        conn.execute("BEGIN")
        conn.execute(f"CREATE VIRTUAL TABLE {qi(rtree)} USING rtree(id, minx, maxx, miny, maxy)")
        sizes = [conn.execute(f"SELECT length(data) FROM {db}.{qi(name + '_node')} "
                              "WHERE nodeno = 1").fetchone()
                 for db, name in (("main", rtree), ("local", index))]
        if sizes[0] != sizes[1]:
            raise IndexNotCopied(f"its nodes are {sizes[1]} bytes, the GeoPackage's {sizes[0]}")
        for shadow in ("node", "rowid", "parent"):
            conn.execute(f"DELETE FROM {qi(f'{rtree}_{shadow}')}")
            conn.execute(f"INSERT INTO {qi(f'{rtree}_{shadow}')} "
                         f"SELECT * FROM local.{qi(f'{index}_{shadow}')}")
        for sql in _triggers(layer, geometry, fid, rtree):
            conn.execute(sql)
        conn.execute(_EXTENSIONS_TABLE)
        conn.execute("INSERT INTO gpkg_extensions VALUES (?, ?, ?, ?, ?)",
                     (layer, geometry, *_RTREE_EXTENSION))
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        raise IndexNotCopied(str(exc)) from None
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()


def _triggers(table: str, geometry: str, fid: str, rtree: str) -> list[str]:
    """The triggers that keep the index in step with edits (GeoPackage 1.2, F.3), in
    the text GDAL writes."""
    t, c, i, r = qi(table), qi(geometry), qi(fid), qi(rtree)
    insert = (f"INSERT OR REPLACE INTO {r} VALUES (NEW.{i},ST_MinX(NEW.{c}), "
              f"ST_MaxX(NEW.{c}),ST_MinY(NEW.{c}), ST_MaxY(NEW.{c}));")
    filled = f"(NEW.{c} NOTNULL AND NOT ST_IsEmpty(NEW.{c}))"
    emptied = f"(NEW.{c} ISNULL OR ST_IsEmpty(NEW.{c}))"

    def trigger(suffix: str, event: str, when: str, body: str) -> str:
        return (f"CREATE TRIGGER {qi(f'{rtree}_{suffix}')} AFTER {event} ON {t} "
                f"WHEN {when} BEGIN {body} END")

    return [
        trigger("insert", "INSERT", f"(new.{c} NOT NULL AND NOT ST_IsEmpty(NEW.{c}))", insert),
        trigger("update1", f"UPDATE OF {c}", f"OLD.{i} = NEW.{i} AND {filled}", insert),
        trigger("update2", f"UPDATE OF {c}", f"OLD.{i} = NEW.{i} AND {emptied}",
                f"DELETE FROM {r} WHERE id = OLD.{i};"),
        trigger("update3", "UPDATE", f"OLD.{i} != NEW.{i} AND {filled}",
                f"DELETE FROM {r} WHERE id = OLD.{i}; {insert}"),
        trigger("update4", "UPDATE", f"OLD.{i} != NEW.{i} AND {emptied}",
                f"DELETE FROM {r} WHERE id IN (OLD.{i}, NEW.{i});"),
        trigger("delete", "DELETE", f"old.{c} NOT NULL", f"DELETE FROM {r} WHERE id = OLD.{i};"),
    ]
