"""The Feature history panel: one feature's changes as central recorded them, and
*Restore this version*.

The widgets come from ``resources/ui/history_panel.ui``; every signal is wired here.
The feature is picked on the map (a map tool) or taken from the selection of the active
layer, wherever it was made (the attribute table, the map). The timeline lists one line
per change: when (local time), who, what, which columns; the selected change shows its
values before and after, and its geometries on a small map. Reading the history and
restoring a version run as ``QgsTask``: the panel never waits on a database.
"""

from __future__ import annotations

from typing import Optional

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsDataSourceUri,
    QgsFeature,
    QgsGeometry,
    QgsProject,
    QgsUnitTypes,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.gui import QgsDockWidget, QgsMapToolIdentify
from qgis.PyQt import uic
from qgis.PyQt.QtCore import QDate, QDateTime, Qt, QTime, QVariant, pyqtSignal
from qgis.PyQt.QtGui import QColor
from qgis.PyQt.QtWidgets import QHeaderView, QMessageBox, QTableWidgetItem

from ..tasks.history_tasks import (
    FeatureHistory,
    HistoryLoadTask,
    PickedFeature,
    RestoreVersionTask,
)
from . import paths
from .message_bar import MessageBar
from .project_layers import PROVIDER, reload_synced_layers, synced_project_layers
from .review_views import disconnect_tasks, show_versions
from .terrafusion_dock import DASH, local_time
from .translation import tr

FORM_CLASS, _ = uic.loadUiType(str(paths.ui_path("history_panel.ui")))

#: the version before the selected change (dashed) and after it (solid)
BEFORE_COLOR = "#d9730d"
AFTER_COLOR = "#1f6fb2"
ENTRY_ROLE = Qt.ItemDataRole.UserRole


# --- what the panel reads off a layer --------------------------------------------------


def _plain(value):
    """An attribute value as the agent takes it: Python numbers and text, None for NULL."""
    if isinstance(value, QDateTime):
        return value.toString(Qt.DateFormat.ISODate) if value.isValid() else None
    if isinstance(value, (QDate, QTime)):
        return value.toString(Qt.DateFormat.ISODate) if value.isValid() else None
    if value is None or (isinstance(value, QVariant) and value.isNull()):
        return None
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def picked_feature(layer: QgsVectorLayer, feature: QgsFeature) -> Optional[PickedFeature]:
    """What the history task needs of ``feature`` of ``layer``; None for a layer that
    cannot be a table of the local copy (not a SpatiaLite layer)."""
    if not isinstance(layer, QgsVectorLayer) or layer.providerType() != PROVIDER:
        return None
    uri = QgsDataSourceUri(layer.source())
    names = layer.fields().names()
    attributes = {name: _plain(value) for name, value in zip(names, feature.attributes())}
    return PickedFeature(layer_name=layer.name(), database=uri.database(),
                         layer_table=uri.table(), attributes=attributes)


# --- how an entry reads -----------------------------------------------------------------


def operation_text(op: Optional[str]) -> str:
    return {"insert": tr("Inserted"), "update": tr("Updated"),
            "delete": tr("Deleted")}.get(op or "", op or DASH)


def who_text(entry: dict) -> str:
    """Who made a change: the agent's user@host, else the database role and application."""
    agent = entry.get("agent")
    if agent:
        user, host = agent.get("os_user"), agent.get("host")
        if user and host:
            return f"{user}@{host}"
        return user or host or tr("agent {id}").format(id=str(agent.get("id") or "?")[:8])
    role, application = entry.get("role"), entry.get("application")
    if role and application:
        return tr("{role} ({application})").format(role=role, application=application)
    return role or application or DASH


def who_tooltip(entry: dict) -> str:
    agent = entry.get("agent")
    lines = []
    if agent:
        lines.append(tr("Pushed by the TerraFusion agent {id}").format(id=agent.get("id")))
        if agent.get("os_user"):
            lines.append(tr("User: {user}").format(user=agent["os_user"]))
        if agent.get("host"):
            lines.append(tr("Computer: {host}").format(host=agent["host"]))
    if entry.get("role"):
        lines.append(tr("Database role: {role}").format(role=entry["role"]))
    if entry.get("application"):
        lines.append(tr("Application: {application}").format(
            application=entry["application"]))
    return "\n".join(lines)


def _geometry(wkt) -> Optional[QgsGeometry]:
    if not wkt:
        return None
    geometry = QgsGeometry.fromWkt(str(wkt))
    return None if geometry is None or geometry.isNull() else geometry


def value_text(value, geometry: bool, crs: Optional[QgsCoordinateReferenceSystem]) -> str:
    if value is None:
        return tr("NULL")
    if geometry:
        shape = _geometry(value)
        if shape is None or shape.isEmpty():
            return tr("(no geometry)")
        if shape.type() == QgsWkbTypes.GeometryType.PolygonGeometry:
            unit = QgsUnitTypes.toAbbreviatedString(crs.mapUnits()) if crs else ""
            return tr("area {area} {unit}²").format(area=f"{shape.area():,.0f}", unit=unit)
        return QgsWkbTypes.displayString(shape.wkbType())
    if isinstance(value, float):
        return f"{value:,}"
    return str(value)


class FeaturePickTool(QgsMapToolIdentify):
    """A map tool that hands over the topmost feature of a SpatiaLite layer clicked."""

    #: (layer, feature) of the feature clicked
    featurePicked = pyqtSignal(object, object)  # noqa: N815 - Qt naming

    def canvasReleaseEvent(self, event) -> None:  # noqa: N802 - Qt API
        layers = [layer for layer in self.canvas().layers()
                  if isinstance(layer, QgsVectorLayer) and layer.providerType() == PROVIDER]
        if not layers:
            return
        results = self.identify(event.x(), event.y(), layers,
                                QgsMapToolIdentify.IdentifyMode.TopDownStopAtFirst)
        if results:
            self.featurePicked.emit(results[0].mLayer, results[0].mFeature)


class HistoryPanel(QgsDockWidget, FORM_CLASS):
    """A feature's history from central, and restoring one of its versions locally."""

    #: emitted on the main thread after a version was restored, with what changed (the
    #: plugin refreshes its dock: the restored feature is a pending edit)
    restored = pyqtSignal(dict)

    def __init__(self, iface=None, parent=None, project: Optional[QgsProject] = None):
        super().__init__(parent)
        self.setupUi(self)
        # QGIS restores a dock's place and visibility by this name.
        self.setObjectName("TerraFusionHistoryPanel")
        self.iface = iface
        self._project = project
        self.bar = MessageBar(self)
        self.mainLayout.insertWidget(0, self.bar)
        self._load_task: Optional[HistoryLoadTask] = None
        self._restore_task: Optional[RestoreVersionTask] = None
        #: a feature picked while a load ran: read when it ends (the newest pick wins)
        self._queued: Optional[PickedFeature] = None
        self._picked: Optional[PickedFeature] = None
        self._watched: Optional[QgsVectorLayer] = None
        self._tool: Optional[FeaturePickTool] = None
        self._map_layers: list[QgsVectorLayer] = []
        #: what is shown (for the plugin and tests)
        self.history: Optional[FeatureHistory] = None
        self.shown_entry: Optional[dict] = None
        self.last_restore: Optional[dict] = None

        # a narrow panel: when and what changed whole, who and the columns share the rest,
        # elided (whole in their tooltips), never scrolled sideways
        header = self.entriesTable.horizontalHeader()
        for column, mode in ((0, QHeaderView.ResizeMode.ResizeToContents),
                             (1, QHeaderView.ResizeMode.Stretch),
                             (2, QHeaderView.ResizeMode.ResizeToContents),
                             (3, QHeaderView.ResizeMode.Stretch)):
            header.setSectionResizeMode(column, mode)
        self.entriesTable.setWordWrap(False)
        self.entriesTable.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.entriesTable.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        values = self.valuesTable.horizontalHeader()
        values.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        values.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        values.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.valuesTable.setWordWrap(False)
        self.valuesTable.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.verticalSplitter.setSizes([220, 200, 200])
        self.mapCanvas.setCanvasColor(QColor("#ffffff"))
        self.mapCanvas.enableAntiAliasing(True)
        self.pickButton.setIcon(QgsApplication.getThemeIcon("/mActionIdentify.svg"))
        self.refreshButton.setIcon(QgsApplication.getThemeIcon("/mActionRefresh.svg"))
        self.restoreButton.setIcon(QgsApplication.getThemeIcon("/mActionUndo.svg"))
        self.legendLabel.setText(
            '<span style="color:{bc}">┅</span> {before} &nbsp; '
            '<span style="color:{ac}">■</span> {after}'.format(
                bc=BEFORE_COLOR, ac=AFTER_COLOR, before=tr("Before the change"),
                after=tr("After the change")))
        self.featureLabel.setText(tr("Select a feature of a synced layer, or pick one on "
                                     "the map."))

        self.entriesTable.itemSelectionChanged.connect(self._entry_selection_changed)
        self.pickButton.toggled.connect(self._pick_toggled)
        self.followCheck.toggled.connect(self._follow_toggled)
        self.refreshButton.clicked.connect(self.refresh)
        self.restoreButton.clicked.connect(self.restore_selected)
        if iface is not None:
            iface.currentLayerChanged.connect(self._current_layer_changed)
        self._update_buttons()
        self._current_layer_changed()

    # --- which feature ----------------------------------------------------------------

    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        # a selection made while the panel was closed
        self._follow_toggled(self.followCheck.isChecked())

    def _current_layer_changed(self, *_args) -> None:
        layer = self.iface.activeLayer() if self.iface is not None else None
        self.watch_layer(layer if isinstance(layer, QgsVectorLayer) else None)

    def watch_layer(self, layer: Optional[QgsVectorLayer]) -> None:
        """Follow the selection of ``layer`` (the active layer), showing its feature now."""
        if layer is self._watched:
            return
        if self._watched is not None:
            try:
                self._watched.selectionChanged.disconnect(self._selection_changed)
            except (RuntimeError, TypeError):
                pass  # the layer is gone
        self._watched = layer
        if layer is None:
            return
        layer.selectionChanged.connect(self._selection_changed)
        if self.followCheck.isChecked() and layer.selectedFeatureCount():
            self._selection_changed(layer.selectedFeatureIds(), [], False)

    def _follow_toggled(self, on: bool) -> None:
        if on and self._watched is not None and self._watched.selectedFeatureCount():
            self._selection_changed(self._watched.selectedFeatureIds(), [], False)

    def _selection_changed(self, selected, _deselected=None, _clear=None) -> None:
        layer = self._watched
        if layer is None or not self.followCheck.isChecked() or self.isHidden():
            return
        # one of those just selected (the row clicked in the attribute table), else one
        # still selected after a deselection
        ids = sorted(selected) or sorted(layer.selectedFeatureIds())
        if not ids:
            return
        feature = layer.getFeature(ids[0])
        if feature.isValid():
            self.show_feature(layer, feature)

    def _pick_toggled(self, on: bool) -> None:
        canvas = self.iface.mapCanvas() if self.iface is not None else None
        if canvas is None:
            return
        if on:
            if self._tool is None:
                self._tool = FeaturePickTool(canvas)
                self._tool.featurePicked.connect(self.show_feature)
                self._tool.deactivated.connect(lambda: self.pickButton.setChecked(False))
            canvas.setMapTool(self._tool)
        elif self._tool is not None and canvas.mapTool() is self._tool:
            canvas.unsetMapTool(self._tool)

    def show_feature(self, layer: QgsVectorLayer, feature: QgsFeature) -> None:
        """Read and show the history of ``feature`` of ``layer``."""
        picked = picked_feature(layer, feature)
        if picked is None:
            self._say(tr("The layer {layer} is not a table of the TerraFusion local copy; "
                         "only synced layers have a history.").format(layer=layer.name()),
                      Qgis.MessageLevel.Warning)
            return
        self.load(picked)

    # --- loading ----------------------------------------------------------------------

    def load(self, picked: PickedFeature, again: bool = False) -> None:
        """Read ``picked``'s history in the background (unless it is shown already and
        not ``again``); a pick made while a reading runs waits for it."""
        if not again and picked == self._picked and self._queued is None and (
                self._load_task is not None or self.history is not None):
            return
        if self._load_task is not None:
            self._queued = picked
            return
        self._picked = picked
        self.bar.clearWidgets()
        self.featureLabel.setText(tr("Reading the history…"))
        task = HistoryLoadTask(picked)
        task.loaded.connect(self._loaded)
        task.failed.connect(self._load_failed)
        self._load_task = task
        self._update_buttons()
        QgsApplication.taskManager().addTask(task)

    def refresh(self) -> None:
        if self._picked is not None:
            self.load(self._picked, again=True)

    def is_busy(self) -> bool:
        return (self._load_task is not None or self._restore_task is not None
                or self._queued is not None)

    def _next(self) -> None:
        queued, self._queued = self._queued, None
        if queued is not None:
            self.load(queued)

    def _loaded(self, history: FeatureHistory) -> None:
        self._load_task = None
        if self._queued is not None:
            self._next()
            return
        self.history = history
        report = history.report
        entries = report.get("entries") or []
        self.featureLabel.setText(tr("{table} {key}: {n} change(s)").format(
            table=history.table, key=_key_text(history.key), n=len(entries)))
        start = report.get("history_start")
        self.startLabel.setText(
            tr("The central database has recorded this table's changes since "
               "{when}.").format(when=local_time(start)) if start else
            tr("The central database keeps no changes of this table yet."))
        table = self.entriesTable
        table.setRowCount(0)
        for entry in entries:
            row = table.rowCount()
            table.insertRow(row)
            when = entry.get("committed_at")
            cells = [local_time(when, "%Y-%m-%d %H:%M"), who_text(entry),
                     operation_text(entry.get("op")), ", ".join(entry.get("columns") or [])]
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(ENTRY_ROLE, entry.get("id"))
                if column == 0:
                    item.setToolTip(local_time(when))  # to the second
                elif column == 1:
                    item.setToolTip(who_tooltip(entry))
                else:
                    item.setToolTip(text)
                table.setItem(row, column, item)
        if entries:
            table.selectRow(0)
        else:
            self._show_entry(None)
        self._update_buttons()

    def _load_failed(self, message: str) -> None:
        self._load_task = None
        if self._queued is not None:
            self._next()
            return
        self.featureLabel.setText("")
        self._say(message, Qgis.MessageLevel.Critical)
        self._update_buttons()

    # --- one entry --------------------------------------------------------------------

    def entries(self) -> list[dict]:
        return list((self.history.report.get("entries") or []) if self.history else [])

    def _entry_selection_changed(self) -> None:
        rows = {index.row() for index in self.entriesTable.selectionModel().selectedRows()}
        wanted = (self.entriesTable.item(min(rows), 0).data(ENTRY_ROLE) if rows else None)
        self._show_entry(next((e for e in self.entries() if e.get("id") == wanted), None))
        self._update_buttons()

    def _show_entry(self, entry: Optional[dict]) -> None:
        self.shown_entry = entry
        table = self.valuesTable
        table.setRowCount(0)
        self._clear_map()
        if entry is None or self.history is None:
            return
        history = self.history
        old, new = entry.get("old") or {}, entry.get("new") or {}
        names = [n for n in history.columns
                 if n in (entry.get("columns") or []) or n in old or n in new]
        names += [n for n in [*(entry.get("columns") or []), *old, *new] if n not in names]
        crs = (QgsCoordinateReferenceSystem(f"EPSG:{history.srid}") if history.srid
               else None)
        op = entry.get("op")
        for name in names:
            row = table.rowCount()
            table.insertRow(row)
            is_geometry = name == history.geometry_column
            before = DASH if op == "insert" else value_text(old.get(name), is_geometry, crs)
            after = (tr("(deleted)") if op == "delete" else
                     value_text(new.get(name), is_geometry, crs))
            for column, text in enumerate((name, before, after)):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                table.setItem(row, column, item)
        if history.geometry_column:
            self._show_geometries(entry, history.geometry_column, crs)

    def _show_geometries(self, entry: dict, column: str,
                         crs: Optional[QgsCoordinateReferenceSystem]) -> None:
        history = self.history
        backdrop = None if history is None else synced_project_layers(
            self._project or QgsProject.instance(), history.local_path).get(
                history.layer_table)
        # before (dashed, unfilled) over after (filled), both over the neighbourhood
        versions = [("before", _geometry((entry.get("old") or {}).get(column)), BEFORE_COLOR,
                     True, True),
                    ("after", _geometry((entry.get("new") or {}).get(column)), AFTER_COLOR,
                     False, False)]
        self._map_layers = show_versions(self.mapCanvas, versions, crs, backdrop)
        if not self._map_layers:
            self.legendLabel.setToolTip(tr("This change left the geometry as it was."))

    def _clear_map(self) -> None:
        self.mapCanvas.setLayers([])
        self._map_layers = []
        self.legendLabel.setToolTip("")

    # --- restoring --------------------------------------------------------------------

    def restore_selected(self) -> None:
        """After a confirmation, make the feature in the local copy what it was right
        after the selected change."""
        entry, history = self.shown_entry, self.history
        if entry is None or history is None or self._restore_task is not None:
            return
        if entry.get("op") == "delete":
            self._say(tr("This change deleted the feature: restore the version before it."),
                      Qgis.MessageLevel.Warning)
            return
        when = local_time(entry.get("committed_at"))
        feature = tr("{table} {key}").format(table=history.table,
                                             key=_key_text(history.key))
        answer = QMessageBox.question(
            self, tr("Restore this version"),
            tr("Make {feature} in your local copy what it was after the change of "
               "{when}?\n\nThis is your own edit: the next sync sends it to the central "
               "database, where a column changed since is a conflict for you to "
               "decide.").format(feature=feature, when=when),
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            return
        self.bar.clearWidgets()
        task = RestoreVersionTask(history.table, history.key, int(entry["id"]))
        task.restored.connect(lambda result: self._restored(result, feature, when))
        task.failed.connect(self._restore_failed)
        self._restore_task = task
        self._update_buttons()
        QgsApplication.taskManager().addTask(task)

    def _restored(self, result: dict, feature: str, when: str) -> None:
        self._restore_task = None
        self.last_restore = result
        if result.get("op") is None:
            self._say(tr("{feature} already is its version of {when}; nothing changed.")
                      .format(feature=feature, when=when), Qgis.MessageLevel.Info)
        else:
            if self.history is not None:
                # QGIS caches what it drew: show the restored row at once
                reload_synced_layers(self._project or QgsProject.instance(),
                                     self.history.local_path)
            self._say(tr("{feature} is its version of {when} again ({columns}); the next "
                         "sync sends it to the central database.").format(
                             feature=feature, when=when,
                             columns=", ".join(result.get("columns") or [])),
                      Qgis.MessageLevel.Success)
        self.restored.emit(result)
        self._update_buttons()

    def _restore_failed(self, message: str) -> None:
        self._restore_task = None
        self._say(message, Qgis.MessageLevel.Critical)
        self._update_buttons()

    # --- helpers ----------------------------------------------------------------------

    def _say(self, text: str, level) -> None:
        self.bar.pushMessage(tr("Feature history"), text, level, 0)

    def _update_buttons(self) -> None:
        entry = self.shown_entry
        self.restoreButton.setEnabled(entry is not None and entry.get("op") != "delete"
                                      and self._restore_task is None
                                      and self._load_task is None)
        self.refreshButton.setEnabled(self._picked is not None)
        deleted = entry is not None and entry.get("op") == "delete"
        # a disabled button says why it is
        self.restoreButton.setToolTip(
            tr("This change deleted the feature: restore the version before it.") if deleted
            else tr("Make the feature in your local copy what it was right after the "
                    "selected change; the next sync sends it to the central database as "
                    "your edit"))

    def teardown(self) -> None:
        """Detach from layers, the map and running tasks before the plugin goes away."""
        self.watch_layer(None)
        if self.iface is not None:
            try:
                self.iface.currentLayerChanged.disconnect(self._current_layer_changed)
            except (RuntimeError, TypeError):
                pass
        if self._tool is not None:
            canvas = self.iface.mapCanvas() if self.iface is not None else None
            if canvas is not None and canvas.mapTool() is self._tool:
                canvas.unsetMapTool(self._tool)
            self._tool.deleteLater()
            self._tool = None
        disconnect_tasks(((self._load_task, ("loaded", "failed")),
                          (self._restore_task, ("restored", "failed"))))
        self._load_task = self._restore_task = self._queued = None
        self._clear_map()


def _key_text(key) -> str:
    return ", ".join(str(v) for v in key)
