"""Bulk load of a fresh local table, and its spatial index packed rather than grown.

A first sync of a million parcels has three costs: formatting rows centrally, inserting
them into SQLite, and the R*Tree spatial index. They are kept apart and overlapped:

- the central database formats batch *n+1* as SQLite literals (a prefetch thread)
  while SQLite inserts batch *n* (``sqlite3_step`` releases the GIL), with SpatiaLite's
  per-row triggers suspended for the load;
- the spatial index is not grown entry by entry (about 20 us each, whatever the order)
  but packed: meanwhile, on a second connection sharing the pull's snapshot, the
  central database sorts the boxes along a Hilbert curve and hands over finished leaf
  nodes in the rtree module's own format; the levels above them (one node per 51
  below) are built here and everything is written straight into the index's shadow
  tables (``_node``, ``_rowid``, ``_parent``). A packed tree also answers queries
  faster than a grown one: its nodes are full and barely overlap.

Everything happens inside the caller's transaction: a failure or a kill leaves the
previous local table untouched. SpatiaLite's triggers are restored at the end, so later
edits maintain the index as usual, and ``rtreecheck`` finds the tree sound.
"""

from __future__ import annotations

import logging
import sqlite3
import struct
from contextlib import ExitStack
from typing import Callable, Iterable, Iterator, Optional

from terrafusion_agent import faults
from terrafusion_agent.errors import LocalUnavailable
from terrafusion_agent.prefetch import Prefetch
from terrafusion_agent.sql import quote_ident as qi
from terrafusion_agent.stores.base import Batch, Leaf, LeafSource

log = logging.getLogger("terrafusion.local")

#: cells per node of SQLite's rtree module (RTREE_MAXCELLS)
FANOUT = 51


def load(conn: sqlite3.Connection, table: str, columns: list[str],
         geometry: Optional[str], batches: Iterable[Batch],
         leaves: Optional[LeafSource] = None,
         progress: Optional[Callable[[int], None]] = None,
         exact: Callable[[str, str], None] = lambda column, values: None) -> int:
    """Insert ``batches`` into the empty ``table``, whose spatial index, if it has a
    geometry, exists and is empty; returns the row count.

    With ``leaves`` (see :meth:`PostGISCentral.rtree_leaves`) the index is packed from
    leaves computed centrally while the rows load; otherwise it is filled from the
    table afterwards. ``exact(column, values)`` stores the digits of a batch's decimals
    that their doubles do not hold, once the batch's rows are in. Runs inside the
    caller's transaction.
    """
    index = f"idx_{table}_{geometry}" if geometry else None
    packer: Optional[_Packer] = None
    suspended = _suspend_triggers(conn, table)
    head = f"INSERT INTO {qi(table)} ({', '.join(qi(c) for c in columns)}) VALUES "
    done = 0
    # On failure the triggers are not restored here: the caller's rollback brings them
    # back with everything else, and after SQLite rolled back on its own (a full disk)
    # the table is gone, so restoring them would fail and hide what happened.
    with ExitStack() as stack:
        rows = stack.enter_context(Prefetch(batches))
        if index is not None and leaves is not None:
            packer = _Packer(conn, index)
            ahead = stack.enter_context(Prefetch(leaves(packer.fanout), depth=256))
        for count, texts, digits in rows:
            for values in texts:
                conn.execute(head + values)
            for column, texts in digits.items():
                for values in texts:
                    exact(column, values)
            done += count
            faults.point("pull.mid_bulk_copy")
            if progress:
                progress(done)
        if packer is not None and geometry is not None and index is not None:
            try:
                packer.clear()
                for leaf in ahead:
                    packer.add(leaf)
                packer.finish()
            except LocalUnavailable:  # the local copy's own fault (a full disk) ends it
                raise
            except Exception as exc:  # noqa: BLE001 - the rows are in: index them here
                # (central refusing a second connection, say: not worth a failed sync)
                log.warning("the spatial index of %s is built locally instead: %s",
                            table, exc)
                packer.clear()
                packer.finish()
                _fill_index(conn, table, geometry, index)
        elif geometry is not None and index is not None:
            _fill_index(conn, table, geometry, index)
    for sql in suspended:
        conn.execute(sql)
    if geometry is not None and index is not None:
        _write_statistics(conn, table, geometry, index, done)
    return done


class _Packer:
    """Writes a packed R*Tree into the shadow tables of an empty rtree ``index``: the
    leaves as they arrive, then the inner levels and the root (node 1)."""

    def __init__(self, conn: sqlite3.Connection, index: str):
        self.conn = conn
        self.node, self.rowid, self.parent = (qi(f"{index}_{s}") for s in
                                              ("node", "rowid", "parent"))
        # nodes are all as long as the empty root the rtree module made (it reads the
        # node size back from there); 24 bytes a cell after a 4-byte header, and
        # fewer than 51 cells a node only in a file with a tiny page size
        self.size = conn.execute(f"SELECT length(data) FROM {self.node} WHERE nodeno = 1"
                                 ).fetchone()[0]
        self.fanout = min(FANOUT, (self.size - 4) // 24)
        self.level: list[tuple] = []  # (node number, xmin, xmax, ymin, ymax) per leaf

    def clear(self) -> None:
        """Empty the shadow tables (of the empty root, or of a tree left half-written)."""
        for table in (self.node, self.rowid, self.parent):
            self.conn.execute(f"DELETE FROM {table}")
        self.level = []

    def add(self, leaf: Leaf) -> None:
        nodeno, count, cells, x0, x1, y0, y1 = leaf
        cells = bytes(cells)
        self._write(nodeno, 0, count, cells)
        # each cell starts with its key: the _rowid table maps it to this leaf
        self.conn.executemany(f"INSERT INTO {self.rowid} (rowid, nodeno) VALUES (?, ?)",
                              ((key, nodeno) for key, in struct.iter_unpack(">q16x", cells)))
        self.level.append((nodeno, x0, x1, y0, y1))

    def finish(self) -> None:
        level = self.level
        if not level:
            self._write(1, 0, 0, b"")  # no geometry at all: the empty root again
            return
        if len(level) == 1 and level[0][0] == 1:
            return  # a single leaf is the root
        nodeno = max(entry[0] for entry in level) + 1
        depth = 0
        while True:
            depth += 1
            if len(level) <= self.fanout:
                self._inner(1, depth, level)
                return
            upper = []
            for group in _even_groups(level, self.fanout):
                upper.append(self._inner(nodeno, 0, group))
                nodeno += 1
            level = upper

    def _inner(self, nodeno: int, depth: int, children: list[tuple]) -> tuple:
        """Writes an inner node over ``children``; returns its own entry. Only the
        root's header carries the depth of the tree."""
        cells = b"".join(struct.pack(">q4f", *child) for child in children)
        self._write(nodeno, depth, len(children), cells)
        self.conn.executemany(f"INSERT INTO {self.parent} VALUES (?, ?)",
                              ((child[0], nodeno) for child in children))
        return (nodeno, min(c[1] for c in children), max(c[2] for c in children),
                min(c[3] for c in children), max(c[4] for c in children))

    def _write(self, nodeno: int, depth: int, count: int, cells: bytes) -> None:
        data = struct.pack(">HH", depth, count) + cells
        self.conn.execute(f"INSERT INTO {self.node} VALUES (?, ?)",
                          (nodeno, data + bytes(self.size - len(data))))


def _even_groups(items: list, most: int) -> Iterator[list]:
    """``items`` cut into the fewest consecutive groups of at most ``most``, as even
    as possible."""
    groups = -(-len(items) // most)
    for i in range(groups):
        yield items[i * len(items) // groups:(i + 1) * len(items) // groups]


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


def _fill_index(conn: sqlite3.Connection, table: str, geometry: str, index: str) -> None:
    """The index of a table whose key is not its rowid: filled in one statement."""
    g = qi(geometry)
    conn.execute(
        f"INSERT INTO {qi(index)} (pkid, xmin, xmax, ymin, ymax) SELECT ROWID, MbrMinX({g}), "
        f"MbrMaxX({g}), MbrMinY({g}), MbrMaxY({g}) FROM {qi(table)} WHERE {g} IS NOT NULL")


def _write_statistics(conn: sqlite3.Connection, table: str, geometry: str,
                      index: str, rows: int) -> None:
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
