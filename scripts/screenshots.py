#!/usr/bin/env python3
"""Take the plugin's screenshots in a real QGIS window under Xvfb, with the demo county.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--parcels 3000]

Starts ``Xvfb :99`` (unless ``--display`` names a running X server), creates a demo county
(embedded SpatiaLite central, a first sync, two real conflicts, a pending edit), starts
the agent on a free port, opens a QGIS main window (layer tree, map canvas, the plugin's
toolbar and dock) with the synced layers in their default styles, and grabs:

    main_window.png  dock.png  export.png  settings.png  settings_server.png  conflicts.png

Everything runs in a throwaway folder; the agent and Xvfb are stopped at the end. On
failure it prints one sentence to stderr and exits with 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "docs" / "screenshots"
SCREEN = "1600x1000x24"


class ScreenshotError(Exception):
    """One sentence for the user."""


# --- the world around QGIS: X server, demo county, agent ----------------------------------


def start_xvfb(display: str) -> subprocess.Popen:
    if not shutil.which("Xvfb"):
        raise ScreenshotError("Xvfb is not installed (Debian: apt-get install xvfb).")
    proc = subprocess.Popen(["Xvfb", display, "-screen", "0", SCREEN, "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    socket_path = Path(f"/tmp/.X11-unix/X{display.lstrip(':')}")
    deadline = time.monotonic() + 10
    while not socket_path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise ScreenshotError(f"Xvfb did not start on display {display}.")
        time.sleep(0.1)
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def agent(config: Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "terrafusion_agent", "--config", str(config),
                           *args], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise ScreenshotError(f"terrafusion-agent {args[0]} failed: "
                              f"{(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    return proc.stdout


def make_county(work: Path, parcels: int, port: int) -> Path:
    """A synced demo county with two conflicts and one pending edit; its config file."""
    config = work / "agent.toml"
    config.write_text(
        f'[central]\nurl = "sqlite:///{work / "central.sqlite"}"\n'
        f'[local]\npath = "{work / "local.sqlite"}"\n'
        f"[sync]\ninterval_seconds = 300\n[sync.table_policy]\nsales = \"central_wins\"\n"
        f"[http]\nport = {port}\n"
        f'[logging]\ndir = "{work / "logs"}"\n'
        '[export.presets.public_parcels]\ntable = "parcels"\nformat = "geojson"\n'
        'crs = "EPSG:4326"\nfields = ["geo_id", "situs_address", "market_value"]\n'
        '[export.presets.title_company]\ntable = "parcels"\nformat = "gpkg"\n'
        'fields = ["prop_id", "geo_id", "owner_name", "legal_desc", "acres"]\n',
        encoding="utf-8")
    agent(config, "init-central", "--demo-parcels", str(parcels))
    agent(config, "sync")
    from terrafusion_agent.stores.spatialite import connect

    def run(path: Path, sql: str) -> None:
        conn = connect(path)
        try:
            conn.execute(sql)
            conn.commit()
        finally:
            conn.close()

    local, central = work / "local.sqlite", work / "central.sqlite"
    # an analyst and a colleague both revalued lot 4; the colleague also moved lot 12
    run(local, "UPDATE parcels SET land_value = 71500, market_value = 71500 "
               "WHERE prop_id = 100004")
    run(central, "UPDATE parcels SET land_value = 69900, market_value = 69900 "
                 "WHERE prop_id = 100004")
    run(local, "UPDATE parcels SET owner_name = 'GARCIA MARIA' WHERE prop_id = 100012")
    run(central, "UPDATE parcels SET owner_name = 'GARCIA-LOPEZ MARIA', "
                 "geom = ST_Translate(geom, 12, -8, 0) WHERE prop_id = 100012")
    agent(config, "sync")
    return config


def start_agent(config: Path, log: Path) -> subprocess.Popen:
    with open(log, "wb") as err:
        return subprocess.Popen([sys.executable, "-m", "terrafusion_agent", "--config",
                                 str(config), "run"], stdout=subprocess.DEVNULL, stderr=err)


# --- QGIS ---------------------------------------------------------------------------------


class Iface:
    """The few parts of QgisInterface the plugin uses, on a real main window."""

    def __init__(self, window, canvas, bar):
        self._window, self._canvas, self._bar = window, canvas, bar
        self.database_menu = window.menuBar().addMenu("&Database")
        self._submenus: dict = {}

    def mainWindow(self):  # noqa: N802 - QGIS API
        return self._window

    def mapCanvas(self):  # noqa: N802
        return self._canvas

    def messageBar(self):  # noqa: N802
        return self._bar

    def addDockWidget(self, area, dock):  # noqa: N802
        self._window.addDockWidget(area, dock)

    def removeDockWidget(self, dock):  # noqa: N802
        self._window.removeDockWidget(dock)

    def addToolBar(self, toolbar):  # noqa: N802
        self._window.addToolBar(toolbar)
        return toolbar

    def addPluginToDatabaseMenu(self, name, action):  # noqa: N802
        menu = self._submenus.get(name) or self.database_menu.addMenu(name)
        self._submenus[name] = menu
        menu.addAction(action)

    def removePluginDatabaseMenu(self, name, action):  # noqa: N802
        if name in self._submenus:
            self._submenus[name].removeAction(action)


def wait(app, seconds: float, until=None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        app.processEvents()
        if until is not None and until():
            return
        time.sleep(0.02)
    if until is not None:
        raise ScreenshotError("QGIS did not get ready in time.")


def settle_canvas(app, canvas) -> None:
    canvas.refresh()
    wait(app, 0.3)
    wait(app, 30, lambda: not canvas.isDrawing())
    wait(app, 0.3)


def grab(widget, path: Path) -> None:
    if not widget.grab().save(str(path)):
        raise ScreenshotError(f"{path} could not be written.")
    print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


def take(out: Path, config: Path, port: int, profile: Path) -> None:
    os.environ["TERRAFUSION_CONFIG"] = str(config)
    # QSettings of a script's QgsApplication live in $XDG_CONFIG_HOME: a throwaway one, so
    # the user's own preferences stay untouched
    os.environ["XDG_CONFIG_HOME"] = str(profile / "config")
    sys.path.insert(0, str(REPO))
    from qgis.core import QgsApplication, QgsProject, QgsRectangle, QgsSettings
    from qgis.gui import (
        QgsLayerTreeMapCanvasBridge,
        QgsLayerTreeView,
        QgsMapCanvas,
        QgsMessageBar,
    )
    from qgis.PyQt.QtCore import QSize, Qt
    from qgis.PyQt.QtWidgets import QDockWidget, QMainWindow, QVBoxLayout, QWidget

    # a throwaway QGIS profile: the user's own settings and authentication database stay
    # untouched
    app = QgsApplication([], True, str(profile))
    app.initQgis()
    settings = QgsSettings()
    settings.setValue("locale/userLocale", os.environ.get("TF_LOCALE", "en_US"))
    settings.setValue("terrafusion/start_agent", False)  # the script runs its own
    settings.setValue("terrafusion/export_folder", str(Path.home() / "exports"))

    window = QMainWindow()
    window.setWindowTitle("QGIS – TerraFusion demo county")
    window.resize(QSize(1600, 1000))
    central = QWidget()
    layout = QVBoxLayout(central)
    layout.setContentsMargins(0, 0, 0, 0)
    bar = QgsMessageBar()
    canvas = QgsMapCanvas()
    canvas.setCanvasColor(Qt.GlobalColor.white)
    layout.addWidget(bar)
    layout.addWidget(canvas)
    window.setCentralWidget(central)
    project = QgsProject.instance()
    tree = QgsLayerTreeView()
    from qgis.core import QgsLayerTreeModel

    model = QgsLayerTreeModel(project.layerTreeRoot())
    model.setFlag(QgsLayerTreeModel.Flag.AllowNodeChangeVisibility)
    tree.setModel(model)
    layers_dock = QDockWidget("Layers")
    layers_dock.setObjectName("Layers")
    layers_dock.setWidget(tree)
    window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, layers_dock)
    bridge = QgsLayerTreeMapCanvasBridge(project.layerTreeRoot(), canvas)
    bridge.setAutoSetupOnFirstLayer(False)  # the script chooses the view itself
    iface = Iface(window, canvas, bar)

    from terrafusion_plugin import classFactory

    plugin = classFactory(iface)
    plugin.initGui()
    dock = plugin.dock
    window.resizeDocks([layers_dock, dock], [260, 380], Qt.Orientation.Horizontal)
    window.show()
    dock.setUserVisible(True)

    def agent_answers() -> bool:
        if not dock.is_refreshing():
            if dock.status is not None and dock.status.running:
                return True
            dock.refresh()
        return False

    wait(app, 60, agent_answers)

    dock.add_synced_layers()
    wait(app, 30, lambda: not dock.is_adding_layers())
    tree.expandAll()
    parcels = next(lyr for lyr in project.mapLayers().values() if lyr.name() == "parcels")
    canvas.setDestinationCrs(parcels.crs())
    middle = parcels.extent().center()
    # a few blocks in the middle of the county: lots, house numbers and districts readable
    canvas.setExtent(QgsRectangle(middle.x() - 400, middle.y() - 250, middle.x() + 400,
                                  middle.y() + 250))
    canvas.zoomScale(2500)

    dock.sync_now()
    wait(app, 120, lambda: not dock.is_syncing())
    from terrafusion_agent.stores.spatialite import connect

    edit = connect(config.parent / "local.sqlite")  # as QGIS would: one pending edit
    edit.execute("UPDATE parcels SET year_built = 1998 WHERE prop_id = 100020")
    edit.commit()
    edit.close()
    # The agent re-reads its local figures at most every two seconds, in the background
    # (the first request after that still gets the old ones): ask twice.
    for _ in range(2):
        wait(app, 2.5)
        dock.refresh()
        wait(app, 30, lambda: not dock.is_refreshing())
    settle_canvas(app, canvas)
    grab(window, out / "main_window.png")
    grab(dock, out / "dock.png")

    export = plugin.show_export()
    export.resize(900, 600)
    wait(app, 30, lambda: not export.is_loading())
    export.tableCombo.setCurrentIndex(export.tableCombo.findData("parcels"))
    export.formatCombo.setCurrentIndex(export.formatCombo.findData("gpkg"))
    export.filterWidget.setExpression('"market_value" > 400000')
    for row in range(export.fieldsList.count()):
        item = export.fieldsList.item(row)
        if item.data(Qt.ItemDataRole.UserRole) in ("legal_desc", "tax_area_code",
                                                    "property_use_code"):
            item.setCheckState(Qt.CheckState.Unchecked)
    wait(app, 0.5)
    grab(export, out / "export.png")
    export.close()

    settings.setValue("terrafusion/start_agent", True)
    settings_dialog = plugin.show_settings()
    settings_dialog.resize(960, 560)
    wait(app, 0.5)
    grab(settings_dialog, out / "settings.png")
    # the same dialog for a county PostgreSQL server, its password in QGIS's auth manager
    from qgis.core import QgsAuthMethodConfig

    manager = QgsApplication.authManager()
    manager.setMasterPassword("screenshots", True)
    login = QgsAuthMethodConfig("Basic")
    login.setName("County GIS (analyst)")
    login.setConfig("username", "analyst")
    login.setConfig("password", "not-a-real-password")
    manager.storeAuthenticationConfig(login)
    dialog = settings_dialog
    dialog.kindCombo.setCurrentIndex(dialog.kindCombo.findData("server"))
    dialog.hostEdit.setText("gisdb.county.local")
    dialog.databaseEdit.setText("terrafusion")
    dialog.authSelect.setConfigId(login.id())
    wait(app, 0.5)
    grab(settings_dialog, out / "settings_server.png")
    settings_dialog.close()  # not saved

    conflicts = plugin.show_conflicts()
    conflicts.resize(1100, 700)
    wait(app, 30, lambda: not conflicts.is_busy())
    for row in range(conflicts.conflictsTable.rowCount()):
        if conflicts.conflictsTable.item(row, 2).text() == "100012":
            conflicts.conflictsTable.selectRow(row)
    wait(app, 0.5)
    settle_canvas(app, conflicts.mapCanvas)
    grab(conflicts, out / "conflicts.png")
    conflicts.close()

    plugin.unload()
    window.close()
    app.exitQgis()


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--parcels", type=int, default=3000)
    parser.add_argument("--display", help="use this running X display instead of Xvfb :99")
    args = parser.parse_args(argv)
    xvfb = None
    agent_proc = None
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        if args.display:
            os.environ["DISPLAY"] = args.display
        else:
            xvfb = start_xvfb(":99")
            os.environ["DISPLAY"] = ":99"
        os.environ["QT_QPA_PLATFORM"] = "xcb"
        os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="runtime-"))
        with tempfile.TemporaryDirectory(prefix="terrafusion-screens-") as tmp:
            work = Path(tmp)
            port = free_port()
            config = make_county(work, args.parcels, port)
            agent_proc = start_agent(config, work / "agent.log")
            try:
                take(args.out.resolve(), config, port, work / "qgis-profile")
            finally:
                stop(agent_proc)  # before its folder goes away
        return 0
    except ScreenshotError as exc:
        print(f"screenshots: {exc}", file=sys.stderr)
        return 1
    finally:
        stop(agent_proc)
        stop(xvfb)


def stop(proc: Optional[subprocess.Popen]) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    raise SystemExit(main())
