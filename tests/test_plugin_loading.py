"""Loading the plugin into headless QGIS and unloading it: the dock, toolbar, Database
menu and Processing provider it adds, the dock action that shows and hides the dock, the
agent's log records in QGIS's message log without secrets, the translator that follows
the QGIS locale, and nothing of it left behind after ``unload``.
"""

from __future__ import annotations

import logging
import subprocess

import pytest
from plugin_support import *  # noqa: F403 - the shared fixtures and helpers (its __all__)
from qgis.core import QgsApplication, QgsSettings
from qgis.gui import QgsDockWidget
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtWidgets import QDockWidget, QToolBar

try:
    from qgis.PyQt.QtGui import QAction
except ImportError:  # Qt5
    from qgis.PyQt.QtWidgets import QAction

# after plugin_support, which puts the checkout (and so terrafusion_plugin) on sys.path
from terrafusion_plugin import classFactory
from terrafusion_plugin.gui import paths
from terrafusion_plugin.gui.logging_bridge import QgsMessageLogHandler

pytestmark = pytest.mark.qgis

ACTIONS = ("TerraFusionDockAction", "TerraFusionSyncAction", "TerraFusionExportAction",
           "TerraFusionConflictsAction", "TerraFusionHistoryAction", "TerraFusionSettingsAction")


def test_init_gui_adds_dock_toolbar_actions_database_menu_and_provider(plugin, qgis_iface):
    window = qgis_iface.mainWindow()
    dock = _find(window, QDockWidget, "TerraFusionDock")
    toolbar = _find(window, QToolBar, "TerraFusionToolbar")
    actions = {name: _find(window, QAction, name) for name in ACTIONS}

    assert isinstance(dock, QgsDockWidget)
    assert all(actions.values()), actions
    assert all(not a.icon().pixmap(24, 24).isNull() for a in actions.values())
    assert [a.objectName() for a in toolbar.actions()] == list(ACTIONS[:5])
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
    plugin.show_history()
    assert _find(window, QDockWidget, "TerraFusionHistoryPanel") is not None
    logger = logging.getLogger("terrafusion")
    assert any(isinstance(h, QgsMessageLogHandler) for h in logger.handlers)
    assert plugin.translator is not None

    plugin.unload()
    _flush_deletes()

    assert _find(window, QDockWidget, "TerraFusionDock") is None
    assert _find(window, QDockWidget, "TerraFusionHistoryPanel") is None
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
        assert instance.show_history().restoreButton.text() == "Restaurar esta versión"
        sync = QgsApplication.processingRegistry().algorithmById("terrafusion:sync")
        assert sync.displayName() == "Sincronizar ahora"
    finally:
        instance.unload()
        _flush_deletes()
        settings.setValue("locale/userLocale", old or "en_US")
    assert QCoreApplication.translate("TerraFusion", "Not running") == "Not running"
