"""What the plugin's dialogs share: a form from Qt Designer with a message bar above it."""

from __future__ import annotations

from qgis.PyQt.QtWidgets import QDialog

from .message_bar import MessageBar


class FormDialog(QDialog):
    """A dialog built from a Designer form (the ``FORM_CLASS`` a subclass mixes in, whose
    ``mainLayout`` takes the bar), named ``name`` so QGIS and the tests can find it."""

    def __init__(self, name: str, iface=None, parent=None):
        super().__init__(parent)
        self.setupUi(self)
        self.setObjectName(name)
        self.iface = iface
        self.bar = MessageBar(self)
        self.mainLayout.insertWidget(0, self.bar)
