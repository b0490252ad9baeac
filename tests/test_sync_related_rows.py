"""Rows changed together reach central together, in an order its foreign keys accept.

A parcel split as an analyst does it in QGIS's own edit buffers: the parcel deleted, two
parcels digitised in its place (keys from the agent's block), its sales moved to one of
them. Central has a real foreign key from ``sales.prop_id`` to ``parcels``, immediate or
deferred: the push inserts parents first, moves the children, deletes the parent last,
all in one central transaction.
"""

import json

import pytest
from conftest import central_exec
from qgis.core import QgsFeature, QgsGeometry, QgsVectorLayer

SPLIT = 100005


def layer(agent, table, geometry=True):
    uri = f"dbname='{agent.local_path}' table=\"{table}\"" + (" (geom)" if geometry else "")
    lyr = QgsVectorLayer(uri, table, "spatialite")
    assert lyr.isValid()
    return lyr


def split_parcel_in_qgis(agent) -> list[int]:
    """Delete parcel SPLIT and digitise two new ones in one edit session; returns their
    keys (assigned by the agent's offline-key trigger)."""
    parcels = layer(agent, "parcels")
    fields = parcels.fields()
    assert parcels.startEditing()
    old = next(f for f in parcels.getFeatures() if f["prop_id"] == SPLIT)
    box = old.geometry().boundingBox()
    mid = (box.xMinimum() + box.xMaximum()) / 2
    for n, (x0, x1) in enumerate(((box.xMinimum(), mid), (mid, box.xMaximum())), start=1):
        new = QgsFeature(fields)
        new["geo_id"] = f"SPLIT-{n}"
        new["owner_name"] = old["owner_name"]
        new.setGeometry(QgsGeometry.fromWkt(
            f"MULTIPOLYGON((({x0} {box.yMinimum()}, {x1} {box.yMinimum()}, "
            f"{x1} {box.yMaximum()}, {x0} {box.yMaximum()}, {x0} {box.yMinimum()})))"))
        assert parcels.addFeature(new)
    assert parcels.deleteFeature(old.id())
    assert parcels.commitChanges(), parcels.commitErrors()
    return sorted(f["prop_id"] for f in layer(agent, "parcels").getFeatures()
                  if str(f["geo_id"]).startswith("SPLIT-"))


def move_sales_in_qgis(agent, to_key: int) -> int:
    sales = layer(agent, "sales", geometry=False)
    assert sales.startEditing()
    idx = sales.fields().indexOf("prop_id")
    moved = 0
    for f in sales.getFeatures():
        if f["prop_id"] == SPLIT:
            assert sales.changeAttributeValue(f.id(), idx, to_key)
            moved += 1
    assert sales.commitChanges(), sales.commitErrors()
    return moved


@pytest.mark.parametrize("deferrable", ["NOT DEFERRABLE", "DEFERRABLE INITIALLY DEFERRED"])
def test_parcel_split_in_qgis_reaches_central_in_one_transaction(qgis_app, pg_agent,
                                                                  deferrable):
    pg_agent.run("init-central", "--demo-parcels", "300")
    central_exec(pg_agent, "INSERT INTO sales (prop_id, sale_date, sale_price) "
                           "VALUES (%s, '2026-01-15', 250000)", (SPLIT,))
    central_exec(pg_agent, "ALTER TABLE sales ADD CONSTRAINT sales_parcel_fk FOREIGN KEY "
                           f"(prop_id) REFERENCES parcels (prop_id) {deferrable}")
    pg_agent.run("sync")
    new_keys = split_parcel_in_qgis(pg_agent)
    assert len(new_keys) == 2
    moved = move_sales_in_qgis(pg_agent, new_keys[0])
    assert moved >= 1

    summary = json.loads(pg_agent.run("sync").stdout)
    assert summary["rejected"] == 0 and summary["conflicts"] == 0
    assert summary["rows"]["push"] == {"insert": 2, "update": moved, "delete": 1}
    assert central_exec(pg_agent, "SELECT count(*) FROM parcels WHERE prop_id = %s",
                        (SPLIT,)) == [(0,)]
    assert central_exec(pg_agent, "SELECT prop_id FROM parcels WHERE geo_id LIKE 'SPLIT-%%' "
                                  "ORDER BY prop_id") == [(k,) for k in new_keys]
    assert central_exec(pg_agent, "SELECT count(*) FROM sales WHERE prop_id = %s",
                        (new_keys[0],)) == [(moved,)]
    # one central transaction carried every row of the split
    assert central_exec(pg_agent, "SELECT count(DISTINCT tx) FROM tf_change_log "
                                  "WHERE origin IS NOT NULL") == [(1,)]
    assert pg_agent.run("verify", check=False).returncode == 0


def test_a_child_whose_parent_is_gone_is_rejected_and_the_rest_goes_through(qgis_app,
                                                                            pg_agent):
    pg_agent.run("init-central", "--demo-parcels", "300")
    central_exec(pg_agent, "ALTER TABLE sales ADD CONSTRAINT sales_parcel_fk FOREIGN KEY "
                           "(prop_id) REFERENCES parcels (prop_id)")
    pg_agent.run("sync")
    sales = layer(pg_agent, "sales", geometry=False)
    assert sales.startEditing()
    for prop_id in (100010, 999999):  # the second parcel does not exist anywhere
        f = QgsFeature(sales.fields())
        f["prop_id"], f["sale_date"], f["sale_price"] = prop_id, "2026-02-02", 1000
        assert sales.addFeature(f)
    assert sales.commitChanges(), sales.commitErrors()

    summary = json.loads(pg_agent.run("sync").stdout)
    assert summary["rejected"] == 1
    assert summary["rows"]["push"]["insert"] == 1
    assert central_exec(pg_agent, "SELECT prop_id FROM sales WHERE sale_date = '2026-02-02'"
                        ) == [(100010,)]
    [refused] = json.loads(pg_agent.run("conflicts", "list").stdout)
    assert refused["kind"] == "rejected" and "sales_parcel_fk" in refused["message"]
