"""The Pending edits dialog: what is about to leave for the central database, and taking
an edit back before it does.

The widgets come from ``resources/ui/pending_dialog.ui``; every signal is wired here.
The list shows each edited row (table, key, operation, state); for the selected one, the
columns it changes as they were at the last sync and as they are now, and the row is
highlighted on the map. *Discard selected* and *Discard all* ask first, then put the rows
back as they were last synced; the project's layers of the local copy are re-read so the
map shows them. Reading and discarding run as ``QgsTask``.
"""

from __future__ import annotations

from typing import Optional

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCsException,
    QgsGeometry,
    QgsProject,
    QgsUnitTypes,
    QgsWkbTypes,
)
from qgis.gui import QgsHighlight
from qgis.PyQt import uic
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor
from qgis.PyQt.QtWidgets import QHeaderView, QMessageBox, QTableWidgetItem

from ..tasks.pending_tasks import DiscardTask, PendingLoadTask
from . import paths
from .form_dialog import FormDialog
from .project_layers import reload_synced_layers, synced_project_layers
from .review_views import (
    ID_ROLE,
    add_row_to_selection,
    disconnect_tasks,
    selected_ids,
    shown_id,
)
from .terrafusion_dock import DASH, local_time
from .translation import tr

FORM_CLASS, _ = uic.loadUiType(str(paths.ui_path("pending_dialog.ui")))

#: the edited row on the map: a strong outline that reads over any style of the layer
HIGHLIGHT_COLOR = "#e31a1c"
#: what may be discarded; an edit in conflict is resolved in the Conflicts dialog
DISCARDABLE = ("pending", "rejected")


def _operation_text(op: str) -> str:
    return {"insert": tr("added"), "update": tr("changed"),
            "delete": tr("deleted")}.get(op, op)


def _state_text(state: str) -> str:
    return {"pending": tr("waits for the next sync"), "conflict": tr("in conflict"),
            "rejected": tr("refused by central")}.get(state, state)


def _value_text(value, geometry: bool, crs: Optional[QgsCoordinateReferenceSystem]) -> str:
    if value is None:
        return tr("NULL")
    if geometry:
        shape = QgsGeometry.fromWkt(str(value))
        if shape.isNull() or shape.isEmpty():
            return tr("(no geometry)")
        if shape.type() == QgsWkbTypes.GeometryType.PolygonGeometry:
            # what tells two versions of a parcel apart at a glance: its area
            unit = QgsUnitTypes.toAbbreviatedString(crs.mapUnits()) if crs else ""
            return tr("area {area} {unit}²").format(area=f"{shape.area():,.0f}", unit=unit)
        return str(value)
    if isinstance(value, float):
        return f"{value:,}"  # 64,800.0 and 0.1653 alike: grouped, nothing rounded away
    return str(value)


def _key_text(edit: dict) -> str:
    return ", ".join(str(k) for k in edit["key"])


class PendingDialog(FormDialog, FORM_CLASS):
    """Review the local edits not yet sent, and discard those that should not go."""

    #: emitted on the main thread with how many edits were discarded (the dock refreshes)
    editsDiscarded = pyqtSignal(int)  # noqa: N815 - Qt naming

    def __init__(self, iface=None, parent=None):
        super().__init__("TerraFusionPendingDialog", iface, parent)
        self.project = QgsProject.instance()
        self.edits: dict[int, dict] = {}
        #: {table: (geometry column, SRID)} of the tables with a geometry
        self.geometries: dict[str, tuple] = {}
        self._local_path = ""
        self._load_task: Optional[PendingLoadTask] = None
        self._discard_task: Optional[DiscardTask] = None
        #: the selected edit's row on the map canvas
        self.highlight: Optional[QgsHighlight] = None
        self.shown_edit: Optional[int] = None
        #: the last discard's answer (``discarded``, ``via``...), for tests and the plugin
        self.last_result: Optional[dict] = None

        header = self.editsTable.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        values = self.valuesTable.horizontalHeader()
        values.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        for column in (1, 2):
            values.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch)
        self.valuesTable.setWordWrap(False)
        self.valuesTable.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.verticalSplitter.setSizes([260, 300])
        self.discardSelectedButton.setIcon(QgsApplication.getThemeIcon("/mActionUndo.svg"))
        self.discardAllButton.setIcon(QgsApplication.getThemeIcon("/mActionDeleteSelected.svg"))
        self.refreshButton.setIcon(QgsApplication.getThemeIcon("/mActionRefresh.svg"))
        self.noteLabel.setVisible(False)

        self.editsTable.itemSelectionChanged.connect(self._selection_changed)
        self.discardSelectedButton.clicked.connect(self.discard_selected)
        self.discardAllButton.clicked.connect(self.discard_all)
        self.refreshButton.clicked.connect(self.load)
        self.buttonBox.rejected.connect(self.close)
        self._update_buttons()

    # --- loading ----------------------------------------------------------------------------

    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        self.load()

    def hideEvent(self, event) -> None:  # noqa: N802 - Qt API
        self._clear_highlight()  # the map is the analyst's again
        super().hideEvent(event)

    def load(self) -> None:
        """Read the pending edits in the background (once at a time)."""
        if self._load_task is not None:
            return
        self.summaryLabel.setText(tr("Reading the pending edits…"))
        task = PendingLoadTask()
        task.loaded.connect(self._loaded)
        task.failed.connect(self._load_failed)
        self._load_task = task
        QgsApplication.taskManager().addTask(task)

    def is_busy(self) -> bool:
        return self._load_task is not None or self._discard_task is not None

    def _loaded(self, edits: list, geometries: dict, local_path: str) -> None:
        self._load_task = None
        self._local_path = local_path
        self.geometries = geometries
        keep = set(self.selected_ids())
        self.edits = {e["id"]: e for e in edits}
        table = self.editsTable
        table.setSortingEnabled(False)
        table.setRowCount(0)
        for edit in edits:
            row = table.rowCount()
            table.insertRow(row)
            cells = [QTableWidgetItem(edit["table"]), QTableWidgetItem(_key_text(edit)),
                     QTableWidgetItem(_operation_text(edit["op"])),
                     QTableWidgetItem(_state_text(edit["state"])),
                     QTableWidgetItem(local_time(edit.get("changed_at")))]
            for column, item in enumerate(cells):
                item.setData(ID_ROLE, edit["id"])
                table.setItem(row, column, item)
        table.setSortingEnabled(True)
        self.summaryLabel.setText(self._summary(edits))
        selected = [row for row in range(table.rowCount())
                    if table.item(row, 0).data(ID_ROLE) in keep]
        for row in selected:
            self._select_row(row, add=row != selected[0])
        if not selected and table.rowCount():
            table.selectRow(0)
        if not table.rowCount():
            self._show_edit(None)
        self._update_buttons()

    @staticmethod
    def _summary(edits: list) -> str:
        if not edits:
            return tr("No pending edits: nothing waits to be sent to the central database.")
        waiting = sum(1 for e in edits if e["state"] == "pending")
        texts = [tr("{n} edit(s) wait to be sent to the central database at the next "
                    "sync.").format(n=waiting)]
        in_conflict = sum(1 for e in edits if e["state"] == "conflict")
        refused = sum(1 for e in edits if e["state"] == "rejected")
        if in_conflict:
            texts.append(tr("{n} wait in a conflict; resolve those in the Conflicts "
                            "dialog.").format(n=in_conflict))
        if refused:
            texts.append(tr("{n} were refused by the central database.").format(n=refused))
        return " ".join(texts)

    def _select_row(self, row: int, add: bool) -> None:
        if add:
            add_row_to_selection(self.editsTable, row)
        else:
            self.editsTable.selectRow(row)

    def _load_failed(self, message: str) -> None:
        self._load_task = None
        self.summaryLabel.setText("")
        self.bar.pushMessage(tr("Pending edits"), message, Qgis.MessageLevel.Critical, 0)
        self._update_buttons()

    # --- showing one edit -------------------------------------------------------------------

    def selected_ids(self) -> list[int]:
        return selected_ids(self.editsTable)

    def _selection_changed(self) -> None:
        self._show_edit(self.edits.get(shown_id(self.editsTable, self.selected_ids())))
        self._update_buttons()

    def _show_edit(self, edit: Optional[dict]) -> None:
        self.shown_edit = edit["id"] if edit else None
        self.valuesTable.setRowCount(0)
        self._clear_highlight()
        note = self._note(edit)
        self.noteLabel.setText(note)
        self.noteLabel.setVisible(bool(note))
        if edit is None:
            return
        geometry_column, srid = self.geometries.get(edit["table"], (None, None))
        crs = QgsCoordinateReferenceSystem(f"EPSG:{srid}") if srid else None
        for change in edit["changes"]:
            row = self.valuesTable.rowCount()
            self.valuesTable.insertRow(row)
            is_geometry = change["column"] == geometry_column
            before = (tr("(new row)") if edit["op"] == "insert" else
                      _value_text(change["base"], is_geometry, crs))
            after = (tr("(deleted)") if edit["op"] == "delete" else
                     _value_text(change["local"], is_geometry, crs))
            for column, text in enumerate((change["column"], before, after)):
                item = QTableWidgetItem(text)
                value = change["base"] if column == 1 else change["local"]
                # a geometry's cell says its area; the tooltip gives every vertex
                item.setToolTip(str(value) if is_geometry and column and value else text)
                self.valuesTable.setItem(row, column, item)
        self._highlight(edit)

    @staticmethod
    def _note(edit: Optional[dict]) -> str:
        if edit is None:
            return ""
        if edit["state"] == "rejected":
            return tr("Refused by the central database: {message}").format(
                message=edit.get("message") or DASH)
        if edit["state"] == "conflict":
            return tr("This edit waits in conflict {id}: resolve it in the Conflicts "
                      "dialog.").format(id=edit.get("conflict_id") or DASH)
        return ""

    # --- the map ----------------------------------------------------------------------------

    def _highlight(self, edit: dict) -> None:
        """Outline the edited row (as it is now, as last synced when deleted) on the map
        and bring it into view, when the project shows its table."""
        canvas = self.iface.mapCanvas() if self.iface is not None else None
        if canvas is None or not edit.get("geometry") or not self._local_path:
            return
        layer = synced_project_layers(self.project, self._local_path).get(edit["table"])
        geometry = QgsGeometry.fromWkt(edit["geometry"])
        if layer is None or geometry.isNull():
            return
        highlight = QgsHighlight(canvas, geometry, layer)
        color = QColor(HIGHLIGHT_COLOR)
        highlight.setColor(color)
        color.setAlpha(60)
        highlight.setFillColor(color)
        highlight.setWidth(3)
        highlight.show()
        self.highlight = highlight
        try:
            box = QgsCoordinateTransform(layer.crs(), canvas.mapSettings().destinationCrs(),
                                         self.project).transformBoundingBox(
                                             geometry.boundingBox())
        except QgsCsException:
            return  # it cannot be shown in the map's CRS: the outline is all there is
        if box.width() == 0 and box.height() == 0:
            canvas.setCenter(box.center())
        else:
            box.scale(3)  # the row with its neighbours around it
            canvas.setExtent(box)
        canvas.refresh()

    def _clear_highlight(self) -> None:
        if self.highlight is None:
            return
        scene = self.highlight.scene()
        if scene is not None:
            scene.removeItem(self.highlight)
        self.highlight = None

    # --- discarding -------------------------------------------------------------------------

    def _discardable(self, ids) -> list[dict]:
        return [self.edits[i] for i in ids if i in self.edits
                and self.edits[i]["state"] in DISCARDABLE]

    def _confirm(self, text: str) -> bool:
        answer = QMessageBox.question(
            self, tr("Discard edits"), text,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def discard_selected(self) -> None:
        """Discard the selected edits (those waiting in a conflict are left), once the
        analyst has confirmed it."""
        chosen = self._discardable(self.selected_ids())
        if not chosen or self._discard_task is not None:
            return
        if not self._confirm(tr(
                "Discard {n} edit(s)? Each row goes back to how it was at the last sync and "
                "nothing is sent to the central database. This cannot be undone.").format(
                    n=len(chosen))):
            return
        self._discard([(e["table"], tuple(e["key"])) for e in chosen])

    def discard_all(self) -> None:
        """Discard every edit not waiting in a conflict, once the analyst has confirmed it."""
        n = len(self._discardable(self.edits))
        if not n or self._discard_task is not None:
            return
        if not self._confirm(tr(
                "Discard all {n} pending edit(s)? Every row goes back to how it was at the "
                "last sync and nothing is sent to the central database; edits waiting in a "
                "conflict stay. This cannot be undone.").format(n=n)):
            return
        self._discard(None)

    def _discard(self, edits: Optional[list]) -> None:
        self.bar.clearWidgets()
        task = DiscardTask(edits)
        task.done.connect(self._discarded)
        task.failed.connect(self._discard_failed)
        self._discard_task = task
        self._update_buttons()
        QgsApplication.taskManager().addTask(task)

    def _discarded(self, result: dict) -> None:
        self._discard_task = None
        self.last_result = result
        n = len(result.get("discarded") or [])
        local_path = result.get("local_path") or self._local_path
        if local_path:
            # QGIS caches features, counts and extents: the restored rows must show now
            reload_synced_layers(self.project, local_path)
        text = tr("{n} edit(s) discarded; the rows are back as they were at the last "
                  "sync.").format(n=n)
        editing = sorted(layer.name() for layer in synced_project_layers(
            self.project, local_path).values() if layer.isEditable()) if local_path else []
        if editing:
            text += " " + tr("Layers in edit mode were not re-read: {layers}.").format(
                layers=", ".join(editing))
        self.bar.pushMessage(tr("Pending edits"), text, Qgis.MessageLevel.Success, 0)
        self.editsDiscarded.emit(n)
        self.load()

    def _discard_failed(self, message: str) -> None:
        self._discard_task = None
        self.bar.pushMessage(tr("Pending edits"), message, Qgis.MessageLevel.Critical, 0)
        self._update_buttons()
        self.load()  # what is pending now: a sync may have sent some meanwhile

    def _update_buttons(self) -> None:
        idle = self._discard_task is None
        n = len(self._discardable(self.selected_ids()))
        self.discardSelectedButton.setEnabled(idle and n > 0)
        self.discardSelectedButton.setText(tr("Discard selected ({n})").format(n=n) if n > 1
                                           else tr("Discard selected"))
        self.discardAllButton.setEnabled(idle and bool(self._discardable(self.edits)))

    def teardown(self) -> None:
        """Detach from running tasks before the plugin goes away."""
        disconnect_tasks(((self._load_task, ("loaded", "failed")),
                          (self._discard_task, ("done", "failed"))))
        self._load_task = self._discard_task = None
        self._clear_highlight()
