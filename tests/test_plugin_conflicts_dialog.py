"""The Conflicts dialog in headless QGIS on real conflicts of a demo county: both versions
side by side and on a map, *Keep local* reaching central, a row central refused with the
server's reason and *Drop my edit*, many resolved at once, resolving through the running
agent, and a choice per conflicting column (*Resolve*) reaching central.
"""

from __future__ import annotations

import json

import pytest
from conftest import central_exec, local_exec
from plugin_support import *  # noqa: F403 - the shared fixtures and helpers (its __all__)
from qgis.PyQt.QtCore import Qt

pytestmark = pytest.mark.qgis


@pytest.fixture
def conflicted(sqlite_agent, use_config):
    """A synced county with two real conflicts (land values of two parcels)."""
    sqlite_agent.run("init-central", "--demo-parcels", "60")
    sqlite_agent.run("sync")
    local_exec(sqlite_agent, "UPDATE parcels SET land_value = 1 WHERE prop_id = 100007")
    central_exec(sqlite_agent, "UPDATE parcels SET land_value = 2, "
                               "geom = ST_Translate(geom, 15, 5, 0) WHERE prop_id = 100007")
    _make_conflict(sqlite_agent, 100004)
    use_config(sqlite_agent.config, port=_free_port())
    return sqlite_agent


def _conflicts_dialog(plugin, qtbot):
    dialog = plugin.show_conflicts()
    qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=WAIT_MS)
    return dialog


def _values(dialog) -> dict[str, list[str]]:
    table = dialog.valuesTable
    return {table.item(r, 0).text(): [table.item(r, c).text() for c in range(1, 4)]
            for r in range(table.rowCount())}


def test_conflicts_dialog_shows_both_versions_side_by_side_and_on_a_map(
        plugin, conflicted, qtbot):
    dialog = _conflicts_dialog(plugin, qtbot)

    assert dialog.conflictsTable.rowCount() == 2
    first = dialog.conflicts[dialog.shown_conflict]
    assert first["table"] == "parcels" and first["columns"] == ["land_value"]
    values = _values(dialog)
    assert values["land_value"][1:] == ["1.0", "2.0"]
    row = [dialog.valuesTable.item(r, 0).text()
           for r in range(dialog.valuesTable.rowCount())].index("land_value")
    highlighted = dialog.valuesTable.item(row, 2)
    assert highlighted.font().bold() and highlighted.background().color().name() == "#ffd699"
    assert not dialog.valuesTable.item(0, 2).font().bold()
    # prop 100007 moved centrally: both geometries on the map, the central one "edited"
    dialog.conflictsTable.selectRow([dialog.conflictsTable.item(r, 2).text()
                                     for r in range(2)].index("100007"))
    assert _values(dialog)["geom"][2].endswith("(edited)")
    layers = dialog.mapCanvas.layers()
    assert {layer.name() for layer in layers} >= {"local", "central"}
    assert all(layer.featureCount() == 1 for layer in layers[:2])
    assert dialog.mapCanvas.mapSettings().destinationCrs().authid() == "EPSG:2927"


def test_keep_local_resolves_a_real_conflict_that_then_reaches_central(
        plugin, conflicted, qtbot):
    dialog = _conflicts_dialog(plugin, qtbot)
    row = [dialog.conflictsTable.item(r, 2).text() for r in range(2)].index("100004")
    dialog.conflictsTable.selectRow(row)

    with qtbot.waitSignal(dialog.conflictsResolved, timeout=WAIT_MS) as resolved:
        qtbot.mouseClick(dialog.keepLocalButton, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=WAIT_MS)

    assert len(resolved.args[0]) == 1 and dialog.last_resolution.via == "here"
    assert dialog.conflictsTable.rowCount() == 1
    conflicted.run("sync")
    assert central_exec(conflicted, "SELECT land_value FROM parcels WHERE prop_id = 100004") \
        == [(1.0,)]


@pytest.fixture
def refused(sqlite_agent, use_config):
    """A synced county where central refused one local edit (a geo_id it holds already)."""
    sqlite_agent.run("init-central", "--demo-parcels", "60")
    sqlite_agent.run("sync")
    local_exec(sqlite_agent, "UPDATE parcels SET geo_id = 'TAKEN' WHERE prop_id = 100005")
    central_exec(sqlite_agent, "UPDATE parcels SET geo_id = 'TAKEN' WHERE prop_id = 100006")
    assert json.loads(sqlite_agent.run("sync").stdout)["rejected"] == 1
    use_config(sqlite_agent.config, port=_free_port())
    return sqlite_agent


def test_a_refused_row_shows_the_servers_reason_and_drop_my_edit_restores_central(
        plugin, refused, qtbot):
    central_geo_id = central_exec(refused, "SELECT geo_id FROM parcels WHERE prop_id = 100005")
    dialog = _conflicts_dialog(plugin, qtbot)

    assert dialog.conflictsTable.rowCount() == 1
    what = dialog.conflictsTable.item(0, 3).text()
    assert what.startswith("Refused by central: ") and "UNIQUE" in what
    assert "refused by the central database" in dialog.summaryLabel.text()
    assert "open conflict" not in dialog.summaryLabel.text()
    assert dialog.reasonLabel.isVisibleTo(dialog)
    assert "geo_id" in dialog.reasonLabel.text()
    assert _values(dialog)["geo_id"][1] == "TAKEN"
    assert dialog.keepLocalButton.text() == "Try again"
    assert dialog.keepCentralButton.text() == "Drop my edit"

    with qtbot.waitSignal(dialog.conflictsResolved, timeout=WAIT_MS):
        dialog.keepCentralButton.click()
    qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=WAIT_MS)

    assert dialog.conflictsTable.rowCount() == 0
    assert not dialog.reasonLabel.isVisibleTo(dialog)
    assert dialog.keepCentralButton.text() == "Keep central"
    assert local_exec(refused, "SELECT geo_id FROM parcels WHERE prop_id = 100005") == \
        central_geo_id
    assert json.loads(refused.run("sync").stdout)["pushed"] == 0
    assert central_exec(refused, "SELECT geo_id FROM parcels WHERE prop_id = 100005") == \
        central_geo_id


def test_keep_central_resolves_many_conflicts_at_once(plugin, conflicted, qtbot):
    dialog = _conflicts_dialog(plugin, qtbot)
    dialog.conflictsTable.selectAll()
    assert dialog.keepCentralButton.text() == "Keep central (2)"

    with qtbot.waitSignal(dialog.conflictsResolved, timeout=WAIT_MS):
        qtbot.mouseClick(dialog.keepCentralButton, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=WAIT_MS)

    assert dialog.conflictsTable.rowCount() == 0
    assert local_exec(conflicted, "SELECT land_value FROM parcels WHERE prop_id IN "
                                  "(100004, 100007) ORDER BY prop_id") == [(2.0,), (2.0,)]
    conflicted.run("sync")
    assert conflicted.run("conflicts", "list").stdout.strip() == "[]"


def test_conflicts_are_resolved_through_the_running_agent(plugin, conflicted, use_config,
                                                          qtbot):
    with agent_process(conflicted.config) as port:
        use_config(conflicted.config, port=port)
        dialog = _conflicts_dialog(plugin, qtbot)
        dialog.conflictsTable.selectAll()
        with qtbot.waitSignal(dialog.conflictsResolved, timeout=WAIT_MS):
            dialog.resolve_selected("local")
        qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=WAIT_MS)

        assert dialog.last_resolution.via == "agent"
        assert dialog.last_resolution.errors == []
        assert dialog.conflictsTable.rowCount() == 0


@pytest.fixture
def merge_conflicted(sqlite_agent, use_config):
    """A synced county where parcel 100009 changed on both sides in its owner, land value
    and geometry."""
    sqlite_agent.run("init-central", "--demo-parcels", "60")
    sqlite_agent.run("sync")
    local_exec(sqlite_agent, "UPDATE parcels SET owner_name = 'LOCAL OWNER', land_value = 1, "
                             "geom = ST_Translate(geom, 5, 0, 0) WHERE prop_id = 100009")
    central_exec(sqlite_agent, "UPDATE parcels SET owner_name = 'CENTRAL OWNER', "
                               "land_value = 2, geom = ST_Translate(geom, 0, 9, 0) "
                               "WHERE prop_id = 100009")
    sqlite_agent.run("sync")
    use_config(sqlite_agent.config, port=_free_port())
    return sqlite_agent


def _choose(dialog, column: str, side: str, typed: str = "") -> None:
    combo, editor = dialog.choices[column]
    combo.setCurrentIndex(combo.findData(side))
    if typed:
        editor.setText(typed)


def test_each_conflicting_column_is_chosen_on_its_own_and_reaches_central(
        plugin, merge_conflicted, qtbot):
    geometry = "SELECT hex(AsBinary(geom)) FROM parcels WHERE prop_id = 100009"
    mine = local_exec(merge_conflicted, geometry)
    dialog = _conflicts_dialog(plugin, qtbot)
    assert sorted(dialog.choices) == ["geom", "land_value", "owner_name"]
    combo, editor = dialog.choices["geom"]
    assert editor is None and [combo.itemData(i) for i in range(combo.count())] == [
        "local", "central"]  # a geometry is taken from one side
    typed = dialog.choices["land_value"][1]
    # the editor for a typed value takes the versions' room only once it is wanted
    assert not typed.isEnabled() and not typed.isVisibleTo(dialog)
    narrow = dialog.valuesTable.columnWidth(4)
    assert dialog.resolveButton.isEnabled()

    _choose(dialog, "owner_name", "central")
    _choose(dialog, "land_value", "value", "123,000")
    _choose(dialog, "geom", "local")
    assert typed.isEnabled() and typed.isVisibleTo(dialog)
    qtbot.waitUntil(lambda: dialog.valuesTable.columnWidth(4) > narrow)
    with qtbot.waitSignal(dialog.conflictsResolved, timeout=WAIT_MS):
        qtbot.mouseClick(dialog.resolveButton, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=WAIT_MS)

    assert dialog.last_resolution.errors == [] and dialog.conflictsTable.rowCount() == 0
    merge_conflicted.run("sync")
    row = "SELECT owner_name, land_value FROM parcels WHERE prop_id = 100009"
    assert central_exec(merge_conflicted, row) == [("CENTRAL OWNER", 123000.0)]
    assert central_exec(merge_conflicted, geometry) == mine
    assert merge_conflicted.run("verify", check=False).returncode == 0


def test_a_typed_value_the_column_cannot_take_is_said_and_nothing_is_resolved(
        plugin, merge_conflicted, qtbot):
    dialog = _conflicts_dialog(plugin, qtbot)
    _choose(dialog, "land_value", "value", "a lot")

    qtbot.mouseClick(dialog.resolveButton, Qt.MouseButton.LeftButton)

    assert not dialog.is_busy()
    [message] = [w for w in dialog.bar.items()]
    assert "land_value" in message.text() and "'a lot'" in message.text()
    assert dialog.conflictsTable.rowCount() == 1
    assert merge_conflicted.run("conflicts", "list").stdout.strip() != "[]"


def test_conflicts_dialog_before_the_first_sync_informs_rather_than_alarms(
        plugin, tmp_path, use_config, qtbot):
    from qgis.core import Qgis

    local = tmp_path / "local.sqlite"
    use_config(_write_config(tmp_path, local))

    dialog = _conflicts_dialog(plugin, qtbot)

    [(level, text)] = _bar_messages(dialog.bar)
    assert level == Qgis.MessageLevel.Info, text
    assert str(local) in text and "first sync" in text
    assert dialog.conflictsTable.rowCount() == 0
    assert not dialog.keepLocalButton.isEnabled() and not dialog.keepCentralButton.isEnabled()
    assert not local.exists()
