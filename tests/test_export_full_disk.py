"""Exports onto a full disk (a real small file system, mounted by the test): every format
and every way the engine writes fails with one sentence that says the disk is full and
names the folder, and leaves no file there, whole or cut short. GDAL's text writers do
not report failed writes, so this is also where a file cut short is caught."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import AgentEnv, synced_county

#: enough rows for the two-halves writer of the text formats (20,000 and more)
PARCELS = 25_000
#: every format's export of even half the parcels is bigger than this
DISK_BYTES = 2 << 20
FORMATS = ("gpkg", "geojson", "shp", "kml", "csv", "fgb")
TEXT_FORMATS = ("geojson", "kml", "csv")
HALF = "prop_id % 2 = 0"


@pytest.fixture(scope="module")
def county(tmp_path_factory) -> AgentEnv:
    return synced_county(tmp_path_factory.mktemp("county"), PARCELS)


@pytest.fixture
def config(county):
    from terrafusion_agent import config as config_mod

    return config_mod.load(county.config, environ={})


def name_for(fmt: str) -> str:
    return "parcels.zip" if fmt == "shp" else f"parcels.{fmt}"


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def assert_disk_full(message: str, folder: Path) -> None:
    assert "Traceback" not in message, message
    assert len(message.strip().splitlines()) == 1, message
    assert "disk is full" in message and str(folder) in message, message


def export_to(config, fmt: str, out: Path, where=None):
    from terrafusion_agent.export import ExportRequest, export_table

    return export_table(config, ExportRequest(table="parcels", format=fmt, out=str(out),
                                              where=where))


# --- the command line ---------------------------------------------------------------------


@pytest.mark.parametrize("where", [None, HALF], ids=["whole-table", "filtered"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_an_export_onto_a_full_disk_is_one_sentence_and_leaves_nothing(
        county, small_disk, fmt, where):
    # whole table: halves joined (text), the copied index (gpkg); filtered: one writer
    disk = small_disk(DISK_BYTES)
    args = ["export", "parcels", "--format", fmt, "--out", str(disk / name_for(fmt))]
    proc = county.run(*args, *(["--where", where] if where else []), check=False)

    assert proc.returncode == 1, proc.stdout
    assert proc.stdout == ""
    assert_disk_full(proc.stderr, disk)
    assert listing(disk) == [], "no file, complete or partial, and no temp file"


# --- the engine's ways of writing ---------------------------------------------------------


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_halves_cut_short_by_a_full_disk_are_not_written_again_in_one_piece(
        config, small_disk, monkeypatch, fmt):
    from terrafusion_agent.errors import ExportError
    from terrafusion_agent.export import parallel
    from terrafusion_agent.export.writer import GdalWriter

    monkeypatch.setattr(parallel.os, "cpu_count", lambda: 2)  # halves on any machine
    translations = []
    real_translate = GdalWriter.translate
    monkeypatch.setattr(GdalWriter, "translate",
                        lambda *a, **kw: translations.append(kw) or real_translate(*a, **kw))
    disk = small_disk(DISK_BYTES)

    with pytest.raises(ExportError) as caught:
        export_to(config, fmt, disk / name_for(fmt))

    assert_disk_full(str(caught.value), disk)
    halves = sorted(kw.get("rowids", (None, None)) != (None, None) for kw in translations)
    assert halves == [True, True], "two halves, and no whole export written after them"
    assert listing(disk) == []


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_halves_that_fit_but_cannot_be_joined_on_the_disk_say_it_is_full(
        config, small_disk, tmp_path, monkeypatch, fmt):
    from terrafusion_agent.errors import ExportError
    from terrafusion_agent.export import parallel

    monkeypatch.setattr(parallel.os, "cpu_count", lambda: 2)  # halves on any machine
    whole = export_to(config, fmt, tmp_path / name_for(fmt)).bytes
    joins = []
    real_splice = parallel.splice
    monkeypatch.setattr(parallel, "splice", lambda *a: joins.append(a) or real_splice(*a))
    # both halves fit (the whole), joining them needs half as much again
    disk = small_disk(whole * 5 // 4)

    with pytest.raises(ExportError) as caught:
        export_to(config, fmt, disk / name_for(fmt))

    assert joins, "the halves were written, and the failure came when joining them"
    assert_disk_full(str(caught.value), disk)
    assert listing(disk) == []


def test_a_geopackage_whose_copied_index_does_not_fit_says_the_disk_is_full(
        config, small_disk, tmp_path, monkeypatch):
    from terrafusion_agent.errors import ExportError
    from terrafusion_agent.stores import gpkg_index

    with_index = export_to(config, "gpkg", tmp_path / "with.gpkg").bytes
    monkeypatch.setattr(gpkg_index, "copy_index", lambda *a: None)
    without_index = export_to(config, "gpkg", tmp_path / "without.gpkg").bytes
    monkeypatch.undo()
    copies = []
    real_copy = gpkg_index.copy_index

    def copy_index(*args):
        try:
            real_copy(*args)
        except Exception as exc:
            copies.append(exc)
            raise
        copies.append(None)

    monkeypatch.setattr(gpkg_index, "copy_index", copy_index)
    disk = small_disk(without_index + (with_index - without_index) // 2)

    with pytest.raises(ExportError) as caught:
        export_to(config, "gpkg", disk / "parcels.gpkg")

    assert len(copies) == 1 and isinstance(copies[0], gpkg_index.IndexNotCopied), \
        "GDAL wrote the rows, and the failure came when copying the index"
    assert_disk_full(str(caught.value), disk)
    assert listing(disk) == []


def test_a_shapefile_whose_zip_does_not_fit_says_the_disk_is_full(
        config, small_disk, tmp_path, monkeypatch):
    from terrafusion_agent.errors import ExportError
    from terrafusion_agent.export import publish

    parts = []
    real_zip = publish.zip_shapefile

    def zip_shapefile(folder, packed):
        parts.append(sum(p.stat().st_size for p in folder.iterdir()))
        real_zip(folder, packed)

    monkeypatch.setattr(publish, "zip_shapefile", zip_shapefile)
    zipped = export_to(config, "shp", tmp_path / "parcels.zip").bytes
    disk = small_disk(parts[0] + zipped // 2)

    with pytest.raises(ExportError) as caught:
        export_to(config, "shp", disk / "parcels.zip")

    assert len(parts) == 2, "the parts were written, and the failure came when zipping"
    assert_disk_full(str(caught.value), disk)
    assert listing(disk) == []


def test_an_api_export_job_onto_a_full_disk_fails_with_the_sentence(config, small_disk):
    from terrafusion_agent.export import jobs

    disk = small_disk(DISK_BYTES)
    try:
        job_id = jobs.submit(config, {"table": "parcels", "format": "geojson",
                                      "out": str(disk / "parcels.geojson")})
        state = jobs.wait(config, job_id, timeout=120)
    finally:
        jobs.shutdown()

    assert state["status"] == "failed", state
    assert_disk_full(state["error"], disk)
    assert state["features"] is None and state["bytes"] is None
    assert listing(disk) == []


# --- what is checked before a file is published --------------------------------------------


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_a_text_file_that_lost_a_block_in_the_middle_is_found_incomplete(
        config, tmp_path, fmt):
    # A write lost while the disk was full, and the disk had room again at the end: the
    # ending is there, the features are not.
    from terrafusion_agent.export import diskfull

    path = tmp_path / name_for(fmt)
    features = export_to(config, fmt, path, where=HALF).features
    assert diskfull.incomplete(path, fmt, features, tmp_path) is None

    data = path.read_bytes()
    middle = len(data) // 2
    path.write_bytes(data[:middle] + data[middle + 8192:])

    reason = diskfull.incomplete(path, fmt, features, tmp_path)
    assert reason is not None and f"of {features:,}" in reason


def test_csv_rows_with_line_breaks_in_values_are_counted_as_rows(tmp_path):
    from terrafusion_agent.export import diskfull

    path = tmp_path / "notes.csv"
    path.write_bytes(b'id,note\n1,"first line\nsecond ""quoted"" line"\n2,plain\n'
                     b'3,"a\n\nb"\n')
    assert diskfull.incomplete(path, "csv", 3, tmp_path) is None
    path.write_bytes(b'id,note\n1,"first line\nsecond ""quoted"" line"\n2,plain\n')
    assert diskfull.incomplete(path, "csv", 3, tmp_path) == "it holds 2 of 3 features"


def test_a_table_changed_between_planning_and_writing_is_not_a_file_cut_short(
        county, tmp_path):
    # The API queues jobs: a sync may change the table before the job runs.
    from terrafusion_agent import config as config_mod
    from terrafusion_agent.export import ExportRequest, engine
    from terrafusion_agent.stores import spatialite

    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{county.local_path}{suffix}")
        if source.exists():
            shutil.copy(source, tmp_path / f"copy.sqlite{suffix}")
    (tmp_path / "copy.toml").write_text(f'[local]\npath = "{tmp_path / "copy.sqlite"}"\n')
    config = config_mod.load(tmp_path / "copy.toml", environ={})
    out = tmp_path / "parcels.geojson"
    plan = engine.plan_export(config, ExportRequest(table="parcels", format="geojson",
                                                    out=str(out), where=HALF))
    conn = spatialite.connect(tmp_path / "copy.sqlite", create=False)
    try:
        conn.execute("DELETE FROM parcels WHERE prop_id % 4 = 0")
        conn.commit()
    finally:
        conn.close()

    engine.run_plan(plan)

    written = json.loads(out.read_text(encoding="utf-8"))["features"]
    assert len(written) == plan.features // 2


# --- the plugin's export of a project layer (QGIS's own writer) ---------------------------


def wells_layer(count: int):
    from qgis.core import QgsFeature, QgsGeometry, QgsPointXY, QgsVectorLayer

    layer = QgsVectorLayer("Point?crs=EPSG:2927&field=name:string(200)&field=depth:double",
                           "wells", "memory")
    features = []
    for i in range(count):
        feature = QgsFeature(layer.fields())
        feature.setAttributes([f"Well {i} " + "x" * 150, 10.5 * i])
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(1050000 + i, 80000 + i)))
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    return layer


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_plugins_layer_export_onto_a_full_disk_fails_and_leaves_nothing(
        qgis_app, small_disk, fmt):
    from terrafusion_plugin.tasks.export_task import LayerExportTask

    layer = wells_layer(15_000)
    disk = small_disk(DISK_BYTES)
    task = LayerExportTask(layer, fmt, str(disk / name_for(fmt).replace("parcels", "wells")),
                           None, ["name", "depth"], None)

    assert task.run() is False
    assert task.exception is None, task.exception
    assert_disk_full(task.error or "", disk)
    assert listing(disk) == []


def test_the_plugins_layer_export_still_writes_when_there_is_room(qgis_app, tmp_path):
    from osgeo import ogr

    from terrafusion_plugin.tasks.export_task import LayerExportTask

    out = tmp_path / "wells.geojson"
    task = LayerExportTask(wells_layer(500), "geojson", str(out), None, ["name", "depth"],
                           None)

    assert task.run() is True, task.error or task.exception
    ds = ogr.Open(str(out))
    assert ds.GetLayer(0).GetFeatureCount() == 500 == task.value["features"]
    assert listing(tmp_path) == ["wells.geojson"]


def test_a_cli_export_that_fits_still_works_on_a_small_disk(county, small_disk):
    disk = small_disk(DISK_BYTES)
    proc = county.run("export", "districts", "--format", "geojson", "--out",
                      str(disk / "districts.geojson"))
    written = json.loads((disk / "districts.geojson").read_text(encoding="utf-8"))
    assert len(written["features"]) == json.loads(proc.stdout)["features"] > 0
    assert listing(disk) == ["districts.geojson"]
