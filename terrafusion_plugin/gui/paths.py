"""Where the plugin's files live, both in the plugin zip and in a source checkout.

In the zip, ``resources/`` and ``i18n/`` sit inside the plugin folder, next to
``metadata.txt``. In the repository they sit one level up, beside the plugin package,
so every lookup tries the plugin folder first and then its parent.
"""

from __future__ import annotations

from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parent.parent


def _data_dir(name: str) -> Path:
    for base in (PLUGIN_DIR, PLUGIN_DIR.parent):
        if (base / name).is_dir():
            return base / name
    return PLUGIN_DIR / name


def resources_dir() -> Path:
    return _data_dir("resources")


def icon_path(name: str) -> Path:
    """Path of an icon in ``resources/icons``."""
    return resources_dir() / "icons" / name


def ui_path(name: str) -> Path:
    """Path of a Designer file in ``resources/ui``."""
    return resources_dir() / "ui" / name


def style_path(table: str) -> Path:
    """The default QGIS style (``.qml``) of a synced table in ``resources/styles``."""
    return resources_dir() / "styles" / f"{table}.qml"


def i18n_dir() -> Path:
    """Folder of the compiled translations (``terrafusion_<locale>.qm``)."""
    return _data_dir("i18n")
