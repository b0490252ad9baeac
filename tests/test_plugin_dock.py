"""The dock in headless QGIS, talking to a real agent (``python -m terrafusion_agent``)
over a real demo county in SpatiaLite: what it reports of a stopped and of a running
agent, *Sync now* (in a task with progress, cancelled, pushing QGIS edits, through the
running agent, failing in one sentence), starting the agent (by a click, by itself, with
a bad configuration) and adding the synced layers with their styles.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import central_exec, local_exec
from plugin_support import *  # noqa: F403 - the shared fixtures and helpers (its __all__)
from qgis.core import QgsSettings
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QFontMetrics
from qgis.PyQt.QtWidgets import QApplication, QDockWidget

pytestmark = pytest.mark.qgis

DEMO_TABLES = {"parcels", "districts", "sales"}
DASH = "–"


def _row_counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]  # noqa: S608
                for t in DEMO_TABLES}


@pytest.fixture
def started_agents(plugin):
    """The agents the plugin started during the test."""
    from terrafusion_plugin.tasks.dock_tasks import StartAgentTask

    before = len(StartAgentTask.launched)
    yield StartAgentTask.launched
    _stop_agents_started_since(before)


@pytest.fixture
def dock(plugin, qgis_iface):
    found = _find(qgis_iface.mainWindow(), QDockWidget, "TerraFusionDock")
    assert found is not None
    return found


@pytest.fixture
def running_agent(county):
    """The agent of the shared county, running; yields its port."""
    with agent_process(county) as port:
        yield port


def _wait_for_finished_sync(port: int) -> dict:
    """The agent syncs once at start; wait until that run has finished."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
            body = json.load(r)
        last = body.get("last_sync") or {}
        if last.get("finished_at") and body.get("next_sync") and not body.get("sync_running"):
            return body
        time.sleep(0.2)
    raise AssertionError("the agent never finished a sync")


def _refresh(dock, qtbot) -> None:
    dock.status = None
    qtbot.mouseClick(dock.refreshButton, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dock.status is not None, timeout=WAIT_MS)


# --- the dock ----------------------------------------------------------------------------


def _history(dock) -> list[list[str]]:
    """Each recent sync as [started, result, pulled, pushed, conflicts]; the result is the
    word the started time's icon stands for (as a screen reader says it)."""
    table = dock.historyTable
    rows = []
    for r in range(table.rowCount()):
        started = table.item(r, 0)
        spoken = started.data(Qt.ItemDataRole.AccessibleTextRole)
        assert spoken.startswith(started.text() + ", "), spoken
        rows.append([started.text(), spoken[len(started.text()) + 2:]]
                    + [table.item(r, c).text() for c in range(1, table.columnCount())])
    return rows


def test_dock_reports_a_stopped_agent_with_the_local_copys_own_figures(
        dock, county, use_config, qtbot):
    port = _free_port()
    use_config(county, port=port)

    _refresh(dock, qtbot)

    assert dock.stateLabel.text() == "Not running"
    assert f"127.0.0.1:{port}" in dock.message() and "Start agent" in dock.message()
    assert dock.startAgentButton.isVisibleTo(dock) and dock.startAgentButton.isEnabled()
    assert not dock.statusPageLabel.isVisibleTo(dock)
    assert dock.nextSyncLabel.text() == DASH
    # without the agent, the figures come from the local copy itself
    assert re.fullmatch(r".*, succeeded, rows pulled: \d+, pushed: \d+",
                        dock.lastSyncLabel.text()), dock.lastSyncLabel.text()
    assert dock.pendingLabel.text() == "0" and dock.conflictsLabel.text() == "0"
    assert dock.localPathLabel.text() == str(county.parent / "local.sqlite")
    assert _history(dock) and _history(dock)[-1][1] == "succeeded"


def test_dock_reports_a_running_agent_with_its_last_and_next_sync(
        dock, county, use_config, running_agent, qtbot):
    from terrafusion_agent import __version__

    health = _wait_for_finished_sync(running_agent)
    use_config(county, port=running_agent)

    _refresh(dock, qtbot)

    assert dock.stateLabel.text() == f"Running (agent {__version__})"
    stamp = r"(\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d"  # today's: the time alone
    last = health["last_sync"]
    assert re.fullmatch(rf"{stamp}, succeeded, rows pulled: {last['pulled']}, "
                        rf"pushed: {last['pushed']}", dock.lastSyncLabel.text()), \
        dock.lastSyncLabel.text()
    assert re.fullmatch(stamp, dock.nextSyncLabel.text()), dock.nextSyncLabel.text()
    assert dock.pendingLabel.text() == str(health["pending_local_edits"])
    assert f'href="http://127.0.0.1:{running_agent}/"' in dock.statusPageLabel.text()
    assert not dock.startAgentButton.isVisibleTo(dock)
    assert dock.message() == ""
    assert _history(dock)[0][1] == "succeeded"


def test_dock_counts_pending_edits_and_open_conflicts_and_links_to_them(
        dock, sqlite_agent, use_config, qtbot):
    sqlite_agent.run("init-central", "--demo-parcels", "60")
    sqlite_agent.run("sync")
    _make_conflict(sqlite_agent)
    local_exec(sqlite_agent, "UPDATE parcels SET owner_name = 'NEW' WHERE prop_id = 100007")
    use_config(sqlite_agent.config, port=_free_port())
    asked = []
    dock.conflictsRequested.connect(lambda: asked.append(True))

    _refresh(dock, qtbot)

    assert dock.pendingLabel.text() == "1"
    assert dock.conflictsLabel.text().startswith("1 – <a href")
    dock.conflictsLabel.linkActivated.emit("conflicts")
    assert asked == [True]


#: recent syncs of every kind, with the widest figures a county sees on a first sync
WIDEST_RUNS = [
    {"started_at": "2026-11-24T22:58:00Z", "result": result, "pulled": pulled,
     "pushed": pushed, "conflicts": conflicts, "trigger": "schedule"}
    for result, pulled, pushed, conflicts in (
        ("success", 123456, 1234, 0), ("failed", None, None, None),
        ("running", 12, 3, 1), ("cancelled", 0, 0, 0), ("success", 0, 0, 12))]


def _cut_off(dock) -> list[str]:
    """What the dock does not show whole at its present width: table columns narrower
    than their header or a cell (measured with the font's metrics), anything scrolled
    sideways, labels and buttons narrower (or wrapped labels lower) than their text."""
    from qgis.PyQt.QtWidgets import QAbstractButton, QLabel, QStyle

    problems = []
    table = dock.historyTable
    header = table.horizontalHeader()
    style = table.style()
    margin = style.pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin, None, table) + 1
    icon = style.pixelMetric(QStyle.PixelMetric.PM_SmallIconSize, None, table)
    for c in range(table.columnCount()):
        width = table.columnWidth(c)
        head = table.horizontalHeaderItem(c)
        needed = [(header.fontMetrics().horizontalAdvance(head.text())
                   + (icon if not head.icon().isNull() else 0) + 2 * margin, head.text()),
                  (header.sectionSizeHint(c), f"header {c}"),
                  (table.sizeHintForColumn(c), f"column {c}")]
        for r in range(table.rowCount()):
            item = table.item(r, c)
            metrics = QFontMetrics(item.font())
            needed.append((metrics.horizontalAdvance(item.text()) + 2 * margin
                           + (icon + margin if not item.icon().isNull() else 0), item.text()))
        problems += [f"column {c} ({width} px) cuts {text!r} ({w} px)"
                     for w, text in needed if w > width]
    for bar, name in ((table.horizontalScrollBar(), "table"),
                      (dock.scrollArea.horizontalScrollBar(), "dock")):
        if bar.maximum() > 0 or bar.isVisible():
            problems.append(f"the {name} scrolls sideways by {bar.maximum()} px")
    for label in dock.findChildren(QLabel):
        if not label.isVisibleTo(dock) or not label.text():
            continue
        if label.wordWrap():
            if label.heightForWidth(label.width()) > label.height():
                problems.append(f"{label.objectName()} is cut off at the bottom")
        elif label.sizeHint().width() > label.width():
            problems.append(f"{label.objectName()} is cut off: {label.text()!r}")
    for button in dock.findChildren(QAbstractButton):
        if button.isVisibleTo(dock) and button.sizeHint().width() > button.width():
            problems.append(f"{button.objectName()} is cut off: {button.text()!r}")
    return problems


@pytest.mark.parametrize("localized_plugin", ["en_US", "es_ES"], indirect=True)
def test_dock_reads_whole_from_its_minimum_width_up(localized_plugin, county, use_config,
                                                    qtbot):
    dock = localized_plugin.dock
    use_config(county, port=_free_port())
    dock.setFloating(True)
    dock.show()
    _refresh(dock, qtbot)
    dock._show_history(WIDEST_RUNS)
    assert len(_history(dock)) == len(WIDEST_RUNS)

    for width in (dock.minimumSizeHint().width(), dock.sizeHint().width()):
        dock.resize(width, 900)
        qtbot.waitUntil(lambda w=width: dock.width() == w, timeout=WAIT_MS)
        QApplication.processEvents()
        assert _cut_off(dock) == [], width
    # the result's word is in the tooltip, and failed runs say so
    tip = dock.historyTable.item(1, 0).toolTip()
    assert ("failed" in tip) if QgsSettings().value("locale/userLocale") == "en_US" else \
        ("fallida" in tip), tip


def test_dock_shows_a_bad_configuration_as_one_sentence(dock, tmp_path, use_config, qtbot):
    bad = tmp_path / "agent.toml"
    bad.write_text("[sync]\ninterval_seconds = 'often'\n", encoding="utf-8")
    use_config(bad)

    _refresh(dock, qtbot)

    assert dock.stateLabel.text() == "Unknown"
    assert "sync.interval_seconds" in dock.message()
    assert "\n" not in dock.message() and "Traceback" not in dock.message()


# --- sync now ------------------------------------------------------------------------------


def _sync(dock, qtbot) -> list[int]:
    """Click *Sync now*, wait for the end; the progress values the bar showed."""
    seen: list[int] = []
    dock.syncProgress.valueChanged.connect(seen.append)
    qtbot.mouseClick(dock.syncButton, Qt.MouseButton.LeftButton)
    assert dock.is_syncing() and not dock.syncButton.isEnabled()
    assert dock.syncProgress.isVisibleTo(dock)
    with qtbot.waitSignal(dock.syncFinished, timeout=60_000):
        pass
    return seen


def test_sync_now_without_an_agent_syncs_in_a_task_with_progress(
        dock, sqlite_agent, use_config, qtbot):
    sqlite_agent.run("init-central", "--demo-parcels", "2000")
    use_config(sqlite_agent.config, port=_free_port())

    seen = _sync(dock, qtbot)

    summary = dock.last_summary
    assert summary is not None, dock.message()
    assert summary["via"] == "plugin" and summary["result"] == "success"
    assert summary["pulled"] >= 2000
    # the engine reports per table (every 5000 rows of a first copy): one step per table
    assert len({v for v in seen if 0 < v < 100}) >= 2 and seen[-1] == 100, seen
    assert seen == sorted(seen), "the bar never goes backwards"
    assert not dock.syncProgress.isVisibleTo(dock) and dock.syncButton.isEnabled()
    assert dock.message().startswith("Sync finished: ")
    assert _row_counts(sqlite_agent.local_path)["parcels"] == 2000
    qtbot.waitUntil(lambda: not dock.is_refreshing() and bool(_history(dock)), timeout=WAIT_MS)
    assert _history(dock)[0][1] == "succeeded"


def test_sync_now_can_be_cancelled_and_the_next_sync_converges(
        dock, sqlite_agent, use_config, qtbot):
    sqlite_agent.run("init-central", "--demo-parcels", "20000")
    use_config(sqlite_agent.config, port=_free_port())

    with qtbot.waitSignal(dock.syncFinished, timeout=120_000) as finished:
        dock.sync_now()
        qtbot.wait(300)
        dock.cancel_sync()

    assert finished.args[0] is None and dock.last_summary is None
    assert dock.messageLabel.styleSheet() == "", "a cancel is not an error"
    assert "cancel" in dock.message() or "stopped" in dock.message(), dock.message()
    _sync(dock, qtbot)
    assert dock.last_summary["result"] == "success", dock.message()
    assert _row_counts(sqlite_agent.local_path)["parcels"] == 20000
    assert sqlite_agent.run("verify").returncode == 0


def test_sync_now_pushes_edits_made_in_qgis_and_reloads_the_layers(
        dock, sqlite_agent, use_config, qgis_new_project, qtbot):
    sqlite_agent.run("init-central", "--demo-parcels", "60")
    sqlite_agent.run("sync")
    use_config(sqlite_agent.config, port=_free_port())
    _add_layers(dock, qtbot)
    parcels = _group_layers(qgis_new_project)["parcels"]
    central_exec(sqlite_agent, "DELETE FROM parcels WHERE prop_id = 100060")
    parcels.startEditing()
    feature = next(parcels.getFeatures("prop_id = 100001"))
    parcels.changeAttributeValue(feature.id(), parcels.fields().indexOf("owner_name"), "QGIS")
    assert parcels.commitChanges()

    _sync(dock, qtbot)

    assert dock.last_summary["pushed"] == 1, dock.message()
    assert central_exec(sqlite_agent, "SELECT owner_name FROM parcels WHERE prop_id = 100001") \
        == [("QGIS",)]
    assert parcels.featureCount() == 59, "the layer shows the pulled delete without a reload"


def test_sync_now_asks_the_running_agent_and_follows_its_run(
        dock, county, use_config, running_agent, qtbot):
    _wait_for_finished_sync(running_agent)
    use_config(county, port=running_agent)
    before = json.load(urllib.request.urlopen(
        f"http://127.0.0.1:{running_agent}/api/v1/syncs?limit=1", timeout=5))["runs"][0]["id"]

    _sync(dock, qtbot)

    summary = dock.last_summary
    assert summary is not None, dock.message()
    assert summary["via"] == "agent" and summary["result"] == "success"
    assert summary["id"] > before and summary["trigger"] == "api"


def test_sync_now_reports_a_failure_as_one_sentence(dock, tmp_path, use_config, qtbot):
    # a central that was never initialised: the agent's own sentence says what to do
    use_config(_write_config(tmp_path, tmp_path / "local.sqlite", port=_free_port()))

    _sync(dock, qtbot)

    assert dock.last_summary is None
    assert "init-central" in dock.message() and "\n" not in dock.message()
    assert dock.syncButton.isEnabled()


# --- starting the agent ----------------------------------------------------------------------


def _sid(pid: int) -> int:
    return os.getsid(pid)


def test_start_agent_starts_a_detached_agent_that_the_dock_then_shows(
        dock, sqlite_agent, use_config, started_agents, qtbot):
    sqlite_agent.run("init-central", "--demo-parcels", "60")
    port = _free_port()
    use_config(sqlite_agent.config, port=port)
    _refresh(dock, qtbot)
    assert dock.stateLabel.text() == "Not running"

    qtbot.mouseClick(dock.startAgentButton, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dock.status is not None and dock.status.running, timeout=40_000)

    assert len(started_agents) == 1
    launched = started_agents[-1]
    assert launched.command[1:3] == ["-m", "terrafusion_agent"] and launched.command[-1] == "run"
    assert _sid(launched.pid) != _sid(0), "the agent must not die with QGIS's session"
    assert dock.stateLabel.text().startswith("Running")
    assert not dock.startAgentButton.isVisibleTo(dock)
    health = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5))
    assert health["local_path"] == str(sqlite_agent.local_path)


def test_dock_starts_the_agent_by_itself_once_when_none_answers(
        dock, sqlite_agent, use_config, started_agents, qtbot):
    sqlite_agent.run("init-central", "--demo-parcels", "60")
    use_config(sqlite_agent.config, port=_free_port())
    QgsSettings().setValue("terrafusion/start_agent", True)

    _refresh(dock, qtbot)
    qtbot.waitUntil(lambda: dock.status is not None and dock.status.running, timeout=40_000)

    assert len(started_agents) == 1


def test_start_agent_with_a_bad_configuration_says_why(dock, tmp_path, use_config, qtbot,
                                                       started_agents):
    bad = tmp_path / "agent.toml"
    bad.write_text("[http]\nport = 'eighty'\n", encoding="utf-8")
    use_config(bad)

    dock.start_agent()
    qtbot.waitUntil(lambda: not dock.is_starting_agent(), timeout=WAIT_MS)

    assert "http.port" in dock.message() and started_agents == []
    assert dock.startAgentButton.isEnabled()


# --- synced layers -------------------------------------------------------------------------


def test_add_synced_layers_adds_valid_layers_with_feature_counts_and_crs(
        dock, county, use_config, qgis_new_project, qtbot):
    use_config(county)
    expected = _row_counts(county.parent / "local.sqlite")

    _add_layers(dock, qtbot)

    layers = _group_layers(qgis_new_project)
    assert set(layers) == DEMO_TABLES
    assert expected["parcels"] == DEMO_PARCELS
    for name, layer in layers.items():
        assert layer.isValid() and layer.providerType() == "spatialite", name
        assert layer.featureCount() == expected[name], name
        assert layer.id() in qgis_new_project.mapLayers()
    assert layers["parcels"].crs().authid() == "EPSG:2927"
    assert layers["districts"].crs().authid() == "EPSG:2927"
    assert not layers["sales"].isSpatial()
    assert "parcels" in dock.message()


def test_synced_layers_get_the_plugins_default_styles(dock, county, use_config,
                                                      qgis_new_project, qtbot):
    use_config(county)

    _add_layers(dock, qtbot)

    layers = _group_layers(qgis_new_project)
    parcels, districts = layers["parcels"], layers["districts"]
    assert parcels.renderer().type() == "singleSymbol"
    assert parcels.renderer().symbol().color().name() == "#efe6cf"
    assert parcels.labelsEnabled()
    assert districts.renderer().type() == "categorizedSymbol"
    assert {c.value(): c.label() for c in districts.renderer().categories()} == {
        "school": "School", "fire": "Fire", "voting_precinct": "Voting precinct",
        "zoning": "Zoning", "levy": "Levy"}


@pytest.mark.parametrize("localized_plugin", ["es_ES"], indirect=True)
def test_the_styles_legend_speaks_the_users_language(localized_plugin, county, use_config,
                                                     qgis_new_project, qtbot):
    use_config(county)

    _add_layers(localized_plugin.dock, qtbot)

    districts = _group_layers(qgis_new_project)["districts"]
    labels = {c.value(): c.label() for c in districts.renderer().categories()}
    assert labels == {"zoning": "Zonificación", "school": "Escolar", "fire": "Bomberos",
                      "voting_precinct": "Distrito electoral", "levy": "Gravamen"}


def test_add_synced_layers_twice_adds_no_duplicates(
        dock, county, use_config, qgis_new_project, qtbot):
    use_config(county)

    _add_layers(dock, qtbot)
    _add_layers(dock, qtbot)

    assert len(qgis_new_project.mapLayers()) == len(DEMO_TABLES)
    assert len(_group_layers(qgis_new_project)) == len(DEMO_TABLES)
    assert dock.message() == "The synced layers are already in the project."


def test_add_synced_layers_without_local_copy_says_so_in_one_sentence(
        dock, tmp_path, use_config, qgis_new_project, qtbot):
    missing = tmp_path / "never-synced.sqlite"
    use_config(_write_config(tmp_path, missing))

    _add_layers(dock, qtbot)

    assert str(missing) in dock.message() and "does not exist yet" in dock.message()
    assert "\n" not in dock.message() and "Traceback" not in dock.message()
    assert qgis_new_project.mapLayers() == {}
    assert dock.addLayersButton.isEnabled()
