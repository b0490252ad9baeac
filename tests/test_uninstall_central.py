"""``uninstall-central``: what ``init-central`` made goes, the county's data stays.

Against both centrals: a real PostGIS (a throwaway cluster) and the embedded SpatiaLite.
"""

from __future__ import annotations

import json

import pytest
from conftest import AgentEnv, central_exec

PARCELS = 60
COUNTY = ("parcels", "districts", "sales")


def tf_objects(agent: AgentEnv) -> list[tuple]:
    """Every object of the central database whose name says it is TerraFusion's (tables,
    views, indexes, sequences, functions, triggers)."""
    if agent.central_url.startswith("sqlite:///"):
        return central_exec(agent, "SELECT type, name FROM sqlite_master "
                                   "WHERE name LIKE 'tf\\_%' ESCAPE '\\' ORDER BY 1, 2")
    return central_exec(agent, """
        SELECT 'relation', relname FROM pg_class WHERE relname LIKE 'tf\\_%'
        UNION ALL SELECT 'function', proname FROM pg_proc WHERE proname LIKE 'tf\\_%'
        UNION ALL SELECT 'trigger', tgname FROM pg_trigger
                  WHERE NOT tgisinternal AND tgname LIKE 'tf\\_%'
        ORDER BY 1, 2""")


def county_state(agent: AgentEnv) -> dict:
    """The county's tables as another client sees them: columns and every row."""
    state = {}
    for table in COUNTY:
        if agent.central_url.startswith("sqlite:///"):
            columns = [r[1] for r in central_exec(agent, f"PRAGMA table_info({table})")]
            rows = central_exec(agent, f"SELECT * FROM {table} ORDER BY 1")
        else:
            columns = [r[0] for r in central_exec(
                agent, "SELECT column_name FROM information_schema.columns "
                       "WHERE table_name = %s ORDER BY ordinal_position", (table,))]
            rows = central_exec(agent, f"SELECT * FROM {table} ORDER BY 1")
        assert rows, table
        state[table] = (columns, rows)
    return state


@pytest.fixture
def county(any_agent: AgentEnv) -> AgentEnv:
    any_agent.run("init-central", "--demo-parcels", str(PARCELS))
    any_agent.run("sync")
    # a change recorded in the change log and the history, as in real use
    central_exec(any_agent, "UPDATE parcels SET owner_name = 'Rivera, Ana' "
                            "WHERE prop_id = (SELECT min(prop_id) FROM parcels)")
    return any_agent


def test_without_yes_it_lists_what_it_would_remove_and_removes_nothing(county):
    before = tf_objects(county)
    proc = county.run("uninstall-central", check=False)
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "Nothing was removed" in err and "uninstall-central --yes" in err
    for name in ("tf_change_log", "tf_history", "tf_fleet", "parcels"):
        assert name in proc.stdout, proc.stdout
    assert "keep every row and column" in proc.stdout
    assert tf_objects(county) == before
    county.run("sync")  # still tracked: syncing goes on


def test_yes_removes_every_tf_object_and_leaves_the_county_data(county):
    before = county_state(county)
    proc = county.run("uninstall-central", "--yes")
    removed = {(r["kind"], r["name"].split(".")[-1].split(" ")[0])
               for r in json.loads(proc.stdout)["removed"]}
    assert ("table", "tf_change_log") in removed and ("view", "tf_fleet") in removed
    assert any(kind == "trigger" for kind, _ in removed)
    assert tf_objects(county) == []
    assert county_state(county) == before
    # no trigger is left to call a function that is gone: the county edits on
    central_exec(county, "UPDATE parcels SET land_value = land_value + 1")


def test_init_central_installs_it_all_again_and_agents_sync_afterwards(county):
    county.run("uninstall-central", "--yes")
    proc = county.run("sync", check=False)
    assert proc.returncode == 1 and "init-central" in proc.stderr
    county.run("init-central")
    assert any(name == "tf_change_log" for _, name in tf_objects(county))
    central_exec(county, "UPDATE parcels SET owner_name = 'Okafor, Chidi' "
                         "WHERE prop_id = (SELECT max(prop_id) FROM parcels)")
    county.run("sync")
    assert county.run("verify").returncode == 0


def test_a_central_without_bookkeeping_has_nothing_to_remove(any_agent):
    if not any_agent.central_url.startswith("sqlite:///"):
        central_exec(any_agent, "CREATE TABLE parcels (prop_id bigint PRIMARY KEY)")
    proc = any_agent.run("uninstall-central", "--yes")
    assert "nothing to remove" in proc.stderr
    assert '"removed": []' in proc.stdout


def test_an_object_of_someone_elses_on_the_bookkeeping_stops_it_and_nothing_goes(
        pg_agent):
    pg_agent.run("init-central", "--demo-parcels", "20")
    central_exec(pg_agent, "CREATE VIEW it_dashboard AS SELECT hostname FROM tf_fleet")
    before = tf_objects(pg_agent)
    proc = pg_agent.run("uninstall-central", "--yes", check=False)
    assert proc.returncode == 1
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "nothing was removed" in err, err
    assert "it_dashboard" in err or "depend" in err, err
    assert tf_objects(pg_agent) == before  # all or nothing: the triggers are still there
