"""What the review windows (pending edits, conflicts, a feature's history) share.

A list whose rows carry their record's id (selected, shown, selected again after a
reload), a small map drawing two versions of a geometry in two styles over the
neighbourhood, zoomed to them, and letting go of running tasks when the plugin unloads.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFillSymbol,
    QgsGeometry,
    QgsLineSymbol,
    QgsMapLayer,
    QgsMarkerSymbol,
    QgsRectangle,
    QgsSingleSymbolRenderer,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.gui import QgsMapCanvas
from qgis.PyQt.QtCore import QItemSelectionModel, Qt
from qgis.PyQt.QtGui import QColor
from qgis.PyQt.QtWidgets import QTableWidget

#: the role of a list's first cell holding its record's id
ID_ROLE = Qt.ItemDataRole.UserRole


# --- a list of records ------------------------------------------------------------------


def selected_ids(table: QTableWidget) -> list:
    """The ids of the selected rows, sorted."""
    rows = {index.row() for index in table.selectionModel().selectedRows()}
    return sorted(table.item(row, 0).data(ID_ROLE) for row in rows)


def shown_id(table: QTableWidget, ids: Sequence) -> Any:
    """The record to show of those selected (``ids``): the current row's when it is one
    of them, else the first; None when none is selected."""
    current = table.currentRow()
    if current >= 0 and table.item(current, 0) is not None:
        candidate = table.item(current, 0).data(ID_ROLE)
        if candidate in ids:
            return candidate
    return ids[0] if ids else None


def add_row_to_selection(table: QTableWidget, row: int) -> None:
    """Select ``row`` as well, keeping the rows already selected."""
    index = table.model().index(row, 0)
    table.selectionModel().select(
        index, QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows)


# --- two versions of a geometry on a small map ------------------------------------------


def version_symbol(geometry_type, color: str, dashed: bool, hollow: bool = False):
    """How one version is drawn: ``color``, a dashed outline or a solid one; ``hollow``
    leaves a polygon unfilled and dashes a point's outline too."""
    props = {"color": color, "outline_color": color, "outline_width": "0.8",
             "outline_style": "dash" if dashed else "solid"}
    if geometry_type == QgsWkbTypes.GeometryType.PolygonGeometry:
        fill = QColor(color)
        fill.setAlpha(0 if hollow else 60)
        props["color"] = ",".join(str(v) for v in fill.getRgb())
        return QgsFillSymbol.createSimple(props)
    if geometry_type == QgsWkbTypes.GeometryType.LineGeometry:
        return QgsLineSymbol.createSimple({"line_color": color, "line_width": "0.8",
                                           "line_style": "dash" if dashed else "solid"})
    marker = {"color": color, "size": "3"}
    if hollow:
        marker["outline_style"] = "dash"
    return QgsMarkerSymbol.createSimple(marker)


def show_versions(canvas: QgsMapCanvas,
                  versions: Iterable[tuple[str, Optional[QgsGeometry], str, bool, bool]],
                  crs: Optional[QgsCoordinateReferenceSystem],
                  backdrop: Optional[QgsMapLayer] = None) -> list[QgsVectorLayer]:
    """Draw each version (name, geometry, color, dashed, hollow) on ``canvas``, the first
    on top, over ``backdrop`` (the neighbourhood), zoomed to the versions. Returns the
    layers drawn, which the caller keeps while the canvas shows them; none (the canvas
    left as it was) when no version has a geometry."""
    extent = QgsRectangle()
    layers = []
    for name, geometry, color, dashed, hollow in versions:
        if geometry is None:
            continue
        kind = QgsWkbTypes.displayString(geometry.wkbType())
        uri = f"{kind}?crs={crs.authid()}" if crs else kind
        layer = QgsVectorLayer(uri, name, "memory")
        feature = QgsFeature()
        feature.setGeometry(geometry)
        layer.dataProvider().addFeatures([feature])
        layer.updateExtents()
        layer.setRenderer(QgsSingleSymbolRenderer(
            version_symbol(geometry.type(), color, dashed, hollow)))
        layers.append(layer)
        if extent.isEmpty():
            extent = geometry.boundingBox()
        else:
            extent.combineExtentWith(geometry.boundingBox())
    if not layers:
        return []
    if crs is not None:
        canvas.setDestinationCrs(crs)
    canvas.setLayers(layers + ([backdrop] if backdrop is not None else []))
    if extent.width() == 0 and extent.height() == 0:
        extent.grow(50)
    else:
        extent.scale(1.8)
    canvas.setExtent(extent)
    canvas.refresh()
    return layers


# --- unloading --------------------------------------------------------------------------


def disconnect_tasks(tasks: Iterable[tuple[Optional[object], Sequence[str]]]) -> None:
    """Cut the signals ``names`` of each running task (None: not running) from the
    window, so a task ending after the plugin unloaded calls into nothing."""
    for task, names in tasks:
        if task is None:
            continue
        try:
            for name in names:
                getattr(task, name).disconnect()
        except (RuntimeError, TypeError):
            pass  # nothing was connected, or Qt already deleted the task
