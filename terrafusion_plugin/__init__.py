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

import sys
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parent
AGENT_DIR = PLUGIN_DIR / "agent"
EXT_DIR = PLUGIN_DIR / "ext"


def bundled_folders() -> list[str]:
    """The bundled folders that exist, in the order they go on a path: agent, ext."""
    return [str(folder) for folder in (AGENT_DIR, EXT_DIR) if folder.is_dir()]


def use_bundled_packages() -> list[tuple[str, str, str, str]]:
    """Append the bundled folders to ``sys.path``; returns the agent's requirements that
    the copies Python now imports do not meet (see :func:`unmet_requirements`)."""
    for folder in bundled_folders():
        if folder not in sys.path:
            sys.path.append(folder)
    return unmet_requirements()


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
