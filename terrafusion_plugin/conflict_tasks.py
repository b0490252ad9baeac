"""The Conflicts dialog's background work as ``QgsTask`` (see ``conflict_resolver``)."""

from __future__ import annotations

import logging
from typing import Optional

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from .translation import tr

log = logging.getLogger("terrafusion.plugin")


def _sentence(exc: BaseException) -> str:
    return str(exc).rstrip(".") or exc.__class__.__name__


class ConflictsLoadTask(QgsTask):
    """Reads the open conflicts of the local copy."""

    #: emitted on the main thread with (conflicts, {table: TableShape}, local copy path)
    loaded = pyqtSignal(list, dict, str)
    #: emitted on the main thread with one sentence
    failed = pyqtSignal(str)

    def __init__(self):
        super().__init__(tr("Reading the TerraFusion conflicts"), QgsTask.Flag.CanCancel)
        self.conflicts: Optional[list] = None
        self.shapes: dict = {}
        self.local_path: Optional[str] = None
        self.error: Optional[str] = None

    def run(self) -> bool:
        from terrafusion_agent import config as tf_config
        from terrafusion_agent.errors import TerraFusionError

        from .conflict_resolver import load_conflicts

        try:
            cfg = tf_config.load(None)
            self.conflicts, self.shapes = load_conflicts(cfg)
            self.local_path = str(cfg.local_path)
        except TerraFusionError as exc:
            self.error = str(exc)
            return False
        except Exception as exc:  # noqa: BLE001 - one sentence for the dialog
            log.error("Reading the conflicts failed.", exc_info=exc)
            self.error = tr("The conflicts could not be read: {reason}.").format(
                reason=_sentence(exc))
            return False
        return True

    def finished(self, result: bool) -> None:
        if result and self.conflicts is not None:
            self.loaded.emit(self.conflicts, self.shapes, self.local_path or "")
        else:
            self.failed.emit(self.error or tr("The conflicts could not be read: {reason}.")
                             .format(reason=tr("the task was cancelled")))


class ResolveTask(QgsTask):
    """Resolves conflicts, keeping the local or the central version."""

    #: emitted on the main thread with the ``Resolution``
    done = pyqtSignal(object)
    #: emitted on the main thread with one sentence
    failed = pyqtSignal(str)

    def __init__(self, ids: list, keep: str):
        super().__init__(tr("Resolving TerraFusion conflicts"))
        self.ids = list(ids)
        self.keep = keep
        self.resolution = None
        self.error: Optional[str] = None

    def run(self) -> bool:
        from terrafusion_agent import config as tf_config
        from terrafusion_agent.errors import TerraFusionError

        from .conflict_resolver import resolve_conflicts

        try:
            self.resolution = resolve_conflicts(tf_config.load(None), self.ids, self.keep)
        except TerraFusionError as exc:
            self.error = str(exc)
            return False
        except Exception as exc:  # noqa: BLE001 - one sentence for the dialog
            log.error("Resolving conflicts failed.", exc_info=exc)
            self.error = tr("The conflicts could not be resolved: {reason}.").format(
                reason=_sentence(exc))
            return False
        return True

    def finished(self, result: bool) -> None:
        if result and self.resolution is not None:
            self.done.emit(self.resolution)
        else:
            self.failed.emit(self.error or tr("The conflicts could not be resolved: {reason}.")
                             .format(reason=tr("the task was cancelled")))
