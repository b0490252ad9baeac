"""The Conflicts dialog: open conflicts, local and central side by side, resolve them.

The widgets come from ``resources/ui/conflicts_dialog.ui``; every signal is wired here.
The columns changed on both sides are highlighted; both geometries are drawn on a
small map over the project's layer of the same table. Keep local / keep central act on
every selected conflict at once. For the conflict shown, each column changed on both
sides also has its own choice (local, central, or a value typed in; the geometry local
or central), which *Resolve* applies as a merge. Reading and resolving run as
``QgsTask``.

Rows the central database refused (``kind`` "rejected") are listed here too, with the
server's reason: for them keep central drops the local edit and keep local sends it again.
"""

from __future__ import annotations

from typing import Optional

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsGeometry,
    QgsProject,
    QgsUnitTypes,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.PyQt import uic
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QBrush, QColor, QFont
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QPushButton,
    QTableWidgetItem,
    QWidget,
)

from ..tasks.conflict_tasks import ConflictsLoadTask, ResolveTask
from . import paths
from .form_dialog import FormDialog
from .project_layers import synced_project_layers
from .review_views import (
    ID_ROLE,
    add_row_to_selection,
    disconnect_tasks,
    selected_ids,
    show_versions,
    shown_id,
)
from .terrafusion_dock import DASH, local_time
from .translation import tr

FORM_CLASS, _ = uic.loadUiType(str(paths.ui_path("conflicts_dialog.ui")))

LOCAL_COLOR = "#1f6fb2"
CENTRAL_COLOR = "#d9730d"
#: the columns changed on both sides: a warm background that reads on light and dark themes
CONFLICT_BACKGROUND = QColor(255, 214, 153)
#: other values that differ between the two sides (merged automatically)
DIFFERENT_BACKGROUND = QColor(255, 240, 205)
#: the column of the values table holding each conflicting column's choice
CHOICE_COLUMN = 4
#: the choices of a conflicting column (the merge's own words, and a typed value)
LOCAL, CENTRAL, VALUE = "local", "central", "value"


def _value_text(value, geometry: bool, crs: Optional[QgsCoordinateReferenceSystem]) -> str:
    if value is None:
        return tr("NULL")
    if geometry:
        shape = _geometry(value)
        if shape is None or shape.isEmpty():
            return tr("(no geometry)")
        if shape.type() == QgsWkbTypes.GeometryType.PolygonGeometry:
            # what tells two versions of a parcel apart at a glance: its area
            unit = QgsUnitTypes.toAbbreviatedString(crs.mapUnits()) if crs else ""
            return tr("area {area} {unit}²").format(area=f"{shape.area():,.0f}", unit=unit)
        return QgsWkbTypes.displayString(shape.wkbType())
    if isinstance(value, float):
        return f"{value:,}"  # 64,800.0 and 0.1653 alike: grouped, nothing rounded away
    return str(value)


def _refused(conflict: dict) -> bool:
    """A row the central database refused, rather than a two-sided conflict."""
    return conflict.get("kind") == "rejected"


def _mergeable(conflict: dict, shape) -> bool:
    """A conflict whose columns can be chosen one by one: two rows, a table still synced."""
    return (not _refused(conflict) and shape is not None
            and conflict.get("local") is not None and conflict.get("central") is not None)


def _geometry(hex_wkb) -> Optional[QgsGeometry]:
    if not hex_wkb:
        return None
    try:
        data = bytes.fromhex(str(hex_wkb))
    except ValueError:
        return None
    geometry = QgsGeometry()
    geometry.fromWkb(data)
    return None if geometry.isNull() else geometry


class ConflictsDialog(FormDialog, FORM_CLASS):
    """Review the open conflicts and decide which version stays."""

    #: emitted on the main thread after conflicts were resolved (the dock refreshes)
    conflictsResolved = pyqtSignal(list)  # noqa: N815 - Qt naming
    #: the user asked for a sync after resolving (the plugin hands it to the dock)
    syncRequested = pyqtSignal()  # noqa: N815

    def __init__(self, iface=None, parent=None):
        super().__init__("TerraFusionConflictsDialog", iface, parent)
        self.project = QgsProject.instance()
        self.conflicts: dict[int, dict] = {}
        self.shapes: dict = {}
        self._local_path = ""
        self._load_task: Optional[ConflictsLoadTask] = None
        self._resolve_task: Optional[ResolveTask] = None
        #: memory layers with the two versions of the current conflict's geometry
        self._map_layers: list[QgsVectorLayer] = []
        self.shown_conflict: Optional[int] = None
        self.last_resolution = None
        #: the conflict shown: each conflicting column's choice and its value editor
        #: (None for the geometry, which is taken from one side)
        self.choices: dict[str, tuple[QComboBox, Optional[QLineEdit]]] = {}

        header = self.conflictsTable.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        values = self.valuesTable.horizontalHeader()
        values.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        for column in (1, 2, 3):
            # the three versions side by side, equally wide, long texts elided
            values.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch)
        values.setSectionResizeMode(CHOICE_COLUMN, QHeaderView.ResizeMode.ResizeToContents)
        self.valuesTable.setWordWrap(False)
        self.valuesTable.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.verticalSplitter.setSizes([160, 440])
        self.detailSplitter.setSizes([660, 320])
        self.mapCanvas.setCanvasColor(QColor("#ffffff"))
        self.mapCanvas.enableAntiAliasing(True)
        self.keepLocalButton.setIcon(QgsApplication.getThemeIcon("/mActionFileSave.svg"))
        self.keepCentralButton.setIcon(QgsApplication.getThemeIcon("/mActionReload.svg"))
        self.resolveButton.setIcon(QgsApplication.getThemeIcon("/mActionMergeFeatures.svg"))
        self.refreshButton.setIcon(QgsApplication.getThemeIcon("/mActionRefresh.svg"))
        self.legendLabel.setText(
            '<span style="color:{lc}">■</span> {local} &nbsp; '
            '<span style="color:{cc}">■</span> {central}'.format(
                lc=LOCAL_COLOR, cc=CENTRAL_COLOR, local=tr("Local (yours)"),
                central=tr("Central")))

        self.reasonLabel.setVisible(False)
        self.reasonLabel.setStyleSheet("font-weight: bold")

        self.conflictsTable.itemSelectionChanged.connect(self._selection_changed)
        self.keepLocalButton.clicked.connect(lambda: self.resolve_selected("local"))
        self.keepCentralButton.clicked.connect(lambda: self.resolve_selected("central"))
        self.resolveButton.clicked.connect(self.resolve_shown)
        self.refreshButton.clicked.connect(self.load)
        self.buttonBox.rejected.connect(self.close)
        self._update_buttons()

    # --- loading ----------------------------------------------------------------------------

    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        self.load()

    def load(self) -> None:
        """Read the open conflicts in the background (once at a time)."""
        if self._load_task is not None:
            return
        self.summaryLabel.setText(tr("Reading the conflicts…"))
        task = ConflictsLoadTask()
        task.loaded.connect(self._loaded)
        task.failed.connect(self._load_failed)
        task.noLocalCopy.connect(self._no_local_copy)
        self._load_task = task
        QgsApplication.taskManager().addTask(task)

    def is_busy(self) -> bool:
        return self._load_task is not None or self._resolve_task is not None

    def _loaded(self, conflicts: list, shapes: dict, local_path: str) -> None:
        self._load_task = None
        self._local_path = local_path
        keep = set(self.selected_ids())
        self.conflicts = {c["id"]: c for c in conflicts}
        self.shapes = shapes
        table = self.conflictsTable
        table.setSortingEnabled(False)
        table.setRowCount(0)
        for conflict in conflicts:
            row = table.rowCount()
            table.insertRow(row)
            id_item = QTableWidgetItem()
            id_item.setData(Qt.ItemDataRole.DisplayRole, conflict["id"])
            id_item.setData(ID_ROLE, conflict["id"])
            cells = [id_item, QTableWidgetItem(conflict["table"]),
                     QTableWidgetItem(", ".join(str(k) for k in conflict["pk"])),
                     self._what_item(conflict),
                     QTableWidgetItem(local_time(conflict.get("detected_at")))]
            for column, item in enumerate(cells):
                item.setData(ID_ROLE, conflict["id"])
                table.setItem(row, column, item)
        table.setSortingEnabled(True)
        refused = sum(1 for c in conflicts if _refused(c))
        n = len(conflicts) - refused
        texts = []
        if n or not refused:
            texts.append(
                tr("No open conflicts: every change has reached both sides.") if n == 0 else
                tr("{n} open conflict(s). Each row was changed here and centrally since the "
                   "last sync; choose which version stays.").format(n=n))
        if refused:
            texts.append(tr("{n} edited row(s) were refused by the central database: fix the "
                            "row and sync, try again, or drop your edit.").format(n=refused))
        self.summaryLabel.setText(" ".join(texts))
        selected = False
        for row in range(table.rowCount()):
            if table.item(row, 0).data(ID_ROLE) in keep:
                if selected:
                    add_row_to_selection(table, row)
                else:
                    table.selectRow(row)
                selected = True
        if not selected and table.rowCount():
            table.selectRow(0)
        if not table.rowCount():
            self._show_conflict(None)
        self._update_buttons()

    def _no_local_copy(self, path: str) -> None:
        self._loaded([], {}, path)
        self.summaryLabel.setText("")
        self.bar.clearWidgets()
        self.bar.pushMessage(tr("Conflicts"), tr(
            "There is no local copy yet ({path}), so there is nothing to compare: conflicts "
            "can only arise once the first sync has made it.").format(path=path),
            Qgis.MessageLevel.Info, 0)

    def _load_failed(self, message: str) -> None:
        self._load_task = None
        self.summaryLabel.setText("")
        self.bar.pushMessage(tr("Conflicts"), message, Qgis.MessageLevel.Critical, 0)
        self._update_buttons()

    def _what_item(self, conflict: dict) -> QTableWidgetItem:
        if _refused(conflict):
            item = QTableWidgetItem(tr("Refused by central: {message}").format(
                message=conflict.get("message") or DASH))
            item.setToolTip(conflict.get("message") or "")
            return item
        return QTableWidgetItem(", ".join(conflict["columns"]) or self._kind(conflict))

    @staticmethod
    def _kind(conflict: dict) -> str:
        if conflict.get("local") is None:
            return tr("deleted here, changed centrally")
        if conflict.get("central") is None:
            return tr("changed here, deleted centrally")
        return DASH

    # --- showing one conflict ---------------------------------------------------------------

    def selected_ids(self) -> list[int]:
        return selected_ids(self.conflictsTable)

    def _selection_changed(self) -> None:
        shown = shown_id(self.conflictsTable, self.selected_ids())
        self._show_conflict(self.conflicts.get(shown))
        self._update_buttons()

    def _show_conflict(self, conflict: Optional[dict]) -> None:
        self.shown_conflict = conflict["id"] if conflict else None
        table = self.valuesTable
        self.choices = {}
        table.setRowCount(0)
        self._clear_map()
        refused = conflict is not None and _refused(conflict)
        self.reasonLabel.setVisible(refused)
        self.reasonLabel.setText(tr("Refused by the central database: {message}").format(
            message=conflict.get("message") or DASH) if refused else "")
        if conflict is None:
            return
        shape = self.shapes.get(conflict["table"])
        base, local, central = (conflict.get("base") or {}, conflict.get("local"),
                                conflict.get("central"))
        names = list(shape.columns) if shape else []
        for row in (base, local or {}, central or {}):
            names += [n for n in row if n not in names]
        geometry_column = shape.geometry_column if shape else None
        crs = (QgsCoordinateReferenceSystem(f"EPSG:{shape.srid}")
               if shape and shape.srid else None)
        conflicting = set(conflict.get("columns") or [])
        bold = QFont()
        bold.setBold(True)
        for name in names:
            row = table.rowCount()
            table.insertRow(row)
            is_geometry = name == geometry_column
            texts = [name, _value_text(base.get(name), is_geometry, crs)]
            for version in (local, central):
                if version is None:
                    texts.append(tr("(deleted)"))
                    continue
                text = _value_text(version.get(name), is_geometry, crs)
                if is_geometry and base and version.get(name) != base.get(name):
                    # two shapes can share type and area: say which one was edited
                    text = tr("{geometry} (edited)").format(geometry=text)
                texts.append(text)
            differs = (local or {}).get(name) != (central or {}).get(name)
            for column, text in enumerate(texts):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                if name in conflicting:
                    item.setBackground(QBrush(CONFLICT_BACKGROUND))
                    item.setForeground(QBrush(QColor("#000000")))
                    item.setFont(bold)
                elif differs and column >= 2:
                    item.setBackground(QBrush(DIFFERENT_BACKGROUND))
                    item.setForeground(QBrush(QColor("#000000")))
                table.setItem(row, column, item)
            if name in conflicting and _mergeable(conflict, shape):
                self._add_choice(row, name, is_geometry)
        # the choices column only where there is something to choose
        table.setColumnHidden(CHOICE_COLUMN, not self.choices)
        if geometry_column:
            self._show_geometries(conflict, geometry_column, crs)

    def _add_choice(self, row: int, name: str, is_geometry: bool) -> None:
        """The choice of one conflicting column: local, central or (not for the
        geometry) a value typed into the editor beside it."""
        combo = QComboBox()
        combo.addItem(tr("Local"), LOCAL)
        combo.addItem(tr("Central"), CENTRAL)
        combo.setToolTip(tr("Take this column from your version or from the central "
                            "version, or type its value"))
        editor = None
        cell = QWidget()
        layout = QHBoxLayout(cell)
        layout.setContentsMargins(2, 0, 2, 0)
        layout.addWidget(combo)
        if not is_geometry:
            combo.addItem(tr("Value"), VALUE)
            editor = QLineEdit()
            editor.setMaximumWidth(100)  # the three versions keep the room
            editor.setPlaceholderText(tr("empty: NULL"))
            # shown only for a typed value: until then the three versions keep its room
            editor.setEnabled(False)
            editor.setVisible(False)
            combo.currentIndexChanged.connect(
                lambda _index, c=combo, e=editor: self._value_wanted(e, c.currentData() == VALUE))
            layout.addWidget(editor)
        self.valuesTable.setCellWidget(row, CHOICE_COLUMN, cell)
        self.choices[name] = (combo, editor)

    def _value_wanted(self, editor: QLineEdit, wanted: bool) -> None:
        editor.setEnabled(wanted)
        editor.setVisible(wanted)
        if wanted:
            editor.setFocus()
        # setting the mode again has the header measure the column's cells anew
        self.valuesTable.horizontalHeader().setSectionResizeMode(
            CHOICE_COLUMN, QHeaderView.ResizeMode.ResizeToContents)

    def _show_geometries(self, conflict: dict, column: str,
                         crs: Optional[QgsCoordinateReferenceSystem]) -> None:
        backdrop = None
        if self._local_path:
            # the project's own layer of the table, as the neighbourhood
            backdrop = synced_project_layers(self.project, self._local_path).get(
                conflict["table"])
        # central (dashed) over local, both over the neighbourhood
        versions = [(key, _geometry((conflict.get(key) or {}).get(column)), color, dashed,
                     False)
                    for key, color, dashed in (("central", CENTRAL_COLOR, True),
                                               ("local", LOCAL_COLOR, False))]
        self._map_layers = show_versions(self.mapCanvas, versions, crs, backdrop)

    def _clear_map(self) -> None:
        self.mapCanvas.setLayers([])
        self._map_layers = []

    # --- resolving --------------------------------------------------------------------------

    def resolve_selected(self, keep: str) -> None:
        """Keep the ``keep`` version ("local"/"central") of every selected conflict."""
        ids = self.selected_ids()
        if not ids or self._resolve_task is not None:
            return
        self._start_resolving(ResolveTask(ids, keep), keep)

    def resolve_shown(self) -> None:
        """Resolve the conflict shown with the choice made for each conflicting column."""
        conflict = self.conflicts.get(self.shown_conflict)
        if conflict is None or not self.choices or self._resolve_task is not None:
            return
        from terrafusion_agent import api
        from terrafusion_agent.errors import BadRequest

        shape = self.shapes.get(conflict["table"])
        merge = {}
        for name, (combo, editor) in self.choices.items():
            side = combo.currentData()
            if side != VALUE or editor is None:
                merge[name] = side
                continue
            try:
                # always as {"value": ...}: a typed "central" is a text, not a side
                merge[name] = {"value": api.typed_merge_value(shape, name, editor.text())}
            except BadRequest as exc:
                self.bar.clearWidgets()
                self.bar.pushMessage(tr("Conflicts"), str(exc), Qgis.MessageLevel.Critical, 0)
                editor.setFocus()
                return
        self._start_resolving(ResolveTask([conflict["id"]], merge=merge), None)

    def _start_resolving(self, task: ResolveTask, keep: Optional[str]) -> None:
        self.bar.clearWidgets()
        task.done.connect(lambda resolution: self._resolved(resolution, keep))
        task.failed.connect(self._resolve_failed)
        self._resolve_task = task
        self._update_buttons()
        QgsApplication.taskManager().addTask(task)

    def _resolved(self, resolution, keep: Optional[str]) -> None:
        self._resolve_task = None
        self.last_resolution = resolution
        if resolution.resolved:
            text = (tr("{n} conflict(s) resolved keeping your version; it reaches the central "
                       "database at the next sync.") if keep == "local" else
                    tr("{n} conflict(s) resolved keeping the central version; the local copy "
                       "has it now.") if keep == "central" else
                    tr("Conflict resolved with your choice for each column; the local copy "
                       "has it now, the central database at the next sync.")
                    ).format(n=len(resolution.resolved))
            widget = self.bar.createMessage(tr("Conflicts"), text)
            button = QPushButton(tr("Sync now"))
            button.clicked.connect(self.syncRequested)
            button.clicked.connect(lambda: button.setEnabled(False))
            widget.layout().addWidget(button)
            self.bar.pushWidget(widget, Qgis.MessageLevel.Success, 0)
            self.conflictsResolved.emit(list(resolution.resolved))
        for error in resolution.errors:
            self.bar.pushMessage(tr("Conflicts"), error, Qgis.MessageLevel.Critical, 0)
        self.load()

    def _resolve_failed(self, message: str) -> None:
        self._resolve_task = None
        self.bar.pushMessage(tr("Conflicts"), message, Qgis.MessageLevel.Critical, 0)
        self._update_buttons()

    def _update_buttons(self) -> None:
        chosen = bool(self.selected_ids()) and self._resolve_task is None
        self.keepLocalButton.setEnabled(chosen)
        self.keepCentralButton.setEnabled(chosen)
        ids = self.selected_ids()
        n = len(ids)
        # the per-column choice belongs to the one conflict shown
        self.resolveButton.setEnabled(chosen and n == 1 and bool(self.choices))
        if ids and all(_refused(self.conflicts.get(i) or {}) for i in ids):
            # for a refused row there is no second version to choose: the edit goes or stays
            self.keepLocalButton.setText(tr("Try again ({n})").format(n=n) if n > 1
                                         else tr("Try again"))
            self.keepLocalButton.setToolTip(tr(
                "Send your edit again at the next sync, once the central database can "
                "accept it"))
            self.keepCentralButton.setText(tr("Drop my edit ({n})").format(n=n) if n > 1
                                           else tr("Drop my edit"))
            self.keepCentralButton.setToolTip(tr(
                "Drop your edit and take the central version of the row back into the "
                "local copy"))
            return
        self.keepLocalButton.setText(tr("Keep local ({n})").format(n=n) if n > 1
                                     else tr("Keep local"))
        self.keepCentralButton.setText(tr("Keep central ({n})").format(n=n) if n > 1
                                       else tr("Keep central"))
        self.keepLocalButton.setToolTip(tr(
            "Keep your version of the selected rows; it is sent to the central database at "
            "the next sync"))
        self.keepCentralButton.setToolTip(tr(
            "Take the central version of the selected rows into the local copy now"))

    def teardown(self) -> None:
        """Detach from running tasks before the plugin goes away."""
        disconnect_tasks(((self._load_task, ("loaded", "failed", "noLocalCopy")),
                          (self._resolve_task, ("done", "failed"))))
        self._load_task = self._resolve_task = None
        self._clear_map()
