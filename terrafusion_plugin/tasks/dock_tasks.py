"""Background work of the dock as ``QgsTask``: ``run()`` never touches a widget, and the
result reaches the GUI through a signal emitted from ``finished()`` on the main thread."""

from __future__ import annotations

import logging
from typing import Optional

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal
from terrafusion_agent.api import UNKNOWN, AgentStatus

from ..gui.translation import tr
from .background import BackgroundTask

log = logging.getLogger("terrafusion.plugin")


def _flags():
    flags = QgsTask.Flag.CanCancel
    # A check every few seconds must not flash in the status bar's task list; the flag
    # exists from QGIS 3.26 on.
    hidden = getattr(QgsTask.Flag, "Hidden", None)
    return flags | hidden if hidden is not None else flags


class AgentStatusTask(BackgroundTask):
    """Reads the configuration and asks the agent for its health."""

    #: emitted on the main thread with an :class:`AgentStatus`
    statusReady = pyqtSignal(object)  # noqa: N815 - Qt naming

    failure_log = "The agent status check failed."

    def __init__(self):
        super().__init__(tr("Checking the TerraFusion agent"), _flags())

    def user_errors(self) -> tuple:
        return ()  # agent_status words the errors it expects into the status itself

    def work(self) -> AgentStatus:
        from terrafusion_agent import api

        return api.agent_status()

    def succeeded(self, status: AgentStatus) -> None:
        self.statusReady.emit(status)

    def failure(self) -> str:
        return tr("The agent status could not be checked: {reason}.")

    def report(self, sentence: str) -> None:
        self.statusReady.emit(AgentStatus(state=UNKNOWN, error=sentence))


class SyncedLayersTask(BackgroundTask):
    """Lists the tables of the local copy that can be added as layers."""

    #: emitted on the main thread with the list from ``synced_layers`` (may be empty)
    layersReady = pyqtSignal(list)  # noqa: N815
    #: emitted on the main thread with one sentence for the user
    failed = pyqtSignal(str)

    failure_log = "Reading the local copy failed."

    def __init__(self):
        super().__init__(tr("Reading the TerraFusion local copy"), QgsTask.Flag.CanCancel)

    def work(self) -> list:
        from terrafusion_agent import api

        return api.synced_layers(api.load_config())

    def succeeded(self, layers: list) -> None:
        self.layersReady.emit(layers)

    def failure(self) -> str:
        return tr("The local copy could not be read: {reason}.")


class SyncTask(BackgroundTask):
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

    failure_log = "The sync failed."

    def __init__(self):
        super().__init__(tr("TerraFusion sync"), QgsTask.Flag.CanCancel)
        self.cancelled_by_user = False
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

    def work(self) -> Optional[dict]:
        from terrafusion_agent import api

        try:
            cfg = api.load_config()
            summary = api.sync_now(cfg, progress=self._progress, cancelled=self.isCanceled,
                               trigger="plugin")
        except api.SyncFailed as exc:
            self.error, self.cancelled_by_user = (str(exc) or None), exc.cancelled
            return None
        # which copy changed: its layers in the project are re-read afterwards
        summary["local_path"] = str(cfg.local_path)
        return summary

    def succeeded(self, summary: dict) -> None:
        self.synced.emit(summary)

    def failure(self) -> str:
        return tr("The sync failed: {reason}.")

    def report(self, sentence: str) -> None:
        cancelled = self.cancelled_by_user or (self.error is None and self.exception is None)
        if cancelled and self.error is None:
            sentence = tr("The sync was cancelled.")
        self.failed.emit(sentence, cancelled)


class StartAgentTask(BackgroundTask):
    """Starts the bundled agent as a detached process (``python -m terrafusion_agent run``)."""

    #: emitted on the main thread with the new process id
    agentStarted = pyqtSignal(int)  # noqa: N815
    #: emitted on the main thread with one sentence
    failed = pyqtSignal(str)

    #: every agent this QGIS session started (tests and the bench stop them again)
    launched: list = []

    failure_log = "Starting the agent failed."

    def __init__(self):
        super().__init__(tr("Starting the TerraFusion agent"))

    def user_errors(self) -> tuple:
        from terrafusion_agent.api import LaunchError

        return (LaunchError, *super().user_errors())

    def work(self) -> int:
        from terrafusion_agent import api

        cfg = api.load_config()  # a bad file is said here, not by a dying agent
        launched = api.start_agent(cfg)
        StartAgentTask.launched.append(launched)
        return launched.pid

    def succeeded(self, pid: int) -> None:
        log.info("started the TerraFusion agent (process %d)", pid)
        self.agentStarted.emit(pid)

    def failure(self) -> str:
        return tr("The agent could not be started: {reason}.")
