"""The ``terrafusion`` Processing provider."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from ..gui import paths
from ..gui.translation import tr


class TerraFusionProvider(QgsProcessingProvider):
    """Provides ``terrafusion:export`` and ``terrafusion:sync``."""

    def id(self) -> str:  # noqa: A003 - QGIS API
        return "terrafusion"

    def name(self) -> str:
        return "TerraFusion"  # a product name: not translated

    def longName(self) -> str:  # noqa: N802 - QGIS API
        return tr("TerraFusion: sync and export the county's local copy")

    def icon(self) -> QIcon:
        return QIcon(str(paths.icon_path("terrafusion.svg")))

    def svgIconPath(self) -> str:  # noqa: N802 - QGIS API
        return str(paths.icon_path("terrafusion.svg"))

    def loadAlgorithms(self) -> None:  # noqa: N802 - QGIS API
        from .export_algorithm import ExportAlgorithm
        from .sync_algorithm import SyncAlgorithm

        self.addAlgorithm(ExportAlgorithm())
        self.addAlgorithm(SyncAlgorithm())
