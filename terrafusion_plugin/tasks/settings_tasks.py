"""Background work of the Settings dialog as ``QgsTask``."""

from __future__ import annotations

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ..gui.translation import tr
from .background import BackgroundTask


class ReloadConfigTask(BackgroundTask):
    """Asks the running agent to re-read its configuration file after a save."""

    #: emitted on the main thread with the agent's answer (``changed``,
    #: ``restart_required``), or None when no agent is running
    answered = pyqtSignal(object)
    #: emitted on the main thread with one sentence for the user
    failed = pyqtSignal(str)

    failure_log = "Asking the agent to re-read its configuration failed."

    def __init__(self, cfg):
        """``cfg`` is the configuration the running agent was started with: it says where
        that agent listens, which a save may just have changed."""
        super().__init__(tr("Applying the TerraFusion settings"), QgsTask.Flag.CanCancel)
        self.cfg = cfg

    def user_errors(self) -> tuple:
        from terrafusion_agent import api
        from terrafusion_agent.errors import TerraFusionError

        # ApiError carries the agent's own sentence (a refused file, an unreadable token)
        return (TerraFusionError, api.ApiError)

    def work(self) -> dict:
        from terrafusion_agent import api

        # wrapped: None is the agent's absence here, not a failure of the task
        return {"answer": api.reload_agent_config(self.cfg)}

    def succeeded(self, value: dict) -> None:
        self.answered.emit(value["answer"])

    def failure(self) -> str:
        return tr("the request failed ({reason}).")
