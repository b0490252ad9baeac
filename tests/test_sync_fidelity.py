"""Values and geometries round-trip unchanged, in both directions (PostGIS central, and
the embedded central for the numerics it can hold)."""

import json
from decimal import Decimal

import pytest
from conftest import central_exec, local_exec
from osgeo import ogr
from terrafusion_agent.stores.base import TableInfo
from terrafusion_agent.stores.local import LocalStore
from terrafusion_agent.stores.rows import same
from terrafusion_agent.stores.spatialite import connect

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


def local_values(agent, table=NAME, column="n") -> dict:
    """{id: value} of a column as the agent reads its local copy: a decimal its double
    does not hold comes back as a Decimal with every digit, any other as the double."""
    store = LocalStore.open(agent.local_path)
    try:
        info = store.table_info(table)
        i, k = info.column_names.index(column), info.column_names.index("id")
        return {row[k]: row[i] for row in store.read_rows(info)}
    finally:
        store.close()


def number(value):
    """The number a value stands for: a double as the digits it prints as."""
    return Decimal(repr(value)) if isinstance(value, float) else value


def numbers(values: dict) -> dict:
    return {k: number(v) for k, v in values.items()}


def central_numbers(agent, table=T, column="n") -> dict:
    return dict(central_exec(agent, f"SELECT id, {column} FROM {table}"))


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
    assert numbers(local_values(shapes)) == central_numbers(shapes)
    assert local_values(shapes)[1] == Decimal("123456789012.123456")


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


# --- exact numerics -----------------------------------------------------------------------

POLICY = "TERRAFUSION_SYNC__CONFLICT_POLICY"


def sync(agent, **env) -> dict:
    return json.loads(agent.run("sync", env={**ENV, **env}).stdout)


def verify(agent) -> tuple[int, dict]:
    proc = agent.run("verify", env=ENV, check=False)
    return proc.returncode, json.loads(proc.stdout)


def test_decimals_compare_as_numbers():
    info = TableInfo.from_json({"name": "t", "pk": ["id"], "geometry": None,
                                "columns": [["id", "integer", False], ["n", "decimal", True]]})

    def equal(a, b):
        return same(info, "n", {"n": a}, {"n": b})

    assert equal(Decimal("1.50"), 1.5) and equal(Decimal("1.500000"), Decimal("15E-1"))
    assert equal(Decimal("5.000000"), 5) and equal(Decimal("5"), 5.0)
    assert equal(Decimal("-0"), 0.0) and equal(-0.0, Decimal("0.000000"))
    assert equal(Decimal("0.3"), 0.3) and equal(Decimal("123456789012.12346"), 123456789012.12346)
    assert not equal(Decimal("123456789012.123456"), 123456789012.12346)
    assert not equal(Decimal("123456789012.123456"), Decimal("123456789012.123457"))
    assert not equal(Decimal("0.1"), None) and equal(None, None)


def test_exact_numerics_read_as_real_numbers_in_ogr(shapes):
    sync(shapes)
    source = ogr.Open(str(shapes.local_path))  # the layer lives as long as its source
    layer = source.GetLayerByName(LOCAL_T.strip('"'))
    field = layer.GetLayerDefn().GetFieldDefn(layer.GetLayerDefn().GetFieldIndex("n"))
    assert field.GetType() == ogr.OFTReal
    values = {f.GetFID(): f.GetField("n") for f in layer}
    assert values[1] == 123456789012.12346 and values[3] == -1.5 and values[4] is None
    assert all(isinstance(v, float) for v in values.values() if v is not None)


def test_verify_detects_a_difference_in_the_sixth_decimal(shapes):
    sync(shapes)
    central_exec(shapes, f"UPDATE {T} SET n = 123456789012.123457 WHERE id = 1")
    code, report = verify(shapes)
    assert code == 1 and report["tables"][NAME]["equal"] is False
    sync(shapes)  # the incremental pull brings the new digit
    assert local_values(shapes)[1] == Decimal("123456789012.123457")
    assert verify(shapes)[0] == 0


def test_central_changes_between_exact_and_double_values_are_pulled(shapes):
    sync(shapes)
    central_exec(shapes, f"UPDATE {T} SET n = CASE id WHEN 1 THEN 2.25 "
                         "ELSE 987654321098.765432 END WHERE id IN (1, 3)")
    sync(shapes)
    values = local_values(shapes)
    assert values[1] == 2.25 and isinstance(values[1], float)  # no stale digits left
    assert values[3] == Decimal("987654321098.765432")
    assert verify(shapes)[0] == 0


def test_local_insert_and_update_reach_central_exactly(shapes):
    sync(shapes)
    # a double's every digit: PostgreSQL's own float8 to numeric would keep only 15
    local_exec(shapes, f"INSERT INTO {LOCAL_T} (id, n) VALUES (10, 123456789012.12346)")
    local_exec(shapes, f"UPDATE {LOCAL_T} SET n = 9876543210.123457 WHERE id = 2")
    local_exec(shapes, f"UPDATE {LOCAL_T} SET name = 'renamed' WHERE id = 1")
    assert sync(shapes)["pushed"] == 3
    assert central_numbers(shapes) == {
        1: Decimal("123456789012.123456"), 2: Decimal("9876543210.123457"),
        3: Decimal("-1.5"), 4: None, 5: Decimal("0.000001"), 6: None,
        10: Decimal("123456789012.123460")}
    assert verify(shapes)[0] == 0


def test_a_row_pushed_back_whole_keeps_every_digit(shapes):
    sync(shapes)
    local_exec(shapes, f"UPDATE {LOCAL_T} SET name = 'kept' WHERE id = 1")
    central_exec(shapes, f"DELETE FROM {T} WHERE id = 1")
    summary = sync(shapes, **{POLICY: "local_wins"})
    assert summary["conflicts"] == 1
    assert central_exec(shapes, f"SELECT name, n FROM {T} WHERE id = 1") == [
        ("kept", Decimal("123456789012.123456"))]
    assert verify(shapes)[0] == 0


def test_equal_numbers_spelled_differently_are_no_change_in_the_merge(shapes):
    sync(shapes)
    # central rewrites the same numbers (-1.5 as -1.50, 0.000001 as 0.0000010, 0 as
    # 0.000) and changes others
    central_exec(shapes, f"UPDATE {T} SET n = -1.50, name = 'central' WHERE id = 3")
    central_exec(shapes, f"UPDATE {T} SET n = 0.0000010, name = 'central' WHERE id = 5")
    central_exec(shapes, f"UPDATE {T} SET n = 0.000, big = 7 WHERE id = 2")
    # locally: real changes of two (the trigger records 0.000001, a double, as the
    # 17 digits 9.9999999999999995e-07), and -0 for 0 (no change) beside another edit
    local_exec(shapes, f"UPDATE {LOCAL_T} SET n = 2.5 WHERE id = 3")
    local_exec(shapes, f"UPDATE {LOCAL_T} SET n = 3.5 WHERE id = 5")
    local_exec(shapes, f"UPDATE {LOCAL_T} SET n = -0.0, name = 'local' WHERE id = 2")
    summary = sync(shapes)
    assert summary["conflicts"] == 0
    assert central_exec(shapes, f"SELECT id, name, n, big FROM {T} WHERE id IN (2, 3, 5) "
                                "ORDER BY id") == [
        (2, "local", Decimal("0.000000"), 7), (3, "central", Decimal("2.500000"), 0),
        (5, "central", Decimal("3.500000"), 1)]
    assert verify(shapes)[0] == 0


def test_a_conflict_shows_and_restores_every_digit(shapes):
    sync(shapes)
    local_exec(shapes, f"UPDATE {LOCAL_T} SET n = 1.25 WHERE id = 1")
    central_exec(shapes, f"UPDATE {T} SET n = 123456789012.123457 WHERE id = 1")
    assert sync(shapes)["conflicts"] == 1
    [c] = json.loads(shapes.run("conflicts", "list", env=ENV).stdout)
    assert (c["base"]["n"], c["local"]["n"], c["central"]["n"]) == (
        "123456789012.123456", 1.25, "123456789012.123457")
    shapes.run("conflicts", "resolve", str(c["id"]), "--keep", "central", env=ENV)
    assert local_values(shapes)[1] == Decimal("123456789012.123457")
    sync(shapes)
    assert verify(shapes)[0] == 0


def test_a_copy_made_before_exact_numerics_upgrades_and_keeps_its_edits(shapes):
    sync(shapes)
    # the copy as the previous version left it: numeric columns were doubles, whose
    # triggers recorded bases as 17 digits (0.000001 as 9.9999999999999995e-07)
    store = LocalStore.open(shapes.local_path)
    with store.writing():
        info = store.table_info(NAME)
        old = TableInfo.from_json({**info.to_json(), "columns": [
            [c.name, "real" if c.name == "n" else c.kind, c.nullable, c.db_type]
            for c in info.columns]})
        store.save_table_info(old)
        store.install_capture(old)
        store.conn.execute("DELETE FROM tf_decimals")
    store.close()
    local_exec(shapes, f"UPDATE {LOCAL_T} SET name = 'edited before' WHERE id = 5")
    central_exec(shapes, f"UPDATE {T} SET n = 2 WHERE id = 5")
    summary = sync(shapes)
    assert summary["tables"][NAME]["mode"] == "full" and summary["conflicts"] == 0
    assert central_exec(shapes, f"SELECT name, n FROM {T} WHERE id = 5") == [
        ("edited before", Decimal("2.000000"))]
    assert local_values(shapes)[1] == Decimal("123456789012.123456")
    assert verify(shapes)[0] == 0


def test_embedded_central_numerics_round_trip_exactly(sqlite_agent):
    """A NUMERIC column of an SQLite central holds integers beyond a double exactly,
    whatever size it declares (SQLite holds no column to it)."""
    env = {"TERRAFUSION_SYNC__TABLES": '["nums"]'}
    conn = connect(sqlite_agent.central_url[len("sqlite:///"):], create=True)
    conn.execute("CREATE TABLE nums (id INTEGER PRIMARY KEY, label TEXT, n NUMERIC, "
                 "d DECIMAL(10,2))")
    conn.close()
    central_exec(sqlite_agent, "INSERT INTO nums VALUES (1, 'a', 12345678901234567, 1.5), "
                               "(2, 'b', 0.1 + 0.2, 98765432109876543), (3, 'c', NULL, NULL)")
    sqlite_agent.run("init-central", env=env)
    sqlite_agent.run("sync", env=env)
    assert local_values(sqlite_agent, "nums") == {
        1: Decimal("12345678901234567"), 2: 0.1 + 0.2, 3: None}
    assert local_values(sqlite_agent, "nums", "d") == {
        1: 1.5, 2: Decimal("98765432109876543"), 3: None}
    assert sqlite_agent.run("verify", env=env, check=False).returncode == 0
    local_exec(sqlite_agent, "UPDATE nums SET label = 'kept' WHERE id = 1")
    central_exec(sqlite_agent, "DELETE FROM nums WHERE id = 1")
    sqlite_agent.run("sync", env={**env, POLICY: "local_wins"})
    assert central_exec(sqlite_agent, "SELECT label, n, typeof(n) FROM nums WHERE id = 1") == [
        ("kept", 12345678901234567, "integer")]
    assert sqlite_agent.run("verify", env=env, check=False).returncode == 0


def test_unconstrained_numerics_beyond_a_doubles_range_arrive_exactly(pg_agent):
    """Any numeric: far beyond a double's range (a double would be infinite or zero),
    more digits than a double keeps, in a table keyed by two columns in another order
    than its columns'."""
    env = {"TERRAFUSION_SYNC__TABLES": '["pairs"]'}
    central_exec(pg_agent, "CREATE TABLE pairs (a integer, b text, n numeric, "
                           "PRIMARY KEY (b, a))")
    values = {(1, "x"): Decimal("1e400"), (2, "x"): Decimal("-1e-400"),
              (1, "y"): Decimal("12345678901234567890.123"), (2, "y"): Decimal("0.1"),
              (3, "y"): Decimal("-Infinity"), (4, "y"): None}
    for (a, b), n in values.items():
        central_exec(pg_agent, "INSERT INTO pairs VALUES (%s, %s, %s)", (a, b, n))
    pg_agent.run("init-central", env=env)
    pg_agent.run("sync", env=env)
    store = LocalStore.open(pg_agent.local_path)
    try:
        info = store.table_info("pairs")
        local = {(a, b): n for a, b, n in store.read_rows(info)}
    finally:
        store.close()
    assert numbers(local) == values
    assert pg_agent.run("verify", env=env, check=False).returncode == 0
