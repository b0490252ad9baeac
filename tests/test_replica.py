"""Pulls from a read replica (``central.read_url``): a real streaming hot standby of the
test cluster, made with pg_basebackup, whose replay the tests pause and delay.

A replica that lags never takes a row back in time, never sets the checkpoint back and
never makes a pull skip a change; when it is down or behind, the pull reads the primary.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from urllib.parse import urlsplit

import psycopg
import pytest
from conftest import AgentEnv, central_exec, local_exec, write_config
from pgcluster import PgStandby
from terrafusion_agent.stores import snapshots
from terrafusion_agent.sync.engine import run_sync

FALLBACK = "pulls read the primary instead of the read replica"


@pytest.fixture(scope="module")
def standby(pg_cluster):
    replica = PgStandby(pg_cluster).start()
    yield replica
    replica.remove()


@pytest.fixture
def replica(standby):
    """The module's standby, running and caught up; left that way for the next test."""
    standby.set_apply_delay("0")
    standby.resume()
    standby.catch_up()
    yield standby
    standby.set_apply_delay("0")
    standby.resume()


def agent_with_replica(directory, central_url: str, replica: PgStandby,
                       tables: str = "") -> AgentEnv:
    dbname = urlsplit(central_url).path.lstrip("/")
    path = write_config(directory, central_url, tables)
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("[central]\n", f'[central]\nread_url = "{replica.url(dbname)}"\n',
                                 1), encoding="utf-8")
    return AgentEnv(directory, path, central_url)


@pytest.fixture
def county(tmp_path, pg_url, replica) -> AgentEnv:
    """A demo county synced once (that first pull reads the primary: no floor yet)."""
    agent = agent_with_replica(tmp_path, pg_url, replica)
    agent.run("init-central", "--demo-parcels", "100")
    sync(agent)
    replica.catch_up()
    return agent


def sync(agent: AgentEnv) -> dict:
    return run_sync(agent.load())


def owner(agent: AgentEnv, prop_id: int, where: str = "central"):
    sql = "SELECT owner_name FROM parcels WHERE prop_id = %s"
    if where == "central":
        return central_exec(agent, sql, (prop_id,))[0][0]
    return local_exec(agent, sql.replace("%s", "?"), (prop_id,))[0][0]


def on_replica(replica: PgStandby, agent: AgentEnv, sql: str) -> str:
    return replica.psql(sql, urlsplit(agent.central_url).path.lstrip("/"))


def verify(agent: AgentEnv) -> int:
    return agent.run("verify", check=False).returncode


def checkpoint(agent: AgentEnv) -> str:
    return local_exec(agent, "SELECT value FROM tf_meta WHERE key = 'central_checkpoint'")[0][0]


def assert_not_back(older: str, newer: str) -> None:
    """Every transaction ``older`` shows, ``newer`` shows too (counted one by one)."""
    a, b = snapshots.parse(older), snapshots.parse(newer)

    def shows(s, x):
        return x < s.xmin or (x < s.xmax and x not in s.xip)

    lost = [x for x in range(min(a.xmin, b.xmin), a.xmax) if shows(a, x) and not shows(b, x)]
    assert not lost, f"checkpoint {newer} no longer shows {lost} that {older} showed"


def fallbacks(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and FALLBACK in r.getMessage()]


def test_pulls_read_the_replica_while_writes_go_to_the_primary(county, replica, caplog):
    central_exec(county, "UPDATE parcels SET owner_name = 'BEFORE PAUSE' WHERE prop_id = 100001")
    replica.catch_up()
    assert sync(county)["tables"]["parcels"] == {"mode": "incremental", "pulled": 1}
    replica.pause()
    central_exec(county, "UPDATE parcels SET owner_name = 'WHILE PAUSED' WHERE prop_id = 100002")
    seen = central_exec(county, "SELECT max(last_seen_at) FROM tf_agents")[0][0]
    local_exec(county, "UPDATE parcels SET owner_name = 'PUSHED' WHERE prop_id = 100003")
    # the heartbeat is written at most every few minutes: make it due at this sync
    local_exec(county, "DELETE FROM tf_meta WHERE key = 'heartbeat'")

    summary = sync(county)

    # the replica served the pull: the primary's newer row is not there yet ...
    assert summary["tables"]["parcels"] == {"mode": "incremental", "pulled": 0}
    assert owner(county, 100002, "local") != "WHILE PAUSED"
    # ... while the push and the heartbeat went to the primary
    assert owner(county, 100003) == "PUSHED"
    assert central_exec(county, "SELECT max(last_seen_at) FROM tf_agents")[0][0] > seen
    assert fallbacks(caplog) == []
    replica.resume()
    replica.catch_up()
    assert sync(county)["tables"]["parcels"] == {"mode": "incremental", "pulled": 1}
    assert owner(county, 100002, "local") == "WHILE PAUSED"
    assert verify(county) == 0


def test_a_replica_behind_the_checkpoint_is_passed_over_and_the_checkpoint_never_moves_back(
        county, replica, caplog):
    marks = [checkpoint(county)]

    def sync_and_mark() -> dict:
        summary = sync(county)
        marks.append(checkpoint(county))
        assert_not_back(marks[-2], marks[-1])
        return summary

    central_exec(county, "UPDATE parcels SET owner_name = 'A' WHERE prop_id = 100011")
    replica.catch_up()
    sync_and_mark()
    replica.pause()
    central_exec(county, "UPDATE parcels SET owner_name = 'B' WHERE prop_id = 100012")
    replica.stop()
    sync_and_mark()  # the replica is down: the primary serves, B comes in
    assert owner(county, 100012, "local") == "B"
    # the replica comes back where it stopped, behind this copy's checkpoint, and stays
    replica.set_apply_delay("1h")
    replica.resume()
    assert on_replica(replica, county,
                      "SELECT owner_name FROM parcels WHERE prop_id = 100012") != "B"
    central_exec(county, "UPDATE parcels SET owner_name = 'C' WHERE prop_id = 100013")

    summary = sync_and_mark()

    assert summary["tables"]["parcels"] == {"mode": "incremental", "pulled": 1}
    assert [owner(county, p, "local") for p in (100011, 100012, 100013)] == ["A", "B", "C"]
    assert any("behind this copy" in m for m in fallbacks(caplog))
    replica.set_apply_delay("0")
    replica.catch_up()
    central_exec(county, "UPDATE parcels SET owner_name = 'D' WHERE prop_id = 100014")
    replica.catch_up()
    sync_and_mark()
    assert [owner(county, p, "local") for p in (100011, 100012, 100013, 100014)] == [
        "A", "B", "C", "D"]
    assert verify(county) == 0


def _wait_for(sql_true, agent: AgentEnv, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not central_exec(agent, sql_true)[0][0]:
        assert time.monotonic() < deadline, f"never true: {sql_true}"
        time.sleep(0.02)


def test_a_row_this_agent_pushed_never_goes_back_to_what_a_lagging_replica_holds(
        county, replica):
    # Another client changes a row's owner at T1, after this agent's pull and before its
    # push, which merges it with a local edit at T2. A replica at T1.5 holds the row
    # with the new owner and the old address; the agent's own T2 entries are skipped by
    # origin, so a pull reading that replica would keep the old address for good.
    agent_id = local_exec(county, "SELECT value FROM tf_meta WHERE key = 'agent_id'")[0][0]
    local_exec(county, "UPDATE parcels SET situs_address = 'LOCAL' WHERE prop_id = 100021")
    with psycopg.connect(county.central_url, autocommit=True) as gate:
        # the push waits for this agent's push lock: between its pull and its push
        gate.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))",
                     ("tf_push:" + agent_id,))
        background = subprocess.Popen(
            [sys.executable, "-m", "terrafusion_agent", "--config", str(county.config),
             "sync"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _wait_for("SELECT count(*) > 0 FROM pg_stat_activity WHERE wait_event = 'advisory' "
                      "AND application_name = 'terrafusion-agent'", county)
            central_exec(county, "UPDATE parcels SET owner_name = 'OTHER' WHERE prop_id = 100021")
            replica.catch_up()
            replica.pause()  # T1 replayed; the push, not yet made, will not be
            gate.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))",
                         ("tf_push:" + agent_id,))
            out, err = background.communicate(timeout=120)
        finally:
            background.kill()
    assert background.returncode == 0, err
    assert json.loads(out)["rows"]["push"]["update"] == 1
    row = "SELECT owner_name, situs_address FROM parcels WHERE prop_id = 100021"
    assert central_exec(county, row) == [("OTHER", "LOCAL")]

    sync(county)  # the replica is at T1.5
    replica.resume()
    replica.catch_up()
    sync(county)

    assert local_exec(county, row.replace("%s", "?")) == [("OTHER", "LOCAL")]
    assert verify(county) == 0


def test_a_central_transaction_open_across_a_replica_pull_is_pulled_once_it_commits(
        county, replica, caplog):
    # On a standby pg_current_snapshot() leaves out the primary's running transactions:
    # a checkpoint taken from its text would skip this late commit for good.
    with psycopg.connect(county.central_url) as late:
        late.execute("UPDATE parcels SET owner_name = 'LATE COMMIT' WHERE prop_id = 100017")
        central_exec(county, "UPDATE parcels SET owner_name = 'QUICK' WHERE prop_id = 100016")
        replica.catch_up()
        assert on_replica(replica, county, "SELECT pg_is_in_recovery()") == "t"
        assert sync(county)["tables"]["parcels"] == {"mode": "incremental", "pulled": 1}
        assert fallbacks(caplog) == []  # the replica served it
        late.commit()
    replica.catch_up()
    sync(county)
    assert owner(county, 100017, "local") == "LATE COMMIT"
    assert fallbacks(caplog) == []
    assert verify(county) == 0


def test_a_replica_that_is_down_is_passed_over_with_one_warning(county, replica, caplog):
    caplog.set_level(logging.INFO, "terrafusion.sync")
    central_exec(county, "UPDATE parcels SET owner_name = 'DOWN' WHERE prop_id = 100031")
    replica.stop()
    first = sync(county)
    central_exec(county, "UPDATE parcels SET owner_name = 'STILL DOWN' WHERE prop_id = 100032")
    second = sync(county)

    assert (first["result"], second["result"]) == ("success", "success")
    assert [owner(county, p, "local") for p in (100031, 100032)] == ["DOWN", "STILL DOWN"]
    [warning] = fallbacks(caplog)
    assert "cannot be reached" in warning
    replica.resume()
    # a sync with nothing to pull ends at its poll, on the primary: give it something
    central_exec(county, "UPDATE parcels SET owner_name = 'UP AGAIN' WHERE prop_id = 100033")
    replica.catch_up()
    sync(county)
    assert owner(county, 100033, "local") == "UP AGAIN"
    assert any("read the read replica" in r.getMessage() and "again" in r.getMessage()
               for r in caplog.records)
    assert verify(county) == 0


def test_a_table_added_later_is_copied_in_full_from_the_replica(tmp_path, pg_url, replica):
    agent = agent_with_replica(tmp_path, pg_url, replica,
                               '[sync]\ntables = ["parcels", "sales"]\n')
    agent.run("init-central", "--demo-parcels", "100",
              env={"TERRAFUSION_SYNC__TABLES": '["parcels", "sales", "districts"]'})
    sync(agent)
    replica.catch_up()
    replica.pause()
    central_exec(agent, "UPDATE districts SET name = 'RENAMED' WHERE district_id = 1")
    agent.config.write_text(agent.config.read_text().replace(
        '["parcels", "sales"]', '["parcels", "sales", "districts"]'))

    assert sync(agent)["tables"]["districts"]["mode"] == "full"

    name = "SELECT name FROM districts WHERE district_id = 1"
    assert local_exec(agent, name) != [("RENAMED",)]  # the replica's copy
    replica.resume()
    replica.catch_up()
    assert sync(agent)["tables"]["districts"] == {"mode": "incremental", "pulled": 1}
    assert local_exec(agent, name) == [("RENAMED",)]
    assert verify(agent) == 0


@pytest.mark.parametrize("with_replica", [False, True], ids=["primary", "replica"])
def test_merges_and_conflicts_come_out_the_same_with_a_replica(tmp_path, pg_url, replica,
                                                              with_replica):
    agent = (agent_with_replica(tmp_path, pg_url, replica) if with_replica
             else AgentEnv(tmp_path, write_config(tmp_path, pg_url), pg_url))
    agent.run("init-central", "--demo-parcels", "100")
    sync(agent)
    replica.catch_up()
    local_exec(agent, "UPDATE parcels SET owner_name = 'LOCAL' WHERE prop_id = 100003")
    central_exec(agent, "UPDATE parcels SET situs_address = 'CENTRAL' WHERE prop_id = 100003")
    local_exec(agent, "UPDATE parcels SET land_value = 1 WHERE prop_id = 100004")
    central_exec(agent, "UPDATE parcels SET land_value = 2 WHERE prop_id = 100004")
    central_exec(agent, "UPDATE parcels SET owner_name = 'PULLED' WHERE prop_id = 100005")
    replica.catch_up()

    summary = sync(agent)

    assert (summary["conflicts"], summary["open_conflicts"]) == (1, 1)
    assert summary["rows"]["push"]["update"] == 1
    both = "SELECT owner_name, situs_address, land_value FROM parcels WHERE prop_id = %s"
    assert central_exec(agent, both, (100003,))[0][:2] == ("LOCAL", "CENTRAL")
    assert local_exec(agent, both.replace("%s", "?"), (100003,))[0][:2] == ("LOCAL", "CENTRAL")
    assert float(central_exec(agent, both, (100004,))[0][2]) == 2.0
    assert local_exec(agent, both.replace("%s", "?"), (100004,))[0][2] == 1.0
    assert owner(agent, 100005, "local") == "PULLED"
    replica.catch_up()
    again = sync(agent)
    assert (again["pulled"], again["pushed"], again["conflicts"]) == (0, 0, 0)
    [conflict] = json.loads(agent.run("conflicts", "list").stdout)
    assert conflict["pk"] == [100004] and conflict["columns"] == ["land_value"]


# --- the snapshot algebra, against its definition -------------------------------------


def _random_snapshot(rng) -> snapshots.Snapshot:
    xmin = rng.randrange(100, 110)
    xmax = xmin + rng.randrange(0, 8)
    return snapshots.Snapshot(xmin, xmax, frozenset(
        x for x in range(xmin, xmax) if x == xmin or rng.random() < 0.4) if xmax > xmin
        else frozenset())


def test_contains_and_union_agree_with_transaction_by_transaction_visibility():
    import random

    rng = random.Random(14)
    for _ in range(3000):
        a, b = _random_snapshot(rng), _random_snapshot(rng)
        ids = range(90, 130)
        # what PostgreSQL makes: the newest finished id below xmax is shown
        tight = b.xmax - 1 not in b.xip and b.xmax > b.xmin
        exact = all(snapshots.shows(a, x) for x in ids if snapshots.shows(b, x))
        if tight:
            assert snapshots.contains(a, b) == exact, (a, b)
        else:
            assert not snapshots.contains(a, b) or exact, (a, b)
        u = snapshots.union(a, b)
        assert [snapshots.shows(u, x) for x in ids] == [
            snapshots.shows(a, x) or snapshots.shows(b, x) for x in ids], (a, b, u)
        assert snapshots.parse(str(u)) == u
