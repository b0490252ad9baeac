"""Exports as ``QgsTask``: a synced table through the agent's export engine, or any
other vector layer of the project through QGIS's own ``QgsVectorFileWriter``.

A synced table is always written by the agent's export engine (``api.export_table``), the one
code path shared with the CLI, the API and ``terrafusion:export``. QGIS's selection and
QGIS expressions mean nothing to that engine (it reads SQLite directly), so they are
turned into the primary keys of the chosen rows first: the layer is read in the task,
and the engine gets ``pk IN (...)`` as its filter. A layer that is not a synced table
(a shapefile, a WFS...) has no local copy for the engine to read; QGIS writes it, with
the formats' options taken from the agent so both kinds of export look alike.

``run()`` never touches a widget; the results reach the GUI through signals emitted in
``finished()`` on the main thread.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsExpressionContext,
    QgsExpressionContextUtils,
    QgsFeature,
    QgsFeatureRequest,
    QgsFields,
    QgsProject,
    QgsTask,
    QgsVectorFileWriter,
    QgsVectorLayer,
    QgsVectorLayerFeatureSource,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import pyqtSignal

from ..gui.translation import tr
from .background import BackgroundTask

#: share of the progress bar for reading the chosen keys before the engine writes
KEYS_SHARE = 10.0


@dataclass
class FeatureChoice:
    """Which features of a layer to export: its selection and/or a QGIS expression.

    Built on the main thread. ``source`` is a snapshot of a project layer that the task
    can read in its own thread; without a project layer, ``uri`` names the table and the
    task opens it itself, so the GUI thread never waits for the database.
    """

    source: Optional[QgsVectorLayerFeatureSource]
    context: QgsExpressionContext
    fids: Optional[list] = None
    expression: Optional[str] = None
    total: int = 0
    uri: Optional[str] = None

    @classmethod
    def of(cls, layer: QgsVectorLayer, selected_only: bool,
           expression: Optional[str]) -> Optional[FeatureChoice]:
        """None when every feature is wanted. Main thread only (it reads the layer)."""
        expression = (expression or "").strip() or None
        if not selected_only and expression is None:
            return None
        context = QgsExpressionContext(QgsExpressionContextUtils.globalProjectLayerScopes(layer))
        fids = sorted(layer.selectedFeatureIds()) if selected_only else None
        total = len(fids) if fids is not None else max(layer.featureCount(), 0)
        return cls(QgsVectorLayerFeatureSource(layer), context, fids, expression, total)

    @classmethod
    def on_table(cls, uri: str, expression: str) -> FeatureChoice:
        """An expression on a table the project does not show (opened by the task)."""
        context = QgsExpressionContext()
        # one scope at a time: appendScope takes each over (a list of new scopes handed to
        # the constructor is freed by Python under QGIS's feet)
        context.appendScope(QgsExpressionContextUtils.globalScope())
        context.appendScope(QgsExpressionContextUtils.projectScope(QgsProject.instance()))
        return cls(None, context, None, expression.strip(), 0, uri)

    def open(self):
        """(something with ``fields()`` and ``getFeatures()``, feature count); task side."""
        if self.source is not None:
            return self.source, self.total
        layer = QgsVectorLayer(self.uri, "choice", "spatialite")
        if not layer.isValid():
            raise ValueError("QGIS cannot open the table to evaluate the filter")
        self.context.appendScope(QgsExpressionContextUtils.layerScope(layer))
        self._layer = layer  # alive while its features are read
        return layer, max(layer.featureCount(), 0)

    def request(self) -> QgsFeatureRequest:
        request = QgsFeatureRequest()
        if self.fids is not None:
            request.setFilterFids(self.fids)
        if self.expression:
            request.setFilterExpression(self.expression)
            request.setExpressionContext(self.context)
        return request


class _ExportTask(BackgroundTask):
    #: emitted on the main thread with the export's result (``ExportResult.to_dict()``)
    exported = pyqtSignal(dict)
    #: emitted on the main thread with one sentence and whether it was a cancel
    failed = pyqtSignal(str, bool)
    #: True while no fraction can be estimated
    busyChanged = pyqtSignal(bool)  # noqa: N815 - Qt naming

    failure_log = "The export failed."

    def __init__(self, description: str):
        super().__init__(description, QgsTask.Flag.CanCancel)
        self.was_cancelled = False
        self._busy: Optional[bool] = None

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busyChanged.emit(busy)

    def succeeded(self, result: dict) -> None:
        self.exported.emit(result)

    def failure(self) -> str:
        return tr("The export failed: {reason}.")

    def report(self, sentence: str) -> None:
        cancelled = self.was_cancelled or (self.error is None and self.exception is None)
        if cancelled:
            sentence = tr("The export was cancelled; no file was left behind.")
        self.failed.emit(sentence, cancelled)


class TableExportTask(_ExportTask):
    """A synced table of the local copy, written by the agent's export engine."""

    def __init__(self, request, choice: Optional[FeatureChoice] = None,
                 config_path: Optional[str] = None):
        super().__init__(tr("TerraFusion export of {table}").format(
            table=request.table or request.preset))
        self.request = request
        self.choice = choice
        self.config_path = config_path

    def work(self) -> Optional[dict]:
        from terrafusion_agent.errors import ExportCancelled

        try:
            result = self._export()
        except ExportCancelled:
            result = None
        if result is None:
            self.was_cancelled = True
            return None
        result = result.to_dict()
        if self.choice is not None:
            # the key list is the engine's business; people recognise their own choice
            result.update(where=self.request.where, filter=self.choice.expression,
                          selected_only=self.choice.fids is not None)
        return result

    def _export(self):
        """The engine's ``ExportResult``; None when cancelled while choosing the rows."""
        from dataclasses import replace

        from terrafusion_agent import api

        cfg = api.load_config(self.config_path)
        request = self.request
        share = 0.0
        if self.choice is not None:
            share = KEYS_SHARE
            where = self._chosen_rows(cfg)
            if where is None:
                return None
            request = replace(request, where=_and(request.where, where))

        def progress(p) -> None:
            self._set_busy(p.fraction is None)
            if p.fraction is not None:
                self.setProgress(share + (100.0 - share) * p.fraction)

        return api.export_table(cfg, request, progress=progress, cancel=self.isCanceled)

    def _chosen_rows(self, cfg) -> Optional[str]:
        """``pk IN (...)`` for the chosen features; None when cancelled meanwhile."""
        from terrafusion_agent import api

        table = api.resolve_preset(cfg, self.request).table
        pk = api.table_key(cfg, table)
        choice = self.choice
        source, total = choice.open()
        fields = source.fields()
        indexes = [fields.indexOf(name) for name in pk]
        if min(indexes) < 0:
            raise ValueError(f"the layer has no key field {pk[indexes.index(-1)]}")
        request = choice.request()
        request.setSubsetOfAttributes(indexes)
        request.setFlags(QgsFeatureRequest.Flag.NoGeometry)
        keys = []
        for n, feature in enumerate(source.getFeatures(request)):
            if self.isCanceled():
                return None
            keys.append(tuple(feature.attributes()[i] for i in indexes))
            if total and n % 500 == 0:
                self.setProgress(KEYS_SHARE * min(1.0, n / total))
        return api.keys_filter(cfg, table, keys)


def _and(first: Optional[str], second: str) -> str:
    return f"({first}) AND ({second})" if first else second


class LayerExportTask(_ExportTask):
    """A project layer that is not a synced table, written by ``QgsVectorFileWriter``."""

    def __init__(self, layer: QgsVectorLayer, fmt: str, out: str,
                 crs: Optional[QgsCoordinateReferenceSystem], fields: list,
                 choice: Optional[FeatureChoice], config_path: Optional[str] = None):
        super().__init__(tr("TerraFusion export of {table}").format(table=layer.name()))
        from terrafusion_agent import api

        self.fmt = fmt
        self.spec = api.export_formats()[fmt]
        self.out = Path(out)
        self.config_path = config_path
        self.layer_name = layer.name()
        # Everything read from the layer is read here, on the main thread.
        self.choice = choice or FeatureChoice(QgsVectorLayerFeatureSource(layer),
                                              QgsExpressionContext(), None, None,
                                              max(layer.featureCount(), 0))
        self.source_fields = layer.fields()
        self.field_names = list(fields)
        self.wkb_type = layer.wkbType()
        self.source_crs = layer.crs()
        self.transform_context = QgsProject.instance().transformContext()
        forced = self.spec.fixed_epsg or (self.spec.default_epsg if crs is None else None)
        if forced:
            crs = QgsCoordinateReferenceSystem(f"EPSG:{forced}")
        self.crs = crs if crs is not None and crs.isValid() else self.source_crs

    def user_errors(self) -> tuple:
        return ()  # the sentences of this export are worded here, in the plugin

    def work(self) -> Optional[dict]:
        from terrafusion_agent import api
        from terrafusion_agent.errors import ExportCancelled, TerraFusionError

        spatial = QgsWkbTypes.geometryType(self.wkb_type) not in (
            QgsWkbTypes.GeometryType.NullGeometry, QgsWkbTypes.GeometryType.UnknownGeometry)
        if self.spec.needs_geometry and not spatial:
            self.error = tr("Layer {layer} has no geometry, so it cannot be written as "
                            "{format}; choose csv, gpkg or geojson.").format(
                                layer=self.layer_name, format=self.spec.label)
            return None
        try:
            cfg = api.load_config(self.config_path)  # it alone knows the agent's own files
            with api.layer_export(cfg, self.out, self.fmt, layer=self.out.stem) as output:
                with _gdal_messages() as messages:
                    written = self._write(output.path, spatial)
                if written is None:
                    raise ExportCancelled("")  # leaves nothing behind
                api.check_writer_messages(self.out, messages)
                output.verify(features=written)
            size = output.bytes
        except ExportCancelled:
            self.was_cancelled = True
            return None
        except TerraFusionError as exc:
            self.error = str(exc)
            return None
        return {"table": self.layer_name, "format": self.spec.name,
                "path": str(self.out), "features": written, "bytes": size,
                "crs": self.crs.authid() if spatial else None,
                "fields": list(self.out_names.values()), "warnings": []}

    def _write(self, target: Path, spatial: bool) -> Optional[int]:
        from terrafusion_agent import api

        names = self.field_names
        self.out_names = api.output_field_names(self.fmt, names)
        indexes = [self.source_fields.indexOf(n) for n in names]
        out_fields = QgsFields()
        for name, index in zip(names, indexes):
            field = self.source_fields.at(index)
            field.setName(self.out_names[name])
            out_fields.append(field)
        options = QgsVectorFileWriter.SaveVectorOptions()
        options.driverName = self.spec.driver
        options.fileEncoding = "UTF-8"
        options.layerName = self.out.stem
        epsg = self.crs.postgisSrid() if spatial else None
        geometry_type = QgsWkbTypes.displayString(QgsWkbTypes.flatType(self.wkb_type)) \
            if spatial else None
        options.layerOptions = api.layer_options(self.fmt, geometry_type=geometry_type,
                                                 target_epsg=epsg)
        writer = QgsVectorFileWriter.create(
            str(target), out_fields, self.wkb_type if spatial else QgsWkbTypes.Type.NoGeometry,
            self.crs, self.transform_context, options)
        if writer.hasError() != QgsVectorFileWriter.WriterError.NoError:
            raise OSError(0, writer.errorMessage())
        request = self.choice.request()
        request.setSubsetOfAttributes(indexes)
        if spatial:
            request.setDestinationCrs(self.crs, self.transform_context)
        else:
            request.setFlags(QgsFeatureRequest.Flag.NoGeometry)
        total = self.choice.total or 1
        written = 0
        try:
            for feature in self.choice.source.getFeatures(request):
                if self.isCanceled():
                    return None
                out = QgsFeature(out_fields)
                if spatial:
                    out.setGeometry(feature.geometry())
                out.setAttributes([feature.attributes()[i] for i in indexes])
                if not writer.addFeature(out):
                    raise OSError(0, writer.errorMessage() or tr("a feature was refused"))
                written += 1
                if written % 200 == 0:
                    self.setProgress(min(99.0, 100.0 * written / total))
        finally:
            del writer  # closes the file; GDAL writes indexes and headers now
        return written


@contextlib.contextmanager
def _gdal_messages():
    """GDAL's failures on this thread while QGIS's writer works, collected (the task's
    thread has its own GDAL error handler stack, so QGIS's own handler is left alone)."""
    from osgeo import gdal

    messages: list = []

    def handler(err_class, err_no, message):
        if err_class >= gdal.CE_Failure:
            messages.append(str(message))

    gdal.PushErrorHandler(handler)
    try:
        yield messages
    finally:
        gdal.PopErrorHandler()


class ExportSourcesTask(BackgroundTask):
    """Reads what the export dialog offers: the synced tables and the configured presets."""

    #: emitted on the main thread with {"tables": [TableInfo], "presets": {name: preset},
    #: "local_path": str, "order": [table], "local_exists": bool}; before the first sync
    #: there is no local copy and so no synced table, which is no failure
    sourcesReady = pyqtSignal(dict)  # noqa: N815
    #: emitted on the main thread with one sentence (the dialog still offers project layers)
    failed = pyqtSignal(str)

    failure_log = "Reading the local copy failed."

    def __init__(self):
        super().__init__(tr("Reading the TerraFusion local copy"), QgsTask.Flag.CanCancel)

    def work(self) -> dict:
        from terrafusion_agent import api

        cfg = api.load_config()
        exists = cfg.local_path.exists()
        tables = api.synced_tables(cfg) if exists else []
        return {"tables": tables, "presets": dict(cfg.presets), "local_exists": exists,
                "local_path": str(cfg.local_path), "order": list(cfg.tables)}

    def succeeded(self, sources: dict) -> None:
        self.sourcesReady.emit(sources)

    def failure(self) -> str:
        return tr("The local copy could not be read: {reason}.")


class HistoryStartTask(BackgroundTask):
    """Asks central when its history of a synced table starts (the Export dialog's
    "As of" says it; a cheap query, but central may be far or down, so never on the
    main thread)."""

    #: emitted on the main thread with (table, start: ISO 8601 in UTC, or "" for none)
    historyStart = pyqtSignal(str, str)  # noqa: N815 - Qt naming
    #: emitted on the main thread with one sentence (the export will say it again)
    failed = pyqtSignal(str)

    failure_log = "Asking central where its history starts failed."

    def __init__(self, table: str, config_path: Optional[str] = None):
        super().__init__(tr("Asking central where the history of {table} starts").format(
            table=table), QgsTask.Flag.CanCancel)
        self.table = table
        self.config_path = config_path

    def work(self) -> dict:
        from terrafusion_agent import api

        start = api.history_start(api.load_config(self.config_path), self.table)
        return {"table": self.table, "start": start or ""}

    def succeeded(self, value: dict) -> None:
        self.historyStart.emit(value["table"], value["start"])

    def failure(self) -> str:
        return tr("Central could not say where its history starts: {reason}.")
