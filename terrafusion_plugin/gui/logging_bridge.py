"""Forward the agent's standard ``logging`` records to the QGIS message log."""

from __future__ import annotations

import logging
from typing import Optional

from qgis.core import Qgis, QgsMessageLog

LOGGER_NAME = "terrafusion"
TAG = "TerraFusion"


def _qgis_level(levelno: int):
    if levelno >= logging.ERROR:
        return Qgis.MessageLevel.Critical
    if levelno >= logging.WARNING:
        return Qgis.MessageLevel.Warning
    return Qgis.MessageLevel.Info


class QgsMessageLogHandler(logging.Handler):
    """A logging handler writing to the "TerraFusion" tab of the QGIS log panel."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from terrafusion_agent.api import redact

            # The agent's own formatters redact; this handler bypasses them, and a
            # connection string with a password must not end up on screen either.
            message = redact(self.format(record))
            QgsMessageLog.logMessage(message, TAG, _qgis_level(record.levelno),
                                     notifyUser=record.levelno >= logging.WARNING)
        except Exception:  # noqa: BLE001 - logging must never break the caller
            self.handleError(record)


class LogBridge:
    """Adds the handler to the ``terrafusion`` logger and takes it away again."""

    def __init__(self, level: int = logging.INFO):
        self.level = level
        self.handler: Optional[QgsMessageLogHandler] = None
        self._previous_level: Optional[int] = None

    def install(self) -> QgsMessageLogHandler:
        self.remove()
        logger = logging.getLogger(LOGGER_NAME)
        self.handler = QgsMessageLogHandler(self.level)
        self.handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        logger.addHandler(self.handler)
        if logger.level == logging.NOTSET:
            # Unset, the logger inherits the root's WARNING and the agent's progress
            # messages would never reach the log panel; restored on removal.
            self._previous_level = logger.level
            logger.setLevel(self.level)
        return self.handler

    def remove(self) -> None:
        logger = logging.getLogger(LOGGER_NAME)
        if self.handler is not None:
            logger.removeHandler(self.handler)
            self.handler.close()
            self.handler = None
        if self._previous_level is not None:
            logger.setLevel(self._previous_level)
            self._previous_level = None
