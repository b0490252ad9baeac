"""The central database on PostgreSQL + PostGIS."""

from __future__ import annotations

import json
import logging
import re
import uuid
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence, Union

import psycopg
from psycopg import sql as pgsql

from terrafusion_agent import faults
from terrafusion_agent.errors import (
    CentralUnavailable,
    MissingTable,
    NotFound,
    ReplicaUnusable,
    TableError,
    TerraFusionError,
)
from terrafusion_agent.redact import redact, redact_url
from terrafusion_agent.sql import quote_ident as qi
from terrafusion_agent.sql import quote_literal as ql
from terrafusion_agent.stores.base import (
    BOOKKEEPING_TABLES,
    BOOKKEEPING_VIEWS,
    Batch,
    CentralStore,
    Column,
    GeometryInfo,
    LeafSource,
    Poll,
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
from terrafusion_agent.stores.rows import to_decimal
from terrafusion_agent.stores.snapshots import below, contains, parse

log = logging.getLogger("terrafusion.central")

_KIND_BY_TYPE = {
    "int2": "integer", "int4": "integer", "int8": "integer",
    "float4": "real", "float8": "real", "numeric": "decimal",
    "bool": "boolean", "date": "date", "timestamp": "datetime", "timestamptz": "datetime",
    "bytea": "blob", "geometry": "geometry",
}
# how each kind is read: (select expression template, COPY binary type)
_READ = {
    "integer": ("{c}::int8", "int8"),
    "real": ("{c}::float8", "float8"),
    "decimal": ("{c}", "numeric"),
    "boolean": ("{c}", "bool"),
    "blob": ("{c}", "bytea"),
    "geometry": ("ST_AsBinary({c})", "bytea"),
}
_TEXT = ("{c}::text", "text")
#: significant digits a double keeps of every decimal (DBL_DIG): a decimal with at most
#: this many survives a round trip through the nearest double
_DOUBLE_DIGITS = 15
#: offline key blocks: where they start when the key has no sequence, and their size
_HIGH_KEYS = {"int8": (1 << 50, 1_000_000), "int4": (2_000_000_000, 10_000)}
_SEQUENCE_BLOCK = {"int8": 1_000_000, "int4": 10_000, "int2": 100}


_BASE_TYPES = ("GEOMETRY", "POINT", "LINESTRING", "POLYGON", "MULTIPOINT", "MULTILINESTRING",
               "MULTIPOLYGON", "GEOMETRYCOLLECTION")


#: the relation the newest central migration creates: its presence says the bookkeeping
#: has everything this agent reads and writes (see ``bookkeeping_current`` and ``poll``)
NEWEST_BOOKKEEPING = "tf_fleet"


def _numeric_kind(full_type: str) -> str:
    """The kind of a numeric column of type ``full_type`` ("numeric(14,2)"): its values
    travel as doubles ("real") when every one survives the round trip through a double
    (at most 15 significant digits, within a double's normal range); any other numeric,
    also one without a declared precision, may hold numbers a double would change."""
    size = re.fullmatch(r"numeric\((\d+),(-?\d+)\)", full_type)
    if size:
        precision, scale = map(int, size.groups())
        if precision <= _DOUBLE_DIGITS and precision - scale <= 308 and scale <= 307:
            return "real"
    return "decimal"


def _type_and_dims(gtype: str, ndims: int) -> tuple[str, str]:
    """('POINTZM', 4) -> ('POINT', 'XYZM'); ('LINESTRINGM', 3) -> ('LINESTRING', 'XYM')."""
    gtype = gtype.upper()
    for suffix, dims in (("ZM", "XYZM"), ("Z", "XYZ"), ("M", "XYM")):
        if gtype.endswith(suffix) and gtype[:-len(suffix)] in _BASE_TYPES:
            return gtype[:-len(suffix)], dims
    return gtype, {3: "XYZ", 4: "XYZM"}.get(ndims, "XY")


def _float4_rounded(d: str, side: str) -> str:
    """SQL rounding the float8 column ``d`` to float4 outwards (``side`` "down" for a
    box's minimum, "up" for its maximum) exactly as SQLite's rtree module does: the
    nearest float4, nudged by a factor 1 -/+ 2**-23 when it fell on the wrong side.
    Magnitudes float4 cannot hold, where PostgreSQL's cast would raise, become
    infinity, or the smallest normal float4 outwards (or zero)."""
    toward, away = "0.99999988079071044921875::float8", "1.00000011920928955078125::float8"
    if side == "down":
        wrong, neg, pos = ">", away, toward
        tiny = f"CASE WHEN {d} < 0 THEN -1.1754944e-38 ELSE 0 END"
    else:
        wrong, neg, pos = "<", toward, away
        tiny = f"CASE WHEN {d} > 0 THEN 1.1754944e-38 ELSE 0 END"
    return (f"CASE WHEN {d} = 'NaN' THEN 'NaN'::float4 "
            f"WHEN abs({d}) > 3.4e38 THEN (sign({d}) * 'Infinity'::float8)::float4 "
            f"WHEN abs({d}) < 1e-40 THEN ({tiny})::float4 "
            f"WHEN {d}::float4 {wrong} {d} "
            f"THEN ({d} * CASE WHEN {d} < 0 THEN {neg} ELSE {pos} END)::float4 "
            f"ELSE {d}::float4 END")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return redact(text[0].rstrip(".")) if text else exc.__class__.__name__


def _unavailable(store: PostGISCentral, exc: Exception) -> CentralUnavailable:
    return CentralUnavailable(
        f"The central database {store.describe()} failed: {_first_line(exc)}.")


class _Names:
    """The bookkeeping's tables and functions, named in the configured schema: the agent
    never relies on a search path (a pooler hands each transaction to any session)."""

    def __init__(self, schema: str):
        def rel(name: str) -> str:
            return f"{qi(schema)}.{qi(name)}"

        self.settings, self.change_log = rel("tf_settings"), rel("tf_change_log")
        self.key_blocks, self.push_receipts = rel("tf_key_blocks"), rel("tf_push_receipts")
        self.agents, self.fleet = rel("tf_agents"), rel("tf_fleet")
        self.history, self.history_tx = rel("tf_history"), rel("tf_history_tx")
        self.history_feature = f"{qi(schema)}.tf_history_feature"


class PostGISCentral(CentralStore):
    """Central store on PostGIS; one psycopg connection, opened on construction."""

    kind = "postgis"
    #: driver exceptions the engine maps to "central failed" should one slip through
    driver_errors = (psycopg.Error,)

    def __init__(self, url: str, schema: str = "public", connect_timeout: int = 10,
                 statement_timeout: int = 600):
        self.url = url
        self.schema = schema
        #: the bookkeeping's names, qualified
        self.t = _Names(schema)
        self._timeouts = (connect_timeout, statement_timeout)
        #: whether this role may purge the change log and the history (None: not asked)
        self._may_purge: Optional[bool] = None
        self.conn = self._connect()
        self.conn.autocommit = True
        if not self._scalar("SELECT count(*) FROM pg_extension WHERE extname = 'postgis'"):
            self._require_postgis()

    def _connect(self) -> psycopg.Connection:
        connect_timeout, _ = self._timeouts
        try:
            # Nothing but libpq's own parameters at connect, and no server-side prepared
            # statements: a pooler in transaction mode (PgBouncer) refuses a startup
            # ``options`` and hands each transaction to any server connection. The
            # settings the agent relies on are set in each of its transactions instead
            # (see :meth:`_transaction`).
            return psycopg.connect(
                self.url,
                connect_timeout=connect_timeout,
                # a network that silently drops packets ends the sync within a minute
                keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3,
                application_name="terrafusion-agent",
                prepare_threshold=None,
            )
        except psycopg.Error as exc:
            raise CentralUnavailable(
                f"The central database {redact_url(self.url)} cannot be reached: "
                f"{_first_line(exc)}.") from None

    def _settings_sql(self, durable: bool = False) -> str:
        """The statement giving a transaction the settings every statement of the agent
        runs under: its time limits, ISO dates in UTC, and for ``durable`` a commit
        flushed before it is acknowledged. Local to the
        transaction, so they follow it to whichever server connection a pooler gives."""
        _, statement_timeout = self._timeouts
        settings = [("statement_timeout", str(int(statement_timeout) * 1000)),
                    ("idle_in_transaction_session_timeout", "600000"),
                    ("DateStyle", "ISO"), ("TimeZone", "UTC")]
        if durable:
            # some servers run synchronous_commit = off for speed
            settings.append(("synchronous_commit", "on"))
        return "SELECT " + ", ".join(f"set_config({ql(k)}, {ql(v)}, true)"
                                     for k, v in settings)

    @contextmanager
    def _transaction(self, durable: bool = False, snapshot: bool = False
                     ) -> Iterator[psycopg.Cursor]:
        """One transaction with the agent's settings (``snapshot``: read-only, in one
        REPEATABLE READ snapshot); yields a cursor."""
        with self.conn.transaction(), self.conn.cursor() as cur:
            first = self._settings_sql(durable)
            if snapshot:
                first = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY; " + first
            cur.execute(first)
            yield cur

    def healthy(self) -> bool:
        return not (self.conn.closed or self.conn.broken)

    def describe(self) -> str:
        return redact_url(self.url)

    def close(self) -> None:
        self.conn.close()

    def interrupt(self) -> None:
        # libpq's cancel request travels on a connection of its own: safe from any thread
        try:
            self.conn.cancel()
        except psycopg.Error:
            pass  # the connection is gone: nothing runs on it any more

    def _scalar(self, sql: str, params: tuple = ()) -> Any:
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql, params)
                row = cur.fetchone()
                return row[0] if row else None
        except psycopg.OperationalError as exc:
            raise _unavailable(self, exc) from None

    def _require_postgis(self) -> None:
        try:
            with self.conn.cursor() as cur:
                cur.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        except psycopg.Error as exc:
            raise CentralUnavailable(
                f"The central database {redact_url(self.url)} has no PostGIS extension and it "
                f"cannot be created: {_first_line(exc)}."
            ) from None

    def _rel(self, name: str) -> str:
        return f"{qi(self.schema)}.{qi(name)}"

    # --- schema -------------------------------------------------------------------------

    def table_exists(self, name: str) -> bool:
        return self._scalar("SELECT to_regclass(%s) IS NOT NULL", (self._rel(name),))

    def has_bookkeeping(self) -> bool:
        return bool(self._scalar("SELECT to_regclass(%s) IS NOT NULL",
                                 (self._rel("tf_change_log"),)))

    def bookkeeping_current(self) -> bool:
        """True when the bookkeeping has everything this agent writes (the history, the
        heartbeat's figures: the fleet view comes with them)."""
        return bool(self._scalar("SELECT to_regclass(%s) IS NOT NULL",
                                 (self._rel(NEWEST_BOOKKEEPING),)))

    def table_info(self, name: str) -> TableInfo:
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT a.attname, t.typname, format_type(a.atttypid, a.atttypmod), "
                "NOT a.attnotnull, a.attgenerated <> '' "
                "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
                "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped "
                "ORDER BY a.attnum", (self._rel(name),))
            cols = cur.fetchall()
            if not cols:
                raise MissingTable(name, self.describe())
            cur.execute(
                "SELECT a.attname FROM pg_index i "
                "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                "WHERE i.indrelid = to_regclass(%s) AND i.indisprimary "
                "ORDER BY array_position(i.indkey, a.attnum)", (self._rel(name),))
            pk = tuple(r[0] for r in cur.fetchall())
            if not pk:
                raise TableError(
                    f"Table {name} has no primary key; TerraFusion syncs only tables with one."
                )
            # the column's type modifier answers at once; the geometry_columns view
            # (much slower) only for old-style columns constrained by CHECKs
            cur.execute(
                "SELECT attname, postgis_typmod_srid(atttypmod), "
                "upper(postgis_typmod_type(atttypmod)), postgis_typmod_dims(atttypmod) "
                "FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 "
                "AND NOT attisdropped AND atttypid = 'geometry'::regtype AND atttypmod <> -1 "
                "ORDER BY attnum", (self._rel(name),))
            geoms = cur.fetchall()
            if not geoms:
                cur.execute(
                    "SELECT f_geometry_column, srid, type, coord_dimension FROM "
                    "geometry_columns WHERE f_table_schema = %s AND f_table_name = %s "
                    "ORDER BY f_geometry_column", (self.schema, name))
                geoms = cur.fetchall()
        geometry = None
        if geoms:
            gcol, srid, gtype, ndims = geoms[0]
            geometry = GeometryInfo(gcol, int(srid or 0), *_type_and_dims(gtype, ndims))
        columns = []
        for cname, typname, full_type, nullable, generated in cols:
            kind = _KIND_BY_TYPE.get(typname, "text")
            if kind == "geometry" and (geometry is None or cname != geometry.column):
                kind = "blob"  # extra geometry columns travel as WKB blobs
            if kind == "decimal":
                # the local copy finds a row by its key's double, as it always has
                kind = "real" if cname in pk else _numeric_kind(full_type)
            columns.append(Column(cname, kind, bool(nullable), full_type, bool(generated)))
        return TableInfo(name, tuple(columns), pk, geometry)

    # --- change tracking ----------------------------------------------------------------

    def install_tracking(self, info: TableInfo) -> None:
        """Create (or refresh) the change capture of one table, history included: its
        statement triggers and their function, made by ``tf_track`` (migration c0004)
        from the table's columns as they are now. Idempotent."""
        self._execute(f"SELECT {qi(self.schema)}.tf_track(%s::regclass, %s::text[])",
                      (self._rel(info.name), list(info.pk)))

    def tracking_installed(self, name: str) -> bool:
        """Whether the table's three capture triggers are there, enabled, and write the
        history (the row trigger of 0.2.0 writes only the change log)."""
        tracked = f"{qi(self.schema)}.tf_history_tracked"
        if not self._scalar("SELECT to_regprocedure(%s) IS NOT NULL", (tracked + "(regclass)",)):
            return False  # bookkeeping older than the history
        return bool(self._scalar(f"SELECT {tracked}(to_regclass(%s))", (self._rel(name),)))

    def _installed(self) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]],
                                  list[str]]:
        """The triggers (name, schema, table) that run a function of the bookkeeping,
        the bookkeeping's relations (schema, name, relkind) and its functions
        (signatures)."""
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT p.oid, p.oid::regprocedure::text FROM pg_proc p "
                "JOIN pg_namespace n ON n.oid = p.pronamespace "
                "WHERE n.nspname = %s AND (p.proname = ANY(%s) OR p.proname ~ %s) "
                "ORDER BY 2", (self.schema, list(_FUNCTIONS), _TABLE_FUNCTION))
            functions = cur.fetchall()
            cur.execute(
                "SELECT t.tgname, n.nspname, c.relname FROM pg_trigger t "
                "JOIN pg_class c ON c.oid = t.tgrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE NOT t.tgisinternal AND t.tgfoid = ANY(%s) "
                "AND NOT (n.nspname = %s AND c.relname = ANY(%s)) ORDER BY 2, 3, 1",
                ([oid for oid, _ in functions], self.schema, list(BOOKKEEPING_TABLES)))
            triggers = cur.fetchall()
            cur.execute(
                "SELECT n.nspname, c.relname, c.relkind FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname = ANY(%s) AND c.relkind IN ('r', 'p', 'v') "
                "ORDER BY c.relkind DESC, c.relname",
                (self.schema, list(BOOKKEEPING_TABLES + BOOKKEEPING_VIEWS)))
            relations = cur.fetchall()
        return triggers, relations, [sig for _, sig in functions]

    def installed_objects(self) -> list[tuple[str, str]]:
        try:
            triggers, relations, functions = self._installed()
        except psycopg.OperationalError as exc:
            raise _unavailable(self, exc) from None
        return ([("trigger", f"{t} on {n}.{r}") for t, n, r in triggers]
                + [("view" if kind == "v" else "table", f"{n}.{r}")
                   for n, r, kind in relations]
                + [("function", f) for f in functions])

    def uninstall(self) -> list[tuple[str, str]]:
        """Drop the capture triggers, then the views, the tables and the functions of the
        bookkeeping, in one transaction and without CASCADE: an object of someone else's
        that depends on them (a view on tf_fleet) stops it, by name, before anything is
        gone."""
        removed = self.installed_objects()
        try:
            with self._transaction(durable=True) as cur:
                triggers, relations, functions = self._installed()
                for trigger, schema, table in triggers:
                    cur.execute(f"DROP TRIGGER {qi(trigger)} ON {qi(schema)}.{qi(table)}")
                views = [f"{qi(n)}.{qi(r)}" for n, r, kind in relations if kind == "v"]
                tables = [f"{qi(n)}.{qi(r)}" for n, r, kind in relations if kind != "v"]
                if views:
                    cur.execute(f"DROP VIEW {', '.join(views)}")
                if tables:
                    cur.execute(f"DROP TABLE {', '.join(tables)}")
                if functions:  # regprocedure's text is quoted and qualified as needed
                    cur.execute(f"DROP FUNCTION {', '.join(functions)}")
        except psycopg.OperationalError as exc:
            raise _unavailable(self, exc) from None
        except psycopg.Error as exc:
            raise TerraFusionError(
                f"The central database {self.describe()} refused to remove TerraFusion's "
                f"bookkeeping, so nothing was removed: {_first_line(exc)}.") from None
        return removed

    def refresh_tracking(self, info: TableInfo) -> None:
        """Nothing to do: the capture notices a change of columns itself (see
        ``tf_track``), and ``init-central`` makes it fast again."""

    def central_id(self) -> str:
        """This database's identity, so an agent notices being pointed at another one."""
        found = self._scalar(f"SELECT value FROM {self.t.settings} WHERE key = 'central_id'")
        if found:
            return found
        try:
            with self._transaction(durable=True) as cur:
                cur.execute(f"INSERT INTO {self.t.settings} (key, value) VALUES ('central_id', %s) "
                            "ON CONFLICT (key) DO NOTHING", (str(uuid.uuid4()),))
        except psycopg.Error as exc:
            raise _unavailable(self, exc) from None
        return self._scalar(f"SELECT value FROM {self.t.settings} WHERE key = 'central_id'")

    def poll(self, tables: Sequence[str], checkpoint: Optional[str], agent_id: str,
             purge_every: float) -> Optional[Poll]:
        """One statement, read-only, also on a hot standby (see :class:`Poll`).

        The change-log window is :meth:`PgReadSession.changed_keys`'s, asked only
        whether it holds anything of others. The fingerprint hashes what the table
        descriptions and the capture check read from the catalogs: each table's
        columns (name, type, modifier, nullability), primary key, check constraints
        and triggers with their functions (a row's ``xmin`` changes with every
        ``CREATE OR REPLACE``). "Flushed" compares the WAL flushed with the WAL
        inserted, both read after the statement's snapshot: a commit the snapshot saw
        was inserted before it. A standby replays only WAL its primary has flushed.

        A kept connection the server dropped meanwhile (a restart) is replaced once:
        nothing was done on it yet. None when the bookkeeping is missing or older than
        the poll (the sync then reads everything and says what is wrong).
        """
        settings = self._rel("tf_settings")
        sql = (
            f"SELECT (SELECT value FROM {settings} WHERE key = 'central_id'), "
            "to_regclass(%(newest)s) IS NOT NULL, pg_current_snapshot()::text, "
            "CASE WHEN %(cp)s::text IS NOT NULL THEN EXISTS ("
            f"SELECT FROM {self.t.change_log} "
            "WHERE tx >= pg_snapshot_xmin(%(cp)s::text::pg_snapshot) "
            "AND NOT pg_visible_in_snapshot(tx, %(cp)s::text::pg_snapshot) "
            "AND origin IS DISTINCT FROM %(agent)s) END, "
            f"CASE WHEN %(cp)s::text IS NOT NULL THEN coalesce((SELECT value::xid8 FROM "
            f"{settings} WHERE key = 'purged_tx') >= pg_snapshot_xmin(%(cp)s::text::pg_snapshot), "
            "false) ELSE false END, "
            "(SELECT md5(string_agg(t.n || '=' || coalesce((SELECT concat_ws(':', c.oid, "
            "(SELECT string_agg(concat_ws(' ', a.attnum, a.attname, a.atttypid, a.atttypmod, "
            "a.attnotnull, a.attisdropped, a.attgenerated), ',' ORDER BY a.attnum) "
            "FROM pg_attribute a "
            "WHERE a.attrelid = c.oid AND a.attnum > 0), "
            "(SELECT string_agg(concat_ws(' ', i.indexrelid, i.indkey::text), ',') "
            "FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary), "
            "(SELECT string_agg(concat_ws(' ', k.oid, k.xmin), ',' ORDER BY k.oid) "
            "FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'c'), "
            "(SELECT string_agg(concat_ws(' ', g.tgname, g.tgenabled, g.tgtype, g.xmin, "
            "f.oid, f.xmin), ',' ORDER BY g.tgname) FROM pg_trigger g "
            "JOIN pg_proc f ON f.oid = g.tgfoid WHERE g.tgrelid = c.oid AND NOT g.tgisinternal)"
            ") FROM pg_class c WHERE c.oid = to_regclass(t.r)), '-'), ';' ORDER BY t.i)) "
            "FROM unnest(%(names)s::text[], %(rels)s::text[]) WITH ORDINALITY AS t(n, r, i)), "
            "CASE WHEN pg_is_in_recovery() THEN true ELSE "
            "pg_current_wal_flush_lsn() >= pg_current_wal_insert_lsn() END, "
            f"coalesce((SELECT value::timestamptz FROM {settings} WHERE key = 'purged_at') "
            "< now() - make_interval(secs => %(every)s), true)")
        params = {"newest": self._rel(NEWEST_BOOKKEEPING), "cp": checkpoint, "agent": agent_id,
                  "names": list(tables), "rels": [self._rel(n) for n in tables],
                  "every": float(purge_every)}
        # The agent's settings (its statement timeout above all: a central that hangs
        # must not hang the poll) go in the same round trip: both statements travel as
        # one simple query, one implicit transaction the settings are local to, so they
        # leave nothing on a pooled session. That takes client-side binding.
        sql = f"{self._settings_sql()}; {sql}"
        for attempt in (1, 2):
            try:
                with psycopg.ClientCursor(self.conn) as cur:
                    cur.execute(sql, params)
                    cur.nextset()
                    row = _one(cur)
                break
            except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn,
                    psycopg.errors.UndefinedFunction):
                return None
            except psycopg.OperationalError as exc:
                if attempt == 2 or self.healthy():
                    raise _unavailable(self, exc) from None
                self.conn.close()
                self.conn = self._connect()
                self.conn.autocommit = True
        return Poll(central_id=row[0], current=bool(row[1]), snapshot=row[2],
                    changed=None if row[3] is None else bool(row[3]), lost=bool(row[4]),
                    fingerprint=row[5] or "", flushed=bool(row[6]), purge_due=bool(row[7]))

    def make_durable(self) -> None:
        """A commit flushed before it is acknowledged flushes the whole WAL before it,
        asynchronous commits of other sessions included. It must write a row: a
        transaction that only took a transaction id commits asynchronously whatever
        ``synchronous_commit`` says (PostgreSQL flushes a commit only when the
        transaction wrote WAL before it), so that one would flush nothing."""
        try:
            with self._transaction(durable=True) as cur:
                cur.execute(f"INSERT INTO {self.t.settings} (key, value) VALUES ('durable_at', "
                            "now()::text) ON CONFLICT (key) DO UPDATE SET value = "
                            "excluded.value")
        except psycopg.Error as exc:
            raise _unavailable(self, exc) from None

    def purge(self, retention_days: int, history_retention_days: int,
              every: float) -> Optional[tuple[int, int]]:
        """Purge once per central per period, by whichever agent gets there first:
        the purge holds a transaction lock no other agent waits for (one that finds it
        taken skips), and checks, holding it, that no purge committed meanwhile.

        An agent whose role may not delete from the change log and the audit history
        (an analyst's role, which should not) leaves the purge to one that may, and
        asks its privileges once per connection."""
        if self._may_purge is False:
            return None
        try:
            if self._may_purge is None:
                self._may_purge = bool(self._scalar(
                    "SELECT has_table_privilege(%s, 'DELETE') AND has_table_privilege(%s, "
                    "'DELETE') AND has_table_privilege(%s, 'DELETE')",
                    tuple(self._rel(n) for n in ("tf_change_log", "tf_history",
                                                 "tf_history_tx"))))
                if not self._may_purge:
                    log.debug("the role of this agent may not purge the change log and the "
                              "history: left to one that may")
                    return None
            with self._transaction(durable=True) as cur:
                cur.execute("SELECT pg_try_advisory_xact_lock(hashtextextended('tf_purge', 0))")
                if not _one(cur)[0]:
                    return None
                cur.execute(f"SELECT coalesce((SELECT value::timestamptz FROM {self.t.settings} "
                            "WHERE key = 'purged_at') < now() - make_interval(secs => %s), "
                            "true)", (float(every),))
                if not _one(cur)[0]:
                    return None
                n = self._purge_change_log(cur, retention_days)
                h = self._purge_history(cur, history_retention_days)
                cur.execute(f"INSERT INTO {self.t.settings} (key, value) VALUES ('purged_at', "
                            "to_char(now() AT TIME ZONE 'UTC', "
                            "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')) "
                            "ON CONFLICT (key) DO UPDATE SET value = excluded.value")
                faults.point("purge.before_commit")
                return n, h
        except psycopg.Error as exc:
            raise _unavailable(self, exc) from None

    def purge_change_log(self, retention_days: int) -> int:
        """Drop change-log entries older than the retention; remember the horizon."""
        try:
            with self._transaction(durable=True) as cur:
                n = self._purge_change_log(cur, retention_days)
                faults.point("purge.before_commit")
                return n
        except psycopg.Error as exc:
            raise _unavailable(self, exc) from None

    def _purge_change_log(self, cur: psycopg.Cursor, retention_days: int) -> int:
        cur.execute(
            f"WITH gone AS (DELETE FROM {self.t.change_log} WHERE changed_at < now() - "
            "make_interval(days => %s) RETURNING tx) "
            "SELECT count(*), max(tx)::text FROM gone", (int(retention_days),))
        n, max_tx = _one(cur)
        if n:
            cur.execute(
                f"INSERT INTO {self.t.settings} (key, value) VALUES ('purged_tx', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = greatest("
                "tf_settings.value::numeric, excluded.value::numeric)::text",
                (max_tx,))
        return int(n)

    # --- audit history ------------------------------------------------------------------

    def _key_jsonb(self, info: TableInfo) -> str:
        """The key's jsonb as the capture writes it, from the parameters k0, k1...; the
        casts give each value its column's type, so the same JSON comes out."""
        return "jsonb_build_array(" + ", ".join(
            f"%(k{i})s::{self._type_of(info, p)}" for i, p in enumerate(info.pk)) + ")"

    @staticmethod
    def _key_params(info: TableInfo, key: tuple) -> dict[str, Any]:
        if len(key) != len(info.pk):
            raise TerraFusionError(f"Table {info.name} is keyed by {len(info.pk)} column(s) "
                                   f"({', '.join(info.pk)}), not {len(key)}.")
        return {"t": info.name, **{f"k{i}": v for i, v in enumerate(key)}}

    def history(self, info: TableInfo, key: tuple, since: Optional[str] = None,
                until: Optional[str] = None) -> list[dict]:
        """The recorded changes of one row, newest first (see CentralStore.history)."""
        params = {**self._key_params(info, key),
                  "since": parse_instant(since, "start time") if since else None,
                  "until": parse_instant(until, "end time") if until else None}
        k = self._key_jsonb(info)
        sql = ("SELECT e.id, e.op, e.pk::text, e.cols, e.old_vals, e.new_vals, "
               "ST_AsText(e.old_geom), ST_AsText(e.new_geom), x.committed_at, x.role, "
               "x.application, x.agent_id, x.os_user, x.host "
               f"FROM {self.t.history} e JOIN {self.t.history_tx} x ON x.id = e.tx "
               f"WHERE e.feature = {self.t.history_feature}(%(t)s, {k}) AND e.table_name = %(t)s "
               f"AND e.pk = {k} "
               "AND (%(since)s::timestamptz IS NULL OR x.committed_at >= %(since)s) "
               "AND (%(until)s::timestamptz IS NULL OR x.committed_at <= %(until)s) "
               "ORDER BY x.committed_at DESC, e.id DESC")
        try:
            with self._transaction() as cur:
                cur.execute(sql, params)
                rows = cur.fetchall()
        except psycopg.OperationalError as exc:
            raise _unavailable(self, exc) from None
        except psycopg.Error as exc:
            raise _unreadable(info, key, exc) from None
        geometry_texts = self._geometry_texts(info, rows)

        def side(cols: list, values: Optional[list], wkt: Optional[str]
                 ) -> list[tuple[str, Any]]:
            if values is None:
                return []
            # the capture keeps the first geometry column as a geometry, its text ''
            return [(c, wkt if v == "" and c in geometry_texts else v)
                    for c, v in zip(cols, values)]

        return [entry(info, entry_id=entry_id, op=op, key=json.loads(pk),
                      committed_at=iso(committed_at), role=role, application=application,
                      agent_id=agent_id, os_user=os_user, host=host,
                      old=side(cols, old_vals, old_wkt), new=side(cols, new_vals, new_wkt),
                      value=lambda col, v: _json_value(col, v, geometry_texts))
                for (entry_id, op, pk, cols, old_vals, new_vals, old_wkt, new_wkt,
                     committed_at, role, application, agent_id, os_user, host) in rows]

    def _geometry_texts(self, info: TableInfo, rows: list) -> dict[str, Any]:
        """For each geometry column: {column name: {hex EWKB: WKT}} of the values the
        entries hold as text (a geometry column other than the table's first)."""
        names = {c.name for c in info.columns if _is_geometry(c)}
        hexes = {v for r in rows for vals in (r[4], r[5]) if vals
                 for c, v in zip(r[3], vals) if c in names and v}
        texts: dict[str, Any] = {n: {} for n in names}
        if hexes:
            with self.conn.cursor() as cur:
                cur.execute("SELECT h, ST_AsText(h::geometry) FROM unnest(%s::text[]) h",
                            (sorted(hexes),))
                found: dict[str, str] = dict(cur.fetchall())
            for n in names:
                texts[n] = found
        return texts

    def history_start(self, table: str) -> Optional[str]:
        return iso_text(self._scalar(f"SELECT value FROM {self.t.settings} WHERE key = %s",
                                     ("history_start:" + table,)))

    def _past_sql(self, info: TableInfo, ctes: str, entries: str, only_key: str = "") -> str:
        """SQL of the table's rows as they stood before ``entries`` (a query of the
        entries to undo: feature, pk, op, cols, old_vals, old_geom, committed_at, id), in
        the form of :meth:`read_rows`.

        A row with no entry is as it is now. A row whose first entry to undo is an
        insert did not exist. Any other row existed: each column holds the old value
        of the first entry to undo that changed it (a delete holds them all), else its
        value now."""
        rel = self._rel(info.name)
        geoms = [c for c in info.columns if _is_geometry(c)]
        slots = "".join(f", (array_agg(s.g) FILTER (WHERE s.col = {ql(c.name)} "
                        f"AND s.val = ''))[1] AS g{i}" for i, c in enumerate(geoms))

        def then(c: Column) -> str:
            value = f"(v.vals ->> {ql(c.name)})::{c.db_type or 'text'}"
            if c in geoms:
                value = (f"CASE WHEN v.vals ->> {ql(c.name)} = '' THEN v.g{geoms.index(c)} "
                         f"ELSE {value} END")
            return f"CASE WHEN v.vals ? {ql(c.name)} THEN {value} ELSE t.{qi(c.name)} END"

        # the key compared as the table's own types: no JSON made per row of the table
        join = " AND ".join(f"t.{qi(p)} = (f.pk ->> {i})::{self._type_of(info, p)}"
                            for i, p in enumerate(info.pk))
        # rows are told apart by (feature, pk): sorting on the number first leaves
        # little to compare as JSON
        return (
            f"WITH {ctes}h AS MATERIALIZED (SELECT feature, pk, op, cols, old_vals, old_geom, "
            "row_number() OVER (PARTITION BY feature, pk ORDER BY committed_at, id) AS rn "
            f"FROM ({entries}) e), "
            "f AS (SELECT feature, pk, op FROM h WHERE rn = 1), "
            f"v AS (SELECT s.feature, s.pk, jsonb_object_agg(s.col, s.val) AS vals{slots} "
            "FROM (SELECT DISTINCT ON (h.feature, h.pk, u.col) h.feature, h.pk, u.col, u.val, "
            "h.old_geom AS g FROM h CROSS JOIN LATERAL unnest(h.cols, h.old_vals) AS u(col, val) "
            "WHERE h.op <> 'I' ORDER BY h.feature, h.pk, u.col, h.rn) s "
            "GROUP BY s.feature, s.pk) "
            f"SELECT {self.select_list(info, 'r')} FROM ("
            f"SELECT {', '.join(f't.{qi(c)}' for c in info.column_names)} FROM {rel} t "
            f"WHERE NOT EXISTS (SELECT FROM f WHERE {join})"
            f"{only_key} UNION ALL "
            f"SELECT {', '.join(then(c) for c in info.columns)} FROM f "
            f"LEFT JOIN v ON v.feature = f.feature AND v.pk = f.pk LEFT JOIN {rel} t ON {join} "
            "WHERE f.op <> 'I') r")

    def rows_as_of(self, info: TableInfo, at: str) -> Iterator[tuple]:
        """Every row as it stood at commit time ``at``: the current rows with every
        entry committed after ``at`` undone, all read in one snapshot. O(table +
        history after ``at``)."""
        when = parse_instant(at)
        refusal = before_start(info, self.history_start(info.name), when)
        if refusal:
            raise TerraFusionError(refusal)
        sql = self._past_sql(
            info, f"x AS MATERIALIZED (SELECT id, committed_at FROM {self.t.history_tx} "
                  "WHERE committed_at > %(at)s), ",
            "SELECT e.feature, e.pk, e.op, e.cols, e.old_vals, e.old_geom, x.committed_at, "
            f"e.id FROM {self.t.history} e JOIN x ON x.id = e.tx WHERE e.table_name = %(t)s "
            "AND e.tx >= (SELECT min(id) FROM x)")
        return self._stream(info, sql, {"at": when, "t": info.name})

    def _stream(self, info: TableInfo, sql: str, params: dict[str, Any]) -> Iterator[tuple]:
        """The rows of ``sql`` (the table's columns, in the form of :meth:`read_rows`)
        inside one snapshot, read as :meth:`read_rows` reads them."""
        types = [_READ.get(c.kind, _TEXT)[1] for c in info.columns]
        try:
            with self._transaction(snapshot=True):
                with self.conn.cursor() as cur, cur.copy(
                        f"COPY ({sql}) TO STDOUT (FORMAT BINARY)", params) as copy:
                    copy.set_types(types)
                    yield from copy.rows()
        except psycopg.OperationalError as exc:
            raise _unavailable(self, exc) from None
        except psycopg.Error as exc:
            raise TerraFusionError(f"The central database cannot read table {info.name} as "
                                   f"of {iso(params['at'])}: {_first_line(exc)}.") from None

    def row_version(self, info: TableInfo, key: tuple, entry_id: int) -> Optional[dict]:
        """The row as it stood right after history entry ``entry_id``: the current row
        with the key's later entries undone; None after its delete."""
        params = {**self._key_params(info, key), "id": int(entry_id)}
        k = self._key_jsonb(info)
        of_key = (f"FROM {self.t.history} e JOIN {self.t.history_tx} x ON x.id = e.tx "
                  f"WHERE e.feature = {self.t.history_feature}(%(t)s, {k}) "
                  f"AND e.table_name = %(t)s AND e.pk = {k}")
        only_key = "".join(f" AND t.{qi(p)} = %(k{i})s::{self._type_of(info, p)}"
                           for i, p in enumerate(info.pk))
        try:
            with self._transaction(snapshot=True):
                with self.conn.cursor() as cur:
                    cur.execute(f"SELECT e.op, x.committed_at {of_key} AND e.id = %(id)s",
                                params)
                    found = cur.fetchone()
                    if found is None:
                        raise NotFound(f"Table {info.name} has no history entry {entry_id} "
                                       f"for the key {json.dumps(list(key))}.")
                    op, params["at"] = found
                    if op == "D":
                        return None
                    cur.execute(self._past_sql(
                        info, "",
                        "SELECT e.feature, e.pk, e.op, e.cols, e.old_vals, e.old_geom, "
                        f"x.committed_at, e.id {of_key} "
                        "AND (x.committed_at, e.id) > (%(at)s, %(id)s)",
                        only_key), params)
                    row = cur.fetchone()
        except psycopg.OperationalError as exc:
            raise _unavailable(self, exc) from None
        except psycopg.Error as exc:
            raise _unreadable(info, key, exc) from None
        return None if row is None else dict(zip(info.column_names, row))

    def purge_history(self, retention_days: int) -> int:
        """Drop the history of transactions committed more than ``retention_days`` ago;
        each table's history then starts at the newest commit dropped from it."""
        try:
            with self._transaction(durable=True) as cur:
                return self._purge_history(cur, retention_days)
        except psycopg.Error as exc:
            raise _unavailable(self, exc) from None

    def _purge_history(self, cur: psycopg.Cursor, retention_days: int) -> int:
        cur.execute(
            f"WITH old AS MATERIALIZED (SELECT id, committed_at FROM {self.t.history_tx} "
            "WHERE committed_at < now() - make_interval(days => %s)), "
            f"gone AS (DELETE FROM {self.t.history} e USING old WHERE e.tx = old.id "
            "AND e.tx BETWEEN (SELECT min(id) FROM old) AND (SELECT max(id) FROM old) "
            "RETURNING e.table_name, old.committed_at), "
            f"starts AS (INSERT INTO {self.t.settings} (key, value) "
            "SELECT 'history_start:' || table_name, to_char(max(committed_at) AT TIME "
            "ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM gone "
            "GROUP BY table_name ON CONFLICT (key) DO UPDATE SET value = "
            "greatest(tf_settings.value, excluded.value)), "
            f"txs AS (DELETE FROM {self.t.history_tx} t USING old WHERE t.id = old.id) "
            "SELECT count(*) FROM gone", (int(retention_days),))
        return int(_one(cur)[0])

    def current_snapshot(self) -> Optional[str]:
        """At most what a read session opened now would show (its floor)."""
        try:
            with self.conn.cursor() as cur:
                cur.execute(_SNAPSHOT_SQL)
                return _at_most(*_one(cur))
        except psycopg.Error as exc:
            raise _unavailable(self, exc) from None

    def identity(self) -> tuple[Optional[str], str, bool]:
        """(central id, PostgreSQL system identifier, whether a hot standby): a physical
        copy of a cluster shares its system identifier, and so its transaction ids."""
        try:
            with self.conn.cursor() as cur:
                cur.execute(f"SELECT (SELECT value FROM {self.t.settings} "
                            "WHERE key = 'central_id'), "
                            "(SELECT system_identifier::text FROM pg_control_system()), "
                            "pg_is_in_recovery()")
                central_id, system, standby = _one(cur)
        except psycopg.Error as exc:
            raise _unavailable(self, exc) from None
        return central_id, str(system), bool(standby)

    def heartbeat(self, agent: dict) -> None:
        """Record (or refresh) this agent in ``tf_agents``, durably: like
        :meth:`make_durable`, it makes every commit seen before it durable too."""
        try:
            with self._transaction(durable=True) as cur:
                cur.execute(
                    f"INSERT INTO {self.t.agents} (agent_id, hostname, local_path, version, "
                    f"registered_at, last_seen_at, {', '.join(HEARTBEAT_FIGURES)}) "
                    f"VALUES (%(agent_id)s, %(hostname)s, %(local_path)s, %(version)s, "
                    f"%(now)s, %(now)s, "
                    f"{', '.join(f'%({k})s' for k in HEARTBEAT_FIGURES)}) "
                    "ON CONFLICT (agent_id) DO UPDATE SET hostname = excluded.hostname, "
                    "local_path = excluded.local_path, version = excluded.version, "
                    "last_seen_at = excluded.last_seen_at, "
                    + ", ".join(f"{k} = excluded.{k}" for k in HEARTBEAT_FIGURES),
                    {**dict.fromkeys(HEARTBEAT_FIGURES), **agent})
        except psycopg.Error as exc:
            raise _unavailable(self, exc) from None

    def fleet(self) -> list[dict[str, Any]]:
        """Every agent's row of the ``tf_fleet`` view, stale ones first."""
        if not self.table_exists("tf_fleet"):
            raise TerraFusionError(NO_FLEET.format(self.describe()))
        try:
            with self.conn.cursor() as cur:
                cur.execute(f"SELECT {', '.join(FLEET_COLUMNS)} FROM {self.t.fleet} "
                            "ORDER BY stale DESC, hostname, agent_id")
                rows = cur.fetchall()
        except psycopg.errors.InsufficientPrivilege as exc:
            raise TerraFusionError(
                f"The central database {self.describe()} does not let this role read the "
                f"fleet view: {_first_line(exc)}.") from None
        except psycopg.Error as exc:
            raise _unavailable(self, exc) from None
        return [fleet_row(dict(zip(FLEET_COLUMNS, row))) for row in rows]

    @contextmanager
    def read_session(self) -> Iterator[PgReadSession]:
        """A consistent read-only snapshot for one pull (REPEATABLE READ)."""
        try:
            with self._transaction(snapshot=True):
                yield PgReadSession(self)
        except psycopg.OperationalError as exc:
            raise _unavailable(self, exc) from None

    @contextmanager
    def write_session(self, agent_id: str) -> Iterator[PgWriteSession]:
        """One push transaction; changes it makes are marked with ``agent_id``.

        Durable whatever the server's ``synchronous_commit``: the agent settles its local
        edits on this commit, so an acknowledged commit must survive a server crash.
        The agent's advisory lock orders it after any transaction of an earlier process
        of the same agent that is still committing (see :meth:`receipts`).
        """
        os_user, host = os_identity()
        try:
            with self.conn.transaction():
                with self.conn.cursor() as cur:
                    cur.execute(self._settings_sql(durable=True) + ", "
                                "set_config('terrafusion.origin', %s, true), "
                                "set_config('terrafusion.os_user', %s, true), "
                                "set_config('terrafusion.host', %s, true), "
                                "pg_advisory_xact_lock(hashtextextended(%s, 0))",
                                (agent_id, os_user or "", host or "", "tf_push:" + agent_id))
                yield PgWriteSession(self, agent_id)
        except psycopg.OperationalError as exc:
            raise _unavailable(self, exc) from None
        except psycopg.Error as exc:
            raise TerraFusionError(
                f"The central database refused the push: {_first_line(exc)}.") from None

    def allocate_keys(self, info: TableInfo, agent_id: str) -> Optional[tuple[int, int]]:
        """Reserve a block of keys for rows this agent's users digitise offline.

        With a sequence behind the key, the block comes out of that sequence (other
        writers then skip it); otherwise from a high range no sequence reaches.
        """
        pk = info.pk[0]
        col = next(c for c in info.columns if c.name == pk)
        typ = {"bigint": "int8", "integer": "int4", "smallint": "int2"}.get(
            col.db_type or "", "int8")
        try:
            with self._transaction(durable=True) as cur:
                cur.execute("SELECT pg_get_serial_sequence(%s, %s)", (self._rel(info.name), pk))
                seq = _one(cur)[0]
                if seq:
                    size = _SEQUENCE_BLOCK[typ]
                    last = self._reserve_from(cur, seq, size)
                    first = last - size + 1
                elif typ in _HIGH_KEYS:
                    start, size = _HIGH_KEYS[typ]
                    cur.execute("SELECT pg_advisory_xact_lock(hashtext('tf_key_blocks'))")
                    cur.execute(f"SELECT max(last_key) FROM {self.t.key_blocks} "
                                "WHERE table_name = %s", (info.name,))
                    prev = _one(cur)[0]
                    first = max(start, (prev or 0) + 1)
                    last = first + size - 1
                else:
                    return None
                cur.execute(f"INSERT INTO {self.t.key_blocks} (table_name, agent_id, first_key, "
                            "last_key) VALUES (%s, %s, %s, %s)",
                            (info.name, agent_id, first, last))
                faults.point("keys.during_allocation")
                return first, last
        except psycopg.errors.InsufficientPrivilege as exc:
            raise TerraFusionError(
                f"The central database {self.describe()} does not let this role reserve keys "
                f"for rows digitised offline in table {info.name} ({_first_line(exc)}); run "
                "'terrafusion-agent init-central' as the owner of the tables, which lets "
                "every role that may write them do so.") from None
        except psycopg.Error as exc:
            raise _unavailable(self, exc) from None

    def _reserve_from(self, cur: psycopg.Cursor, seq: str, size: int) -> int:
        """Take ``size`` values of sequence ``seq`` at once; the last one. Through
        ``tf_reserve_keys`` (c0006), which runs as the sequence's owner, so an editor's
        role may do it too; directly on a central not upgraded to it yet."""
        reserve = f"{qi(self.schema)}.tf_reserve_keys"
        cur.execute("SELECT to_regprocedure(%s) IS NOT NULL", (f"{reserve}(regclass,bigint)",))
        if _one(cur)[0]:
            cur.execute(f"SELECT {reserve}(%s::regclass, %s)", (seq, size))
            return int(_one(cur)[0])
        # ALTER SEQUENCE blocks concurrent nextval until commit: the block is ours alone
        cur.execute(f"ALTER SEQUENCE {seq} INCREMENT BY {size}")
        cur.execute("SELECT nextval(%s)", (seq,))
        last = int(_one(cur)[0])
        cur.execute(f"ALTER SEQUENCE {seq} INCREMENT BY 1")
        return last

    # --- push receipts ------------------------------------------------------------------

    def insert_receipt(self, agent_id: str, batch_id: str, parts: list[str]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {self.t.push_receipts} "
                            "(agent_id, batch_id, part, outcomes) VALUES (%s, %s, %s, %s)",
                            [(agent_id, batch_id, i, text) for i, text in enumerate(parts)])

    def receipts(self, agent_id: str, batch_ids: list[str]) -> dict[str, list[str]]:
        """The receipts of those batches that committed: {batch id: [JSON parts]}.

        Taken under the agent's push lock, so a batch whose commit an earlier (killed)
        process of this agent had already sent is answered after that commit ends.
        """
        out: dict[str, list[str]] = {}
        try:
            with self._transaction() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                            ("tf_push:" + agent_id,))
                cur.execute(f"SELECT batch_id, outcomes FROM {self.t.push_receipts} "
                            "WHERE agent_id = %s AND batch_id = ANY(%s) ORDER BY batch_id, part",
                            (agent_id, list(batch_ids)))
                for batch_id, text in cur:
                    out.setdefault(batch_id, []).append(text)
        except psycopg.Error as exc:
            raise _unavailable(self, exc) from None
        return out

    def clear_receipts(self, agent_id: str) -> None:
        """Forget this agent's receipts: it has settled every batch they describe."""
        self._execute(f"DELETE FROM {self.t.push_receipts} WHERE agent_id = %s", (agent_id,))

    def dependency_order(self, names: list[str]) -> list[str]:
        """``names`` with every table referenced by a foreign key before the tables that
        reference it (a push inserts parents first and deletes children first)."""
        with self.conn.cursor() as cur:
            cur.execute(
                "WITH t AS (SELECT n, to_regclass(r) AS oid FROM unnest(%s::text[], %s::text[]) "
                "AS u(n, r)) SELECT DISTINCT child.n, parent.n FROM pg_constraint c "
                "JOIN t child ON child.oid = c.conrelid JOIN t parent ON parent.oid = c.confrelid "
                "WHERE c.contype = 'f' AND c.conrelid <> c.confrelid",
                (list(names), [self._rel(n) for n in names]))
            edges = cur.fetchall()
        return topological(names, edges)

    # --- data ---------------------------------------------------------------------------

    def count(self, info: TableInfo) -> int:
        return int(self._scalar(f"SELECT count(*) FROM {self._rel(info.name)}"))

    def select_list(self, info: TableInfo, alias: str = "") -> str:
        prefix = f"{alias}." if alias else ""
        return ", ".join(_READ.get(c.kind, _TEXT)[0].format(c=prefix + qi(c.name))
                         for c in info.columns)

    def read_rows(self, info: TableInfo) -> Iterator[tuple]:
        """Every row in column order; geometry as ISO WKB, numbers as int/float, dates as text."""
        types = [_READ.get(c.kind, _TEXT)[1] for c in info.columns]
        sql = (f"COPY (SELECT {self.select_list(info)} FROM {self._rel(info.name)}) "
               "TO STDOUT (FORMAT BINARY)")
        try:
            with self.conn.cursor() as cur, cur.copy(sql) as copy:
                copy.set_types(types)
                yield from copy.rows()
        except psycopg.OperationalError as exc:
            raise _unavailable(self, exc) from None

    def _literal_sql(self, info: TableInfo, col: Column) -> str:
        """SQL turning one column into the text of an SQLite literal of the same value
        (for a decimal: of the nearest double, see :meth:`_exact_sql`)."""
        c = qi(col.name)
        if col.kind == "integer":
            return f"coalesce(({c})::int8::text, 'NULL')"
        if col.kind == "decimal":
            # numeric reaches far beyond a double, where the cast would fail
            return (f"CASE WHEN {c} IS NULL OR {c} = 'NaN' THEN 'NULL' "
                    f"WHEN {c} > 1.7976931348623157e308 THEN '9e999' "
                    f"WHEN {c} < -1.7976931348623157e308 THEN '-9e999' "
                    f"WHEN abs({c}) < 1e-320 THEN '0.0' ELSE ({c})::float8::text END")
        if col.kind == "real":
            # SQLite has no infinity literal but overflows 9e999 to it; NaN is NULL there
            return (f"CASE WHEN {c} IS NULL OR ({c})::float8 = 'NaN' THEN 'NULL' "
                    f"WHEN ({c})::float8 = 'Infinity' THEN '9e999' "
                    f"WHEN ({c})::float8 = '-Infinity' THEN '-9e999' "
                    f"ELSE ({c})::float8::text END")
        if col.kind == "boolean":
            return f"CASE WHEN {c} IS NULL THEN 'NULL' WHEN {c} THEN '1' ELSE '0' END"
        q = "'"  # one quote character, to keep the SQL below readable
        if col.kind == "blob":
            return f"coalesce({q}X{q}{q}{q} || encode({c}, 'hex') || {q}{q}{q}{q}, 'NULL')"
        if col.kind == "geometry":
            srid = int(info.srid)
            return (f"coalesce({q}GeomFromWKB(X{q}{q}{q} || encode(ST_AsBinary({c}), 'hex') "
                    f"|| {q}{q}{q}, {srid}){q}, 'NULL')")
        return (f"coalesce({q}{q}{q}{q} || replace(({c})::text, {q}{q}{q}{q}, "
                f"{q}{q}{q}{q}{q}{q}) || {q}{q}{q}{q}, 'NULL')")

    def _exact_sql(self, info: TableInfo, col: Column) -> str:
        """SQL giving, for a decimal the double of :meth:`_literal_sql` does not hold
        exactly, the text of an SQLite tuple (key values..., exact digits); else NULL."""
        c = qi(col.name)
        by_name = {k.name: k for k in info.columns}
        keys = " || ',' || ".join(self._literal_sql(info, by_name[p]) for p in info.pk)
        entry = f"'(' || {keys} || ',' || quote_literal(({c})::text) || ')'"
        return (f"CASE WHEN {c} IS NULL OR {c} IN (0, 'NaN', 'Infinity', '-Infinity') "
                f"THEN NULL WHEN abs({c}) > 1.7976931348623157e308 OR abs({c}) < 1e-320 "
                f"THEN {entry} WHEN ({c})::float8::text::numeric = {c} THEN NULL "
                f"ELSE {entry} END")

    def sql_batches(self, info: TableInfo, batch: int = 5000, chunk: int = 100
                    ) -> Iterator[tuple[int, list[str], dict[str, list[str]]]]:
        """The whole table as batches of SQLite ``VALUES`` tuples, in key order: each
        batch is (row count, texts of at most ``chunk`` rows each, and per decimal
        column the texts of (key..., exact digits) tuples for the values its double
        does not hold; for most tables none).

        PostgreSQL formats each row as SQLite literals, so the local side inserts with
        plain statements and Python never touches a row: the bulk path of a first sync.
        Statements of about a hundred rows keep SQLite's parser and program in the CPU
        cache (a 5,000-row statement inserts 40 % slower). Keyset pagination keeps each
        query small; inside the pull's REPEATABLE READ transaction every batch sees the
        same snapshot.
        """
        keys = ", ".join(qi(p) for p in info.pk)
        tup = " || ',' || ".join(self._literal_sql(info, c) for c in info.columns)
        decimals = [c for c in info.columns if c.kind == "decimal"]
        exact = "".join(f", {self._exact_sql(info, c)} AS exact{i}"
                        for i, c in enumerate(decimals))
        exact_agg = "".join(f", string_agg(exact{i}, ',')" for i in range(len(decimals)))
        last_key = ("(array_agg(jsonb_build_array(" + keys + ") ORDER BY "
                    + ", ".join(f"{qi(p)} DESC" for p in info.pk) + "))[1]::text")
        after = "(" + keys + ") > (" + ", ".join(
            f"(%s)::{self._type_of(info, p)}" for p in info.pk) + ")"
        params: tuple = ()
        where = ""
        while True:
            sql = (f"SELECT count(*), string_agg(tup, ','), {last_key}{exact_agg} FROM ("
                   f"SELECT {keys}, '(' || {tup} || ')' AS tup{exact}, "
                   f"(row_number() OVER (ORDER BY {keys}) - 1) / {int(chunk)} AS chunk "
                   f"FROM {self._rel(info.name)} {where} ORDER BY {keys} LIMIT %s) b "
                   "GROUP BY chunk ORDER BY chunk")
            with self.conn.cursor() as cur:
                cur.execute(sql, (*params, batch))
                parts = cur.fetchall()
            n = sum(p[0] for p in parts)
            if not n:
                return
            yield n, [p[1] for p in parts], {
                c.name: [p[3 + i] for p in parts if p[3 + i]] for i, c in enumerate(decimals)}
            if n < batch:
                return
            params, where = tuple(json.loads(parts[-1][2])), f"WHERE {after}"

    def rtree_leaves(self, info: TableInfo, fanout: int, snapshot: str) -> Iterator[tuple]:
        """The leaf level of a packed R*Tree over the table's geometries, for SQLite's
        rtree module: one row per leaf, in Hilbert order, as (node number, cell count,
        cells, xmin, xmax, ymin, ymax).

        Building an R*Tree by inserting a million entries costs SQLite about 20 us
        each; packing one costs a sort. PostGIS orders geometries along a Hilbert
        curve (``ORDER BY geom``), consecutive runs of at most ``fanout`` entries (as
        even as possible) make a leaf, and each cell is written in the rtree module's
        own format: the key as a big-endian int64, then the box as big-endian float32
        rounded outwards exactly as SQLite rounds it (``rtreeValueDown`` and
        ``rtreeValueUp``). Leaves are numbered from 2: node 1 is the root, unless a
        single leaf is the whole tree.
        Only for a single integer key (the local rowid); empty geometries have no entry,
        as with SpatiaLite's own triggers.

        The query runs on a connection of its own in the exported ``snapshot`` of the
        pull, so it sees exactly the rows being copied while they are being copied.
        """
        if info.geometry is None:
            return
        g, pk = qi(info.geometry.column), qi(info.pk[0])
        rounded = ", ".join(_float4_rounded(raw, side) + " AS " + raw.replace("r", "")
                            for raw, side in (("xr0", "down"), ("xr1", "up"),
                                              ("yr0", "down"), ("yr1", "up")))
        sql = (
            # OFFSET 0 keeps each box computed once, not once per use
            f"WITH e AS (SELECT id, {rounded}, ((row_number() OVER (ORDER BY g) - 1) "
            f"* ceil(count(*) OVER () / {int(fanout)}.0)::int8) / count(*) OVER () AS leaf "
            "FROM (SELECT id, g, ST_XMin(b) AS xr0, ST_XMax(b) AS xr1, ST_YMin(b) AS yr0, "
            f"ST_YMax(b) AS yr1 FROM (SELECT {pk}::int8 AS id, {g} AS g, {g}::box3d AS b "
            f"FROM {self._rel(info.name)} WHERE {g} IS NOT NULL AND NOT ST_IsEmpty({g}) "
            "OFFSET 0) q) r), "
            "l AS (SELECT leaf, count(*) AS n, string_agg(int8send(id) || float4send(x0) "
            "|| float4send(x1) || float4send(y0) || float4send(y1), ''::bytea) AS cells, "
            "min(x0) AS x0, max(x1) AS x1, min(y0) AS y0, max(y1) AS y1 FROM e GROUP BY leaf) "
            "SELECT CASE WHEN count(*) OVER () = 1 THEN 1 ELSE leaf + 2 END, n, cells, "
            "x0, x1, y0, y1 FROM l ORDER BY leaf")
        conn = self._connect()
        conn.autocommit = True
        try:
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                conn.execute(pgsql.SQL("SET TRANSACTION SNAPSHOT {}").format(
                    pgsql.Literal(snapshot)))
                conn.execute(self._settings_sql())
                # sorts over the whole table: memory for them, no JIT compile (it costs
                # seconds here), and no parallel workers: the query has the whole copy
                # of the rows to finish in, and the cores are busy with that copy
                conn.execute("SET LOCAL work_mem = '256MB'")
                conn.execute("SET LOCAL jit = off")
                conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")
                # the leaves wait in the cursor until every row is in: however long
                # that takes, this transaction is not abandoned
                conn.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
                with conn.cursor(name="tf_rtree_leaves", binary=True) as cur:
                    cur.itersize = 500
                    cur.execute(sql)
                    yield from cur
        except psycopg.OperationalError as exc:
            raise _unavailable(self, exc) from None
        finally:
            conn.close()

    def _keys_join(self, info: TableInfo, alias: str) -> str:
        return " AND ".join(
            f"{alias}.{qi(p)} = (k.pk ->> {i})::{self._type_of(info, p)}"
            for i, p in enumerate(info.pk))

    @staticmethod
    def _type_of(info: TableInfo, column: str) -> str:
        col = next(c for c in info.columns if c.name == column)
        return col.db_type or "text"

    def rows_by_key(self, info: TableInfo, keys: list[tuple], lock: bool = False
                    ) -> dict[tuple, dict]:
        """Current rows for ``keys`` (absent keys: deleted), optionally locked FOR UPDATE.

        One statement per :data:`KEY_BATCH` keys, its rows read as COPY text and parsed
        here: psycopg's row loader costs tens of microseconds a row, which a mass push
        or pull of a hundred thousand rows would spend many seconds on."""
        out: dict[tuple, dict] = {}
        if not keys:
            return out
        names = info.column_names
        pk_idx = [names.index(p) for p in info.pk]
        parse = _line_parser(info)
        # locking in key order: two agents pushing overlapping rows cannot deadlock
        order = ", ".join(f"t.{qi(p)}" for p in info.pk)
        with self._in_transaction(), self.conn.cursor() as cur:
            # float8 as its shortest exact text, whatever the server's default
            cur.execute("SET LOCAL extra_float_digits = 3")
            for start in range(0, len(keys), KEY_BATCH):
                source, join, param = self._key_source(info, keys[start:start + KEY_BATCH])
                sql = (f"COPY (SELECT {_text_list(info, 't')} FROM {source} "
                       f"JOIN {self._rel(info.name)} t ON {join}"
                       + (f" ORDER BY {order} FOR UPDATE OF t" if lock else "")
                       + ") TO STDOUT")
                with cur.copy(sql, (param,)) as copy:
                    for data in copy:
                        row = parse(bytes(data))
                        out[tuple(row[i] for i in pk_idx)] = dict(zip(names, row))
        return out

    @contextmanager
    def _in_transaction(self) -> Iterator[None]:
        """The enclosing transaction (a pull's or a push's), or one of its own."""
        if self.conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            with self.conn.transaction():
                yield
        else:
            yield

    def _key_source(self, info: TableInfo, keys: list[tuple]) -> tuple[str, str, str]:
        """(FROM item, join condition with ``t``, its one parameter) for ``keys``: a
        single integer key as an int8 array, any other as a JSON array of arrays."""
        if len(info.pk) == 1 and all(type(k[0]) is int and -2**63 <= k[0] < 2**63
                                     for k in keys):
            return ("unnest(string_to_array(%s, ',')::int8[]) AS k(k0)",
                    f"t.{qi(info.pk[0])} = k.k0", ",".join(str(k[0]) for k in keys))
        return ("jsonb_array_elements(%s::jsonb) AS k(pk)", self._keys_join(info, "t"),
                json.dumps([list(k) for k in keys], default=str))

    # --- writing (inside a write session) -----------------------------------------------

    def _param(self, info: TableInfo, col: Column) -> str:
        if col.kind == "geometry":
            return f"ST_GeomFromWKB(%s, {int(info.srid)})"
        if col.kind in ("blob",):
            return "%s"
        return f"%s::{col.db_type}" if col.db_type else "%s"

    @staticmethod
    def _value(col: Column, value: Any) -> Any:
        if value is None:
            return None
        if col.kind == "boolean":
            return bool(value)
        if col.kind in ("blob", "geometry"):
            return bytes(value)
        if col.kind in ("text", "date", "datetime") and not isinstance(value, str):
            return str(value)
        if col.kind == "decimal":
            # a double as the digits it prints as: psycopg would send a float8, which
            # PostgreSQL turns into a numeric of only 15 digits
            return to_decimal(value)
        return value

    def insert_rows(self, info: TableInfo, rows: list[dict]) -> None:
        if not rows:
            return
        cols = [c for c in info.columns if not c.generated]
        # the keys are the agent's own (reserved from the key's sequence): an identity
        # column that is GENERATED ALWAYS takes them too
        sql = (f"INSERT INTO {self._rel(info.name)} ({', '.join(qi(c.name) for c in cols)}) "
               f"OVERRIDING SYSTEM VALUE "
               f"VALUES ({', '.join(self._param(info, c) for c in cols)})")
        with self.conn.cursor() as cur:
            cur.executemany(sql, [[self._value(c, r.get(c.name)) for c in cols] for r in rows])

    def update_rows(self, info: TableInfo, updates: list[tuple[tuple, dict]]) -> None:
        """``updates``: (key, {column: value}); grouped by column set for executemany."""
        groups: dict[tuple, list] = {}
        for key, values in updates:
            groups.setdefault(tuple(sorted(set(values) - info.generated)), []).append(
                (key, values))
        groups.pop((), None)
        by_name = {c.name: c for c in info.columns}
        where = " AND ".join(f"{qi(p)} = {self._param(info, by_name[p])}" for p in info.pk)
        with self.conn.cursor() as cur:
            for names, items in groups.items():
                sets = ", ".join(f"{qi(n)} = {self._param(info, by_name[n])}" for n in names)
                sql = f"UPDATE {self._rel(info.name)} SET {sets} WHERE {where}"
                cur.executemany(sql, [
                    [self._value(by_name[n], v[n]) for n in names]
                    + [self._value(by_name[p], k[i]) for i, p in enumerate(info.pk)]
                    for k, v in items])

    def delete_rows(self, info: TableInfo, keys: list[tuple]) -> None:
        if not keys:
            return
        sql = (f"DELETE FROM {self._rel(info.name)} t USING jsonb_array_elements(%s::jsonb) "
               f"AS k(pk) WHERE {self._keys_join(info, 't')}")
        with self.conn.cursor() as cur:
            cur.execute(sql, (json.dumps([list(k) for k in keys]),))

    # --- setup --------------------------------------------------------------------------

    def create_tables(self, tables: Sequence[tuple[TableSpec, Iterable[tuple]]]) -> None:
        name = ""
        try:
            with self._transaction() as cur:
                for spec, rows in tables:
                    name = spec.info.name
                    self._create_table(cur, spec, rows)
            with self.conn.cursor() as cur:
                for spec, _ in tables:
                    # the first queries on a freshly loaded table need its statistics
                    cur.execute(f"ANALYZE {self._rel(spec.info.name)}")
        except psycopg.OperationalError as exc:
            raise _unavailable(self, exc) from None
        except psycopg.Error as exc:
            raise TerraFusionError(f"The central database {self.describe()} cannot create "
                                   f"table {name}: {_first_line(exc)}.") from None

    def _create_table(self, cur: psycopg.Cursor, spec: TableSpec, rows: Iterable[tuple]
                      ) -> None:
        info = spec.info
        rel = self._rel(info.name)
        choices = dict(spec.choices)
        defs = []
        for c in info.columns:
            decl = f"{qi(c.name)} {_declared_type(info, c)}"
            if spec.numbered_key and c.name == info.pk[0]:
                decl += " GENERATED BY DEFAULT AS IDENTITY"
            elif not c.nullable:
                decl += " NOT NULL"
            if c.name in choices:
                allowed = ", ".join(ql(v) for v in choices[c.name])
                decl += f" CHECK ({qi(c.name)} IN ({allowed}))"
            defs.append(decl)
        cur.execute(f"CREATE TABLE {rel} ({', '.join(defs)})")
        loaded = spec.loaded_columns
        with cur.copy(f"COPY {rel} ({_names(c.name for c in loaded)}) FROM STDIN") as copy:
            lines: list[str] = []
            for line in _copy_lines(info, loaded, rows):
                lines.append(line)
                if len(lines) == 1000:
                    copy.write("\n".join(lines) + "\n")
                    lines = []
            if lines:
                copy.write("\n".join(lines) + "\n")
        # the key, constraints and indexes once over the loaded rows: much faster than
        # keeping them up to date row by row
        adds = [f"ADD PRIMARY KEY ({_names(info.pk)})"] + [
            f"ADD CONSTRAINT {qi('_'.join((info.name, *cols, 'key')))} UNIQUE ({_names(cols)})"
            for cols in spec.unique]
        cur.execute(f"ALTER TABLE {rel} {', '.join(adds)}")
        if info.geometry is not None:
            g = info.geometry.column
            cur.execute(f"CREATE INDEX {qi(f'{info.name}_{g}_idx')} ON {rel} USING gist "
                        f"({qi(g)})")
        for cols in spec.indexes:
            cur.execute(f"CREATE INDEX {qi('_'.join((info.name, *cols, 'idx')))} ON {rel} "
                        f"({_names(cols)})")

    def _execute(self, sql: str, params: Union[Sequence[Any], Mapping[str, Any]] = ()
                 ) -> None:
        """Run one statement of this store's own, its errors in words."""
        try:
            with self._transaction() as cur:
                cur.execute(sql, params)
        except psycopg.OperationalError as exc:
            raise _unavailable(self, exc) from None
        except psycopg.Error as exc:
            raise TerraFusionError(f"The central database refused a statement: "
                                   f"{_first_line(exc)}.") from None


#: the functions of the central bookkeeping (migrations c0002, c0004 and c0006);
#: ``tf_track`` adds one per tracked table, named by :data:`_TABLE_FUNCTION`
_FUNCTIONS = ("tf_capture", "tf_capture_layout", "tf_capture_sql", "tf_history_begin",
              "tf_history_feature", "tf_history_stamp", "tf_history_tracked",
              "tf_reserve_keys", "tf_track")
_TABLE_FUNCTION = "^tf_capture_[0-9a-f]{16}$"

#: PostgreSQL's type for a column whose ``db_type`` does not name one
_TYPE_BY_KIND = {
    "integer": "bigint", "real": "double precision", "decimal": "numeric",
    "boolean": "boolean", "text": "text", "date": "date", "datetime": "timestamp",
    "blob": "bytea",
}
_DIMS_SUFFIX = {"XY": "", "XYZ": "Z", "XYM": "M", "XYZM": "ZM"}
#: COPY's text format: NULL, and how a text value escapes its special characters
_COPY_NULL = "\\N"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _names(names: Iterable[str]) -> str:
    return ", ".join(qi(n) for n in names)


def _declared_type(info: TableInfo, col: Column) -> str:
    g = info.geometry
    if col.kind == "geometry" and g is not None and col.name == g.column:
        if g.geometry_type not in _BASE_TYPES or g.dims not in _DIMS_SUFFIX:
            raise TableError(f"Table {info.name}: no geometry type "
                             f"{g.geometry_type} {g.dims}.")
        return f"geometry({g.geometry_type}{_DIMS_SUFFIX[g.dims]}, {int(g.srid)})"
    return col.db_type or _TYPE_BY_KIND.get(col.kind, "text")


def _copy_format(info: TableInfo, col: Column) -> Callable[[Any], str]:
    """How COPY's text format writes a value of ``col`` (not NULL), but for the
    escapes a text needs (see :func:`_copy_lines`)."""
    if col.kind == "geometry":
        srid = f"SRID={int(info.srid)};"
        return lambda wkb: srid + bytes(wkb).hex()
    if col.kind == "blob":
        return lambda value: "\\\\x" + bytes(value).hex()
    return str


def _copy_lines(info: TableInfo, columns: tuple[Column, ...], rows: Iterable[tuple]
                ) -> Iterator[str]:
    """``rows`` as lines of COPY's text format.

    Escaping every text costs as much as the rest of the line, so a line is joined
    as it is and escaped only when it shows a character that needs it: more tabs
    than separate its columns, a line break, or a backslash besides the NULLs' (a
    line with a blob, written after a backslash, always takes that path)."""
    formats = [_copy_format(info, c) for c in columns]
    texts = [c.kind not in ("geometry", "blob") for c in columns]
    tabs = len(columns) - 1
    for row in rows:
        parts = [_COPY_NULL if v is None else f(v) for f, v in zip(formats, row)]
        line = "\t".join(parts)
        if (line.count("\t") != tabs or "\n" in line or "\r" in line
                or line.count("\\") != row.count(None)):
            line = "\t".join([p.translate(_COPY_ESCAPES) if text and v is not None else p
                              for p, v, text in zip(parts, row, texts)])
        yield line


#: keys read (and locked) per statement
KEY_BATCH = 50_000
#: up to this many rows a push writes one statement per row (a refused row is looked
#: for one by one); more go through a temporary table
ROW_BY_ROW = 20


def _text_list(info: TableInfo, alias: str) -> str:
    """The SELECT list of :meth:`PostGISCentral.rows_by_key` in COPY's text format:
    each column as text :func:`_line_parser` turns into the value :meth:`read_rows`
    gives (bytes travel as hex)."""
    out = []
    for c in info.columns:
        ref = f"{alias}.{qi(c.name)}"
        if c.kind == "geometry":
            out.append(f"encode(ST_AsBinary({ref}), 'hex')")
        elif c.kind == "blob":
            out.append(f"encode(({ref})::bytea, 'hex')")
        elif c.kind in ("decimal", "boolean"):
            out.append(ref)
        else:
            out.append(_READ.get(c.kind, _TEXT)[0].format(c=ref))
    return ", ".join(out)


_UNESCAPE = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_ESCAPED = re.compile(r"\\(.)")


def _unescaped(text: str) -> str:
    """A text field of COPY's text format as the value it stands for."""
    if "\\" not in text:
        return text
    return _ESCAPED.sub(lambda m: _UNESCAPE.get(m.group(1), m.group(1)), text)


_FROM_TEXT: dict[str, Callable[[str], Any]] = {
    "integer": int, "real": float, "decimal": lambda t: to_decimal(t),
    "boolean": lambda t: t == "t", "blob": bytes.fromhex, "geometry": bytes.fromhex,
}


def _line_parser(info: TableInfo) -> Callable[[bytes], list]:
    """A line of COPY text of :func:`_text_list` -> the row's values in column order."""
    converters = [_FROM_TEXT.get(c.kind, _unescaped) for c in info.columns]
    pairs = list(enumerate(converters))

    def parse(line: bytes) -> list:
        fields = line.decode().rstrip("\n").split("\t")
        return [None if fields[i] == "\\N" else f(fields[i]) for i, f in pairs]

    return parse


def _copy_text(value: Any) -> str:
    """``value`` (as :meth:`PostGISCentral._value` binds it) in COPY's text format."""
    if value is None:
        return _COPY_NULL
    if value is True or value is False:
        return "t" if value else "f"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\\\x" + bytes(value).hex()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Decimal):
        return "NaN" if value.is_nan() else str(value)
    return str(value).translate(_COPY_ESCAPES)


def _bound_type(kind: str, value: Any) -> str:
    """The type psycopg gives ``value`` (not NULL) when binding it, so the
    temporary table's column casts to the table's type exactly as a bound value does."""
    if value is True or value is False:
        return "bool"
    if isinstance(value, int):
        return "int8" if -2**63 <= value < 2**63 else "numeric"
    if isinstance(value, float):
        return "float8"
    if isinstance(value, Decimal):
        return "numeric"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bytea"
    return "text"


def _by_types(info: TableInfo, names: list[str], rows: list[list]
              ) -> Iterator[tuple[list[str], list[list]]]:
    """``rows`` (values of ``names``, bound as :meth:`PostGISCentral._value` binds
    them) grouped by the types their values bind as: (column types, rows)."""
    by_name = {c.name: c for c in info.columns}
    cols = [by_name[n] for n in names]
    # a column of NULLs only: the type its values take, so any cast applies
    fallback = ["bytea" if c.kind in ("geometry", "blob") else "text" for c in cols]
    bound = [[PostGISCentral._value(c, v) for c, v in zip(cols, row)] for row in rows]
    seen: list[set[str]] = [set() for _ in cols]
    for values in bound:
        for types, c, v in zip(seen, cols, values):
            if v is not None:
                types.add(_bound_type(c.kind, v))
    if all(len(types) <= 1 for types in seen):  # the usual case: one group
        yield [next(iter(types), f) for types, f in zip(seen, fallback)], bound
        return
    groups: dict[tuple, list[list]] = {}
    for values in bound:
        sig = tuple(f if v is None else _bound_type(c.kind, v)
                    for c, v, f in zip(cols, values, fallback))
        groups.setdefault(sig, []).append(values)
    for sig, members in groups.items():
        yield list(sig), members


def _unreadable(info: TableInfo, key: tuple, exc: Exception) -> TerraFusionError:
    return TerraFusionError(f"The central database cannot read the history of key "
                            f"{json.dumps(list(key), default=str)} of table {info.name}: "
                            f"{_first_line(exc)}.")


def _is_geometry(col: Column) -> bool:
    """A column holding PostGIS geometries: the table's own, or another one (a blob)."""
    return col.kind == "geometry" or (col.db_type or "").startswith("geometry")


def _json_value(col: Column, text: Optional[str], geometry_texts: dict[str, Any]) -> Any:
    """A value the capture stored as text (the text form of the column's type), in the
    JSON form of the history: numbers as numbers (a decimal as its digits), booleans,
    geometry as WKT (already, for the first geometry column), blobs as hex."""
    if text is None:
        return None
    if col.name in geometry_texts:
        return geometry_texts[col.name].get(text, text)
    if col.kind == "integer":
        return int(text)
    if col.kind == "real":
        return float(text)
    if col.kind == "boolean":
        return text in ("t", "true")
    if col.kind == "blob":
        return text[2:] if text.startswith("\\x") else text
    return text


def _one(cur: psycopg.Cursor) -> tuple:
    """The row of a statement that always returns exactly one."""
    row = cur.fetchone()
    if row is None:
        raise psycopg.ProgrammingError("the statement returned no row")
    return row


#: SQLSTATE classes meaning "central refuses this row": data exceptions, integrity
#: violations, a trigger's RAISE, a missing privilege, a row-level security check
_REFUSALS = ("22", "23", "P0001", "42501", "44000")


class PgWriteSession(WriteSession):
    """Writes of one push. Up to :data:`ROW_BY_ROW` rows go as one statement per row;
    more are copied into a temporary table and written by one statement, the way a
    revaluation's hundred thousand edits reach central in a second rather than a
    minute. The table lives in the push's transaction only (``ON COMMIT DROP``, and
    dropped right after use), so nothing outlives it on a pooled connection."""

    store: PostGISCentral
    _tables = 0

    def insert(self, info: TableInfo, rows: list[dict]) -> None:
        if len(rows) <= ROW_BY_ROW:
            self.store.insert_rows(info, rows)
            return
        names = [n for n in info.column_names if n not in info.generated]
        for values in _by_types(info, names, [[r.get(n) for n in names] for r in rows]):
            with self._copied(info, names, values) as (tmp, exprs):
                self._execute(f"INSERT INTO {self.store._rel(info.name)} ({_names(names)}) "
                              f"OVERRIDING SYSTEM VALUE "
                              f"SELECT {', '.join(exprs.values())} FROM {tmp} s")

    def update(self, info: TableInfo, updates: list[tuple[tuple, dict]]) -> None:
        if len(updates) <= ROW_BY_ROW:
            self.store.update_rows(info, updates)
            return
        groups: dict[tuple, list] = {}
        for key, values in updates:
            groups.setdefault(tuple(sorted(set(values) - info.generated)), []).append(
                (key, values))
        groups.pop((), None)
        for columns, items in groups.items():
            if len(items) <= ROW_BY_ROW:
                self.store.update_rows(info, items)
                continue
            names = [*info.pk, *columns]
            rows = [[*key, *(v[c] for c in columns)] for key, v in items]
            for group in _by_types(info, names, rows):
                with self._copied(info, names, group) as (tmp, exprs):
                    sets = ", ".join(f"{qi(c)} = {exprs[c]}" for c in columns)
                    where = " AND ".join(f"t.{qi(p)} = {exprs[p]}" for p in info.pk)
                    self._execute(f"UPDATE {self.store._rel(info.name)} t SET {sets} "
                                  f"FROM {tmp} s WHERE {where}")

    def _execute(self, sql: str) -> None:
        with self.store.conn.cursor() as cur:
            cur.execute(sql)

    @contextmanager
    def _copied(self, info: TableInfo, names: list[str], values: tuple[list[str], list[list]]
                ) -> Iterator[tuple[str, dict[str, str]]]:
        """Copy rows of ``names`` into a new temporary table; yields its name and, per
        column, the SQL of its value as the row-by-row statements bind it."""
        types, rows = values
        PgWriteSession._tables += 1
        tmp = qi(f"tf_push_rows_{PgWriteSession._tables}")
        by_name = {c.name: c for c in info.columns}
        columns = [f"c{i}" for i in range(len(names))]
        with self.store.conn.cursor() as cur:
            cur.execute(f"CREATE TEMP TABLE {tmp} ("
                        + ", ".join(f"{c} {t}" for c, t in zip(columns, types))
                        + ") ON COMMIT DROP")
            with cur.copy(f"COPY {tmp} FROM STDIN") as copy:
                for start in range(0, len(rows), 1000):
                    copy.write("".join("\t".join(map(_copy_text, row)) + "\n"
                                       for row in rows[start:start + 1000]))
            yield tmp, {n: self.store._param(info, by_name[n]).replace("%s", f"s.{c}")
                        for n, c in zip(names, columns)}
            cur.execute(f"DROP TABLE {tmp}")

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        with self.store.conn.transaction():
            yield

    def refusal(self, exc: BaseException) -> Optional[str]:
        state = getattr(exc, "sqlstate", None) or ""
        if not isinstance(exc, psycopg.Error) or not state.startswith(_REFUSALS):
            return None
        diag = exc.diag
        text = diag.message_primary or _first_line(exc)
        if diag.message_detail:
            text = f"{text.rstrip('.')}. {diag.message_detail}"
        return redact(text)


#: this transaction's snapshot, and whether the server is a hot standby
_SNAPSHOT_SQL = "SELECT pg_current_snapshot()::text, pg_is_in_recovery()"


def _certain(text: str, standby: bool) -> str:
    """The transactions a snapshot certainly shows (see :class:`PgReadSession`)."""
    return str(below(parse(text).xmin)) if standby else text


def _at_most(text: str, standby: bool) -> str:
    """The transactions a snapshot shows at most (see :class:`PgReadSession`)."""
    return str(below(parse(text).xmax)) if standby else text


class PgReadSession(ReadSession):
    """Reads inside one REPEATABLE READ snapshot: the changes and rows of one pull.

    On a hot standby, ``pg_current_snapshot()`` prints the snapshot's xmin and xmax but
    none of the transactions still running on the primary: during recovery PostgreSQL
    keeps them all in the snapshot's subtransaction array, which the function does not
    print (13 to 17 alike). Taken as it is, the text would claim to show a transaction
    that is still running, and a checkpoint saying so would skip that transaction's
    changes for good once it commits. What such a snapshot certainly shows is every
    transaction below its xmin, and at most every one below its xmax: the checkpoint
    takes the first (the next pull may read a few rows again, never miss one), the
    floor the second. On the primary both are the snapshot itself.
    """

    store: PostGISCentral
    _taken: Optional[tuple[str, bool]] = None

    def _snapshot(self) -> tuple[str, bool]:
        if self._taken is None:
            with self.store.conn.cursor() as cur:
                # a standby replays only WAL its primary flushed: what it shows is durable
                cur.execute("SELECT pg_current_snapshot()::text, pg_is_in_recovery(), "
                            "CASE WHEN pg_is_in_recovery() THEN true ELSE "
                            "pg_current_wal_flush_lsn() >= pg_current_wal_insert_lsn() END")
                text, standby, flushed = _one(cur)
            self._taken = (str(text), bool(standby))
            self.flushed = bool(flushed)
        return self._taken

    def checkpoint(self) -> str:
        """This snapshot, as the checkpoint the next pull starts from: what it certainly
        shows. ``flushed`` tells whether every commit it saw is durable already (see
        :meth:`PostGISCentral.poll`)."""
        return _certain(*self._snapshot())

    def floor(self) -> str:
        """What the rows read in this snapshot may reflect at most."""
        return _at_most(*self._snapshot())

    def covers(self, floor: str) -> bool:
        """Whether this very snapshot certainly shows every transaction ``floor`` shows
        (:func:`terrafusion_agent.stores.snapshots.contains`)."""
        return contains(parse(self.checkpoint()), parse(floor))

    def lost_since(self, checkpoint: str) -> bool:
        """True when changes after ``checkpoint`` may have been purged already."""
        return bool(self.store._scalar(
            f"SELECT coalesce((SELECT value::xid8 FROM {self.store.t.settings} "
            "WHERE key = 'purged_tx') >= pg_snapshot_xmin(%s::pg_snapshot), false)",
            (checkpoint,)))

    def changed_keys(self, checkpoint: str, agent_id: str,
                     tables: Optional[Sequence[str]] = None) -> dict[str, list[tuple]]:
        """Keys changed by others since ``checkpoint``, per table.

        An entry belongs to the window when its transaction was not visible in the
        checkpoint's snapshot and is visible now; scanning from the old snapshot's xmin
        keeps this proportional to the changes, whatever the table sizes.
        """
        out: dict[str, list[tuple]] = {}
        if tables is not None and not tables:
            return out
        with self.store.conn.cursor() as cur:
            cur.execute(
                f"SELECT table_name, pk::text FROM {self.store.t.change_log} "
                "WHERE tx >= pg_snapshot_xmin(%s::pg_snapshot) "
                "AND NOT pg_visible_in_snapshot(tx, %s::pg_snapshot) "
                "AND (%s::text[] IS NULL OR table_name = ANY(%s::text[])) "
                "GROUP BY table_name, pk HAVING bool_or(origin IS DISTINCT FROM %s)",
                (checkpoint, checkpoint, None if tables is None else list(tables),
                 None if tables is None else list(tables), agent_id))
            for table, pk in cur:
                out.setdefault(table, []).append(tuple(json.loads(pk)))
        return out

    def change_counts(self, checkpoint: str, agent_id: str) -> dict[str, int]:
        """Entries written by others since ``checkpoint``, per table: one count over the
        window of :meth:`changed_keys`, without grouping a million keys."""
        with self.store.conn.cursor() as cur:
            cur.execute(
                "SELECT table_name, count(*) FILTER (WHERE origin IS DISTINCT FROM %s) "
                f"FROM {self.store.t.change_log} WHERE tx >= pg_snapshot_xmin(%s::pg_snapshot) "
                "AND NOT pg_visible_in_snapshot(tx, %s::pg_snapshot) GROUP BY table_name",
                (agent_id, checkpoint, checkpoint))
            return {table: int(n) for table, n in cur if n}

    def sql_batches(self, info: TableInfo) -> Iterator[Batch]:
        return self.store.sql_batches(info)

    def rtree_leaves(self, info: TableInfo) -> Optional[LeafSource]:
        """For a spatial table keyed by one integer: a generator of its packed R*Tree
        leaves for a given fan-out (see :meth:`PostGISCentral.rtree_leaves`)."""
        pk = next(c for c in info.columns if c.name == info.pk[0])
        if info.geometry is None or len(info.pk) != 1 or pk.kind != "integer":
            return None
        snapshot = self.store._scalar("SELECT pg_export_snapshot()")
        return lambda fanout: self.store.rtree_leaves(info, fanout, snapshot)


class PostGISReplica(PostGISCentral):
    """A hot standby of the central database that pulls read in place of it
    (``central.read_url``); nothing is ever written here.

    Its read session serves only when its snapshot certainly shows everything ``floor``
    shows (what the local copy may already reflect, see
    :mod:`terrafusion_agent.sync.reader`), checked in that very snapshot. A session that
    cannot serve, or whose server fails while it reads, raises ReplicaUnusable: the
    pull's local transaction rolls back and the pull reads the primary instead.
    """

    def __init__(self, url: str, floor: str, **kw: Any):
        self.floor = floor
        super().__init__(url, **kw)

    @contextmanager
    def read_session(self) -> Iterator[PgReadSession]:
        try:
            with super().read_session() as rs:
                if not rs.covers(self.floor):
                    raise ReplicaUnusable(
                        f"The read replica {self.describe()} is behind this copy (its "
                        f"snapshot {rs.checkpoint()} does not show all of {self.floor}).")
                yield rs
        except ReplicaUnusable:
            raise
        except CentralUnavailable as exc:  # worded already, naming this server
            raise ReplicaUnusable(str(exc)) from None
        except psycopg.Error as exc:
            raise ReplicaUnusable(f"The read replica {self.describe()} failed while "
                                  f"reading: {_first_line(exc)}.") from None
