"""The QGIS plugin in real, headless QGIS: loading, the dock, sync now, starting the agent,
synced layers, unload, the sources and the zip.

The dock talks to a real agent (``python -m terrafusion_agent``) over a real demo county
in SpatiaLite; the zip is built by ``scripts/package_plugin.py`` and loaded from its
unpacked copy in a fresh Python. The dialogs and Processing are in
``test_plugin_dialogs.py``.
"""

from __future__ import annotations

import ast
import configparser
import contextlib
import importlib
import importlib.util
import json
import logging
import os
import queue
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest
from qgis.core import QgsApplication, QgsProject, QgsSettings, QgsVectorLayer
from qgis.gui import QgsDockWidget
from qgis.PyQt.QtCore import QCoreApplication, QEvent, Qt
from qgis.PyQt.QtWidgets import QDockWidget, QToolBar

try:
    from qgis.PyQt.QtGui import QAction
except ImportError:  # Qt5
    from qgis.PyQt.QtWidgets import QAction

REPO = Path(__file__).resolve().parents[1]
# The plugin package sits at the top of the repository, which pytest does not put on
# sys.path by itself (only the agent is installed).
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from conftest import central_exec, local_exec  # noqa: E402

from terrafusion_plugin import classFactory  # noqa: E402
from terrafusion_plugin.gui import paths  # noqa: E402
from terrafusion_plugin.gui.logging_bridge import QgsMessageLogHandler  # noqa: E402

pytestmark = pytest.mark.qgis

DEMO_PARCELS = 500
DEMO_TABLES = {"parcels", "districts", "sales"}
DASH = "–"
WAIT_MS = 15_000


def _load_script():
    spec = importlib.util.spec_from_file_location(
        "package_plugin", REPO / "scripts" / "package_plugin.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


package_plugin = _load_script()
AGENT_VERSION = importlib.import_module("terrafusion_agent").__version__


# --- helpers -----------------------------------------------------------------------------


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without TERRAFUSION_* settings (tests set their own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TERRAFUSION_")}
    env.update(extra)
    return env


def _agent_cli(config: Path, *args: str, env=None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "terrafusion_agent", "--config", str(config), *args],
        capture_output=True, text=True, env=env or _clean_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc


def _write_config(base: Path, local: Path, port: int = 0) -> Path:
    config = base / "agent.toml"
    config.write_text(
        f'[central]\nurl = "sqlite:///{base / "central.sqlite"}"\n'
        f'[local]\npath = "{local}"\n'
        f"[http]\nport = {port}\n"
        f'[logging]\ndir = "{base / "logs"}"\n', encoding="utf-8")
    return config


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _make_conflict(agent, prop_id: int = 100004) -> None:
    """One real conflict: the same value changed here and centrally, then a sync."""
    local_exec(agent, "UPDATE parcels SET land_value = 1 WHERE prop_id = ?", (prop_id,))
    central_exec(agent, "UPDATE parcels SET land_value = 2 WHERE prop_id = %s", (prop_id,))
    agent.run("sync")


def _flush_deletes() -> None:
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def _find(window, cls, name):
    return window.findChild(cls, name)


def _row_counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]  # noqa: S608
                for t in DEMO_TABLES}


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_outside_settings(monkeypatch):
    for name in list(os.environ):
        if name.startswith("TERRAFUSION_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def county(tmp_path_factory) -> Path:
    """Config of a synced demo county (central and local SpatiaLite files)."""
    base = tmp_path_factory.mktemp("county")
    config = _write_config(base, base / "local.sqlite")
    _agent_cli(config, "init-central", "--demo-parcels", str(DEMO_PARCELS))
    _agent_cli(config, "sync")
    return config


@pytest.fixture
def use_config(monkeypatch):
    """Point the plugin at a config file (and optionally another API port)."""
    def use(config: Path, port=None) -> None:
        monkeypatch.setenv("TERRAFUSION_CONFIG", str(config))
        if port is not None:
            monkeypatch.setenv("TERRAFUSION_HTTP__PORT", str(port))
    return use


@pytest.fixture
def english(qgis_app):
    """Run the plugin in English whatever the machine's locale is."""
    settings = QgsSettings()
    old = settings.value("locale/userLocale")
    settings.setValue("locale/userLocale", "en_US")
    yield
    if old is None:
        settings.remove("locale/userLocale")
    else:
        settings.setValue("locale/userLocale", old)


@pytest.fixture
def no_autostart(qgis_app):
    """The dock must not start agents behind a test's back (tests that want it say so);
    every plugin preference a test changes is put back afterwards."""
    settings = QgsSettings()
    before = {k: settings.value(k) for k in settings.allKeys() if k.startswith("terrafusion/")}
    settings.setValue("terrafusion/start_agent", False)
    yield
    settings.remove("terrafusion")
    for key, value in before.items():
        settings.setValue(key, value)


def _stop_agents_started_since(count: int) -> None:
    """Agents the plugin starts are detached from the test on purpose: stop them."""
    from terrafusion_plugin.tasks.dock_tasks import StartAgentTask

    for launched in StartAgentTask.launched[count:]:
        launched.process.terminate()
        try:
            launched.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            launched.process.kill()
            launched.process.wait()
    del StartAgentTask.launched[count:]


@pytest.fixture
def plugin(qgis_iface, english, no_autostart):
    from terrafusion_plugin.tasks.dock_tasks import StartAgentTask

    for name in ("addPluginToDatabaseMenu", "removePluginDatabaseMenu"):
        getattr(qgis_iface, name).reset_mock()
    started = len(StartAgentTask.launched)
    instance = classFactory(qgis_iface)
    instance.initGui()
    yield instance
    instance.unload()
    _flush_deletes()
    _stop_agents_started_since(started)  # whatever the test, no agent outlives it


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


@contextlib.contextmanager
def agent_process(config: Path):
    """Run ``terrafusion-agent run`` for ``config`` on an ephemeral port; yields the port."""
    log = open(config.parent / "run.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "terrafusion_agent", "--config", str(config), "run"],
        stdout=subprocess.PIPE, stderr=log, text=True, env=_clean_env())
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(ln) for ln in proc.stdout], daemon=True).start()
    port = None
    deadline = time.monotonic() + 30
    try:
        while port is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                assert proc.poll() is None, (config.parent / "run.log").read_text()
                continue
            match = re.search(r"running; health: http://127\.0\.0\.1:(\d+)/health", line)
            port = int(match.group(1)) if match else None
        assert port, "the agent did not report its address in time"
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


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


def _add_layers(dock, qtbot) -> None:
    qtbot.mouseClick(dock.addLayersButton, Qt.MouseButton.LeftButton)
    assert dock.is_adding_layers()
    qtbot.waitUntil(lambda: not dock.is_adding_layers(), timeout=WAIT_MS)


def _group_layers(project: QgsProject) -> dict[str, QgsVectorLayer]:
    group = project.layerTreeRoot().findGroup("TerraFusion")
    assert group is not None, "no layer tree group TerraFusion"
    return {node.layer().name(): node.layer() for node in group.findLayers()}


# --- loading and unloading ---------------------------------------------------------------

ACTIONS = ("TerraFusionDockAction", "TerraFusionSyncAction", "TerraFusionExportAction",
           "TerraFusionConflictsAction", "TerraFusionSettingsAction")


def test_init_gui_adds_dock_toolbar_actions_database_menu_and_provider(plugin, qgis_iface):
    window = qgis_iface.mainWindow()
    dock = _find(window, QDockWidget, "TerraFusionDock")
    toolbar = _find(window, QToolBar, "TerraFusionToolbar")
    actions = {name: _find(window, QAction, name) for name in ACTIONS}

    assert isinstance(dock, QgsDockWidget)
    assert all(actions.values()), actions
    assert all(not a.icon().pixmap(24, 24).isNull() for a in actions.values())
    assert [a.objectName() for a in toolbar.actions()] == list(ACTIONS[:4])
    menu_calls = qgis_iface.addPluginToDatabaseMenu.call_args_list
    assert [c.args for c in menu_calls] == [("TerraFusion", actions[n]) for n in ACTIONS]
    provider = QgsApplication.processingRegistry().providerById("terrafusion")
    assert provider is not None
    assert {a.id() for a in provider.algorithms()} == {"terrafusion:export", "terrafusion:sync"}


def test_toolbar_action_toggles_the_dock_which_polls_only_while_shown(
        plugin, qgis_iface, qtbot):
    window = qgis_iface.mainWindow()
    dock = _find(window, QDockWidget, "TerraFusionDock")
    action = _find(window, QAction, "TerraFusionDockAction")
    window.show()
    try:
        dock.setUserVisible(False)
        assert not action.isChecked()
        action.trigger()
        qtbot.waitUntil(dock.isVisible, timeout=WAIT_MS)
        assert action.isChecked() and dock.is_polling()
        action.trigger()
        qtbot.waitUntil(lambda: not dock.isVisible(), timeout=WAIT_MS)
        assert not action.isChecked() and not dock.is_polling()
    finally:
        window.hide()


def test_unload_leaves_nothing_of_the_plugin_behind(plugin, qgis_iface, tmp_path, use_config,
                                                    qtbot):
    from qgis.PyQt.QtWidgets import QDialog

    use_config(_write_config(tmp_path, tmp_path / "local.sqlite"))
    window = qgis_iface.mainWindow()
    actions = {name: _find(window, QAction, name) for name in ACTIONS}
    for show in (plugin.show_export, plugin.show_conflicts, plugin.show_settings):
        show()
    dialogs = [d.objectName() for d in window.findChildren(QDialog)
               if d.objectName().startswith("TerraFusion")]
    assert len(dialogs) == 3, dialogs
    logger = logging.getLogger("terrafusion")
    assert any(isinstance(h, QgsMessageLogHandler) for h in logger.handlers)
    assert plugin.translator is not None

    plugin.unload()
    _flush_deletes()

    assert _find(window, QDockWidget, "TerraFusionDock") is None
    assert _find(window, QToolBar, "TerraFusionToolbar") is None
    for name in ACTIONS:
        assert _find(window, QAction, name) is None, name
    assert [d for d in window.findChildren(QDialog)
            if d.objectName().startswith("TerraFusion")] == []
    removed = [c.args for c in qgis_iface.removePluginDatabaseMenu.call_args_list]
    assert removed == [("TerraFusion", actions[n]) for n in ACTIONS]
    assert not any(isinstance(h, QgsMessageLogHandler) for h in logger.handlers)
    assert QgsApplication.processingRegistry().providerById("terrafusion") is None
    assert plugin.translator.translator is None


def test_agent_log_records_reach_the_qgis_message_log_without_secrets(plugin):
    received = []

    def collect(*args):
        if len(args) == 3:
            received.append(args)

    log = QgsApplication.messageLog()
    log.messageReceived.connect(collect)
    try:
        logging.getLogger("terrafusion.sync").info(
            "pulled %d rows from postgresql://gis:s3cret@db/county", 680)
    finally:
        log.messageReceived.disconnect(collect)

    ours = [(msg, level) for msg, tag, level in received if tag == "TerraFusion"]
    assert len(ours) == 1
    assert "pulled 680 rows" in ours[0][0] and "s3cret" not in ours[0][0]


def test_translator_follows_the_qgis_locale_and_leaves_with_unload(
        qgis_iface, tmp_path, monkeypatch, no_autostart):
    lrelease = package_plugin.find_tool("lrelease", "lrelease-qt5")
    subprocess.run([lrelease, "-silent", str(REPO / "i18n" / "terrafusion_es.ts"),
                    "-qm", str(tmp_path / "terrafusion_es.qm")], check=True)
    monkeypatch.setattr(paths, "i18n_dir", lambda: tmp_path)
    settings = QgsSettings()
    old = settings.value("locale/userLocale")
    settings.setValue("locale/userLocale", "es_ES")
    instance = classFactory(qgis_iface)
    try:
        instance.initGui()
        dock = _find(qgis_iface.mainWindow(), QDockWidget, "TerraFusionDock")
        assert dock.addLayersButton.text() == "Añadir capas sincronizadas"
        assert QCoreApplication.translate("TerraFusion", "Not running") == "No está en ejecución"
        export = instance.show_export()
        assert export.windowTitle() == "TerraFusion – Exportar"
        assert export.exportButton.text() == "Exportar"
        settings_dialog = instance.show_settings()
        assert settings_dialog.testButton.text() == "Probar la conexión"
        # the agent's own help of a key, shown as a tooltip, speaks the user's language too
        assert settings_dialog.intervalSpin.toolTip() == (
            "<p>Segundos entre una sincronización programada y la siguiente.</p>")
        assert instance.show_conflicts().keepLocalButton.text() == "Mantener la local"
        sync = QgsApplication.processingRegistry().algorithmById("terrafusion:sync")
        assert sync.displayName() == "Sincronizar ahora"
    finally:
        instance.unload()
        _flush_deletes()
        settings.setValue("locale/userLocale", old or "en_US")
    assert QCoreApplication.translate("TerraFusion", "Not running") == "Not running"


# --- the dock ----------------------------------------------------------------------------


def _history(dock) -> list[list[str]]:
    table = dock.historyTable
    return [[table.item(r, c).text() for c in range(table.columnCount())]
            for r in range(table.rowCount())]


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
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
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
    assert {c.value() for c in districts.renderer().categories()} == {
        "school", "fire", "voting_precinct", "zoning", "levy"}


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


# --- sources -----------------------------------------------------------------------------

UI_FILES = sorted((REPO / "resources" / "ui").glob("*.ui"))
PLUGIN_SOURCES = sorted((REPO / "terrafusion_plugin").rglob("*.py"))


def test_every_dialog_has_its_ui_file_loaded_at_run_time_with_no_signals_wired_in_it():
    assert {p.stem for p in UI_FILES} == {"terrafusion_dock", "export_dialog",
                                          "settings_dialog", "conflicts_dialog"}
    for ui in UI_FILES:
        root = ET.parse(ui).getroot()
        assert root.findall(".//connection") == [], ui.name
        # one .ui per module of the same name, loaded with uic at run time
        module = REPO / "terrafusion_plugin" / "gui" / f"{ui.stem}.py"
        assert f'ui_path("{ui.name}")' in module.read_text(encoding="utf-8"), ui.name
    generated = [p.name for p in PLUGIN_SOURCES if p.name.startswith("ui_") or
                 p.name.endswith("_rc.py")]
    assert generated == []


def test_qt_is_imported_only_through_qgis_pyqt():
    offenders = []
    for source in PLUGIN_SOURCES:
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{source.name}: {n}" for n in names
                          if n.split(".")[0] in ("PyQt5", "PyQt6", "PySide2", "PySide6", "sip")]
    assert offenders == []


def test_no_bare_qt_enum_members_in_the_plugin():
    # Qt6 only has scoped enums: Qt.AlignRight must be Qt.AlignmentFlag.AlignRight.
    pattern = re.compile(r"\b(Qt|QgsTask|QDialogButtonBox|QHeaderView|QSizePolicy|QgsWkbTypes|"
                         r"QgsFileWidget|Qgis)\.([A-Z][A-Za-z]+)\b(?!\.)")
    enum_types = {"AlignmentFlag", "ItemDataRole", "CheckState", "ItemFlag", "MouseButton",
                  "DockWidgetArea", "TextElideMode", "Flag", "StandardButton", "ButtonRole",
                  "ResizeMode", "Policy", "GeometryType", "Type", "StorageMode",
                  "MessageLevel"}
    offenders = []
    for source in PLUGIN_SOURCES:
        for match in pattern.finditer(source.read_text(encoding="utf-8")):
            if match.group(2) not in enum_types and not match.group(2).startswith("QGIS_"):
                offenders.append(f"{source.name}: {match.group(0)}")
    assert offenders == []


def _ts_translations(context: str) -> dict[str, str]:
    root = ET.parse(REPO / "i18n" / "terrafusion_es.ts").getroot()
    out = {}
    for ctx in root.iter("context"):
        if ctx.findtext("name") == context:
            for msg in ctx.iter("message"):
                tr = msg.find("translation")
                if tr.get("type") not in ("unfinished", "obsolete", "vanished") and tr.text:
                    out[msg.findtext("source")] = tr.text
    return out


def _tr_calls() -> set[str]:
    found = set()
    for source in PLUGIN_SOURCES:
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "tr" and node.args
                    and isinstance(node.args[0], ast.Constant)):
                found.add(node.args[0].value)
    return found


def test_spanish_translation_covers_every_plugin_and_ui_string():
    in_code = _tr_calls()
    assert len(in_code) > 150
    assert sorted(in_code - set(_ts_translations("TerraFusion"))) == []
    for ui in UI_FILES:
        root = ET.parse(ui).getroot()
        in_ui = {s.text for s in root.iter("string") if s.text and s.get("notr") != "true"}
        context = root.findtext("class")
        assert in_ui, ui.name
        assert sorted(in_ui - set(_ts_translations(context))) == [], ui.name


def test_spanish_translation_covers_the_help_of_every_configuration_key():
    # the Settings dialog shows the agent's declared help as tooltips, through tr()
    from terrafusion_agent import config

    helps = {key.help for key in config.KEYS}
    assert sorted(helps - set(_ts_translations("TerraFusion"))) == []


def test_translations_keep_every_placeholder():
    for context in ["TerraFusion"] + [ET.parse(u).getroot().findtext("class") for u in UI_FILES]:
        for source, translation in _ts_translations(context).items():
            assert sorted(re.findall(r"\{\w*\}", source)) == sorted(
                re.findall(r"\{\w*\}", translation)), (source, translation)


def test_every_plugin_string_goes_through_tr():
    # user-facing text handed to a widget as a plain literal would never be translated
    # (the product name, TerraFusion, is the one literal that stays as it is)
    setters = re.compile(r"\.(setText|setToolTip|setWindowTitle|pushMessage|addItem|"
                         r"setPlaceholderText|setSuffix|setSpecialValueText)"
                         r"\(\s*\"(?!TerraFusion\")[A-Za-z]")
    offenders = []
    for source in PLUGIN_SOURCES:
        for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
            if setters.search(line):
                offenders.append(f"{source.name}:{number}: {line.strip()}")
    assert offenders == []


# --- the plugin zip ----------------------------------------------------------------------


def test_every_dependency_of_the_agent_is_pinned_for_the_zip():
    # a dependency added to pyproject.toml but not to BUNDLED would be missing in QGIS
    assert package_plugin.unbundled_dependencies() == []


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """Build the zip and deploy it into a throwaway plugin folder."""
    base = tmp_path_factory.mktemp("package")
    out, plugins = base / "terrafusion_plugin.zip", base / "plugins"
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "package_plugin.py"), "--out", str(out),
         "--deploy", "--plugins-dir", str(plugins)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out, plugins / "terrafusion_plugin"


def test_zip_holds_one_plugin_folder_without_caches_or_compiled_code(package):
    zip_path, _ = package
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
    assert {n.split("/")[0] for n in names} == {"terrafusion_plugin"}
    for required in ("__init__.py", "metadata.txt", "LICENSE", "resources/icons/terrafusion.svg",
                     "resources/icons/sync.svg", "resources/ui/terrafusion_dock.ui",
                     "resources/ui/export_dialog.ui", "resources/ui/settings_dialog.ui",
                     "resources/ui/conflicts_dialog.ui", "resources/styles/parcels.qml",
                     "resources/styles/districts.qml", "processing/provider.py",
                     "gui/terrafusion_dock.py", "tasks/dock_tasks.py",
                     "i18n/terrafusion_es.qm",
                     "agent/terrafusion_agent/__init__.py",
                     "agent/terrafusion_agent/migrations/local/env.py",
                     "agent/terrafusion_agent/migrations/local/script.py.mako",
                     "agent/terrafusion_agent/migrations/central/env.py",
                     "agent/terrafusion_agent/migrations/central/versions/0001_bookkeeping.py",
                     f"agent/terrafusion_agent-{AGENT_VERSION}.dist-info/METADATA",
                     "ext/sqlalchemy/__init__.py", "ext/markupsafe/__init__.py",
                     "ext/packaging/requirements.py", "ext/tomlkit/__init__.py"):
        assert f"terrafusion_plugin/{required}" in names, required
    bad = [n for n in names if "__pycache__" in n or ".." in n
           or n.lower().endswith((".pyc", ".pyo", ".so", ".pyd", ".dylib", ".dll", ".exe"))]
    assert bad == []
    assert zip_path.stat().st_size < 25_000_000


def test_ext_holds_only_third_party_packages_and_the_agent_sits_beside_it(package):
    zip_path, _ = package
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
    in_ext = {n.split("/")[2] for n in names if n.startswith("terrafusion_plugin/ext/")}
    in_agent = {n.split("/")[2] for n in names if n.startswith("terrafusion_plugin/agent/")}
    assert {"sqlalchemy", "werkzeug", "alembic"} <= in_ext
    assert not {n for n in in_ext if n.startswith("terrafusion")}, in_ext
    assert in_agent == {"terrafusion_agent", f"terrafusion_agent-{AGENT_VERSION}.dist-info"}


def test_zip_version_is_the_agents_version(package):
    zip_path, _ = package
    with zipfile.ZipFile(zip_path) as zf:
        parser = configparser.ConfigParser(interpolation=None)
        parser.read_string(zf.read("terrafusion_plugin/metadata.txt").decode("utf-8"))
        shipped = zf.read(f"terrafusion_plugin/agent/terrafusion_agent-{AGENT_VERSION}"
                          ".dist-info/METADATA").decode("utf-8")
    assert parser["general"]["version"] == AGENT_VERSION
    assert f"\nVersion: {AGENT_VERSION}\n" in shipped
    # the repository's metadata.txt leaves it out, so that there is one source
    assert not re.search(r"^version\s*=", (REPO / "metadata.txt").read_text(encoding="utf-8"),
                         re.MULTILINE)


def test_zip_metadata_has_what_the_plugin_repository_requires(package):
    zip_path, _ = package
    with zipfile.ZipFile(zip_path) as zf:
        parser = configparser.ConfigParser(interpolation=None)
        parser.optionxform = str
        parser.read_string(zf.read("terrafusion_plugin/metadata.txt").decode("utf-8"))
        meta = dict(parser["general"])
        assert f"terrafusion_plugin/{meta['icon']}" in zf.namelist()
    for key in ("name", "description", "about", "version", "qgisMinimumVersion", "author",
                "email", "repository", "tracker", "homepage", "changelog", "tags"):
        assert meta.get(key, "").strip(), key
    assert meta["name"] == "TerraFusion" and meta["qgisMinimumVersion"] == "3.22"
    assert meta["supportsQt6"] == "True" and meta["category"] == "Database"
    assert meta["hasProcessingProvider"] == "yes"
    assert "/" not in meta["author"]
    assert all(meta[k].startswith("https://") for k in ("repository", "tracker", "homepage"))
    assert len(meta["about"].splitlines()) > 1


def test_bundled_agent_syncs_without_any_installed_package(package, tmp_path):
    _, plugin_dir = package
    config = _write_config(tmp_path, tmp_path / "local.sqlite")
    # -S: no site-packages at all, so every import must come from agent/ and ext/
    env = _clean_env(PYTHONPATH=os.pathsep.join([str(plugin_dir / "agent"),
                                                 str(plugin_dir / "ext")]))
    cmd = [sys.executable, "-S", "-m", "terrafusion_agent", "--config", str(config)]

    version = subprocess.run([*cmd, "--version"], capture_output=True, text=True, env=env)
    init = subprocess.run([*cmd, "init-central", "--demo-parcels", "20"],
                          capture_output=True, text=True, env=env, timeout=120)
    sync = subprocess.run([*cmd, "sync"], capture_output=True, text=True, env=env, timeout=120)

    assert version.stdout.strip().startswith("terrafusion-agent "), version.stderr
    assert init.returncode == 0, init.stderr
    assert sync.returncode == 0, sync.stderr
    assert json.loads(sync.stdout)["result"] == "success"


def test_unpacked_plugin_loads_with_its_bundled_agent_dialogs_and_provider(
        package, county, tmp_path):
    _, plugin_dir = package
    out = tmp_path / "parcels.gpkg"
    script = f"""
import json, sys
from unittest import mock
sys.path.insert(0, {str(plugin_dir.parent)!r})
from qgis.core import QgsApplication
from qgis.PyQt.QtWidgets import QDialog, QDockWidget, QMainWindow
app = QgsApplication([], True)
app.initQgis()
sys.path.append(QgsApplication.pkgDataPath() + "/python/plugins")
from processing.core.Processing import Processing
Processing.initialize()
import processing
window = QMainWindow()
iface = mock.MagicMock()
iface.mainWindow.return_value = window
import terrafusion_plugin
before = list(sys.path)
plugin = terrafusion_plugin.classFactory(iface)
added = sys.path[len(before):] if sys.path[:len(before)] == before else "reordered"
warnings = [str(c) for c in iface.messageBar().pushMessage.call_args_list]
plugin.initProcessing()
plugin.initGui()
for show in (plugin.show_export, plugin.show_settings, plugin.show_conflicts):
    show()
import sqlalchemy, terrafusion_agent
result = processing.run("terrafusion:export", {{"TABLE": "parcels", "CONFIG": {str(county)!r},
                                                "OUTPUT": {str(out)!r}}})
print(json.dumps({{
    "plugin": terrafusion_plugin.__file__,
    "agent": terrafusion_agent.__file__,
    "sqlalchemy": sqlalchemy.__file__,
    "added": added,
    "warnings": warnings,
    "dock": window.findChild(QDockWidget, "TerraFusionDock") is not None,
    "dialogs": sorted(d.objectName() for d in window.findChildren(QDialog)),
    "features": result["FEATURES"],
}}))
plugin.unload()
"""
    proc = subprocess.run([_qgis_python(), "-s", "-c", script], capture_output=True,
                          text=True, env=_qgis_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    agent, ext = str(plugin_dir / "agent"), str(plugin_dir / "ext")
    assert loaded["plugin"].startswith(str(plugin_dir))
    assert loaded["added"] == [agent, ext]
    # what is bundled meets the agent's requirements: nothing to warn about
    assert loaded["warnings"] == []
    assert loaded["agent"].startswith(agent) and loaded["sqlalchemy"].startswith(ext)
    assert loaded["dock"]
    assert loaded["dialogs"] == ["TerraFusionConflictsDialog", "TerraFusionExportDialog",
                                 "TerraFusionSettingsDialog"]
    assert loaded["features"] == DEMO_PARCELS and out.stat().st_size > 0


def _qgis_python() -> str:
    """The Python QGIS runs on (Debian's, with PyQGIS), not this test's virtualenv: the
    unpacked plugin must find its agent and packages in the zip, not in the checkout."""
    return str(Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}")


def _qgis_env(**extra: str) -> dict[str, str]:
    env = _clean_env(QT_QPA_PLATFORM="offscreen")
    env.pop("PYTHONPATH", None)  # the checkout's, in a developer's shell
    env.update(extra)
    return env


def test_bundled_folders_are_appended_and_an_older_copy_loaded_first_is_named(
        package, tmp_path):
    _, plugin_dir = package
    # another plugin's werkzeug, older than the agent's requirement, first on the path
    other = tmp_path / "other_plugin"
    (other / "werkzeug").mkdir(parents=True)
    (other / "werkzeug" / "__init__.py").write_text("")
    (other / "werkzeug-2.0.0.dist-info").mkdir()
    (other / "werkzeug-2.0.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: Werkzeug\nVersion: 2.0.0\n")
    script = f"""
import json, sys
from unittest import mock
sys.path[:0] = [{str(plugin_dir.parent)!r}, {str(other)!r}]
from qgis.core import QgsApplication
app = QgsApplication([], False)
before = list(sys.path)
import terrafusion_plugin
terrafusion_plugin.classFactory(None)  # as qgis_process loads it: the warning only logged
iface = mock.MagicMock()
terrafusion_plugin.classFactory(iface)
terrafusion_plugin.use_bundled_packages()  # a reload appends nothing twice
import sqlalchemy, terrafusion_agent, werkzeug
from terrafusion_agent.client.launcher import child_environment
print(json.dumps({{
    "kept": sys.path[:len(before)] == before,
    "added": sys.path[len(before):],
    "werkzeug": werkzeug.__file__, "sqlalchemy": sqlalchemy.__file__,
    "agent": terrafusion_agent.__file__,
    "warnings": [c.args[1] for c in iface.messageBar().pushMessage.call_args_list],
    "child_path": child_environment()["PYTHONPATH"],
}}))
"""
    proc = subprocess.run([_qgis_python(), "-s", "-c", script], capture_output=True,
                          text=True, env=_qgis_env(PYTHONPATH="/opt/qgis/python"),
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    agent, ext = str(plugin_dir / "agent"), str(plugin_dir / "ext")
    assert loaded["kept"] and loaded["added"] == [agent, ext]
    assert loaded["werkzeug"].startswith(str(other))
    assert loaded["sqlalchemy"].startswith(ext) and loaded["agent"].startswith(agent)
    assert loaded["warnings"] == [
        f"TerraFusion needs werkzeug>=2.3, but QGIS's Python loads werkzeug 2.0.0 from "
        f"{other}, which comes first on its path; update or remove that copy."]
    # the agent started as a child finds the same folders, after what QGIS set
    assert loaded["child_path"].split(os.pathsep) == ["/opt/qgis/python", agent, ext]


def _qgis_process() -> str:
    # Debian's qgis_process wrapper adds --noversioncheck, which qgis_process refuses
    # (QGIS 3.22); the binary behind it is the real thing.
    found = shutil.which("qgis_process.bin") or shutil.which("qgis_process")
    if found is None:
        pytest.skip("qgis_process is not installed")
    return found


def test_both_algorithms_run_from_qgis_process_with_the_unpacked_plugin(package, county,
                                                                        tmp_path):
    _, plugin_dir = package
    profile = tmp_path / "qgis-profile"
    shutil.copytree(plugin_dir, profile / "profiles" / "default" / "python" / "plugins"
                    / "terrafusion_plugin")
    env = _clean_env(QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(profile))
    qgis_process = _qgis_process()
    out = tmp_path / "valuable.geojson"

    def run(*args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([qgis_process, *args], capture_output=True, text=True, env=env,
                              timeout=180)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    run("plugins", "enable", "terrafusion_plugin")
    listed = run("list").stdout
    exported = run("run", "terrafusion:export", "--json", "--", "TABLE=parcels",
                   f"CONFIG={county}", "WHERE=market_value > 300000", f"OUTPUT={out}")
    synced = run("run", "terrafusion:sync", "--json", "--", f"CONFIG={county}")

    assert "terrafusion:export" in listed and "terrafusion:sync" in listed
    with sqlite3.connect(county.parent / "local.sqlite") as conn:
        expected = conn.execute("SELECT count(*) FROM parcels WHERE market_value > 300000"
                                ).fetchone()[0]
    assert json.loads(exported.stdout)["results"]["FEATURES"] == expected
    assert len(json.loads(out.read_text())["features"]) == expected
    assert json.loads(synced.stdout)["results"]["RESULT"] == "success"
