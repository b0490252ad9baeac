"""What every store shares: the table description, and the contract each central
store fulfils (:class:`CentralStore` with its :class:`ReadSession` and
:class:`WriteSession`), which the sync engine, verify, init-central and the health
check rely on and nothing more."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Iterable, Iterator, Optional, Sequence

#: column kinds the engine knows; every database type maps onto one of them. "decimal"
#: is an exact decimal number that may need more digits than a double keeps (a numeric
#: of more than 15 digits, or of any): it travels as :class:`decimal.Decimal`.
KINDS = ("integer", "real", "decimal", "boolean", "text", "date", "datetime", "blob",
         "geometry")

#: the tables of the central bookkeeping (the migrations' and their version table): what
#: uninstall-central drops; tf_origin and tf_history_values exist only in SpatiaLite
BOOKKEEPING_TABLES = ("tf_agents", "tf_change_log", "tf_history", "tf_history_tx",
                      "tf_history_values", "tf_key_blocks", "tf_origin", "tf_push_receipts",
                      "tf_schema_version", "tf_settings")
#: the views of the central bookkeeping
BOOKKEEPING_VIEWS = ("tf_fleet",)

#: a row's primary key values, in key column order
Key = tuple
#: a row as the engine compares and writes it: {column: value} (see ``stores.rows``)
Row = dict[str, Any]
#: a table formatted for the local copy's bulk load: (row count, ``VALUES`` texts of
#: SQLite literals, {decimal column: ``VALUES`` texts of (key..., exact digits)})
Batch = tuple[int, list[str], dict[str, list[str]]]
#: one packed R*Tree leaf: (node number, cell count, cells, xmin, xmax, ymin, ymax)
Leaf = tuple
#: the leaves of a table's packed spatial index, for a given fan-out
LeafSource = Callable[[int], Iterable[Leaf]]


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    nullable: bool = True
    #: the column's type in the central database, where it tells more than the kind
    db_type: Optional[str] = None
    #: central computes its value (a generated column): read, never written
    generated: bool = False


@dataclass(frozen=True)
class GeometryInfo:
    column: str
    srid: int
    geometry_type: str  # OGC name without dimension suffix, e.g. MULTIPOLYGON
    dims: str = "XY"  # XY, XYZ, XYM or XYZM


@dataclass(frozen=True)
class TableInfo:
    """A synced table: columns in a fixed order, its primary key, its geometry (if any)."""

    name: str
    columns: tuple[Column, ...]
    pk: tuple[str, ...]
    geometry: Optional[GeometryInfo] = None

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def generated(self) -> frozenset[str]:
        """The columns central computes: never written by the agent."""
        return frozenset(c.name for c in self.columns if c.generated)

    @property
    def srid(self) -> int:
        """The geometry column's SRID; only a column of kind "geometry" asks for it."""
        if self.geometry is None:
            raise ValueError(f"table {self.name} has no geometry column")
        return self.geometry.srid

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "columns": [[c.name, c.kind, c.nullable, c.db_type, *([True] * c.generated)]
                        for c in self.columns],
            "pk": list(self.pk),
            "geometry": None
            if self.geometry is None
            else {
                "column": self.geometry.column,
                "srid": self.geometry.srid,
                "type": self.geometry.geometry_type,
                "dims": self.geometry.dims,
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TableInfo:
        geom = data.get("geometry")
        return cls(
            name=data["name"],
            columns=tuple(Column(c[0], c[1], bool(c[2]), c[3] if len(c) > 3 else None,
                                 len(c) > 4 and bool(c[4])) for c in data["columns"]),
            pk=tuple(data["pk"]),
            geometry=None
            if geom is None
            else GeometryInfo(geom["column"], int(geom["srid"]), geom["type"], geom["dims"]),
        )


@dataclass(frozen=True)
class TableSpec:
    """A table to create: its layout, and what only its creation needs.

    A column's ``db_type`` names its PostgreSQL type where the kind says too little
    ("bigint", "numeric(14,2)"); SpatiaLite declares every kind by its own name.
    """

    info: TableInfo
    #: the database numbers the rows (a single integer key, left out of loaded rows)
    numbered_key: bool = False
    #: column sets whose values are unique
    unique: tuple[tuple[str, ...], ...] = ()
    #: (column, the only values it may hold)
    choices: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: column sets to index; the geometry column always gets a spatial index
    indexes: tuple[tuple[str, ...], ...] = ()

    @property
    def loaded_columns(self) -> tuple[Column, ...]:
        """The columns of a loaded row, in order."""
        if self.numbered_key:
            return tuple(c for c in self.info.columns if c.name != self.info.pk[0])
        return self.info.columns


@dataclass(frozen=True)
class Poll:
    """What one read of central tells an agent before it syncs (:meth:`CentralStore.poll`)."""

    #: the database's identity; None while none was recorded yet
    central_id: Optional[str]
    #: the bookkeeping has everything this agent writes
    current: bool
    #: central's snapshot now: the checkpoint a sync that finds nothing new moves to
    snapshot: str
    #: others changed rows since the checkpoint (None: no checkpoint to compare with)
    changed: Optional[bool]
    #: changes after the checkpoint may have been purged already
    lost: bool
    #: the synced tables' columns, keys and change capture as they are now: table
    #: descriptions read under the same fingerprint still hold
    fingerprint: str
    #: every commit ``snapshot`` saw is already flushed, so the snapshot may become the
    #: checkpoint without a durable write of the agent's own
    flushed: bool
    #: no agent purged the change log and the history for a period
    purge_due: bool


class CentralStore(ABC):
    """The central database as the engine sees it: PostGIS, or an embedded SpatiaLite
    file. A store that lacks one of these cannot be instantiated.

    Methods that write rows (:meth:`insert_rows` and the like) run only inside
    :meth:`write_session`, through its :class:`WriteSession`.
    """

    @property
    @abstractmethod
    def kind(self) -> str:
        """The database's kind: "postgis" or "spatialite"."""

    @property
    @abstractmethod
    def driver_errors(self) -> tuple[type[Exception], ...]:
        """The driver's exceptions, which the engine words as "central failed" should
        one escape a store method."""

    @abstractmethod
    def describe(self) -> str:
        """The database as the user may see it (a URL with its password masked)."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def interrupt(self) -> None:
        """Stop the statement this store runs on another thread, from any thread: an
        export rebuilding a table from central's history is cancelled. That statement
        then fails; the store itself may be closed, not used further."""

    # --- schema ---------------------------------------------------------------------------

    @abstractmethod
    def table_exists(self, name: str) -> bool: ...

    @abstractmethod
    def table_info(self, name: str) -> TableInfo:
        """The table's layout; TableError names a missing table or one without a key."""

    @abstractmethod
    def create_tables(self, tables: Sequence[tuple[TableSpec, Iterable[tuple]]]) -> None:
        """Create each table and bulk-load its rows, then add its key, constraints and
        indexes: all in one transaction, so either every table is there, complete, or
        none is. A row is a tuple of values in :attr:`TableSpec.loaded_columns` order:
        geometry as WKB, numbers as int, float or Decimal, dates and times as ISO text.
        A SpatiaLite table has its geometry column last."""

    # --- bookkeeping ----------------------------------------------------------------------

    @abstractmethod
    def has_bookkeeping(self) -> bool:
        """Whether init-central ever ran here (the change log exists)."""

    @abstractmethod
    def bookkeeping_current(self) -> bool:
        """Whether the bookkeeping has everything this agent writes."""

    @abstractmethod
    def installed_objects(self) -> list[tuple[str, str]]:
        """What ``init-central`` made in this database, as (kind, name): the capture
        triggers on the county's tables, then the bookkeeping's views, tables and
        functions (:data:`BOOKKEEPING_TABLES`, :data:`BOOKKEEPING_VIEWS`). Never one of
        the county's tables, columns or rows."""

    @abstractmethod
    def uninstall(self) -> list[tuple[str, str]]:
        """Remove everything :meth:`installed_objects` lists, in one transaction (all or
        nothing); answers what was removed. The county's tables keep every row and
        column."""

    @abstractmethod
    def install_tracking(self, info: TableInfo) -> None:
        """Create (or refresh) the change capture of one table, history included;
        idempotent. A table that had none starts its history now."""

    @abstractmethod
    def tracking_installed(self, name: str) -> bool:
        """Whether every change to the table reaches the change log and the history."""

    @abstractmethod
    def refresh_tracking(self, info: TableInfo) -> None:
        """Bring an installed capture up to date with the table's columns, where it
        cannot follow them by itself (every sync asks, before pulling)."""

    @abstractmethod
    def central_id(self) -> str:
        """This database's identity, so an agent notices being pointed at another one."""

    @abstractmethod
    def purge_change_log(self, retention_days: int) -> int:
        """Drop change-log entries older than the retention; returns how many."""

    def poll(self, tables: Sequence[str], checkpoint: Optional[str], agent_id: str,
             purge_every: float) -> Optional[Poll]:
        """Whether anything changed for this agent, in one read-only round trip (see
        :class:`Poll`); ``purge_every``: seconds between purges. None when the store
        cannot tell that cheaply (then every sync reads everything)."""
        return None

    def make_durable(self) -> None:
        """Flush every commit this store has seen, so a checkpoint naming them is never
        lost to a server crash (a store whose commits are always durable: nothing)."""
        return None

    def purge(self, retention_days: int, history_retention_days: int,
              every: float) -> Optional[tuple[int, int]]:
        """Purge the change log and the history when no agent did for ``every``
        seconds; returns (change-log entries, history entries) dropped, None when it
        was not due or another agent is purging."""
        return (self.purge_change_log(retention_days),
                self.purge_history(history_retention_days))

    def healthy(self) -> bool:
        """False once the connection is known to be gone (a kept store is then
        replaced before its next sync)."""
        return True

    # --- audit history --------------------------------------------------------------------

    @abstractmethod
    def history(self, info: TableInfo, key: tuple, since: Optional[str] = None,
                until: Optional[str] = None) -> list[dict]:
        """The recorded changes of one row, newest first, committed from ``since`` to
        ``until`` (ISO-8601 times, inclusive; one without a zone is UTC).

        Each entry: ``{"id", "table", "key" (list), "op" ("insert", "update" or
        "delete"), "committed_at" (ISO UTC text), "role", "application", "agent"
        ({"id", "os_user", "host"} for an agent's push, else None), "columns" (the
        changed columns in table order: every column for an insert or a delete),
        "old", "new" ({column: value})}``. Values are JSON-ready: numbers (a decimal
        as its exact digits in a string), text, geometry as WKT, blobs as hex.
        TerraFusionError names a time that is not ISO-8601."""

    @abstractmethod
    def history_start(self, table: str) -> Optional[str]:
        """The time (ISO UTC text) from which the table's history is complete; None
        when it has none."""

    @abstractmethod
    def rows_as_of(self, info: TableInfo, at: str) -> Iterator[tuple]:
        """Every row of the table as it stood at commit time ``at``, in the order and
        form of :meth:`read_rows`: the current rows with the history after ``at``
        undone. TerraFusionError says when the history starts, for an earlier ``at``."""

    @abstractmethod
    def row_version(self, info: TableInfo, key: tuple, entry_id: int) -> Optional[Row]:
        """The row ``key`` as it stood right after history entry ``entry_id`` (in the
        form of :meth:`rows_by_key`); None when that entry is its delete. NotFound when
        the table has no such entry for that key."""

    @abstractmethod
    def purge_history(self, retention_days: int) -> int:
        """Drop history older than the retention, moving each table's history start
        past what was dropped; returns how many entries went."""

    def current_snapshot(self) -> Optional[str]:
        """What a read session opened now would take as its :meth:`ReadSession.floor`
        (read outside any session); None for a store that serves no replica."""
        return None

    @abstractmethod
    def heartbeat(self, agent: dict[str, Any]) -> None:
        """Record (or refresh) this agent in ``tf_agents``, durably: who and where it is
        and the figures of ``stores.fleet.HEARTBEAT_FIGURES`` (missing ones as NULL)."""

    @abstractmethod
    def fleet(self) -> list[dict[str, Any]]:
        """Every agent's row of the ``tf_fleet`` view (``stores.fleet.FLEET_COLUMNS``,
        times as ISO 8601 UTC text), stale ones first; only reads that view, so any role
        allowed to read it may ask. TerraFusionError when the central has no such view."""

    @abstractmethod
    def allocate_keys(self, info: TableInfo, agent_id: str) -> Optional[tuple[int, int]]:
        """Reserve a block of keys (first, last) for rows digitised offline; None when
        the table's key cannot have one."""

    @abstractmethod
    def dependency_order(self, names: list[str]) -> list[str]:
        """``names`` with every table a foreign key references before the tables
        referencing it."""

    # --- one pull, one push ---------------------------------------------------------------

    @abstractmethod
    def read_session(self) -> ContextManager[ReadSession]:
        """One consistent snapshot for one pull."""

    @abstractmethod
    def write_session(self, agent_id: str) -> ContextManager[WriteSession]:
        """One push transaction; the changes it makes are marked with ``agent_id``, and
        their history with the OS user and host of this process as well. Leaving it by
        an exception rolls everything back."""

    @abstractmethod
    def receipts(self, agent_id: str, batch_ids: list[str]) -> dict[str, list[str]]:
        """The receipts of those push batches that committed: {batch id: [JSON parts]}."""

    @abstractmethod
    def clear_receipts(self, agent_id: str) -> None:
        """Forget this agent's receipts: it has settled every batch they describe."""

    # --- rows -----------------------------------------------------------------------------

    @abstractmethod
    def count(self, info: TableInfo) -> int: ...

    @abstractmethod
    def read_rows(self, info: TableInfo) -> Iterator[tuple]:
        """Every row in column order: geometry as ISO WKB, numbers as int, float or
        Decimal, dates and times as text."""

    @abstractmethod
    def rows_by_key(self, info: TableInfo, keys: list[Key], lock: bool = False
                    ) -> dict[Key, Row]:
        """The current rows of ``keys`` (a missing key: no such row); ``lock`` holds them
        for the enclosing write session."""

    @abstractmethod
    def insert_rows(self, info: TableInfo, rows: list[Row]) -> None: ...

    @abstractmethod
    def update_rows(self, info: TableInfo, updates: list[tuple[Key, Row]]) -> None:
        """``updates``: (key, {column: new value}) pairs."""

    @abstractmethod
    def delete_rows(self, info: TableInfo, keys: list[Key]) -> None: ...

    @abstractmethod
    def insert_receipt(self, agent_id: str, batch_id: str, parts: list[str]) -> None:
        """Store a push batch's receipt (``parts``: JSON texts) in its transaction."""

def check_tables(store: CentralStore, tables: tuple[str, ...]) -> list[dict]:
    """Describe every configured table, refusing a missing one or one without a key by name."""
    out = []
    for name in tables:
        info = store.table_info(name)
        out.append({"table": name, "pk": list(info.pk),
                    "geometry": info.geometry.column if info.geometry else None,
                    "rows": store.count(info)})
    return out


def topological(names: list[str], edges: list[tuple[str, str]]) -> list[str]:
    """``names`` with each parent before its children (``edges``: (child, parent));
    otherwise in the given order. A cycle keeps the given order for its members."""
    parents: dict[str, set[str]] = {n: set() for n in names}
    for child, parent in edges:
        if child in parents and parent in parents and child != parent:
            parents[child].add(parent)
    out: list[str] = []
    placed: set[str] = set()
    while len(out) < len(names):
        ready = [n for n in names if n not in placed and parents[n] <= placed]
        if not ready:  # a cycle: take the first remaining table as it comes
            ready = [next(n for n in names if n not in placed)]
        out.append(ready[0])
        placed.add(ready[0])
    return out


class ReadSession(ABC):
    """Reads of one pull inside one consistent snapshot."""

    #: every commit the snapshot saw is durable already (else the pull asks
    #: :meth:`CentralStore.make_durable` before keeping the checkpoint)
    flushed = True

    def __init__(self, store: CentralStore):
        self.store = store

    @abstractmethod
    def checkpoint(self) -> str:
        """This snapshot, as the checkpoint the next pull starts from."""

    @abstractmethod
    def lost_since(self, checkpoint: str) -> bool:
        """True when changes after ``checkpoint`` may have been purged already."""

    @abstractmethod
    def changed_keys(self, checkpoint: str, agent_id: str,
                     tables: Optional[Sequence[str]] = None) -> dict[str, list[Key]]:
        """Keys changed by others than ``agent_id`` since ``checkpoint``, per table (of
        ``tables`` only, when given)."""

    def change_counts(self, checkpoint: str, agent_id: str) -> dict[str, int]:
        """Per table, at least as many as the keys :meth:`changed_keys` would return,
        without reading them: what a pull looks at before deciding between fetching
        the changed rows and copying the whole table."""
        return {t: len(k) for t, k in self.changed_keys(checkpoint, agent_id).items()}

    def floor(self) -> Optional[str]:
        """The most this snapshot may show, as a snapshot of the same kind as
        :meth:`checkpoint` (see :mod:`terrafusion_agent.sync.reader`); None for a store
        that serves no replica."""
        return None

    def read_rows(self, info: TableInfo) -> Iterator[tuple]:
        return self.store.read_rows(info)

    def rows_by_key(self, info: TableInfo, keys: list[Key]) -> dict[Key, Row]:
        return self.store.rows_by_key(info, keys)

    def count(self, info: TableInfo) -> int:
        return self.store.count(info)

    def sql_batches(self, info: TableInfo) -> Optional[Iterator[Batch]]:
        """The whole table already formatted as SQLite literals, when the store can do
        that faster than the local side formats rows (the bulk path of a first sync);
        None otherwise, and :meth:`read_rows` serves."""
        return None

    def rtree_leaves(self, info: TableInfo) -> Optional[LeafSource]:
        """The table's spatial index packed centrally, when the store can; else None."""
        return None


class WriteSession(ABC):
    """Writes of one push inside one central transaction."""

    def __init__(self, store: CentralStore, agent_id: str):
        self.store = store
        self.agent_id = agent_id

    @abstractmethod
    def savepoint(self) -> ContextManager[None]:
        """A nested transaction: leaving it by an exception undoes only what it did."""

    @abstractmethod
    def refusal(self, exc: BaseException) -> Optional[str]:
        """The server's sentence when ``exc`` means "central refuses this row"; None for
        any other error."""

    def lock_rows(self, info: TableInfo, keys: Iterable[Key]) -> dict[Key, Row]:
        return self.store.rows_by_key(info, list(keys), lock=True)

    def insert(self, info: TableInfo, rows: list[Row]) -> None:
        self.store.insert_rows(info, rows)

    def update(self, info: TableInfo, updates: list[tuple[Key, Row]]) -> None:
        self.store.update_rows(info, updates)

    def delete(self, info: TableInfo, keys: list[Key]) -> None:
        self.store.delete_rows(info, keys)

    def record_receipt(self, batch_id: str, parts: list[str]) -> None:
        """Store what this batch did (``parts``: JSON texts) in the batch's transaction."""
        self.store.insert_receipt(self.agent_id, batch_id, parts)

