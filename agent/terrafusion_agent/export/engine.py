"""The export engine: one table of the local copy to one file, on GDAL's own writers.

Public API (also re-exported by :mod:`terrafusion_agent.export`)::

    plan_export(config, request) -> ExportPlan          # validate only; raises InvalidExport
    export_table(config, request, progress=None, cancel=None) -> ExportResult
    add_listener(fn) / remove_listener(fn)              # fn(event: dict) after every export

How it works, and why:

* The rows are read by GDAL's SQLite driver from the local SpatiaLite copy with one
  SELECT that already has the selected fields, their output names and the filter, and
  are written by ``gdal.VectorTranslate`` (the library behind ``ogr2ogr``). No feature
  passes through Python, so an export runs at least at ogr2ogr's speed (see
  ``bench/bench_export.py``).
* The engine creates the output layer itself, with field types from the table's
  description, then lets GDAL append the rows. Left to itself GDAL guesses types from the
  first row of a SELECT: a NULL first geometry (or an empty selection) loses the geometry
  column, a NULL first value turns a number into text, text is cut at 80 characters in a
  shapefile. The geometry is selected as ``GaiaGeometry``, a name GDAL always reads as a
  SpatiaLite geometry.
* GDAL reads an SQLite ``INTEGER`` column as 32-bit and clamps bigger values (parcel
  numbers often are); such columns are read as text and written as 64-bit integers.
* A filter is an SQLite expression, checked before anything is written: it must parse on
  the table, read only, and call no function that writes files or changes the database.
* Writes are atomic: GDAL writes a hidden temp file next to the target (``.name.tf-*``),
  which is renamed into place only when complete. A failed or cancelled export removes it.
* Cancelling interrupts GDAL's running SQLite statement (``Dataset.AbortSQL``), so a
  cancel takes effect within a fraction of a second even in the middle of a big table.
* GDAL runs in a worker thread while the calling thread watches: progress, cancel, and
  Ctrl+C in the CLI. GDAL releases the GIL, so an API server keeps answering meanwhile.
* The text formats (GeoJSON, KML, CSV) are written by one CPU-bound GDAL thread, the slow
  part of a big export. With two cores the rows are split in two halves by rowid, each
  written by its own GDAL connection and writer at the same time, and the second file's
  features are appended to the first's (each format's framing is checked; if it is not
  what GDAL is known to write, the export is redone in one piece).
* A GeoPackage's spatial index, which GDAL fills after the rows (two thirds of the time),
  is copied from the local copy's own when the whole table is exported as it is: the
  same entries in the same SQLite R*Tree format (see :mod:`.gpkg_index`).

GDAL is imported only inside the functions that write, so importing this module (and the
CLI, and the agent) stays light.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import sqlite3
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

from terrafusion_agent.config import Config
from terrafusion_agent.errors import (
    ExportCancelled,
    ExportError,
    InvalidExport,
    LocalDamaged,
    LocalUnavailable,
    TerraFusionError,
)
from terrafusion_agent.export import diskfull, gpkg_index, presets, protected
from terrafusion_agent.export.formats import FormatSpec, layer_options, shorten_names
from terrafusion_agent.export.request import ExportRequest
from terrafusion_agent.sql import quote_ident as qi
from terrafusion_agent.stores.base import Column, TableInfo

log = logging.getLogger("terrafusion.export")

#: the name GDAL's SQLite driver always reads as a SpatiaLite geometry in a SELECT
GEOMETRY_ALIAS = "GaiaGeometry"
#: marker in the names of temp files and folders, so stale ones can be recognised
TEMP_MARK = ".tf-"
#: dBase limits (shapefile attributes)
DBF_MAX_TEXT = 254
INT32_MAX = 2**31 - 1
#: rows exported to memory to estimate the output size (progress of streaming formats)
SAMPLE_ROWS = 500
#: how often the watching thread looks at cancel and progress
POLL_SECONDS = 0.1
PROGRESS_EVERY_SECONDS = 0.25
#: zlib level for the shapefile .zip: level 6 takes 2.5x as long for a 15% smaller file
ZIP_LEVEL = 3
#: below this many features a second writer costs more than it saves
PARALLEL_MIN_FEATURES = 20_000

_FILTER_FORBIDDEN = re.compile(
    # SpatiaLite functions that write files or change the database: never from a filter.
    r"^(?:import|export|blobtofile|blobfromfile|xb_loadxml|xb_storexml|load_extension|"
    r"readfile|writefile|create|drop|recover|discard|disable|enable|init|insert|update|"
    r"upgrade|register|unregister|rename|clone|copy|invalidate|remove|eliminate|rebuild|"
    r"sqlproc|storedproc|storedvar|gpkg|autogpkg|autofdo|rtreealign|se_|wms_|topogeo_|"
    r"toponet_|addgeometrycolumn|addfdogeometrycolumn|addtemporary|addvirtualtableextent|"
    r"proj_set)", re.IGNORECASE)


# --- data -------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputColumn:
    """One attribute of the output: where it comes from and what it is called."""

    source: str
    name: str
    kind: str
    #: OGR field type name (Integer, Integer64, Real, String, Date...), width, precision
    ogr_type: str = "String"
    width: int = 0
    precision: int = 0
    #: read as text: 64-bit integers (GDAL would clamp them) and ISO dates
    as_text: bool = False


@dataclass(frozen=True)
class ExportPlan:
    """A validated export: everything needed to write it, nothing written yet."""

    local_path: Path
    table: TableInfo
    spec: FormatSpec
    out: Path
    columns: tuple[OutputColumn, ...]
    where: Optional[str]
    features: int
    source_srs: Optional[str]
    target_srs: Optional[str]
    preset: Optional[str] = None
    overwrite: bool = False
    warnings: tuple[str, ...] = ()
    #: leave out rows without geometry (FlatGeobuf cannot store them)
    skip_null_geometry: bool = False

    def row_conditions(self) -> list[str]:
        """Conditions besides the filter that decide which rows are exported."""
        if self.skip_null_geometry and self.table.geometry:
            return [f"{qi(self.table.geometry.column)} IS NOT NULL"]
        return []

    def filter_sql(self) -> str:
        """`` WHERE ...`` choosing the exported rows (empty for the whole table)."""
        conditions = ([f"({self.where})"] if self.where else []) + self.row_conditions()
        return f" WHERE {' AND '.join(conditions)}" if conditions else ""

    def count_sql(self) -> str:
        """How many rows the export selects."""
        return f"SELECT count(*) FROM {qi(self.table.name)}{self.filter_sql()}"

    @property
    def reproject(self) -> bool:
        return self.target_srs is not None and self.target_srs != self.source_srs

    @property
    def renamed(self) -> dict[str, str]:
        return {c.source: c.name for c in self.columns if c.source != c.name}

    def select_sql(self, limit: Optional[int] = None,
                   rowids: tuple[Optional[int], Optional[int]] = (None, None)) -> str:
        """The one SELECT GDAL reads: output names, filter, geometry as GaiaGeometry;
        ``rowids`` (from, to) restricts it to one half of a split export."""
        exprs = []
        for c in self.columns:
            expr = qi(c.source)
            exprs.append(f"CAST({expr} AS TEXT) AS {qi(c.name)}" if c.as_text
                         else f"{expr} AS {qi(c.name)}")
        if self.table.geometry:
            exprs.append(f"{qi(self.table.geometry.column)} AS {qi(GEOMETRY_ALIAS)}")
        sql = f"SELECT {', '.join(exprs)} FROM {qi(self.table.name)}"
        conditions = [f"({self.where})"] if self.where else []
        conditions += self.row_conditions()
        if rowids[0] is not None:
            conditions.append(f"_rowid_ >= {int(rowids[0])}")
        if rowids[1] is not None:
            conditions.append(f"_rowid_ < {int(rowids[1])}")
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return sql


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    table: str
    format: str
    path: Path
    features: int
    bytes: int
    duration_seconds: float
    crs: Optional[str]
    fields: tuple[str, ...]
    renamed: dict[str, str] = field(default_factory=dict)
    where: Optional[str] = None
    preset: Optional[str] = None
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON summary the CLI prints."""
        return {
            "table": self.table, "format": self.format, "path": str(self.path),
            "features": self.features, "bytes": self.bytes,
            "duration_seconds": round(self.duration_seconds, 3), "crs": self.crs,
            "fields": list(self.fields), "renamed": dict(self.renamed), "where": self.where,
            "preset": self.preset, "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class ExportProgress:
    """A progress report; ``fraction`` is None while it cannot be estimated."""

    stage: str  #: "writing", "packing" (shapefile zip) or "done"
    features: int  #: features being exported in total
    bytes_written: int
    elapsed_seconds: float
    fraction: Optional[float] = None


class CancelToken:
    """Thread-safe cancel flag for :func:`export_table` (the jobs API uses one per job)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the export to stop; safe from any thread, any number of times."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """Whether a cancel was asked for."""
        return self._event.is_set()


ProgressCallback = Callable[[ExportProgress], None]
#: a token, or any callable answering "stop now?" (QgsTask.isCanceled, for one)
CancelCheck = Union[CancelToken, Callable[[], bool]]


# --- listeners ----------------------------------------------------------------------------

_listeners: list[Callable[[dict[str, Any]], None]] = []
_listeners_lock = threading.Lock()


def add_listener(fn: Callable[[dict[str, Any]], None]) -> None:
    """Call ``fn(event)`` when any export ends (the agent's metrics feed on it).

    ``event``: ``format``, ``result`` (completed, failed or cancelled), ``features``,
    ``bytes``, ``duration_seconds``, ``table``, ``preset``, ``error``. Requests refused as
    invalid never start, so they send no event. ``fn`` runs on the exporting thread and
    must be quick; its exceptions are logged, never raised.
    """
    with _listeners_lock:
        if fn not in _listeners:
            _listeners.append(fn)


def remove_listener(fn: Callable[[dict[str, Any]], None]) -> None:
    """Stop calling ``fn`` (no error if it was not added)."""
    with _listeners_lock:
        if fn in _listeners:
            _listeners.remove(fn)


def notify_listeners(event: dict[str, Any]) -> None:
    """Send one export-ended event to every listener (the jobs API uses it too)."""
    with _listeners_lock:
        listeners = list(_listeners)
    for fn in listeners:
        try:
            fn(dict(event))
        except Exception:  # a broken listener must not break exports
            log.exception("export listener %r failed", fn)


# --- planning -------------------------------------------------------------------------------


def plan_export(config: Config, request: ExportRequest) -> ExportPlan:
    """Check everything about ``request`` without writing; raises :class:`InvalidExport`.

    Checks the preset, table, format, fields, renames, CRS, filter, feature limit and the
    output file and folder, so an API caller gets a 4xx before a job is queued.
    """
    resolved = presets.resolve(config, request)
    protected.refuse_own_file(config, resolved.out)
    spec = resolved.spec
    with _open_local(Path(config.local_path), spatial=bool(resolved.where)) as conn:
        info = _table_info(conn, resolved.table, Path(config.local_path))
        if spec.needs_geometry and info.geometry is None:
            raise InvalidExport(
                f"Table {info.name} has no geometry, so it cannot be written as {spec.label}; "
                "choose csv, gpkg or geojson.")
        columns = _output_columns(info, resolved)
        if resolved.where:
            _check_filter(conn, info, resolved.where)
        source_srs = _source_srs(conn, info)
        target_srs = _target_srs(spec, resolved.crs, info, source_srs)
        scan = _scan(conn, info, columns, resolved.where, spec)
    if resolved.max_features is not None and scan.rows > resolved.max_features:
        raise InvalidExport(
            f"Preset {resolved.preset} allows at most {resolved.max_features:,} features, "
            f"but {scan.rows:,} rows of {info.name} match; narrow the filter.")
    _check_output(resolved.out, resolved.overwrite)
    warnings = list(scan.warnings)
    skip_null = spec.name == "fgb" and scan.null_geometries > 0
    if skip_null:
        warnings.append(f"{scan.null_geometries:,} rows without geometry were left out: "
                        "FlatGeobuf cannot store them.")
    return ExportPlan(
        local_path=Path(config.local_path), table=info, spec=spec, out=resolved.out,
        columns=tuple(scan.columns), where=resolved.where,
        features=scan.rows - (scan.null_geometries if skip_null else 0),
        source_srs=source_srs, target_srs=target_srs, preset=resolved.preset,
        overwrite=resolved.overwrite, warnings=tuple(warnings),
        skip_null_geometry=skip_null)


@contextlib.contextmanager
def _open_local(path: Path, spatial: bool) -> Iterator[sqlite3.Connection]:
    """A query-only connection to the local copy; with SpatiaLite loaded when a filter
    may call its functions (loading it costs more than the rest of the checks)."""
    from terrafusion_agent.stores import spatialite
    from terrafusion_agent.stores.local import LocalConnection

    if not path.exists():
        raise InvalidExport(f"The local copy {path} does not exist yet; run a sync first.")
    try:
        # LocalConnection: a damaged or unreadable copy is its own sentence, never
        # mistaken for a bad filter
        if spatial:
            conn = spatialite.connect(path, create=False, init_metadata=False,
                                      what="local copy", factory=LocalConnection)
        else:
            conn = sqlite3.connect(str(path), timeout=spatialite.BUSY_TIMEOUT_MS / 1000,
                                   isolation_level=None, factory=LocalConnection)
    except LocalUnavailable:
        raise
    except TerraFusionError as exc:
        raise ExportError(str(exc)) from None
    except sqlite3.Error as exc:
        raise ExportError(f"The local copy {path} cannot be opened: {exc}.") from None
    try:
        conn.execute("PRAGMA query_only = 1")
        yield conn
    finally:
        conn.close()


def _table_info(conn: sqlite3.Connection, name: str, path: Path) -> TableInfo:
    try:
        rows = conn.execute("SELECT table_name, info_json FROM tf_tables").fetchall()
    except sqlite3.OperationalError:
        rows = []
    if not rows:
        raise InvalidExport(f"The local copy {path} has no synced tables yet; run a sync first.")
    infos = {table: info for table, info in rows}
    if name not in infos:
        raise InvalidExport(f"Table {name!r} is not in the local copy; it has "
                            f"{', '.join(sorted(infos))}.")
    return TableInfo.from_json(json.loads(infos[name]))


def _output_columns(info: TableInfo, resolved: presets.ResolvedRequest) -> list[OutputColumn]:
    """The selected attributes in output order, renamed and (dBase) shortened."""
    geometry = info.geometry.column if info.geometry else None
    attributes = {c.name: c for c in info.columns if c.name != geometry}
    if resolved.fields is None:
        chosen: list[Column] = list(attributes.values())
    else:
        chosen, seen = [], set()
        for name in resolved.fields:
            if name == geometry:
                continue  # the geometry is always exported
            if name not in attributes:
                raise InvalidExport(f"Table {info.name} has no field {name!r}; its fields are "
                                    f"{', '.join(attributes)}.")
            if name in seen:
                raise InvalidExport(f"Field {name!r} is named twice in the field list.")
            seen.add(name)
            chosen.append(attributes[name])
    for old in resolved.renames:
        if old not in attributes:
            raise InvalidExport(f"Preset {resolved.preset} renames {old!r}, which table "
                                f"{info.name} does not have.")
    names = [resolved.renames.get(c.name, c.name) for c in chosen]
    lowered: dict[str, str] = {}
    for column, name in zip(chosen, names):
        if name.lower() in lowered or name == GEOMETRY_ALIAS:
            raise InvalidExport(f"Two output fields would be called {name!r} "
                                f"({lowered.get(name.lower(), name)} and {column.name}).")
        lowered[name.lower()] = column.name
    if resolved.spec.max_field_name:
        short = shorten_names(names, resolved.spec.max_field_name)
        names = [short[n] for n in names]
    return [OutputColumn(c.name, n, c.kind) for c, n in zip(chosen, names)]


def filter_problem(where: str) -> Optional[str]:
    """Why ``where`` is not a single SQL expression (None when it is one).

    The filter is pasted into ``WHERE (...)``; it must not close that parenthesis, end the
    statement or comment out the rest.
    """
    depth, i, n = 0, 0, len(where)
    while i < n:
        c = where[i]
        if c in "'\"`[":
            close = "]" if c == "[" else c
            j = i + 1
            while True:
                j = where.find(close, j)
                if j < 0:
                    return f"has an unclosed {c}"
                if close != "]" and where[j + 1:j + 2] == close:  # doubled quote
                    j += 2
                    continue
                break
            i = j + 1
            continue
        if where.startswith(("--", "/*"), i):
            return "contains an SQL comment"
        if c == ";":
            return "contains ';'"
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth < 0:
                return "closes a parenthesis it did not open"
        i += 1
    return None


def _check_filter(conn: sqlite3.Connection, info: TableInfo, where: str) -> None:
    """Prepare the filter on the table in SQLite, reading only; raises InvalidExport."""
    problem = filter_problem(where)
    if problem:
        raise InvalidExport(f"The filter {where!r} {problem}; give one SQL expression, "
                            "for example market_value > 500000.")
    refused: list[str] = []

    def authorizer(action, arg1, arg2, dbname, source):
        if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION and not _FILTER_FORBIDDEN.match(arg2 or ""):
            return sqlite3.SQLITE_OK
        refused.append(arg2 or "")
        return sqlite3.SQLITE_DENY

    conn.set_authorizer(authorizer)
    try:
        conn.execute(f"SELECT 1 FROM {qi(info.name)} WHERE ({where}) LIMIT 0").fetchall()
    except (sqlite3.Error, sqlite3.Warning) as exc:
        if refused and refused[0]:
            raise InvalidExport(f"The filter {where!r} calls {refused[0]}(), which a filter "
                                "may not use.") from None
        raise InvalidExport(f"The filter {where!r} is not valid for table {info.name}: "
                            f"{_sentence(str(exc))}.") from None
    finally:
        conn.set_authorizer(None)


def _sentence(text: str) -> str:
    """A message fragment that fits inside one sentence."""
    return " ".join(text.split()).rstrip(".")


def _source_srs(conn: sqlite3.Connection, info: TableInfo) -> Optional[str]:
    """The table's CRS as GDAL takes it: AUTH:CODE, else the WKT SpatiaLite keeps."""
    if info.geometry is None:
        return None
    srid = int(info.geometry.srid)
    try:
        row = conn.execute("SELECT auth_name, auth_srid, srtext FROM spatial_ref_sys "
                           "WHERE srid = ?", (srid,)).fetchone()
    except sqlite3.Error:
        row = None
    if row and row[0] and row[1] is not None:
        return f"{str(row[0]).upper()}:{int(row[1])}"
    if row and row[2] and row[2] != "Undefined":
        return str(row[2])
    return f"EPSG:{srid}"


_CRS_TEXT = re.compile(
    r"^\s*(?:(?P<auth>[A-Za-z][A-Za-z0-9_]*)\s*:\s*)?(?P<code>[A-Za-z0-9_.]+)\s*$")


def parse_crs(text: str) -> str:
    """``EPSG:2927``-style CRS text, checked against PROJ; raises :class:`InvalidExport`.

    Only AUTHORITY:CODE (or a bare EPSG number) is accepted: GDAL would also take file
    names and URLs, which an API caller must not be able to make the agent open.
    """
    m = _CRS_TEXT.match(text or "")
    if not m or (m["auth"] is None and not m["code"].isdigit()):
        raise InvalidExport(f"The CRS {text!r} is not understood; give it as EPSG:<code>, "
                            "for example EPSG:4326.")
    name = f"{(m['auth'] or 'EPSG').upper()}:{m['code']}"
    gdal, _, osr = _gdal()
    srs = osr.SpatialReference()
    with _gdal_errors(gdal):
        rc = srs.SetFromUserInput(name)
    if rc != 0:
        raise InvalidExport(f"The CRS {text!r} is not known to PROJ; give an existing code, "
                            "for example EPSG:4326.")
    return name


def _target_srs(spec: FormatSpec, crs: Optional[str], info: TableInfo,
                source: Optional[str]) -> Optional[str]:
    if info.geometry is None:
        if crs:
            raise InvalidExport(f"Table {info.name} has no geometry, so a CRS does not apply.")
        return None
    wanted = parse_crs(crs) if crs else None
    if spec.fixed_epsg is not None:
        fixed = f"EPSG:{spec.fixed_epsg}"
        if wanted and wanted != fixed:
            raise InvalidExport(f"{spec.label} files are always in {fixed} (WGS 84); leave out "
                                "the CRS or choose another format.")
        return fixed
    if wanted:
        return wanted
    if spec.default_epsg is not None:
        return f"EPSG:{spec.default_epsg}"
    return source


@dataclass(frozen=True)
class _Scan:
    rows: int
    null_geometries: int
    columns: list[OutputColumn]
    warnings: list[str]


def _scan(conn: sqlite3.Connection, info: TableInfo, columns: list[OutputColumn],
          where: Optional[str], spec: FormatSpec) -> _Scan:
    """One pass over the selected rows: how many, how many without geometry, the range of
    each integer column and (for dBase) the longest text, to give every field its type."""
    exprs = ["count(*)"]
    exprs.append(f"count(*) - count({qi(info.geometry.column)})" if info.geometry else "0")
    slots: list[int] = []
    for c in columns:
        slots.append(len(exprs))
        col = qi(c.source)
        if c.kind == "integer":
            exprs += [f"max(abs({col}))", f"min({col})"]
        elif spec.name == "shp" and c.kind not in ("real", "decimal", "date", "boolean"):
            exprs.append(f"max(length(CAST({col} AS BLOB)))")  # bytes, as dBase counts
    sql = f"SELECT {', '.join(exprs)} FROM {qi(info.name)}"
    if where:
        sql += f" WHERE ({where})"
    try:
        row = conn.execute(sql).fetchone()
    except sqlite3.Error as exc:  # a filter can still fail on the data (a bad cast...)
        raise InvalidExport(f"The filter {where!r} fails on table {info.name}: "
                            f"{_sentence(str(exc))}.") from None
    typed, warnings = [], []
    for slot, c in zip(slots, columns):
        field_type, width, precision, as_text = _field_type(c.kind, spec)
        if c.kind == "integer":
            biggest, smallest = int(row[slot] or 0), int(row[slot + 1] or 0)
            if biggest > INT32_MAX:
                field_type, as_text = "Integer64", True
            if spec.name == "shp":  # dBase numbers have a width: as wide as the data
                width = max(1, len(str(biggest)) + (1 if smallest < 0 else 0))
        elif spec.name == "shp" and field_type == "String":
            longest = int(row[slot] or 0)
            if longest > DBF_MAX_TEXT:
                warnings.append(f"Field {c.name} has values longer than {DBF_MAX_TEXT} bytes, "
                                "the most a shapefile field holds; they were cut short.")
            width = min(max(longest, 1), DBF_MAX_TEXT)
        typed.append(OutputColumn(c.source, c.name, c.kind, field_type, width, precision,
                                  as_text))
    return _Scan(int(row[0]), int(row[1] or 0), typed, warnings)


def _field_type(kind: str, spec: FormatSpec) -> tuple[str, int, int, bool]:
    """OGR type, width, precision and read-as-text of a column kind in a format."""
    if kind == "integer":
        return "Integer", 0, 0, False
    if kind in ("real", "decimal"):  # a decimal's column holds its nearest double
        return ("Real", 24, 15, False) if spec.name == "shp" else ("Real", 0, 0, False)
    if kind == "boolean":
        return "Integer", (1 if spec.name == "shp" else 0), 0, False
    if kind == "date" and not spec.dates_as_text:
        return "Date", 0, 0, False
    if kind == "datetime" and not spec.dates_as_text and spec.name != "shp":
        return "DateTime", 0, 0, False
    if kind in ("date", "datetime"):
        return "String", 0, 0, True  # ISO text as stored, not GDAL's 2024/01/31 12:00:00
    if kind == "blob" and spec.name != "shp":
        return "Binary", 0, 0, False
    return "String", 0, 0, False


def _check_output(path: Path, overwrite: bool) -> None:
    folder = path.parent
    if not folder.exists():
        raise InvalidExport(f"The folder {folder} does not exist.")
    if not folder.is_dir():
        raise InvalidExport(f"{folder} is not a folder.")
    if path.is_dir():
        raise InvalidExport(f"{path} is a folder; name the file to write.")
    if path.exists() and not overwrite:
        raise InvalidExport(f"The file {path} already exists; export with overwrite "
                            "(--overwrite) to replace it.")
    try:  # os.access says yes to root and on some network shares: try for real
        probe = folder / f".{path.name}{TEMP_MARK}probe-{secrets.token_hex(4)}"
        probe.touch(exist_ok=False)
        probe.unlink()
    except OSError as exc:
        if diskfull.is_full_error(exc):
            raise InvalidExport(str(diskfull.error(path))) from None
        raise InvalidExport(f"The folder {folder} is not writable "
                            f"({exc.strerror or exc.__class__.__name__}).") from None


# --- writing ------------------------------------------------------------------------------


def export_table(config: Config, request: ExportRequest,
                 progress: Optional[ProgressCallback] = None,
                 cancel: Optional[CancelCheck] = None) -> ExportResult:
    """Export one table of the local copy to one file; the one code path for every caller.

    Raises :class:`InvalidExport` for a bad request (nothing written, no event),
    :class:`ExportCancelled` when ``cancel`` fired and :class:`ExportError` when writing
    failed; in both cases no file, complete or partial, is left behind.
    """
    started = time.monotonic()
    plan = plan_export(config, request)
    return run_plan(plan, progress=progress, cancel=cancel, started=started)


def run_plan(plan: ExportPlan, progress: Optional[ProgressCallback] = None,
             cancel: Optional[CancelCheck] = None,
             started: Optional[float] = None) -> ExportResult:
    """Write a planned export (see :func:`export_table`)."""
    started = time.monotonic() if started is None else started
    event: dict[str, Any] = {"table": plan.table.name, "format": plan.spec.name,
                             "preset": plan.preset, "features": 0, "bytes": 0, "error": None}
    try:
        size = _write(plan, progress, _cancel_check(cancel), started)
    except ExportCancelled as exc:
        event.update(result="cancelled", error=str(exc))
        raise
    except KeyboardInterrupt:
        event.update(result="cancelled", error="Interrupted.")
        raise
    except BaseException as exc:
        event.update(result="failed", error=str(exc) or exc.__class__.__name__)
        raise
    else:
        event.update(result="completed", features=plan.features, bytes=size)
    finally:
        event["duration_seconds"] = time.monotonic() - started
        notify_listeners(event)
    duration = event["duration_seconds"]
    log.info("exported %d features of %s to %s (%s) in %.2f s", plan.features,
             plan.table.name, plan.out, plan.spec.name, duration)
    return ExportResult(
        table=plan.table.name, format=plan.spec.name, path=plan.out, features=plan.features,
        bytes=size, duration_seconds=duration, crs=plan.target_srs,
        fields=tuple(c.name for c in plan.columns), renamed=plan.renamed, where=plan.where,
        preset=plan.preset, warnings=plan.warnings)


def _detached(exc: BaseException) -> BaseException:
    """``exc`` without its traceback and context, for use on another thread.

    Their frames hold GDAL datasets, which must close on the GDAL thread, now, and not
    whenever (and wherever) the exception is finally collected. The traceback is logged
    as text for ``--debug``.
    """
    log.debug("export thread failed:\n%s", "".join(
        traceback.format_exception(type(exc), exc, exc.__traceback__)))
    exc.__traceback__ = None
    exc.__context__ = exc.__cause__ = None
    return exc


def _cancel_check(cancel: Optional[CancelCheck]) -> Callable[[], bool]:
    if cancel is None:
        return lambda: False
    if isinstance(cancel, CancelToken):
        return lambda: cancel.cancelled
    return lambda: bool(cancel())


class _Work:
    """What the watching thread and the GDAL thread share."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: how to interrupt each running read (GDAL datasets, SQLite connections)
        self.aborts: list[Callable[[], Any]] = []
        self.stage = "writing"
        self.estimated_bytes: Optional[int] = None
        self.error: Optional[BaseException] = None

    def abort(self) -> None:
        """Interrupt GDAL's running SQLite statement (thread-safe by GDAL's design)."""
        with self.lock:
            for abort in self.aborts:
                abort()


def _write(plan: ExportPlan, progress: Optional[ProgressCallback],
           cancelled: Callable[[], bool], started: float) -> int:
    """Write to a temp file beside the target, watch, then rename; returns the size."""
    tag = secrets.token_hex(4)
    folder, stem = plan.out.parent, plan.out.name
    temp = folder / f".{stem}{TEMP_MARK}{tag}{plan.spec.gdal_extension}"
    packed = folder / f".{stem}{TEMP_MARK}{tag}{plan.spec.extension}"  # shp: the .zip
    shp_dir = folder / f".{stem}{TEMP_MARK}{tag}.d"
    work = _Work()

    def target() -> None:
        try:
            _gdal_write(plan, work, temp, shp_dir, packed, want_estimate=progress is not None)
        except (OSError, sqlite3.Error) as exc:
            work.error = _detached(_sentence_for(plan, exc))
        except BaseException as exc:
            work.error = _detached(exc)

    worker = threading.Thread(target=target, name=f"export-{plan.table.name}", daemon=True)
    try:
        if cancelled():
            raise ExportCancelled("The export was cancelled before it started.")
        worker.start()
        _watch(plan, worker, work, progress, cancelled, started, folder,
               f".{stem}{TEMP_MARK}{tag}", packed)
        if cancelled():
            raise ExportCancelled(f"The export of {plan.table.name} was cancelled; "
                                  "no file was written.")
        if work.error is not None:
            raise work.error
        final = packed if plan.spec.name == "shp" else temp
        try:
            _publish(final, plan.out, plan.overwrite)
        except OSError as exc:
            raise _sentence_for(plan, exc) from None
        size = plan.out.stat().st_size
        if progress:
            progress(ExportProgress("done", plan.features, size,
                                    time.monotonic() - started, 1.0))
        return size
    except BaseException:
        # Ctrl+C or an error in a progress callback: stop GDAL before cleaning up.
        if worker.is_alive():
            _stop(worker, work)
        raise
    finally:
        # Everything this export made starts with the same hidden prefix: the temp file,
        # the shapefile folder and .zip, and any side file GDAL or SQLite made beside them.
        _remove_prefixed(folder, f".{stem}{TEMP_MARK}{tag}")


def _watch(plan: ExportPlan, worker: threading.Thread, work: _Work,
           progress: Optional[ProgressCallback], cancelled: Callable[[], bool],
           started: float, folder: Path, prefix: str, packed: Path) -> None:
    """Wait for the GDAL thread, forwarding cancels and reporting progress."""
    last = 0.0
    while worker.is_alive():
        worker.join(POLL_SECONDS)
        if cancelled():
            work.abort()  # again and again: a statement started after a cancel runs on
            continue
        now = time.monotonic()
        if progress and now - last >= PROGRESS_EVERY_SECONDS and worker.is_alive():
            last = now
            if work.stage == "packing":
                written = _size(packed)
            else:  # the temp file, both halves of a split export, the shapefile's parts
                written = sum(_size(p) for p in _prefixed(folder, prefix))
            fraction = None
            if work.stage == "writing" and work.estimated_bytes:
                fraction = min(0.99, written / work.estimated_bytes)
            progress(ExportProgress(work.stage, plan.features, written, now - started,
                                    fraction))


def _stop(worker: threading.Thread, work: _Work) -> None:
    while worker.is_alive():
        work.abort()
        worker.join(POLL_SECONDS)


def _size(path: Path) -> int:
    try:
        if path.is_dir():
            return sum(p.stat().st_size for p in path.iterdir())
        return path.stat().st_size
    except OSError:
        return 0


def _prefixed(folder: Path, prefix: str) -> list[Path]:
    try:
        return [e for e in folder.iterdir() if e.name.startswith(prefix)]
    except OSError:
        return []


def _remove_prefixed(folder: Path, prefix: str) -> int:
    """Remove the files and folders in ``folder`` whose names start with ``prefix``."""
    removed = 0
    for entry in _prefixed(folder, prefix):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()
        removed += 1
    return removed


def _publish(temp: Path, final: Path, overwrite: bool) -> None:
    """Move the finished temp file into place, atomically; never clobber unless asked."""
    if overwrite:
        os.replace(temp, final)
        return
    try:
        os.link(temp, final)  # fails if ``final`` appeared meanwhile, unlike a rename
    except FileExistsError:
        raise InvalidExport(f"The file {final} already exists; export with overwrite "
                            "(--overwrite) to replace it.") from None
    except OSError:  # no hard links on this file system (FAT, some shares)
        if final.exists():
            raise InvalidExport(f"The file {final} already exists; export with overwrite "
                                "(--overwrite) to replace it.") from None
        os.replace(temp, final)
        return
    temp.unlink()


def remove_stale_temp_files(out: str | os.PathLike) -> int:
    """Remove temp files a killed export left next to ``out``; returns how many."""
    out = Path(out)
    return _remove_prefixed(out.parent, f".{out.name}{TEMP_MARK}")


# --- GDAL ---------------------------------------------------------------------------------


def _gdal():
    """GDAL's bindings, imported on first use (about 50 MB and 0.2 s)."""
    try:
        from osgeo import gdal, ogr, osr
    except ImportError:
        raise ExportError("GDAL's Python bindings (osgeo) are not installed, so this "
                          "installation cannot export.") from None
    return gdal, ogr, osr


class _GdalMessages(list):
    """GDAL errors raised on this thread while the handler was installed."""

    def text(self) -> str:
        return _sentence(self[-1]) if self else "GDAL gave no reason"


@contextlib.contextmanager
def _gdal_errors(gdal) -> Iterator[_GdalMessages]:
    """Collect GDAL's errors on this thread instead of printing them to stderr.

    GDAL's handler stack is per thread, and the process-wide exception mode is left as
    it is (QGIS and other plugins share it).
    """
    messages = _GdalMessages()

    def handler(err_class, err_no, message):
        if err_class >= gdal.CE_Failure:
            messages.append(str(message))
        else:
            log.debug("GDAL: %s", message)

    gdal.PushErrorHandler(handler)
    try:
        yield messages
    finally:
        gdal.PopErrorHandler()


def _open_source(gdal, plan: ExportPlan, work: _Work, errors: _GdalMessages):
    """GDAL's read-only connection to the local copy, registered so a cancel can
    interrupt it."""
    source = gdal.OpenEx(str(plan.local_path), gdal.OF_VECTOR | gdal.OF_READONLY,
                         allowed_drivers=["SQLite"])
    if source is None:
        raise ExportError(f"GDAL cannot open the local copy {plan.local_path}: "
                          f"{errors.text()}.")
    with work.lock:
        work.aborts.append(source.AbortSQL)
    return source


def _close_source(work: _Work, source) -> None:
    with work.lock:  # after this no cancel can reach it, so it may be destroyed
        work.aborts.remove(source.AbortSQL)


def _gdal_write(plan: ExportPlan, work: _Work, temp: Path, shp_dir: Path, packed: Path,
                want_estimate: bool) -> None:
    """The GDAL thread: open the local copy read-only, translate into the temp file, and
    make sure the file is whole before it may be published."""
    gdal, ogr, osr = _gdal()
    with _gdal_errors(gdal) as errors:
        source = _open_source(gdal, plan, work, errors)
        try:
            if want_estimate and plan.spec.streaming and plan.features > SAMPLE_ROWS:
                work.estimated_bytes = _estimate_size(gdal, ogr, osr, source, plan)
            finished = _translate_to_temp(gdal, ogr, osr, source, plan, work, temp, shp_dir,
                                          packed, errors)
        finally:
            _close_source(work, source)
            source = None  # closes GDAL's connection to the local copy
    _check_written(plan, finished)


def _translate_to_temp(gdal, ogr, osr, source, plan: ExportPlan, work: _Work, temp: Path,
                       shp_dir: Path, packed: Path, errors: _GdalMessages) -> Path:
    """Write the export the fastest way its format allows; returns the file written."""
    if plan.spec.name == "shp":
        shp_dir.mkdir()
        dest = shp_dir / f"{_layer_name(plan)}.shp"
        _translate(gdal, ogr, osr, source, plan, str(dest), errors)
        work.stage = "packing"
        _zip_shapefile(shp_dir, packed)
        return packed
    index = _copyable_index(plan)
    if index is not None:
        _translate_copying_index(gdal, ogr, osr, source, plan, temp, index, errors)
        return temp
    split = _split_point(plan) if _worth_splitting(plan) else None
    if split is not None:
        try:
            _translate_halves(gdal, ogr, osr, source, plan, work, temp, split, errors)
            return temp
        except _SpliceError as exc:
            if diskfull.nearly_full(plan.out.parent):
                # halves cut short by a full disk: the whole export written again onto
                # it would only fail again, later
                raise diskfull.error(plan.out) from None
            log.warning("cannot join the halves of %s (%s); writing it in one piece",
                        plan.out.name, str(exc))
            _remove_prefixed(temp.parent, temp.name[:-len(plan.spec.gdal_extension)])
    _translate(gdal, ogr, osr, source, plan, str(temp), errors)
    return temp


def _check_written(plan: ExportPlan, path: Path) -> None:
    """Flush the finished file to the disk and make sure it is whole (see diskfull.py);
    a file cut short is an error, never an export."""
    diskfull.flush_to_disk(path)
    reason = diskfull.incomplete(path, plan.spec.name, plan.features, plan.out.parent,
                                 recount=lambda: _count_rows(plan))
    if reason is None:
        return
    if diskfull.nearly_full(plan.out.parent):
        raise diskfull.error(plan.out)
    raise ExportError(f"GDAL did not write all of {plan.out.name}: {reason}; nothing was "
                      "published, try the export again.")


def _count_rows(plan: ExportPlan) -> int:
    """The rows the export selects, counted now."""
    with _open_local(plan.local_path, spatial=bool(plan.where)) as conn:
        return int(conn.execute(plan.count_sql()).fetchone()[0])


def _sentence_for(plan: ExportPlan, exc: BaseException) -> ExportError:
    """An operating-system or SQLite error while writing, as one sentence."""
    if diskfull.is_full_error(exc) or diskfull.nearly_full(plan.out.parent):
        return diskfull.error(plan.out)
    reason = getattr(exc, "strerror", None) or _sentence(str(exc)) or exc.__class__.__name__
    return ExportError(f"{plan.out.name} could not be written in {plan.out.parent}: "
                       f"{reason}.")


def _copyable_index(plan: ExportPlan) -> Optional[str]:
    """The local copy's spatial index, when it is exactly the GeoPackage's to be: the
    whole table, in its own CRS, its integer key the feature id (see gpkg_index.py)."""
    geometry, fid = plan.table.geometry, _gpkg_fid(plan)
    if (plan.spec.name != "gpkg" or geometry is None or plan.reproject or plan.where
            or plan.row_conditions() or fid is None):
        return None
    key = next(c.source for c in plan.columns if c.name == fid)
    try:
        with _open_local(plan.local_path, spatial=False) as conn:
            return gpkg_index.usable_index(conn, plan.table.name, key, geometry.column)
    except (sqlite3.Error, TerraFusionError) as exc:
        log.debug("no spatial index to copy for %s: %s", plan.table.name, exc)
        return None


def _translate_copying_index(gdal, ogr, osr, source, plan: ExportPlan, temp: Path, index: str,
                             errors: _GdalMessages) -> None:
    """Write the GeoPackage without a spatial index, then copy in the local copy's."""
    _translate(gdal, ogr, osr, source, plan, str(temp), errors, spatial_index=False)
    try:
        gpkg_index.copy_index(temp, plan.local_path, index, _layer_name(plan),
                              plan.table.geometry.column, _gpkg_fid(plan))
    except gpkg_index.IndexNotCopied as exc:
        _raise_if_damaged(plan, [str(exc)])  # the GeoPackage is new: damage is the copy's
        if diskfull.said_full([str(exc)]) or diskfull.nearly_full(plan.out.parent):
            raise diskfull.error(plan.out) from None
        raise ExportError(f"The spatial index of {plan.out.name} could not be written: "
                          f"{str(exc).rstrip('.')}.") from None


def _worth_splitting(plan: ExportPlan) -> bool:
    return (plan.spec.name in _FRAMING and plan.features >= PARALLEL_MIN_FEATURES
            and (os.cpu_count() or 1) > 1
            and "_rowid_" not in {c.name.lower() for c in plan.table.columns})


def _split_point(plan: ExportPlan) -> Optional[int]:
    """The rowid that splits the exported rows in two equal halves."""
    try:
        with _open_local(plan.local_path, spatial=bool(plan.where)) as conn:
            row = conn.execute(f"SELECT _rowid_ FROM {qi(plan.table.name)}{plan.filter_sql()} "
                               "ORDER BY _rowid_ LIMIT 1 OFFSET ?",
                               (plan.features // 2,)).fetchone()
    except (sqlite3.Error, TerraFusionError) as exc:
        log.debug("no split of %s: %s", plan.table.name, exc)
        return None
    return int(row[0]) if row else None


def _translate_halves(gdal, ogr, osr, source, plan: ExportPlan, work: _Work, temp: Path,
                      split: int, errors: _GdalMessages) -> None:
    """Write rows below ``split`` into ``temp`` and the rest into a second file at the
    same time (GDAL releases the GIL), then append the second file to the first."""
    ext = plan.spec.gdal_extension
    second = temp.with_name(temp.name[:-len(ext)] + ".2" + ext)  # same temp prefix
    failure: list[BaseException] = []

    def second_half() -> None:
        with _gdal_errors(gdal) as its_errors:
            its_source = None
            try:
                its_source = _open_source(gdal, plan, work, its_errors)
                _translate(gdal, ogr, osr, its_source, plan, str(second), its_errors,
                           rowids=(split, None))
            except BaseException as exc:
                failure.append(_detached(exc))
            finally:
                if its_source is not None:
                    _close_source(work, its_source)
                its_source = None

    helper = threading.Thread(target=second_half, name="export-half", daemon=True)
    helper.start()
    try:
        _translate(gdal, ogr, osr, source, plan, str(temp), errors, rowids=(None, split))
    except BaseException:
        work.abort()  # no point finishing the other half
        raise
    finally:
        helper.join()
    if failure:
        raise failure[0]
    work.stage = "joining"
    try:
        _splice(plan.spec.name, temp, second)
    except OSError as exc:
        raise _sentence_for(plan, exc) from None
    second.unlink()


class _SpliceError(Exception):
    """A half of a split export is not framed the way GDAL is known to write it."""


#: text before the features, its end marker, and the text after them, per format
_FRAMING = {
    "geojson": (b'"features": [\n', b"\n]\n}\n", b",\n"),
    "kml": (b"<Folder><name>", b"</Folder>\n</Document></kml>\n", b""),
    "csv": (b"", b"", b""),
}


def _body_span(fmt: str, path: Path) -> tuple[int, int]:
    """Offsets of the features in one half: after its header, before its footer."""
    marker, footer, _ = _FRAMING[fmt]
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(65536)
        f.seek(max(0, size - len(footer)))
        tail = f.read()
    if fmt == "csv":
        end_of_header = head.find(b"\n")
    else:
        at = head.find(marker)
        end_of_header = -1 if at < 0 else (
            at + len(marker) - 1 if fmt == "geojson" else head.find(b"\n", at))
    if end_of_header < 0 or not tail.endswith(footer):
        raise _SpliceError(f"unexpected framing in {path.name}")
    start, end = end_of_header + 1, size - len(footer)
    if end < start:
        raise _SpliceError(f"unexpected framing in {path.name}")
    return start, end


def _splice(fmt: str, first: Path, second: Path) -> None:
    """Append the features of ``second`` to ``first``, keeping ``first``'s framing."""
    separator = _FRAMING[fmt][2]
    start1, end1 = _body_span(fmt, first)
    start2, end2 = _body_span(fmt, second)
    if end2 == start2:
        return  # nothing to add
    footer = _FRAMING[fmt][1]
    with open(first, "r+b") as out, open(second, "rb") as src:
        out.seek(end1)
        out.truncate()
        if end1 > start1:
            out.write(separator)
        src.seek(start2)
        remaining = end2 - start2
        while remaining:
            chunk = src.read(min(remaining, 1 << 20))
            if not chunk:
                raise _SpliceError(f"{second.name} ended early")
            out.write(chunk)
            remaining -= len(chunk)
        out.write(footer)


def _raise_if_damaged(plan: ExportPlan, errors: list[str]) -> None:
    """GDAL stops reading at a damaged page of the local copy with an error but keeps
    what it wrote: that must not pass for a complete export. (Other SQLite faults, such
    as a full disk, may be the output GeoPackage's and keep GDAL's words.)"""
    from terrafusion_agent.stores.local import local_error

    for message in errors:
        error = local_error(plan.local_path, message)
        if isinstance(error, LocalDamaged):
            raise error


def _translate(gdal, ogr, osr, source, plan: ExportPlan, dest: str, errors: _GdalMessages,
               limit: Optional[int] = None,
               rowids: tuple[Optional[int], Optional[int]] = (None, None),
               spatial_index: bool = True) -> None:
    """Create the output layer, then one VectorTranslate call appends the rows to it."""
    output = _create_output(gdal, ogr, osr, plan, dest, errors, spatial_index)
    options = ["-append", "-nln", _layer_name(plan), "-sql", plan.select_sql(limit, rowids)]
    if plan.table.geometry and plan.reproject:
        options += ["-s_srs", plan.source_srs, "-t_srs", plan.target_srs]
    if plan.spec.name == "gpkg":
        # One transaction: the temp file only becomes the export once complete, so
        # ogr2ogr's commit every 100,000 rows buys nothing here and costs a tenth.
        options += ["-gt", "unlimited"]
    errors.clear()
    try:
        result = gdal.VectorTranslate(output, source,
                                      options=gdal.VectorTranslateOptions(options=options))
    except RuntimeError as exc:  # when some other code turned on gdal.UseExceptions()
        errors.append(str(exc))
        result = None
    _raise_if_damaged(plan, errors)
    # GDAL hands the dataset back even when it gave up half way ("Terminating translation
    # prematurely"): the file then holds only some of the rows
    stopped = result is None or any(m.startswith(_GAVE_UP) for m in errors)
    said = list(errors)
    errors.clear()
    result = output = None  # closing flushes the file (FlatGeobuf writes its index now)
    if stopped or errors:
        raise _gdal_failure(plan, said + list(errors), "write" if stopped else "finish")
    for message in said:  # the file was written: these did not stop it
        log.warning("GDAL while writing %s: %s", plan.out.name, message)


#: how VectorTranslate says it wrote only part of the rows
_GAVE_UP = ("Terminating translation prematurely", "Unable to write feature")


def _gdal_failure(plan: ExportPlan, messages: list[str], verb: str) -> ExportError:
    """The sentence for a write GDAL failed: a full disk when any message or the disk
    itself says so, else the first message that is a cause, not a consequence."""
    if diskfull.said_full(messages) or diskfull.nearly_full(plan.out.parent):
        return diskfull.error(plan.out)
    causes = [m for m in messages if not m.startswith(_GAVE_UP)]
    reason = _sentence((causes or messages or ["GDAL gave no reason"])[0])
    return ExportError(f"GDAL could not {verb} {plan.out.name}: {reason}.")


def _create_output(gdal, ogr, osr, plan: ExportPlan, dest: str, errors: _GdalMessages,
                   spatial_index: bool = True):
    """The output dataset with its one layer: CRS, geometry type and typed fields; a
    GeoPackage without a spatial index if ``spatial_index`` is False."""
    spec = plan.spec
    driver = gdal.GetDriverByName(spec.driver)
    output = driver.Create(dest, 0, 0, 0, gdal.GDT_Unknown) if driver else None
    if output is None:
        raise _gdal_failure(plan, list(errors), "create")
    geometry = plan.table.geometry
    srs, geometry_type = None, ogr.wkbNone
    if geometry:
        srs = osr.SpatialReference()
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        srs.SetFromUserInput(plan.target_srs or plan.source_srs)
        geometry_type = getattr(ogr, f"wkb{_wkb_name(geometry.geometry_type, geometry.dims)}")
    fid = _gpkg_fid(plan) if spec.name == "gpkg" else None
    options = layer_options(spec, geometry_type=geometry.geometry_type if geometry else None,
                            target_epsg=_epsg(plan.target_srs), fid_column=fid,
                            geometry_name=geometry.column if geometry else None,
                            spatial_index=spatial_index, features=plan.features)
    layer = output.CreateLayer(_layer_name(plan), srs, geometry_type, options=options)
    if layer is None:
        raise _gdal_failure(plan, list(errors), "create")
    for c in plan.columns:
        # The GeoPackage's FID column is also created as a field: GDAL then takes each
        # feature's id from it, which an append could not otherwise set.
        field_type = "Integer64" if c.name == fid else c.ogr_type
        defn = ogr.FieldDefn(c.name, getattr(ogr, f"OFT{field_type}"))
        if c.kind == "boolean":
            defn.SetSubType(ogr.OFSTBoolean)
        defn.SetWidth(c.width)
        defn.SetPrecision(c.precision)
        if layer.CreateField(defn) != 0:
            raise _gdal_failure(plan, list(errors), f"create field {c.name} in")
    return output


def _zip_shapefile(folder: Path, packed: Path) -> None:
    """One .zip with the shapefile's parts, in the order readers expect."""
    import zipfile

    order = {".shp": 0, ".shx": 1, ".dbf": 2, ".prj": 3, ".cpg": 4}
    parts = sorted(folder.iterdir(), key=lambda p: (order.get(p.suffix.lower(), 9), p.name))
    with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL) as zf:
        for part in parts:
            zf.write(part, part.name)


def _estimate_size(gdal, ogr, osr, source, plan: ExportPlan) -> Optional[int]:
    """Bytes the whole export will take, from a few hundred rows written to memory."""
    folder = f"/vsimem/tf-export-{secrets.token_hex(6)}"
    dest = f"{folder}/{_layer_name(plan)}{plan.spec.gdal_extension}"
    try:
        with _gdal_errors(gdal) as errors:
            gdal.Mkdir(folder, 0o755)
            _translate(gdal, ogr, osr, source, plan, dest, errors, limit=SAMPLE_ROWS)
        size = sum((gdal.VSIStatL(f"{folder}/{name}") or _Zero).size
                   for name in gdal.ReadDir(folder) or [])
        return int(size * plan.features / SAMPLE_ROWS) if size else None
    except ExportError:
        return None  # only the progress bar needs this
    finally:
        gdal.RmdirRecursive(folder)


class _Zero:
    size = 0


def _gpkg_fid(plan: ExportPlan) -> Optional[str]:
    """The output name of the table's single integer key, if it is exported."""
    if len(plan.table.pk) != 1:
        return None
    for c in plan.columns:
        if c.source == plan.table.pk[0] and c.kind == "integer":
            return c.name
    return None


def _epsg(srs: Optional[str]) -> Optional[int]:
    if srs and srs.upper().startswith("EPSG:") and srs[5:].isdigit():
        return int(srs[5:])
    return None


def _wkb_name(geometry_type: str, dims: str) -> str:
    names = {"POINT": "Point", "LINESTRING": "LineString", "POLYGON": "Polygon",
             "MULTIPOINT": "MultiPoint", "MULTILINESTRING": "MultiLineString",
             "MULTIPOLYGON": "MultiPolygon", "GEOMETRYCOLLECTION": "GeometryCollection",
             "GEOMETRY": "Unknown"}
    base = names.get(geometry_type.upper(), "Unknown")
    suffix = {"XYZ": "25D", "XYM": "M", "XYZM": "ZM"}.get(dims.upper(), "")
    return base + suffix if base != "Unknown" else base


def _layer_name(plan: ExportPlan) -> str:
    """The output layer: the table's name (a shapefile's is also its file name)."""
    if plan.spec.name != "shp":
        return plan.table.name
    cleaned = re.sub(r"[^\w.-]", "_", plan.table.name).strip(".")
    return cleaned or "layer"
