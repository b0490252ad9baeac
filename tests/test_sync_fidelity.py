"""Values and geometries round-trip unchanged, in both directions (PostGIS central)."""

import json

import pytest
from conftest import central_exec, local_exec

#: a table name with a space, non-ASCII and a double quote, quoted for SQL
NAME = 'Shapes é "x"'
T = '"' + NAME.replace('"', '""') + '"'
#: SpatiaLite refuses quotes in geometry table names: locally they become underscores
LOCAL_T = '"Shapes é _x_"'
GEOMETRIES = [
    # multi with a hole, invalid (self-intersecting bow tie), point, line, NULL
    "MULTIPOLYGON(((0 0, 10 0, 10 10, 0 10, 0 0), (2 2, 4 2, 4 4, 2 4, 2 2)), "
    "((20 20, 30 20, 30 30, 20 20)))",
    "POLYGON((0 0, 10 10, 10 0, 0 10, 0 0))",
    "POINT(1234567.891234567 98765.4321)",
    "LINESTRING(0 0, 1.5 2.25, 3.125 4.0625)",
    None,
    "POLYGON EMPTY",  # SpatiaLite keeps EMPTY as NULL: it must never clobber central's
]
VALUES = [
    ("Ñandú ☃ 😀", "123456789012.123456", 0.1 + 0.2, True, "2024-02-29",
     "2024-02-29 13:45:10.123456", "2024-02-29 13:45:10+00", 2**62, b"\x00\x01\xff"),
    ("", "0", 1e308, False, "1900-01-01", None, None, -(2**62), None),
    ("tab\tnew\nline", "-1.5", -0.0, None, None, "1970-01-01 00:00:00", None, 0, b""),
    ("'quote\"", None, 5e-324, True, "9999-12-31", "2038-01-19 03:14:08", None, None, b"x"),
    (None, "0.000001", None, False, "2000-01-01", "2000-01-01 00:00:00", None, 1, None),
    ("empty", None, None, None, None, None, None, None, None),
]
ENV = {"TERRAFUSION_SYNC__TABLES": json.dumps([NAME, "pts_z", "lines_m"])}


@pytest.fixture
def shapes(pg_agent):
    central_exec(pg_agent, f"CREATE TABLE {T} (id integer PRIMARY KEY, name text, "
                           "n numeric(18,6), f double precision, b boolean, d date, "
                           "ts timestamp, tz timestamptz, big bigint, raw bytea, "
                           "geom geometry(Geometry, 2927))")
    central_exec(pg_agent, "CREATE TABLE pts_z (id integer PRIMARY KEY, "
                           "geom geometry(PointZ, 2927))")
    central_exec(pg_agent, "CREATE TABLE lines_m (id integer PRIMARY KEY, "
                           "geom geometry(LineStringM, 2927))")
    for i, (wkt, values) in enumerate(zip(GEOMETRIES, VALUES), start=1):
        central_exec(pg_agent, f"INSERT INTO {T} VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, "
                               "%s, ST_GeomFromText(%s, 2927))", (i, *values, wkt))
    central_exec(pg_agent, "INSERT INTO pts_z VALUES (1, 'SRID=2927;POINT Z (1 2 3.5)'), "
                           "(2, NULL)")
    central_exec(pg_agent, "INSERT INTO lines_m VALUES "
                           "(1, 'SRID=2927;LINESTRING M (0 0 1, 1 1 2)')")
    pg_agent.run("init-central", env=ENV)
    return pg_agent


def as_bytes(rows):
    return [(i, bytes(g) if g is not None else None) for i, g in rows]


def test_values_and_geometries_pull_unchanged(shapes):
    shapes.run("sync", env=ENV)
    proc = shapes.run("verify", env=ENV, check=False)
    assert proc.returncode == 0, proc.stdout
    local = local_exec(shapes, f"SELECT id, AsBinary(geom) FROM {LOCAL_T} ORDER BY id")
    central = central_exec(shapes, f"SELECT id, ST_AsBinary(geom) FROM {T} ORDER BY id")
    assert as_bytes(local)[:5] == as_bytes(central)[:5]
    assert local[5] == (6, None)
    assert local_exec(shapes, "SELECT AsText(geom) FROM pts_z WHERE id = 1") == [
        ("POINT Z(1 2 3.5)",)]
    assert local_exec(shapes, "SELECT AsText(geom) FROM lines_m WHERE id = 1") == [
        ("LINESTRING M(0 0 1, 1 1 2)",)]
    row = f"SELECT name, f, b, d, ts, big, raw FROM {LOCAL_T} WHERE id = 1"
    assert local_exec(shapes, row) == [
        ("Ñandú ☃ 😀", 0.1 + 0.2, 1, "2024-02-29", "2024-02-29 13:45:10.123456", 2**62,
         b"\x00\x01\xff")]


def test_values_and_geometries_push_unchanged(shapes):
    shapes.run("sync", env=ENV)
    local_exec(shapes, f"UPDATE {LOCAL_T} SET name = name || ' ✓', f = 2.5e-300, "
                       "geom = GeomFromText('MULTIPOLYGON(((0 0, 7.123456789 0, 7 7, 0 0)), "
                       "((1 1, 2 1, 2 2, 1 1)))', 2927) WHERE id = 1")
    local_exec(shapes, "UPDATE pts_z SET geom = GeomFromText('POINT Z(5 6 7.25)', 2927) "
                       "WHERE id = 2")
    local_exec(shapes, f"UPDATE {LOCAL_T} SET name = 'still empty' WHERE id = 6")
    local_exec(shapes, f"INSERT INTO {LOCAL_T} (id, name, b, d) "
                       "VALUES (10, 'nuevo', 1, '2025-12-31')")
    summary = json.loads(shapes.run("sync", env=ENV).stdout)
    assert summary["pushed"] == 4
    assert central_exec(shapes, f"SELECT name, ST_AsText(geom) FROM {T} WHERE id = 6") == [
        ("still empty", "POLYGON EMPTY")]
    assert central_exec(shapes, f"SELECT name, f, ST_AsText(geom), b, d::text FROM {T} "
                                "WHERE id IN (1, 10) ORDER BY id") == [
        ("Ñandú ☃ 😀 ✓", 2.5e-300,
         "MULTIPOLYGON(((0 0,7.123456789 0,7 7,0 0)),((1 1,2 1,2 2,1 1)))", True, "2024-02-29"),
        ("nuevo", None, None, True, "2025-12-31")]
    assert central_exec(shapes, "SELECT ST_AsText(geom) FROM pts_z WHERE id = 2") == [
        ("POINT Z (5 6 7.25)",)]
    assert shapes.run("verify", env=ENV, check=False).returncode == 0
