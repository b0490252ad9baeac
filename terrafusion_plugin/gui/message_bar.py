"""A message bar for the plugin's dialogs whose messages are read whole.

QGIS's own message bar shows a message on one line and a scroll arrow: a sentence with a
path in it ends up cut off in a dialog of ordinary width. Here each message is a label
that wraps onto as many lines as the dialog's width needs (and can be selected, so that a
path or an error can be copied). Everything else is QGIS's bar: levels, colours, icons,
the close button and the stack of messages.
"""

from __future__ import annotations

import html

from qgis.core import Qgis
from qgis.gui import QgsMessageBar, QgsMessageBarItem
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QLabel, QSizePolicy


def message_label(title: str, text: str) -> QLabel:
    """``title: text`` in bold and plain, wrapping, selectable."""
    body = html.escape(text, quote=False).replace("\n", "<br>")
    label = QLabel(f"<b>{html.escape(title, quote=False)}:</b> {body}" if title else body)
    label.setTextFormat(Qt.TextFormat.RichText)
    label.setWordWrap(True)
    label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class WrappedMessage(QgsMessageBarItem):
    """A message of the bar shown as a wrapping label; ``title()`` and ``text()`` are
    its words, as for QGIS's own messages."""

    def __init__(self, title: str, text: str, level=Qgis.MessageLevel.Info,
                 duration: int = 0, parent=None):
        self.label = message_label(title, text)
        super().__init__(self.label, level, duration, parent)
        self._title, self._text = title, text

    def title(self) -> str:
        return self._title

    def text(self) -> str:
        return self._text


class MessageBar(QgsMessageBar):
    """QGIS's message bar, its messages wrapped instead of cut off."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Minimum, QSizePolicy.Policy.Fixed)

    def pushMessage(self, title: str, text: str, level=Qgis.MessageLevel.Info,  # noqa: N802
                    duration: int = 0) -> None:
        """Show ``title: text`` at ``level`` (``duration`` seconds; 0: until closed)."""
        self.pushItem(WrappedMessage(title, text, level, duration))

    def createMessage(self, title: str, text: str) -> WrappedMessage:  # noqa: N802
        """A message to add buttons to, then show with ``pushWidget(message, level)``."""
        return WrappedMessage(title, text)
