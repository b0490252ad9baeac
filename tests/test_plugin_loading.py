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


QT_SPANISH = """<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS><TS version="2.1" language="es">
<context><name>QPlatformTheme</name>
<message><source>Save</source><translation>Guardar</translation></message>
<message><source>Cancel</source><translation>Cancelar</translation></message>
<message><source>Close</source><translation>Cerrar</translation></message>
</context></TS>
"""


@pytest.fixture
def qt_translations(tmp_path, monkeypatch):
    """A folder standing for Qt's translations, with a qtbase_es.qm of Qt's button words
    (this machine's QGIS has none); the plugin looks there."""
    from terrafusion_plugin.gui import translation

    folder = tmp_path / "qt-translations"
    folder.mkdir()
    source = folder / "qtbase_es.ts"
    source.write_text(QT_SPANISH, encoding="utf-8")
    lrelease = package_plugin.find_tool("lrelease", "lrelease-qt5")
    subprocess.run([lrelease, "-silent", str(source), "-qm", str(folder / "qtbase_es.qm")],
                   check=True)
    monkeypatch.setattr(translation, "qt_translations_dir", lambda: str(folder))
    return folder


def _cancel() -> str:
    return QCoreApplication.translate("QPlatformTheme", "Cancel")


@pytest.mark.parametrize("localized_plugin", ["es_ES"], indirect=True)
def test_qts_own_buttons_speak_spanish_with_the_plugin_and_stop_with_its_unload(
        qt_translations, localized_plugin):
    settings_dialog = localized_plugin.show_settings()
    box = settings_dialog.buttonBox
    assert box.button(box.StandardButton.Save).text() == "Guardar"
    assert box.button(box.StandardButton.Cancel).text() == "Cancelar"
    assert localized_plugin.translator.qt_translator is not None
    localized_plugin.unload()
    _flush_deletes()
    assert _cancel() == "Cancel"
    localized_plugin.initGui()  # for the fixture's own unload


def test_qts_translation_is_left_to_qgis_when_qgis_installed_it(
        qgis_iface, qt_translations, translations, monkeypatch, no_autostart):
    from qgis.PyQt.QtCore import QTranslator

    monkeypatch.setattr(paths, "i18n_dir", lambda: translations)
    qgis_own = QTranslator()
    assert qgis_own.load(str(qt_translations / "qtbase_es.qm"))
    QCoreApplication.installTranslator(qgis_own)
    settings = QgsSettings()
    old = settings.value("locale/userLocale")
    settings.setValue("locale/userLocale", "es_ES")
    instance = classFactory(qgis_iface)
    try:
        instance.initGui()
        assert instance.translator.translator is not None
        assert instance.translator.qt_translator is None, "QGIS's stays the only one"
        instance.unload()
        assert _cancel() == "Cancelar", "the plugin removes only what it installed"
    finally:
        QCoreApplication.removeTranslator(qgis_own)
        _flush_deletes()
        settings.setValue("locale/userLocale", old or "en_US")


def test_a_missing_qt_translation_leaves_qts_words_in_english_and_the_plugin_in_spanish(
        qgis_iface, tmp_path, translations, monkeypatch, no_autostart):
    from terrafusion_plugin.gui import translation

    monkeypatch.setattr(paths, "i18n_dir", lambda: translations)
    monkeypatch.setattr(translation, "qt_translations_dir", lambda: str(tmp_path / "none"))
    settings = QgsSettings()
    old = settings.value("locale/userLocale")
    settings.setValue("locale/userLocale", "es_ES")
    instance = classFactory(qgis_iface)
    try:
        instance.initGui()
        settings_dialog = instance.show_settings()
        assert settings_dialog.testButton.text() == "Probar la conexión"
        assert instance.translator.qt_translator is None and _cancel() == "Cancel"
    finally:
        instance.unload()
        _flush_deletes()
        settings.setValue("locale/userLocale", old or "en_US")
