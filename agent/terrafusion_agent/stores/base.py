"""What every store shares: the table description and the row canonicalisation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Optional, Protocol

#: column kinds the engine knows; every database type maps onto one of them. "decimal"
#: is an exact decimal number that may need more digits than a double keeps (a numeric
#: of more than 15 digits, or of any): it travels as :class:`decimal.Decimal`.
KINDS = ("integer", "real", "decimal", "boolean", "text", "date", "datetime", "blob",
         "geometry")


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    nullable: bool = True
    #: the column's type in the central database, where it tells more than the kind
    db_type: Optional[str] = None


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

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "columns": [[c.name, c.kind, c.nullable, c.db_type] for c in self.columns],
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
            columns=tuple(Column(c[0], c[1], bool(c[2]), c[3] if len(c) > 3 else None)
                          for c in data["columns"]),
            pk=tuple(data["pk"]),
            geometry=None
            if geom is None
            else GeometryInfo(geom["column"], int(geom["srid"]), geom["type"], geom["dims"]),
        )


class CentralStore(Protocol):
    """The central database as the engine sees it (PostGIS or embedded SpatiaLite)."""

    kind: str

    def describe(self) -> str: ...

    def table_info(self, name: str) -> TableInfo: ...

    def read_rows(self, info: TableInfo) -> Iterator[tuple]: ...

    def count(self, info: TableInfo) -> int: ...

    def init(self, tables: tuple[str, ...], demo_parcels: Optional[int] = None) -> dict: ...

    def close(self) -> None: ...


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


class ReadSession:
    """Reads of one pull inside one consistent snapshot; stores add the change queries."""

    def __init__(self, store):
        self.store = store

    def read_rows(self, info: TableInfo) -> Iterator[tuple]:
        return self.store.read_rows(info)

    def rows_by_key(self, info: TableInfo, keys: list[tuple]) -> dict[tuple, dict]:
        return self.store.rows_by_key(info, keys)

    def count(self, info: TableInfo) -> int:
        return self.store.count(info)


class WriteSession:
    """Writes of one push inside one central transaction.

    A store's session adds :meth:`savepoint` (a nested transaction that a refused row
    rolls back alone), :meth:`refusal` (the server's sentence when an error means
    "central refuses this row", None for any other error) and :meth:`record_receipt`.
    """

    def __init__(self, store, agent_id: str):
        self.store = store
        self.agent_id = agent_id

    def lock_rows(self, info: TableInfo, keys) -> dict[tuple, dict]:
        return self.store.rows_by_key(info, list(keys), lock=True)

    def insert(self, info: TableInfo, rows: list[dict]) -> None:
        self.store.insert_rows(info, rows)

    def update(self, info: TableInfo, updates: list[tuple[tuple, dict]]) -> None:
        self.store.update_rows(info, updates)

    def delete(self, info: TableInfo, keys: list[tuple]) -> None:
        self.store.delete_rows(info, keys)

    def record_receipt(self, batch_id: str, parts: list[str]) -> None:
        """Store what this batch did (``parts``: JSON texts) in the batch's transaction."""
        self.store.insert_receipt(self.agent_id, batch_id, parts)
