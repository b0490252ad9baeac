"""A fleet of agents on one central: what an idle sync costs central, and what it skips.

An agent keeps its central connection between scheduled syncs; a sync that finds
nothing to pull or push is one read-only statement (the poll), with no write on
central; table descriptions are read again only when the poll's fingerprint of the
synced tables changes; the heartbeat is written at most every few minutes; the purge
runs once per central per period, by one agent at a time. The statements an idle sync
runs are counted by ``pg_stat_statements`` on a cluster of this module's own.
"""

from __future__ import annotations

import json
import threading

import psycopg
import pytest
from conftest import AgentEnv, central_exec, local_exec, write_config
from pgcluster import PgCluster
from terrafusion_agent.service.scheduler import SyncScheduler
from terrafusion_agent.sync import engine
from terrafusion_agent.sync.engine import KeptCentral, run_sync
from test_sync_rejected import REFUSALS, _refuse, open_entries

_names = (f"poll_{i}" for i in range(1, 1000))
POLL_START = "SELECT (SELECT value FROM"


@pytest.fixture(scope="module")
def cluster():
    c = PgCluster("-c shared_preload_libraries=pg_stat_statements "
                  "-c pg_stat_statements.track=all").start()
    c.psql("postgres", "CREATE EXTENSION pg_stat_statements")
    c.create_db("poll_tpl")
    tpl = AgentEnv(c.root / "tpl", write_config(c.root / "tpl", c.url("poll_tpl")),
                   c.url("poll_tpl"))
    tpl.run("init-central", "--demo-parcels", "200")
    yield c
    c.stop()


@pytest.fixture
def agent(cluster, tmp_path):
    name = next(_names)
    cluster.psql("postgres", f'CREATE DATABASE "{name}" TEMPLATE poll_tpl')
    env = AgentEnv(tmp_path, write_config(tmp_path, cluster.url(name)), cluster.url(name))
    env.dbname = name  # type: ignore[attr-defined]
    yield env
    cluster.drop_db(name)


@pytest.fixture
def kept():
    k = KeptCentral()
    yield k
    k.close()


@pytest.fixture
def clock(monkeypatch):
    """The engine's clock, moved by the test."""
    now = [1_000_000.0]
    monkeypatch.setattr(engine, "clock", lambda: now[0])
    return now


def statements(cluster: PgCluster, dbname: str) -> list[tuple[str, int]]:
    """(query, calls) of every statement run in ``dbname`` since the last reset."""
    out = cluster.psql("postgres", "SELECT json_agg(json_build_array(query, calls)) FROM "
                       "pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
                       f"WHERE d.datname = '{dbname}'")
    return [tuple(x) for x in json.loads(out or "null") or []]


SETTINGS_START = "SELECT set_config("


def one_poll(seen: list[tuple[str, int]]) -> bool:
    """Whether the statements ``seen`` are exactly one poll: the agent's settings (its
    statement timeout) and the poll statement, once each. The two travel as one simple
    query: one round trip, one implicit transaction the settings are local to."""
    polls = [calls for q, calls in seen if q.startswith(POLL_START)]
    settings = [calls for q, calls in seen if q.startswith(SETTINGS_START) and " FROM " not in q]
    return len(seen) == 2 and polls == [1] and settings == [1]


def reset(cluster: PgCluster) -> None:
    cluster.psql("postgres", "SELECT pg_stat_statements_reset()")


def writes_seen(agent: AgentEnv) -> tuple:
    return (central_exec(agent, "SELECT agent_id, last_seen_at FROM tf_agents ORDER BY 1"),
            central_exec(agent, "SELECT key, value FROM tf_settings ORDER BY 1"),
            central_exec(agent, "SELECT count(*) FROM tf_change_log"))


def settled(agent: AgentEnv, kept: KeptCentral) -> None:
    """Sync until a sync is idle (the first copies, the next may still learn the
    central id and refill nothing)."""
    for _ in range(3):
        run_sync(agent.load(), kept=kept)


def test_an_idle_sync_on_a_kept_connection_is_one_read_only_statement(cluster, agent, kept):
    settled(agent, kept)
    before = writes_seen(agent)
    reset(cluster)
    summary = run_sync(agent.load(), kept=kept)
    seen = statements(cluster, agent.dbname)
    assert one_poll(seen), seen
    assert writes_seen(agent) == before
    assert summary["pulled"] == summary["pushed"] == 0
    assert set(summary["tables"]) == {"parcels", "districts", "sales"}


def test_a_central_edit_or_a_local_edit_ends_the_idle_path(cluster, agent, kept):
    settled(agent, kept)
    central_exec(agent, "UPDATE parcels SET owner_name = 'CENTRAL' WHERE prop_id = 100001")
    assert run_sync(agent.load(), kept=kept)["pulled"] == 1
    assert local_exec(agent, "SELECT owner_name FROM parcels WHERE prop_id = 100001") == [
        ("CENTRAL",)]
    local_exec(agent, "UPDATE parcels SET owner_name = 'LOCAL' WHERE prop_id = 100002")
    assert run_sync(agent.load(), kept=kept)["pushed"] == 1
    assert central_exec(agent, "SELECT owner_name FROM parcels WHERE prop_id = 100002") == [
        ("LOCAL",)]
    # its own push is nothing to pull back: idle again
    reset(cluster)
    run_sync(agent.load(), kept=kept)
    assert one_poll(statements(cluster, agent.dbname))


def test_a_column_added_centrally_is_noticed_and_pulled(cluster, agent, kept):
    settled(agent, kept)
    central_exec(agent, "ALTER TABLE parcels ADD COLUMN zoning_note text")
    central_exec(agent, "UPDATE parcels SET zoning_note = 'R1' WHERE prop_id = 100003")
    summary = run_sync(agent.load(), kept=kept)
    assert summary["tables"]["parcels"]["mode"] == "full"
    assert local_exec(agent, "SELECT zoning_note FROM parcels WHERE prop_id = 100003") == [
        ("R1",)]
    # a column added with no row changed is a change all the same
    central_exec(agent, "ALTER TABLE sales ADD COLUMN deed_book text")
    assert run_sync(agent.load(), kept=kept)["tables"]["sales"]["mode"] == "full"
    assert "deed_book" in [r[1] for r in local_exec(agent, "PRAGMA table_info(sales)")]
    reset(cluster)
    run_sync(agent.load(), kept=kept)
    assert one_poll(statements(cluster, agent.dbname))


def test_the_heartbeat_is_written_at_the_first_sync_then_once_per_period(agent, kept, clock):
    run_sync(agent.load(), kept=kept)
    [(agent_id, first)] = central_exec(agent, "SELECT agent_id, last_seen_at FROM tf_agents")
    for minutes, prop_id in ((1, 100004), (3, 100005)):
        # not an idle sync: under the old flow every pull wrote the heartbeat
        clock[0] += 60 * minutes
        central_exec(agent, "UPDATE parcels SET owner_name = 'X' WHERE prop_id = %s",
                     (prop_id,))
        assert run_sync(agent.load(), kept=kept)["pulled"] == 1
        assert central_exec(agent, "SELECT last_seen_at FROM tf_agents") == [(first,)]
    clock[0] += engine.HEARTBEAT_SECONDS
    run_sync(agent.load(), kept=kept)
    [(later,)] = central_exec(agent, "SELECT last_seen_at FROM tf_agents")
    assert later > first


def old_change_log(agent: AgentEnv) -> int:
    central_exec(agent, "UPDATE tf_change_log SET changed_at = now() - interval '400 days'")
    return central_exec(agent, "SELECT count(*) FROM tf_change_log")[0][0]


def test_only_one_agent_purges_and_only_once_per_period(agent, kept):
    settled(agent, kept)
    central_exec(agent, "UPDATE parcels SET owner_name = 'OLD' WHERE prop_id < 100011")
    run_sync(agent.load(), kept=kept)
    assert old_change_log(agent) > 0
    # purged at the first sync: not again within the period
    run_sync(agent.load(), kept=kept)
    assert central_exec(agent, "SELECT count(*) FROM tf_change_log")[0][0] > 0
    central_exec(agent, "DELETE FROM tf_settings WHERE key = 'purged_at'")
    # another agent purging holds the lock: this one skips rather than waits or doubles
    with psycopg.connect(agent.central_url) as other:
        other.execute("SELECT pg_advisory_xact_lock(hashtextextended('tf_purge', 0))")
        run_sync(agent.load(), kept=kept)
        assert central_exec(agent, "SELECT count(*) FROM tf_change_log")[0][0] > 0
        assert central_exec(agent, "SELECT count(*) FROM tf_settings "
                                   "WHERE key = 'purged_at'") == [(0,)]
        other.rollback()
    run_sync(agent.load(), kept=kept)
    assert central_exec(agent, "SELECT count(*) FROM tf_change_log") == [(0,)]
    assert central_exec(agent, "SELECT count(*) FROM tf_settings "
                               "WHERE key = 'purged_at'") == [(1,)]


def backends(agent: AgentEnv) -> list[int]:
    return [r[0] for r in central_exec(
        agent, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
               "AND application_name = 'terrafusion-agent'")]


def scheduled_sync(scheduler: SyncScheduler) -> None:
    run = scheduler.start_sync("schedule")
    done = threading.Event()
    scheduler._listeners.append(lambda *args: done.set())
    assert done.wait(120)
    scheduler._listeners.pop()
    assert scheduler.last_ended["result"] == "success", scheduler.last_ended
    assert run.id is not None


def test_the_agent_keeps_its_connection_and_survives_a_central_restart(cluster, agent):
    scheduler = SyncScheduler(agent.load())
    try:
        scheduled_sync(scheduler)
        [pid] = backends(agent)
        scheduled_sync(scheduler)
        assert backends(agent) == [pid]
        cluster.crash()
        cluster.restart()
        # the kept connection died with the server: the next sync connects again
        scheduled_sync(scheduler)
        assert len(backends(agent)) == 1 and backends(agent) != [pid]
        assert scheduler.consecutive_failures == 0
    finally:
        scheduler.shutdown(10)
    assert backends(agent) == []


# --- through PgBouncer in transaction pooling mode -------------------------------------------


@pytest.fixture
def bounced(tmp_path, bouncer_url):
    env = AgentEnv(tmp_path, write_config(tmp_path, bouncer_url), bouncer_url)
    env.run("init-central", "--demo-parcels", "300")
    env.run("sync")
    return env


@pytest.mark.parametrize("case", [c for c in REFUSALS if not c.restricted_role],
                         ids=[c.name for c in REFUSALS if not c.restricted_role])
def test_a_refused_row_is_set_aside_through_pgbouncer(bounced, case):
    summary = _refuse(bounced, case)
    assert summary["rejected"] == 1
    [entry] = open_entries(bounced)
    assert entry["kind"] == "rejected" and case.message in entry["message"]


def test_a_sync_killed_after_its_central_commit_converges_through_pgbouncer(bounced):
    local_exec(bounced, "UPDATE parcels SET owner_name = 'PUSHED' WHERE prop_id = 100007")
    central_exec(bounced, "UPDATE parcels SET land_value = 7 WHERE prop_id = 100008")
    killed = bounced.run("sync", check=False,
                         env={"TERRAFUSION_FAULT": "push.after_central_commit"})
    assert killed.returncode == -9, killed.stderr
    summary = json.loads(bounced.run("sync").stdout)
    assert summary["conflicts"] == 0
    assert central_exec(bounced, "SELECT owner_name FROM parcels WHERE prop_id = 100007") == [
        ("PUSHED",)]
    assert local_exec(bounced, "SELECT land_value FROM parcels WHERE prop_id = 100008") == [
        (7,)]
    assert local_exec(bounced, "SELECT count(*) FROM tf_local_changes") == [(0,)]
    assert bounced.run("verify", check=False).returncode == 0


def test_the_agents_settings_live_in_its_transactions_not_on_pooled_sessions(bounced):
    """Through PgBouncer each transaction may land on another server connection: the
    settings the agent needs are set in each of its transactions and left on none."""
    from terrafusion_agent.stores import open_central

    store = open_central(bounced.load())
    try:
        for _ in range(4):
            with store.read_session():
                assert store._scalar("SHOW statement_timeout") == "10min"
                assert store._scalar("SHOW TimeZone") == "UTC"
            assert store._scalar("SHOW statement_timeout") == "0"
    finally:
        store.close()
