"""Translation of the plugin's strings: the ``tr`` helper and the Qt translator.

All plugin strings share the context ``TerraFusion``, so they cannot collide with
another plugin's translation of the same English text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from qgis.core import QgsSettings
from qgis.PyQt.QtCore import QCoreApplication, QLocale, QTranslator

from . import paths

CONTEXT = "TerraFusion"


def tr(text: str) -> str:
    """``text`` translated into the user's QGIS language."""
    return QCoreApplication.translate(CONTEXT, text)


def user_locale() -> str:
    """The locale QGIS runs in, e.g. ``es_ES`` or ``es``."""
    value = QgsSettings().value("locale/userLocale", "")
    return str(value or QLocale().name())


def translation_file(locale: str, directory: Optional[Path] = None) -> Optional[Path]:
    """The ``.qm`` file for ``locale`` (``es_ES``, then ``es``), or None if there is none."""
    directory = paths.i18n_dir() if directory is None else directory
    candidates = [locale, locale.split("_")[0]] if locale else []
    for code in candidates:
        path = directory / f"terrafusion_{code}.qm"
        if path.is_file():
            return path
    return None


class PluginTranslator:
    """Installs the plugin's translator into the application and removes it again."""

    def __init__(self):
        self.translator: Optional[QTranslator] = None
        self.path: Optional[Path] = None

    def install(self, locale: Optional[str] = None) -> Optional[Path]:
        """Load and install the translation for ``locale`` (default: QGIS's); its path."""
        self.remove()
        path = translation_file(user_locale() if locale is None else locale)
        if path is None:
            return None
        translator = QTranslator()
        if not translator.load(str(path)):
            return None
        QCoreApplication.installTranslator(translator)
        self.translator, self.path = translator, path
        return path

    def remove(self) -> None:
        if self.translator is not None:
            QCoreApplication.removeTranslator(self.translator)
        self.translator = self.path = None
