"""What every background task of the plugin shares: ``BackgroundTask``.

``run()`` calls the task's ``work()`` in the task's thread and never touches a widget. An
error that already says what went wrong in one sentence for the user (an agent
``TerraFusionError``) is kept in ``error``; anything else is kept in ``exception`` and
logged with its traceback by ``finished()``, which runs on the main thread and hands the
result, or one sentence, to the task's signals.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from qgis.core import QgsTask

from ..gui.translation import tr

log = logging.getLogger("terrafusion.plugin")


def reason(exc: Optional[BaseException]) -> str:
    """The ``{reason}`` of a failure sentence: ``exc`` in words, or a cancel without one."""
    if exc is None:
        return tr("the task was cancelled")
    return str(exc).rstrip(".") or exc.__class__.__name__


class BackgroundTask(QgsTask):
    """One piece of work off the main thread, reported through the subclass's signals.

    A subclass passes its title, implements ``work`` (the result; None when it stops
    without one, having said why in ``error`` or not at all for a cancel), ``succeeded``
    (emit the result) and ``failure`` (the sentence for an unexpected error, with a
    ``{reason}``), and declares ``failed = pyqtSignal(str)`` or overrides ``report``.
    """

    #: logged above the traceback of an unexpected exception
    failure_log = "The task failed."

    def __init__(self, description: str, flags=None):
        # no flags: QGIS's default, as for a plain QgsTask(description)
        if flags is None:
            super().__init__(description)
        else:
            super().__init__(description, flags)
        self.value: Any = None
        self.error: Optional[str] = None
        self.exception: Optional[BaseException] = None

    def work(self) -> Any:
        """The task's work, in the task's thread."""
        raise NotImplementedError

    def succeeded(self, value: Any) -> None:
        """Emit ``value``, what ``work`` returned (main thread)."""
        raise NotImplementedError

    def failure(self) -> str:
        """The sentence for an unexpected error, with ``{reason}`` in it."""
        raise NotImplementedError

    def user_errors(self) -> tuple:
        """The exceptions whose ``str()`` is already one sentence for the user."""
        from terrafusion_agent.errors import TerraFusionError

        return (TerraFusionError,)

    def report(self, sentence: str) -> None:
        """Say why the task ended without a result (main thread)."""
        self.failed.emit(sentence)

    def run(self) -> bool:
        try:
            self.value = self.work()
        except self.user_errors() as exc:
            self.error = str(exc)
            return False
        except Exception as exc:  # noqa: BLE001 - surfaced in finished()
            self.exception = exc
            return False
        return self.value is not None

    def finished(self, result: bool) -> None:
        if result and self.value is not None:
            self.succeeded(self.value)
            return
        if self.exception is not None:
            log.error(self.failure_log, exc_info=self.exception)
        self.report(self.error or self.failure().format(reason=reason(self.exception)))
