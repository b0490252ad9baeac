"""The local copy opens in QGIS: every synced table is a valid layer."""

from conftest import central_exec
from qgis.core import QgsCoordinateReferenceSystem, QgsFeatureRequest, QgsVectorLayer, QgsWkbTypes
from qgis.PyQt.QtCore import QVariant


def layer(path, table, geom=None):
    uri = f"dbname='{path}' table=\"{table}\"" + (f" ({geom})" if geom else "")
    return QgsVectorLayer(uri, table, "spatialite")


def test_local_layers_open_with_counts_and_crs(qgis_app, any_agent):
    any_agent.run("init-central", "--demo-parcels", "700")
    any_agent.run("sync")
    parcels = layer(any_agent.local_path, "parcels", "geom")
    assert parcels.isValid()
    assert parcels.featureCount() == 700
    assert parcels.crs() == QgsCoordinateReferenceSystem("EPSG:2927")
    assert QgsWkbTypes.geometryType(parcels.wkbType()) == QgsWkbTypes.PolygonGeometry
    assert parcels.hasSpatialIndex() == parcels.SpatialIndexPresent
    names = parcels.fields().names()
    assert {"prop_id", "geo_id", "market_value", "year_built"} <= set(names)

    districts = layer(any_agent.local_path, "districts", "geom")
    assert districts.isValid() and districts.featureCount() > 10
    sales = layer(any_agent.local_path, "sales")
    assert sales.isValid() and not sales.isSpatial() and sales.featureCount() > 100


def test_features_read_back_with_real_geometries(qgis_app, sqlite_agent):
    sqlite_agent.run("init-central", "--demo-parcels", "50")
    sqlite_agent.run("sync")
    parcels = layer(sqlite_agent.local_path, "parcels", "geom")
    req = QgsFeatureRequest().setFilterExpression('"prop_id" = 100001')
    feature = next(parcels.getFeatures(req))
    assert feature["geo_id"] == "000000-001"
    assert feature.geometry().area() > 5000  # square feet
    assert parcels.extent().xMinimum() > 1_000_000


def test_exact_numerics_are_numbers_in_qgis(qgis_app, pg_agent):
    """A numeric wider than a double is kept exactly by the agent, and QGIS still reads
    and filters it as a number (a NUMERIC or text column would be a string there)."""
    env = {"TERRAFUSION_SYNC__TABLES": '["readings"]'}
    central_exec(pg_agent, "CREATE TABLE readings (id integer PRIMARY KEY, "
                           "value numeric(18,6))")
    central_exec(pg_agent, "INSERT INTO readings VALUES (1, NULL), (2, 123456789012.123456), "
                           "(3, 99.5)")
    pg_agent.run("init-central", env=env)
    pg_agent.run("sync", env=env)
    readings = layer(pg_agent.local_path, "readings")
    assert readings.fields().field("value").type() == QVariant.Double
    request = QgsFeatureRequest().setFilterExpression('"value" > 100')
    assert [(f["id"], f["value"]) for f in readings.getFeatures(request)] == [
        (2, 123456789012.12346)]
