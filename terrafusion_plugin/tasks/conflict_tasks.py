"""The Conflicts dialog's background work as ``QgsTask`` (see ``conflict_resolver``)."""

from __future__ import annotations

from typing import Optional

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ..gui.translation import tr
from .background import BackgroundTask


class ConflictsLoadTask(BackgroundTask):
    """Reads the open conflicts of the local copy."""

    #: emitted on the main thread with (conflicts, {table: TableShape}, local copy path)
    loaded = pyqtSignal(list, dict, str)
    #: emitted on the main thread with one sentence
    failed = pyqtSignal(str)
    #: emitted on the main thread, instead of ``loaded``, with the path of a local copy
    #: that the first sync has not made yet (no conflicts then, and nothing wrong)
    noLocalCopy = pyqtSignal(str)  # noqa: N815 - Qt naming

    failure_log = "Reading the conflicts failed."

    def __init__(self):
        super().__init__(tr("Reading the TerraFusion conflicts"), QgsTask.Flag.CanCancel)

    def work(self) -> tuple:
        from terrafusion_agent import api

        cfg = api.load_config()
        if not cfg.local_path.exists():
            return (str(cfg.local_path),)
        conflicts, shapes = api.open_conflicts(cfg)
        return conflicts, shapes, str(cfg.local_path)

    def succeeded(self, loaded: tuple) -> None:
        if len(loaded) == 1:
            self.noLocalCopy.emit(loaded[0])
        else:
            self.loaded.emit(*loaded)

    def failure(self) -> str:
        return tr("The conflicts could not be read: {reason}.")


class ResolveTask(BackgroundTask):
    """Resolves conflicts, keeping the local or the central version, or one conflict with
    a per-column ``merge`` ({column: "local", "central" or {"value": ...}})."""

    #: emitted on the main thread with the ``Resolution``
    done = pyqtSignal(object)
    #: emitted on the main thread with one sentence
    failed = pyqtSignal(str)

    failure_log = "Resolving conflicts failed."

    def __init__(self, ids: list, keep: Optional[str] = None, merge: Optional[dict] = None):
        super().__init__(tr("Resolving TerraFusion conflicts"))
        self.ids = list(ids)
        self.keep = keep
        self.merge = merge

    def work(self):
        from terrafusion_agent import api

        return api.resolve_conflicts(api.load_config(), self.ids, self.keep, self.merge)

    def succeeded(self, resolution) -> None:
        self.done.emit(resolution)

    def failure(self) -> str:
        return tr("The conflicts could not be resolved: {reason}.")
