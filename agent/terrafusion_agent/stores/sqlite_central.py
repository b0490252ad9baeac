"""The embedded central database: one SpatiaLite file (demos and single-seat offices)."""

from __future__ import annotations

import json
import sqlite3
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence, Union

from terrafusion_agent import faults
from terrafusion_agent.errors import (
    CentralUnavailable,
    MissingTable,
    NotFound,
    TableError,
    TerraFusionError,
)
from terrafusion_agent.sql import quote_ident as qi
from terrafusion_agent.sql import quote_literal as ql
from terrafusion_agent.stores import spatialite
from terrafusion_agent.stores.base import (
    BOOKKEEPING_TABLES,
    BOOKKEEPING_VIEWS,
    CentralStore,
    Column,
    GeometryInfo,
    ReadSession,
    TableInfo,
    TableSpec,
    WriteSession,
    topological,
)
from terrafusion_agent.stores.fleet import (
    FLEET_COLUMNS,
    HEARTBEAT_FIGURES,
    NO_FLEET,
    fleet_row,
)
from terrafusion_agent.stores.history import (
    before_start,
    entry,
    iso,
    iso_text,
    os_identity,
    parse_instant,
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
            raise MissingTable(name, self.describe())
        return describe_table(self.conn, name)

    def has_bookkeeping(self) -> bool:
        return self.table_exists("tf_change_log")

    def bookkeeping_current(self) -> bool:
        return bool(self.conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'view' AND name = 'tf_fleet'"
        ).fetchone()[0])

    # --- change tracking ----------------------------------------------------------------

    def install_tracking(self, info: TableInfo) -> None:
        """Create (or refresh) the change-capture triggers of one table, history
        included (idempotent); a table whose history was not complete (no capture of
        it, or one made for other columns) starts it now."""
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            install_capture(c, info)
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def _installed(self) -> list[tuple[str, str, str]]:
        """(kind, name, table) of the capture triggers on the county's tables, then the
        bookkeeping's views and tables (its own tables' triggers go with them)."""
        rows = self.conn.execute(
            "SELECT type, name, tbl_name FROM sqlite_master WHERE type IN "
            "('trigger', 'view', 'table') AND name LIKE 'tf\\_%' ESCAPE '\\' "
            "ORDER BY type = 'table', type = 'view', tbl_name, name").fetchall()
        ours = set(BOOKKEEPING_TABLES + BOOKKEEPING_VIEWS)
        return [(kind, name, table) for kind, name, table in rows
                if (kind == "trigger" and name.startswith("tf_capture_") and table not in ours)
                or (kind != "trigger" and name in ours)]

    def installed_objects(self) -> list[tuple[str, str]]:
        return [(kind, f"{name} on {table}" if kind == "trigger" else name)
                for kind, name, table in self._installed()]

    def uninstall(self) -> list[tuple[str, str]]:
        c = self.conn
        try:
            c.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise CentralUnavailable(f"The central database {self.path} cannot be changed "
                                     f"now, so nothing was removed: {exc}.") from None
        try:
            removed = self.installed_objects()
            for kind, name, _ in self._installed():
                c.execute(f"DROP {kind.upper()} {qi(name)}")
            c.execute("COMMIT")
        except BaseException as exc:
            c.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise TerraFusionError(
                    f"The central database {self.path} refused to remove TerraFusion's "
                    f"bookkeeping, so nothing was removed: {exc}.") from None
            raise
        return removed

    def refresh_tracking(self, info: TableInfo) -> None:
        """Remake the triggers of a table whose columns changed since they were made: a
        trigger names each column, so one added since is missing from the history until
        then (which therefore starts again now)."""
        if self.tracking_installed(info.name) and not _capture_current(self.conn, info):
            self.install_tracking(info)

    def tracking_installed(self, name: str) -> bool:
        """Whether the table's four capture triggers are there and write the history
        (those of 0.2.0 write only the change log)."""
        names = _trigger_names(name)
        found = self.conn.execute(
            f"SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name IN "
            f"({', '.join('?' * len(names))}) AND sql LIKE '%INSERT INTO tf_history %'",
            names).fetchone()[0]
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

    # --- audit history ------------------------------------------------------------------

    def _key_json(self, info: TableInfo, key: tuple) -> str:
        """The key as the capture's json_array writes it."""
        if len(key) != len(info.pk):
            raise TerraFusionError(f"Table {info.name} is keyed by {len(info.pk)} column(s) "
                                   f"({', '.join(info.pk)}), not {len(key)}.")
        kinds = {c.name: c.kind for c in info.columns}
        try:
            values = [_typed(kinds[p], v) for p, v in zip(info.pk, key)]
        except ValueError:
            raise TerraFusionError(f"The key {json.dumps(list(key), default=str)} does not "
                                   f"fit table {info.name}, keyed by "
                                   f"{', '.join(info.pk)}.") from None
        return self.conn.execute(
            f"SELECT json_array({', '.join('?' * len(values))})", values).fetchone()[0]

    def history(self, info: TableInfo, key: tuple, since: Optional[str] = None,
                until: Optional[str] = None) -> list[dict]:
        """The recorded changes of one row, newest first (see CentralStore.history)."""
        low = _stored_time(parse_instant(since, "start time"), up=True) if since else None
        high = _stored_time(parse_instant(until, "end time"), up=False) if until else None
        pk = self._key_json(info, key)
        entries = self.conn.execute(
            "SELECT h.id, h.op, x.committed_at, x.role, x.application, x.agent_id, "
            "x.os_user, x.host FROM tf_history h JOIN tf_history_tx x ON x.id = h.tx "
            "WHERE h.table_name = ? AND h.pk = ? AND (? IS NULL OR x.committed_at >= ?) "
            "AND (? IS NULL OR x.committed_at <= ?) ORDER BY x.committed_at DESC, h.id DESC",
            (info.name, pk, low, low, high, high)).fetchall()
        geometry = info.geometry.column if info.geometry else None
        ops = {e[0]: e[1] for e in entries}
        values: dict[int, tuple[list, list]] = {e[0]: ([], []) for e in entries}
        for start in range(0, len(entries), 500):
            ids = [e[0] for e in entries[start:start + 500]]
            rows = self.conn.execute(
                "SELECT entry, col, old_value IS NULL, new_value IS NULL, "
                "CASE WHEN col = ? THEN AsText(old_value) ELSE old_value END, "
                "CASE WHEN col = ? THEN AsText(new_value) ELSE new_value END "
                f"FROM tf_history_values WHERE entry IN ({', '.join('?' * len(ids))})",
                (geometry, geometry, *ids))
            for entry_id, col, old_null, new_null, old, new in rows:
                if ops[entry_id] != "I":
                    values[entry_id][0].append((col, None if old_null else old))
                if ops[entry_id] != "D":
                    values[entry_id][1].append((col, None if new_null else new))
        return [entry(info, entry_id=entry_id, op=op, key=json.loads(pk),
                      committed_at=iso(parse_instant(committed_at)), role=role,
                      application=application, agent_id=agent_id, os_user=os_user,
                      host=host, old=values[entry_id][0], new=values[entry_id][1],
                      value=_json_value)
                for entry_id, op, committed_at, role, application, agent_id, os_user, host
                in entries]

    def history_start(self, table: str) -> Optional[str]:
        row = self.conn.execute("SELECT value FROM tf_settings WHERE key = ?",
                                ("history_start:" + table,)).fetchone()
        return iso_text(row[0]) if row else None

    def _past_sql(self, info: TableInfo, entries: str, only_key: str = "") -> str:
        """SQL of the table's rows as they stood before ``entries`` (a query of the
        entries to undo: id, pk, op, committed_at), in the form of :meth:`read_rows`.

        A row with no entry is as it is now; one whose first entry to undo is an insert
        did not exist; any other row existed, each column holding the old value of the
        first entry to undo that changed it (a delete holds them all), else its value
        now."""
        table = qi(info.name)
        now_key = "json_array(" + ", ".join(f"t.{qi(p)}" for p in info.pk) + ")"
        join = " AND ".join(f"t.{qi(p)} = json_extract(f.pk, '$[{i}]')"
                            for i, p in enumerate(info.pk))
        pivot = ", ".join(f"max(col = {ql(c.name)}) AS has{i}, "
                          f"max(CASE WHEN col = {ql(c.name)} THEN old_value END) AS val{i}"
                          for i, c in enumerate(info.columns))
        then = ", ".join(f"CASE WHEN v.has{i} THEN v.val{i} ELSE t.{qi(c.name)} END"
                         for i, c in enumerate(info.columns))
        return (
            f"WITH e AS ({entries}), "
            "h AS (SELECT id, pk, op, row_number() OVER (PARTITION BY pk "
            "ORDER BY committed_at, id) AS rn FROM e), "
            "f AS (SELECT pk, op FROM h WHERE rn = 1), "
            "s AS (SELECT pk, col, old_value FROM (SELECT h.pk, v.col, v.old_value, "
            "row_number() OVER (PARTITION BY h.pk, v.col ORDER BY h.rn) AS k FROM h "
            "JOIN tf_history_values v ON v.entry = h.id WHERE h.op <> 'I') WHERE k = 1), "
            f"v AS (SELECT pk, {pivot} FROM s GROUP BY pk) "
            f"SELECT {self.select_list(info, 'r')} FROM ("
            f"SELECT {', '.join(f't.{qi(c)}' for c in info.column_names)} FROM {table} t "
            f"WHERE {now_key} NOT IN (SELECT pk FROM f){only_key} UNION ALL "
            f"SELECT {then} FROM f LEFT JOIN v ON v.pk = f.pk LEFT JOIN {table} t ON {join} "
            "WHERE f.op <> 'I') r")

    def rows_as_of(self, info: TableInfo, at: str) -> Iterator[tuple]:
        """Every row as it stood at commit time ``at``: the current rows with every
        entry committed after ``at`` undone."""
        when = parse_instant(at)
        refusal = before_start(info, self.history_start(info.name), when)
        if refusal:
            raise TerraFusionError(refusal)
        sql = self._past_sql(
            info, "SELECT h.id, h.pk, h.op, x.committed_at FROM tf_history h "
                  "JOIN tf_history_tx x ON x.id = h.tx WHERE h.table_name = :t "
                  "AND x.committed_at > :at")
        return self._stream(sql, {"t": info.name, "at": _stored_time(when, up=False)})

    def _stream(self, sql: str, params: dict[str, Any]) -> Iterator[tuple]:
        """The rows of ``sql`` inside one read transaction."""
        self.conn.execute("BEGIN")
        try:
            cur = self.conn.execute(sql, params)
            while True:
                batch = cur.fetchmany(5000)
                if not batch:
                    return
                yield from batch
        finally:
            self.conn.execute("COMMIT")

    def row_version(self, info: TableInfo, key: tuple, entry_id: int) -> Optional[dict]:
        """The row as it stood right after history entry ``entry_id``: the current row
        with the key's later entries undone; None after its delete."""
        params: dict[str, Any] = {"t": info.name, "pk": self._key_json(info, key),
                                  "id": int(entry_id)}
        of_key = ("FROM tf_history h JOIN tf_history_tx x ON x.id = h.tx "
                  "WHERE h.table_name = :t AND h.pk = :pk")
        self.conn.execute("BEGIN")
        try:
            found = self.conn.execute(f"SELECT h.op, x.committed_at {of_key} AND h.id = :id",
                                      params).fetchone()
            if found is None:
                raise NotFound(f"Table {info.name} has no history entry {entry_id} for the "
                               f"key {params['pk']}.")
            op, params["at"] = found
            if op == "D":
                return None
            only_key = "".join(f" AND t.{qi(p)} = json_extract(:pk, '$[{i}]')"
                               for i, p in enumerate(info.pk))
            row = self.conn.execute(self._past_sql(
                info, f"SELECT h.id, h.pk, h.op, x.committed_at {of_key} "
                      "AND (x.committed_at > :at OR (x.committed_at = :at AND h.id > :id))",
                only_key), params).fetchone()
        finally:
            self.conn.execute("COMMIT")
        return None if row is None else dict(zip(info.column_names, row))

    def purge_history(self, retention_days: int) -> int:
        """Drop the history of transactions committed more than ``retention_days`` ago;
        each table's history then starts at the newest commit dropped from it."""
        c = self.conn
        old = ("(SELECT id FROM tf_history_tx WHERE committed_at < "
               "strftime('%Y-%m-%dT%H:%M:%fZ', 'now', :ago))")
        ago = {"ago": f"-{int(retention_days)} days"}
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute(
                "INSERT INTO tf_settings (key, value) SELECT 'history_start:' || h.table_name, "
                "max(x.committed_at) FROM tf_history h JOIN tf_history_tx x ON x.id = h.tx "
                f"WHERE x.id IN {old} GROUP BY h.table_name ON CONFLICT (key) DO UPDATE "
                "SET value = max(value, excluded.value)", ago)
            c.execute("DELETE FROM tf_history_values WHERE entry IN (SELECT id FROM tf_history "
                      f"WHERE tx IN {old})", ago)
            gone = c.execute(f"DELETE FROM tf_history WHERE tx IN {old}", ago).rowcount
            c.execute(f"DELETE FROM tf_history_tx WHERE id IN {old}", ago)
            c.execute("COMMIT")
            return int(gone)
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def heartbeat(self, agent: dict) -> None:
        """Record (or refresh) this agent in ``tf_agents``."""
        self._execute(
            "INSERT INTO tf_agents (agent_id, hostname, local_path, version, registered_at, "
            f"last_seen_at, {', '.join(HEARTBEAT_FIGURES)}) VALUES (:agent_id, :hostname, "
            f":local_path, :version, :now, :now, "
            f"{', '.join(':' + k for k in HEARTBEAT_FIGURES)}) "
            "ON CONFLICT (agent_id) DO UPDATE SET hostname = excluded.hostname, "
            "local_path = excluded.local_path, version = excluded.version, "
            "last_seen_at = excluded.last_seen_at, "
            + ", ".join(f"{k} = excluded.{k}" for k in HEARTBEAT_FIGURES),
            {**dict.fromkeys(HEARTBEAT_FIGURES), **agent})

    def fleet(self) -> list[dict[str, Any]]:
        """Every agent's row of the ``tf_fleet`` view, stale ones first."""
        if not self.conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'view' "
                                 "AND name = 'tf_fleet'").fetchone()[0]:
            raise TerraFusionError(NO_FLEET.format(self.describe()))
        rows = self.conn.execute(f"SELECT {', '.join(FLEET_COLUMNS)} FROM tf_fleet "
                                 "ORDER BY stale DESC, hostname, agent_id").fetchall()
        return [fleet_row(dict(zip(FLEET_COLUMNS, row))) for row in rows]

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
        os_user, host = os_identity()
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute("UPDATE tf_origin SET origin = ?, os_user = ?, host = ? WHERE id = 1",
                      (agent_id, os_user, host))
            yield SqliteWriteSession(self, agent_id)
            # the last write before the commit: SQLite has no later moment to stamp
            c.execute(f"UPDATE tf_history_tx SET committed_at = {_NOW} "
                      "WHERE id = (SELECT history_tx FROM tf_origin WHERE id = 1)")
            c.execute("UPDATE tf_origin SET origin = NULL, os_user = NULL, host = NULL "
                      "WHERE id = 1")
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


def describe_table(conn: sqlite3.Connection, name: str) -> TableInfo:
    """The layout of an existing table (TableError when it has no primary key)."""
    rows = conn.execute(f"PRAGMA table_info({qi(name)})").fetchall()
    geoms = spatialite.geometry_columns(conn, name)
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


def install_capture(conn: sqlite3.Connection, info: TableInfo) -> None:
    """(Re)create the capture triggers of one table in the caller's transaction,
    recording the columns they name; a table whose history was not complete (no capture
    of it, or one made for other columns) starts its history now."""
    complete = _capture_current(conn, info)
    for statement in capture_statements(info):
        conn.execute(statement)
    conn.execute("INSERT INTO tf_settings (key, value) VALUES ('capture_columns:' || ?, ?) "
                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                 (info.name, json.dumps(info.column_names)))
    if not complete:
        conn.execute(HISTORY_STARTS, (info.name,))


def _capture_current(conn: sqlite3.Connection, info: TableInfo) -> bool:
    """Whether the table's triggers write the history and name exactly its columns."""
    names = _trigger_names(info.name)
    triggers = conn.execute(
        f"SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name IN "
        f"({', '.join('?' * len(names))}) AND sql LIKE '%INSERT INTO tf_history %'",
        names).fetchone()[0]
    row = conn.execute("SELECT value FROM tf_settings WHERE key = 'capture_columns:' || ?",
                       (info.name,)).fetchone()
    return triggers == len(names) and row is not None and json.loads(row[0]) == list(
        info.column_names)


#: the time SQLite stamps, in milliseconds: how the history's times are stored here
_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
#: a table's history starts now (its capture was just installed)
HISTORY_STARTS = (f"INSERT INTO tf_settings (key, value) VALUES ('history_start:' || ?, {_NOW}) "
                  "ON CONFLICT (key) DO UPDATE SET value = excluded.value")


def _stored_time(value: datetime, up: bool) -> str:
    """``value`` as the history's times are stored here (milliseconds), rounded up or
    down to the millisecond, so comparing texts compares the instants."""
    ms = value.microsecond // 1000 + (1 if up and value.microsecond % 1000 else 0)
    value = value.replace(microsecond=0) + timedelta(milliseconds=ms)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _typed(kind: str, value: Any) -> Any:
    """A key value as the table stores it (a key may come in as text, from a URL)."""
    if isinstance(value, str) and kind == "integer":
        return int(value)
    if isinstance(value, str) and kind in ("real", "decimal"):
        return float(value)
    return value


def _json_value(col: Column, value: Any) -> Any:
    """A value as SQLite stored it, in the JSON form of the history (a geometry
    arrives as WKT already)."""
    if value is None:
        return None
    if col.kind == "boolean":
        return bool(value)
    if col.kind == "decimal":
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def capture_statements(info: TableInfo, history: bool = True) -> list[str]:
    """The statements (re)creating the change capture of one table: four row triggers
    that append to the change log and, unless ``history`` is False (the triggers of
    0.2.0, for a downgrade), to the history in the same statement.

    The history's transaction: an agent's push has its own (``tf_origin.history_tx``,
    made at its first change, stamped and forgotten before its commit); a change by
    another program joins the newest transaction of other programs made in the same
    statement, else starts one stamped with the statement's time."""
    t = ql(info.name)
    table = qi(info.name)
    new_pk = "json_array(" + ", ".join(f"NEW.{qi(p)}" for p in info.pk) + ")"
    old_pk = "json_array(" + ", ".join(f"OLD.{qi(p)}" for p in info.pk) + ")"
    who = "(SELECT origin FROM tf_origin WHERE id = 1)"

    def log(pk: str, op: str) -> str:
        return (f"INSERT INTO tf_change_log (table_name, pk, op, origin) "
                f"VALUES ({t}, {pk}, '{op}', {who});")

    def changed(c: str) -> str:
        # typeof too: SQLite's comparison takes 1 and 1.0, or a text and a blob of the
        # same bytes, for the same value
        return (f"(OLD.{qi(c)} IS NOT NEW.{qi(c)} "
                f"OR typeof(OLD.{qi(c)}) <> typeof(NEW.{qi(c)}))")

    def begin(when: str = "1") -> str:
        if not history:
            return ""
        return (
            f"INSERT INTO tf_history_tx (committed_at, agent_id, os_user, host) "
            f"SELECT {_NOW}, origin, os_user, host FROM tf_origin WHERE id = 1 "
            f"AND history_tx IS NULL AND {when} AND (origin IS NOT NULL OR NOT EXISTS ("
            f"SELECT 1 FROM tf_history_tx x WHERE x.id = (SELECT max(id) FROM tf_history_tx) "
            f"AND x.agent_id IS NULL AND x.committed_at = {_NOW})); "
            f"UPDATE tf_origin SET history_tx = (SELECT max(id) FROM tf_history_tx) "
            f"WHERE id = 1 AND origin IS NOT NULL AND history_tx IS NULL AND {when};")

    tx = ("coalesce((SELECT history_tx FROM tf_origin WHERE id = 1), "
          "(SELECT max(id) FROM tf_history_tx))")
    last = "(SELECT max(id) FROM tf_history)"

    def whole(pk: str, op: str, side: str) -> str:
        if not history:
            return ""
        values = ", ".join(
            f"({last}, {ql(c)}, {side + '.' + qi(c) if op == 'D' else 'NULL'}, "
            f"{side + '.' + qi(c) if op == 'I' else 'NULL'})" for c in info.column_names)
        return (f"INSERT INTO tf_history (tx, table_name, pk, op) "
                f"VALUES ({tx}, {t}, {pk}, '{op}'); "
                f"INSERT INTO tf_history_values (entry, col, old_value, new_value) "
                f"VALUES {values};")

    def update() -> str:
        if not history:
            return ""
        anything = " OR ".join(changed(c) for c in info.column_names)
        return (begin(f"({anything})")
                + f"INSERT INTO tf_history (tx, table_name, pk, op) "
                  f"SELECT {tx}, {t}, {new_pk}, 'U' WHERE {anything}; "
                + "".join(f"INSERT INTO tf_history_values (entry, col, old_value, new_value) "
                          f"SELECT {last}, {ql(c)}, OLD.{qi(c)}, NEW.{qi(c)} "
                          f"WHERE {changed(c)}; " for c in info.column_names))

    ins, upd, updkey, dele = (qi(n) for n in _trigger_names(info.name))
    return [
        *(f"DROP TRIGGER IF EXISTS {qi(n)}" for n in _trigger_names(info.name)),
        f"CREATE TRIGGER {ins} AFTER INSERT ON {table} BEGIN {log(new_pk, 'I')} "
        f"{begin()} {whole(new_pk, 'I', 'NEW')} END",
        f"CREATE TRIGGER {upd} AFTER UPDATE ON {table} WHEN {old_pk} = {new_pk} BEGIN "
        f"{log(new_pk, 'U')} {update()} END",
        f"CREATE TRIGGER {updkey} AFTER UPDATE ON {table} WHEN {old_pk} <> {new_pk} BEGIN "
        f"{log(old_pk, 'D')} {log(new_pk, 'I')} {begin()} {whole(old_pk, 'D', 'OLD')} "
        f"{whole(new_pk, 'I', 'NEW')} END",
        f"CREATE TRIGGER {dele} AFTER DELETE ON {table} BEGIN {log(old_pk, 'D')} "
        f"{begin()} {whole(old_pk, 'D', 'OLD')} END",
    ]


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

    def changed_keys(self, checkpoint: str, agent_id: str,
                     tables: Optional[Sequence[str]] = None) -> dict[str, list[tuple]]:
        out: dict[str, list[tuple]] = {}
        rows = self.store.conn.execute(
            "SELECT table_name, pk FROM tf_change_log WHERE seq > ? "
            "GROUP BY table_name, pk HAVING sum(origin IS NOT ?) > 0",
            (int(checkpoint), agent_id))
        for table, pk in rows:
            if tables is None or table in tables:
                out.setdefault(table, []).append(tuple(json.loads(pk)))
        return out

    def change_counts(self, checkpoint: str, agent_id: str) -> dict[str, int]:
        return {table: int(n) for table, n in self.store.conn.execute(
            "SELECT table_name, sum(origin IS NOT ?) FROM tf_change_log WHERE seq > ? "
            "GROUP BY table_name", (agent_id, int(checkpoint))) if n}
