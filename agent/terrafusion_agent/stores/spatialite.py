"""Opening SQLite files with the SpatiaLite extension loaded."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Optional

from terrafusion_agent.errors import TerraFusionError

BUSY_TIMEOUT_MS = 30_000


def connect(path: str | Path, *, create: bool = False, init_metadata: bool = True,
            what: str = "database", busy_timeout: float = BUSY_TIMEOUT_MS / 1000,
            factory: type[sqlite3.Connection] = sqlite3.Connection) -> sqlite3.Connection:
    """Open ``path`` with mod_spatialite loaded, WAL journal and a busy timeout (seconds).

    ``create=False`` refuses a missing file instead of silently creating an empty one.
    ``factory`` is the connection class (the local copy's words its own errors).
    """
    path = Path(path)
    if not create and not path.exists():
        raise TerraFusionError(f"The {what} {path} does not exist.")
    if create:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TerraFusionError(f"The folder of the {what} {path} cannot be created: "
                                   f"{exc.strerror or exc}.") from None
    try:
        conn = sqlite3.connect(str(path), timeout=busy_timeout, isolation_level=None,
                               check_same_thread=False, factory=factory)
    except sqlite3.Error as exc:
        raise TerraFusionError(f"The {what} {path} cannot be opened: {exc}.") from None
    try:
        _load_spatialite(conn)
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        try:
            conn.execute("PRAGMA journal_mode = WAL").fetchone()
        except sqlite3.DatabaseError as exc:
            raise TerraFusionError(
                f"The {what} {path} is not an SQLite database: {exc}.") from None
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        if init_metadata and not has_spatial_metadata(conn):
            conn.execute("SELECT InitSpatialMetadata(1)")
    except BaseException:
        conn.close()
        raise
    return conn


def _load_spatialite(conn: sqlite3.Connection) -> None:
    if not hasattr(conn, "enable_load_extension"):
        raise TerraFusionError(
            "This Python cannot load SQLite extensions, so SpatiaLite is unavailable; "
            "use the system Python (/usr/bin/python3) or the one that ships with QGIS."
        )
    conn.enable_load_extension(True)
    last: Optional[Exception] = None
    for name in ("mod_spatialite", "mod_spatialite.so", "libspatialite"):
        try:
            conn.load_extension(name)
            break
        except sqlite3.OperationalError as exc:
            last = exc
    else:
        raise TerraFusionError(
            f"The SpatiaLite extension (mod_spatialite) cannot be loaded: {last}; "
            "install libsqlite3-mod-spatialite."
        )
    conn.enable_load_extension(False)


def has_spatial_metadata(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'geometry_columns'"
    ).fetchone()
    return bool(row[0])


def declared_kind(decl: str) -> str:
    """Map an SQLite declared column type to an engine kind."""
    d = (decl or "").upper()
    if "INT" in d:
        return "integer"
    if "BOOL" in d:
        return "boolean"
    if d.startswith("DATETIME") or d.startswith("TIMESTAMP"):
        return "datetime"
    if d.startswith("DATE"):
        return "date"
    if "NUMERIC" in d or "DECIMAL" in d:
        # whatever its declared size: SQLite holds no column to it (an integer of 18
        # digits stays one in a NUMERIC(10,2) column), and a double cannot hold that
        return "decimal"
    if any(t in d for t in ("REAL", "FLOA", "DOUB")):
        return "real"
    if "BLOB" in d:
        return "blob"
    return "text"


#: declared SQLite type for each kind; QGIS's SpatiaLite provider reads these names
KIND_DECL = {
    "integer": "INTEGER",
    "real": "DOUBLE",
    # not NUMERIC: QGIS reads only REAL, DOUBLE and FLOAT columns as numbers; the digits
    # a double cannot hold are kept beside it (see stores/rows.py)
    "decimal": "DOUBLE",
    "boolean": "BOOLEAN",
    "text": "TEXT",
    "date": "DATE",
    "datetime": "DATETIME",
    "blob": "BLOB",
}

GEOMETRY_TYPE_CODES = {
    0: "GEOMETRY", 1: "POINT", 2: "LINESTRING", 3: "POLYGON", 4: "MULTIPOINT",
    5: "MULTILINESTRING", 6: "MULTIPOLYGON", 7: "GEOMETRYCOLLECTION",
}
DIMS_BY_THOUSAND = {0: "XY", 1: "XYZ", 2: "XYM", 3: "XYZM"}


def geometry_columns(conn: sqlite3.Connection, table: str) -> list[tuple[str, int, str, str]]:
    """(column, srid, type, dims) for each registered geometry column of ``table``."""
    rows = conn.execute(
        "SELECT f_geometry_column, srid, geometry_type FROM geometry_columns "
        "WHERE lower(f_table_name) = lower(?)",
        (table,),
    ).fetchall()
    out = []
    for column, srid, code in rows:
        out.append((column, int(srid), GEOMETRY_TYPE_CODES.get(code % 1000, "GEOMETRY"),
                    DIMS_BY_THOUSAND.get(code // 1000, "XY")))
    return out
