"""The Feature history panel's background work as ``QgsTask``: reading a feature's
history from central and restoring one of its versions into the local copy."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ..gui.translation import tr
from .background import BackgroundTask


@dataclass(frozen=True)
class PickedFeature:
    """A feature the user pointed at, as the main thread read it from its layer."""

    layer_name: str
    #: the SpatiaLite file and the table the layer shows
    database: str
    layer_table: str
    #: the feature's attributes as plain Python values (the key columns among them)
    attributes: dict


@dataclass(frozen=True)
class FeatureHistory:
    """What the panel shows: the history report and how to draw the table's rows."""

    report: dict
    table: str
    layer_table: str
    key: tuple
    columns: tuple
    geometry_column: Optional[str]
    srid: Optional[int]
    local_path: str


def _same_file(a: str, b: Any) -> bool:
    # the same file may be named through a link or a relative path
    return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(str(b)))


class HistoryLoadTask(BackgroundTask):
    """Finds the synced table and key of a picked feature and reads its history."""

    #: emitted on the main thread with a :class:`FeatureHistory`
    loaded = pyqtSignal(object)
    #: emitted on the main thread with one sentence
    failed = pyqtSignal(str)

    failure_log = "Reading a feature's history failed."

    def __init__(self, picked: PickedFeature):
        super().__init__(tr("Reading a feature's history from the central database"),
                         QgsTask.Flag.CanCancel)
        self.picked = picked

    def work(self) -> FeatureHistory:
        from terrafusion_agent import api
        from terrafusion_agent.errors import TerraFusionError

        picked = self.picked
        cfg = api.load_config()
        if not _same_file(picked.database, cfg.local_path):
            raise TerraFusionError(tr(
                "The layer {layer} is not a table of the TerraFusion local copy ({path}); "
                "only synced layers have a history.").format(layer=picked.layer_name,
                                                             path=cfg.local_path))
        infos = {api.local_name(info.name): info for info in api.synced_tables(cfg)}
        info = infos.get(picked.layer_table)
        if info is None or info.name not in cfg.tables:
            raise TerraFusionError(tr("The table {table} of the local copy is not synced, "
                                      "so it has no history.").format(
                                          table=picked.layer_table))
        missing = [name for name in info.pk if name not in picked.attributes]
        if missing:
            raise TerraFusionError(tr("The layer {layer} does not show the key of table "
                                      "{table} ({columns}).").format(
                                          layer=picked.layer_name, table=info.name,
                                          columns=", ".join(missing)))
        key = [picked.attributes[name] for name in info.pk]
        if any(value is None for value in key):
            raise TerraFusionError(tr("This feature has no key yet; save your edits, then "
                                      "look at its history."))
        report = api.history_report(cfg, info.name, key)
        g = info.geometry
        return FeatureHistory(report=report, table=info.name, layer_table=picked.layer_table,
                              key=tuple(report["key"]), columns=info.column_names,
                              geometry_column=g.column if g else None,
                              srid=g.srid if g else None, local_path=str(cfg.local_path))

    def succeeded(self, history: FeatureHistory) -> None:
        self.loaded.emit(history)

    def failure(self) -> str:
        return tr("The feature's history could not be read: {reason}.")


class RestoreVersionTask(BackgroundTask):
    """Makes a feature in the local copy what it was right after one history entry."""

    #: emitted on the main thread with what ``restore_version`` changed
    restored = pyqtSignal(dict)
    #: emitted on the main thread with one sentence
    failed = pyqtSignal(str)

    failure_log = "Restoring a feature's version failed."

    def __init__(self, table: str, key: tuple, entry_id: int):
        super().__init__(tr("Restoring a version of a feature"))
        self.table = table
        self.key = tuple(key)
        self.entry_id = entry_id

    def work(self) -> dict:
        from terrafusion_agent import api

        return api.restore_version(api.load_config(), self.table, self.key, self.entry_id)

    def succeeded(self, result: dict) -> None:
        self.restored.emit(result)

    def failure(self) -> str:
        return tr("The version could not be restored: {reason}.")
