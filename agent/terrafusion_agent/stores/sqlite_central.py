"""The embedded central database: one SpatiaLite file (demos and single-seat offices)."""

from __future__ import annotations

import json
import sqlite3
import uuid
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence, Union

from terrafusion_agent import faults
from terrafusion_agent.errors import CentralUnavailable, TableError, TerraFusionError
from terrafusion_agent.sql import quote_ident as qi
from terrafusion_agent.sql import quote_literal as ql
from terrafusion_agent.stores import spatialite
from terrafusion_agent.stores.base import (
    CentralStore,
    Column,
    GeometryInfo,
    ReadSession,
    TableInfo,
    TableSpec,
    WriteSession,
    topological,
)
from terrafusion_agent.stores.rows import local_decimal


class SpatiaLiteCentral(CentralStore):
    """Central store in a SpatiaLite file. ``create`` allows making a new file (init)."""

    kind = "spatialite"
    driver_errors = (sqlite3.Error,)

    def __init__(self, path: str | Path, create: bool = False):
        self.path = Path(path)
        if not create and not self.path.exists():
            raise CentralUnavailable(
                f"The central database {self.path} does not exist; "
                "run 'terrafusion-agent init-central' first."
            )
        try:
            self.conn = spatialite.connect(self.path, create=create, what="central database")
        except TerraFusionError as exc:
            raise CentralUnavailable(str(exc)) from None
        # an agent settles its local edits on a push's commit: it must survive power loss
        self.conn.execute("PRAGMA synchronous = FULL")

    def describe(self) -> str:
        return f"sqlite:///{self.path}"

    def close(self) -> None:
        self.conn.close()

    def interrupt(self) -> None:
        self.conn.interrupt()  # SQLite allows it from any thread

    def table_exists(self, name: str) -> bool:
        return bool(self.conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()[0])

    def table_info(self, name: str) -> TableInfo:
        if not self.table_exists(name):
            raise TableError(
                f"Table {name} does not exist in the central database {self.describe()}."
            )
        rows = self.conn.execute(f"PRAGMA table_info({qi(name)})").fetchall()
        geoms = spatialite.geometry_columns(self.conn, name)
        geometry = None
        if geoms:
            gcol, srid, gtype, dims = geoms[0]
            # geometry_columns stores lower-case names; use the table's own spelling
            gcol = next((r[1] for r in rows if r[1].lower() == gcol.lower()), gcol)
            geometry = GeometryInfo(gcol, srid, gtype, dims)
        geom_names = {g[0].lower() for g in geoms}
        columns = []
        pk = []
        for _cid, cname, decl, notnull, _default, pkpos in rows:
            if geometry is not None and cname == geometry.column:
                kind = "geometry"
            elif cname.lower() in geom_names:
                kind = "blob"
            else:
                kind = spatialite.declared_kind(decl)
                if kind == "decimal" and pkpos:
                    kind = "real"  # the local copy finds a row by its key's double
            columns.append(Column(cname, kind, not notnull and not pkpos))
            if pkpos:
                pk.append((pkpos, cname))
        if not pk:
            raise TableError(
                f"Table {name} has no primary key; TerraFusion syncs only tables with one."
            )
        return TableInfo(name, tuple(columns), tuple(c for _, c in sorted(pk)), geometry)

    def has_bookkeeping(self) -> bool:
        return self.table_exists("tf_change_log")

    def bookkeeping_current(self) -> bool:
        return self.table_exists("tf_push_receipts")

    # --- change tracking ----------------------------------------------------------------

    def install_tracking(self, info: TableInfo) -> None:
        """Create (or refresh) the change-capture triggers of one table (idempotent)."""
        t = ql(info.name)
        table = qi(info.name)
        new_pk = "json_array(" + ", ".join(f"NEW.{qi(p)}" for p in info.pk) + ")"
        old_pk = "json_array(" + ", ".join(f"OLD.{qi(p)}" for p in info.pk) + ")"
        who = "(SELECT origin FROM tf_origin WHERE id = 1)"

        def log(pk: str, op: str) -> str:
            return (f"INSERT INTO tf_change_log (table_name, pk, op, origin) "
                    f"VALUES ({t}, {pk}, '{op}', {who});")

        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            for name in _trigger_names(info.name):
                c.execute(f"DROP TRIGGER IF EXISTS {qi(name)}")
            ins, upd, updkey, dele = (qi(n) for n in _trigger_names(info.name))
            c.execute(f"CREATE TRIGGER {ins} AFTER INSERT ON {table} BEGIN "
                      f"{log(new_pk, 'I')} END")
            c.execute(f"CREATE TRIGGER {upd} AFTER UPDATE ON {table} WHEN {old_pk} = {new_pk} "
                      f"BEGIN {log(new_pk, 'U')} END")
            c.execute(f"CREATE TRIGGER {updkey} AFTER UPDATE ON {table} "
                      f"WHEN {old_pk} <> {new_pk} BEGIN {log(old_pk, 'D')} {log(new_pk, 'I')} END")
            c.execute(f"CREATE TRIGGER {dele} AFTER DELETE ON {table} BEGIN "
                      f"{log(old_pk, 'D')} END")
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def tracking_installed(self, name: str) -> bool:
        names = _trigger_names(name)
        found = self.conn.execute(
            f"SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name IN "
            f"({', '.join('?' * len(names))})", names).fetchone()[0]
        return found == len(names)

    def central_id(self) -> str:
        self.conn.execute("INSERT OR IGNORE INTO tf_settings (key, value) "
                          "VALUES ('central_id', ?)", (str(uuid.uuid4()),))
        return self.conn.execute(
            "SELECT value FROM tf_settings WHERE key = 'central_id'").fetchone()[0]

    def purge_change_log(self, retention_days: int) -> int:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            row = c.execute(
                "SELECT count(*), max(seq) FROM tf_change_log WHERE changed_at < "
                "strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?)", (f"-{int(retention_days)} days",)
            ).fetchone()
            if row[0]:
                c.execute("DELETE FROM tf_change_log WHERE seq <= ?", (row[1],))
                c.execute("INSERT INTO tf_settings (key, value) VALUES ('purged_seq', ?) "
                          "ON CONFLICT (key) DO UPDATE SET value = max(CAST(value AS INTEGER), "
                          "CAST(excluded.value AS INTEGER))", (str(row[1]),))
                faults.point("purge.before_commit")
            c.execute("COMMIT")
            return int(row[0])
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def heartbeat(self, agent: dict) -> None:
        """Record (or refresh) this agent in ``tf_agents``."""
        self._execute(
            "INSERT INTO tf_agents (agent_id, hostname, local_path, version, registered_at, "
            "last_seen_at) VALUES (:agent_id, :hostname, :local_path, :version, :now, :now) "
            "ON CONFLICT (agent_id) DO UPDATE SET hostname = excluded.hostname, "
            "local_path = excluded.local_path, version = excluded.version, "
            "last_seen_at = excluded.last_seen_at", agent)

    @contextmanager
    def read_session(self) -> Iterator[SqliteReadSession]:
        """One read transaction: WAL gives it a stable snapshot."""
        self.conn.execute("BEGIN")
        try:
            yield SqliteReadSession(self)
        finally:
            self.conn.execute("COMMIT")

    @contextmanager
    def write_session(self, agent_id: str) -> Iterator[SqliteWriteSession]:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute("UPDATE tf_origin SET origin = ? WHERE id = 1", (agent_id,))
            yield SqliteWriteSession(self, agent_id)
            c.execute("UPDATE tf_origin SET origin = NULL WHERE id = 1")
            c.execute("COMMIT")
        except sqlite3.Error as exc:
            c.execute("ROLLBACK")
            raise TerraFusionError(f"The central database refused the push: {exc}.") from None
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def allocate_keys(self, info: TableInfo, agent_id: str) -> Optional[tuple[int, int]]:
        """A block of keys above everything this table and earlier blocks have used."""
        c = self.conn
        size = 1_000_000
        c.execute("BEGIN IMMEDIATE")
        try:
            top = c.execute(
                f"SELECT max(coalesce((SELECT max({qi(info.pk[0])}) FROM {qi(info.name)}), 0), "
                "coalesce((SELECT max(last_key) FROM tf_key_blocks WHERE table_name = ?), 0))",
                (info.name,)).fetchone()[0]
            first = max(int(top) + 1, 1 << 40)
            last = first + size - 1
            c.execute("INSERT INTO tf_key_blocks (table_name, agent_id, first_key, last_key) "
                      "VALUES (?, ?, ?, ?)", (info.name, agent_id, first, last))
            faults.point("keys.during_allocation")
            c.execute("COMMIT")
            return first, last
        except BaseException:
            c.execute("ROLLBACK")
            raise

    # --- push receipts ------------------------------------------------------------------

    def insert_receipt(self, agent_id: str, batch_id: str, parts: list[str]) -> None:
        self.conn.executemany(
            "INSERT INTO tf_push_receipts (agent_id, batch_id, part, outcomes) "
            "VALUES (?, ?, ?, ?)", [(agent_id, batch_id, i, t) for i, t in enumerate(parts)])

    def receipts(self, agent_id: str, batch_ids: list[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        rows = self.conn.execute(
            "SELECT batch_id, outcomes FROM tf_push_receipts WHERE agent_id = ? AND batch_id "
            "IN (SELECT value FROM json_each(?)) ORDER BY batch_id, part",
            (agent_id, json.dumps(list(batch_ids))))
        for batch_id, text in rows:
            out.setdefault(batch_id, []).append(text)
        return out

    def clear_receipts(self, agent_id: str) -> None:
        self._execute("DELETE FROM tf_push_receipts WHERE agent_id = ?", (agent_id,))

    def dependency_order(self, names: list[str]) -> list[str]:
        edges = []
        for name in names:
            for row in self.conn.execute("SELECT \"table\" FROM pragma_foreign_key_list(?)",
                                         (name,)):
                edges.append((name, row[0]))
        return topological(names, edges)

    # --- data ---------------------------------------------------------------------------

    def count(self, info: TableInfo) -> int:
        return int(self.conn.execute(f"SELECT count(*) FROM {qi(info.name)}").fetchone()[0])

    def select_list(self, info: TableInfo, alias: str = "") -> str:
        prefix = f"{alias}." if alias else ""
        return ", ".join(f"AsBinary({prefix}{qi(c.name)})" if c.kind == "geometry"
                         else f"{prefix}{qi(c.name)}" for c in info.columns)

    def read_rows(self, info: TableInfo) -> Iterator[tuple]:
        cur = self.conn.execute(f"SELECT {self.select_list(info)} FROM {qi(info.name)}")
        while True:
            batch = cur.fetchmany(5000)
            if not batch:
                return
            yield from batch

    def rows_by_key(self, info: TableInfo, keys: list[tuple], lock: bool = False
                    ) -> dict[tuple, dict]:
        """Current rows for ``keys``. ``lock`` needs nothing here: inside a write
        transaction SQLite already excludes every other writer."""
        names = info.column_names
        pk_idx = [names.index(p) for p in info.pk]
        join = " AND ".join(f"t.{qi(p)} = json_extract(k.value, '$[{i}]')"
                            for i, p in enumerate(info.pk))
        sql = (f"SELECT {self.select_list(info, 't')} FROM json_each(?) k "
               f"JOIN {qi(info.name)} t ON {join}")
        out: dict[tuple, dict] = {}
        for start in range(0, len(keys), 5000):
            chunk = keys[start:start + 5000]
            for row in self.conn.execute(sql, (json.dumps([list(k) for k in chunk]),)):
                out[tuple(row[i] for i in pk_idx)] = dict(zip(names, row))
        return out

    def _value_sql(self, info: TableInfo, col: Column) -> str:
        return f"GeomFromWKB(?, {int(info.srid)})" if col.kind == "geometry" else "?"

    @staticmethod
    def _value(col: Column, value: Any) -> Any:
        """A value as SQLite binds it: a Decimal (which it cannot bind) as the number it
        stores, an integer when it is one, else the nearest double or, when that would
        change it, the digits (a NUMERIC column then stores what it can)."""
        if col.kind != "decimal" or not isinstance(value, Decimal):
            return value
        double, digits = local_decimal(value)
        if digits is None:
            return double
        if value == value.to_integral_value() and -2**63 <= value < 2**63:
            return int(value)
        return digits

    def insert_rows(self, info: TableInfo, rows: list[dict]) -> None:
        cols = info.columns
        sql = (f"INSERT INTO {qi(info.name)} ({', '.join(qi(c.name) for c in cols)}) "
               f"VALUES ({', '.join(self._value_sql(info, c) for c in cols)})")
        self.conn.executemany(sql, [[self._value(c, r.get(c.name)) for c in cols]
                                    for r in rows])

    def update_rows(self, info: TableInfo, updates: list[tuple[tuple, dict]]) -> None:
        by_name = {c.name: c for c in info.columns}
        where = " AND ".join(f"{qi(p)} = ?" for p in info.pk)
        for key, values in updates:
            names = sorted(values)
            sets = ", ".join(f"{qi(n)} = {self._value_sql(info, by_name[n])}" for n in names)
            self.conn.execute(f"UPDATE {qi(info.name)} SET {sets} WHERE {where}",
                              [self._value(by_name[n], values[n]) for n in names]
                              + list(key))

    def delete_rows(self, info: TableInfo, keys: list[tuple]) -> None:
        where = " AND ".join(f"{qi(p)} = ?" for p in info.pk)
        self.conn.executemany(f"DELETE FROM {qi(info.name)} WHERE {where}",
                              [list(k) for k in keys])

    # --- setup --------------------------------------------------------------------------

    def create_tables(self, tables: Sequence[tuple[TableSpec, Iterable[tuple]]]) -> None:
        c = self.conn
        name = ""
        c.execute("BEGIN")
        try:
            for spec, rows in tables:
                name = spec.info.name
                self._create_table(spec, rows)
            c.execute("COMMIT")
        except sqlite3.Error as exc:
            if c.in_transaction:  # SQLite may have rolled back on its own (a full disk)
                c.execute("ROLLBACK")
            raise TerraFusionError(f"The central database {self.describe()} cannot create "
                                   f"table {name}: {exc}.") from None
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise

    def _create_table(self, spec: TableSpec, rows: Iterable[tuple]) -> None:
        info = spec.info
        g = info.geometry
        table = qi(info.name)
        rowid_key = len(info.pk) == 1 and any(
            c.name == info.pk[0] and c.kind == "integer" for c in info.columns)
        defs = []
        for col in info.columns:
            if g is not None and col.name == g.column:
                continue  # AddGeometryColumn adds it, last
            decl = f"{qi(col.name)} {_DECLARED[col.kind]}"
            if not col.nullable:
                decl += " NOT NULL"
            if rowid_key and col.name == info.pk[0]:
                decl += " PRIMARY KEY"  # the rowid itself: it numbers rows without a key
            defs.append(decl)
        if not rowid_key:
            defs.append(f"PRIMARY KEY ({_names(info.pk)})")
        defs += [f"UNIQUE ({_names(cols)})" for cols in spec.unique]
        defs += [f"CHECK ({qi(col)} IN ({', '.join(ql(v) for v in values)}))"
                 for col, values in spec.choices]
        c = self.conn
        c.execute(f"CREATE TABLE {table} ({', '.join(defs)})")
        if g is not None:
            added = c.execute("SELECT AddGeometryColumn(?, ?, ?, ?, ?)", (
                info.name, g.column, g.srid, g.geometry_type, g.dims)).fetchone()[0]
            if not added:
                raise TableError(f"Table {info.name}: SpatiaLite refused geometry column "
                                 f"{g.column} ({g.geometry_type} {g.dims}, EPSG:{g.srid}).")
        loaded = spec.loaded_columns
        c.executemany(f"INSERT INTO {table} ({_names(c.name for c in loaded)}) VALUES "
                      f"({', '.join(self._value_sql(info, col) for col in loaded)})",
                      _bindable(loaded, rows))
        # the spatial index from the loaded rows at once, not entry by entry
        if g is not None:
            c.execute("SELECT CreateSpatialIndex(?, ?)", (info.name, g.column))
        for cols in spec.indexes:
            c.execute(f"CREATE INDEX {qi('_'.join((info.name, *cols, 'idx')))} ON {table} "
                      f"({_names(cols)})")

    def _execute(self, sql: str, params: Union[Sequence[Any], Mapping[str, Any]] = ()
                 ) -> None:
        """Run one statement of this store's own, its errors in words."""
        try:
            self.conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise TerraFusionError(f"The central database refused a statement: {exc}.") from None


#: declared type of each kind; a decimal declared NUMERIC reads back as a decimal (the
#: local copy's DOUBLE is for QGIS, which reads only REAL, DOUBLE and FLOAT as numbers)
_DECLARED = {**spatialite.KIND_DECL, "decimal": "NUMERIC"}


def _names(names: Iterable[str]) -> str:
    return ", ".join(qi(n) for n in names)


def _bindable(columns: tuple[Column, ...], rows: Iterable[tuple]) -> Iterator[tuple]:
    """``rows`` as SQLite binds them: a Decimal (which it cannot bind) as the number it
    stores."""
    numbers = [i for i, c in enumerate(columns) if c.kind in ("real", "decimal")]
    for row in rows:
        if any(isinstance(row[i], Decimal) for i in numbers):
            values = list(row)
            for i in numbers:
                if isinstance(values[i], Decimal):
                    values[i] = (SpatiaLiteCentral._value(columns[i], values[i])
                                 if columns[i].kind == "decimal" else float(values[i]))
            row = tuple(values)
        yield row


def _trigger_names(table: str) -> list[str]:
    return [f"tf_capture_{k}_{table}" for k in ("ins", "upd", "updkey", "del")]


class SqliteWriteSession(WriteSession):
    store: SpatiaLiteCentral
    _savepoints = 0

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        c = self.store.conn
        SqliteWriteSession._savepoints += 1
        name = f"tf_sp{SqliteWriteSession._savepoints}"
        c.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            c.execute(f"ROLLBACK TO {name}")
            c.execute(f"RELEASE {name}")
            raise
        c.execute(f"RELEASE {name}")

    def refusal(self, exc: BaseException) -> Optional[str]:
        if isinstance(exc, sqlite3.IntegrityError):
            return str(exc)
        return None


class SqliteReadSession(ReadSession):
    """Reads of one pull inside one SQLite read transaction."""

    store: SpatiaLiteCentral

    def checkpoint(self) -> str:
        return str(self.store.conn.execute(
            "SELECT coalesce(max(seq), 0) FROM tf_change_log").fetchone()[0])

    def lost_since(self, checkpoint: str) -> bool:
        row = self.store.conn.execute(
            "SELECT value FROM tf_settings WHERE key = 'purged_seq'").fetchone()
        return row is not None and int(row[0]) > int(checkpoint)

    def changed_keys(self, checkpoint: str, agent_id: str) -> dict[str, list[tuple]]:
        out: dict[str, list[tuple]] = {}
        rows = self.store.conn.execute(
            "SELECT table_name, pk FROM tf_change_log WHERE seq > ? "
            "GROUP BY table_name, pk HAVING sum(origin IS NOT ?) > 0",
            (int(checkpoint), agent_id))
        for table, pk in rows:
            out.setdefault(table, []).append(tuple(json.loads(pk)))
        return out
