"""The Export dialog: a synced table or a project layer to a file, as a ``QgsTask``.

The widgets come from ``resources/ui/export_dialog.ui``; every signal is wired here.
Synced tables go through the agent's export engine (``export_task.TableExportTask``),
other layers through QGIS's writer (``export_task.LayerExportTask``); both report
progress, can be cancelled and leave no partial file behind.
"""

from __future__ import annotations

import zipfile
from datetime import datetime
from pathlib import Path
from typing import Optional

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsExpression,
    QgsFeatureRequest,
    QgsField,
    QgsMapLayerProxyModel,
    QgsProject,
    QgsVectorLayer,
)
from qgis.gui import QgsFileWidget, QgsProjectionSelectionWidget
from qgis.PyQt import uic
from qgis.PyQt.QtCore import QDate, QDateTime, QMetaType, Qt, QTime, QUrl, pyqtSignal
from qgis.PyQt.QtGui import QDesktopServices
from qgis.PyQt.QtWidgets import (
    QDialogButtonBox,
    QLabel,
    QListWidgetItem,
    QPushButton,
)

from ..tasks.export_task import (
    ExportSourcesTask,
    FeatureChoice,
    HistoryStartTask,
    LayerExportTask,
    TableExportTask,
)
from . import paths, plugin_settings
from .field_types import field_type
from .form_dialog import FormDialog
from .project_layers import layer_uri, synced_project_layers
from .translation import tr

FORM_CLASS, _ = uic.loadUiType(str(paths.ui_path("export_dialog.ui")))

TABLE, LAYER = "table", "layer"
#: field types of the agent's column kinds (for the expression builder's field list)
KIND_TYPES = {"integer": QMetaType.Type.LongLong, "real": QMetaType.Type.Double,
              "decimal": QMetaType.Type.Double, "boolean": QMetaType.Type.Bool,
              "text": QMetaType.Type.QString, "date": QMetaType.Type.QDate,
              "datetime": QMetaType.Type.QDateTime, "blob": QMetaType.Type.QByteArray}
#: how long the success message stays in QGIS's message bar
MESSAGE_SECONDS = 15


def _local_time(iso: str) -> str:
    """An ISO 8601 time in UTC (as the agent gives it) in the user's local time."""
    try:
        when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _check_state(checked: bool) -> Qt.CheckState:
    return Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked


def open_exported_layer(path: str, name: str) -> Optional[QgsVectorLayer]:
    """The exported file as a layer (a zipped shapefile is read inside its zip)."""
    source = path
    if path.lower().endswith(".zip"):
        with zipfile.ZipFile(path) as zf:
            shapes = [n for n in zf.namelist() if n.lower().endswith(".shp")]
        source = f"/vsizip/{path}/{shapes[0]}" if shapes else f"/vsizip/{path}"
    layer = QgsVectorLayer(source, name, "ogr")
    return layer if layer.isValid() else None


class ExportDialog(FormDialog, FORM_CLASS):
    """Choose what to export, where and how; runs the export in the background."""

    #: emitted on the main thread after every export, with its result dict or None
    exportFinished = pyqtSignal(object)  # noqa: N815 - Qt naming

    def __init__(self, iface=None, parent=None):
        super().__init__("TerraFusionExportDialog", iface, parent)
        self.project = QgsProject.instance()
        self.exportButton = self.buttonBox.addButton(tr("Export"),
                                                     QDialogButtonBox.ButtonRole.AcceptRole)
        self.exportButton.setDefault(True)
        self.cancelButton = self.buttonBox.addButton(tr("Cancel export"),
                                                     QDialogButtonBox.ButtonRole.ActionRole)
        self.cancelButton.setVisible(False)
        self.closeButton = self.buttonBox.button(QDialogButtonBox.StandardButton.Close)

        self._tables: dict = {}
        self._presets: dict = {}
        self._local_path: Optional[str] = None
        #: memory layers with the fields of tables the project does not show
        self._own_layers: dict[str, QgsVectorLayer] = {}
        self._sources_task: Optional[ExportSourcesTask] = None
        #: where central's history of each table starts ("" when it keeps none), as asked
        self._history_starts: dict[str, str] = {}
        self._history_task: Optional[HistoryStartTask] = None
        self._selected_count = 0
        self._task = None
        self._auto_path = ""
        self._replace_confirmed = ""
        self._updating = False
        #: the last export's result (for tests and the plugin)
        self.last_result: Optional[dict] = None
        self.last_layer: Optional[QgsVectorLayer] = None

        # GDAL's Python bindings take a tenth of a second to load and hold Python's lock
        # meanwhile. QGIS's Processing has usually loaded them already; if not, that
        # happens here, as the dialog opens, not in the export task, where it would
        # freeze the map in the middle of an export.
        from osgeo import gdal, ogr, osr  # noqa: F401
        from terrafusion_agent import api

        for spec in api.export_formats().values():
            self.formatCombo.addItem(f"{spec.label} ({spec.extension})", spec.name)
        self.layerCombo.setFilters(QgsMapLayerProxyModel.Filter.VectorLayer)
        self.fileWidget.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.fileWidget.setConfirmOverwrite(True)
        self.fileWidget.setDialogTitle(tr("Export to"))
        self.filterWidget.setExpressionDialogTitle(tr("Export only the features where"))
        self.filterWidget.setAllowEmptyFieldName(True)
        # without a spatial source the CRS box says why it is empty (rather than QGIS's
        # "invalid projection")
        self.crsWidget.setOptionVisible(QgsProjectionSelectionWidget.CrsOption.CrsNotSet, True)
        self.addToMapCheck.setChecked(plugin_settings.export_add_to_map())
        self.progressBar.setVisible(False)
        # the valuation date assessors ask for most: January 1 of this year, 00:00
        today = QDate.currentDate()
        self.asOfEdit.setDateTime(QDateTime(QDate(today.year(), 1, 1), QTime(0, 0)))

        self.tableRadio.toggled.connect(self._source_changed)
        self.tableCombo.currentIndexChanged.connect(self._source_changed)
        self.layerCombo.layerChanged.connect(self._layer_picked)
        self.presetCombo.currentIndexChanged.connect(self._preset_changed)
        self.formatCombo.currentIndexChanged.connect(self._format_changed)
        self.selectAllButton.clicked.connect(lambda: self._check_all(True))
        self.selectNoneButton.clicked.connect(lambda: self._check_all(False))
        self.fileWidget.fileChanged.connect(self._file_changed)
        self.exportButton.clicked.connect(self.export)
        self.cancelButton.clicked.connect(self.cancel_export)
        self.closeButton.clicked.connect(self.close)
        self.addToMapCheck.toggled.connect(plugin_settings.set_export_add_to_map)
        self.asOfCheck.toggled.connect(self._as_of_changed)

        self.presetCombo.addItem(tr("No preset"), None)
        self._source_changed()

    # --- sources ------------------------------------------------------------------------

    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        self.load_sources()

    def load_sources(self) -> None:
        """Read the synced tables and presets in the background (once at a time)."""
        if self._sources_task is not None:
            return
        task = ExportSourcesTask()
        task.sourcesReady.connect(self._sources_ready)
        task.failed.connect(self._sources_failed)
        self._sources_task = task
        QgsApplication.taskManager().addTask(task)

    def is_loading(self) -> bool:
        return self._sources_task is not None

    def _sources_ready(self, sources: dict) -> None:
        self._sources_task = None
        # the configuration's order: the county's main table (parcels) comes first
        order = {name: i for i, name in enumerate(sources.get("order", ()))}
        self._tables = {info.name: info for info in sorted(
            sources["tables"], key=lambda t: (order.get(t.name, len(order)), t.name))}
        self._presets = sources["presets"]
        if sources["local_path"] != self._local_path:
            self._own_layers.clear()
        self._local_path = sources["local_path"]
        self._updating = True
        try:
            current = self.tableCombo.currentData()
            self.tableCombo.clear()
            for name in self._tables:
                self.tableCombo.addItem(name, name)
            if current in self._tables:
                self.tableCombo.setCurrentIndex(self.tableCombo.findData(current))
            preset = self.presetCombo.currentData()
            self.presetCombo.clear()
            self.presetCombo.addItem(tr("No preset"), None)
            for name in sorted(self._presets):
                self.presetCombo.addItem(name, name)
            if preset in self._presets:
                self.presetCombo.setCurrentIndex(self.presetCombo.findData(preset))
            self.tableRadio.setEnabled(bool(self._tables))
            if not self._tables:
                self.layerRadio.setChecked(True)
        finally:
            self._updating = False
        self._preset_changed()
        if not sources.get("local_exists", True):
            self.bar.pushMessage(tr("Synced tables"), tr(
                "There is no local copy yet ({path}): the synced tables are offered here "
                "after the first sync (Sync now, in the TerraFusion panel). A layer of the "
                "project can be exported meanwhile.").format(path=self._local_path),
                Qgis.MessageLevel.Info, 0)

    def _sources_failed(self, message: str) -> None:
        self._sources_task = None
        self._tables, self._presets = {}, {}
        self.tableCombo.clear()
        self.tableRadio.setEnabled(False)
        self.layerRadio.setChecked(True)
        self.bar.pushMessage(tr("Synced tables"), message, Qgis.MessageLevel.Warning, 0)
        self._source_changed()

    def mode(self) -> str:
        return TABLE if self.tableRadio.isChecked() else LAYER

    def _table_info(self):
        return self._tables.get(self.tableCombo.currentData())

    def _project_layer(self, table: str) -> Optional[QgsVectorLayer]:
        from terrafusion_agent.api import local_name

        if not self._local_path:
            return None
        return synced_project_layers(self.project, self._local_path).get(local_name(table))

    def _fields_layer(self, table: str) -> QgsVectorLayer:
        """A project layer of ``table``, else an empty memory layer with its fields: all
        the expression widget needs, without opening the database on the GUI thread."""
        layer = self._project_layer(table)
        if layer is not None:
            return layer
        if table not in self._own_layers:
            info = self._tables[table]
            layer = QgsVectorLayer("None", table, "memory")
            layer.dataProvider().addAttributes([
                QgsField(c.name, field_type(KIND_TYPES.get(c.kind, QMetaType.Type.QString)))
                for c in info.columns if not info.geometry or c.name != info.geometry.column])
            layer.updateFields()
            self._own_layers[table] = layer
        return self._own_layers[table]

    def _layer_picked(self, _layer) -> None:
        if not self._updating and self.mode() == LAYER:
            self._source_changed()

    def _preset_changed(self) -> None:
        if self._updating:
            return
        preset = self._presets.get(self.presetCombo.currentData())
        if preset is not None:
            self._updating = True
            try:
                self.tableRadio.setChecked(True)
                index = self.tableCombo.findData(preset.table)
                if index >= 0:
                    self.tableCombo.setCurrentIndex(index)
                self.formatCombo.setCurrentIndex(self.formatCombo.findData(preset.format))
            finally:
                self._updating = False
        # A preset says what may leave the office: its table is fixed, and the layer
        # choice would bypass it.
        self.tableCombo.setEnabled(preset is None)
        self.layerRadio.setEnabled(preset is None)
        self._source_changed()
        if preset is not None and preset.crs:
            self.crsWidget.setCrs(QgsCoordinateReferenceSystem(preset.crs))

    # --- what the source offers -----------------------------------------------------------

    def _source_changed(self, *_args) -> None:
        if self._updating:
            return
        table_mode = self.mode() == TABLE
        self.tableCombo.setEnabled(table_mode and self.presetCombo.currentData() is None)
        self.layerCombo.setEnabled(not table_mode)
        self.presetCombo.setEnabled(table_mode and bool(self._presets))
        preset = self._presets.get(self.presetCombo.currentData()) if table_mode else None

        fields: list[tuple[str, str]] = []  # (name, shown text)
        crs = QgsCoordinateReferenceSystem()
        spatial = False
        layer: Optional[QgsVectorLayer] = None
        name = ""
        if table_mode:
            info = self._table_info()
            if info is not None:
                name = info.name
                geometry = info.geometry.column if info.geometry else None
                allowed = set(preset.fields) if preset and preset.fields else None
                renames = preset.renames if preset else {}
                for column in info.columns:
                    if column.name == geometry or (allowed and column.name not in allowed):
                        continue
                    shown = column.name
                    if column.name in renames:
                        shown = f"{column.name} → {renames[column.name]}"
                    fields.append((column.name, shown))
                if info.geometry:
                    spatial = True
                    crs = QgsCoordinateReferenceSystem(f"EPSG:{info.geometry.srid}")
                layer = self._fields_layer(info.name)
        else:
            layer = self.layerCombo.currentLayer()
            if isinstance(layer, QgsVectorLayer):
                name = layer.name()
                fields = [(f.name(), f.name()) for f in layer.fields()]
                spatial = layer.isSpatial()
                crs = layer.crs()
            else:
                layer = None

        self.fieldsList.clear()
        for field_name, shown in fields:
            item = QListWidgetItem(shown)
            item.setData(Qt.ItemDataRole.UserRole, field_name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(_check_state(True))
            self.fieldsList.addItem(item)

        self._spatial = spatial
        self._source_crs = crs
        if crs.isValid():
            self.crsWidget.setLayerCrs(crs)
            self.crsWidget.setCrs(crs)
        elif not spatial:
            self.crsWidget.setNotSetText(tr("None: the source has no geometry") if layer
                                         is not None else tr("Choose what to export first"))
            self.crsWidget.setCrs(QgsCoordinateReferenceSystem())
        self.filterWidget.setLayer(layer)
        self.filterWidget.setExpression("")
        selected = layer.selectedFeatureCount() if layer is not None and layer in \
            self.project.mapLayers().values() else 0
        self._selected_count = selected
        self.selectedOnlyCheck.setEnabled(selected > 0)
        self.selectedOnlyCheck.setChecked(False)
        self.selectedOnlyCheck.setText(
            tr("Selected features only ({n})").format(n=selected) if selected
            else tr("Selected features only"))
        if preset is not None and preset.where:
            self.presetFilterLabel.setText(tr("The preset keeps only rows where: {where}")
                                           .format(where=preset.where))
        else:
            self.presetFilterLabel.setText("")
        self.presetFilterLabel.setVisible(bool(self.presetFilterLabel.text()))
        self._source_name = name
        self._format_changed()
        self._as_of_changed()

    # --- as of a past moment ----------------------------------------------------------------

    def as_of_wanted(self) -> bool:
        """Whether the export is of the table as it stood at the chosen moment."""
        return self.mode() == TABLE and self.asOfCheck.isChecked()

    def as_of(self) -> str:
        """The chosen moment (the user's local time) in UTC, as the agent takes it."""
        return self.asOfEdit.dateTime().toUTC().toString(Qt.DateFormat.ISODate)

    def _as_of_table(self) -> Optional[str]:
        preset = self._presets.get(self.presetCombo.currentData())
        if preset is not None:
            return preset.table
        info = self._table_info()
        return info.name if info is not None else None

    def _as_of_changed(self, *_args) -> None:
        """A past moment is for synced tables only, and a selection or a QGIS filter
        picks features as they are now, which is not what a past moment shows."""
        wanted = self.as_of_wanted()
        self.asOfCheck.setEnabled(self.mode() == TABLE)
        self.asOfEdit.setEnabled(wanted)
        self.asOfEdit.setMaximumDateTime(QDateTime.currentDateTime())
        self.selectedOnlyCheck.setEnabled(not wanted and self._selected_count > 0)
        if wanted:
            self.selectedOnlyCheck.setChecked(False)
        self.filterWidget.setEnabled(not wanted)
        now_only = tr("Selections and filters pick the features as they are now, so they "
                      "are off for an export as of a past moment.") if wanted else ""
        for widget in (self.selectedOnlyCheck, self.filterCaption):
            widget.setToolTip(now_only)
        self._show_history_start()

    def _show_history_start(self) -> None:
        """The moment's tooltip says where central's history starts once known; asking
        central is a task, and its answer arrives later."""
        tip = tr("The table as it stood at this moment (your local time), rebuilt from "
                 "central's history.")
        table = self._as_of_table()
        if not self.as_of_wanted() or table is None:
            self.asOfEdit.setToolTip(tip)
            return
        start = self._history_starts.get(table)
        if start is None:
            self.asOfEdit.setToolTip(tip)
            self._ask_history_start(table)
        elif start:
            self.asOfEdit.setToolTip(tip + " " + tr(
                "Central's history of {table} starts at {time}.").format(
                    table=table, time=_local_time(start)))
        else:
            self.asOfEdit.setToolTip(tip + " " + tr(
                "Central keeps no history of {table} yet.").format(table=table))

    def _ask_history_start(self, table: str) -> None:
        if self._history_task is not None:
            return  # one question at a time; the answer asks again for another table
        task = HistoryStartTask(table)
        task.historyStart.connect(self._history_start_known)
        task.failed.connect(self._history_start_unknown)
        self._history_task = task
        QgsApplication.taskManager().addTask(task)

    def _history_start_known(self, table: str, start: str) -> None:
        self._history_task = None
        self._history_starts[table] = start
        self._show_history_start()

    def _history_start_unknown(self, _message: str) -> None:
        # central could not say: the export itself will, in its own sentence
        self._history_task = None

    def is_asking_history(self) -> bool:
        return self._history_task is not None

    def _format_changed(self, *_args) -> None:
        from terrafusion_agent import api

        spec = api.export_formats()[self.formatCombo.currentData()]
        fixed = spec.fixed_epsg
        if fixed and self._spatial:
            self.crsWidget.setCrs(QgsCoordinateReferenceSystem(f"EPSG:{fixed}"))
        elif spec.default_epsg and self._spatial:
            self.crsWidget.setCrs(QgsCoordinateReferenceSystem(f"EPSG:{spec.default_epsg}"))
        elif self._source_crs.isValid():
            self.crsWidget.setCrs(self._source_crs)
        self.crsWidget.setEnabled(self._spatial and not fixed)
        self.crsWidget.setToolTip(
            tr("{format} files are always in WGS 84 (EPSG:{epsg}).").format(
                format=spec.label, epsg=fixed) if fixed else "")
        preset = self._presets.get(self.presetCombo.currentData()) \
            if self.mode() == TABLE else None
        if preset is not None and preset.filename:
            # The preset names the file itself: the user only picks the folder.
            self.fileWidget.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
            self.fileCaption.setText(tr("Folder:"))
        else:
            self.fileWidget.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
            self.fileCaption.setText(tr("File:"))
            self.fileWidget.setFilter(f"{spec.label} (*{spec.extension})")
        self._suggest_path(spec, preset)

    def _suggest_path(self, spec, preset) -> None:
        current = self.fileWidget.filePath()
        if current and current != self._auto_path:
            # the user's own choice: only its suffix follows the format
            if self.fileWidget.storageMode() == QgsFileWidget.StorageMode.SaveFile:
                path = Path(current)
                if path.suffix.lower() != spec.extension:
                    self._set_path(str(path.with_suffix(spec.extension)), auto=False)
            return
        folder = plugin_settings.export_folder() or str(Path.home())
        if preset is not None and preset.filename:
            self._set_path(folder, auto=True)
        elif self._source_name:
            self._set_path(str(Path(folder) / f"{_safe_name(self._source_name)}{spec.extension}"),
                           auto=True)

    def _set_path(self, path: str, auto: bool) -> None:
        if auto:
            self._auto_path = path
        self.fileWidget.setFilePath(path)

    def _file_changed(self, path: str) -> None:
        if path != self._auto_path:
            self._auto_path = ""

    def _check_all(self, checked: bool) -> None:
        for row in range(self.fieldsList.count()):
            self.fieldsList.item(row).setCheckState(_check_state(checked))

    def checked_fields(self) -> list[str]:
        items = [self.fieldsList.item(row) for row in range(self.fieldsList.count())]
        return [item.data(Qt.ItemDataRole.UserRole) for item in items
                if item.checkState() == Qt.CheckState.Checked]

    # --- exporting ------------------------------------------------------------------------

    def export(self) -> None:
        """Check the choices and start the export task."""
        if self._task is not None:
            return
        self.bar.clearWidgets()
        from terrafusion_agent import api

        fmt = self.formatCombo.currentData()
        spec = api.export_formats()[fmt]
        out = self.fileWidget.filePath().strip()
        if not out:
            return self._refuse(tr("Choose the file to write."))
        fields = self.checked_fields()
        if not fields:
            return self._refuse(tr("Choose at least one field."))
        # a past moment's export is of the whole table: today's filter is not its own
        expression = "" if self.as_of_wanted() else self.filterWidget.expression().strip()
        if expression:
            problem = self._expression_problem(expression)
            if problem:
                return self._refuse(problem)
        selected_only = self.selectedOnlyCheck.isEnabled() and self.selectedOnlyCheck.isChecked()
        folder_mode = self.fileWidget.storageMode() == QgsFileWidget.StorageMode.GetDirectory
        if not folder_mode and Path(out).suffix.lower() != spec.extension:
            out = str(Path(out).with_suffix(spec.extension))
            self._set_path(out, auto=False)
        if not folder_mode and Path(out).exists() and self._replace_confirmed != out:
            # Typed paths bypass the file dialog's question: ask here, without a modal box.
            self._replace_confirmed = out
            return self._refuse(tr("{file} exists already; click Export again to replace it.")
                                .format(file=out), level=Qgis.MessageLevel.Warning)
        crs = self.crsWidget.crs() if self._spatial and not spec.fixed_epsg else None

        if self.mode() == TABLE:
            info = self._table_info()
            if info is None:
                return self._refuse(tr("Choose a synced table, or a layer of the project."))
            preset = self.presetCombo.currentData()
            all_fields = len(fields) == self.fieldsList.count()
            if crs is not None and not crs.authid():
                return self._refuse(tr("Choose a CRS with an authority code, such as "
                                       "EPSG:4326."))
            choice = None
            as_of = self.as_of() if self.as_of_wanted() else None
            project_layer = self._project_layer(info.name)
            if as_of is not None:
                pass  # the table as it stood then, whole (its preset's filter applies)
            elif project_layer is not None:
                choice = FeatureChoice.of(project_layer, selected_only, expression)
            elif expression:
                from terrafusion_agent.api import local_name

                choice = FeatureChoice.on_table(layer_uri({
                    "path": self._local_path, "table": local_name(info.name),
                    "geometry_column": info.geometry.column if info.geometry else None}),
                    expression)
            request = api.export_request(
                table=None if preset else info.name, preset=preset, format=fmt, out=out,
                crs=crs.authid() if crs is not None else None,
                fields=None if all_fields else tuple(fields), overwrite=True,
                as_of=as_of, trigger="plugin")
            task = TableExportTask(request, choice)
        else:
            layer = self.layerCombo.currentLayer()
            if not isinstance(layer, QgsVectorLayer):
                return self._refuse(tr("Choose a vector layer of the project."))
            choice = FeatureChoice.of(layer, selected_only, expression)
            task = LayerExportTask(layer, fmt, out, crs, fields, choice)

        plugin_settings.set_export_folder(str(Path(out) if folder_mode else Path(out).parent))
        self._replace_confirmed = ""
        task.progressChanged.connect(self._progress)
        task.busyChanged.connect(self._busy)
        task.exported.connect(self._exported)
        task.failed.connect(self._failed)
        self._task = task
        self._set_running(True)
        QgsApplication.taskManager().addTask(task)

    def _expression_problem(self, expression: str) -> Optional[str]:
        """Why the filter cannot be used (parse error, unknown field), or None."""
        parsed = QgsExpression(expression)
        if parsed.hasParserError():
            return tr("The filter is not a valid QGIS expression: {error}").format(
                error=parsed.parserErrorString())
        layer = self.filterWidget.layer()
        if layer is not None:
            names = {f.name().lower() for f in layer.fields()}
            unknown = sorted(c for c in parsed.referencedColumns()
                             if c != QgsFeatureRequest.ALL_ATTRIBUTES and c.lower() not in names)
            if unknown:
                return tr("The filter names a field that {layer} does not have: {field}.").format(
                    layer=layer.name(), field=unknown[0])
        return None

    def is_exporting(self) -> bool:
        return self._task is not None

    def cancel_export(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _refuse(self, message: str, level=Qgis.MessageLevel.Critical) -> None:
        self.bar.pushMessage(tr("Export"), message, level, 0)

    def _set_running(self, running: bool) -> None:
        for widget in (self.sourceGroup, self.outputGroup, self.featuresGroup,
                       self.fieldsGroup, self.exportButton):
            widget.setEnabled(not running)
        self.cancelButton.setVisible(running)
        self.progressBar.setVisible(running)
        self.progressBar.setRange(0, 100)
        self.progressBar.setValue(0)

    def _progress(self, value: float) -> None:
        if self.progressBar.maximum() > 0:
            self.progressBar.setValue(int(value))

    def _busy(self, busy: bool) -> None:
        self.progressBar.setRange(0, 0 if busy else 100)

    def _exported(self, result: dict) -> None:
        self._task = None
        self._set_running(False)
        self._source_changed_after_run()
        self.last_result = result
        path = result["path"]
        if result.get("as_of"):
            text = tr("Exported {n} features of {source} as of {time} to {path}.").format(
                n=result.get("features", 0), source=result.get("table"),
                time=_local_time(result["as_of"]), path=path)
        else:
            text = tr("Exported {n} features of {source} to {path}.").format(
                n=result.get("features", 0), source=result.get("table"), path=path)
        for warning in result.get("warnings") or []:
            text += " " + warning
        self.last_layer = None
        if self.addToMapCheck.isChecked():
            self.last_layer = self.add_to_map(path, result.get("table") or Path(path).stem)
        self.bar.pushMessage(tr("Export"), text, Qgis.MessageLevel.Success, 0)
        self._notify(text, path, added=self.last_layer is not None)
        self.exportFinished.emit(result)

    def _failed(self, message: str, cancelled: bool) -> None:
        self._task = None
        self._set_running(False)
        self._source_changed_after_run()
        self.last_result = None
        level = Qgis.MessageLevel.Info if cancelled else Qgis.MessageLevel.Critical
        self.bar.pushMessage(tr("Export"), message, level, 0)
        if not self.isVisible() and self.iface is not None:
            self.iface.messageBar().pushMessage(tr("TerraFusion export"), message, level,
                                                MESSAGE_SECONDS)
        self.exportFinished.emit(None)

    def _source_changed_after_run(self) -> None:
        # the group boxes were disabled wholesale; re-apply what each widget allows
        self.tableCombo.setEnabled(self.mode() == TABLE
                                   and self.presetCombo.currentData() is None)
        self.layerCombo.setEnabled(self.mode() == LAYER)
        self._as_of_changed()

    def add_to_map(self, path: str, name: str) -> Optional[QgsVectorLayer]:
        layer = open_exported_layer(path, name)
        if layer is None:
            self.bar.pushMessage(tr("Export"), tr("QGIS cannot open the exported file {path}.")
                                 .format(path=path), Qgis.MessageLevel.Warning, 0)
            return None
        self.project.addMapLayer(layer)
        return layer

    def _notify(self, text: str, path: str, added: bool) -> None:
        """QGIS's message bar: a link to the file's folder and, if wanted, "Add to map"."""
        if self.iface is None:
            return
        bar = self.iface.messageBar()
        widget = bar.createMessage(tr("TerraFusion export"), text)
        link = QLabel('<a href="{url}">{text}</a>'.format(
            url=QUrl.fromLocalFile(str(Path(path).parent)).toString(),
            text=tr("Open the folder")))
        link.linkActivated.connect(lambda url: QDesktopServices.openUrl(QUrl(url)))
        widget.layout().addWidget(link)
        if not added:
            button = QPushButton(tr("Add to map"))
            name = Path(path).stem

            def add() -> None:
                layer = open_exported_layer(path, name)
                if layer is not None:
                    self.project.addMapLayer(layer)
                button.setEnabled(False)

            button.clicked.connect(add)
            widget.layout().addWidget(button)
        bar.pushWidget(widget, Qgis.MessageLevel.Success, MESSAGE_SECONDS)

    # --- closing ----------------------------------------------------------------------------

    def teardown(self) -> None:
        """Detach from running tasks before the plugin goes away (an export keeps running)."""
        for task, connections in (
            (self._sources_task, (("sourcesReady", self._sources_ready),
                                  ("failed", self._sources_failed))),
            (self._task, (("progressChanged", self._progress), ("busyChanged", self._busy),
                          ("exported", self._exported), ("failed", self._failed))),
            (self._history_task, (("historyStart", self._history_start_known),
                                  ("failed", self._history_start_unknown))),
        ):
            if task is None:
                continue
            try:
                for name, slot in connections:
                    getattr(task, name).disconnect(slot)
            except (RuntimeError, TypeError):
                pass  # the task already ended and QGIS deleted it
        self._sources_task = self._task = self._history_task = None
        self.filterWidget.setLayer(None)
        self._own_layers.clear()


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".") or "export"
