"""The central audit history: every change to a synced table is recorded centrally, with
who made it (database role, application, agent, the analyst's OS user and host), when it
was committed, and each changed column's old and new value, whoever writes, on PostGIS
and on the embedded SpatiaLite central. A table reads back as it stood at any moment of
its history and a row as it stood after any entry; old history is purged; an existing
central upgrades to it while agents of the previous version keep working."""

from __future__ import annotations

import json
import socket
import struct
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import psycopg
import pytest
from conftest import AgentEnv, agent_before, central_exec, local_exec, write_config
from terrafusion_agent.errors import NotFound, TerraFusionError
from terrafusion_agent.migrate import heads
from terrafusion_agent.stores import open_central
from terrafusion_agent.stores.base import Column, GeometryInfo, TableInfo, TableSpec

MIGRATION = "agent/terrafusion_agent/migrations/central/versions/0004_history.py"


# --- helpers --------------------------------------------------------------------------


def is_pg(agent: AgentEnv) -> bool:
    return not agent.central_url.startswith("sqlite:///")


def moment(agent: AgentEnv) -> datetime:
    """Now by the central's clock. SQLite stamps milliseconds: this returns once the
    millisecond of every change made so far is over, so any later change is later."""
    if is_pg(agent):
        return central_exec(agent, "SELECT clock_timestamp()")[0][0]
    now = datetime.now(timezone.utc)
    next_ms = now.replace(microsecond=now.microsecond // 1000 * 1000) + timedelta(
        milliseconds=1)
    while datetime.now(timezone.utc) < next_ms:
        pass
    return now


def floor_ms(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def when(entry: dict) -> datetime:
    return datetime.fromisoformat(entry["committed_at"].replace("Z", "+00:00"))


def agent_id(agent: AgentEnv) -> str:
    return local_exec(agent, "SELECT value FROM tf_meta WHERE key = 'agent_id'")[0][0]


def translate(agent: AgentEnv, dx: int) -> str:
    """SQL moving a geometry ``dx`` feet east, in the central's dialect."""
    return f"ST_Translate(geom, {dx}, 0)" if is_pg(agent) else f"ST_Translate(geom, {dx}, 0, 0)"


def wkt(agent: AgentEnv, prop_id: int) -> str:
    return central_exec(agent, "SELECT ST_AsText(geom) FROM parcels WHERE prop_id = %s",
                        (prop_id,))[0][0]


def by_key(rows) -> list[tuple]:
    return sorted(rows, key=lambda r: r[0])


@pytest.fixture
def store(request):
    """The central store of an agent, closed at the end."""
    opened = []

    def open_for(agent: AgentEnv):
        opened.append(open_central(agent.load()))
        return opened[-1]

    yield open_for
    for s in opened:
        s.close()


@pytest.fixture(params=["spatialite", "postgis"])
def two_agents(request, tmp_path) -> tuple[AgentEnv, AgentEnv]:
    """Two local copies of one demo county, both synced."""
    if request.param == "postgis":
        url = request.getfixturevalue("pg_url")
    else:
        url = f"sqlite:///{tmp_path / 'central.sqlite'}"
    a = AgentEnv(tmp_path / "A", write_config(tmp_path / "A", url), url)
    b = AgentEnv(tmp_path / "B", write_config(tmp_path / "B", url), url)
    a.run("init-central", "--demo-parcels", "60")
    a.run("sync")
    b.run("sync")
    return a, b


@pytest.fixture
def county(two_agents) -> AgentEnv:
    return two_agents[0]


def sync_as(agent: AgentEnv, os_user: str) -> tuple[datetime, datetime]:
    """Sync ``agent`` as OS user ``os_user``; the central's clock before and after."""
    before = moment(agent)
    agent.run("sync", env={"LOGNAME": os_user, "USER": os_user})
    return before, moment(agent)


def within(entry: dict, before: datetime, after: datetime) -> bool:
    return floor_ms(before) <= when(entry) <= after


# --- who, when, what ------------------------------------------------------------------


def test_two_agents_pushes_are_recorded_with_agent_os_user_host_time_and_values(
        two_agents, store):
    a, b = two_agents
    central = store(a)
    info = central.table_info("parcels")
    old_owner = central_exec(a, "SELECT owner_name FROM parcels WHERE prop_id = 100007")[0][0]
    old_geom = wkt(a, 100009)
    local_exec(a, "UPDATE parcels SET owner_name = 'NGUYEN LINH' WHERE prop_id = 100007")
    local_exec(a, "UPDATE parcels SET geom = ST_Translate(geom, 5, 0, 0) WHERE prop_id = 100009")
    a_before, a_after = sync_as(a, "anna")
    local_exec(b, "DELETE FROM parcels WHERE prop_id = 100008")
    b_before, b_after = sync_as(b, "ben")

    [owner] = central.history(info, (100007,))
    assert owner["op"] == "update" and owner["key"] == [100007]
    assert owner["columns"] == ["owner_name"]
    assert owner["old"] == {"owner_name": old_owner}
    assert owner["new"] == {"owner_name": "NGUYEN LINH"}
    assert owner["agent"] == {"id": agent_id(a), "os_user": "anna",
                              "host": socket.gethostname()}
    assert within(owner, a_before, a_after)
    [moved] = central.history(info, (100009,))
    assert moved["columns"] == ["geom"]
    assert moved["old"]["geom"] == old_geom and moved["new"]["geom"] == wkt(a, 100009)
    assert moved["committed_at"] == owner["committed_at"]  # one push, one transaction
    [gone] = central.history(info, (100008,))
    assert gone["op"] == "delete" and gone["new"] == {}
    assert gone["columns"] == list(info.column_names)
    assert gone["old"]["prop_id"] == 100008 and gone["old"]["geom"].startswith("MULTIPOLYGON")
    assert gone["agent"] == {"id": agent_id(b), "os_user": "ben",
                             "host": socket.gethostname()}
    assert within(gone, b_before, b_after) and when(gone) > when(owner)
    central_exec(a, "UPDATE parcels SET year_built = 1999 WHERE prop_id = 100013")
    [other] = central.history(info, (100013,))
    assert other["agent"] is None and other["application"] is None
    assert other["new"] == {"year_built": 1999}
    if is_pg(a):
        assert owner["application"] == gone["application"] == "terrafusion-agent"
        assert owner["role"] == central_exec(a, "SELECT session_user")[0][0]
    else:
        assert owner["role"] is owner["application"] is None


def test_edits_by_two_database_roles_are_recorded_with_role_application_and_values(
        pg_agent, store):
    pg_agent.run("init-central", "--demo-parcels", "60")
    for role in ("tf_hist_alice", "tf_hist_bob"):
        central_exec(pg_agent, f"DO $$ BEGIN CREATE ROLE {role} LOGIN; EXCEPTION WHEN "
                               "duplicate_object THEN NULL; END $$")
        # nothing on the bookkeeping: the capture writes it as its owner
        central_exec(pg_agent, f"GRANT USAGE ON SCHEMA public TO {role}")
        central_exec(pg_agent, f"GRANT SELECT, UPDATE ON parcels TO {role}")
    central = store(pg_agent)
    info = central.table_info("parcels")
    owner = central_exec(pg_agent, "SELECT owner_name FROM parcels WHERE prop_id = 100011")[0][0]
    value, geom = central_exec(pg_agent, "SELECT land_value::float8, ST_AsText(geom) "
                                         "FROM parcels WHERE prop_id = 100012")[0]

    def edit_as(role: str, application: str, sql: str) -> tuple[datetime, datetime]:
        """Run ``sql`` as ``role``; the clock once it ran (before its commit) and after
        the commit."""
        with psycopg.connect(pg_agent.central_url, user=role, application_name=application,
                             autocommit=True) as conn:
            with conn.transaction():
                conn.execute(sql)
                ran = conn.execute("SELECT clock_timestamp()").fetchone()[0]
            return ran, conn.execute("SELECT clock_timestamp()").fetchone()[0]

    alice = edit_as("tf_hist_alice", "assessment-system",
                    "UPDATE parcels SET owner_name = 'ALICE SMITH' WHERE prop_id = 100011")
    bob = edit_as("tf_hist_bob", "psql", "UPDATE parcels SET land_value = land_value + 1, "
                                         "geom = ST_Translate(geom, 2, 3) WHERE prop_id = 100012")

    [a] = central.history(info, (100011,))
    assert (a["role"], a["application"], a["agent"]) == ("tf_hist_alice", "assessment-system",
                                                         None)
    assert (a["op"], a["columns"]) == ("update", ["owner_name"])
    assert (a["old"], a["new"]) == ({"owner_name": owner}, {"owner_name": "ALICE SMITH"})
    assert alice[0] <= when(a) <= alice[1]  # the commit's time, not the change's
    [b] = central.history(info, (100012,))
    assert (b["role"], b["application"], b["agent"]) == ("tf_hist_bob", "psql", None)
    assert b["columns"] == ["land_value", "geom"]
    assert b["old"] == {"land_value": value, "geom": geom}
    assert b["new"] == {"land_value": value + 1, "geom": wkt(pg_agent, 100012)}
    assert bob[0] <= when(b) <= bob[1] and when(a) < when(b)
    assert central.history(info, (100012,), until=a["committed_at"]) == []
    assert central.history(info, (100012,), since=b["committed_at"]) == [b]


def test_a_statement_that_changes_nothing_records_nothing(county):
    counts = "SELECT (SELECT count(*) FROM tf_history), (SELECT count(*) FROM tf_history_tx)"
    before = central_exec(county, counts)
    central_exec(county, "UPDATE parcels SET owner_name = owner_name")
    central_exec(county, "DELETE FROM parcels WHERE prop_id < 0")
    assert central_exec(county, counts) == before


def test_an_unreadable_time_or_key_is_refused_in_one_sentence_naming_it(county, store):
    central = store(county)
    info = central.table_info("parcels")
    with pytest.raises(TerraFusionError, match=r'key \["abc"\].* table parcels.*\.$'):
        central.history(info, ("abc",))
    with pytest.raises(TerraFusionError, match="keyed by 1 column"):
        central.history(info, (1, 2))
    with pytest.raises(TerraFusionError, match="The start time 'yesterday' is not an "
                                               "ISO-8601 time"):
        central.history(info, (100001,), since="yesterday")
    with pytest.raises(TerraFusionError, match="The time 'soon' is not an ISO-8601 time"):
        central.rows_as_of(info, "soon")


# --- the past -------------------------------------------------------------------------


def test_rows_as_of_a_moment_equal_a_copy_saved_at_that_moment(county, store):
    central = store(county)
    parcels, sales = central.table_info("parcels"), central.table_info("sales")
    central_exec(county, "UPDATE parcels SET owner_name = 'EARLIER' WHERE prop_id = 100001")
    central_exec(county, "DELETE FROM parcels WHERE prop_id = 100002")
    at = moment(county)
    saved = by_key(central.read_rows(parcels))
    saved_sales = by_key(central.read_rows(sales))
    local_exec(county, "UPDATE parcels SET owner_name = 'PUSHED', acres = 9.5 "
                       "WHERE prop_id = 100003")
    local_exec(county, "DELETE FROM parcels WHERE prop_id = 100004")
    county.run("sync")
    for sql in (
            "UPDATE parcels SET owner_name = 'LATER', land_value = NULL "
            "WHERE prop_id BETWEEN 100010 AND 100019",
            f"UPDATE parcels SET geom = {translate(county, 3)} WHERE prop_id = 100020",
            "DELETE FROM parcels WHERE prop_id IN (100021, 100022)",
            "INSERT INTO parcels (prop_id, geo_id, owner_name) VALUES (900001, 'N-1', 'NEW')",
            "UPDATE parcels SET prop_id = prop_id + 800000 WHERE prop_id BETWEEN 100030 AND "
            "100034",
            "DELETE FROM parcels WHERE prop_id = 100040",
            "INSERT INTO parcels (prop_id, geo_id, owner_name) VALUES (100040, 'AGAIN', 'X')",
            "INSERT INTO parcels (prop_id, geo_id) VALUES (100002, 'BACK')",
            "UPDATE parcels SET owner_name = 'FIRST' WHERE prop_id = 100050",
            "UPDATE parcels SET owner_name = 'SECOND', year_built = 1900 "
            "WHERE prop_id = 100050",
            "UPDATE parcels SET impr_value = impr_value + 1",
            "UPDATE sales SET sale_date = '2030-01-01' WHERE sale_id <= 3",
            "DELETE FROM sales WHERE sale_id = 4"):
        central_exec(county, sql)
    assert by_key(central.read_rows(parcels)) != saved
    assert by_key(central.rows_as_of(parcels, at.isoformat())) == saved
    assert by_key(central.rows_as_of(sales, at.isoformat())) == saved_sales
    # a time without a zone is UTC
    naive = at.astimezone(timezone.utc).replace(tzinfo=None).isoformat()
    assert by_key(central.rows_as_of(parcels, naive)) == saved


def test_rows_as_of_a_time_before_the_history_starts_is_refused_with_that_start(
        county, store):
    central = store(county)
    info = central.table_info("parcels")
    start = central.history_start("parcels")
    assert start is not None
    with pytest.raises(TerraFusionError) as err:
        central.rows_as_of(info, "2000-01-01T00:00:00Z")
    assert str(err.value) == (f"The history of table parcels starts at {start}; it cannot "
                              "show the table as of 2000-01-01T00:00:00.000000Z.")
    assert central.history_start("no such table") is None


def test_row_version_is_the_row_after_an_update_and_none_after_a_delete(county, store):
    central = store(county)
    info = central.table_info("parcels")
    central_exec(county, "UPDATE parcels SET owner_name = 'FIRST' WHERE prop_id = 100005")
    first = central.rows_by_key(info, [(100005,)])[(100005,)]
    central_exec(county, "UPDATE parcels SET owner_name = 'SECOND', land_value = 1, "
                         f"geom = {translate(county, 7)} WHERE prop_id = 100005")
    second = central.rows_by_key(info, [(100005,)])[(100005,)]
    central_exec(county, "UPDATE parcels SET owner_name = 'THIRD' WHERE prop_id = 100005")
    central_exec(county, "DELETE FROM parcels WHERE prop_id = 100005")
    deleted, third, after_second, after_first = central.history(info, (100005,))
    assert [e["op"] for e in (deleted, third, after_second, after_first)] == [
        "delete", "update", "update", "update"]
    assert central.row_version(info, (100005,), after_first["id"]) == first
    assert central.row_version(info, (100005,), after_second["id"]) == second
    assert central.row_version(info, (100005,), deleted["id"]) is None
    with pytest.raises(NotFound, match="Table parcels has no history entry"):
        central.row_version(info, (100006,), after_first["id"])


# --- retention ------------------------------------------------------------------------


def test_purge_drops_only_history_older_than_its_retention_and_moves_its_start(county,
                                                                              store):
    central = store(county)
    info = central.table_info("parcels")
    for prop_id in (100005, 100006, 100007):
        central_exec(county, "UPDATE parcels SET owner_name = 'X' WHERE prop_id = %s",
                     (prop_id,))
    # as if the history had been kept for 100 days, two of these changes 40 days ago
    if is_pg(county):
        central_exec(county, "UPDATE tf_settings SET value = to_char(now() AT TIME ZONE "
                             "'UTC' - interval '100 days', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
                             "WHERE key = 'history_start:parcels'")
        central_exec(county, "UPDATE tf_history_tx SET committed_at = committed_at - "
                             "interval '40 days' WHERE id IN (SELECT tx FROM tf_history "
                             "WHERE pk IN ('[100005]', '[100006]'))")
    else:
        central_exec(county, "UPDATE tf_settings SET value = strftime('%Y-%m-%dT%H:%M:%fZ', "
                             "'now', '-100 days') WHERE key = 'history_start:parcels'")
        central_exec(county, "UPDATE tf_history_tx SET committed_at = strftime("
                             "'%Y-%m-%dT%H:%M:%fZ', committed_at, '-40 days') WHERE id IN "
                             "(SELECT tx FROM tf_history WHERE pk IN ('[100005]', '[100006]'))")
    old = [central.history(info, (p,))[0] for p in (100005, 100006)]
    recent = central.history(info, (100007,))
    start = datetime.fromisoformat(central.history_start("parcels").replace("Z", "+00:00"))
    assert start < min(when(e) for e in old)

    # the purge runs once an hour per central: make it due now
    central_exec(county, "DELETE FROM tf_settings WHERE key = 'purged_at'")
    county.run("sync", env={"TERRAFUSION_CENTRAL__HISTORY_RETENTION_DAYS": "30"})
    assert central.history(info, (100005,)) == central.history(info, (100006,)) == []
    assert central.history(info, (100007,)) == recent
    assert central.history_start("parcels") == max(e["committed_at"] for e in old)
    assert central.purge_history(30) == 0
    assert central.purge_history(36500) == 0
    with pytest.raises(TerraFusionError, match="starts at"):
        central.rows_as_of(info, min(e["committed_at"] for e in old))


# --- what the capture copes with ------------------------------------------------------

# (SpatiaLite refuses quotes in the name of a table with geometry, not in its columns)
HOSTILE = TableSpec(TableInfo("field notes é", (
    Column("note id", "integer", False, "bigint"),
    Column('Kind\'s "kind"', "text", False),
    Column("amount €", "real", db_type="numeric(12,2)"),
    Column("exact", "decimal", db_type="numeric"),
    Column("seen, when", "date"),
    Column("checked?", "boolean"),
    Column("photo", "blob"),
    Column("geom", "geometry"),
), ("note id",), GeometryInfo("geom", 2927, "POINT")))


def point(x: float, y: float) -> bytes:
    return struct.pack("<BIdd", 1, 1, x, y)


def test_a_table_with_hostile_names_tracked_later_has_its_history_from_then(county, store):
    central = store(county)
    parcels_start = central.history_start("parcels")
    central.create_tables([(HOSTILE, [
        (i, f"it's {i}", Decimal("12.50"), Decimal("1.25"), "2024-02-29", i % 2 == 0,
         b"\x00\\\x01" if i == 1 else None, point(1050000.125 + i, 80000 + i))
        for i in range(1, 6)])])
    info = central.table_info(HOSTILE.info.name)
    before = moment(county)
    central.install_tracking(info)
    assert central.tracking_installed(info.name)
    start = central.history_start(info.name)
    assert start > parcels_start and floor_ms(before) <= datetime.fromisoformat(
        start.replace("Z", "+00:00"))
    at = moment(county)
    saved = by_key(central.read_rows(info))
    with central.write_session("agent-with-hostile-names") as ws:
        ws.update(info, [((1,), {'Kind\'s "kind"': 'say "hi"', "checked?": True,
                                 "photo": b"\xff\x00", "geom": point(1.5, 2.25)})])
        ws.delete(info, [(2,)])
        ws.insert(info, [{"note id": 9, 'Kind\'s "kind"': "new", "seen, when": "2025-01-31"}])
    assert by_key(central.rows_as_of(info, at.isoformat())) == saved
    [changed] = central.history(info, (1,))
    assert changed["columns"] == ['Kind\'s "kind"', "checked?", "photo", "geom"]
    assert changed["old"] == {'Kind\'s "kind"': "it's 1", "checked?": False, "photo": "005c01",
                              "geom": "POINT(1050001.125 80001)"}
    assert changed["new"] == {'Kind\'s "kind"': 'say "hi"', "checked?": True, "photo": "ff00",
                              "geom": "POINT(1.5 2.25)"}
    assert changed["old"]["geom"] == "POINT(1050001.125 80001)"
    assert changed["agent"]["id"] == "agent-with-hostile-names"
    [gone] = central.history(info, (2,))
    assert gone["old"]["exact"] == "1.25" and gone["old"]["seen, when"] == "2024-02-29"
    [added] = central.history(info, ("9",))
    assert added["op"] == "insert" and added["new"]["seen, when"] == "2025-01-31"


def test_capture_follows_columns_added_and_dropped_until_init_central_refreshes_it(
        pg_agent, store):
    pg_agent.run("init-central", "--demo-parcels", "30")
    central = store(pg_agent)
    start = central.history_start("parcels")
    central_exec(pg_agent, "ALTER TABLE parcels ADD COLUMN note text")
    central_exec(pg_agent, "UPDATE parcels SET note = 'one', owner_name = 'X' "
                           "WHERE prop_id = 100001")
    central_exec(pg_agent, "ALTER TABLE parcels DROP COLUMN legal_desc")
    central_exec(pg_agent, "UPDATE parcels SET note = 'two' WHERE prop_id = 100001")
    central_exec(pg_agent, "DELETE FROM parcels WHERE prop_id = 100002")
    info = central.table_info("parcels")
    second, first = central.history(info, (100001,))
    assert (first["columns"], first["new"]) == (["owner_name", "note"],
                                                {"owner_name": "X", "note": "one"})
    assert (second["old"], second["new"]) == ({"note": "one"}, {"note": "two"})
    [gone] = central.history(info, (100002,))
    assert gone["columns"] == list(info.column_names)
    pg_agent.run("init-central")
    assert central.tracking_installed("parcels") and central.history_start("parcels") == start
    central_exec(pg_agent, "UPDATE parcels SET note = 'three' WHERE prop_id = 100001")
    assert central.history(info, (100001,))[0]["new"] == {"note": "three"}


def test_an_embedded_centrals_capture_is_remade_for_new_columns_and_its_history_restarts(
        sqlite_agent, store):
    sqlite_agent.run("init-central", "--demo-parcels", "20")
    sqlite_agent.run("sync")
    central = store(sqlite_agent)
    start = central.history_start("parcels")
    central_exec(sqlite_agent, "ALTER TABLE parcels ADD COLUMN flood_zone TEXT")
    before = moment(sqlite_agent)
    sqlite_agent.run("sync")
    restarted = central.history_start("parcels")
    assert restarted > start and datetime.fromisoformat(
        restarted.replace("Z", "+00:00")) >= floor_ms(before)
    central_exec(sqlite_agent, "UPDATE parcels SET flood_zone = 'AE' WHERE prop_id = 100001")
    [added] = central.history(central.table_info("parcels"), (100001,))
    assert added["new"] == {"flood_zone": "AE"}
    sqlite_agent.run("sync")
    assert central.history_start("parcels") == restarted


def test_tracking_installed_is_false_while_a_capture_trigger_is_disabled(pg_agent, store):
    pg_agent.run("init-central", "--demo-parcels", "10")
    central = store(pg_agent)
    assert central.tracking_installed("parcels")
    central_exec(pg_agent, "ALTER TABLE parcels DISABLE TRIGGER tf_capture_del")
    assert not central.tracking_installed("parcels")
    proc = pg_agent.run("sync", check=False)
    assert proc.returncode == 1
    assert "Table parcels is not tracked in the central database" in proc.stderr


# --- the upgrade ----------------------------------------------------------------------



def test_upgrade_from_c0003_starts_history_and_agents_of_0_2_0_keep_syncing(
        central_url, tmp_path, store):
    old_code = {"PYTHONPATH": str(agent_before(MIGRATION, tmp_path / "previous"))}
    old = AgentEnv(tmp_path / "old", write_config(tmp_path / "old", central_url), central_url)
    old.run("init-central", "--demo-parcels", "40", env=old_code)
    assert central_exec(old, "SELECT version_num FROM tf_schema_version") == [("c0003",)]
    old.run("sync", env=old_code)
    central_exec(old, "UPDATE parcels SET owner_name = 'BEFORE' WHERE prop_id = 100001")
    old.run("sync", env=old_code)

    before = moment(old)
    new = AgentEnv(tmp_path / "new", write_config(tmp_path / "new", central_url), central_url)
    new.run("init-central")
    after = moment(old)
    assert central_exec(old, "SELECT version_num FROM tf_schema_version") == [
        (head,) for head in heads("central")]
    central = store(new)
    info = central.table_info("parcels")
    for table in ("parcels", "districts", "sales"):
        assert central.tracking_installed(table)
        start = datetime.fromisoformat(central.history_start(table).replace("Z", "+00:00"))
        assert floor_ms(before) <= start <= after
    assert central.history(info, (100001,)) == []  # made before the upgrade

    central_exec(old, "UPDATE parcels SET owner_name = 'AFTER' WHERE prop_id = 100002")
    local_exec(old, "UPDATE parcels SET land_value = 7 WHERE prop_id = 100003")
    summary = json.loads(old.run("sync", env=old_code).stdout)
    assert summary["pulled"] == 1 and summary["pushed"] == 1
    assert local_exec(old, "SELECT owner_name FROM parcels WHERE prop_id = 100002") == [
        ("AFTER",)]
    [pushed] = central.history(info, (100003,))
    assert pushed["agent"] == {"id": agent_id(old), "os_user": None, "host": None}
    assert pushed["new"] == {"land_value": 7.0}
    assert old.run("verify", env=old_code).returncode == 0

    new.run("sync")
    local_exec(new, "UPDATE parcels SET land_value = 8 WHERE prop_id = 100003")
    new.run("sync")
    old.run("sync", env=old_code)
    assert local_exec(old, "SELECT land_value FROM parcels WHERE prop_id = 100003") == [(8.0,)]
    assert [e["new"] for e in central.history(info, (100003,))] == [
        {"land_value": 8.0}, {"land_value": 7.0}]
    with pytest.raises(TerraFusionError, match="starts at"):
        central.rows_as_of(info, before.isoformat())
