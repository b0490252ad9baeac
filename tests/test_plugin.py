"""The QGIS plugin in real, headless QGIS: loading, the dock, synced layers, unload, the zip.

The dock talks to a real agent (``python -m terrafusion_agent``) over a real demo county
in SpatiaLite; the zip is built by ``scripts/package_plugin.py`` and loaded from its
unpacked copy in a fresh Python.
"""

from __future__ import annotations

import ast
import configparser
import importlib.util
import json
import logging
import os
import queue
import re
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

from terrafusion_plugin import classFactory, paths  # noqa: E402
from terrafusion_plugin.logging_bridge import QgsMessageLogHandler  # noqa: E402

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
def plugin(qgis_iface, english):
    for name in ("addPluginToDatabaseMenu", "removePluginDatabaseMenu"):
        getattr(qgis_iface, name).reset_mock()
    instance = classFactory(qgis_iface)
    instance.initGui()
    yield instance
    instance.unload()
    _flush_deletes()


@pytest.fixture
def dock(plugin, qgis_iface):
    found = _find(qgis_iface.mainWindow(), QDockWidget, "TerraFusionDock")
    assert found is not None
    return found


@pytest.fixture
def running_agent(county):
    """Start ``terrafusion-agent run`` on an ephemeral port; yields the port."""
    log = open(county.parent / "run.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "terrafusion_agent", "--config", str(county), "run"],
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
                assert proc.poll() is None, (county.parent / "run.log").read_text()
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


def _wait_for_finished_sync(port: int) -> dict:
    """The agent syncs once at start; wait until that run has finished."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
            body = json.load(r)
        last = body.get("last_sync") or {}
        if last.get("finished_at") and body.get("next_sync"):
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


def test_init_gui_adds_dock_toolbar_action_and_database_menu_entry(plugin, qgis_iface):
    window = qgis_iface.mainWindow()
    dock = _find(window, QDockWidget, "TerraFusionDock")
    toolbar = _find(window, QToolBar, "TerraFusionToolbar")
    action = _find(window, QAction, "TerraFusionDockAction")

    assert isinstance(dock, QgsDockWidget)
    assert toolbar is not None and action in toolbar.actions()
    assert not action.icon().pixmap(24, 24).isNull()
    qgis_iface.addPluginToDatabaseMenu.assert_called_once_with("TerraFusion", action)


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


def test_unload_removes_dock_toolbar_action_menu_entry_and_log_handler(plugin, qgis_iface):
    window = qgis_iface.mainWindow()
    action = plugin.action
    logger = logging.getLogger("terrafusion")
    assert any(isinstance(h, QgsMessageLogHandler) for h in logger.handlers)

    plugin.unload()
    _flush_deletes()

    assert _find(window, QDockWidget, "TerraFusionDock") is None
    assert _find(window, QToolBar, "TerraFusionToolbar") is None
    assert _find(window, QAction, "TerraFusionDockAction") is None
    qgis_iface.removePluginDatabaseMenu.assert_called_once_with("TerraFusion", action)
    assert not any(isinstance(h, QgsMessageLogHandler) for h in logger.handlers)


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
        qgis_iface, tmp_path, monkeypatch):
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
    finally:
        instance.unload()
        _flush_deletes()
        settings.setValue("locale/userLocale", old or "en_US")
    assert QCoreApplication.translate("TerraFusion", "Not running") == "Not running"


# --- the dock ----------------------------------------------------------------------------


def test_dock_reports_an_agent_that_does_not_answer(dock, county, use_config, qtbot):
    port = _free_port()
    use_config(county, port=port)

    _refresh(dock, qtbot)

    assert dock.stateLabel.text() == "Not running"
    assert f"127.0.0.1:{port}" in dock.message()
    assert dock.lastSyncLabel.text() == DASH and dock.nextSyncLabel.text() == DASH
    assert dock.localPathLabel.text() == str(county.parent / "local.sqlite")


def test_dock_reports_a_running_agent_with_its_last_and_next_sync(
        dock, county, use_config, running_agent, qtbot):
    from terrafusion_agent import __version__

    health = _wait_for_finished_sync(running_agent)
    use_config(county, port=running_agent)

    _refresh(dock, qtbot)

    assert dock.stateLabel.text() == f"Running (agent {__version__})"
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
    pulled = health["last_sync"]["pulled"]
    assert re.fullmatch(rf"{stamp}, succeeded, rows pulled: {pulled}",
                        dock.lastSyncLabel.text()), dock.lastSyncLabel.text()
    assert re.fullmatch(stamp, dock.nextSyncLabel.text()), dock.nextSyncLabel.text()
    assert dock.message() == ""


def test_dock_shows_a_bad_configuration_as_one_sentence(dock, tmp_path, use_config, qtbot):
    bad = tmp_path / "agent.toml"
    bad.write_text("[sync]\ninterval_seconds = 'often'\n", encoding="utf-8")
    use_config(bad)

    _refresh(dock, qtbot)

    assert dock.stateLabel.text() == "Unknown"
    assert "sync.interval_seconds" in dock.message()
    assert "\n" not in dock.message() and "Traceback" not in dock.message()


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


def test_dock_ui_wires_no_signals():
    ui = ET.parse(REPO / "resources" / "ui" / "terrafusion_dock.ui").getroot()
    assert ui.findall(".//connection") == []


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


def test_spanish_translation_covers_every_plugin_and_dock_string():
    in_code = set()
    for source in (REPO / "terrafusion_plugin").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "tr" and node.args
                    and isinstance(node.args[0], ast.Constant)):
                in_code.add(node.args[0].value)
    ui = ET.parse(REPO / "resources" / "ui" / "terrafusion_dock.ui").getroot()
    in_ui = {s.text for s in ui.iter("string") if s.text and s.get("notr") != "true"}

    assert len(in_code) > 10 and in_ui
    assert in_code - set(_ts_translations("TerraFusion")) == set()
    assert in_ui - set(_ts_translations("TerraFusionDock")) == set()


# --- the plugin zip ----------------------------------------------------------------------


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
                     "resources/ui/terrafusion_dock.ui", "i18n/terrafusion_es.qm",
                     "ext/terrafusion_agent/__init__.py",
                     "ext/terrafusion_agent/migrations/local/env.py",
                     "ext/terrafusion_agent/migrations/central/env.py",
                     "ext/sqlalchemy/__init__.py", "ext/markupsafe/__init__.py"):
        assert f"terrafusion_plugin/{required}" in names, required
    bad = [n for n in names if "__pycache__" in n or ".." in n
           or n.lower().endswith((".pyc", ".pyo", ".so", ".pyd", ".dylib", ".dll", ".exe"))]
    assert bad == []
    assert zip_path.stat().st_size < 25_000_000


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
    assert meta["hasProcessingProvider"] in ("yes", "no")
    assert "/" not in meta["author"]
    assert all(meta[k].startswith("https://") for k in ("repository", "tracker", "homepage"))
    assert len(meta["about"].splitlines()) > 1


def test_bundled_agent_syncs_without_any_installed_package(package, tmp_path):
    _, plugin_dir = package
    config = _write_config(tmp_path, tmp_path / "local.sqlite")
    # -S: no site-packages at all, so every import must come from ext/
    env = _clean_env(PYTHONPATH=str(plugin_dir / "ext"))
    cmd = [sys.executable, "-S", "-m", "terrafusion_agent", "--config", str(config)]

    version = subprocess.run([*cmd, "--version"], capture_output=True, text=True, env=env)
    init = subprocess.run([*cmd, "init-central", "--demo-parcels", "20"],
                          capture_output=True, text=True, env=env, timeout=120)
    sync = subprocess.run([*cmd, "sync"], capture_output=True, text=True, env=env, timeout=120)

    assert version.stdout.strip().startswith("terrafusion-agent "), version.stderr
    assert init.returncode == 0, init.stderr
    assert sync.returncode == 0, sync.stderr
    assert json.loads(sync.stdout)["result"] == "success"


def test_unpacked_plugin_loads_with_its_bundled_agent(package):
    _, plugin_dir = package
    script = f"""
import json, sys
from unittest import mock
sys.path.insert(0, {str(plugin_dir.parent)!r})
from qgis.core import QgsApplication
from qgis.PyQt.QtWidgets import QDockWidget, QMainWindow
app = QgsApplication([], True)
app.initQgis()
window = QMainWindow()
iface = mock.MagicMock()
iface.mainWindow.return_value = window
import terrafusion_plugin
plugin = terrafusion_plugin.classFactory(iface)
plugin.initGui()
import sqlalchemy, terrafusion_agent
print(json.dumps({{
    "plugin": terrafusion_plugin.__file__,
    "agent": terrafusion_agent.__file__,
    "sqlalchemy": sqlalchemy.__file__,
    "dock": window.findChild(QDockWidget, "TerraFusionDock") is not None,
}}))
plugin.unload()
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=_clean_env(QT_QPA_PLATFORM="offscreen"), timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    ext = str(plugin_dir / "ext")
    assert loaded["plugin"].startswith(str(plugin_dir))
    assert loaded["agent"].startswith(ext) and loaded["sqlalchemy"].startswith(ext)
    assert loaded["dock"]
