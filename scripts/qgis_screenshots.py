"""Run inside QGIS by ``scripts/screenshots.py`` (``qgis --code``): take the screenshots.

QGIS has started with a throwaway profile, the plugin installed from its zip and enabled,
at its default window size; an agent serves the demo county named by
``$TERRAFUSION_CONFIG``. The script drives the plugin as an analyst would (add the synced
layers, sync, open each dialog), grabs each window into ``$TF_SHOTS_OUT``, writes what
it did to ``$TF_SHOTS_RESULT`` (``{"shots": [...]}`` or ``{"error": "..."}``) and quits QGIS.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path

from qgis.core import QgsApplication, QgsAuthMethodConfig, QgsProject, QgsRectangle
from qgis.PyQt.QtCore import Qt, QTimer
from qgis.PyQt.QtWidgets import QApplication
from qgis.utils import iface, plugins

OUT = Path(os.environ["TF_SHOTS_OUT"])
RESULT = Path(os.environ["TF_SHOTS_RESULT"])
CONFIG = Path(os.environ["TERRAFUSION_CONFIG"])
shots: list[str] = []


class NotReady(Exception):
    pass


def pump(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def wait(what: str, ready, seconds: float = 60) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        if ready():
            return
        time.sleep(0.05)
    raise NotReady(f"{what} did not happen within {seconds:g} s")


def settle(canvas) -> None:
    canvas.refresh()
    pump(0.3)
    wait("the map drawing", lambda: not canvas.isDrawing())
    pump(0.3)


def grab(widget, name: str) -> None:
    if not widget.grab().save(str(OUT / name)):
        raise NotReady(f"{OUT / name} could not be written")
    shots.append(name)


def edit_local(sql: str) -> None:
    """An edit as QGIS makes it: its own connection to the local copy."""
    from terrafusion_agent.stores.spatialite import connect

    conn = connect(Path(os.environ["TF_SHOTS_WORK"]) / "local.sqlite")
    try:
        conn.execute(sql)
        conn.commit()
    finally:
        conn.close()


def take() -> None:
    plugin = plugins["terrafusion_plugin"]
    window = iface.mainWindow()
    canvas = iface.mapCanvas()
    dock = plugin.dock
    dock.setUserVisible(True)

    def agent_answers() -> bool:
        if not dock.is_refreshing():
            if dock.status is not None and dock.status.running:
                return True
            dock.refresh()
        return False

    wait("the agent's answer", agent_answers)
    dock.add_synced_layers()
    wait("adding the synced layers", lambda: not dock.is_adding_layers())
    pump(1)  # QGIS zooms to the first layer added: choose the view after that
    project = QgsProject.instance()
    parcels = next(lyr for lyr in project.mapLayers().values() if lyr.name() == "parcels")
    canvas.setDestinationCrs(parcels.crs())
    middle = parcels.extent().center()
    # a few blocks in the middle of the county: lots, house numbers and districts readable
    canvas.setExtent(QgsRectangle(middle.x() - 400, middle.y() - 250, middle.x() + 400,
                                  middle.y() + 250))
    canvas.zoomScale(2500)
    settle(canvas)

    dock.sync_now()
    wait("the sync", lambda: not dock.is_syncing(), 120)
    edit_local("UPDATE parcels SET year_built = 1998 WHERE prop_id = 100020")
    # the agent re-reads its local figures at most every two seconds: ask twice
    for _ in range(2):
        pump(2.5)
        dock.refresh()
        wait("the dock's refresh", lambda: not dock.is_refreshing())
    settle(canvas)
    grab(window, "main_window.png")
    grab(dock, "dock.png")

    export = plugin.show_export()
    wait("the export dialog", lambda: not export.is_loading())
    export.tableCombo.setCurrentIndex(export.tableCombo.findData("parcels"))
    export.formatCombo.setCurrentIndex(export.formatCombo.findData("gpkg"))
    export.filterWidget.setExpression('"market_value" > 400000')
    for row in range(export.fieldsList.count()):
        item = export.fieldsList.item(row)
        if item.data(Qt.ItemDataRole.UserRole) in ("legal_desc", "tax_area_code",
                                                    "property_use_code"):
            item.setCheckState(Qt.CheckState.Unchecked)
    pump(0.5)
    grab(export, "export.png")
    export.close()

    settings_dialog = plugin.show_settings()
    pump(0.5)
    grab(settings_dialog, "settings.png")
    # the same dialog for a county PostgreSQL server, its password in QGIS's auth manager
    manager = QgsApplication.authManager()
    manager.setMasterPassword("screenshots", True)
    login = QgsAuthMethodConfig("Basic")
    login.setName("County GIS (analyst)")
    login.setConfig("username", "analyst")
    login.setConfig("password", "not-a-real-password")
    manager.storeAuthenticationConfig(login)
    settings_dialog.kindCombo.setCurrentIndex(settings_dialog.kindCombo.findData("server"))
    settings_dialog.hostEdit.setText("gisdb.county.local")
    settings_dialog.databaseEdit.setText("terrafusion")
    settings_dialog.authSelect.setConfigId(login.id())
    pump(0.5)
    grab(settings_dialog, "settings_server.png")
    settings_dialog.close()  # not saved

    # two more edits an analyst made today: a new owner, and a lot split off (deleted)
    edit_local("UPDATE parcels SET owner_name = 'NGUYEN THANH & LE MAI', "
               "land_value = 88200 WHERE prop_id = 100031")
    edit_local("DELETE FROM parcels WHERE prop_id = 100042")
    pending = plugin.show_pending()
    wait("the pending edits dialog", lambda: not pending.is_busy())
    for row in range(pending.editsTable.rowCount()):
        if pending.editsTable.item(row, 1).text() == "100031":
            pending.editsTable.selectRow(row)
    pump(0.5)
    settle(canvas)
    grab(pending, "pending.png")
    grab(window, "pending_on_map.png")
    pending.close()

    # lot 7's history: the analyst selects it on the map and opens Feature history
    iface.setActiveLayer(parcels)
    parcels.selectByExpression('"prop_id" = 100007')
    canvas.zoomToSelected(parcels)
    canvas.zoomScale(1000)
    history = plugin.show_history()
    wait("the feature's history", lambda: not history.is_busy() and history.entries())
    for row in range(history.entriesTable.rowCount()):
        if "geom" in history.entriesTable.item(row, 3).text():
            history.entriesTable.selectRow(row)
    pump(0.5)
    settle(history.mapCanvas)
    settle(canvas)
    grab(history, "history.png")
    grab(window, "history_in_qgis.png")
    history.close()
    parcels.removeSelection()

    conflicts = plugin.show_conflicts()
    wait("the conflicts dialog", lambda: not conflicts.is_busy())
    for row in range(conflicts.conflictsTable.rowCount()):
        if conflicts.conflictsTable.item(row, 2).text() == "100012":
            conflicts.conflictsTable.selectRow(row)
    pump(0.5)
    settle(conflicts.mapCanvas)
    grab(conflicts, "conflicts.png")
    conflicts.close()


def main() -> None:
    report: dict = {}
    try:
        OUT.mkdir(parents=True, exist_ok=True)
        take()
        report["shots"] = shots
    except Exception as exc:  # the outer script turns it into one sentence
        report["error"] = f"{exc} ({traceback.format_exc().strip().splitlines()[-2].strip()})"
        report["traceback"] = traceback.format_exc()
    RESULT.write_text(json.dumps(report), encoding="utf-8")
    QTimer.singleShot(500, QgsApplication.instance().quit)


QTimer.singleShot(2000, main)
