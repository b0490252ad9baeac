"""The plugin object QGIS talks to: ``initGui`` adds everything, ``unload`` takes it away."""

from __future__ import annotations

from typing import Optional

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon

try:  # QAction moved from QtWidgets (Qt5) to QtGui (Qt6)
    from qgis.PyQt.QtGui import QAction
except ImportError:  # pragma: no cover - depends on the Qt version
    from qgis.PyQt.QtWidgets import QAction
from qgis.PyQt.QtWidgets import QToolBar

from . import paths
from .logging_bridge import LogBridge
from .translation import PluginTranslator, tr

#: the entry under QGIS's Database menu (a product name: not translated)
MENU = "TerraFusion"


class TerraFusionPlugin:
    """TerraFusion for QGIS: the dock, its toolbar button and menu entry."""

    def __init__(self, iface):
        self.iface = iface
        self.translator = PluginTranslator()
        self.log_bridge = LogBridge()
        self.dock = None
        self.action: Optional[QAction] = None
        self.toolbar: Optional[QToolBar] = None

    def initGui(self) -> None:  # noqa: N802 - QGIS API
        # The translator first: the widgets below read their texts as they are built.
        self.translator.install()
        self.log_bridge.install()

        from .terrafusion_dock import TerraFusionDock

        main_window = self.iface.mainWindow()
        self.dock = TerraFusionDock(main_window)
        self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)

        self.action = QAction(QIcon(str(paths.icon_path("terrafusion.svg"))),
                              tr("TerraFusion Panel"), main_window)
        self.action.setObjectName("TerraFusionDockAction")
        self.action.setToolTip(tr("Show or hide the TerraFusion panel"))
        # checkable, and its check mark follows the dock's visibility
        self.dock.setToggleVisibilityAction(self.action)

        self.toolbar = QToolBar(tr("TerraFusion Toolbar"), main_window)
        self.toolbar.setObjectName("TerraFusionToolbar")
        self.toolbar.addAction(self.action)
        self.iface.addToolBar(self.toolbar)
        self.iface.addPluginToDatabaseMenu(MENU, self.action)

    def unload(self) -> None:
        """Remove every action, menu entry, toolbar, dock, log handler and translator."""
        main_window = self.iface.mainWindow()
        if self.action is not None:
            self.iface.removePluginDatabaseMenu(MENU, self.action)
        if self.toolbar is not None:
            main_window.removeToolBar(self.toolbar)
            self.toolbar.deleteLater()
            self.toolbar = None
        if self.dock is not None:
            self.dock.teardown()
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        if self.action is not None:
            self.action.deleteLater()
            self.action = None
        self.log_bridge.remove()
        self.translator.remove()
