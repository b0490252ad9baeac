"""Edits made in QGIS (its own SpatiaLite connection) are captured and pushed."""

import json
from decimal import Decimal

from conftest import central_exec
from qgis.core import QgsFeature, QgsGeometry, QgsVectorLayer


def parcels_layer(agent):
    layer = QgsVectorLayer(f"dbname='{agent.local_path}' table=\"parcels\" (geom)", "parcels",
                           "spatialite")
    assert layer.isValid()
    return layer


def test_qgis_edit_session_reaches_central(qgis_app, sqlite_agent):
    sqlite_agent.run("init-central", "--demo-parcels", "100")
    sqlite_agent.run("sync")
    layer = parcels_layer(sqlite_agent)
    fields = layer.fields()
    assert layer.startEditing()
    # change an attribute and a geometry
    fid = next(f.id() for f in layer.getFeatures() if f["prop_id"] == 100001)
    assert layer.changeAttributeValue(fid, fields.indexOf("owner_name"), "EDITED IN QGIS")
    square = QgsGeometry.fromWkt("MULTIPOLYGON(((1050015 80030, 1050080 80030, "
                                 "1050080 80150, 1050015 80150, 1050015 80030)))")
    assert layer.changeGeometry(fid, square)
    # digitise a new parcel without a key, as an analyst would
    new = QgsFeature(fields)
    new["geo_id"] = "QGIS-NEW-1"
    new["owner_name"] = "NEW FROM QGIS"
    new.setGeometry(QgsGeometry.fromWkt("MULTIPOLYGON(((1051000 81000, 1051100 81000, "
                                        "1051100 81100, 1051000 81100, 1051000 81000)))"))
    assert layer.addFeature(new)
    # delete one
    gone = next(f.id() for f in layer.getFeatures() if f["prop_id"] == 100050)
    assert layer.deleteFeature(gone)
    assert layer.commitChanges(), layer.commitErrors()

    summary = json.loads(sqlite_agent.run("sync").stdout)
    assert summary["rows"]["push"] == {"insert": 1, "update": 1, "delete": 1}
    assert central_exec(sqlite_agent, "SELECT owner_name, AsText(geom) FROM parcels "
                                      "WHERE prop_id = 100001") == [
        ("EDITED IN QGIS", "MULTIPOLYGON(((1050015 80030, 1050080 80030, 1050080 80150, "
                           "1050015 80150, 1050015 80030)))")]
    [(key,)] = central_exec(sqlite_agent, "SELECT prop_id FROM parcels "
                                          "WHERE geo_id = 'QGIS-NEW-1'")
    assert key >= 1 << 40  # from this agent's block, not SQLite's max+1
    assert central_exec(sqlite_agent, "SELECT count(*) FROM parcels WHERE prop_id = 100050") == [
        (0,)]
    assert sqlite_agent.run("verify", check=False).returncode == 0


def test_qgis_keeps_working_while_the_agent_syncs(qgis_app, sqlite_agent):
    """QGIS holds the file open while syncs run; its edits wait, they don't fail."""
    sqlite_agent.run("init-central", "--demo-parcels", "100")
    sqlite_agent.run("sync")
    layer = parcels_layer(sqlite_agent)
    central_exec(sqlite_agent, "UPDATE parcels SET acres = 1.5 WHERE prop_id = 100002")
    sqlite_agent.run("sync")
    layer.reload()
    feature = next(f for f in layer.getFeatures() if f["prop_id"] == 100002)
    assert feature["acres"] == 1.5
    assert layer.startEditing()
    assert layer.changeAttributeValue(feature.id(), layer.fields().indexOf("acres"), 2.5)
    assert layer.commitChanges(), layer.commitErrors()
    sqlite_agent.run("sync")
    assert central_exec(sqlite_agent, "SELECT acres FROM parcels WHERE prop_id = 100002") == [
        (2.5,)]


def test_qgis_edits_of_exact_numerics_reach_central_digit_for_digit(qgis_app, pg_agent):
    """QGIS edits a numeric(18,6) column as a double: an untouched value keeps all of
    its 18 digits centrally, an edited one arrives as every digit QGIS shows."""
    env = {"TERRAFUSION_SYNC__TABLES": '["readings"]'}
    central_exec(pg_agent, "CREATE TABLE readings (id integer PRIMARY KEY, label text, "
                           "value numeric(18,6))")
    central_exec(pg_agent, "INSERT INTO readings VALUES (1, 'a', 123456789012.123456), "
                           "(2, 'b', 123456789012.123456)")
    pg_agent.run("init-central", env=env)
    pg_agent.run("sync", env=env)
    layer = QgsVectorLayer(f"dbname='{pg_agent.local_path}' table=\"readings\"", "readings",
                           "spatialite")
    fields = layer.fields()
    fids = {f["id"]: f.id() for f in layer.getFeatures()}
    assert layer.startEditing()
    assert layer.changeAttributeValue(fids[1], fields.indexOf("label"), "edited in QGIS")
    assert layer.changeAttributeValue(fids[2], fields.indexOf("value"), 98765432109.87654)
    assert layer.commitChanges(), layer.commitErrors()

    pg_agent.run("sync", env=env)
    assert central_exec(pg_agent, "SELECT id, label, value FROM readings ORDER BY id") == [
        (1, "edited in QGIS", Decimal("123456789012.123456")),
        (2, "b", Decimal("98765432109.876540"))]
    assert pg_agent.run("verify", env=env, check=False).returncode == 0
