"""The Pending edits dialog's background work as ``QgsTask``."""

from __future__ import annotations

from typing import Optional

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ..gui.translation import tr
from .background import BackgroundTask


class PendingLoadTask(BackgroundTask):
    """Reads the local edits not yet pushed, with where each one is on the map."""

    #: emitted on the main thread with (edits, {table: (geometry column, SRID)}, the
    #: local copy's path)
    loaded = pyqtSignal(list, dict, str)
    #: emitted on the main thread with one sentence
    failed = pyqtSignal(str)

    failure_log = "Reading the pending edits failed."

    def __init__(self):
        super().__init__(tr("Reading the TerraFusion pending edits"), QgsTask.Flag.CanCancel)

    def work(self) -> tuple:
        from terrafusion_agent import api

        cfg = api.load_config()
        edits = api.pending_edits(cfg, with_geometry=True)
        geometries = {info.name: (info.geometry.column, info.geometry.srid)
                      for info in api.synced_tables(cfg) if info.geometry is not None}
        return edits, geometries, str(cfg.local_path)

    def succeeded(self, loaded: tuple) -> None:
        self.loaded.emit(*loaded)

    def failure(self) -> str:
        return tr("The pending edits could not be read: {reason}.")


class DiscardTask(BackgroundTask):
    """Puts rows back as they were last synced: the given (table, key) pairs, or every
    edit not waiting in a conflict."""

    #: emitted on the main thread with the answer (``discarded``, ``via``, the local
    #: copy's path in ``local_path``)
    done = pyqtSignal(object)
    #: emitted on the main thread with one sentence
    failed = pyqtSignal(str)

    failure_log = "Discarding pending edits failed."

    def __init__(self, edits: Optional[list]):
        super().__init__(tr("Discarding TerraFusion pending edits"))
        self.edits = None if edits is None else list(edits)

    def work(self) -> dict:
        from terrafusion_agent import api

        cfg = api.load_config()
        result = api.discard_pending(cfg, self.edits)
        # which copy changed: its layers in the project are re-read afterwards
        result["local_path"] = str(cfg.local_path)
        return result

    def succeeded(self, result: dict) -> None:
        self.done.emit(result)

    def failure(self) -> str:
        return tr("The edits could not be discarded: {reason}.")
