"""Incremental two-way sync on both central kinds (PostGIS also through PgBouncer):
edits, merges, conflicts, keys."""

import json

import pytest
from conftest import (
    AgentEnv,
    agent_of_kind,
    central_exec,
    local_exec,
    synced_copy,
    write_config,
)
from terrafusion_agent.stores.spatialite import connect


def sync(agent, **env):
    return json.loads(agent.run("sync", env=env or None).stdout)


def verify(agent):
    proc = agent.run("verify", check=False)
    return proc.returncode, json.loads(proc.stdout)


def conflicts(agent, *flags):
    return json.loads(agent.run("conflicts", "list", *flags).stdout)


@pytest.fixture(params=["spatialite", "postgis", "pgbouncer"])
def any_agent(request, tmp_path) -> AgentEnv:
    """Both central kinds, and PostGIS through PgBouncer in transaction pooling mode."""
    return agent_of_kind(request, tmp_path, request.param)


@pytest.fixture(params=["spatialite", "postgis", "pgbouncer"])
def synced(request, tmp_path) -> AgentEnv:
    """A 200-parcel county synced once, on each central kind."""
    return synced_copy(request, tmp_path, request.param)


def owner(agent_or_rows, prop_id, where="central"):
    sql = "SELECT owner_name FROM parcels WHERE prop_id = %s"
    if where == "central":
        return central_exec(agent_or_rows, sql, (prop_id,))[0][0]
    return local_exec(agent_or_rows, sql.replace("%s", "?"), (prop_id,))[0][0]


def test_rows_the_agent_applies_are_not_captured_as_edits(synced):
    central_exec(synced, "UPDATE parcels SET owner_name = 'X' WHERE prop_id <= 100050")
    summary = sync(synced)
    assert summary["rows"]["pull"]["update"] == 50
    assert summary["pending"] == 0
    assert local_exec(synced, "SELECT count(*) FROM tf_local_changes") == [(0,)]


def test_local_update_reaches_central(synced):
    local_exec(synced, "UPDATE parcels SET owner_name = 'NGUYEN LINH' WHERE prop_id = 100007")
    summary = sync(synced)
    assert summary["rows"]["push"] == {"insert": 0, "update": 1, "delete": 0}
    assert owner(synced, 100007) == "NGUYEN LINH"
    assert verify(synced)[0] == 0


def test_central_update_is_pulled_incrementally(synced):
    central_exec(synced, "UPDATE parcels SET market_value = 123456.78 WHERE prop_id = 100011")
    summary = sync(synced)
    assert summary["tables"]["parcels"] == {"mode": "incremental", "pulled": 1}
    assert summary["tables"]["sales"] == {"mode": "incremental", "pulled": 0}
    assert local_exec(synced, "SELECT market_value FROM parcels WHERE prop_id = 100011") == [
        (123456.78,)]
    assert verify(synced)[0] == 0


def test_central_insert_and_delete_are_pulled(synced):
    gone = [r[0] for r in central_exec(synced, "SELECT sale_id FROM sales ORDER BY sale_id "
                                               "LIMIT 3")]
    central_exec(synced, "DELETE FROM sales WHERE sale_id IN (%s, %s, %s)", tuple(gone))
    central_exec(synced, "INSERT INTO sales (prop_id, sale_date, sale_price) "
                         "VALUES (100002, '2026-11-01', 455000)")
    summary = sync(synced)
    assert summary["rows"]["pull"] == {"insert": 1, "update": 0, "delete": 3}
    assert local_exec(synced, "SELECT count(*) FROM sales WHERE sale_id IN (?, ?, ?)",
                      tuple(gone)) == [(0,)]
    assert verify(synced)[0] == 0


def test_a_central_transaction_open_across_a_sync_is_pulled_once_it_commits(pg_agent):
    import psycopg

    pg_agent.run("init-central", "--demo-parcels", "50")
    sync(pg_agent)
    # The assessment system's transaction takes its change-log entry now and commits
    # only after a sync has come and gone: that sync cannot see it, the next one must.
    with psycopg.connect(pg_agent.central_url) as late:
        late.execute("UPDATE parcels SET owner_name = 'LATE COMMIT' WHERE prop_id = 100017")
        # meanwhile others commit: the late transaction's id falls below the snapshot's
        # horizon, where a window of "ids from the snapshot's xmax on" would never look
        central_exec(pg_agent, "UPDATE parcels SET owner_name = 'QUICK' WHERE prop_id = 100016")
        during = sync(pg_agent)
        assert during["tables"]["parcels"] == {"mode": "incremental", "pulled": 1}
        late.commit()
    after = sync(pg_agent)
    assert after["tables"]["parcels"] == {"mode": "incremental", "pulled": 1}
    assert owner(pg_agent, 100017, "local") == "LATE COMMIT"
    assert verify(pg_agent)[0] == 0


def test_the_agent_does_not_pull_back_what_it_pushed(synced):
    local_exec(synced, "UPDATE parcels SET owner_name = 'PUSHED' WHERE prop_id = 100018")
    local_exec(synced, "INSERT INTO sales (prop_id, sale_date, sale_price) "
                       "VALUES (100018, '2026-05-05', 321000)")
    local_exec(synced, "DELETE FROM sales WHERE sale_id = (SELECT min(sale_id) FROM sales)")
    assert sync(synced)["rows"]["push"] == {"insert": 1, "update": 1, "delete": 1}
    summary = sync(synced)
    assert summary["pulled"] == 0
    assert summary["rows"]["pull"] == {"insert": 0, "update": 0, "delete": 0}


def test_disjoint_column_edits_merge(synced):
    local_exec(synced, "UPDATE parcels SET owner_name = 'LOCAL' WHERE prop_id = 100003")
    central_exec(synced, "UPDATE parcels SET situs_address = 'CENTRAL' WHERE prop_id = 100003")
    summary = sync(synced)
    assert summary["conflicts"] == 0
    row = central_exec(synced, "SELECT owner_name, situs_address FROM parcels "
                               "WHERE prop_id = 100003")
    assert row == [("LOCAL", "CENTRAL")]
    assert local_exec(synced, "SELECT owner_name, situs_address FROM parcels "
                              "WHERE prop_id = 100003") == [("LOCAL", "CENTRAL")]
    assert verify(synced)[0] == 0


def test_same_column_edits_are_a_recorded_conflict_and_central_is_untouched(synced):
    local_exec(synced, "UPDATE parcels SET land_value = 1 WHERE prop_id = 100004")
    central_exec(synced, "UPDATE parcels SET land_value = 2 WHERE prop_id = 100004")
    summary = sync(synced)
    assert summary["conflicts"] == 1 and summary["open_conflicts"] == 1
    assert central_exec(synced, "SELECT land_value FROM parcels WHERE prop_id = 100004") in (
        [(2,)], [(2.0,)])
    assert local_exec(synced, "SELECT land_value FROM parcels WHERE prop_id = 100004") == [(1.0,)]
    [c] = conflicts(synced)
    assert c["table"] == "parcels" and c["pk"] == [100004] and c["columns"] == ["land_value"]
    assert (c["local"]["land_value"], c["central"]["land_value"]) == (1.0, 2.0)
    assert c["base"]["land_value"] not in (1.0, 2.0)
    # a second sync neither overwrites nor duplicates the conflict
    assert sync(synced)["conflicts"] == 0
    assert len(conflicts(synced)) == 1
    code, report = verify(synced)
    assert code == 1 and report["tables"]["parcels"]["equal"] is False


@pytest.mark.parametrize(("policy", "expected"), [("central_wins", 2.0), ("local_wins", 1.0)])
def test_policy_settles_conflicts_and_records_them(synced, policy, expected):
    env = {"TERRAFUSION_SYNC__TABLE_POLICY__PARCELS": policy}
    local_exec(synced, "UPDATE parcels SET land_value = 1, owner_name = 'L' "
                       "WHERE prop_id = 100005")
    central_exec(synced, "UPDATE parcels SET land_value = 2, acres = 7 WHERE prop_id = 100005")
    summary = sync(synced, **env)
    assert summary["conflicts"] == 1 and summary["open_conflicts"] == 0
    row = central_exec(synced, "SELECT land_value, acres FROM parcels WHERE prop_id = 100005")
    assert float(row[0][0]) == expected and float(row[0][1]) == 7
    [c] = conflicts(synced, "--all")
    assert c["resolution"] == policy and c["resolved_at"]
    assert verify(synced)[0] == 0


@pytest.mark.parametrize("policy", ["central_wins", "local_wins"])
def test_a_policy_records_the_values_it_overwrote(synced, policy):
    env = {"TERRAFUSION_SYNC__TABLE_POLICY__PARCELS": policy}
    local_exec(synced, "UPDATE parcels SET land_value = 1, owner_name = 'L' "
                       "WHERE prop_id = 100019")
    central_exec(synced, "UPDATE parcels SET land_value = 2, acres = 7 WHERE prop_id = 100019")
    sync(synced, **env)
    [c] = conflicts(synced, "--all")
    assert c["resolution"] == policy and c["columns"] == ["land_value"]
    # both sides as they were, the overwritten one included, whole rows
    assert (c["local"]["land_value"], c["local"]["owner_name"]) == (1.0, "L")
    assert (c["central"]["land_value"], c["central"]["acres"]) == (2.0, 7.0)
    assert c["base"]["land_value"] not in (1.0, 2.0)
    for side in ("local", "central"):
        assert c[side]["prop_id"] == 100019 and c[side]["geo_id"] == c["base"]["geo_id"]


def test_local_delete_against_central_update_is_a_conflict(synced):
    local_exec(synced, "DELETE FROM parcels WHERE prop_id = 100006")
    central_exec(synced, "UPDATE parcels SET owner_name = 'C' WHERE prop_id = 100006")
    assert sync(synced)["conflicts"] == 1
    assert owner(synced, 100006) == "C"
    [c] = conflicts(synced)
    assert c["local"] is None and c["central"]["owner_name"] == "C"


def test_local_update_against_central_delete_is_a_conflict(synced):
    local_exec(synced, "UPDATE parcels SET owner_name = 'L' WHERE prop_id = 100008")
    central_exec(synced, "DELETE FROM parcels WHERE prop_id = 100008")
    assert sync(synced)["conflicts"] == 1
    assert central_exec(synced, "SELECT count(*) FROM parcels WHERE prop_id = 100008") == [(0,)]
    [c] = conflicts(synced)
    assert c["central"] is None and c["local"]["owner_name"] == "L"


def test_resolve_keep_local_reaches_central_at_next_sync(synced):
    local_exec(synced, "UPDATE parcels SET owner_name = 'MINE' WHERE prop_id = 100009")
    central_exec(synced, "UPDATE parcels SET owner_name = 'THEIRS' WHERE prop_id = 100009")
    sync(synced)
    [c] = conflicts(synced)
    synced.run("conflicts", "resolve", str(c["id"]), "--keep", "local")
    assert conflicts(synced) == []
    assert sync(synced)["rows"]["push"]["update"] == 1
    assert owner(synced, 100009) == "MINE"
    assert verify(synced)[0] == 0


def test_resolve_keep_central_updates_local_and_fetches_newer_central(synced):
    local_exec(synced, "UPDATE parcels SET owner_name = 'MINE' WHERE prop_id = 100010")
    central_exec(synced, "UPDATE parcels SET owner_name = 'THEIRS' WHERE prop_id = 100010")
    sync(synced)
    central_exec(synced, "UPDATE parcels SET owner_name = 'THEIRS AGAIN' WHERE prop_id = 100010")
    sync(synced)  # the key is still in conflict: nothing is applied over the local edit
    assert owner(synced, 100010, "local") == "MINE"
    [c] = conflicts(synced)
    synced.run("conflicts", "resolve", str(c["id"]), "--keep", "central")
    assert owner(synced, 100010, "local") == "THEIRS"
    sync(synced)
    assert owner(synced, 100010, "local") == "THEIRS AGAIN"
    assert verify(synced)[0] == 0


def test_keep_central_keeps_an_edit_made_after_detection_in_another_column(synced):
    local_exec(synced, "UPDATE parcels SET owner_name = 'LOCAL-1' WHERE prop_id = 100011")
    central_exec(synced, "UPDATE parcels SET owner_name = 'CENTRAL-1' WHERE prop_id = 100011")
    sync(synced)
    local_exec(synced, "UPDATE parcels SET situs_address = 'LOCAL-LATER' "
                       "WHERE prop_id = 100011")
    [c] = conflicts(synced)
    assert c["local"]["situs_address"] == "LOCAL-LATER"  # the row as it is now
    synced.run("conflicts", "resolve", str(c["id"]), "--keep", "central")
    sync(synced)
    sync(synced)
    sql = "SELECT owner_name, situs_address FROM parcels WHERE prop_id = %s"
    assert central_exec(synced, sql, (100011,)) == [("CENTRAL-1", "LOCAL-LATER")]
    assert local_exec(synced, sql.replace("%s", "?"), (100011,)) == [
        ("CENTRAL-1", "LOCAL-LATER")]
    assert conflicts(synced) == []
    assert verify(synced)[0] == 0


def test_keep_central_merges_a_disjoint_local_edit_of_the_conflicting_row(synced):
    # one local edit touching two columns; central changed one of them and another one
    local_exec(synced, "UPDATE parcels SET owner_name = 'MINE', legal_desc = 'MY LEGAL' "
                       "WHERE prop_id = 100012")
    central_exec(synced, "UPDATE parcels SET owner_name = 'THEIRS', situs_address = 'THEIR "
                         "ADDRESS' WHERE prop_id = 100012")
    sync(synced)
    [c] = conflicts(synced)
    assert c["columns"] == ["owner_name"]
    synced.run("conflicts", "resolve", str(c["id"]), "--keep", "central")
    sync(synced)
    row = "SELECT owner_name, legal_desc, situs_address FROM parcels WHERE prop_id = 100012"
    assert central_exec(synced, row) == [("THEIRS", "MY LEGAL", "THEIR ADDRESS")]
    assert local_exec(synced, row) == [("THEIRS", "MY LEGAL", "THEIR ADDRESS")]


def test_keep_local_never_reverts_a_disjoint_central_edit(synced):
    local_exec(synced, "UPDATE parcels SET owner_name = 'MINE' WHERE prop_id = 100013")
    central_exec(synced, "UPDATE parcels SET owner_name = 'THEIRS', situs_address = 'THEIR "
                         "ADDRESS' WHERE prop_id = 100013")
    sync(synced)
    [c] = conflicts(synced)
    synced.run("conflicts", "resolve", str(c["id"]), "--keep", "local")
    sync(synced)
    row = "SELECT owner_name, situs_address FROM parcels WHERE prop_id = 100013"
    assert central_exec(synced, row) == [("MINE", "THEIR ADDRESS")]
    assert local_exec(synced, row) == [("MINE", "THEIR ADDRESS")]
    assert verify(synced)[0] == 0


def test_edit_of_the_conflicting_column_after_keep_central_is_a_new_conflict(synced):
    local_exec(synced, "UPDATE parcels SET owner_name = 'LOCAL-1' WHERE prop_id = 100014")
    central_exec(synced, "UPDATE parcels SET owner_name = 'CENTRAL-1' WHERE prop_id = 100014")
    sync(synced)
    [c] = conflicts(synced)
    synced.run("conflicts", "resolve", str(c["id"]), "--keep", "central")
    local_exec(synced, "UPDATE parcels SET owner_name = 'LOCAL-2' WHERE prop_id = 100014")
    central_exec(synced, "UPDATE parcels SET owner_name = 'CENTRAL-2' WHERE prop_id = 100014")
    sync(synced)
    [again] = conflicts(synced)
    assert again["columns"] == ["owner_name"]
    assert again["local"]["owner_name"] == "LOCAL-2"
    assert again["central"]["owner_name"] == "CENTRAL-2"
    assert owner(synced, 100014) == "CENTRAL-2"


def test_keep_local_over_a_central_row_changed_again_is_a_new_conflict(synced):
    local_exec(synced, "UPDATE parcels SET owner_name = 'MINE' WHERE prop_id = 100020")
    central_exec(synced, "UPDATE parcels SET owner_name = 'THEIRS' WHERE prop_id = 100020")
    sync(synced)
    [first] = conflicts(synced)
    central_exec(synced, "UPDATE parcels SET owner_name = 'THEIRS AGAIN' WHERE prop_id = 100020")
    synced.run("conflicts", "resolve", str(first["id"]), "--keep", "local")
    summary = sync(synced)
    assert summary["conflicts"] == 1 and summary["rows"]["push"]["update"] == 0
    assert owner(synced, 100020) == "THEIRS AGAIN"  # not overwritten by the decision
    assert owner(synced, 100020, "local") == "MINE"
    [second] = conflicts(synced)
    assert second["id"] != first["id"] and second["columns"] == ["owner_name"]
    assert (second["local"]["owner_name"], second["central"]["owner_name"]) == (
        "MINE", "THEIRS AGAIN")


def test_verify_reports_pending_edits(synced):
    local_exec(synced, "UPDATE parcels SET owner_name = 'NOT PUSHED' "
                       "WHERE prop_id IN (100021, 100022)")
    code, report = verify(synced)
    assert code == 1
    pending = {name: t["pending_edits"] for name, t in report["tables"].items()}
    assert pending == {"parcels": 2, "districts": 0, "sales": 0}
    sync(synced)
    code, report = verify(synced)
    assert code == 0 and report["tables"]["parcels"]["pending_edits"] == 0


@pytest.mark.parametrize("keep", ["central", "local"])
def test_an_edit_made_on_a_stale_row_in_conflict_is_a_new_conflict_not_an_overwrite(synced,
                                                                                    keep):
    # central changes two columns; the local copy, whose row then waits in conflict on
    # one of them, never shows central's value of the other
    central_exec(synced, "UPDATE parcels SET owner_name = 'CENTRAL OWNER', situs_address = "
                         "'CENTRAL ADDRESS' WHERE prop_id = 100015")
    local_exec(synced, "UPDATE parcels SET situs_address = 'MY ADDRESS' WHERE prop_id = 100015")
    sync(synced)
    [c] = conflicts(synced)
    assert c["columns"] == ["situs_address"]
    assert owner(synced, 100015, "local") != "CENTRAL OWNER"
    local_exec(synced, "UPDATE parcels SET owner_name = 'MY OWNER' WHERE prop_id = 100015")
    synced.run("conflicts", "resolve", str(c["id"]), "--keep", keep)
    sync(synced)
    assert owner(synced, 100015) == "CENTRAL OWNER"  # never overwritten unseen
    [again] = conflicts(synced)
    assert again["columns"] == ["owner_name"]
    assert (again["local"]["owner_name"], again["central"]["owner_name"]) == (
        "MY OWNER", "CENTRAL OWNER")


def test_keep_central_before_a_central_column_is_added_leaves_no_stale_row(synced):
    local_exec(synced, "UPDATE parcels SET owner_name = 'MINE' WHERE prop_id = 100019")
    central_exec(synced, "UPDATE parcels SET owner_name = 'THEIRS' WHERE prop_id = 100019")
    sync(synced)
    [c] = conflicts(synced)
    synced.run("conflicts", "resolve", str(c["id"]), "--keep", "central")
    central_exec(synced, "UPDATE parcels SET owner_name = 'THEIRS AGAIN' WHERE prop_id = 100019")
    central_exec(synced, "ALTER TABLE parcels ADD COLUMN appeal_note TEXT")
    sync(synced)  # the table is copied again with its new column
    assert owner(synced, 100019, "local") == "THEIRS AGAIN"
    assert verify(synced)[0] == 0


def test_keep_local_over_a_delete_merges_with_a_row_made_again_meanwhile(synced):
    local_exec(synced, "UPDATE parcels SET owner_name = 'MINE' WHERE prop_id = 100025")
    central_exec(synced, "CREATE TABLE kept_row AS SELECT * FROM parcels WHERE prop_id = 100025")
    central_exec(synced, "DELETE FROM parcels WHERE prop_id = 100025")
    sync(synced)
    [c] = conflicts(synced)
    synced.run("conflicts", "resolve", str(c["id"]), "--keep", "local")
    # another writer makes the row again first, and changes a column of its own
    central_exec(synced, "INSERT INTO parcels SELECT * FROM kept_row")
    central_exec(synced, "UPDATE parcels SET situs_address = 'THEIR ADDRESS' "
                         "WHERE prop_id = 100025")
    summary = sync(synced)
    assert summary["conflicts"] == 0 and conflicts(synced) == []
    row = "SELECT owner_name, situs_address FROM parcels WHERE prop_id = 100025"
    assert central_exec(synced, row) == [("MINE", "THEIR ADDRESS")]
    assert local_exec(synced, row) == [("MINE", "THEIR ADDRESS")]


# the local copy alone: no central traffic, so no pooler to go through
@pytest.mark.parametrize("synced", ["spatialite", "postgis"], indirect=True)
def test_resolving_twice_or_an_unknown_conflict_is_refused(synced):
    proc = synced.run("conflicts", "resolve", "99", "--keep", "local", check=False)
    assert proc.returncode == 1 and "no conflict with id 99" in proc.stderr


def test_offline_inserts_get_permanent_keys_without_collisions(synced, tmp_path):
    # a second agent on the same central
    other_dir = tmp_path / "other"
    other = AgentEnv(other_dir, write_config(other_dir, synced.central_url), synced.central_url)
    sync(other)
    new = ("INSERT INTO parcels (geo_id, owner_name, geom) VALUES (?, 'NEW', "
           "CastToMultiPolygon(BuildMbr(1050000, 80000, 1050100, 80100, 2927)))")
    local_exec(synced, new, ("A-1",))
    local_exec(other, new, ("B-1",))
    central_exec(synced, "INSERT INTO parcels (prop_id, geo_id, owner_name) "
                         "VALUES (100201, 'C-1', 'CENTRAL NEW')")
    key_a = local_exec(synced, "SELECT prop_id FROM parcels WHERE geo_id = 'A-1'")[0][0]
    key_b = local_exec(other, "SELECT prop_id FROM parcels WHERE geo_id = 'B-1'")[0][0]
    assert key_a != key_b and min(key_a, key_b) > 100201
    sync(synced)
    sync(other)
    sync(synced)
    rows = central_exec(synced, "SELECT prop_id, geo_id FROM parcels WHERE prop_id > 100200 "
                                "ORDER BY geo_id")
    assert rows == [(key_a, "A-1"), (key_b, "B-1"), (100201, "C-1")]
    # the key seen in QGIS is the permanent one: it did not change on the way
    assert local_exec(synced, "SELECT geo_id FROM parcels WHERE prop_id = ?", (key_a,)) == [
        ("A-1",)]
    assert verify(synced)[0] == 0 and verify(other)[0] == 0


# the local copy alone: no central traffic, so no pooler to go through
@pytest.mark.parametrize("synced", ["spatialite", "postgis"], indirect=True)
def test_offline_insert_is_found_by_the_spatial_index(synced):
    local_exec(synced, "INSERT INTO parcels (geo_id, geom) VALUES ('SPX', "
                       "CastToMultiPolygon(BuildMbr(10, 10, 20, 20, 2927)))")
    hits = local_exec(synced, "SELECT geo_id FROM parcels WHERE ROWID IN (SELECT ROWID FROM "
                              "SpatialIndex WHERE f_table_name = 'parcels' AND search_frame = "
                              "BuildMbr(0, 0, 30, 30))")
    assert hits == [("SPX",)]


def test_local_insert_update_delete_sequences_net_out(synced):
    local_exec(synced, "INSERT INTO sales (prop_id, sale_date, sale_price) "
                       "VALUES (100001, '2026-01-01', 1)")
    local_exec(synced, "DELETE FROM sales WHERE sale_price = 1")
    local_exec(synced, "UPDATE sales SET sale_price = 5 WHERE sale_id = "
                       "(SELECT min(sale_id) FROM sales)")
    local_exec(synced, "UPDATE sales SET sale_price = 6 WHERE sale_id = "
                       "(SELECT min(sale_id) FROM sales)")
    summary = sync(synced)
    assert summary["rows"]["push"] == {"insert": 0, "update": 1, "delete": 0}
    assert verify(synced)[0] == 0


def test_central_schema_drift_keeps_pending_edits(synced):
    local_exec(synced, "UPDATE parcels SET owner_name = 'KEEP ME' WHERE prop_id = 100012")
    local_exec(synced, "INSERT INTO sales (prop_id, sale_date, sale_price) "
                       "VALUES (100012, '2026-02-02', 99)")
    central_exec(synced, "ALTER TABLE parcels ADD COLUMN flood_zone TEXT DEFAULT 'X'")
    central_exec(synced, "UPDATE parcels SET flood_zone = 'AE' WHERE prop_id = 100013")
    summary = sync(synced)
    assert summary["tables"]["parcels"]["mode"] == "full"
    assert owner(synced, 100012) == "KEEP ME"
    assert local_exec(synced, "SELECT flood_zone FROM parcels WHERE prop_id IN (100012, 100013) "
                              "ORDER BY prop_id") == [("X",), ("AE",)]
    assert central_exec(synced, "SELECT count(*) FROM sales WHERE sale_price = 99") == [(1,)]
    assert verify(synced)[0] == 0
    # a column dropped centrally disappears locally; edits made after still flow
    drop_central_column(synced, "parcels", "legal_desc")
    local_exec(synced, "UPDATE parcels SET owner_name = 'AFTER DROP' WHERE prop_id = 100014")
    sync(synced)
    cols = [r[1] for r in local_exec(synced, "PRAGMA table_info(parcels)")]
    assert "legal_desc" not in cols and "flood_zone" in cols
    assert owner(synced, 100014) == "AFTER DROP"
    assert verify(synced)[0] == 0


def drop_central_column(agent: AgentEnv, table: str, column: str) -> None:
    """Drop a column centrally as its administrator would. The embedded central's
    history triggers name every column, and SQLite drops a column a trigger names only
    with its legacy ALTER TABLE; the next sync then remakes the triggers."""
    if not agent.central_url.startswith("sqlite:///"):
        central_exec(agent, f"ALTER TABLE {table} DROP COLUMN {column}")
        return
    conn = connect(agent.central_url[len("sqlite:///"):])
    try:
        conn.execute("PRAGMA legacy_alter_table = ON")
        conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    finally:
        conn.close()


def test_agent_behind_the_retention_horizon_resyncs_and_keeps_its_edits(synced):
    local_exec(synced, "UPDATE parcels SET owner_name = 'OFFLINE EDIT' WHERE prop_id = 100015")
    central_exec(synced, "UPDATE parcels SET acres = 3 WHERE prop_id = 100016")
    old = ("'2000-01-01'" if synced.central_url.startswith("sqlite")
           else "'2000-01-01'::timestamptz")
    central_exec(synced, f"UPDATE tf_change_log SET changed_at = {old}")
    # the purge runs once per central per period: the first sync's was long ago
    central_exec(synced, "DELETE FROM tf_settings WHERE key = 'purged_at'")
    # any agent's sync that finds the purge due purges what is older than the retention
    other_dir = synced.dir / "other"
    other = AgentEnv(other_dir, write_config(other_dir, synced.central_url), synced.central_url)
    sync(other)
    assert central_exec(synced, "SELECT count(*) FROM tf_change_log") == [(0,)]
    summary = sync(synced)
    assert summary["tables"]["parcels"]["mode"] == "full"
    assert local_exec(synced, "SELECT acres FROM parcels WHERE prop_id = 100016") == [(3.0,)]
    assert owner(synced, 100015) == "OFFLINE EDIT"
    assert verify(synced)[0] == 0


def test_table_added_to_the_config_is_copied_in_full(synced):
    central_exec(synced, "CREATE TABLE permits (permit_no TEXT PRIMARY KEY, prop_id BIGINT, "
                         "issued DATE)")
    central_exec(synced, "INSERT INTO permits VALUES ('B-2026-001', 100001, '2026-03-04')")
    env = {"TERRAFUSION_SYNC__TABLES": "parcels,districts,sales,permits"}
    synced.run("init-central", env=env)
    summary = sync(synced, **env)
    assert summary["tables"]["permits"] == {"mode": "full", "pulled": 1}
    assert summary["tables"]["parcels"]["mode"] == "incremental"
    local_exec(synced, "UPDATE permits SET issued = '2026-03-05'")
    sync(synced, **env)
    assert central_exec(synced, "SELECT issued::text FROM permits"
                        if not synced.central_url.startswith("sqlite")
                        else "SELECT issued FROM permits") == [("2026-03-05",)]


def test_untracked_table_is_refused_with_the_fix(synced):
    central_exec(synced, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    proc = synced.run("sync", check=False, env={"TERRAFUSION_SYNC__TABLES": "parcels,notes"})
    assert proc.returncode == 1
    assert "notes" in proc.stderr and "init-central" in proc.stderr
