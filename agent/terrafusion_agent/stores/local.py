"""The local SpatiaLite copy that QGIS opens and edits, plus the agent's bookkeeping."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

from terrafusion_agent import faults
from terrafusion_agent.errors import LocalUnavailable, NotFound, TerraFusionError
from terrafusion_agent.sql import quote_ident as qi
from terrafusion_agent.stores import bulk, capture, rows, spatialite
from terrafusion_agent.stores.base import TableInfo
from terrafusion_agent.timeutil import utc_now

log = logging.getLogger("terrafusion.local")
BATCH = 5000


class LocalStore:
    """The local copy. Open with :meth:`open`; it migrates its bookkeeping on first use."""

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path = path
        self.conn = conn

    @classmethod
    def open(cls, path: Path, *, migrate: bool = True) -> LocalStore:
        path = Path(path)
        try:
            conn = spatialite.connect(path, create=True, what="local copy")
        except TerraFusionError as exc:
            raise LocalUnavailable(str(exc)) from None
        if migrate:
            from terrafusion_agent import migrate as migrations

            if not migrations.is_current("local", conn):
                migrations.upgrade_local(path)
        store = cls(path, conn)
        if migrate:
            store._refresh_capture()
        return store

    def _refresh_capture(self) -> None:
        """Reinstall the capture triggers made by an older version of this agent."""
        if self.meta("capture_version") == capture.VERSION:
            return
        with self.writing():
            for info in self.tables():
                self.install_capture(info)
            self.set_meta("capture_version", capture.VERSION)

    @classmethod
    def open_existing(cls, path: Path) -> LocalStore:
        """Open for reading status; refuses a local copy that was never synced."""
        path = Path(path)
        if not path.exists():
            raise LocalUnavailable(f"The local copy {path} does not exist yet; run a sync first.")
        return cls.open(path)

    def close(self) -> None:
        self.conn.close()

    # --- identity -----------------------------------------------------------------------

    def agent_id(self) -> str:
        """This copy's permanent identity, made on first use."""
        row = self.conn.execute("SELECT value FROM tf_meta WHERE key = 'agent_id'").fetchone()
        if row:
            return row[0]
        new = str(uuid.uuid4())
        self.conn.execute("INSERT OR IGNORE INTO tf_meta (key, value) VALUES ('agent_id', ?)",
                          (new,))
        return self.conn.execute("SELECT value FROM tf_meta WHERE key = 'agent_id'").fetchone()[0]

    # --- synced tables ------------------------------------------------------------------

    def tables(self) -> list[TableInfo]:
        rows = self.conn.execute("SELECT info_json FROM tf_tables ORDER BY table_name")
        return [TableInfo.from_json(json.loads(r[0])) for r in rows]

    def table_info(self, name: str) -> TableInfo:
        row = self.conn.execute("SELECT info_json FROM tf_tables WHERE table_name = ?",
                                (name,)).fetchone()
        if row is None:
            raise NotFound(f"Table {name} is not in the local copy {self.path}.")
        return TableInfo.from_json(json.loads(row[0]))

    @contextmanager
    def writing(self) -> Iterator[None]:
        """One write transaction in which the agent's own writes are not captured as
        edits. SQLite has one writer at a time, so QGIS's edits wait for it (and it for
        them) instead of interleaving; a crash rolls everything back, guard included."""
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute("UPDATE tf_apply_guard SET active = 1 WHERE id = 1")
            yield
            c.execute("UPDATE tf_apply_guard SET active = 0 WHERE id = 1")
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def replace_table(self, info: TableInfo, rows: Optional[Iterable[tuple]] = None,
                      progress: Optional[Callable[[int], None]] = None,
                      sql_batches: Optional[Iterable[tuple[int, list[str]]]] = None,
                      rtree_leaves: Optional[bulk.LeafSource] = None) -> int:
        """Replace the local table with ``rows`` (inside :meth:`writing`); returns the count.

        The spatial index is built after the load (much faster than row by row), the
        geometry column is registered so QGIS opens the table as a layer, and the
        capture triggers are installed.
        """
        c = self.conn
        t0 = time.perf_counter()
        name = local_name(info.name)
        if self._exists(name):
            c.execute("SELECT DropTable(NULL, ?)", (name,))
        c.execute(_create_table_sql(info))
        if info.geometry:
            g = info.geometry
            ok = c.execute("SELECT AddGeometryColumn(?, ?, ?, ?, ?)",
                           (name, g.column, g.srid, g.geometry_type, g.dims)).fetchone()[0]
            if not ok:
                raise TerraFusionError(
                    f"Table {info.name}: SpatiaLite refused geometry column {g.column} "
                    f"({g.geometry_type} {g.dims}, EPSG:{g.srid})."
                )
        geom = info.geometry.column if info.geometry else None
        if sql_batches is not None:
            if geom:
                c.execute("SELECT CreateSpatialIndex(?, ?)", (name, geom))
            n = bulk.load(c, name, list(info.column_names), geom, sql_batches,
                          rtree_leaves, progress)
        else:
            c.executemany(_insert_sql(info), _batched(rows or (), progress))
            n = c.execute(f"SELECT count(*) FROM {qi(name)}").fetchone()[0]
            if geom:
                c.execute("SELECT CreateSpatialIndex(?, ?)", (name, geom))
                c.execute("SELECT UpdateLayerStatistics(?, ?)", (name, geom))
        log.debug("full copy of %s: %d rows in %.2f s", name, n, time.perf_counter() - t0)
        self.save_table_info(info)
        self.install_capture(info)
        return n

    def save_table_info(self, info: TableInfo) -> None:
        self.conn.execute(
            "INSERT INTO tf_tables (table_name, info_json, last_full_sync_at) "
            "VALUES (?, ?, ?) ON CONFLICT (table_name) DO UPDATE SET "
            "info_json = excluded.info_json, last_full_sync_at = excluded.last_full_sync_at",
            (info.name, json.dumps(info.to_json()), utc_now()))

    def install_capture(self, info: TableInfo) -> None:
        for stmt in capture.create_sql(info, local_name(info.name)):
            self.conn.execute(stmt)

    # --- applying central rows (inside writing()) ---------------------------------------

    def upsert_rows(self, info: TableInfo, rows: list[dict]) -> None:
        """Insert or update ``rows``. An existing row's geometry is rewritten only when
        it changed: each rewrite costs an R*Tree update (a few hundred microseconds),
        and most central edits touch attributes only."""
        if not rows:
            return
        names = ", ".join(qi(c.name) for c in info.columns)
        marks = ", ".join(_value_sql(info, c) for c in info.columns)
        geom = info.geometry.column if info.geometry else None
        plain = [c.name for c in info.columns if c.name not in info.pk and c.name != geom]
        conflict = ", ".join(qi(p) for p in info.pk)
        action = ("DO UPDATE SET " + ", ".join(f"{qi(n)} = excluded.{qi(n)}" for n in plain)
                  if plain else "DO NOTHING")
        self.conn.executemany(
            f"INSERT INTO {_table(info)} ({names}) VALUES ({marks}) "
            f"ON CONFLICT ({conflict}) {action}",
            [[r.get(c.name) for c in info.columns] for r in rows])
        if geom:
            g = qi(geom)
            where = " AND ".join(f"{qi(p)} = ?" for p in info.pk)
            self.conn.executemany(
                f"UPDATE {_table(info)} SET {g} = GeomFromWKB(?, {int(info.geometry.srid)}) "
                f"WHERE {where} AND AsBinary({g}) IS NOT ?",
                [[r.get(geom), *(r[p] for p in info.pk), r.get(geom)] for r in rows])

    def existing_keys(self, info: TableInfo, keys: list[tuple]) -> set[tuple]:
        """Which of ``keys`` have a row locally (one query for a single-column key)."""
        if len(info.pk) != 1:
            return set(self.rows_by_key(info, keys))
        pk = qi(info.pk[0])
        found = set()
        for start in range(0, len(keys), 5000):
            chunk = json.dumps([k[0] for k in keys[start:start + 5000]])
            found.update((r[0],) for r in self.conn.execute(
                f"SELECT {pk} FROM {_table(info)} WHERE {pk} IN "
                "(SELECT value FROM json_each(?))", (chunk,)))
        return found

    def delete_rows(self, info: TableInfo, keys: list[tuple]) -> None:
        if keys:
            where = " AND ".join(f"{qi(p)} = ?" for p in info.pk)
            self.conn.executemany(f"DELETE FROM {_table(info)} WHERE {where}",
                                  [list(k) for k in keys])

    def rows_by_key(self, info: TableInfo, keys: Iterable[tuple]) -> dict[tuple, dict]:
        names = info.column_names
        exprs = ", ".join(f"AsBinary({qi(c.name)})" if c.kind == "geometry" else qi(c.name)
                          for c in info.columns)
        where = " AND ".join(f"{qi(p)} = ?" for p in info.pk)
        sql = f"SELECT {exprs} FROM {_table(info)} WHERE {where}"
        out = {}
        for key in keys:
            row = self.conn.execute(sql, list(key)).fetchone()
            if row is not None:
                out[key] = dict(zip(names, row))
        return out

    # --- captured edits -----------------------------------------------------------------

    def pending(self, table: str, states: tuple[str, ...] = ("pending",)) -> list[dict]:
        """Captured edits of ``table``: id, key, op, base (JSON text), version, state."""
        marks = ", ".join("?" * len(states))
        cur = self.conn.execute(
            "SELECT id, pk_json, op, base_json, version, state FROM tf_local_changes "
            f"WHERE table_name = ? AND state IN ({marks}) ORDER BY id", (table, *states))
        return [{"id": i, "pk": tuple(json.loads(pk)), "pk_json": pk, "op": op,
                 "base_json": base, "version": v, "state": st}
                for i, pk, op, base, v, st in cur]

    def pending_keys(self, table: str) -> set[tuple]:
        """Keys with any captured edit (pending or in conflict)."""
        cur = self.conn.execute("SELECT pk_json FROM tf_local_changes WHERE table_name = ?",
                                (table,))
        return {tuple(json.loads(r[0])) for r in cur}

    def entry(self, table: str, key: tuple) -> Optional[dict]:
        """The captured edit of one row (any state), or None."""
        row = self.conn.execute(
            "SELECT id, op, base_json, version, state FROM tf_local_changes "
            "WHERE table_name = ? AND pk_json = ?", (table, rows.pk_json(key))).fetchone()
        if row is None:
            return None
        return {"id": row[0], "pk": key, "op": row[1], "base_json": row[2],
                "version": row[3], "state": row[4]}

    def put_entry(self, table: str, key: tuple, op: str, base_json: Optional[str],
                  state: str = "pending") -> None:
        """Make the row's captured edit exactly this (an edit the engine rebased)."""
        self.conn.execute(
            "INSERT INTO tf_local_changes (table_name, pk_json, op, base_json, state, "
            "changed_at) VALUES (?, ?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) "
            "ON CONFLICT (table_name, pk_json) DO UPDATE SET op = excluded.op, "
            "base_json = excluded.base_json, state = excluded.state, version = version + 1",
            (table, rows.pk_json(key), op, base_json, state))

    def delete_entry(self, entry_id: int) -> None:
        self.conn.execute("DELETE FROM tf_local_changes WHERE id = ?", (entry_id,))

    def set_entry_state(self, entry_id: int, state: str) -> None:
        self.conn.execute("UPDATE tf_local_changes SET state = ? WHERE id = ?",
                          (state, entry_id))

    # --- push batches in flight (see the migration l0004) ---------------------------------

    def begin_batch(self, batch_id: str) -> None:
        """Record, before its central transaction, that a push batch may commit."""
        with self.writing():
            self.conn.execute("INSERT INTO tf_push_inflight (batch_id, started_at) "
                              "VALUES (?, ?)", (batch_id, utc_now()))

    def end_batch(self, batch_id: str) -> None:
        """Inside the settle's transaction: the batch is settled (or never committed)."""
        self.conn.execute("DELETE FROM tf_push_inflight WHERE batch_id = ?", (batch_id,))

    def batches_in_flight(self) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "SELECT batch_id FROM tf_push_inflight ORDER BY started_at, batch_id")]

    def drop_change(self, table: str, key: tuple) -> None:
        self.conn.execute("DELETE FROM tf_local_changes WHERE table_name = ? AND pk_json = ?",
                          (table, rows.pk_json(key)))

    def mark_conflicted(self, entry_id: int) -> None:
        self.conn.execute("UPDATE tf_local_changes SET state = 'conflict' WHERE id = ?",
                          (entry_id,))

    def record_conflict(self, info: TableInfo, key: tuple, columns: list[str],
                        base: Optional[dict], local: Optional[dict], central: Optional[dict],
                        resolution: Optional[str] = None, kind: str = "conflict",
                        message: Optional[str] = None) -> int:
        now = utc_now()
        cur = self.conn.execute(
            "INSERT INTO tf_conflicts (table_name, pk_json, columns_json, base_json, "
            "local_json, central_json, detected_at, resolved_at, resolution, kind, message) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (info.name, rows.pk_json(key), json.dumps(columns),
             rows.encode_base(info, base), rows.encode_base(info, local),
             rows.encode_base(info, central), now, now if resolution else None, resolution,
             kind, message))
        return int(cur.lastrowid)

    def record_rejected(self, info: TableInfo, key: tuple, message: str,
                        base: Optional[dict], local: Optional[dict],
                        central: Optional[dict]) -> None:
        """Central refused this row: one open record per row, with the latest message."""
        cur = self.conn.execute(
            "UPDATE tf_conflicts SET message = ?, local_json = ?, central_json = ?, "
            "detected_at = ? WHERE table_name = ? AND pk_json = ? AND kind = 'rejected' "
            "AND resolved_at IS NULL",
            (message, rows.encode_base(info, local), rows.encode_base(info, central),
             utc_now(), info.name, rows.pk_json(key)))
        if not cur.rowcount:
            self.record_conflict(info, key, [], base, local, central, kind="rejected",
                                 message=message)

    def settle_rejected(self, table: str, key: tuple, resolution: str = "accepted") -> None:
        """The row went through (or was given up): its open refusal is settled."""
        self.conn.execute(
            "UPDATE tf_conflicts SET resolved_at = ?, resolution = ? WHERE table_name = ? "
            "AND pk_json = ? AND kind = 'rejected' AND resolved_at IS NULL",
            (utc_now(), resolution, table, rows.pk_json(key)))

    def resolve_conflict(self, conflict_id: int, resolution: str) -> None:
        self.conn.execute("UPDATE tf_conflicts SET resolved_at = ?, resolution = ? WHERE id = ?",
                          (utc_now(), resolution, conflict_id))

    # --- checkpoint and keys ------------------------------------------------------------

    def meta(self, key: str) -> Optional[str]:
        row = self.conn.execute("SELECT value FROM tf_meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: Optional[str]) -> None:
        if value is None:
            self.conn.execute("DELETE FROM tf_meta WHERE key = ?", (key,))
        else:
            self.conn.execute("INSERT INTO tf_meta (key, value) VALUES (?, ?) ON CONFLICT (key) "
                              "DO UPDATE SET value = excluded.value", (key, value))

    def keys_left(self, table: str) -> Optional[int]:
        row = self.conn.execute("SELECT last_key - next_key + 1 FROM tf_key_alloc "
                                "WHERE table_name = ?", (table,)).fetchone()
        return None if row is None else int(row[0])

    def set_key_block(self, table: str, first: int, last: int) -> None:
        self.conn.execute(
            "INSERT INTO tf_key_alloc (table_name, next_key, last_key) VALUES (?, ?, ?) "
            "ON CONFLICT (table_name) DO UPDATE SET next_key = excluded.next_key, "
            "last_key = excluded.last_key", (table, first, last))

    def _exists(self, name: str) -> bool:
        return bool(self.conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()[0])

    def read_rows(self, info: TableInfo) -> Iterator[tuple]:
        exprs = [f"AsBinary({qi(c.name)})" if c.kind == "geometry" else qi(c.name)
                 for c in info.columns]
        cur = self.conn.execute(f"SELECT {', '.join(exprs)} FROM {_table(info)}")
        while True:
            batch = cur.fetchmany(BATCH)
            if not batch:
                return
            yield from batch

    def count(self, info: TableInfo) -> int:
        return int(self.conn.execute(f"SELECT count(*) FROM {_table(info)}").fetchone()[0])

    # --- sync runs ----------------------------------------------------------------------

    def start_run(self, trigger: str) -> int:
        cur = self.conn.execute(
            "INSERT INTO tf_sync_runs (started_at, result, trigger) VALUES (?, 'running', ?)",
            (utc_now(), trigger))
        return int(cur.lastrowid)

    def finish_run(self, run_id: int, result: str, *, pulled: int = 0, pushed: int = 0,
                   conflicts: int = 0, error: Optional[str] = None) -> None:
        self.conn.execute(
            "UPDATE tf_sync_runs SET finished_at = ?, result = ?, pulled = ?, pushed = ?, "
            "conflicts = ?, error = ? WHERE id = ?",
            (utc_now(), result, pulled, pushed, conflicts, error, run_id))

    def recent_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        cur = self.conn.execute(
            "SELECT id, started_at, finished_at, result, trigger, pulled, pushed, conflicts, "
            "error FROM tf_sync_runs ORDER BY id DESC LIMIT ?", (int(limit),))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    def last_run(self, result: Optional[str] = None) -> Optional[dict[str, Any]]:
        where = "WHERE result = ?" if result else "WHERE result != 'running'"
        cur = self.conn.execute(
            "SELECT id, started_at, finished_at, result, trigger, pulled, pushed, conflicts, "
            f"error FROM tf_sync_runs {where} ORDER BY id DESC LIMIT 1",
            (result,) if result else ())
        row = cur.fetchone()
        return dict(zip([d[0] for d in cur.description], row)) if row else None

    # --- conflicts ----------------------------------------------------------------------

    def conflicts(self, include_resolved: bool = False,
                  conflict_id: Optional[int] = None) -> list[dict[str, Any]]:
        """Conflicts and rejected rows. An open one shows the local row as it is now
        (an edit made after detection included), which is what a resolution applies to."""
        where, args = ("WHERE 1 = 1", []) if include_resolved else (
            "WHERE resolved_at IS NULL", [])
        if conflict_id is not None:
            where, args = where + " AND id = ?", [conflict_id]
        cur = self.conn.execute(
            "SELECT id, kind, table_name, pk_json, columns_json, base_json, local_json, "
            "central_json, detected_at, resolved_at, resolution, message FROM tf_conflicts "
            f"{where} ORDER BY id", args)
        infos = {i.name: i for i in self.tables()}
        out = []
        for (cid, kind, table, pk, cols, base, loc, cen, detected, resolved, resolution,
             message) in cur.fetchall():
            info = infos.get(table)
            if resolved is None and info is not None:
                now = self.rows_by_key(info, [tuple(json.loads(pk))])
                loc = rows.encode_base(info, next(iter(now.values()), None))
            item = {
                "id": cid, "kind": kind, "table": table, "pk": json.loads(pk),
                "columns": json.loads(cols),
                "base": rows.for_display(info, base), "local": rows.for_display(info, loc),
                "central": rows.for_display(info, cen),
                "detected_at": detected, "resolved_at": resolved, "resolution": resolution,
            }
            if kind == "rejected":
                item["message"] = message
            out.append(item)
        return out

    def conflict_record(self, conflict_id: int) -> dict[str, Any]:
        """One conflict as stored (rows in their stored JSON form), for a resolution."""
        row = self.conn.execute(
            "SELECT id, kind, table_name, pk_json, columns_json, base_json, local_json, "
            "central_json, resolved_at, resolution FROM tf_conflicts WHERE id = ?",
            (conflict_id,)).fetchone()
        if row is None:
            raise NotFound(f"There is no conflict with id {conflict_id}.")
        keys = ("id", "kind", "table", "pk_json", "columns_json", "base_json", "local_json",
                "central_json", "resolved_at", "resolution")
        return dict(zip(keys, row))

    def pending_count(self, table: Optional[str] = None) -> int:
        """Local edits captured and not yet pushed (conflicted ones excluded)."""
        sql = "SELECT count(*) FROM tf_local_changes WHERE state = 'pending'"
        args: tuple = ()
        if table is not None:
            sql, args = sql + " AND table_name = ?", (table,)
        return int(self.conn.execute(sql, args).fetchone()[0])

    def open_conflict_count(self) -> int:
        """Open conflicts (rejected rows are counted by :meth:`rejected_count`)."""
        return int(self.conn.execute(
            "SELECT count(*) FROM tf_conflicts WHERE resolved_at IS NULL "
            "AND kind = 'conflict'").fetchone()[0])

    def rejected_count(self) -> int:
        """Rows central refused, waiting for a fix or a decision."""
        return int(self.conn.execute(
            "SELECT count(*) FROM tf_conflicts WHERE resolved_at IS NULL "
            "AND kind = 'rejected'").fetchone()[0])

    def conflict(self, conflict_id: int) -> dict[str, Any]:
        found = self.conflicts(include_resolved=True, conflict_id=conflict_id)
        if not found:
            raise NotFound(f"There is no conflict with id {conflict_id}.")
        return found[0]


def _batched(rows: Iterable[tuple], progress: Optional[Callable[[int], None]]):
    n = 0
    for row in rows:
        yield row  # executemany inserts it before asking for the next one
        n += 1
        if n == 1:
            faults.point("pull.mid_bulk_copy")
        if progress and n % BATCH == 0:
            progress(n)
    if progress:
        progress(n)


def _create_table_sql(info: TableInfo) -> str:
    defs = []
    single_int_pk = len(info.pk) == 1 and any(
        c.name == info.pk[0] and c.kind == "integer" for c in info.columns)
    for c in info.columns:
        if info.geometry and c.name == info.geometry.column:
            continue  # added by AddGeometryColumn
        decl = spatialite.KIND_DECL.get(c.kind, "TEXT")
        if single_int_pk and c.name == info.pk[0]:
            defs.append(f"{qi(c.name)} INTEGER PRIMARY KEY NOT NULL")
            continue
        defs.append(f"{qi(c.name)} {decl}" + ("" if c.nullable else " NOT NULL"))
    if not single_int_pk:
        defs.append(f"PRIMARY KEY ({', '.join(qi(p) for p in info.pk)})")
    return f"CREATE TABLE {_table(info)} ({', '.join(defs)})"


def local_name(name: str) -> str:
    """The table's name in the local copy: SpatiaLite refuses quote characters in the
    names of geometry tables, so they become underscores there."""
    return name.replace('"', "_").replace("'", "_")


def _table(info: TableInfo) -> str:
    return qi(local_name(info.name))


def _value_sql(info: TableInfo, col) -> str:
    return f"GeomFromWKB(?, {int(info.geometry.srid)})" if col.kind == "geometry" else "?"


def _insert_sql(info: TableInfo) -> str:
    names = ", ".join(qi(c.name) for c in info.columns)
    marks = ", ".join(_value_sql(info, c) for c in info.columns)
    return f"INSERT INTO {_table(info)} ({names}) VALUES ({marks})"
