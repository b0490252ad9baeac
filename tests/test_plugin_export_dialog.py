"""The Export dialog in headless QGIS, driven like a user would (widgets, clicks) on a real
demo county in SpatiaLite, its results read back with GDAL: chosen fields and CRS, a QGIS
expression as filter, the selected features of a synced layer, a project layer that is
not synced, a cancel that leaves no file, a filter on a missing field refused, a
preset from the config, and a synced table as it stood at a moment picked in local time.
"""

from __future__ import annotations

import json
import os
import sys
import zipfile
from datetime import datetime
from pathlib import Path

import pytest
from plugin_support import *  # noqa: F403 - the shared fixtures and helpers (its __all__)
from qgis.core import QgsFeature, QgsGeometry, QgsPointXY, QgsVectorLayer
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QLabel

pytestmark = pytest.mark.qgis


@pytest.fixture
def export_dialog(plugin, county, use_config, qtbot):
    use_config(county)
    dialog = plugin.show_export()
    qtbot.waitUntil(lambda: not dialog.is_loading(), timeout=WAIT_MS)
    assert dialog.tableCombo.count() == 3, [i.text() for i in dialog.bar.items()]
    return dialog


def _choose(dialog, table="parcels", fmt="gpkg", fields=None, out=None):
    dialog.tableRadio.setChecked(True)
    dialog.tableCombo.setCurrentIndex(dialog.tableCombo.findData(table))
    dialog.formatCombo.setCurrentIndex(dialog.formatCombo.findData(fmt))
    if fields is not None:
        for row in range(dialog.fieldsList.count()):
            item = dialog.fieldsList.item(row)
            item.setCheckState(Qt.CheckState.Checked if item.data(Qt.ItemDataRole.UserRole)
                               in fields else Qt.CheckState.Unchecked)
    if out is not None:
        dialog.fileWidget.setFilePath(str(out))


def _export(dialog, qtbot) -> dict:
    with qtbot.waitSignal(dialog.exportFinished, timeout=60_000) as finished:
        qtbot.mouseClick(dialog.exportButton, Qt.MouseButton.LeftButton)
    assert finished.args[0] is not None, [i.text() for i in dialog.bar.items()]
    return finished.args[0]


def test_export_dialog_writes_a_valid_geopackage_of_the_chosen_fields_and_crs(
        export_dialog, qgis_iface, qgis_new_project, tmp_path, qtbot):
    out = tmp_path / "parcels.gpkg"
    _choose(export_dialog, fields={"prop_id", "situs_address", "market_value"}, out=out)
    export_dialog.crsWidget.setCrs(export_dialog.crsWidget.crs().fromEpsgId(4326))
    export_dialog.addToMapCheck.setChecked(True)

    result = _export(export_dialog, qtbot)

    ds, layer = _layer_of(out)
    assert layer.GetFeatureCount() == DEMO_PARCELS == result["features"]
    assert set(_field_names(layer)) >= {"situs_address", "market_value"}
    assert "owner_name" not in _field_names(layer)
    assert _epsg(layer) == 4326
    added = [lyr for lyr in qgis_new_project.mapLayers().values()
             if lyr.source().startswith(str(out))]
    assert len(added) == 1 and added[0].featureCount() == DEMO_PARCELS
    # QGIS's message bar links to the result's folder
    links = [label.text() for item in qgis_iface.messageBar().items()
             for label in item.findChildren(QLabel)]
    assert any(f'href="file://{tmp_path}"' in text for text in links), links
    assert not export_dialog.is_exporting() and export_dialog.exportButton.isEnabled()


def test_export_dialog_filters_with_a_qgis_expression(export_dialog, tmp_path, qtbot):
    out = tmp_path / "valuable.csv"
    _choose(export_dialog, fmt="csv", out=out)
    export_dialog.filterWidget.setExpression(
        "\"market_value\" > 300000 AND \"year_built\" IS NOT NULL")

    result = _export(export_dialog, qtbot)

    expected = _local_count(Path(os.environ["TERRAFUSION_CONFIG"]),
                            "market_value > 300000 AND year_built IS NOT NULL")
    assert 0 < expected < DEMO_PARCELS
    with out.open(encoding="utf-8") as fh:
        assert sum(1 for _ in fh) - 1 == expected == result["features"]


def test_export_dialog_exports_the_selected_features_of_a_synced_layer(
        plugin, export_dialog, qgis_new_project, tmp_path, qtbot):
    _add_layers(plugin.dock, qtbot)
    parcels = _group_layers(qgis_new_project)["parcels"]
    parcels.selectByExpression("\"prop_id\" IN (100002, 100003, 100005)")
    out = tmp_path / "three.geojson"
    _choose(export_dialog, table="districts", fmt="geojson")
    _choose(export_dialog, table="parcels", fmt="geojson", out=out)
    assert export_dialog.selectedOnlyCheck.isEnabled()
    export_dialog.selectedOnlyCheck.setChecked(True)

    result = _export(export_dialog, qtbot)

    features = json.loads(out.read_text(encoding="utf-8"))["features"]
    assert sorted(f["properties"]["prop_id"] for f in features) == [100002, 100003, 100005]
    assert result["selected_only"] is True


def test_export_dialog_writes_a_project_layer_that_is_not_synced(
        export_dialog, qgis_new_project, tmp_path, qtbot):
    wells = QgsVectorLayer("Point?crs=EPSG:2927&field=name:string&field=depth:double",
                           "wells", "memory")
    features = []
    for i, (x, y) in enumerate([(1050000, 80000), (1050100, 80100), (1050200, 80300)]):
        feature = QgsFeature(wells.fields())
        feature.setAttributes([f"Well {i}", 10.5 * i])
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(x, y)))
        features.append(feature)
    wells.dataProvider().addFeatures(features)
    qgis_new_project.addMapLayer(wells)
    out = tmp_path / "wells.zip"
    export_dialog.layerRadio.setChecked(True)
    export_dialog.layerCombo.setLayer(wells)
    export_dialog.formatCombo.setCurrentIndex(export_dialog.formatCombo.findData("shp"))
    export_dialog.fileWidget.setFilePath(str(out))

    result = _export(export_dialog, qtbot)

    with zipfile.ZipFile(out) as zf:
        assert {Path(n).suffix for n in zf.namelist()} >= {".shp", ".shx", ".dbf", ".prj"}
    ds, layer = _layer_of(out)
    assert layer.GetFeatureCount() == 3 == result["features"]
    assert _field_names(layer) == ["name", "depth"] and _epsg(layer) == 2927
    assert [f.GetField("name") for f in layer] == ["Well 0", "Well 1", "Well 2"]


@pytest.fixture(scope="module")
def big_county(tmp_path_factory) -> Path:
    """A county big enough for an export to take a few seconds (to cancel it)."""
    import subprocess

    base = tmp_path_factory.mktemp("big-county")
    config = _write_config(base, base / "local.sqlite")
    for args in (("init-central", "--demo-parcels", "20000"), ("sync",)):
        subprocess.run([sys.executable, "-m", "terrafusion_agent", "--config", str(config),
                        *args], check=True, capture_output=True, timeout=300)
    return config


def test_export_dialog_cancel_stops_the_export_and_leaves_no_file(
        plugin, big_county, use_config, tmp_path, qtbot):
    use_config(big_county)
    dialog = plugin.show_export()
    qtbot.waitUntil(lambda: not dialog.is_loading(), timeout=WAIT_MS)
    out = tmp_path / "all.geojson"
    _choose(dialog, fmt="geojson", out=out)
    progress: list[int] = []
    dialog.progressBar.valueChanged.connect(progress.append)

    with qtbot.waitSignal(dialog.exportFinished, timeout=60_000) as finished:
        qtbot.mouseClick(dialog.exportButton, Qt.MouseButton.LeftButton)
        assert dialog.cancelButton.isVisible()
        qtbot.waitUntil(lambda: any(v > 0 for v in progress), timeout=30_000)
        qtbot.mouseClick(dialog.cancelButton, Qt.MouseButton.LeftButton)

    assert finished.args[0] is None
    assert "cancelled" in " ".join(i.text() for i in dialog.bar.items())
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == [], "no temp file left behind"
    assert dialog.exportButton.isEnabled() and not dialog.cancelButton.isVisible()


def test_export_dialog_refuses_a_filter_on_a_field_the_table_lacks(export_dialog, tmp_path,
                                                                   qtbot):
    _choose(export_dialog, table="districts", out=tmp_path / "d.gpkg")
    export_dialog.filterWidget.setExpression("\"land_value\" > 1")

    qtbot.mouseClick(export_dialog.exportButton, Qt.MouseButton.LeftButton)

    assert not export_dialog.is_exporting()
    assert "land_value" in " ".join(i.text() for i in export_dialog.bar.items())
    assert not (tmp_path / "d.gpkg").exists()


def test_export_dialog_applies_a_preset_from_the_config(plugin, county, use_config, tmp_path,
                                                        qtbot):
    config = tmp_path / "agent.toml"
    config.write_text(
        county.read_text(encoding="utf-8")
        + '[export.presets.public_parcels]\ntable = "parcels"\nformat = "geojson"\n'
        'crs = "EPSG:4326"\nfields = ["geo_id", "situs_address", "market_value"]\n'
        'renames = { market_value = "value" }\n', encoding="utf-8")
    use_config(config)
    dialog = plugin.show_export()
    qtbot.waitUntil(lambda: not dialog.is_loading(), timeout=WAIT_MS)
    out = tmp_path / "public.geojson"

    dialog.presetCombo.setCurrentIndex(dialog.presetCombo.findData("public_parcels"))
    dialog.fileWidget.setFilePath(str(out))

    assert not dialog.tableCombo.isEnabled() and not dialog.layerRadio.isEnabled()
    assert dialog.formatCombo.currentData() == "geojson"
    assert dialog.fieldsList.count() == 3
    result = _export(dialog, qtbot)
    features = json.loads(out.read_text(encoding="utf-8"))["features"]
    assert len(features) == DEMO_PARCELS == result["features"]
    assert set(features[0]["properties"]) == {"geo_id", "situs_address", "value"}


# --- as of a past moment -------------------------------------------------------------------


@pytest.fixture(scope="module")
def changed(tmp_path_factory):
    """A county whose parcels changed on central after a moment, synced since."""
    from as_of_support import changed_county
    from conftest import embedded_agent

    return changed_county(embedded_agent(tmp_path_factory.mktemp("as-of")), parcels=80)


def _as_of_dialog(plugin, changed, use_config, qtbot):
    use_config(changed.env.config)
    dialog = plugin.show_export()
    qtbot.waitUntil(lambda: not dialog.is_loading(), timeout=WAIT_MS)
    return dialog


def test_export_dialog_exports_a_table_as_it_stood_at_a_moment_in_local_time(
        plugin, changed, use_config, tmp_path, qtbot):
    from zoneinfo import ZoneInfo

    from as_of_support import local_time_zone
    from qgis.PyQt.QtCore import QDateTime

    out = tmp_path / "parcels-then.gpkg"
    with local_time_zone("America/Los_Angeles"):
        dialog = _as_of_dialog(plugin, changed, use_config, qtbot)
        _choose(dialog, out=out)
        dialog.filterWidget.setExpression("\"owner_name\" = 'CHANGED AFTER T'")
        assert not dialog.asOfEdit.isEnabled() and dialog.filterWidget.isEnabled()

        dialog.asOfCheck.setChecked(True)

        # a selection or a QGIS filter picks today's features: not what a moment shows
        assert dialog.asOfEdit.isEnabled() and not dialog.filterWidget.isEnabled()
        assert not dialog.selectedOnlyCheck.isEnabled()
        qtbot.waitUntil(lambda: "starts at" in dialog.asOfEdit.toolTip(), timeout=WAIT_MS)
        dialog.asOfEdit.setDateTime(
            QDateTime.fromString(changed.at, Qt.DateFormat.ISODate).toLocalTime())
        moment = datetime.fromisoformat(changed.at.replace("Z", "+00:00"))
        wall_clock = moment.astimezone(ZoneInfo("America/Los_Angeles"))
        assert dialog.asOfEdit.text() == wall_clock.strftime("%Y-%m-%d %H:%M:%S")
        assert dialog.as_of() == changed.at

        result = _export(dialog, qtbot)

    assert result["as_of"] == changed.at and result["features"] == len(changed.before)
    ds, layer = _layer_of(out)
    owners = {f.GetFID(): f.GetField("owner_name") for f in layer}
    assert owners == {k: r["owner_name"] for k, r in changed.before.items()}
    shown = " ".join(i.text() for i in dialog.bar.items())
    assert wall_clock.strftime("%Y-%m-%d %H:%M:%S") in shown, shown


def test_export_dialog_says_when_the_history_starts_for_a_moment_before_it(
        plugin, changed, use_config, tmp_path, qtbot):
    from qgis.PyQt.QtCore import QDate, QDateTime, QTime

    dialog = _as_of_dialog(plugin, changed, use_config, qtbot)
    out = tmp_path / "too-early.geojson"
    _choose(dialog, fmt="geojson", out=out)
    dialog.asOfCheck.setChecked(True)
    dialog.asOfEdit.setDateTime(QDateTime(QDate(2001, 1, 1), QTime(0, 0)))

    with qtbot.waitSignal(dialog.exportFinished, timeout=60_000) as finished:
        qtbot.mouseClick(dialog.exportButton, Qt.MouseButton.LeftButton)

    assert finished.args[0] is None
    assert "starts at" in " ".join(i.text() for i in dialog.bar.items())
    assert list(tmp_path.iterdir()) == []


def test_export_dialog_offers_as_of_for_synced_tables_only(plugin, changed, use_config,
                                                            qtbot):
    dialog = _as_of_dialog(plugin, changed, use_config, qtbot)
    dialog.asOfCheck.setChecked(True)
    dialog.layerRadio.setChecked(True)
    assert not dialog.asOfCheck.isEnabled() and not dialog.as_of_wanted()
    assert not dialog.asOfEdit.isEnabled()
    dialog.tableRadio.setChecked(True)
    assert dialog.asOfCheck.isEnabled() and dialog.as_of_wanted()


def test_export_dialog_before_the_first_sync_says_so_in_a_whole_informational_message(
        plugin, qgis_new_project, tmp_path, use_config, qtbot):
    from qgis.core import Qgis
    from qgis.PyQt.QtWidgets import QComboBox

    local = tmp_path / "local.sqlite"
    use_config(_write_config(tmp_path, local))
    dialog = plugin.show_export()
    qtbot.waitUntil(lambda: not dialog.is_loading(), timeout=WAIT_MS)
    dialog.resize(dialog.minimumSizeHint().width(), dialog.height())
    qtbot.waitUntil(lambda: dialog.width() == dialog.minimumSizeHint().width())

    [(level, text)] = _bar_messages(dialog.bar)
    assert level == Qgis.MessageLevel.Info
    assert str(local) in text and "first sync" in text
    assert not dialog.tableRadio.isEnabled() and dialog.layerRadio.isChecked()
    # no source yet: the CRS box says so, not "invalid projection"
    crs_box = dialog.crsWidget.findChild(QComboBox)
    assert crs_box.currentText() == "Choose what to export first"
    assert not local.exists(), "looking does not create the local copy"


def test_export_dialog_crs_box_says_a_table_without_geometry_has_none(export_dialog):
    from qgis.PyQt.QtWidgets import QComboBox

    _choose(export_dialog, table="sales", fmt="csv")

    crs_box = export_dialog.crsWidget.findChild(QComboBox)
    assert crs_box.currentText() == "None: the source has no geometry"
    assert not export_dialog.crsWidget.isEnabled()
    _choose(export_dialog, table="parcels", fmt="gpkg")
    assert export_dialog.crsWidget.crs().authid() == "EPSG:2927"


def test_export_dialog_gives_the_filter_the_columns_types_of_a_table_not_in_the_project(
        plugin, qgis_new_project, county, use_config, qtbot):
    from qgis.PyQt.QtCore import QMetaType

    use_config(county)
    dialog = plugin.show_export()
    qtbot.waitUntil(lambda: not dialog.is_loading(), timeout=WAIT_MS)
    _choose(dialog, table="sales", fmt="csv")

    layer = dialog.filterWidget.layer()
    assert layer is not None and layer.providerType() == "memory"
    types = {f.name(): int(f.type()) for f in layer.fields()}
    assert types["sale_id"] == int(QMetaType.Type.LongLong)
    assert types["sale_price"] in (int(QMetaType.Type.Double), int(QMetaType.Type.LongLong))
    assert types["sale_date"] in (int(QMetaType.Type.QDate), int(QMetaType.Type.QString))
    # an expression on them is checked against those fields
    dialog.filterWidget.setExpression('"sale_price" > 100000')
    assert dialog._expression_problem('"sale_price" > 100000') is None
    assert "nope" in dialog._expression_problem('"nope" > 1')


def test_field_types_are_spelled_for_the_running_qgis(monkeypatch):
    from qgis.PyQt.QtCore import QMetaType, QVariant

    from terrafusion_plugin.gui import field_types

    monkeypatch.setattr(field_types, "TAKES_METATYPE", True)
    spelled = field_types.field_type(QMetaType.Type.QDate)
    assert isinstance(spelled, QMetaType.Type) and spelled == QMetaType.Type.QDate
    monkeypatch.setattr(field_types, "TAKES_METATYPE", False)
    spelled = field_types.field_type(QMetaType.Type.QDate)
    assert isinstance(spelled, QVariant.Type) and spelled == QVariant.Type.Date
    assert field_types.field_type(QMetaType.Type.QString) == QVariant.Type.String
