"""Bulk load of a fresh local table: rows and spatial index built side by side.

A first sync of a million parcels is dominated by three costs: formatting rows
centrally, inserting them into SQLite, and building the R*Tree spatial index (about
9 us per entry whatever the order). Done one after the other, as ogr2ogr does, they add
up; here they overlap on two cores:

- the central database formats batch *n+1* (a prefetch thread) while
- SQLite inserts batch *n* into the table (with SpatiaLite's per-row triggers suspended
  for the load), while
- a second SQLite connection inserts the batch's bounding boxes into an R*Tree in a
  scratch file.

At the end the scratch R*Tree's shadow tables (``_node``, ``_rowid``, ``_parent``) are
copied into the table's spatial index, SpatiaLite's triggers are restored, and the layer
extent is written from the index. ``sqlite3_step`` releases the GIL, so the threads
really run in parallel. Everything happens inside the caller's transaction: a failure
or a kill leaves the previous local table untouched.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from pathlib import Path
from typing import Callable, Iterable, Optional

from terrafusion_agent.prefetch import prefetch
from terrafusion_agent.sql import quote_ident as qi

log = logging.getLogger("terrafusion.local")
SHADOWS = ("node", "rowid", "parent")


class _RTreeBuilder(threading.Thread):
    """Fills an R*Tree in a scratch database from ``(key, xmin, xmax, ymin, ymax)``
    VALUES batches handed over through :meth:`add`."""

    def __init__(self, path: Path, page_size: int):
        super().__init__(name="rtree-builder", daemon=True)
        self.path = path
        self.page_size = page_size
        self.batches: queue.Queue = queue.Queue(maxsize=8)
        self.error: Optional[BaseException] = None

    def add(self, values: str) -> None:
        self.batches.put(values)

    def finish(self) -> None:
        self.batches.put(None)
        self.join()
        if self.error is not None:
            raise self.error

    def run(self) -> None:
        conn = None
        try:
            for suffix in ("", "-journal", "-wal", "-shm"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)
            conn = sqlite3.connect(str(self.path), isolation_level=None)
            # same page size as the local copy: R*Tree nodes are sized from it
            conn.execute(f"PRAGMA page_size = {int(self.page_size)}")
            conn.execute("PRAGMA journal_mode = OFF")
            conn.execute("PRAGMA synchronous = OFF")
            conn.execute("CREATE VIRTUAL TABLE r USING rtree(pkid, xmin, xmax, ymin, ymax)")
            conn.execute("BEGIN")
            while True:
                values = self.batches.get()
                if values is None:
                    break
                conn.execute("INSERT INTO r VALUES " + values)
            conn.execute("COMMIT")
        except BaseException as exc:  # noqa: BLE001 - re-raised in the loading thread
            self.error = exc
            while self.batches.get() is not None:  # let the producer finish
                pass
        finally:
            if conn is not None:
                conn.close()


def load(conn: sqlite3.Connection, db_path: Path, table: str, columns: list[str],
         geometry: Optional[str], batches: Iterable[tuple[int, str, Optional[str]]],
         progress: Optional[Callable[[int], None]] = None) -> int:
    """Insert ``batches`` into the empty ``table`` (spatial index already created, or no
    geometry); returns the number of rows. Runs inside the caller's transaction."""
    index = f"idx_{table}_{geometry}" if geometry else None
    suspended = _suspend_triggers(conn, table)
    builder: Optional[_RTreeBuilder] = None
    head = f"INSERT INTO {qi(table)} ({', '.join(qi(c) for c in columns)}) VALUES "
    done = 0
    try:
        for count, values, boxes in prefetch(batches):
            if index and builder is None and boxes is not None:
                page_size = conn.execute("PRAGMA page_size").fetchone()[0]
                builder = _RTreeBuilder(Path(str(db_path) + ".tf-rtree"), page_size)
                builder.start()
            if builder is not None and boxes:
                builder.add(boxes)
            conn.execute(head + values)
            done += count
            if progress:
                progress(done)
        if builder is not None:
            builder.finish()
            _copy_rtree(conn, builder.path, index)
        elif index:
            _fill_index(conn, table, geometry, index)
    finally:
        if builder is not None and builder.is_alive():
            builder.finish()
        for sql in suspended:
            conn.execute(sql)
        if builder is not None:
            for suffix in ("", "-journal"):
                Path(str(builder.path) + suffix).unlink(missing_ok=True)
    if geometry:
        _write_statistics(conn, table, geometry, index, done)
    return done


def _suspend_triggers(conn: sqlite3.Connection, table: str) -> list[str]:
    """Drop SpatiaLite's per-row triggers on ``table``; returns the SQL to restore them.

    They check each geometry's type and SRID (the central column's own type already
    guarantees both), stamp a modification time and feed the spatial index, which
    is built separately here.
    """
    rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                        "AND tbl_name = ?", (table,)).fetchall()
    for name, _ in rows:
        conn.execute(f"DROP TRIGGER {qi(name)}")
    return [sql for _, sql in rows]


def _copy_rtree(conn: sqlite3.Connection, scratch: Path, index: str) -> None:
    src = sqlite3.connect(str(scratch))
    try:
        for shadow in SHADOWS:
            target = qi(f"{index}_{shadow}")
            cols = [r[1] for r in conn.execute(f"PRAGMA table_info({target})")]
            conn.execute(f"DELETE FROM {target}")
            cur = src.execute(f"SELECT {', '.join(qi(c) for c in cols)} FROM r_{shadow}")
            marks = ", ".join("?" * len(cols))
            while True:
                chunk = cur.fetchmany(20000)
                if not chunk:
                    break
                conn.executemany(f"INSERT INTO {target} VALUES ({marks})", chunk)
    finally:
        src.close()


def _fill_index(conn: sqlite3.Connection, table: str, geometry: str, index: str) -> None:
    """The index of a table whose key is not its rowid: filled in one statement."""
    g = qi(geometry)
    conn.execute(
        f"INSERT INTO {qi(index)} (pkid, xmin, xmax, ymin, ymax) SELECT ROWID, MbrMinX({g}), "
        f"MbrMaxX({g}), MbrMinY({g}), MbrMaxY({g}) FROM {qi(table)} WHERE {g} IS NOT NULL")


def _write_statistics(conn: sqlite3.Connection, table: str, geometry: str,
                      index: Optional[str], rows: int) -> None:
    """Row count and extent for QGIS (what UpdateLayerStatistics records, without its
    per-field scan), read from the spatial index rather than every geometry."""
    ext = conn.execute(f"SELECT min(xmin), min(ymin), max(xmax), max(ymax) FROM {qi(index)}"
                       ).fetchone()
    conn.execute(
        "INSERT OR REPLACE INTO geometry_columns_statistics (f_table_name, "
        "f_geometry_column, last_verified, row_count, extent_min_x, extent_min_y, "
        "extent_max_x, extent_max_y) VALUES (lower(?), lower(?), "
        "strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), ?, ?, ?, ?, ?)",
        (table, geometry, rows, *ext))
