"""The local SpatiaLite copy that QGIS opens and edits, plus the agent's bookkeeping."""

from __future__ import annotations

import json
import logging
import math
import shutil
import sqlite3
import time
import uuid
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Union

from terrafusion_agent import faults
from terrafusion_agent.errors import (
    LocalBusy,
    LocalDamaged,
    LocalUnavailable,
    NotFound,
    TerraFusionError,
)
from terrafusion_agent.sql import quote_ident as qi
from terrafusion_agent.stores import bulk, capture, rows, spatialite
from terrafusion_agent.stores.base import Batch, Column, LeafSource, TableInfo
from terrafusion_agent.stores.rows import EXACT_TABLE, exact_sql, local_decimal, pk_json_sql
from terrafusion_agent.timeutil import seconds_between, utc_now

log = logging.getLogger("terrafusion.local")
BATCH = 5000
#: rows a local cursor fetches at a time when iterated
ITER_CHUNK = 512
_RUN_COLUMNS = ("id, started_at, finished_at, result, trigger, pulled, pushed, conflicts, "
                "error")
#: local meta: per synced table, when a pull last brought it up to date (and with rows)
_PULLS_META = "table_pulls"
#: how many of the newest runs a new run looks through for ones a killed process left
_ABANDONED_WINDOW = 20


class LocalStore:
    """The local copy. Open with :meth:`open`; it migrates its bookkeeping on first use."""

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path = path
        self.conn = conn

    @classmethod
    def open(cls, path: Path, *, migrate: bool = True,
             busy_timeout: float = spatialite.BUSY_TIMEOUT_MS / 1000) -> LocalStore:
        """Open (creating it if needed) the local copy; ``busy_timeout`` is how many
        seconds a write waits for another program's write lock before giving up."""
        path = Path(path)
        try:
            conn = spatialite.connect(path, create=True, what="local copy",
                                      busy_timeout=busy_timeout, factory=LocalConnection)
        except LocalUnavailable:
            raise
        except TerraFusionError as exc:
            raise LocalUnavailable(str(exc)) from None
        if migrate:
            from terrafusion_agent import migrate as migrations

            try:
                if not migrations.is_current("local", conn):
                    migrations.upgrade_local(path)
            except BaseException as exc:
                conn.close()
                # Alembic works through SQLAlchemy, which wraps SQLite's error
                cause = getattr(exc, "orig", None)
                if isinstance(cause, sqlite3.Error):
                    raise local_error(path, cause, busy_timeout=busy_timeout) from exc
                raise
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

    def interrupt(self) -> None:
        """Stop the statement running on another thread (SQLite allows it from any)."""
        self.conn.interrupt()

    def __enter__(self) -> LocalStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

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
        with self._transaction():
            self.conn.execute("UPDATE tf_apply_guard SET active = 1 WHERE id = 1")
            yield
            self.conn.execute("UPDATE tf_apply_guard SET active = 0 WHERE id = 1")

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            yield
            c.execute("COMMIT")
        except BaseException:
            # After a full disk or an I/O error SQLite has already rolled back: a ROLLBACK
            # then fails, and its error must not replace the one that says what happened.
            if c.in_transaction:
                try:
                    c.execute("ROLLBACK")
                except (sqlite3.Error, TerraFusionError) as exc:
                    log.warning("rolling back the local copy %s failed too: %s",
                                self.path, exc)
            raise

    def check_damage(self) -> None:
        """Raise LocalDamaged when SQLite's quick check finds the file damaged.

        It reads every page (about 40 ms for 100,000 parcels with a warm cache), so it
        is for moments when something already went wrong, not for every health query.
        """
        problems = [r[0] for r in self.conn.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            raise local_error(self.path, "database disk image is malformed: "
                              + "; ".join(str(p) for p in problems))

    def replace_table(self, info: TableInfo, rows: Optional[Iterable[tuple]] = None,
                      progress: Optional[Callable[[int], None]] = None,
                      sql_batches: Optional[Iterable[Batch]] = None,
                      rtree_leaves: Optional[LeafSource] = None) -> int:
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
        c.execute(f"DELETE FROM {EXACT_TABLE} WHERE table_name = ?", (info.name,))
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
                          rtree_leaves, progress,
                          lambda column, values: self._load_exact(info, column, values))
        else:
            digits: list[tuple] = []
            if _decimal_indexes(info):
                rows = _split_decimals(info, rows or (), digits)
            c.executemany(_insert_sql(info), _batched(rows or (), progress))
            self._store_exact(info, digits)
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

    def rewrite_bases(self, old: TableInfo, new: TableInfo) -> None:
        """The base rows of captured edits, recorded by the triggers of table layout
        ``old``, in the form ``new`` reads (a column whose kind changed reads them
        differently: a double's 17 digits are another decimal than the double)."""
        cur = self.conn.execute("SELECT id, base_json FROM tf_local_changes "
                                "WHERE table_name = ? AND base_json IS NOT NULL", (new.name,))
        self.conn.executemany(
            "UPDATE tf_local_changes SET base_json = ? WHERE id = ?",
            [(rows.encode_base(new, rows.decode_base(old, base)), i) for i, base in cur])

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
        values = [tuple(r.get(c.name) for c in info.columns) for r in rows]
        digits: list[tuple] = []
        if _decimal_indexes(info):
            values = list(_split_decimals(info, values, digits))
        self.conn.executemany(
            f"INSERT INTO {_table(info)} ({names}) VALUES ({marks}) "
            f"ON CONFLICT ({conflict}) {action}", values)
        if geom:
            g = qi(geom)
            where = " AND ".join(f"{qi(p)} = ?" for p in info.pk)
            self.conn.executemany(
                f"UPDATE {_table(info)} SET {g} = GeomFromWKB(?, {int(info.srid)}) "
                f"WHERE {where} AND AsBinary({g}) IS NOT ?",
                [[r.get(geom), *(r[p] for p in info.pk), r.get(geom)] for r in rows])
        if _decimal_indexes(info):
            self._forget_exact(info, [tuple(r[p] for p in info.pk) for r in rows])
            self._store_exact(info, digits)

    def existing_keys(self, info: TableInfo, keys: list[tuple]) -> set[tuple]:
        """Which of ``keys`` have a row locally (one query for a single-column key)."""
        if len(info.pk) != 1:
            return set(self.rows_by_key(info, keys))
        pk = qi(info.pk[0])
        found: set[tuple] = set()
        for start in range(0, len(keys), 5000):
            chunk = json.dumps([k[0] for k in keys[start:start + 5000]])
            found.update((r[0],) for r in self.conn.execute(
                f"SELECT {pk} FROM {_table(info)} WHERE {pk} IN "
                "(SELECT value FROM json_each(?))", (chunk,)))
        return found

    def delete_rows(self, info: TableInfo, keys: list[tuple]) -> None:
        if keys:
            if _decimal_indexes(info):
                self._forget_exact(info, keys)
            where = " AND ".join(f"{qi(p)} = ?" for p in info.pk)
            self.conn.executemany(f"DELETE FROM {_table(info)} WHERE {where}",
                                  [list(k) for k in keys])

    def rows_by_key(self, info: TableInfo, keys: Iterable[tuple]) -> dict[tuple, dict]:
        names = info.column_names
        select, params = _select_sql(info)
        decimals = _decimal_indexes(info)
        keys = list(keys)
        out = {}
        if len(keys) > 1 and all(_json_key(k) for k in keys):
            # one statement per BATCH keys: a mass push reads a hundred thousand rows
            on = " AND ".join(f"t.{qi(p)} = json_extract(k.value, '$[{i}]')"
                              for i, p in enumerate(info.pk))
            table = f" FROM {_table(info)} t"
            assert select.endswith(table)
            sql = (f"{select[:-len(table)]}, k.key FROM json_each(?) AS k "
                   f"JOIN {_table(info)} t ON {on}")
            for start in range(0, len(keys), BATCH):
                chunk = keys[start:start + BATCH]
                for row in self.conn.execute(sql, [*params, json.dumps(chunk)]):
                    out[chunk[row[-1]]] = dict(zip(names, _with_exact(decimals, row[:-1])))
            return out
        where = " AND ".join(f"t.{qi(p)} = ?" for p in info.pk)
        sql = f"{select} WHERE {where}"
        for key in keys:
            row = self.conn.execute(sql, [*params, *key]).fetchone()
            if row is not None:
                out[key] = dict(zip(names, _with_exact(decimals, row)))
        return out

    def geometry_from_wkt(self, wkt: str, srid: int) -> Optional[tuple[bytes, str, str]]:
        """(ISO WKB, OGC type name, dimensions such as "XY") of a geometry written as WKT,
        read by SpatiaLite as the local copy stores geometries; None when it is no WKT
        SpatiaLite can read (an EMPTY geometry included: SpatiaLite stores it as NULL)."""
        row = self.conn.execute(
            "SELECT AsBinary(g), GeometryType(g), CoordDimension(g) "
            "FROM (SELECT GeomFromText(?, ?) AS g)", (wkt, int(srid))).fetchone()
        if row is None or row[0] is None:
            return None
        return bytes(row[0]), str(row[1]).split(" ")[0], str(row[2])

    # --- an analyst's edit (outside writing()) -------------------------------------------

    def edit_row(self, info: TableInfo, key: tuple, row: dict) -> dict[str, Any]:
        """Make the row with ``key`` hold ``row``'s values (wire form; columns ``row``
        lacks keep theirs), bringing it back when it is gone, in one transaction.

        This is an edit as QGIS makes one, not a write of the agent: it runs outside the
        apply guard, so the capture triggers record it like any edit of the analyst's,
        and the next sync pushes and reconciles it. Only the columns whose value differs
        are written. Returns ``{"op": "insert" | "update" | None, "columns": [...]}``:
        None and no columns when the row holds those values already.
        """
        target = {**{k: v for k, v in row.items() if k in info.column_names},
                  **dict(zip(info.pk, key))}
        where = " AND ".join(f"{qi(p)} = ?" for p in info.pk)
        with self._transaction():
            current = self.rows_by_key(info, [key]).get(key)
            if current is None:
                columns = [col for col in info.columns if col.name in target]
                op: Optional[str] = "insert"
            else:
                columns = [col for col in info.columns if col.name in target
                           and col.name not in info.pk
                           and not rows.same(info, col.name, current, target)]
                op = "update" if columns else None
            values: list[Any] = []
            digits: list[tuple] = []
            for col in columns:
                value = target[col.name]
                if col.kind == "decimal":
                    value, text = local_decimal(value)
                    if text is not None:
                        digits.append((col.name, text, key))
                values.append(value)
            if op == "insert":
                self.conn.execute(
                    f"INSERT INTO {_table(info)} ({', '.join(qi(x.name) for x in columns)}) "
                    f"VALUES ({', '.join(_value_sql(info, x) for x in columns)})", values)
            elif op == "update":
                sets = ", ".join(f"{qi(x.name)} = {_value_sql(info, x)}" for x in columns)
                self.conn.execute(f"UPDATE {_table(info)} SET {sets} WHERE {where}",
                                  [*values, *key])
            decimals = [col.name for col in columns if col.kind == "decimal"]
            if decimals:
                # only after the write: its trigger reads the old digits into the base
                self._forget_exact(info, [key], decimals)
                self._store_exact(info, digits)
        return {"op": op, "columns": [col.name for col in columns]}

    # --- exact decimals (see stores/rows.py) --------------------------------------------

    def _store_exact(self, info: TableInfo, digits: list[tuple]) -> None:
        """Keep ``digits`` ((column, exact digits, key) of rows already written) beside
        the doubles their columns now hold."""
        by_column: dict[str, list] = {}
        for column, text, key in digits:
            by_column.setdefault(column, []).append((info.name, column, text, *key))
        where = " AND ".join(f"t.{qi(p)} = ?" for p in info.pk)
        for column, params in by_column.items():
            self.conn.executemany(
                f"INSERT OR REPLACE INTO {EXACT_TABLE} (table_name, pk_json, column_name, "
                f"value, approx) SELECT ?, {pk_json_sql(info, 't')}, ?, ?, t.{qi(column)} "
                f"FROM {_table(info)} t WHERE {where}", params)

    def _load_exact(self, info: TableInfo, column: str, values: str) -> None:
        """The bulk form of :meth:`_store_exact`: ``values`` is the text of SQLite
        tuples (key values..., exact digits) of rows already loaded."""
        on = " AND ".join(f"t.{qi(p)} = v.column{i + 1}" for i, p in enumerate(info.pk))
        self.conn.execute(
            f"INSERT OR REPLACE INTO {EXACT_TABLE} (table_name, pk_json, column_name, value, "
            f"approx) SELECT ?, {pk_json_sql(info, 't')}, ?, v.column{len(info.pk) + 1}, "
            f"t.{qi(column)} FROM (VALUES {values}) AS v JOIN {_table(info)} t ON {on}",
            (info.name, column))

    def _forget_exact(self, info: TableInfo, keys: list[tuple],
                      columns: Optional[list[str]] = None) -> None:
        """Drop the exact digits kept for the rows with ``keys`` (while they exist), of
        every column or of ``columns``."""
        where = " AND ".join(f"t.{qi(p)} = ?" for p in info.pk)
        sql = (f"DELETE FROM {EXACT_TABLE} WHERE table_name = ? AND pk_json = "
               f"(SELECT {pk_json_sql(info, 't')} FROM {_table(info)} t WHERE {where})")
        if columns is None:
            self.conn.executemany(sql, [(info.name, *key) for key in keys])
        else:
            self.conn.executemany(sql + " AND column_name = ?",
                                  [(info.name, *key, name) for key in keys for name in columns])

    # --- captured edits -----------------------------------------------------------------

    def pending(self, table: str, states: tuple[str, ...] = ("pending",)) -> list[dict]:
        """Captured edits of ``table``: id, key, op, base (JSON text), version, state and
        when the row was last edited."""
        marks = ", ".join("?" * len(states))
        cur = self.conn.execute(
            "SELECT id, pk_json, op, base_json, version, state, changed_at "
            f"FROM tf_local_changes WHERE table_name = ? AND state IN ({marks}) ORDER BY id",
            (table, *states))
        return [{"id": i, "pk": rows.key_of(pk), "pk_json": pk, "op": op,
                 "base_json": base, "version": v, "state": st, "changed_at": at}
                for i, pk, op, base, v, st, at in cur]

    def has_pending(self, table: str, states: tuple[str, ...] = ("pending",)) -> bool:
        """Whether ``table`` has a captured edit in one of ``states``."""
        marks = ", ".join("?" * len(states))
        return self.conn.execute(
            f"SELECT EXISTS (SELECT 1 FROM tf_local_changes WHERE table_name = ? AND state "
            f"IN ({marks}))", (table, *states)).fetchone()[0] == 1

    def pending_keys(self, table: str) -> set[tuple]:
        """Keys with any captured edit (pending or in conflict)."""
        cur = self.conn.execute("SELECT pk_json FROM tf_local_changes WHERE table_name = ?",
                                (table,))
        return {rows.key_of(r[0]) for r in cur}

    def entry(self, table: str, key: tuple) -> Optional[dict]:
        """The captured edit of one row (any state), or None."""
        row = self.conn.execute(
            "SELECT id, op, base_json, version, state, changed_at FROM tf_local_changes "
            "WHERE table_name = ? AND pk_json = ?", (table, rows.pk_json(key))).fetchone()
        if row is None:
            return None
        return {"id": row[0], "pk": key, "op": row[1], "base_json": row[2],
                "version": row[3], "state": row[4], "changed_at": row[5]}

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

    def delete_entries(self, entry_ids: list[int]) -> None:
        for start in range(0, len(entry_ids), BATCH):
            self.conn.execute("DELETE FROM tf_local_changes WHERE id IN "
                              "(SELECT value FROM json_each(?))",
                              (json.dumps(entry_ids[start:start + BATCH]),))

    def entries(self, table: str) -> dict[tuple, dict]:
        """Every captured edit of ``table`` (any state), by key, as :meth:`entry`."""
        cur = self.conn.execute(
            "SELECT id, pk_json, op, base_json, version, state, changed_at "
            "FROM tf_local_changes WHERE table_name = ?", (table,))
        out = {}
        for i, pk, op, base, v, st, at in cur:
            key = rows.key_of(pk)
            out[key] = {"id": i, "pk": key, "op": op, "base_json": base, "version": v,
                        "state": st, "changed_at": at}
        return out

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
        assert cur.lastrowid is not None  # an INSERT sets it
        return cur.lastrowid

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

    def open_conflicts_by_row(self) -> dict[tuple[str, tuple], dict[str, Any]]:
        """(table, key) -> id, kind and message of the row's open conflict or refusal."""
        return {(t, rows.key_of(pk)): {"id": i, "kind": kind, "message": message}
                for i, t, pk, kind, message in self.conn.execute(
                    "SELECT id, table_name, pk_json, kind, message FROM tf_conflicts "
                    "WHERE resolved_at IS NULL ORDER BY id")}

    def open_rejected_keys(self) -> set[tuple[str, tuple]]:
        """(table, key) of every row with an open refusal."""
        return {(t, rows.key_of(pk)) for t, pk in self.conn.execute(
            "SELECT table_name, pk_json FROM tf_conflicts WHERE kind = 'rejected' "
            "AND resolved_at IS NULL")}

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
        select, params = _select_sql(info)
        decimals = _decimal_indexes(info)
        cur = self.conn.execute(select, params)
        while True:
            batch = cur.fetchmany(BATCH)
            if not batch:
                return
            if decimals:
                batch = [_with_exact(decimals, row) for row in batch]
            yield from batch

    def count(self, info: TableInfo) -> int:
        return int(self.conn.execute(f"SELECT count(*) FROM {_table(info)}").fetchone()[0])

    # --- per table: what the status page shows -----------------------------------------

    def record_pulls(self, pulled: dict[str, int]) -> None:
        """Note, in the pull's own transaction, that each table in ``pulled`` was brought
        up to central's snapshot now, with that many rows."""
        now = utc_now()
        pulls = self._pulls()
        for name, n in pulled.items():
            entry = pulls.get(name) or {}
            entry["at"] = now
            if n:
                entry["rows_at"], entry["rows"] = now, n
            pulls[name] = entry
        self.set_meta(_PULLS_META, json.dumps(pulls, sort_keys=True))

    def _pulls(self) -> dict[str, dict[str, Any]]:
        try:
            pulls = json.loads(self.meta(_PULLS_META) or "{}")
        except ValueError:
            return {}
        return pulls if isinstance(pulls, dict) else {}

    def table_figures(self, names: Iterable[str]) -> list[dict[str, Any]]:
        """Per synced table: ``rows`` in the copy (None before its first copy),
        ``pulled_at`` (the last pull that brought it up to central's snapshot, rows or
        none), ``rows_pulled_at`` and ``rows_pulled`` (the last pull that brought rows)
        and ``copied_at`` (its last full copy)."""
        pulls = self._pulls()
        copied = dict(self.conn.execute(
            "SELECT table_name, last_full_sync_at FROM tf_tables").fetchall())
        figures = []
        for name in names:
            try:
                info: Optional[TableInfo] = self.table_info(name)
            except NotFound:
                info = None
            found = pulls.get(name)
            pull: dict[str, Any] = found if isinstance(found, dict) else {}
            figures.append({
                "table": name, "rows": self.count(info) if info is not None else None,
                "pulled_at": pull.get("at"), "rows_pulled_at": pull.get("rows_at"),
                "rows_pulled": pull.get("rows"), "copied_at": copied.get(name)})
        return figures

    # --- sync runs ----------------------------------------------------------------------

    def start_run(self, trigger: str, started_at: Optional[str] = None) -> int:
        cur = self.conn.execute(
            "INSERT INTO tf_sync_runs (started_at, result, trigger) VALUES (?, 'running', ?)",
            (started_at or utc_now(), trigger))
        assert cur.lastrowid is not None  # an INSERT sets it
        return cur.lastrowid

    def finish_run(self, run_id: int, result: str, *, pulled: int = 0, pushed: int = 0,
                   conflicts: int = 0, error: Optional[str] = None,
                   finished_at: Optional[str] = None) -> None:
        self.conn.execute(
            "UPDATE tf_sync_runs SET finished_at = ?, result = ?, pulled = ?, pushed = ?, "
            "conflicts = ?, error = ? WHERE id = ?",
            (finished_at or utc_now(), result, pulled, pushed, conflicts, error, run_id))

    def close_abandoned_runs(self, error: str, keep: int) -> None:
        """Mark runs still ``running`` among the newest ones, except ``keep``, as failed.

        Only the caller's own run can be under way (the local lock admits one syncing
        process per copy): any other is what a killed process left behind. Looking at
        the newest few is enough, as the next run after such a process closes them.
        """
        self.conn.execute(
            "UPDATE tf_sync_runs SET result = 'failed', finished_at = ?, error = ? "
            "WHERE result = 'running' AND id != ? AND id IN "
            f"(SELECT id FROM tf_sync_runs ORDER BY id DESC LIMIT {_ABANDONED_WINDOW})",
            (utc_now(), error, keep))

    def recent_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        cur = self.conn.execute(
            f"SELECT {_RUN_COLUMNS} FROM tf_sync_runs ORDER BY id DESC LIMIT ?", (int(limit),))
        names = [d[0] for d in cur.description]
        return [_run(names, row) for row in cur.fetchall()]

    def run(self, run_id: int) -> Optional[dict[str, Any]]:
        """One recorded run (None if there is no such id)."""
        cur = self.conn.execute(f"SELECT {_RUN_COLUMNS} FROM tf_sync_runs WHERE id = ?",
                                (int(run_id),))
        row = cur.fetchone()
        return _run([d[0] for d in cur.description], row) if row else None

    def last_run(self, result: Optional[str] = None) -> Optional[dict[str, Any]]:
        where = "WHERE result = ?" if result else "WHERE result != 'running'"
        cur = self.conn.execute(
            f"SELECT {_RUN_COLUMNS} FROM tf_sync_runs {where} ORDER BY id DESC LIMIT 1",
            (result,) if result else ())
        row = cur.fetchone()
        return _run([d[0] for d in cur.description], row) if row else None

    def sync_outcome(self) -> dict[str, Any]:
        """How this copy's syncs have gone: ``last_success_at`` (when the newest
        successful run finished), ``last_result`` (of the newest finished run),
        ``consecutive_failures`` (failed runs since that success; a cancelled run is not
        a failure and does not end a streak) and ``failures_before_last_success`` (the
        streak that success ended)."""
        success = self.conn.execute(
            "SELECT id, finished_at FROM tf_sync_runs WHERE result = 'success' "
            "ORDER BY id DESC LIMIT 1").fetchone()
        last_id, last_at = success if success else (0, None)
        before = self.conn.execute(
            "SELECT id FROM tf_sync_runs WHERE result = 'success' AND id < ? "
            "ORDER BY id DESC LIMIT 1", (last_id,)).fetchone()
        last_result = self.conn.execute(
            "SELECT result FROM tf_sync_runs WHERE result != 'running' "
            "ORDER BY id DESC LIMIT 1").fetchone()

        def failures(after: int, until: Optional[int]) -> int:
            bound = "" if until is None else " AND id < ?"
            return int(self.conn.execute(
                f"SELECT count(*) FROM tf_sync_runs WHERE result = 'failed' AND id > ?{bound}",
                (after,) if until is None else (after, until)).fetchone()[0])

        return {"last_success_at": last_at,
                "last_result": last_result[0] if last_result else None,
                "consecutive_failures": failures(last_id, None),
                "failures_before_last_success": (failures(before[0] if before else 0, last_id)
                                                 if success else 0)}

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
                now = self.rows_by_key(info, [rows.key_of(pk)])
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


# --- SQLite's errors in one sentence ------------------------------------------------------

#: SQLite's primary result codes for faults of the file rather than of a statement
_DAMAGED = {11, 26}         # SQLITE_CORRUPT, SQLITE_NOTADB
_BUSY = {5, 6}              # SQLITE_BUSY, SQLITE_LOCKED
_FULL = {13}                # SQLITE_FULL
_READONLY = {3, 8}          # SQLITE_PERM, SQLITE_READONLY
_CANTOPEN = {14}            # SQLITE_CANTOPEN
_IOERR = {10}               # SQLITE_IOERR
_FAULTS = _DAMAGED | _BUSY | _FULL | _READONLY | _CANTOPEN | _IOERR
#: the same faults by the words SQLite uses, for messages relayed by others (GDAL)
_WORDS = (
    ("malformed", 11), ("not a database", 26), ("database is locked", 5),
    ("database table is locked", 6), ("disk is full", 13), ("readonly database", 8),
    ("unable to open database", 14), ("disk i/o error", 10),
)

SQLiteFault = Union[sqlite3.Error, str]


def _code(error: SQLiteFault) -> Optional[int]:
    code = getattr(error, "sqlite_errorcode", None)  # Python 3.11 and later
    if code is not None:
        return int(code) & 0xFF  # extended codes carry the primary one in the low byte
    text = str(error).lower()
    return next((c for words, c in _WORDS if words in text), None)


def is_fault(error: SQLiteFault) -> bool:
    """Whether SQLite's ``error`` is about the file itself (damaged, full, locked, not
    writable) rather than about a statement (a bad filter, a missing table)."""
    return _code(error) in _FAULTS


def local_error(path: Path, error: SQLiteFault, *,
                busy_timeout: Optional[float] = None) -> LocalUnavailable:
    """The one sentence for an SQLite error met on the local copy at ``path``: what is
    wrong with the file and what to do about it. ``error`` may also be SQLite's message
    as another library relays it."""
    code = _code(error)
    detail = str(error).strip().rstrip(".") or error.__class__.__name__
    if code in _DAMAGED:
        return LocalDamaged(
            f"The local copy {path} is damaged ({detail}); run 'terrafusion-agent recover' "
            "to rebuild it from central, keeping the pending edits it still holds.")
    if code in _BUSY:
        waited = f" for more than {busy_timeout:g} s" if busy_timeout else ""
        return LocalBusy(
            f"The local copy {path} is busy: another program has held its write lock"
            f"{waited} (QGIS may be saving edits); try again when it has finished.")
    if code in _FULL or (code in _IOERR and _disk_full(path)):
        return LocalUnavailable(
            f"The disk holding the local copy {path} is full; free some space, then try "
            "again.")
    if code in _READONLY:
        return LocalUnavailable(
            f"The local copy {path} cannot be written ({detail}); check that you may write "
            "to it and to its folder.")
    if code in _CANTOPEN:
        return LocalUnavailable(
            f"The local copy {path} cannot be opened ({detail}); check that it and its "
            "folder exist and that you may write to both.")
    if code in _IOERR:
        return LocalUnavailable(
            f"The local copy {path} cannot be read or written ({detail}); check the disk.")
    return LocalUnavailable(f"The local copy {path} failed: {detail}.")


def _disk_full(path: Path) -> bool:
    """SQLite reports some writes that found no space as I/O errors."""
    try:
        return shutil.disk_usage(path.parent).free < 64 * 1024
    except OSError:
        return False


class LocalConnection(sqlite3.Connection):
    """The local copy's connection. A fault of the file (see :func:`is_fault`) leaves any
    statement as one sentence naming the file, so the sync, exports and health checks
    say the same thing without each catching SQLite's errors; other errors (a bad filter,
    a missing table) stay SQLite's, for the callers that expect them."""

    def __init__(self, database: Union[str, Path], *args: Any, **kwargs: Any):
        super().__init__(database, *args, **kwargs)
        self.path = Path(database)
        self.busy_timeout: Optional[float] = kwargs.get("timeout")

    def cursor(self, factory: Any = None) -> Any:
        return super().cursor(factory or LocalCursor)

    def execute(self, *args: Any) -> Any:
        return self.cursor().execute(*args)

    def executemany(self, *args: Any) -> Any:
        return self.cursor().executemany(*args)

    def executescript(self, *args: Any) -> Any:
        return self.cursor().executescript(*args)


def _in_words(method: Callable) -> Callable:
    """``method`` of a cursor, raising faults of the local copy as its sentence."""
    def worded(self: sqlite3.Cursor, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            conn = self.connection
            if not is_fault(exc) or not isinstance(conn, LocalConnection):
                raise
            raise local_error(conn.path, exc, busy_timeout=conn.busy_timeout) from exc

    worded.__name__ = method.__name__
    return worded


class LocalCursor(sqlite3.Cursor):
    """A cursor of :class:`LocalConnection`. SQLite reads pages while rows are fetched,
    so a damaged page can surface in a fetch as well as in ``execute``."""

    execute = _in_words(sqlite3.Cursor.execute)
    executemany = _in_words(sqlite3.Cursor.executemany)
    executescript = _in_words(sqlite3.Cursor.executescript)
    fetchone = _in_words(sqlite3.Cursor.fetchone)
    fetchmany = _in_words(sqlite3.Cursor.fetchmany)
    fetchall = _in_words(sqlite3.Cursor.fetchall)
    __next__ = _in_words(sqlite3.Cursor.__next__)

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]  # rows, not the cursor
        # rows a chunk at a time: a guarded call per row costs more than reading it
        while True:
            chunk = self.fetchmany(ITER_CHUNK)
            if not chunk:
                return
            yield from chunk


def _run(names: list[str], row: tuple) -> dict[str, Any]:
    """A recorded sync run, with its one duration (see ``timeutil.seconds_between``)."""
    run = dict(zip(names, row))
    run["duration_seconds"] = seconds_between(run["started_at"], run["finished_at"])
    return run


def _batched(rows: Iterable[tuple], progress: Optional[Callable[[int], None]]
             ) -> Iterator[tuple]:
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


def _json_key(key: tuple) -> bool:
    """Whether JSON carries ``key``'s values to SQLite as they are bound (no bytes, no
    infinity or NaN)."""
    return all(v is None or type(v) is str or (type(v) is int and -2**63 <= v < 2**63)
               or (type(v) is float and math.isfinite(v)) for v in key)


def _decimal_indexes(info: TableInfo) -> list[int]:
    return [i for i, c in enumerate(info.columns) if c.kind == "decimal"]


def _select_sql(info: TableInfo) -> tuple[str, list[str]]:
    """SELECT of the rows of ``info`` (alias ``t``) in wire form, then the exact digits
    of each decimal column (see :func:`_with_exact`), and its parameters."""
    exprs = [f"AsBinary(t.{qi(c.name)})" if c.kind == "geometry" else f"t.{qi(c.name)}"
             for c in info.columns]
    params: list[str] = []
    for i in _decimal_indexes(info):
        exprs.append(exact_sql(info, info.columns[i].name, "t", ("?", "?")))
        params += [info.name, info.columns[i].name]
    return f"SELECT {', '.join(exprs)} FROM {_table(info)} t", params


def _with_exact(decimals: list[int], row: tuple) -> tuple:
    """A row of :func:`_select_sql` with each decimal's exact digits in its place."""
    if not decimals:
        return row
    values = list(row[:len(row) - len(decimals)])
    for i, digits in zip(decimals, row[len(values):]):
        if digits is not None:
            values[i] = Decimal(digits)
    return tuple(values)


def _split_decimals(info: TableInfo, rows: Iterable[tuple], digits: list[tuple]
                    ) -> Iterator[tuple]:
    """``rows`` with each decimal as the double its column stores; the digits a double
    does not hold go to ``digits`` as (column, exact digits, key)."""
    decimals = _decimal_indexes(info)
    pk = [info.column_names.index(p) for p in info.pk]
    for row in rows:
        values = list(row)
        for i in decimals:
            values[i], text = local_decimal(values[i])
            if text is not None:
                digits.append((info.columns[i].name, text, tuple(row[k] for k in pk)))
        yield tuple(values)


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


def _value_sql(info: TableInfo, col: Column) -> str:
    return f"GeomFromWKB(?, {int(info.srid)})" if col.kind == "geometry" else "?"


def _insert_sql(info: TableInfo) -> str:
    names = ", ".join(qi(c.name) for c in info.columns)
    marks = ", ".join(_value_sql(info, c) for c in info.columns)
    return f"INSERT INTO {_table(info)} ({names}) VALUES ({marks})"
