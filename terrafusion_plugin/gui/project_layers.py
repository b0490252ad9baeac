"""Add the tables of the local SpatiaLite copy to a QGIS project as layers."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterable

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsDataSourceUri,
    QgsLayerTreeGroup,
    QgsProject,
    QgsVectorLayer,
)

from . import paths
from .translation import tr

#: the layer tree group holding the synced layers (a product name: not translated)
GROUP_NAME = "TerraFusion"
PROVIDER = "spatialite"


@dataclass
class AddResult:
    added: list = field(default_factory=list)      # the new QgsVectorLayer objects
    present: list = field(default_factory=list)    # table names already in the project
    invalid: list = field(default_factory=list)    # table names QGIS could not open


def layer_uri(entry: dict) -> str:
    """``dbname='PATH' table="TABLE" (GEOM)``; without ``(GEOM)`` for a plain table."""
    uri = QgsDataSourceUri()
    uri.setDatabase(entry["path"])
    uri.setDataSource("", entry["table"], entry.get("geometry_column") or "")
    return uri.uri()


def _key(database: str, table: str) -> tuple[str, str]:
    # The same file may be named through a symlink or a relative path.
    return os.path.normcase(os.path.realpath(database)), table


def _loaded_tables(project: QgsProject) -> set[tuple[str, str]]:
    keys = set()
    for layer in project.mapLayers().values():
        if isinstance(layer, QgsVectorLayer) and layer.providerType() == PROVIDER:
            uri = QgsDataSourceUri(layer.source())
            keys.add(_key(uri.database(), uri.table()))
    return keys


def _group(project: QgsProject) -> QgsLayerTreeGroup:
    root = project.layerTreeRoot()
    group = root.findGroup(GROUP_NAME)
    return group if group is not None else root.insertGroup(0, GROUP_NAME)


def _drawing_order(entries: Iterable[dict]) -> list[dict]:
    # Finer layers (more features, e.g. parcels) above coarser ones (districts) so
    # that neither hides the other; tables without geometry go last.
    return sorted(entries, key=lambda e: (e.get("geometry_column") is None, -(e.get("rows") or 0),
                                          e["table"]))


def add_synced_layers(project: QgsProject, entries: Iterable[dict]) -> AddResult:
    """Add one layer per entry of ``synced_layers`` to ``project`` in the group
    "TerraFusion", skipping tables the project already shows. Main thread only."""
    result = AddResult()
    loaded = _loaded_tables(project)
    group = None
    for entry in _drawing_order(entries):
        if _key(entry["path"], entry["table"]) in loaded:
            result.present.append(entry["table"])
            continue
        layer = QgsVectorLayer(layer_uri(entry), entry["table"], PROVIDER)
        if not layer.isValid():
            result.invalid.append(entry["table"])
            continue
        apply_default_style(layer, entry["table"])
        if group is None:
            group = _group(project)
        project.addMapLayer(layer, False)
        group.addLayer(layer)
        result.added.append(layer)
    return result


def apply_default_style(layer: QgsVectorLayer, table: str) -> bool:
    """Give a synced layer the plugin's style for its table (``resources/styles``), if any.

    Only symbology and labels are in those files: forms, fields and actions stay QGIS's
    defaults, so a style can never break editing.
    """
    path = paths.style_path(table)
    if not path.is_file():
        return False
    _message, ok = layer.loadNamedStyle(str(path))
    if ok:
        translate_legend(layer)
    return bool(ok)


def translate_legend(layer: QgsVectorLayer) -> None:
    """The style's category labels (Zoning, School...) in the user's language: the
    ``.qml`` files hold them in English, and the plugin's translation has each."""
    renderer = layer.renderer()
    if isinstance(renderer, QgsCategorizedSymbolRenderer):
        for index, category in enumerate(renderer.categories()):
            renderer.updateCategoryLabel(index, tr(category.label()))


def synced_project_layers(project: QgsProject, local_path: str) -> dict[str, QgsVectorLayer]:
    """The project's layers that show tables of the local copy at ``local_path``."""
    wanted = _key(local_path, "")[0]
    out = {}
    for layer in project.mapLayers().values():
        if isinstance(layer, QgsVectorLayer) and layer.providerType() == PROVIDER:
            uri = QgsDataSourceUri(layer.source())
            if _key(uri.database(), "")[0] == wanted:
                out.setdefault(uri.table(), layer)
    return out


def reload_synced_layers(project: QgsProject, local_path: str) -> int:
    """Re-read the project's layers of the local copy after a sync changed it.

    Layers being edited are left alone: reloading them would not lose the edit buffer,
    but would move features under the analyst's hands. Returns how many were reloaded.
    """
    count = 0
    for layer in synced_project_layers(project, local_path).values():
        if not layer.isEditable():
            layer.reload()
            # the SpatiaLite provider caches its feature count and extent; this re-reads both
            layer.dataProvider().updateExtents()
            layer.updateExtents()
            layer.triggerRepaint()
            count += 1
    return count
