"""Background work of the dock as ``QgsTask``: ``run()`` never touches a widget, and the
result reaches the GUI through a signal emitted from ``finished()`` on the main thread."""

from __future__ import annotations

import logging
from typing import Optional

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from .agent_status import UNKNOWN, AgentStatus, check_agent
from .translation import tr

log = logging.getLogger("terrafusion.plugin")


def _flags():
    flags = QgsTask.Flag.CanCancel
    # A check every few seconds must not flash in the status bar's task list; the flag
    # exists from QGIS 3.26 on.
    hidden = getattr(QgsTask.Flag, "Hidden", None)
    return flags | hidden if hidden is not None else flags


class AgentStatusTask(QgsTask):
    """Reads the configuration and asks the agent for its health."""

    #: emitted on the main thread with an :class:`AgentStatus`
    statusReady = pyqtSignal(object)  # noqa: N815 - Qt naming

    def __init__(self):
        super().__init__(tr("Checking the TerraFusion agent"), _flags())
        self.status: Optional[AgentStatus] = None
        self.exception: Optional[BaseException] = None

    def run(self) -> bool:
        try:
            self.status = check_agent()
        except Exception as exc:  # noqa: BLE001 - surfaced in finished()
            self.exception = exc
            return False
        return True

    def finished(self, result: bool) -> None:
        if not result or self.status is None:
            if self.exception is not None:
                log.error("The agent status check failed.", exc_info=self.exception)
            self.status = AgentStatus(
                state=UNKNOWN,
                error=tr("The agent status could not be checked: {reason}.").format(
                    reason=_reason(self.exception)))
        self.statusReady.emit(self.status)


class SyncedLayersTask(QgsTask):
    """Lists the tables of the local copy that can be added as layers."""

    #: emitted on the main thread with the list from ``synced_layers`` (may be empty)
    layersReady = pyqtSignal(list)  # noqa: N815
    #: emitted on the main thread with one sentence for the user
    failed = pyqtSignal(str)

    def __init__(self):
        super().__init__(tr("Reading the TerraFusion local copy"), QgsTask.Flag.CanCancel)
        self.layers: Optional[list] = None
        self.error: Optional[str] = None
        self.exception: Optional[BaseException] = None

    def run(self) -> bool:
        from terrafusion_agent import config as tf_config
        from terrafusion_agent.errors import TerraFusionError
        from terrafusion_agent.layers import synced_layers

        try:
            self.layers = synced_layers(tf_config.load(None))
        except TerraFusionError as exc:
            self.error = str(exc)  # already a sentence for the user
            return False
        except Exception as exc:  # noqa: BLE001 - surfaced in finished()
            self.exception = exc
            return False
        return True

    def finished(self, result: bool) -> None:
        if result and self.layers is not None:
            self.layersReady.emit(self.layers)
            return
        if self.exception is not None:
            log.error("Reading the local copy failed.", exc_info=self.exception)
        self.failed.emit(self.error or tr("The local copy could not be read: {reason}.").format(
            reason=_reason(self.exception)))


def _reason(exc: Optional[BaseException]) -> str:
    if exc is None:
        return tr("the task was cancelled")
    return str(exc).rstrip(".") or exc.__class__.__name__
