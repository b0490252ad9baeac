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


class SyncTask(QgsTask):
    """One "Sync now": through the running agent, or in this process when none runs.

    The work itself is :func:`sync_runner.sync_now`, shared with ``terrafusion:sync``.
    """

    #: the table being synced (emitted from the worker; Qt queues it to the main thread)
    tableChanged = pyqtSignal(str)  # noqa: N815
    #: True while the agent syncs and no fraction is known (the bar shows "busy")
    busyChanged = pyqtSignal(bool)  # noqa: N815
    #: emitted on the main thread with the run's summary
    synced = pyqtSignal(dict)
    #: emitted on the main thread with one sentence and whether it was a cancel
    failed = pyqtSignal(str, bool)

    def __init__(self):
        super().__init__(tr("TerraFusion sync"), QgsTask.Flag.CanCancel)
        self.summary: Optional[dict] = None
        self.error: Optional[str] = None
        self.cancelled_by_user = False
        self.exception: Optional[BaseException] = None
        self._table: Optional[str] = None
        self._busy: Optional[bool] = None

    def _progress(self, fraction: Optional[float], table: str) -> None:
        busy = fraction is None
        if busy != self._busy:
            self._busy = busy
            self.busyChanged.emit(busy)
        if fraction is not None:
            self.setProgress(100.0 * fraction)
        if table != self._table:
            self._table = table
            self.tableChanged.emit(table)

    def run(self) -> bool:
        from terrafusion_agent import config as tf_config
        from terrafusion_agent.errors import TerraFusionError

        from .sync_runner import SyncFailed, sync_now

        try:
            cfg = tf_config.load(None)
            self.summary = sync_now(cfg, progress=self._progress, cancelled=self.isCanceled,
                                    trigger="plugin")
            # which copy changed: its layers in the project are re-read afterwards
            self.summary["local_path"] = str(cfg.local_path)
        except SyncFailed as exc:
            self.error, self.cancelled_by_user = (str(exc) or None), exc.cancelled
            return False
        except TerraFusionError as exc:
            self.error = str(exc)
            return False
        except Exception as exc:  # noqa: BLE001 - surfaced in finished()
            self.exception = exc
            return False
        return True

    def finished(self, result: bool) -> None:
        if result and self.summary is not None:
            self.synced.emit(self.summary)
            return
        if self.exception is not None:
            log.error("The sync failed.", exc_info=self.exception)
        cancelled = self.cancelled_by_user or (self.error is None and self.exception is None)
        if cancelled and self.error is None:
            message = tr("The sync was cancelled.")
        else:
            message = self.error or tr("The sync failed: {reason}.").format(
                reason=_reason(self.exception))
        self.failed.emit(message, cancelled)


class StartAgentTask(QgsTask):
    """Starts the bundled agent as a detached process (``python -m terrafusion_agent run``)."""

    #: emitted on the main thread with the new process id
    agentStarted = pyqtSignal(int)  # noqa: N815
    #: emitted on the main thread with one sentence
    failed = pyqtSignal(str)

    #: every agent this QGIS session started (tests and the bench stop them again)
    launched: list = []

    def __init__(self):
        super().__init__(tr("Starting the TerraFusion agent"))
        self.pid: Optional[int] = None
        self.error: Optional[str] = None
        self.exception: Optional[BaseException] = None

    def run(self) -> bool:
        from terrafusion_agent import config as tf_config
        from terrafusion_agent.errors import TerraFusionError

        from .agent_launcher import LaunchError, start_agent

        try:
            path, named = tf_config.resolve_path(None)
            cfg = tf_config.load(None)  # a bad file is said here, not by a dying agent
            launched = start_agent(path if (named or path.exists()) else None,
                                   cfg.log_dir / "agent-start.log")
        except (LaunchError, TerraFusionError) as exc:
            self.error = str(exc)
            return False
        except Exception as exc:  # noqa: BLE001 - surfaced in finished()
            self.exception = exc
            return False
        StartAgentTask.launched.append(launched)
        self.pid = launched.pid
        return True

    def finished(self, result: bool) -> None:
        if result and self.pid is not None:
            log.info("started the TerraFusion agent (process %d)", self.pid)
            self.agentStarted.emit(self.pid)
            return
        if self.exception is not None:
            log.error("Starting the agent failed.", exc_info=self.exception)
        self.failed.emit(self.error or tr("The agent could not be started: {reason}.").format(
            reason=_reason(self.exception)))
