# The fixtures shared with test_plugin.py are imported by name, so every test naming one
# "redefines" it in ruff's eyes.
# ruff: noqa: F811
"""The plugin's dialogs and Processing algorithms in real, headless QGIS.

Export, Settings and Conflicts dialogs are driven like a user would (widgets, clicks) on
a real demo county in SpatiaLite; their results are checked with GDAL, the agent's own
configuration loader and the central database. ``terrafusion:export`` and
``terrafusion:sync`` run through ``processing.run`` and inside a model.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import sys
import urllib.request
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest
from osgeo import ogr
from qgis.core import (
    Qgis,
    QgsApplication,
    QgsAuthMethodConfig,
    QgsFeature,
    QgsGeometry,
    QgsPointXY,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QLabel

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from conftest import central_exec, local_exec  # noqa: E402
from test_plugin import (  # noqa: E402, F401 - fixtures are used by name
    DEMO_PARCELS,
    WAIT_MS,
    _add_layers,
    _agent_cli,
    _free_port,
    _group_layers,
    _make_conflict,
    _no_outside_settings,
    _write_config,
    agent_process,
    county,
    english,
    no_autostart,
    plugin,
    use_config,
)

pytestmark = pytest.mark.qgis

ogr.UseExceptions()


def _local_count(config: Path, where: str = "1") -> int:
    with sqlite3.connect(config.parent / "local.sqlite") as conn:
        return conn.execute(f"SELECT count(*) FROM parcels WHERE {where}").fetchone()[0]  # noqa: S608


def _layer_of(path: Path):
    """(datasource, layer) of an exported file; a .zip is read inside the zip."""
    source = f"/vsizip/{path}" if path.suffix == ".zip" else str(path)
    ds = ogr.Open(source)
    assert ds is not None, path
    return ds, ds.GetLayer(0)


def _field_names(layer) -> list[str]:
    defn = layer.GetLayerDefn()
    return [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]


def _epsg(layer) -> int:
    srs = layer.GetSpatialRef()
    srs.AutoIdentifyEPSG()
    return int(srs.GetAuthorityCode(None))


# --- the export dialog --------------------------------------------------------------------


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


# --- the settings dialog ------------------------------------------------------------------

PASSWORD = "S3cret-Passw0rd!"


@pytest.fixture
def auth_config(qgis_app):
    """A user name and password in the QGIS authentication manager; yields its id."""
    manager = QgsApplication.authManager()
    if not manager.masterPasswordIsSet():
        assert manager.setMasterPassword("master-of-tests", True)
    method = QgsAuthMethodConfig("Basic")
    method.setName("county database")
    method.setConfig("username", "analyst")
    method.setConfig("password", PASSWORD)
    assert manager.storeAuthenticationConfig(method)
    yield method.id()
    manager.removeAuthenticationConfig(method.id())


@pytest.fixture
def settings_dialog(plugin, tmp_path, use_config, monkeypatch):
    config = _write_config(tmp_path, tmp_path / "local.sqlite")
    use_config(config)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "pgpass"))
    return plugin.show_settings()


def _set_table_policy(dialog, table: str, policy: str) -> None:
    for row in range(dialog.tablesTable.rowCount()):
        if dialog.tablesTable.item(row, 0).text() == table:
            combo = dialog.tablesTable.cellWidget(row, 1)
            combo.setCurrentIndex(combo.findData(policy))


def test_settings_dialog_writes_a_config_with_no_secret_in_it(
        settings_dialog, auth_config, tmp_path, qtbot):
    from terrafusion_agent import config as tf_config

    dialog = settings_dialog
    dialog.kindCombo.setCurrentIndex(dialog.kindCombo.findData("server"))
    dialog.hostEdit.setText("db.county.local")
    dialog.serverPortSpin.setValue(5433)
    dialog.databaseEdit.setText("terrafusion")
    dialog.authSelect.setConfigId(auth_config)
    dialog.intervalSpin.setValue(120)
    dialog.policyCombo.setCurrentIndex(dialog.policyCombo.findData("central_wins"))
    _set_table_policy(dialog, "parcels", "manual")
    dialog.apiPortSpin.setValue(8799)

    with qtbot.waitSignal(dialog.saved, timeout=WAIT_MS):
        qtbot.mouseClick(dialog.buttonBox.button(dialog.buttonBox.StandardButton.Save),
                         Qt.MouseButton.LeftButton)

    text = (tmp_path / "agent.toml").read_text(encoding="utf-8")
    assert PASSWORD not in text and "master-of-tests" not in text
    cfg = tf_config.load(tmp_path / "agent.toml", environ={})
    assert cfg.central_url == "postgresql://analyst@db.county.local:5433/terrafusion"
    assert cfg.interval_seconds == 120 and cfg.conflict_policy == "central_wins"
    assert cfg.table_policy == {"parcels": "manual"} and cfg.http_port == 8799
    assert cfg.tables == ("parcels", "districts", "sales")
    assert cfg.log_dir == tmp_path / "logs", "keys the dialog does not edit are kept"
    # the agent, which runs without QGIS, finds the password where libpq looks for it
    pgpass = tmp_path / "pgpass"
    assert pgpass.read_text(encoding="utf-8").splitlines() == [
        f"db.county.local:5433:terrafusion:analyst:{PASSWORD}"]
    assert stat.S_IMODE(pgpass.stat().st_mode) == 0o600
    assert not dialog.isVisible()


def test_settings_dialog_writes_a_service_name_and_keeps_the_presets(
        plugin, tmp_path, use_config, qtbot):
    from terrafusion_agent import config as tf_config

    config = tmp_path / "agent.toml"
    config.write_text(
        '[central]\nurl = "sqlite:///central.sqlite"\n[logging]\nlevel = "DEBUG"\n'
        '[export.presets.title_company]\ntable = "parcels"\nformat = "gpkg"\n'
        'fields = ["geo_id", "legal_desc"]\n', encoding="utf-8")
    use_config(config)
    dialog = plugin.show_settings()
    assert dialog.kindCombo.currentData() == "spatialite"
    assert dialog.spatialiteFile.filePath() == "central.sqlite"

    dialog.kindCombo.setCurrentIndex(dialog.kindCombo.findData("service"))
    dialog.serviceCombo.setCurrentText("county gis")
    assert dialog.save()

    cfg = tf_config.load(config, environ={})
    assert cfg.central_url == "postgresql:///?service=county%20gis"
    assert cfg.log_level == "DEBUG"
    assert cfg.presets["title_company"].fields == ("geo_id", "legal_desc")
    dialog.load()
    assert dialog.kindCombo.currentData() == "service"
    assert dialog.serviceCombo.currentText() == "county gis"


def test_settings_dialog_refuses_an_invalid_configuration_and_keeps_the_file(
        settings_dialog, tmp_path):
    before = (tmp_path / "agent.toml").read_text(encoding="utf-8")
    dialog = settings_dialog
    dialog.kindCombo.setCurrentIndex(dialog.kindCombo.findData("service"))
    dialog.serviceCombo.setCurrentText("")

    assert not dialog.save()

    assert "service" in " ".join(i.text() for i in dialog.bar.items())
    dialog.serviceCombo.setCurrentText("county")
    dialog.tablesTable.setRowCount(0)
    assert not dialog.save()
    assert "table" in " ".join(i.text() for i in dialog.bar.items())
    assert (tmp_path / "agent.toml").read_text(encoding="utf-8") == before
    assert dialog.isVisible()


def test_settings_dialog_takes_limits_defaults_and_help_from_the_agents_declaration(
        settings_dialog):
    from terrafusion_agent import api

    dialog = settings_dialog
    for spin, name in ((dialog.intervalSpin, "sync.interval_seconds"),
                       (dialog.apiPortSpin, "http.port")):
        key = api.config_key(name)
        assert (spin.minimum(), spin.maximum(), spin.clearValue()) == (
            key.minimum, key.maximum, key.default), name
        assert spin.toolTip() == f"<p>{key.help}</p>", name
    assert [dialog.policyCombo.itemData(i) for i in range(dialog.policyCombo.count())] == \
        list(api.config_key("sync.conflict_policy").choices)
    assert api.config_key("central.url").help in dialog.kindCombo.toolTip()
    assert api.config_key("local.path").help in dialog.localFile.toolTip()
    # the .ui repeats none of the agent's numbers
    ui = ET.parse(REPO / "resources" / "ui" / "settings_dialog.ui").getroot()
    for name in ("intervalSpin", "apiPortSpin"):
        spin = ui.find(f".//widget[@name='{name}']")
        assert {p.get("name") for p in spin.iter("property")} <= {"singleStep"}, name


def _save_and_wait(dialog, qtbot) -> str:
    """Click Save; the sentence shown once the running agent answered (or none did)."""
    with qtbot.waitSignal(dialog.reloadFinished, timeout=WAIT_MS) as done:
        qtbot.mouseClick(dialog.buttonBox.button(dialog.buttonBox.StandardButton.Save),
                         Qt.MouseButton.LeftButton)
    assert not dialog.is_reloading()
    return done.args[0]


def _bar_texts(qgis_iface, level) -> list[str]:
    """What the plugin told QGIS's message bar at ``level``."""
    return [m.split(":", 1)[1] for m in qgis_iface.messageBar().get_messages(level)]


def test_settings_dialog_saves_keeping_comments_and_says_no_agent_runs_to_apply_them(
        plugin, qgis_iface, tmp_path, use_config, qtbot):
    config = _write_config(tmp_path, tmp_path / "local.sqlite")
    config.write_text("# county office settings\n" + config.read_text(encoding="utf-8")
                      + "[sync]  # nights are quiet\ninterval_seconds = 300\n",
                      encoding="utf-8")
    use_config(config, port=_free_port())  # nothing listens there
    dialog = plugin.show_settings()
    dialog.intervalSpin.setValue(900)

    text = _save_and_wait(dialog, qtbot)

    assert text == (f"Settings saved to {config}. No agent is running; it reads them when "
                    "it starts.")
    assert text in _bar_texts(qgis_iface, Qgis.MessageLevel.Success)
    assert dialog.last_reload is None
    saved = config.read_text(encoding="utf-8")
    assert saved.startswith("# county office settings\n")
    assert saved.endswith("[sync]  # nights are quiet\ninterval_seconds = 900\n")


def test_settings_dialog_has_the_running_agent_apply_the_saved_settings(
        plugin, qgis_iface, tmp_path, use_config, qtbot):
    config = _write_config(tmp_path, tmp_path / "local.sqlite")
    _agent_cli(config, "init-central", "--demo-parcels", "20")
    with agent_process(config) as port:
        use_config(config, port=port)
        dialog = plugin.show_settings()
        dialog.intervalSpin.setValue(120)
        _set_table_policy(dialog, "sales", "central_wins")

        text = _save_and_wait(dialog, qtbot)

        assert text == f"Settings saved to {config} and applied by the running agent."
        assert text in _bar_texts(qgis_iface, Qgis.MessageLevel.Success)
        answer = dialog.last_reload
        assert {"sync.interval_seconds", "sync.table_policy.sales"} <= set(answer["changed"])
        assert answer["restart_required"] == []


def test_settings_dialog_names_the_keys_the_running_agent_must_restart_for(
        plugin, qgis_iface, tmp_path, use_config, qtbot):
    config = _write_config(tmp_path, tmp_path / "local.sqlite")
    _agent_cli(config, "init-central", "--demo-parcels", "20")
    with agent_process(config) as port:
        use_config(config, port=port)
        dialog = plugin.show_settings()
        dialog.intervalSpin.setValue(120)
        dialog.apiPortSpin.setValue(_free_port())

        text = _save_and_wait(dialog, qtbot)

        assert text == (f"Settings saved to {config}. The running agent applied the other "
                        "changes; restart it to apply http.port.")
        assert text in _bar_texts(qgis_iface, Qgis.MessageLevel.Warning)
        assert dialog.last_reload["restart_required"] == ["http.port"]
        # it still answers where it listened before: the new port waits for a restart
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=5) as r:
            assert json.load(r)["status"] == "pass"


def test_settings_dialog_says_why_the_running_agent_did_not_apply_the_saved_settings(
        plugin, qgis_iface, tmp_path, use_config, qtbot):
    config = _write_config(tmp_path, tmp_path / "local.sqlite")
    _agent_cli(config, "init-central", "--demo-parcels", "20")
    with agent_process(config) as port:
        use_config(config, port=port)
        (tmp_path / "token").unlink()  # the plugin can no longer prove who it is
        dialog = plugin.show_settings()
        dialog.intervalSpin.setValue(120)

        text = _save_and_wait(dialog, qtbot)

        assert text.startswith(f"Settings saved to {config}, but the running agent did not "
                               f"apply them: The agent's API token file {tmp_path / 'token'} "
                               "cannot be read")
        assert text in _bar_texts(qgis_iface, Qgis.MessageLevel.Warning)
        assert config.read_text(encoding="utf-8").count("interval_seconds = 120") == 1


def test_settings_dialog_tests_the_connection_as_the_agent_would(
        plugin, county, use_config, qtbot):
    use_config(county)
    dialog = plugin.show_settings()

    dialog.test_connection()
    qtbot.waitUntil(lambda: not dialog.is_testing(), timeout=WAIT_MS)
    assert dialog.testLabel.text() == "Connected."

    dialog.kindCombo.setCurrentIndex(dialog.kindCombo.findData("server"))
    dialog.hostEdit.setText("127.0.0.1")
    dialog.serverPortSpin.setValue(_free_port())
    dialog.databaseEdit.setText("nowhere")
    dialog.test_connection()
    qtbot.waitUntil(lambda: not dialog.is_testing(), timeout=30_000)
    assert "cannot be reached" in dialog.testLabel.text()


# --- the conflicts dialog -------------------------------------------------------------------


@pytest.fixture
def conflicted(sqlite_agent, use_config):
    """A synced county with two real conflicts (land values of two parcels)."""
    sqlite_agent.run("init-central", "--demo-parcels", "60")
    sqlite_agent.run("sync")
    local_exec(sqlite_agent, "UPDATE parcels SET land_value = 1 WHERE prop_id = 100007")
    central_exec(sqlite_agent, "UPDATE parcels SET land_value = 2, "
                               "geom = ST_Translate(geom, 15, 5, 0) WHERE prop_id = 100007")
    _make_conflict(sqlite_agent, 100004)
    use_config(sqlite_agent.config, port=_free_port())
    return sqlite_agent


def _conflicts_dialog(plugin, qtbot):
    dialog = plugin.show_conflicts()
    qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=WAIT_MS)
    return dialog


def _values(dialog) -> dict[str, list[str]]:
    table = dialog.valuesTable
    return {table.item(r, 0).text(): [table.item(r, c).text() for c in range(1, 4)]
            for r in range(table.rowCount())}


def test_conflicts_dialog_shows_both_versions_side_by_side_and_on_a_map(
        plugin, conflicted, qtbot):
    dialog = _conflicts_dialog(plugin, qtbot)

    assert dialog.conflictsTable.rowCount() == 2
    first = dialog.conflicts[dialog.shown_conflict]
    assert first["table"] == "parcels" and first["columns"] == ["land_value"]
    values = _values(dialog)
    assert values["land_value"][1:] == ["1.0", "2.0"]
    row = [dialog.valuesTable.item(r, 0).text()
           for r in range(dialog.valuesTable.rowCount())].index("land_value")
    highlighted = dialog.valuesTable.item(row, 2)
    assert highlighted.font().bold() and highlighted.background().color().name() == "#ffd699"
    assert not dialog.valuesTable.item(0, 2).font().bold()
    # prop 100007 moved centrally: both geometries on the map, the central one "edited"
    dialog.conflictsTable.selectRow([dialog.conflictsTable.item(r, 2).text()
                                     for r in range(2)].index("100007"))
    assert _values(dialog)["geom"][2].endswith("(edited)")
    layers = dialog.mapCanvas.layers()
    assert {layer.name() for layer in layers} >= {"local", "central"}
    assert all(layer.featureCount() == 1 for layer in layers[:2])
    assert dialog.mapCanvas.mapSettings().destinationCrs().authid() == "EPSG:2927"


def test_keep_local_resolves_a_real_conflict_that_then_reaches_central(
        plugin, conflicted, qtbot):
    dialog = _conflicts_dialog(plugin, qtbot)
    row = [dialog.conflictsTable.item(r, 2).text() for r in range(2)].index("100004")
    dialog.conflictsTable.selectRow(row)

    with qtbot.waitSignal(dialog.conflictsResolved, timeout=WAIT_MS) as resolved:
        qtbot.mouseClick(dialog.keepLocalButton, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=WAIT_MS)

    assert len(resolved.args[0]) == 1 and dialog.last_resolution.via == "here"
    assert dialog.conflictsTable.rowCount() == 1
    conflicted.run("sync")
    assert central_exec(conflicted, "SELECT land_value FROM parcels WHERE prop_id = 100004") \
        == [(1.0,)]


@pytest.fixture
def refused(sqlite_agent, use_config):
    """A synced county where central refused one local edit (a geo_id it holds already)."""
    sqlite_agent.run("init-central", "--demo-parcels", "60")
    sqlite_agent.run("sync")
    local_exec(sqlite_agent, "UPDATE parcels SET geo_id = 'TAKEN' WHERE prop_id = 100005")
    central_exec(sqlite_agent, "UPDATE parcels SET geo_id = 'TAKEN' WHERE prop_id = 100006")
    assert json.loads(sqlite_agent.run("sync").stdout)["rejected"] == 1
    use_config(sqlite_agent.config, port=_free_port())
    return sqlite_agent


def test_a_refused_row_shows_the_servers_reason_and_drop_my_edit_restores_central(
        plugin, refused, qtbot):
    central_geo_id = central_exec(refused, "SELECT geo_id FROM parcels WHERE prop_id = 100005")
    dialog = _conflicts_dialog(plugin, qtbot)

    assert dialog.conflictsTable.rowCount() == 1
    what = dialog.conflictsTable.item(0, 3).text()
    assert what.startswith("Refused by central: ") and "UNIQUE" in what
    assert "refused by the central database" in dialog.summaryLabel.text()
    assert "open conflict" not in dialog.summaryLabel.text()
    assert dialog.reasonLabel.isVisibleTo(dialog)
    assert "geo_id" in dialog.reasonLabel.text()
    assert _values(dialog)["geo_id"][1] == "TAKEN"
    assert dialog.keepLocalButton.text() == "Try again"
    assert dialog.keepCentralButton.text() == "Drop my edit"

    with qtbot.waitSignal(dialog.conflictsResolved, timeout=WAIT_MS):
        dialog.keepCentralButton.click()
    qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=WAIT_MS)

    assert dialog.conflictsTable.rowCount() == 0
    assert not dialog.reasonLabel.isVisibleTo(dialog)
    assert dialog.keepCentralButton.text() == "Keep central"
    assert local_exec(refused, "SELECT geo_id FROM parcels WHERE prop_id = 100005") == \
        central_geo_id
    assert json.loads(refused.run("sync").stdout)["pushed"] == 0
    assert central_exec(refused, "SELECT geo_id FROM parcels WHERE prop_id = 100005") == \
        central_geo_id


def test_keep_central_resolves_many_conflicts_at_once(plugin, conflicted, qtbot):
    dialog = _conflicts_dialog(plugin, qtbot)
    dialog.conflictsTable.selectAll()
    assert dialog.keepCentralButton.text() == "Keep central (2)"

    with qtbot.waitSignal(dialog.conflictsResolved, timeout=WAIT_MS):
        qtbot.mouseClick(dialog.keepCentralButton, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=WAIT_MS)

    assert dialog.conflictsTable.rowCount() == 0
    assert local_exec(conflicted, "SELECT land_value FROM parcels WHERE prop_id IN "
                                  "(100004, 100007) ORDER BY prop_id") == [(2.0,), (2.0,)]
    conflicted.run("sync")
    assert conflicted.run("conflicts", "list").stdout.strip() == "[]"


def test_conflicts_are_resolved_through_the_running_agent(plugin, conflicted, use_config,
                                                          qtbot):
    with agent_process(conflicted.config) as port:
        use_config(conflicted.config, port=port)
        dialog = _conflicts_dialog(plugin, qtbot)
        dialog.conflictsTable.selectAll()
        with qtbot.waitSignal(dialog.conflictsResolved, timeout=WAIT_MS):
            dialog.resolve_selected("local")
        qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=WAIT_MS)

        assert dialog.last_resolution.via == "agent"
        assert dialog.last_resolution.errors == []
        assert dialog.conflictsTable.rowCount() == 0


# --- Processing -------------------------------------------------------------------------------


@pytest.fixture
def processing_ready(qgis_processing, plugin):
    import processing

    return processing


def test_processing_offers_exactly_the_agents_export_formats():
    from terrafusion_agent.export import FORMATS

    from terrafusion_plugin.processing.export_algorithm import _formats

    assert [(f.name, f.extension) for f in _formats()] == [
        (spec.name, spec.extension) for spec in FORMATS.values()]


def test_processing_export_writes_the_filtered_table(processing_ready, county, tmp_path):
    out = tmp_path / "valuable.geojson"

    result = processing_ready.run("terrafusion:export", {
        "TABLE": "parcels", "WHERE": "market_value > 300000", "FIELDS": "prop_id,market_value",
        "CRS": "EPSG:4326", "CONFIG": str(county), "OUTPUT": str(out)})

    expected = _local_count(county, "market_value > 300000")
    assert result["FEATURES"] == expected and result["OUTPUT"] == str(out)
    ds, layer = _layer_of(out)
    assert layer.GetFeatureCount() == expected and _epsg(layer) == 4326
    assert _field_names(layer) == ["prop_id", "market_value"]


def test_processing_export_takes_its_format_from_the_output_file(processing_ready, county,
                                                                 tmp_path):
    out = tmp_path / "districts.zip"

    result = processing_ready.run("terrafusion:export", {
        "TABLE": "districts", "CONFIG": str(county), "OUTPUT": str(out)})

    ds, layer = _layer_of(Path(result["OUTPUT"]))
    assert ds.GetDriver().GetName() == "ESRI Shapefile" and layer.GetFeatureCount() > 0


def test_processing_export_says_what_is_wrong_in_one_sentence(processing_ready, county,
                                                              tmp_path):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="not in the local copy"):
        processing_ready.run("terrafusion:export", {
            "TABLE": "roads", "CONFIG": str(county), "OUTPUT": str(tmp_path / "r.gpkg")})


def test_processing_sync_pulls_central_changes(processing_ready, sqlite_agent):
    sqlite_agent.run("init-central", "--demo-parcels", "60")
    sqlite_agent.run("sync")
    central_exec(sqlite_agent, "UPDATE parcels SET owner_name = 'MODEL' WHERE prop_id = 100009")

    result = processing_ready.run("terrafusion:sync", {"CONFIG": str(sqlite_agent.config)})

    assert result["RESULT"] == "success" and result["PULLED"] == 1 and result["VIA"] == "processing"
    assert local_exec(sqlite_agent, "SELECT owner_name FROM parcels WHERE prop_id = 100009") \
        == [("MODEL",)]


def test_both_algorithms_run_inside_a_processing_model(processing_ready, sqlite_agent,
                                                       tmp_path):
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildDependency,
        QgsProcessingModelChildParameterSource,
    )

    sqlite_agent.run("init-central", "--demo-parcels", "60")
    out = tmp_path / "after-sync.gpkg"
    model = QgsProcessingModelAlgorithm("sync then export", "tests")
    static = QgsProcessingModelChildParameterSource.fromStaticValue
    sync = QgsProcessingModelChildAlgorithm("terrafusion:sync")
    sync.setChildId("sync")
    sync.addParameterSources("CONFIG", [static(str(sqlite_agent.config))])
    export = QgsProcessingModelChildAlgorithm("terrafusion:export")
    export.setChildId("export")
    export.setDependencies([QgsProcessingModelChildDependency("sync")])
    for name, value in (("TABLE", "parcels"), ("CONFIG", str(sqlite_agent.config)),
                        ("OUTPUT", str(out))):
        export.addParameterSources(name, [static(value)])
    model.addChildAlgorithm(sync)
    model.addChildAlgorithm(export)

    processing_ready.run(model, {})

    ds, layer = _layer_of(out)
    assert layer.GetFeatureCount() == 60
