"""The Feature history panel in headless QGIS on a real PostGIS county: a feature's
timeline read from the active layer's selection and picked on the map, its values and
geometries before and after a change, and *Restore this version* (only its confirmation
is answered by the test), after which QGIS shows the restored row and the dock counts it
as a pending edit.
"""

from __future__ import annotations

import re

import pytest
from conftest import central_exec, local_exec
from plugin_support import *  # noqa: F403 - the shared fixtures and helpers (its __all__)
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFeatureRequest,
    QgsProject,
    QgsVectorLayer,
)
from qgis.gui import QgsMapMouseEvent
from qgis.PyQt.QtCore import QEvent, QPoint, Qt
from qgis.PyQt.QtWidgets import QDockWidget, QMessageBox

pytestmark = pytest.mark.qgis

PROP = 100004


@pytest.fixture
def edited(pg_agent, use_config):
    """A synced county whose parcel 100004 was changed twice centrally: its owner, then
    its owner again and its shape."""
    pg_agent.run("init-central", "--demo-parcels", "60")
    pg_agent.run("sync")
    pg_agent.original_owner = central_exec(
        pg_agent, "SELECT owner_name FROM parcels WHERE prop_id = %s", (PROP,))[0][0]
    central_exec(pg_agent, "UPDATE parcels SET owner_name = 'V1' WHERE prop_id = %s", (PROP,))
    central_exec(pg_agent, "UPDATE parcels SET owner_name = 'V2', "
                           "geom = ST_Translate(geom, 40, 0) WHERE prop_id = %s", (PROP,))
    pg_agent.run("sync")
    use_config(pg_agent.config, port=_free_port())
    return pg_agent


@pytest.fixture
def parcels_layer(edited):
    from terrafusion_plugin.gui.project_layers import layer_uri

    layer = QgsVectorLayer(layer_uri({"path": str(edited.local_path), "table": "parcels",
                                      "geometry_column": "geom"}), "parcels", "spatialite")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    yield layer
    QgsProject.instance().removeMapLayer(layer.id())


def _feature(layer: QgsVectorLayer, prop: int = PROP):
    request = QgsFeatureRequest().setFilterExpression(f'"prop_id" = {prop}')
    return next(layer.getFeatures(request))


def _rows(table) -> list[list[str]]:
    return [[table.item(r, c).text() for c in range(table.columnCount())]
            for r in range(table.rowCount())]


def _loaded(panel, qtbot) -> None:
    qtbot.waitUntil(lambda: panel.history is not None and not panel.is_busy(),
                    timeout=WAIT_MS)


def test_the_panel_shows_the_history_of_the_selected_feature_and_restores_a_version(
        plugin, qgis_iface, parcels_layer, edited, monkeypatch, qtbot):
    qgis_iface.setActiveLayer(parcels_layer)
    plugin.dock.historyButton.click()
    panel = _find(qgis_iface.mainWindow(), QDockWidget, "TerraFusionHistoryPanel")
    assert panel is plugin.history_panel and not panel.isHidden()

    # the analyst selects the parcel in the attribute table (the layer's selection)
    parcels_layer.selectByIds([_feature(parcels_layer).id()])
    _loaded(panel, qtbot)

    assert panel.featureLabel.text() == f"parcels {PROP}: 2 change(s)"
    newest, older = _rows(panel.entriesTable)
    assert newest[2] == "Updated" and set(newest[3].split(", ")) == {"owner_name", "geom"}
    assert older[2] == "Updated" and older[3] == "owner_name"
    assert newest[1] == central_exec(edited, "SELECT current_user")[0][0]
    # to the minute in the column, to the second in its tooltip; never scrolled sideways
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", newest[0]), newest[0]
    assert panel.entriesTable.item(0, 0).toolTip().startswith(newest[0] + ":")
    assert panel.entriesTable.horizontalScrollBar().maximum() == 0
    assert "The central database has recorded this table's changes since" in panel.startLabel.text()
    # the newest change is shown: its values and both of its shapes, zoomed to them
    values = {row[0]: row[1:] for row in _rows(panel.valuesTable)}
    assert values["owner_name"] == ["V1", "V2"]
    assert values["geom"][0].startswith("area ") and values["geom"][1].startswith("area ")
    layers = panel.mapCanvas.layers()
    assert [layer.name() for layer in layers[:2]] == ["before", "after"]
    assert all(layer.featureCount() == 1 for layer in layers[:2])
    assert panel.mapCanvas.mapSettings().destinationCrs() == \
        QgsCoordinateReferenceSystem("EPSG:2927")
    assert panel.mapCanvas.extent().contains(layers[0].extent())
    assert panel.mapCanvas.extent().contains(layers[1].extent())

    # restore the version after the older change: the owner V1 and the first shape
    panel.entriesTable.selectRow(1)
    assert {row[0]: row[1:] for row in _rows(panel.valuesTable)} == {
        "owner_name": [edited.original_owner, "V1"]}
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *args: asked.append(args[2])
                        or QMessageBox.StandardButton.Yes)
    repaints = []
    parcels_layer.repaintRequested.connect(lambda *_: repaints.append(1))
    with qtbot.waitSignal(panel.restored, timeout=WAIT_MS) as restored:
        panel.restoreButton.click()

    assert f"parcels {PROP}" in asked[0] and older[0] in asked[0]
    assert restored.args[0]["op"] == "update"
    assert set(restored.args[0]["columns"]) == {"owner_name", "geom"}
    assert local_exec(edited, "SELECT owner_name FROM parcels WHERE prop_id = ?",
                      (PROP,)) == [("V1",)]
    # QGIS draws the restored row (the layer was reloaded), and the dock counts it as a
    # pending edit
    assert repaints and _feature(parcels_layer)["owner_name"] == "V1"
    qtbot.waitUntil(lambda: plugin.dock.pendingLabel.text() == "1", timeout=WAIT_MS)


def test_a_feature_picked_on_the_map_shows_its_history(plugin, qgis_iface, parcels_layer,
                                                       edited, qtbot):
    canvas = qgis_iface.mapCanvas()
    canvas.resize(400, 300)
    canvas.setDestinationCrs(parcels_layer.crs())
    canvas.setLayers([parcels_layer])
    geometry = _feature(parcels_layer).geometry()
    canvas.setExtent(geometry.boundingBox().buffered(50))
    panel = plugin.show_history()

    panel.pickButton.click()
    assert canvas.mapTool() is not None and panel.pickButton.isChecked()
    spot = canvas.mapSettings().mapToPixel().transform(geometry.pointOnSurface().asPoint())
    click = QgsMapMouseEvent(canvas, QEvent.Type.MouseButtonRelease,
                             QPoint(int(spot.x()), int(spot.y())), Qt.MouseButton.LeftButton)
    canvas.mapTool().canvasReleaseEvent(click)
    _loaded(panel, qtbot)

    assert panel.history.table == "parcels" and panel.history.key == (PROP,)
    assert panel.entriesTable.rowCount() == 2
    canvas.unsetMapTool(canvas.mapTool())
    assert not panel.pickButton.isChecked()


def test_a_layer_outside_the_local_copy_has_no_history(plugin, edited):
    layer = QgsVectorLayer("Point?crs=EPSG:4326&field=id:integer", "scratch", "memory")
    panel = plugin.show_history()

    panel.show_feature(layer, QgsFeature(layer.fields()))

    assert panel.history is None and not panel.is_busy()
    assert "not a table of the TerraFusion local copy" in panel.bar.currentItem().text()
