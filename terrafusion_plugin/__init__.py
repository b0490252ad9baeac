"""TerraFusion for QGIS: the plugin's entry point.

QGIS imports this package at start-up, so it stays tiny: everything else, and the
bundled agent, is imported only when QGIS asks for the plugin.

The plugin zip (``scripts/package_plugin.py``) carries the agent in ``agent/`` and its
third-party dependencies in ``ext/``. Both are appended to ``sys.path``, never put in
front of it: QGIS and the other plugins keep the modules they load. Where one of them
already provides a package the agent needs, that copy is the one imported, so the
agent's requirements (its ``.dist-info`` in ``agent/``) are checked against it and a
copy that does not meet them is named in one sentence. A source checkout has neither
folder and uses whatever ``terrafusion_agent`` is installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parent
AGENT_DIR = PLUGIN_DIR / "agent"
EXT_DIR = PLUGIN_DIR / "ext"


def bundled_folders() -> list[str]:
    """The bundled folders that exist, in the order they go on a path: agent, ext."""
    return [str(folder) for folder in (AGENT_DIR, EXT_DIR) if folder.is_dir()]


#: where the last answer of the requirements check is kept, with what it depended on
CHECK_KEY = "terrafusion/bundle_check"


def use_bundled_packages() -> list[tuple[str, str, str, str]]:
    """Append the bundled folders to ``sys.path``; returns the agent's requirements that
    the copies Python now imports do not meet (see :func:`unmet_requirements`).

    The check reads package metadata and costs tens of milliseconds, at every QGIS start:
    its answer is kept in the QGIS settings with a fingerprint of all it depends on, and
    checked again only when that changes."""
    for folder in bundled_folders():
        if folder not in sys.path:
            sys.path.append(folder)
    if not AGENT_DIR.is_dir():
        return []  # a source checkout: nothing bundled to check
    fingerprint = _fingerprint()
    settings = _settings()
    if settings is not None:
        try:
            kept = json.loads(settings.value(CHECK_KEY, "") or "{}")
        except (TypeError, ValueError):
            kept = {}
        if kept.get("fingerprint") == fingerprint:
            return [tuple(item) for item in kept.get("unmet", [])]
    unmet = unmet_requirements()
    if settings is not None:
        settings.setValue(CHECK_KEY, json.dumps({"fingerprint": fingerprint,
                                                 "unmet": unmet}))
    return unmet


def _fingerprint() -> str:
    """What the requirements check depends on: the bundled agent's version and, for every
    package bundled in ``ext/``, the file Python now imports for it and when that file
    last changed (an upgrade elsewhere rewrites it). ``find_spec`` imports nothing, so
    this costs about a millisecond."""
    import importlib.util

    parts = sorted(p.name for p in AGENT_DIR.glob("terrafusion_agent-*.dist-info"))
    for entry in sorted(EXT_DIR.iterdir()) if EXT_DIR.is_dir() else ():
        if entry.name.endswith(".dist-info"):
            continue
        name = entry.stem if entry.suffix == ".py" else entry.name
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        origin = spec.origin if spec is not None else None
        try:
            changed = os.stat(origin).st_mtime_ns if origin else 0
        except OSError:
            changed = 0
        parts.append(f"{name}={origin}@{changed}")
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()


def _settings():
    """The QGIS settings, or None where QGIS is not importable."""
    try:
        from qgis.core import QgsSettings
    except ImportError:
        return None
    return QgsSettings()


def unmet_requirements() -> list[tuple[str, str, str, str]]:
    """The requirements of the bundled agent, and of the bundled packages it loads, that
    the copy coming first on ``sys.path`` does not meet: (requirement, name, version
    found, its folder), one per package. A copy from elsewhere is checked but not
    followed further: what it needs in turn is its installer's business."""
    agent = sorted(AGENT_DIR.glob("terrafusion_agent-*.dist-info"))
    if not agent:
        return []
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.utils import canonicalize_name

    ours = {str(AGENT_DIR), str(EXT_DIR)}
    version = metadata.PathDistribution(agent[-1]).version
    todo = [Requirement(f"terrafusion-agent=={version}")]
    wanted: dict[str, tuple[str, SpecifierSet]] = {}
    found: dict[str, metadata.Distribution] = {}
    while todo:
        requirement = todo.pop(0)
        if (requirement.marker is not None
                and not requirement.marker.evaluate({"extra": ""})):
            continue
        key = canonicalize_name(requirement.name)
        name, specifier = wanted.get(key, (requirement.name, SpecifierSet()))
        wanted[key] = (name, specifier & requirement.specifier)
        if key in found:
            continue
        try:
            found[key] = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            continue  # not bundled either: its import names it
        if str(found[key].locate_file("")) in ours:
            todo += [Requirement(text) for text in found[key].requires or ()]
    unmet = []
    for key, (name, specifier) in wanted.items():
        if key in found and not specifier.contains(found[key].version, prereleases=True):
            unmet.append((f"{name}{specifier}", name, found[key].version,
                          str(found[key].locate_file(""))))
    return unmet


def classFactory(iface):  # noqa: N802 - the name QGIS looks for
    """Return the plugin instance for the QGIS interface ``iface``."""
    unmet = use_bundled_packages()
    from .plugin import TerraFusionPlugin

    plugin = TerraFusionPlugin(iface)
    if unmet:
        _warn_unmet(iface, unmet)
    return plugin


def _warn_unmet(iface, unmet: list[tuple[str, str, str, str]]) -> None:
    from qgis.core import Qgis, QgsMessageLog

    from .gui.translation import PluginTranslator, tr

    # initGui installs the plugin's translator later; this is said before it runs
    translator = PluginTranslator()
    translator.install()
    try:
        for requirement, name, version, folder in unmet:
            sentence = tr("TerraFusion needs {requirement}, but QGIS's Python loads {name} "
                          "{version} from {folder}, which comes first on its path; update "
                          "or remove that copy.").format(
                requirement=requirement, name=name, version=version, folder=folder)
            QgsMessageLog.logMessage(sentence, "TerraFusion", Qgis.MessageLevel.Warning)
            if iface is not None:  # qgis_process loads plugins without one
                iface.messageBar().pushMessage("TerraFusion", sentence,
                                               Qgis.MessageLevel.Warning, 0)
    finally:
        translator.remove()
