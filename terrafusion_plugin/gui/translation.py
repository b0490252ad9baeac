"""Translation of the plugin's strings: the ``tr`` helper and the Qt translators.

All plugin strings share the context ``TerraFusion``, so they cannot collide with
another plugin's translation of the same English text. Qt's own words in the plugin's
dialogs (Save, Cancel, Close...) come from Qt's translation of its base module, which QGIS
usually installs; when it has not, the plugin installs it with its own, so that a dialog
never mixes two languages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from qgis.core import QgsSettings
from qgis.PyQt.QtCore import QCoreApplication, QLibraryInfo, QLocale, QTranslator

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


def qt_translations_dir() -> str:
    """The folder of Qt's own translations (``qtbase_es.qm``...)."""
    if hasattr(QLibraryInfo, "path"):  # Qt 6
        return QLibraryInfo.path(QLibraryInfo.LibraryPath.TranslationsPath)
    return QLibraryInfo.location(QLibraryInfo.LibraryLocation.TranslationsPath)


def qt_speaks_translated() -> bool:
    """Whether Qt's own words are translated already (QGIS installs Qt's translation for
    its language when it finds one)."""
    return QCoreApplication.translate("QPlatformTheme", "Cancel") != "Cancel"


class PluginTranslator:
    """Installs the plugin's translator (and, if QGIS has not, Qt's) into the
    application and removes them again."""

    def __init__(self):
        self.translator: Optional[QTranslator] = None
        self.path: Optional[Path] = None
        #: Qt's own translation, when the plugin had to install it
        self.qt_translator: Optional[QTranslator] = None

    def install(self, locale: Optional[str] = None) -> Optional[Path]:
        """Load and install the translation for ``locale`` (default: QGIS's); its path."""
        self.remove()
        locale = user_locale() if locale is None else locale
        path = translation_file(locale)
        if path is None:
            return None
        translator = QTranslator()
        if not translator.load(str(path)):
            return None
        QCoreApplication.installTranslator(translator)
        self.translator, self.path = translator, path
        self._install_qt(locale)
        return path

    def _install_qt(self, locale: str) -> None:
        """Qt's translation for ``locale``, unless Qt already speaks it; a missing file
        (a QGIS without Qt's translations) only leaves Qt's words in English."""
        if qt_speaks_translated():
            return
        translator = QTranslator()
        # "qtbase_es_ES" finds qtbase_es_ES.qm, else qtbase_es.qm
        if translator.load(f"qtbase_{locale}", qt_translations_dir()):
            QCoreApplication.installTranslator(translator)
            self.qt_translator = translator

    def remove(self) -> None:
        for translator in (self.translator, self.qt_translator):
            if translator is not None:
                QCoreApplication.removeTranslator(translator)
        self.translator = self.path = self.qt_translator = None
