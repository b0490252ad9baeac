"""The TerraFusion dock: agent state, last and next sync, local copy, synced layers.

The widgets come from ``resources/ui/terrafusion_dock.ui``; every signal is wired here.
The dock never waits on the network or a database: both go through ``QgsTask``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

from qgis.core import QgsApplication, QgsProject
from qgis.gui import QgsDockWidget
from qgis.PyQt import uic
from qgis.PyQt.QtCore import QTimer

from . import paths
from .agent_status import (
    HEALTH_TIMEOUT,
    NOT_RUNNING,
    RUNNING,
    SCHEDULER_STOPPED,
    AgentStatus,
)
from .project_layers import GROUP_NAME, add_synced_layers
from .tasks import AgentStatusTask, SyncedLayersTask
from .translation import tr

FORM_CLASS, _ = uic.loadUiType(str(paths.ui_path("terrafusion_dock.ui")))

#: how often the state is asked for while the dock is on screen
REFRESH_INTERVAL_MS = 10_000
DASH = "–"


def local_time(iso: Optional[str]) -> str:
    """An ISO 8601 UTC time from the agent, shown in the workstation's time zone."""
    if not iso:
        return DASH
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


class TerraFusionDock(QgsDockWidget, FORM_CLASS):
    """Shows how the sync agent is doing and adds the synced layers to the project."""

    def __init__(self, parent=None, project: Optional[QgsProject] = None):
        super().__init__(parent)
        self.setupUi(self)
        # QGIS restores a dock's place and visibility by this name.
        self.setObjectName("TerraFusionDock")
        self._project = project
        self._status_task: Optional[AgentStatusTask] = None
        self._layers_task: Optional[SyncedLayersTask] = None
        #: the last state shown (for tests and later features)
        self.status: Optional[AgentStatus] = None

        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_INTERVAL_MS)
        self._timer.timeout.connect(self.refresh)
        self.refreshButton.clicked.connect(self.refresh)
        self.addLayersButton.clicked.connect(self.add_synced_layers)
        self.visibilityChanged.connect(self._visibility_changed)
        self.refreshButton.setIcon(QgsApplication.getThemeIcon("/mActionRefresh.svg"))
        self.addLayersButton.setIcon(QgsApplication.getThemeIcon("/mActionAddSpatiaLiteLayer.svg"))
        self._show_message("")

    # --- agent state ------------------------------------------------------------------

    def refresh(self) -> None:
        """Ask the agent for its state in the background (once at a time)."""
        if self._status_task is not None:
            return
        task = AgentStatusTask()
        task.statusReady.connect(self._status_ready)
        self._status_task = task
        QgsApplication.taskManager().addTask(task)

    def is_refreshing(self) -> bool:
        return self._status_task is not None

    def is_polling(self) -> bool:
        """Whether the state is being asked for every few seconds (while on screen)."""
        return self._timer.isActive()

    def _visibility_changed(self, visible: bool) -> None:
        # Poll only while someone can see the answer.
        if visible:
            self.refresh()
            self._timer.start()
        else:
            self._timer.stop()

    def _status_ready(self, status: AgentStatus) -> None:
        self._status_task = None
        self.status = status
        self.stateLabel.setText(self._state_text(status))
        last = next_ = DASH
        if status.running and status.health is not None:
            last = self._last_sync_text(status.health.get("last_sync"))
            next_ = local_time(status.health.get("next_sync")) \
                if status.health.get("next_sync") else tr("Not scheduled")
        self.lastSyncLabel.setText(last)
        self.nextSyncLabel.setText(next_)
        if status.local_path is None:
            self.localPathLabel.setText(DASH)
        elif status.local_exists:
            self.localPathLabel.setText(str(status.local_path))
        else:
            self.localPathLabel.setText(
                tr("{path} (not created yet)").format(path=status.local_path))
        error, message = self._status_message(status)
        self._show_message(message, error=error)

    @staticmethod
    def _state_text(status: AgentStatus) -> str:
        if status.state == NOT_RUNNING:
            return tr("Not running")
        if status.state != RUNNING:
            return tr("Unknown")
        health = status.health or {}
        version = health.get("version") or "?"
        return {
            "pass": tr("Running (agent {version})"),
            "warn": tr("Running with warnings (agent {version})"),
            "fail": tr("Running with failing checks (agent {version})"),
        }.get(health.get("status"), tr("Running (agent {version})")).format(version=version)

    @staticmethod
    def _last_sync_text(last: Optional[dict]) -> str:
        if not last:
            return tr("Never")
        result = last.get("result") or ""
        shown = {"success": tr("succeeded"), "failed": tr("failed"),
                 "running": tr("running")}.get(result, result)
        return tr("{when}, {result}, rows pulled: {pulled}").format(
            when=local_time(last.get("finished_at") or last.get("started_at")),
            result=shown, pulled=last.get("pulled") if last.get("pulled") is not None else DASH)

    @staticmethod
    def _status_message(status: AgentStatus) -> tuple[bool, str]:
        """(is an error, one sentence) to show under the state."""
        if status.error:
            return True, status.error
        if status.state == NOT_RUNNING:
            return True, tr("No agent answers at {address}; start it with "
                            "“terrafusion-agent run”.").format(address=status.address)
        if status.problem == SCHEDULER_STOPPED:
            return True, tr("The agent answers, but its sync schedule has stopped.")
        if status.problem == HEALTH_TIMEOUT:
            return True, tr("The agent answers, but did not report its state in time.")
        for wanted in ("fail", "warn"):
            for name, results in (status.health or {}).get("checks", {}).items():
                for check in results:
                    if check.get("status") == wanted:
                        # the agent's own sentence, e.g. "The local copy has not been
                        # created yet."
                        return wanted == "fail", check.get("output") or name
        return False, ""

    # --- synced layers ----------------------------------------------------------------

    def add_synced_layers(self) -> None:
        """Read the local copy's tables in the background, then add them as layers."""
        if self._layers_task is not None:
            return
        self.addLayersButton.setEnabled(False)
        self._show_message(tr("Reading the local copy…"))
        task = SyncedLayersTask()
        task.layersReady.connect(self._layers_ready)
        task.failed.connect(self._layers_failed)
        self._layers_task = task
        QgsApplication.taskManager().addTask(task)

    def is_adding_layers(self) -> bool:
        return self._layers_task is not None

    def _layers_ready(self, entries: list) -> None:
        self._layers_task = None
        self.addLayersButton.setEnabled(True)
        project = self._project or QgsProject.instance()
        # The layers are created here, on the main thread, as QGIS requires.
        result = add_synced_layers(project, entries)
        if result.invalid:
            self._show_message(tr("QGIS could not open these tables of the local copy: "
                                  "{tables}.").format(tables=", ".join(result.invalid)),
                               error=True)
        elif result.added:
            self._show_message(tr("Layers added to the group “{group}”: {layers}.").format(
                group=GROUP_NAME, layers=", ".join(layer.name() for layer in result.added)))
        elif result.present:
            self._show_message(tr("The synced layers are already in the project."))
        else:
            self._show_message(tr("The local copy has no synced tables yet."))

    def _layers_failed(self, message: str) -> None:
        self._layers_task = None
        self.addLayersButton.setEnabled(True)
        self._show_message(message, error=True)

    # --- helpers ----------------------------------------------------------------------

    def _show_message(self, text: str, error: bool = False) -> None:
        self.messageLabel.setText(text)
        self.messageLabel.setVisible(bool(text))
        # red reads as an error on both light and dark themes
        self.messageLabel.setStyleSheet("color: #c62828;" if error else "")

    def message(self) -> str:
        return self.messageLabel.text()

    def teardown(self) -> None:
        """Stop polling and detach from running tasks before the dock is deleted."""
        self._timer.stop()
        for task, signals in (
            (self._status_task, ("statusReady",)),
            (self._layers_task, ("layersReady", "failed")),
        ):
            if task is None:
                continue
            try:
                for name in signals:
                    getattr(task, name).disconnect()
                task.cancel()
            except (RuntimeError, TypeError):
                pass  # the task already ended and QGIS deleted it
        self._status_task = self._layers_task = None
