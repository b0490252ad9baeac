"""The Pending edits dialog in headless QGIS, on edits QGIS itself saved to a synced layer
of a demo county: opened from the dock, each edit listed with its values before and
after, the selected one outlined and brought into view on the map, *Discard selected* and
*Discard all* asking first, the layer re-read so that QGIS shows the restored rows, an
edit in conflict left alone, and discarding through the running agent.
"""

from __future__ import annotations

import json

import pytest
from conftest import local_exec
from plugin_support import *  # noqa: F403 - the shared fixtures and helpers (its __all__)
from qgis.core import QgsFeatureRequest, QgsProject, QgsVectorLayer
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QDockWidget, QMessageBox

pytestmark = pytest.mark.qgis


@pytest.fixture
def county60(sqlite_agent, use_config):
    """A synced demo county of 60 parcels; the plugin finds no agent for it."""
    sqlite_agent.run("init-central", "--demo-parcels", "60")
    sqlite_agent.run("sync")
    use_config(sqlite_agent.config, port=_free_port())
    return sqlite_agent


@pytest.fixture
def parcels_layer(county60, qgis_iface):
    """The synced parcels as the project shows them, the map in their CRS."""
    from terrafusion_plugin.gui.project_layers import layer_uri

    layer = QgsVectorLayer(layer_uri({"path": str(county60.local_path), "table": "parcels",
                                      "geometry_column": "geom"}), "parcels", "spatialite")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    qgis_iface.mapCanvas().setDestinationCrs(layer.crs())
    yield layer
    QgsProject.instance().removeMapLayer(layer.id())


def _feature(layer: QgsVectorLayer, prop_id: int):
    request = QgsFeatureRequest().setFilterExpression(f'"prop_id" = {prop_id}')
    return next(layer.getFeatures(request), None)


def _edit_in_qgis(layer: QgsVectorLayer) -> None:
    """What an analyst does in QGIS: change an owner, delete a parcel, save."""
    assert layer.startEditing()
    changed = _feature(layer, 100002)
    layer.changeAttributeValue(changed.id(), layer.fields().indexOf("owner_name"), "IN QGIS")
    layer.deleteFeature(_feature(layer, 100003).id())
    assert layer.commitChanges(), layer.commitErrors()


def _open_from_the_dock(plugin, qgis_iface, qtbot):
    dock = _find(qgis_iface.mainWindow(), QDockWidget, "TerraFusionDock")
    qtbot.mouseClick(dock.pendingButton, Qt.MouseButton.LeftButton)
    dialog = plugin.dialogs["pending"]
    assert dialog.objectName() == "TerraFusionPendingDialog" and dialog.isVisible()
    qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=WAIT_MS)
    return dialog


def _rows(dialog) -> list[list[str]]:
    table = dialog.editsTable
    return [[table.item(r, c).text() for c in range(4)] for r in range(table.rowCount())]


def _values(dialog) -> dict[str, list[str]]:
    table = dialog.valuesTable
    return {table.item(r, 0).text(): [table.item(r, c).text() for c in (1, 2)]
            for r in range(table.rowCount())}


def _select(dialog, key: str) -> None:
    dialog.editsTable.selectRow([r[1] for r in _rows(dialog)].index(key))


@pytest.fixture
def answers(monkeypatch):
    """QMessageBox.question answers from this list, and keeps what it was asked."""
    asked: list[str] = []
    replies: list = []

    def question(parent, title, text, *args):
        asked.append(text)
        return replies.pop(0)

    monkeypatch.setattr(QMessageBox, "question", question)
    return asked, replies


def test_the_dialog_lists_the_edits_with_before_and_after_and_shows_the_row_on_the_map(
        plugin, county60, parcels_layer, qgis_iface, qtbot):
    owner = _feature(parcels_layer, 100002)["owner_name"]
    deleted_box = _feature(parcels_layer, 100003).geometry().boundingBox()
    _edit_in_qgis(parcels_layer)

    dialog = _open_from_the_dock(plugin, qgis_iface, qtbot)

    assert _rows(dialog) == [["parcels", "100002", "changed", "waits for the next sync"],
                             ["parcels", "100003", "deleted", "waits for the next sync"]]
    assert dialog.summaryLabel.text().startswith("2 edit(s) wait to be sent")
    _select(dialog, "100002")
    assert _values(dialog) == {"owner_name": [owner, "IN QGIS"]}
    canvas = qgis_iface.mapCanvas()
    shape = _feature(parcels_layer, 100002).geometry()
    assert dialog.highlight is not None and dialog.highlight.isVisible()
    assert canvas.extent().contains(shape.boundingBox())
    # a deleted row: every value as it was, and its old place on the map
    _select(dialog, "100003")
    values = _values(dialog)
    assert values["prop_id"] == ["100003", "(deleted)"]
    assert values["geom"][0].startswith("area ") and values["geom"][0].endswith(" ft²")
    assert canvas.extent().contains(deleted_box)
    dialog.close()
    assert dialog.highlight is None  # the map is the analyst's again


def test_discard_selected_asks_first_and_qgis_shows_the_restored_rows(
        plugin, county60, parcels_layer, qgis_iface, qtbot, answers):
    asked, replies = answers
    before = {p: _feature(parcels_layer, p).attributes() for p in (100002, 100003)}
    count = parcels_layer.featureCount()
    _edit_in_qgis(parcels_layer)
    assert parcels_layer.featureCount() == count - 1
    dialog = _open_from_the_dock(plugin, qgis_iface, qtbot)
    dialog.editsTable.selectAll()
    assert dialog.discardSelectedButton.text() == "Discard selected (2)"

    replies.append(QMessageBox.StandardButton.No)
    qtbot.mouseClick(dialog.discardSelectedButton, Qt.MouseButton.LeftButton)
    assert not dialog.is_busy() and len(_rows(dialog)) == 2  # asked, and told no
    replies.append(QMessageBox.StandardButton.Yes)
    with qtbot.waitSignal(dialog.editsDiscarded, timeout=WAIT_MS) as discarded:
        qtbot.mouseClick(dialog.discardSelectedButton, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=WAIT_MS)

    assert asked[0].startswith("Discard 2 edit(s)?") and asked[1] == asked[0]
    assert discarded.args == [2] and dialog.last_result["via"] == "here"
    assert _rows(dialog) == [] and not dialog.discardAllButton.isEnabled()
    # QGIS shows the rows as they were: the deleted parcel back, the owner as it was
    assert parcels_layer.featureCount() == count
    assert {p: _feature(parcels_layer, p).attributes() for p in before} == before
    # and nothing of it reaches central
    assert json.loads(county60.run("sync").stdout)["pushed"] == 0
    assert county60.run("verify", check=False).returncode == 0


def test_discard_all_takes_back_an_offline_insert_and_leaves_an_edit_in_conflict(
        plugin, county60, parcels_layer, qgis_iface, qtbot, answers):
    asked, replies = answers
    _make_conflict(county60, 100004)
    count = parcels_layer.featureCount()
    assert parcels_layer.startEditing()
    feature = _feature(parcels_layer, 100005)
    feature.setAttribute("geo_id", "DRAWN-OFFLINE")
    feature.setAttribute("prop_id", None)  # a new parcel: the agent gives it its key
    assert parcels_layer.addFeature(feature) and parcels_layer.commitChanges()
    assert parcels_layer.featureCount() == count + 1
    dialog = _open_from_the_dock(plugin, qgis_iface, qtbot)
    assert [r[2:] for r in _rows(dialog)] == [["changed", "in conflict"],
                                              ["added", "waits for the next sync"]]
    _select(dialog, "100004")
    assert not dialog.discardSelectedButton.isEnabled()  # a conflict is resolved instead
    assert "Conflicts dialog" in dialog.noteLabel.text()

    replies.append(QMessageBox.StandardButton.Yes)
    with qtbot.waitSignal(dialog.editsDiscarded, timeout=WAIT_MS):
        qtbot.mouseClick(dialog.discardAllButton, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=WAIT_MS)

    assert asked == [asked[0]] and asked[0].startswith("Discard all 1 pending edit(s)?")
    assert [r[2:] for r in _rows(dialog)] == [["changed", "in conflict"]]
    assert parcels_layer.featureCount() == count
    assert local_exec(county60, "SELECT count(*) FROM parcels WHERE geo_id = "
                                "'DRAWN-OFFLINE'") == [(0,)]


def test_edits_are_discarded_through_the_running_agent(
        plugin, county60, use_config, qgis_iface, qtbot, answers):
    from service_helpers import wait_for

    _, replies = answers
    runs = "SELECT count(*) FROM tf_sync_runs WHERE result = 'success'"
    [(synced,)] = local_exec(county60, runs)
    with agent_process(county60.config) as port:
        # the agent syncs once as it starts, which would send the edit
        wait_for(lambda: local_exec(county60, runs) > [(synced,)], 30, "its first sync")
        local_exec(county60, "UPDATE parcels SET owner_name = 'AGENT' WHERE prop_id = 100006")
        use_config(county60.config, port=port)
        dialog = _open_from_the_dock(plugin, qgis_iface, qtbot)
        replies.append(QMessageBox.StandardButton.Yes)
        with qtbot.waitSignal(dialog.editsDiscarded, timeout=WAIT_MS):
            dialog.discardAllButton.click()
        qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=WAIT_MS)

        assert dialog.last_result["via"] == "agent"
        assert [d["key"] for d in dialog.last_result["discarded"]] == [[100006]]
        assert _rows(dialog) == []
