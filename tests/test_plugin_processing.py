"""The plugin's Processing algorithms in headless QGIS: ``terrafusion:export`` offers the
agent's formats, writes a filtered table, takes its format from the output file, writes a
table as it stood at a moment (given as text or as a date and time) and says what is
wrong in one sentence; ``terrafusion:sync`` pulls central changes; both run
through ``processing.run`` and inside a model.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import central_exec, local_exec
from plugin_support import *  # noqa: F403 - the shared fixtures and helpers (its __all__)

pytestmark = pytest.mark.qgis


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


@pytest.fixture(scope="module")
def changed(tmp_path_factory):
    """A county whose parcels changed on central after a moment, synced since."""
    from as_of_support import changed_county
    from conftest import embedded_agent

    return changed_county(embedded_agent(tmp_path_factory.mktemp("as-of")), parcels=80)


def _owners(path: Path) -> dict[int, str]:
    ds, layer = _layer_of(path)
    return {f.GetFID(): f.GetField("owner_name") for f in layer}


def test_processing_export_takes_an_as_of_moment_as_text_or_date_and_time(
        processing_ready, changed, tmp_path):
    from as_of_support import local_time_zone
    from qgis.PyQt.QtCore import QDateTime, Qt

    then = {k: r["owner_name"] for k, r in changed.before.items()}
    with local_time_zone("America/Los_Angeles"):
        moment = QDateTime.fromString(changed.at, Qt.DateFormat.ISODate)
        local = moment.toLocalTime()
        assert local.time() != moment.time()  # the widget's time is not UTC's
        for name, value in (("text", changed.at), ("local", local), ("utc", moment)):
            out = tmp_path / f"{name}.gpkg"
            result = processing_ready.run("terrafusion:export", {
                "TABLE": "parcels", "AS_OF": value, "CONFIG": str(changed.env.config),
                "OUTPUT": str(out)})
            assert result["FEATURES"] == len(then), name
            assert _owners(out) == then, name

    out = tmp_path / "now.gpkg"
    processing_ready.run("terrafusion:export", {
        "TABLE": "parcels", "AS_OF": None, "CONFIG": str(changed.env.config),
        "OUTPUT": str(out)})
    assert _owners(out) == {k: r["owner_name"] for k, r in changed.after.items()}


def test_processing_export_says_when_the_history_starts(processing_ready, changed, tmp_path):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="starts at"):
        processing_ready.run("terrafusion:export", {
            "TABLE": "parcels", "AS_OF": "2001-01-01T00:00:00",
            "CONFIG": str(changed.env.config), "OUTPUT": str(tmp_path / "early.gpkg")})
    assert list(tmp_path.iterdir()) == []
