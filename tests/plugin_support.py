"""What the plugin's tests share: a demo county, the plugin loaded into headless QGIS, a
running agent, and readers for what they write.

Each ``test_plugin_*.py`` imports the fixtures it uses from here by name (pytest registers
a fixture imported into a test module), together with the ones they depend on: ``plugin``
needs ``english`` and ``no_autostart``, and ``_no_outside_settings`` is autouse. This is
not a ``conftest.py`` so that the rest of the suite never imports QGIS.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import queue
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from osgeo import ogr
from qgis.core import QgsProject, QgsSettings, QgsVectorLayer
from qgis.PyQt.QtCore import QCoreApplication, QEvent, Qt

#: what the plugin test modules take with ``from plugin_support import *``: fixtures by
#: name, and the helpers they share
__all__ = [
    "DEMO_PARCELS",
    "REPO",
    "WAIT_MS",
    "_add_layers",
    "_bar_messages",
    "_agent_cli",
    "_clean_env",
    "_epsg",
    "_field_names",
    "_find",
    "_flush_deletes",
    "_free_port",
    "_group_layers",
    "_layer_of",
    "_local_count",
    "_make_conflict",
    "_no_outside_settings",
    "_stop_agents_started_since",
    "_write_config",
    "agent_process",
    "county",
    "english",
    "localized_plugin",
    "no_autostart",
    "package_plugin",
    "translations",
    "plugin",
    "use_config",
]

REPO = Path(__file__).resolve().parents[1]
# The plugin package sits at the top of the repository, which pytest does not put on
# sys.path by itself (only the agent is installed).
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from conftest import central_exec, local_exec  # noqa: E402

from terrafusion_plugin import classFactory  # noqa: E402

ogr.UseExceptions()

DEMO_PARCELS = 500
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


def _make_conflict(agent, prop_id: int = 100004) -> None:
    """One real conflict: the same value changed here and centrally, then a sync."""
    local_exec(agent, "UPDATE parcels SET land_value = 1 WHERE prop_id = ?", (prop_id,))
    central_exec(agent, "UPDATE parcels SET land_value = 2 WHERE prop_id = %s", (prop_id,))
    agent.run("sync")


def _flush_deletes() -> None:
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def _find(window, cls, name):
    return window.findChild(cls, name)


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


@pytest.fixture(scope="session")
def translations(tmp_path_factory) -> Path:
    """A folder with the plugin's Spanish translation compiled, as ``make package`` does."""
    folder = tmp_path_factory.mktemp("i18n")
    lrelease = package_plugin.find_tool("lrelease", "lrelease-qt5")
    subprocess.run([lrelease, "-silent", str(REPO / "i18n" / "terrafusion_es.ts"),
                    "-qm", str(folder / "terrafusion_es.qm")], check=True)
    return folder


@pytest.fixture
def localized_plugin(request, qgis_iface, translations, monkeypatch, no_autostart):
    """The plugin loaded in QGIS's locale ``request.param`` (``en_US``, ``es_ES``)."""
    from terrafusion_plugin.gui import paths
    from terrafusion_plugin.tasks.dock_tasks import StartAgentTask

    monkeypatch.setattr(paths, "i18n_dir", lambda: translations)
    settings = QgsSettings()
    old = settings.value("locale/userLocale")
    settings.setValue("locale/userLocale", request.param)
    started = len(StartAgentTask.launched)
    instance = classFactory(qgis_iface)
    try:
        instance.initGui()
        yield instance
    finally:
        instance.unload()
        _flush_deletes()
        _stop_agents_started_since(started)
        settings.setValue("locale/userLocale", old or "en_US")


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


def _bar_messages(bar) -> list[tuple]:
    """(level, text) of each message in a dialog's bar, after checking that it is shown
    whole: its label, at the width it has, is as tall as its wrapped text."""
    out = []
    for item in bar.items():
        label = item.label
        if label.isVisible():
            assert label.width() > 0 and label.heightForWidth(label.width()) <= label.height(), \
                f"cut off: {item.text()!r}"
        out.append((item.level(), item.text()))
    return out


def _add_layers(dock, qtbot) -> None:
    qtbot.mouseClick(dock.addLayersButton, Qt.MouseButton.LeftButton)
    assert dock.is_adding_layers()
    qtbot.waitUntil(lambda: not dock.is_adding_layers(), timeout=WAIT_MS)


def _group_layers(project: QgsProject) -> dict[str, QgsVectorLayer]:
    group = project.layerTreeRoot().findGroup("TerraFusion")
    assert group is not None, "no layer tree group TerraFusion"
    return {node.layer().name(): node.layer() for node in group.findLayers()}


# --- reading exported files --------------------------------------------------------------


def _local_count(config: Path, where: str = "1") -> int:
    with sqlite3.connect(config.parent / "local.sqlite") as conn:
        return conn.execute(f"SELECT count(*) FROM parcels WHERE {where}").fetchone()[0]  # noqa: S608


def _layer_of(path: Path):
    """(datasource, layer) of an exported file; a .zip is read inside the zip."""
    source = f"/vsizip/{path}" if path.suffix == ".zip" else str(path)
    ds = ogr.Open(source)
    assert ds is not None, path
    return ds, ds.GetLayer(0)


def _field_names(layer) -> list[str]:
    defn = layer.GetLayerDefn()
    return [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]


def _epsg(layer) -> int:
    srs = layer.GetSpatialRef()
    srs.AutoIdentifyEPSG()
    return int(srs.GetAuthorityCode(None))
