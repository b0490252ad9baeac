"""The spatial index a first sync from PostGIS packs (stores/bulk.py) is the index
SQLite would have built: same entries, same float32 boxes, a sound tree that SpatiaLite's
own triggers go on maintaining."""

from __future__ import annotations

import random

import pytest
from conftest import central_exec
from terrafusion_agent.stores import bulk
from terrafusion_agent.stores.spatialite import connect
from terrafusion_agent.sync.engine import run_sync

TABLE_ENV = {"TERRAFUSION_SYNC__TABLES": '["shapes"]'}


def _central_shapes(agent, n: int) -> None:
    """n rows of points, lines and polygons at coordinates float32 cannot hold exactly
    (negative ones too), with NULL and EMPTY geometries among them (2 rows in 7)."""
    central_exec(agent, "CREATE TABLE shapes (id bigint PRIMARY KEY, name text, "
                        "geom geometry(Geometry, 2927))")
    central_exec(agent, """
        INSERT INTO shapes
        SELECT i, 'shape ' || i, CASE mod(i, 7)
            WHEN 0 THEN NULL
            WHEN 1 THEN 'SRID=2927;POLYGON EMPTY'::geometry
            WHEN 2 THEN ST_SetSRID(ST_MakePoint(x, y), 2927)
            WHEN 3 THEN ST_SetSRID(ST_MakeLine(ST_MakePoint(x, y),
                                               ST_MakePoint(x + w, y - h)), 2927)
            ELSE ST_Multi(ST_MakeEnvelope(x, y, x + w, y + h, 2927)) END
        FROM generate_series(1, %s) i, LATERAL (SELECT
            (mod(i * 7919.123456789, 1380000) - 180000)::float8 + 1.0 / 3 AS x,
            (mod(i * 104.729113, 490000) - 90000)::float8 + 1.0 / 7 AS y,
            mod(i * 13.37, 900)::float8 + 0.001 AS w,
            mod(i * 31.41, 900)::float8 + 0.001 AS h) c""", (n,))


def _index_rows(conn) -> list[tuple]:
    return conn.execute("SELECT pkid, xmin, xmax, ymin, ymax FROM idx_shapes_geom "
                        "ORDER BY pkid").fetchall()


def _reference_rows(conn) -> list[tuple]:
    """What SQLite's rtree module stores when it is fed the same boxes one by one."""
    conn.execute("DROP TABLE IF EXISTS ref")
    conn.execute("CREATE VIRTUAL TABLE ref USING rtree(pkid, xmin, xmax, ymin, ymax)")
    conn.execute("INSERT INTO ref SELECT id, MbrMinX(geom), MbrMaxX(geom), MbrMinY(geom), "
                 "MbrMaxY(geom) FROM shapes WHERE geom IS NOT NULL")
    rows = conn.execute("SELECT * FROM ref ORDER BY pkid").fetchall()
    conn.execute("DROP TABLE ref")
    return rows


def _depth(conn) -> int:
    data = conn.execute("SELECT data FROM idx_shapes_geom_node WHERE nodeno = 1").fetchone()[0]
    return int.from_bytes(data[:2], "big")


def _assert_index_answers_like_a_scan(conn, rng: random.Random) -> None:
    for _ in range(25):
        x, y = rng.uniform(-200000, 1200000), rng.uniform(-100000, 400000)
        frame = f"BuildMbr({x}, {y}, {x + rng.uniform(1, 90000)}, {y + rng.uniform(1, 90000)})"
        by_index = conn.execute(
            "SELECT id FROM shapes WHERE ROWID IN (SELECT ROWID FROM SpatialIndex WHERE "
            f"f_table_name = 'shapes' AND search_frame = {frame}) ORDER BY id").fetchall()
        by_scan = conn.execute(
            f"SELECT id FROM shapes WHERE MbrIntersects(geom, {frame}) = 1 ORDER BY id"
        ).fetchall()
        assert by_index == by_scan


@pytest.mark.parametrize("rows, fanout, depth", [
    (1, 51, 0),      # only an EMPTY geometry: no entry, the empty root
    (60, 51, 0),     # 43 entries: one leaf, which is the root
    (80, 51, 1),     # 57 entries: two leaves under the root
    (700, 4, 4),     # 500 entries, 4 per node: 125 leaves, then 32, 8, 2 and the root
])
def test_packed_index_equals_the_one_sqlite_builds(pg_agent, monkeypatch, rows, fanout, depth):
    _central_shapes(pg_agent, rows)
    monkeypatch.setattr(bulk, "FANOUT", fanout)
    pg_agent.run("init-central", env=TABLE_ENV)
    monkeypatch.setenv("TERRAFUSION_SYNC__TABLES", TABLE_ENV["TERRAFUSION_SYNC__TABLES"])
    run_sync(pg_agent.load(), trigger="test")
    conn = connect(pg_agent.local_path)
    entries = _index_rows(conn)
    assert len(entries) == central_exec(
        pg_agent, "SELECT count(*) FROM shapes WHERE NOT ST_IsEmpty(geom)")[0][0]
    assert entries == _reference_rows(conn)  # same keys, same float32 boxes, bit for bit
    assert conn.execute("SELECT rtreecheck('idx_shapes_geom')").fetchone() == ("ok",)
    assert conn.execute("SELECT CheckSpatialIndex('shapes', 'geom')").fetchone() == (1,)
    assert _depth(conn) == depth
    _assert_index_answers_like_a_scan(conn, random.Random(rows))


def test_packed_index_keeps_up_with_later_edits(pg_agent, monkeypatch):
    """SpatiaLite's triggers, back after the load, keep the packed tree right through
    deletes, moves and inserts (which split its full nodes)."""
    _central_shapes(pg_agent, 3700)  # 2643 entries: 52 leaves, 2 inner nodes, the root
    pg_agent.run("init-central", env=TABLE_ENV)
    pg_agent.run("sync", env=TABLE_ENV)
    conn = connect(pg_agent.local_path)
    assert _depth(conn) == 2
    conn.execute("BEGIN")
    conn.execute("DELETE FROM shapes WHERE id % 5 = 0")
    conn.execute("UPDATE shapes SET geom = CastToMultiPolygon(BuildMbr(MbrMinX(geom) + 5000.3, "
                 "MbrMinY(geom) - 77.7, MbrMinX(geom) + 5100.9, MbrMinY(geom) + 8.1, 2927)) "
                 "WHERE id % 7 = 4")
    for i in range(300):
        x, y = 1000 + i * 3000.123, -50000 + i * 1200.456
        conn.execute("INSERT INTO shapes (id, name, geom) VALUES (?, 'new', "
                     "CastToMultiPolygon(BuildMbr(?, ?, ?, ?, 2927)))",
                     (100000 + i, x, y, x + 10.5, y + 10.25))
    conn.execute("COMMIT")
    assert conn.execute("SELECT rtreecheck('idx_shapes_geom')").fetchone() == ("ok",)
    assert _index_rows(conn) == _reference_rows(conn)
    _assert_index_answers_like_a_scan(conn, random.Random(3))


def test_index_is_built_locally_when_central_cannot_pack_it(pg_agent, monkeypatch, caplog):
    """Central refusing the second connection (its connection limit, say) costs speed,
    not the sync: the rows are in, and the index is then filled from them here."""
    from terrafusion_agent.errors import CentralUnavailable
    from terrafusion_agent.stores.postgis import PostGISCentral

    def refused(self, info, fanout, snapshot):
        raise CentralUnavailable("The central database refused a second connection.")
        yield  # a generator, as the real one

    _central_shapes(pg_agent, 400)
    pg_agent.run("init-central", env=TABLE_ENV)
    monkeypatch.setenv("TERRAFUSION_SYNC__TABLES", TABLE_ENV["TERRAFUSION_SYNC__TABLES"])
    monkeypatch.setattr(PostGISCentral, "rtree_leaves", refused)
    summary = run_sync(pg_agent.load(), trigger="test")
    assert summary["result"] == "success"
    assert "built locally instead" in caplog.text
    conn = connect(pg_agent.local_path)
    assert conn.execute("SELECT count(*) FROM shapes").fetchone()[0] == 400
    assert conn.execute("SELECT rtreecheck('idx_shapes_geom')").fetchone() == ("ok",)
    assert _index_rows(conn) == _reference_rows(conn)
