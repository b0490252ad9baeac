"""Planning an export: every check and every decision before a byte is written.

:func:`plan_export` turns an :class:`~terrafusion_agent.export.request.ExportRequest`
into an :class:`ExportPlan` or raises :class:`InvalidExport`: the preset, the table, the
format, the fields and their renames, the CRS, the filter, the feature limit and the
output file are all checked here, so an API caller gets a 4xx before a job is queued and
a bad request never starts writing.

Why the plan decides the output's field types itself: the writer creates the output
layer from them and only then lets GDAL append the rows. Left to itself GDAL guesses
types from the first row of a SELECT: a NULL first geometry (or an empty selection)
loses the geometry column, a NULL first value turns a number into text, text is cut at
80 characters in a shapefile. One pass over the selected rows (made by the store) gives
what the description cannot: the count, the rows without geometry, the range of each
integer column (GDAL reads an SQLite ``INTEGER`` as 32-bit and clamps bigger values, so
such columns are read as text and written as 64-bit integers; parcel numbers often are)
and, for a shapefile, the widths dBase needs.

A filter is an SQLite expression that is pasted into ``WHERE (...)``: it must be one
expression (:func:`filter_problem`), parse on the table, read only, and call no function
that writes files or changes the database (the store prepares it under SQLite's
authorizer). A CRS is only ever AUTHORITY:CODE, checked against PROJ (:func:`parse_crs`).
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from terrafusion_agent.config import Config
from terrafusion_agent.errors import ExportNotPossible, InvalidExport
from terrafusion_agent.export import presets, protected, publish
from terrafusion_agent.export.formats import FormatSpec, shorten_names
from terrafusion_agent.export.messages import collected_errors, fragment, gdal_bindings
from terrafusion_agent.export.request import ExportRequest
from terrafusion_agent.stores import export_source
from terrafusion_agent.stores.base import Column, TableInfo

#: dBase limits (shapefile attributes)
DBF_MAX_TEXT = 254
INT32_MAX = 2**31 - 1


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

    @property
    def rows(self) -> export_source.Rows:
        """The rows the export reads: the filter's, less those without geometry when
        they are left out."""
        skip = (self.table.geometry.column
                if self.skip_null_geometry and self.table.geometry else None)
        return export_source.Rows(self.table.name, self.where, skip)

    def select_sql(self, limit: Optional[int] = None,
                   rowids: tuple[Optional[int], Optional[int]] = (None, None)) -> str:
        """The one SELECT GDAL reads (see :func:`export_source.select_sql`)."""
        geometry = self.table.geometry.column if self.table.geometry else None
        return export_source.select_sql(
            self.rows, [(c.source, c.name, c.as_text) for c in self.columns], geometry,
            limit, rowids)

    @property
    def reproject(self) -> bool:
        return self.target_srs is not None and self.target_srs != self.source_srs

    @property
    def renamed(self) -> dict[str, str]:
        return {c.source: c.name for c in self.columns if c.source != c.name}

    @property
    def layer_name(self) -> str:
        """The output layer: the table's name (a shapefile's is also its file name)."""
        if self.spec.name != "shp":
            return self.table.name
        cleaned = re.sub(r"[^\w.-]", "_", self.table.name).strip(".")
        return cleaned or "layer"

    @property
    def fid_column(self) -> Optional[str]:
        """The output name of the table's single integer key, if it is exported."""
        if len(self.table.pk) != 1:
            return None
        for c in self.columns:
            if c.source == self.table.pk[0] and c.kind == "integer":
                return c.name
        return None


def plan_export(config: Config, request: ExportRequest,
                source: Optional[Path] = None) -> ExportPlan:
    """Check everything about ``request`` without writing; raises :class:`InvalidExport`.

    Checks the preset, table, format, fields, renames, CRS, filter, feature limit and the
    output file and folder, so an API caller gets a 4xx before a job is queued.
    ``source`` is a SpatiaLite file laid out as the local copy is, read instead of it (an
    as-of export's table rebuilt from central's history, see :mod:`.asof`); the request's
    ``as_of`` itself is that module's business.
    """
    resolved = presets.resolve(config, request)
    protected.refuse_own_file(config, resolved.out)
    spec = resolved.spec
    local = Path(config.local_path if source is None else source)
    with export_source.open_local(local, spatial=bool(resolved.where)) as conn:
        info = _table_info(conn, resolved.table, local)
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
    publish.check_target(resolved.out, resolved.overwrite)
    warnings = list(scan.warnings)
    skip_null = spec.name == "fgb" and scan.null_geometries > 0
    if skip_null:
        warnings.append(f"{scan.null_geometries:,} rows without geometry were left out: "
                        "FlatGeobuf cannot store them.")
    return ExportPlan(
        local_path=local, table=info, spec=spec, out=resolved.out,
        columns=tuple(scan.columns), where=resolved.where,
        features=scan.rows - (scan.null_geometries if skip_null else 0),
        source_srs=source_srs, target_srs=target_srs, preset=resolved.preset,
        overwrite=resolved.overwrite, warnings=tuple(warnings),
        skip_null_geometry=skip_null)


def _table_info(conn: sqlite3.Connection, name: str, path: Path) -> TableInfo:
    tables = export_source.synced_tables(conn)
    if not tables:
        raise ExportNotPossible(f"The local copy {path} has no synced tables yet; run a sync "
                                "first.")
    if name not in tables:
        raise InvalidExport(f"Table {name!r} is not in the local copy; it has "
                            f"{', '.join(sorted(tables))}.")
    return export_source.table_info(tables[name])


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
        if name.lower() in lowered or name == export_source.GEOMETRY_ALIAS:
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
    """One expression, prepared on the table by SQLite, reading only; raises
    InvalidExport."""
    problem = filter_problem(where)
    if problem:
        raise InvalidExport(f"The filter {where!r} {problem}; give one SQL expression, "
                            "for example market_value > 500000.")
    try:
        export_source.check_filter(conn, info.name, where)
    except export_source.FilterRefused as exc:
        if exc.function:
            raise InvalidExport(f"The filter {where!r} calls {exc.function}(), which a "
                                "filter may not use.") from None
        raise InvalidExport(f"The filter {where!r} is not valid for table {info.name}: "
                            f"{fragment(str(exc))}.") from None


def _source_srs(conn: sqlite3.Connection, info: TableInfo) -> Optional[str]:
    """The table's CRS as GDAL takes it: AUTH:CODE, else the WKT SpatiaLite keeps."""
    if info.geometry is None:
        return None
    srid = int(info.geometry.srid)
    ref = export_source.spatial_ref(conn, srid)
    if ref and ref.auth_name and ref.auth_srid is not None:
        return f"{str(ref.auth_name).upper()}:{int(ref.auth_srid)}"
    if ref and ref.srtext and ref.srtext != "Undefined":
        return str(ref.srtext)
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
    gdal, _, osr = gdal_bindings()
    srs = osr.SpatialReference()
    with collected_errors(gdal):
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
    wanted: list[tuple[str, Optional[str]]] = []
    for c in columns:
        if c.kind == "integer":
            wanted.append((c.source, export_source.RANGE))
        elif spec.name == "shp" and c.kind not in ("real", "decimal", "date", "boolean"):
            wanted.append((c.source, export_source.BYTES))
        else:
            wanted.append((c.source, None))
    try:
        measures = export_source.measure(conn, info.name,
                                         info.geometry.column if info.geometry else None,
                                         wanted, where)
    except sqlite3.Error as exc:  # a filter can still fail on the data (a bad cast...)
        raise InvalidExport(f"The filter {where!r} fails on table {info.name}: "
                            f"{fragment(str(exc))}.") from None
    typed, warnings = [], []
    for measured, c in zip(measures.columns, columns):
        field_type, width, precision, as_text = _field_type(c.kind, spec)
        if c.kind == "integer":
            biggest, smallest = int(measured[0] or 0), int(measured[1] or 0)
            if biggest > INT32_MAX:
                field_type, as_text = "Integer64", True
            if spec.name == "shp":  # dBase numbers have a width: as wide as the data
                width = max(1, len(str(biggest)) + (1 if smallest < 0 else 0))
        elif spec.name == "shp" and field_type == "String":
            longest = int(measured[0] or 0)
            if longest > DBF_MAX_TEXT:
                warnings.append(f"Field {c.name} has values longer than {DBF_MAX_TEXT} bytes, "
                                "the most a shapefile field holds; they were cut short.")
            width = min(max(longest, 1), DBF_MAX_TEXT)
        typed.append(OutputColumn(c.source, c.name, c.kind, field_type, width, precision,
                                  as_text))
    return _Scan(measures.rows, measures.null_geometries, typed, warnings)


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
