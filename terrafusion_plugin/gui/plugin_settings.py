"""The plugin's own preferences, kept in the QGIS profile (never in the agent's file).

The agent's configuration is the agent's (``config_file``); what lives here only
concerns this QGIS: whether to start the agent, which authentication configuration
fed the password file, the last export folder.
"""

from __future__ import annotations

from qgis.core import QgsSettings

PREFIX = "terrafusion"
START_AGENT = f"{PREFIX}/start_agent"
AUTH_CONFIG = f"{PREFIX}/central_authcfg"
EXPORT_FOLDER = f"{PREFIX}/export_folder"
EXPORT_ADD_TO_MAP = f"{PREFIX}/export_add_to_map"


def _bool(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def start_agent() -> bool:
    """Start the bundled agent when none answers (on unless the user turned it off)."""
    return _bool(QgsSettings().value(START_AGENT, True))


def set_start_agent(value: bool) -> None:
    QgsSettings().setValue(START_AGENT, bool(value))


def auth_config() -> str:
    return str(QgsSettings().value(AUTH_CONFIG, "") or "")


def set_auth_config(value: str) -> None:
    QgsSettings().setValue(AUTH_CONFIG, value or "")


def export_folder() -> str:
    return str(QgsSettings().value(EXPORT_FOLDER, "") or "")


def set_export_folder(value: str) -> None:
    QgsSettings().setValue(EXPORT_FOLDER, value)


def export_add_to_map() -> bool:
    return _bool(QgsSettings().value(EXPORT_ADD_TO_MAP, True))


def set_export_add_to_map(value: bool) -> None:
    QgsSettings().setValue(EXPORT_ADD_TO_MAP, bool(value))
