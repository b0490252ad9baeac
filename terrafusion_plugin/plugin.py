"""The plugin object QGIS talks to: ``initGui`` and ``initProcessing`` add everything,
``unload`` takes every piece away again."""

from __future__ import annotations

from typing import Callable, Optional

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon

try:  # QAction moved from QtWidgets (Qt5) to QtGui (Qt6)
    from qgis.PyQt.QtGui import QAction
except ImportError:  # pragma: no cover - depends on the Qt version
    from qgis.PyQt.QtWidgets import QAction
from qgis.PyQt.QtWidgets import QToolBar

from .gui import paths
from .gui.logging_bridge import LogBridge
from .gui.translation import PluginTranslator, tr

#: the entry under QGIS's Database menu (a product name: not translated)
MENU = "TerraFusion"


def _icon(name: str) -> QIcon:
    if name.startswith("/"):
        return QgsApplication.getThemeIcon(name)
    return QIcon(str(paths.icon_path(name)))


class TerraFusionPlugin:
    """TerraFusion for QGIS: dock, dialogs, their actions and the Processing provider."""

    def __init__(self, iface):
        self.iface = iface
        self.translator = PluginTranslator()
        self.log_bridge = LogBridge()
        self.provider = None
        self.dock = None
        self.action: Optional[QAction] = None  # the panel's toggle (kept for compatibility)
        self.actions: dict[str, QAction] = {}
        self.toolbar: Optional[QToolBar] = None
        self.dialogs: dict = {}
        self.history_panel = None

    # --- Processing -------------------------------------------------------------------------

    def initProcessing(self) -> None:  # noqa: N802 - QGIS API
        """Register the ``terrafusion`` provider (also without a GUI, in qgis_process)."""
        if self.translator.translator is None:
            # qgis_process calls only this: the algorithms' texts need the translator too.
            self.translator.install()
        if self.provider is not None:
            return
        from .processing.provider import TerraFusionProvider

        self.provider = TerraFusionProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    # --- GUI --------------------------------------------------------------------------------

    def initGui(self) -> None:  # noqa: N802 - QGIS API
        # The translator first: the widgets below read their texts as they are built.
        self.translator.install()
        self.log_bridge.install()
        self.initProcessing()

        from .gui.terrafusion_dock import TerraFusionDock

        main_window = self.iface.mainWindow()
        self.dock = TerraFusionDock(main_window)
        self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)

        self.action = self._add_action("panel", "terrafusion.svg", tr("TerraFusion Panel"),
                                       tr("Show or hide the TerraFusion panel"), None,
                                       "TerraFusionDockAction")
        # checkable, and its check mark follows the dock's visibility
        self.dock.setToggleVisibilityAction(self.action)
        self._add_action("sync", "sync.svg", tr("Sync Now"),
                         tr("Pull the central changes and push your edits now"), self.sync_now,
                         "TerraFusionSyncAction")
        self._add_action("export", "export.svg", tr("Export…"),
                         tr("Export a synced table or a layer of the project to a file"),
                         self.show_export, "TerraFusionExportAction")
        self._add_action("conflicts", "conflicts.svg", tr("Conflicts…"),
                         tr("Compare and resolve the rows changed on both sides"),
                         self.show_conflicts, "TerraFusionConflictsAction")
        self._add_action("history", "history.svg", tr("Feature History…"),
                         tr("A feature's changes as the central database recorded them; "
                            "restore one of its versions"), self.show_history,
                         "TerraFusionHistoryAction")
        self._add_action("settings", "/mActionOptions.svg", tr("Settings…"),
                         tr("Central database, schedule, conflict policies and API port of "
                            "the agent"), self.show_settings, "TerraFusionSettingsAction")

        self.toolbar = QToolBar(tr("TerraFusion Toolbar"), main_window)
        self.toolbar.setObjectName("TerraFusionToolbar")
        for key in ("panel", "sync", "export", "conflicts", "history"):
            self.toolbar.addAction(self.actions[key])
        self.iface.addToolBar(self.toolbar)
        for action in self.actions.values():
            self.iface.addPluginToDatabaseMenu(MENU, action)

        self.dock.exportRequested.connect(self.show_export)
        self.dock.conflictsRequested.connect(self.show_conflicts)
        self.dock.pendingRequested.connect(self.show_pending)
        self.dock.settingsRequested.connect(self.show_settings)
        self.dock.historyRequested.connect(self.show_history)

    def _add_action(self, key: str, icon: str, text: str, tip: str,
                    slot: Optional[Callable], name: str) -> QAction:
        action = QAction(_icon(icon), text, self.iface.mainWindow())
        action.setObjectName(name)
        action.setToolTip(tip)
        action.setStatusTip(tip)
        if slot is not None:
            action.triggered.connect(slot)
        self.actions[key] = action
        return action

    # --- what the actions do ------------------------------------------------------------------

    def sync_now(self) -> None:
        """Show the panel (where the progress is) and sync."""
        if self.dock is None:
            return
        self.dock.setUserVisible(True)
        self.dock.sync_now()

    def _dialog(self, key: str):
        dialog = self.dialogs.get(key)
        if dialog is None:
            parent = self.iface.mainWindow()
            if key == "export":
                from .gui.export_dialog import ExportDialog

                dialog = ExportDialog(self.iface, parent)
            elif key == "pending":
                from .gui.pending_dialog import PendingDialog

                dialog = PendingDialog(self.iface, parent)
                dialog.editsDiscarded.connect(lambda _n: self.dock.refresh())
            elif key == "conflicts":
                from .gui.conflicts_dialog import ConflictsDialog

                dialog = ConflictsDialog(self.iface, parent)
                dialog.conflictsResolved.connect(lambda _ids: self.dock.refresh())
                dialog.syncRequested.connect(self.sync_now)
            else:
                from .gui.settings_dialog import SettingsDialog

                dialog = SettingsDialog(self.iface, parent)
                dialog.saved.connect(lambda _cfg: self.dock.refresh())
            self.dialogs[key] = dialog
        return dialog

    def _show(self, key: str):
        dialog = self._dialog(key)
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()
        return dialog

    def show_export(self):
        return self._show("export")

    def show_conflicts(self):
        return self._show("conflicts")

    def show_pending(self):
        return self._show("pending")

    def show_settings(self):
        dialog = self._dialog("settings")
        if not dialog.isVisible():
            dialog.load()  # the file may have changed since the dialog was last open
        return self._show("settings")

    def show_history(self):
        """Show the Feature history panel (made on first use, docked on the right)."""
        if self.history_panel is None:
            from .gui.history_panel import HistoryPanel

            self.history_panel = HistoryPanel(self.iface, self.iface.mainWindow())
            # beside the TerraFusion dock, in the same place: stacked under it, both would
            # be cramped at QGIS's default window size (QGIS shows a dock as it adds it, and
            # the window would first grow to fit both)
            area = Qt.DockWidgetArea.RightDockWidgetArea
            window = self.iface.mainWindow()
            size = window.size()
            if hasattr(self.iface, "addTabifiedDockWidget"):  # QGIS 3.14 and later
                self.iface.addTabifiedDockWidget(area, self.history_panel,
                                                 [self.dock.objectName()], True)
            else:
                self.iface.addDockWidget(area, self.history_panel)
            if not window.isMaximized() and not window.isFullScreen():
                window.resize(size)  # the size the analyst chose, now that both fit
            # a restored version is a pending edit: the dock's count shows it
            self.history_panel.restored.connect(lambda _result: self.dock.refresh())
        self.history_panel.setUserVisible(True)
        self.history_panel.raise_()
        return self.history_panel

    # --- unload -------------------------------------------------------------------------------

    def unload(self) -> None:
        """Remove every action, menu entry, toolbar, dock, dialog, provider, log handler
        and translator this plugin added."""
        for dialog in self.dialogs.values():
            dialog.teardown()
            dialog.close()
            dialog.deleteLater()
        self.dialogs = {}
        if self.iface is not None:
            for action in self.actions.values():
                self.iface.removePluginDatabaseMenu(MENU, action)
            if self.toolbar is not None:
                self.iface.mainWindow().removeToolBar(self.toolbar)
                self.toolbar.deleteLater()
                self.toolbar = None
            if self.history_panel is not None:
                self.history_panel.teardown()
                self.iface.removeDockWidget(self.history_panel)
                self.history_panel.deleteLater()
                self.history_panel = None
            if self.dock is not None:
                self.dock.teardown()
                self.iface.removeDockWidget(self.dock)
                self.dock.deleteLater()
                self.dock = None
        for action in self.actions.values():
            action.deleteLater()
        self.actions = {}
        self.action = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        self.log_bridge.remove()
        self.translator.remove()
