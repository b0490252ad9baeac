"""Edits made in QGIS (its own SpatiaLite connection) are captured and pushed."""

import json

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
