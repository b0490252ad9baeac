"""init-central, full sync and verify on both central kinds."""

import json
import sqlite3

from terrafusion_agent.stores import open_central
from terrafusion_agent.stores.spatialite import connect
from terrafusion_agent.sync.verify import digest


def central_digest(agent, table):
    store = open_central(agent.load())
    try:
        info = store.table_info(table)
        return digest(info, store.read_rows(info))
    finally:
        store.close()


def test_demo_county_has_the_documented_tables(any_agent):
    out = json.loads(any_agent.run("init-central", "--demo-parcels", "2000").stdout)
    tables = {t["table"]: t for t in out["tables"]}
    assert tables["parcels"]["rows"] == 2000
    assert tables["parcels"]["pk"] == ["prop_id"]
    assert tables["districts"]["rows"] > 10
    assert 300 < tables["sales"]["rows"] < 1000
    assert tables["sales"]["geometry"] is None
    store = open_central(any_agent.load())
    try:
        info = store.table_info("parcels")
        assert info.geometry.srid == 2927
        assert info.geometry.geometry_type == "MULTIPOLYGON"
        assert [c.name for c in info.columns] == [
            "prop_id", "geo_id", "situs_address", "owner_name", "legal_desc", "acres",
            "land_value", "impr_value", "market_value", "tax_area_code",
            "property_use_code", "year_built", "geom"]
    finally:
        store.close()


#: the county of 300 parcels, as verify's digests. The same N gives the same county on
#: both central kinds and in every version: a change to the county changes these, and
#: must be meant (tests and benchmarks rely on the county staying what it is).
COUNTY_300 = [(300, "f92f84fe38d8fd734d462bf848acaa3c"), (24, "92c95be83ae1003cc8090dd5460f7f56"),
              (93, "0744b71466e2f027bcd255ae5e299d38")]


def test_demo_county_is_the_same_for_the_same_n_on_both_central_kinds(any_agent):
    any_agent.run("init-central", "--demo-parcels", "300")
    assert [central_digest(any_agent, t) for t in ("parcels", "districts", "sales")] == \
        COUNTY_300


def test_demo_parcels_are_valid_disjoint_lots_with_plausible_values(sqlite_agent):
    sqlite_agent.run("init-central", "--demo-parcels", "1000")
    conn = connect(sqlite_agent.dir / "central.sqlite")
    invalid = conn.execute("SELECT count(*) FROM parcels WHERE NOT ST_IsValid(geom)").fetchone()
    assert invalid[0] == 0
    overlaps = conn.execute(
        "SELECT count(*) FROM parcels a JOIN parcels b ON a.prop_id < b.prop_id "
        "AND a.ROWID IN (SELECT ROWID FROM SpatialIndex WHERE f_table_name = 'parcels' "
        "AND search_frame = b.geom) AND ST_Overlaps(a.geom, b.geom)").fetchone()[0]
    assert overlaps == 0
    row = conn.execute(
        "SELECT min(market_value), max(market_value), count(DISTINCT owner_name), "
        "count(DISTINCT geo_id), sum(year_built IS NULL), sum(market_value != "
        "land_value + impr_value) FROM parcels").fetchone()
    assert 10_000 < row[0] < row[1] < 2_000_000
    assert row[2] > 500 and row[3] == 1000
    assert 0 < row[4] < 300 and row[5] == 0


def test_full_sync_then_verify_passes(any_agent):
    any_agent.run("init-central", "--demo-parcels", "1500")
    summary = json.loads(any_agent.run("sync").stdout)
    assert summary["result"] == "success"
    assert summary["tables"]["parcels"]["pulled"] == 1500
    report = json.loads(any_agent.run("verify").stdout)
    assert report["ok"] is True
    assert report["tables"]["parcels"]["local_rows"] == 1500


def test_second_sync_duplicates_nothing(any_agent):
    any_agent.run("init-central", "--demo-parcels", "500")
    any_agent.run("sync")
    any_agent.run("sync")
    conn = sqlite3.connect(any_agent.local_path)
    assert conn.execute("SELECT count(*) FROM parcels").fetchone()[0] == 500
    assert conn.execute("SELECT count(*) FROM geometry_columns "
                        "WHERE f_table_name = 'parcels'").fetchone()[0] == 1
    assert json.loads(any_agent.run("verify").stdout)["ok"] is True


def test_local_copy_has_spatial_indexes(sqlite_agent):
    sqlite_agent.run("init-central", "--demo-parcels", "200")
    sqlite_agent.run("sync")
    conn = connect(sqlite_agent.local_path)
    idx = {r[0] for r in conn.execute(
        "SELECT f_table_name FROM geometry_columns WHERE spatial_index_enabled = 1")}
    assert idx == {"parcels", "districts"}
    hits = conn.execute(
        "SELECT count(*) FROM parcels WHERE ROWID IN (SELECT ROWID FROM SpatialIndex "
        "WHERE f_table_name = 'parcels' AND search_frame = BuildMbr(0, 0, 2e6, 2e6))"
    ).fetchone()[0]
    assert hits == 200


def test_verify_detects_a_local_difference(any_agent):
    any_agent.run("init-central", "--demo-parcels", "100")
    any_agent.run("sync")
    conn = sqlite3.connect(any_agent.local_path)
    conn.execute("UPDATE sales SET sale_price = sale_price + 1 WHERE sale_id = "
                 "(SELECT min(sale_id) FROM sales)")
    conn.commit()
    proc = any_agent.run("verify", check=False)
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["tables"]["sales"]["equal"] is False
    assert report["tables"]["parcels"]["equal"] is True


def test_postgis_values_arrive_unchanged(pg_agent, pg_cluster):
    dbname = pg_agent.central_url.split("/")[3].split("?")[0]
    pg_cluster.psql(dbname, """
        CREATE TABLE "Parcel Notes é" (id int PRIMARY KEY, flag boolean, d date,
          ts timestamp, amount numeric(14,2), note text, g geometry(Point, 2927));
        INSERT INTO "Parcel Notes é" VALUES
          (1, true, '2024-02-29', '2024-02-29 13:45:10', 12345.67, 'Ñandú ☃',
           'SRID=2927;POINT(1 2)'),
          (2, NULL, NULL, NULL, NULL, NULL, NULL)""")
    env = {"TERRAFUSION_SYNC__TABLES": '["Parcel Notes é"]'}
    pg_agent.run("init-central", env=env)
    pg_agent.run("sync", env=env)
    conn = connect(pg_agent.local_path)
    rows = conn.execute('SELECT id, flag, d, ts, amount, note, AsText(g) '
                        'FROM "Parcel Notes é" ORDER BY id').fetchall()
    assert rows == [(1, 1, "2024-02-29", "2024-02-29 13:45:10", 12345.67, "Ñandú ☃",
                     "POINT(1 2)"),
                    (2, None, None, None, None, None, None)]
    assert json.loads(pg_agent.run("verify", env=env).stdout)["ok"] is True


def test_failed_sync_keeps_the_previous_copy(sqlite_agent):
    sqlite_agent.run("init-central", "--demo-parcels", "100")
    sqlite_agent.run("sync")
    (sqlite_agent.dir / "central.sqlite").rename(sqlite_agent.dir / "moved.sqlite")
    proc = sqlite_agent.run("sync", check=False)
    assert proc.returncode == 1
    conn = sqlite3.connect(sqlite_agent.local_path)
    assert conn.execute("SELECT count(*) FROM parcels").fetchone()[0] == 100
    runs = conn.execute("SELECT result, error FROM tf_sync_runs ORDER BY id").fetchall()
    assert [r[0] for r in runs] == ["success", "failed"]
    assert "does not exist" in runs[1][1]


def test_bulk_built_spatial_index_is_sound_and_complete(pg_agent):
    pg_agent.run("init-central", "--demo-parcels", "3000")
    pg_agent.run("sync")
    conn = connect(pg_agent.local_path)
    assert conn.execute("SELECT rtreecheck('idx_parcels_geom')").fetchone() == ("ok",)
    frame = "BuildMbr(1050000, 80000, 1053000, 82000)"
    by_index = conn.execute(
        "SELECT count(*) FROM parcels WHERE ROWID IN (SELECT ROWID FROM SpatialIndex "
        f"WHERE f_table_name = 'parcels' AND search_frame = {frame})").fetchone()[0]
    by_scan = conn.execute(
        f"SELECT count(*) FROM parcels WHERE MbrIntersects(geom, {frame})").fetchone()[0]
    assert by_index == by_scan > 0
    stats = conn.execute("SELECT row_count, extent_min_x, extent_max_y FROM "
                         "geometry_columns_statistics WHERE f_table_name = 'parcels'").fetchone()
    assert stats[0] == 3000 and stats[1] == 1050015 and stats[2] > 80000
    # SpatiaLite's own triggers are back: a new row lands in the index
    conn.execute("INSERT INTO parcels (geo_id, geom) VALUES ('IDX', "
                 "CastToMultiPolygon(BuildMbr(5, 5, 6, 6, 2927)))")
    assert conn.execute("SELECT count(*) FROM SpatialIndex WHERE f_table_name = 'parcels' "
                        "AND search_frame = BuildMbr(0, 0, 10, 10)").fetchone()[0] == 1
