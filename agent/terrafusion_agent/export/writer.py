"""The GDAL writer: one planned export, written by GDAL's own drivers.

No feature passes through Python. GDAL's SQLite driver reads the local copy with the one
SELECT of the plan (fields, output names and filter already in it), and
``gdal.VectorTranslate`` (the library behind ``ogr2ogr``) appends the rows to an output
layer that :meth:`GdalWriter.create_output` made first, with the plan's field types,
CRS and geometry type (see :mod:`.plan` for why GDAL must not guess them). So an export
runs at least at ogr2ogr's speed (see ``bench/bench_export.py``).

A :class:`GdalWriter` lives on one thread: GDAL's error handlers are per thread, and so
is its read-only connection to the local copy, which is registered in the shared
:class:`Work` so that a cancel from the watching thread can interrupt its running SQLite
statement (``Dataset.AbortSQL``) within a fraction of a second, even in the middle of a
big table. The parallel writer (:mod:`.parallel`) opens a second one for the other half.

GDAL hands a dataset back even when it gave up half way, and it stops reading at a
damaged page of the local copy with an error but keeps what it wrote; neither may pass
for a complete export, so every message GDAL gave is looked at before a file counts as
written (and a full disk is named as such, see :mod:`.diskfull`).

A GeoPackage's spatial index, which GDAL fills after the rows (two thirds of the time),
is copied from the local copy's own when the whole table is exported as it is: the same
entries in the same SQLite R*Tree format (:meth:`GdalWriter.translate_copying_index`,
:mod:`terrafusion_agent.stores.gpkg_index`).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import sqlite3
import threading
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from terrafusion_agent import faults
from terrafusion_agent.errors import ExportError, LocalDamaged, TerraFusionError
from terrafusion_agent.export import diskfull
from terrafusion_agent.export.formats import layer_options
from terrafusion_agent.export.messages import (
    GdalMessages,
    collected_errors,
    fragment,
    gdal_bindings,
)
from terrafusion_agent.export.plan import ExportPlan
from terrafusion_agent.export.publish import TempOutput
from terrafusion_agent.stores import export_source, gpkg_index

log = logging.getLogger("terrafusion.export")

#: rows exported to memory to estimate the output size (progress of streaming formats)
SAMPLE_ROWS = 500
#: how VectorTranslate says it wrote only part of the rows
GAVE_UP = ("Terminating translation prematurely", "Unable to write feature")


class Work:
    """What the watching thread and the GDAL threads share."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: how to interrupt each running read (GDAL datasets, SQLite connections)
        self.aborts: list[Callable[[], Any]] = []
        self.stage = "writing"
        self.estimated_bytes: Optional[int] = None
        self.error: Optional[BaseException] = None

    def abort(self) -> None:
        """Interrupt GDAL's running SQLite statements (thread-safe by GDAL's design)."""
        with self.lock:
            for abort in self.aborts:
                abort()


def detached(exc: BaseException) -> BaseException:
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


class GdalWriter:
    """Writes one plan with GDAL on the current thread; made by :meth:`opened`."""

    def __init__(self, plan: ExportPlan, work: Work, bindings, source,
                 errors: GdalMessages):
        self.plan = plan
        self.work = work
        self.gdal, self.ogr, self.osr = bindings
        #: GDAL's read-only connection to the local copy
        self.source = source
        #: GDAL's errors on this thread
        self.errors = errors

    @classmethod
    @contextlib.contextmanager
    def opened(cls, plan: ExportPlan, work: Work) -> Iterator[GdalWriter]:
        """A writer for this thread: GDAL's errors collected, the local copy opened
        read-only and registered so that a cancel can interrupt it."""
        bindings = gdal_bindings()
        gdal = bindings[0]
        with collected_errors(gdal) as errors:
            source = gdal.OpenEx(str(plan.local_path), gdal.OF_VECTOR | gdal.OF_READONLY,
                                 allowed_drivers=["SQLite"])
            if source is None:
                raise ExportError(f"GDAL cannot open the local copy {plan.local_path}: "
                                  f"{errors.text()}.")
            with work.lock:
                work.aborts.append(source.AbortSQL)
            writer = cls(plan, work, bindings, source, errors)
            try:
                yield writer
            finally:
                with work.lock:  # after this no cancel can reach it, so it may be destroyed
                    work.aborts.remove(source.AbortSQL)
                writer.source = source = None  # closes GDAL's connection to the local copy

    # --- the ways of writing ----------------------------------------------------------

    def translate(self, dest: str, limit: Optional[int] = None,
                  rowids: tuple[Optional[int], Optional[int]] = (None, None),
                  spatial_index: bool = True) -> None:
        """Create the output layer, then one VectorTranslate call appends the rows to it."""
        plan, gdal, errors = self.plan, self.gdal, self.errors
        output = self.create_output(dest, spatial_index)
        faults.point("export.before_rows")
        options = ["-append", "-nln", plan.layer_name, "-sql", plan.select_sql(limit, rowids)]
        if plan.table.geometry and plan.reproject:
            options += ["-s_srs", plan.source_srs, "-t_srs", plan.target_srs]
        if plan.spec.name == "gpkg":
            # One transaction: the temp file only becomes the export once complete, so
            # ogr2ogr's commit every 100,000 rows buys nothing here and costs a tenth.
            options += ["-gt", "unlimited"]
        errors.clear()
        try:
            result = gdal.VectorTranslate(output, self.source,
                                          options=gdal.VectorTranslateOptions(options=options))
        except RuntimeError as exc:  # when some other code turned on gdal.UseExceptions()
            errors.append(str(exc))
            result = None
        self.raise_if_damaged(errors)
        # GDAL hands the dataset back even when it gave up half way ("Terminating
        # translation prematurely"): the file then holds only some of the rows
        stopped = result is None or any(m.startswith(GAVE_UP) for m in errors)
        said = list(errors)
        errors.clear()
        result = output = None  # closing flushes the file (FlatGeobuf writes its index now)
        if stopped or errors:
            raise self.failure(said + list(errors), "write" if stopped else "finish")
        for message in said:  # the file was written: these did not stop it
            log.warning("GDAL while writing %s: %s", plan.out.name, message)

    def translate_copying_index(self, dest: Path, index: str) -> None:
        """Write the GeoPackage without a spatial index, then copy in the local copy's
        ``index`` (see :meth:`copyable_index`)."""
        plan = self.plan
        self.translate(str(dest), spatial_index=False)
        try:
            gpkg_index.copy_index(dest, plan.local_path, index, plan.layer_name,
                                  plan.table.geometry.column, plan.fid_column)
        except gpkg_index.IndexNotCopied as exc:
            self.raise_if_damaged([str(exc)])  # the GeoPackage is new: damage is the copy's
            if diskfull.said_full([str(exc)]) or diskfull.nearly_full(plan.out.parent):
                raise diskfull.error(plan.out) from None
            raise ExportError(f"The spatial index of {plan.out.name} could not be written: "
                              f"{str(exc).rstrip('.')}.") from None

    def copyable_index(self) -> Optional[str]:
        """The local copy's spatial index, when it is exactly the GeoPackage's to be: the
        whole table, in its own CRS, its integer key the feature id."""
        plan = self.plan
        geometry, fid = plan.table.geometry, plan.fid_column
        if (plan.spec.name != "gpkg" or geometry is None or plan.reproject or plan.where
                or plan.rows.skip_null or fid is None):
            return None
        key = next(c.source for c in plan.columns if c.name == fid)
        try:
            with export_source.open_local(plan.local_path, spatial=False) as conn:
                return gpkg_index.usable_index(conn, plan.table.name, key, geometry.column)
        except (sqlite3.Error, TerraFusionError) as exc:
            log.debug("no spatial index to copy for %s: %s", plan.table.name, exc)
            return None

    def create_output(self, dest: str, spatial_index: bool = True):
        """The output dataset with its one layer: CRS, geometry type and typed fields; a
        GeoPackage without a spatial index if ``spatial_index`` is False."""
        plan, gdal, ogr, osr = self.plan, self.gdal, self.ogr, self.osr
        spec = plan.spec
        driver = gdal.GetDriverByName(spec.driver)
        output = driver.Create(dest, 0, 0, 0, gdal.GDT_Unknown) if driver else None
        if output is None:
            raise self.failure(list(self.errors), "create")
        geometry = plan.table.geometry
        srs, geometry_type = None, ogr.wkbNone
        if geometry:
            srs = osr.SpatialReference()
            srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
            srs.SetFromUserInput(plan.target_srs or plan.source_srs)
            geometry_type = getattr(ogr, f"wkb{_wkb_name(geometry.geometry_type, geometry.dims)}")
        fid = plan.fid_column if spec.name == "gpkg" else None
        options = layer_options(spec, geometry_type=geometry.geometry_type if geometry else None,
                                target_epsg=_epsg(plan.target_srs), fid_column=fid,
                                geometry_name=geometry.column if geometry else None,
                                spatial_index=spatial_index, features=plan.features)
        layer = output.CreateLayer(plan.layer_name, srs, geometry_type, options=options)
        if layer is None:
            raise self.failure(list(self.errors), "create")
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
                raise self.failure(list(self.errors), f"create field {c.name} in")
        return output

    def estimate_size(self) -> Optional[int]:
        """Bytes the whole export will take, from a few hundred rows written to memory."""
        gdal, plan = self.gdal, self.plan
        folder = f"/vsimem/tf-export-{secrets.token_hex(6)}"
        dest = f"{folder}/{plan.layer_name}{plan.spec.gdal_extension}"
        errors = self.errors
        try:
            # messages of its own: a failed estimate must not colour the export's
            with collected_errors(gdal) as self.errors:
                gdal.Mkdir(folder, 0o755)
                self.translate(dest, limit=SAMPLE_ROWS)
            size = sum((gdal.VSIStatL(f"{folder}/{name}") or _Zero).size
                       for name in gdal.ReadDir(folder) or [])
            return int(size * plan.features / SAMPLE_ROWS) if size else None
        except ExportError:
            return None  # only the progress bar needs this
        finally:
            self.errors = errors
            gdal.RmdirRecursive(folder)

    def verify(self, output: TempOutput) -> None:
        """Make sure the finished file is whole before it may be published; the rows are
        counted again when the count differs (a sync may have changed the table since
        the plan was made)."""
        plan = self.plan

        def recount() -> int:
            with export_source.open_local(plan.local_path, spatial=bool(plan.where)) as conn:
                return export_source.count(conn, plan.rows)

        output.verify(plan.features, recount=recount)

    # --- what went wrong --------------------------------------------------------------

    def failure(self, messages: list[str], verb: str) -> ExportError:
        """The sentence for a write GDAL failed: a full disk when any message or the disk
        itself says so, else the first message that is a cause, not a consequence."""
        plan = self.plan
        if diskfull.said_full(messages) or diskfull.nearly_full(plan.out.parent):
            return diskfull.error(plan.out)
        causes = [m for m in messages if not m.startswith(GAVE_UP)]
        reason = fragment((causes or messages or ["GDAL gave no reason"])[0])
        return ExportError(f"GDAL could not {verb} {plan.out.name}: {reason}.")

    def raise_if_damaged(self, messages: list[str]) -> None:
        """GDAL stops reading at a damaged page of the local copy with an error but keeps
        what it wrote: that must not pass for a complete export. (Other SQLite faults,
        such as a full disk, may be the output GeoPackage's and keep GDAL's words.)"""
        from terrafusion_agent.stores.local import local_error

        for message in messages:
            error = local_error(self.plan.local_path, message)
            if isinstance(error, LocalDamaged):
                raise error


class _Zero:
    size = 0


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
