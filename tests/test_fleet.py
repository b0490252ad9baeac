"""The fleet view for IT: each agent's heartbeat in central's ``tf_agents`` says how its
syncs go (interval, last success, last result, failures in a row, pending edits, open
conflicts, rows refused); the ``tf_fleet`` view flags agents stale by their own interval;
``terrafusion-agent fleet`` prints it, for any role allowed to read the view; an existing
central upgrades to it while agents of the previous version keep syncing."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from conftest import AgentEnv, agent_before, central_exec, local_exec, write_config
from terrafusion_agent import api
from terrafusion_agent.migrate import heads

ROOT = Path(__file__).resolve().parent.parent
MIGRATION = "agent/terrafusion_agent/migrations/central/versions/0005_fleet.py"


def heartbeat(agent: AgentEnv) -> dict:
    """This agent's row of ``tf_agents``, by column."""
    agent_id = local_exec(agent, "SELECT value FROM tf_meta WHERE key = 'agent_id'")[0][0]
    columns = ("version", "interval_seconds", "last_success_at", "last_result",
               "consecutive_failures", "pending", "open_conflicts", "rejected", "last_seen_at")
    [row] = central_exec(agent, f"SELECT {', '.join(columns)} FROM tf_agents "
                                "WHERE agent_id = %s", (agent_id,))
    return dict(zip(columns, row))


def set_central_up(cluster, url: str, up: bool) -> None:
    """Let the test database accept connections, or refuse them and drop the open ones
    (what an agent meets when central is down)."""
    db = url.split("@/", 1)[1].split("?", 1)[0]
    cluster.psql("postgres", f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS {str(up).lower()}')
    if not up:
        # waiting for each backend to be gone: a kept connection must not serve one more
        cluster.psql("postgres", "SELECT pg_terminate_backend(pid, 10000) FROM "
                                 f"pg_stat_activity WHERE datname = '{db}'")


def ago(seconds: float) -> str:
    """A time ``seconds`` before now, as the agent writes times."""
    when = datetime.now(timezone.utc) - timedelta(seconds=seconds)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- what the heartbeat carries ---------------------------------------------------------


def beat_due(agent: AgentEnv) -> None:
    """Make this agent's next heartbeat due now (it is written at most every few
    minutes: the time of the last one lives in the local copy)."""
    local_exec(agent, "DELETE FROM tf_meta WHERE key = 'heartbeat'")


def test_the_heartbeat_reports_last_success_failures_and_the_local_backlog(
        pg_agent, pg_cluster):
    agent = pg_agent
    agent.run("init-central", "--demo-parcels", "30")
    agent.run("sync")
    first = heartbeat(agent)
    [(first_success,)] = local_exec(
        agent, "SELECT finished_at FROM tf_sync_runs WHERE result = 'success'")
    # written at the end of the first sync: it reports that sync
    assert first["interval_seconds"] == 300
    assert (first["last_result"], first["consecutive_failures"]) == ("success", 0)
    assert first["last_success_at"] == first_success
    assert (first["pending"], first["open_conflicts"], first["rejected"]) == (0, 0, 0)
    agent.run("sync")  # within the heartbeat period: not written again
    assert heartbeat(agent) == first

    # a conflict and a refused row, pushed in one sync
    central_exec(agent, "ALTER TABLE parcels ADD CONSTRAINT land_value_positive "
                        "CHECK (land_value >= 0)")
    central_exec(agent, "UPDATE parcels SET owner_name = 'CENTRAL' WHERE prop_id = 100001")
    local_exec(agent, "UPDATE parcels SET owner_name = 'LOCAL' WHERE prop_id = 100001")
    local_exec(agent, "UPDATE parcels SET land_value = -1 WHERE prop_id = 100002")
    beat_due(agent)
    summary = json.loads(agent.run("sync").stdout)
    assert (summary["conflicts"], summary["rejected"]) == (1, 1)
    [(last_success,)] = local_exec(
        agent, "SELECT max(finished_at) FROM tf_sync_runs WHERE result = 'success'")
    assert heartbeat(agent)["last_success_at"] == last_success

    # central answers but a synced table lost its change capture: the syncs fail, and
    # the heartbeats written after them say so
    triggers = central_exec(agent, "SELECT tgname FROM pg_trigger WHERE tgrelid = "
                                   "'sales'::regclass AND NOT tgisinternal")
    for (name,) in triggers:
        central_exec(agent, f'DROP TRIGGER "{name}" ON sales')
    local_exec(agent, "UPDATE parcels SET acres = 9 WHERE prop_id = 100003")
    for failures in (1, 2):
        beat_due(agent)
        assert agent.run("sync", check=False).returncode == 1
        after = heartbeat(agent)
        assert (after["last_result"], after["consecutive_failures"]) == ("failed", failures)
        assert after["last_success_at"] == last_success
        assert (after["pending"], after["open_conflicts"], after["rejected"]) == (1, 1, 1)

    # central down: nothing can be written there; the streak goes on locally
    set_central_up(pg_cluster, agent.central_url, False)
    try:
        beat_due(agent)
        assert agent.run("sync", check=False).returncode == 1
    finally:
        set_central_up(pg_cluster, agent.central_url, True)
    assert heartbeat(agent)["consecutive_failures"] == 2

    agent.run("init-central")
    beat_due(agent)
    agent.run("sync")
    again = heartbeat(agent)
    assert (again["last_result"], again["consecutive_failures"], again["pending"]) == (
        "success", 0, 0)
    assert again["last_success_at"] > last_success


# --- the stale rule ---------------------------------------------------------------------


def test_tf_fleet_flags_agents_stale_by_their_own_interval(any_agent):
    any_agent.run("init-central", "--demo-parcels", "5")
    # (host, interval, registered, last seen, last success): times in seconds ago
    agents = {
        "every-minute": (60, 9000, 100, 100, False),      # allowed 3 * 60 + 300 = 480 s
        "unseen": (60, 9000, 500, 500, True),
        "failing": (60, 9000, 10, 600, True),              # seen, but no success since
        "hourly": (3600, 90000, 10000, 10000, False),      # allowed 11,100 s
        "hourly-unseen": (3600, 90000, 11200, 11200, True),
        "new": (60, 60, 60, None, False),                  # never succeeded, just started
        "never-worked": (60, 600, 10, None, True),
        "old-version": (None, 9000, 1100, None, False),    # allowed 3 * 300 + 300 s
        "old-unseen": (None, 9000, 1300, None, True),
    }
    for host, (interval, registered, seen, success, _) in agents.items():
        central_exec(any_agent,
                     "INSERT INTO tf_agents (agent_id, hostname, registered_at, last_seen_at, "
                     "interval_seconds, last_success_at) VALUES (%s, %s, %s, %s, %s, %s)",
                     (f"id-{host}", host, ago(registered), ago(seen), interval,
                      None if success is None else ago(success)))
    rows = {r["hostname"]: r for r in api.fleet(any_agent.load())}
    assert {h: r["stale"] for h, r in rows.items()} == {
        h: a[4] for h, a in agents.items()}
    assert rows["every-minute"]["stale_after_seconds"] == 480
    assert rows["old-version"]["stale_after_seconds"] == 1200
    assert rows["old-version"]["last_success_at"] is None
    # stale ones first
    listed = [r["stale"] for r in api.fleet(any_agent.load())]
    assert listed == sorted(listed, reverse=True)


# --- the command --------------------------------------------------------------------------


def test_fleet_prints_every_agent_with_stale_ones_flagged_and_exits_0(tmp_path, pg_url):
    one = AgentEnv(tmp_path / "one", write_config(tmp_path / "one", pg_url), pg_url)
    two = AgentEnv(tmp_path / "two", write_config(tmp_path / "two", pg_url), pg_url)
    one.run("init-central", "--demo-parcels", "10")
    one.run("sync")
    two.run("sync")
    two_id = local_exec(two, "SELECT value FROM tf_meta WHERE key = 'agent_id'")[0][0]
    # the second agent was last seen three days ago
    central_exec(two, "UPDATE tf_agents SET last_seen_at = %s, last_success_at = %s, "
                      "hostname = 'ROOM-214' WHERE agent_id = %s",
                 (ago(3 * 86400), ago(3 * 86400), two_id))

    table = one.run("fleet")
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["STATE", "HOST", "AGENT", "VERSION"]
    assert lines[1].split()[:3] == ["STALE", "ROOM-214", two_id[:8]]
    assert "3 d ago" in lines[1]
    assert lines[2].split()[0] == "ok"
    assert "2 agent(s), 1 stale" in table.stdout

    body = json.loads(one.run("fleet", "--json").stdout)
    assert [a["stale"] for a in body["agents"]] == [True, False]
    assert body["agents"][0]["agent_id"] == two_id
    assert set(body["agents"][1]) >= {"version", "last_success_at", "consecutive_failures",
                                      "pending", "open_conflicts", "rejected"}


def test_any_role_that_may_log_in_reads_the_fleet_but_not_the_agents_table(
        pg_agent, pg_cluster):
    pg_agent.run("init-central", "--demo-parcels", "10")
    pg_agent.run("sync")
    role = "fleet_it_viewer"
    pg_cluster.psql("postgres", f"DROP ROLE IF EXISTS {role}")
    pg_cluster.psql("postgres", f"CREATE ROLE {role} LOGIN")
    try:
        url = pg_agent.central_url.replace("postgres@/", f"{role}@/", 1)
        assert role in url
        it = AgentEnv(pg_agent.dir / "it", write_config(pg_agent.dir / "it", url), url)
        body = json.loads(it.run("fleet", "--json").stdout)
        assert len(body["agents"]) == 1 and body["agents"][0]["last_result"] == "success"
        with psycopg.connect(url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT local_path FROM tf_agents")
    finally:
        pg_cluster.psql(_dbname(pg_agent.central_url), f"DROP OWNED BY {role}")
        pg_cluster.psql("postgres", f"DROP ROLE {role}")


def _dbname(url: str) -> str:
    return url.split("@/", 1)[1].split("?", 1)[0]


# --- the upgrade --------------------------------------------------------------------------



def test_upgrade_from_c0004_adds_the_fleet_and_agents_of_the_previous_version_keep_syncing(
        central_url, tmp_path):
    old_code = {"PYTHONPATH": str(agent_before(MIGRATION, tmp_path / "previous"))}
    old = AgentEnv(tmp_path / "old", write_config(tmp_path / "old", central_url), central_url)
    new = AgentEnv(tmp_path / "new", write_config(tmp_path / "new", central_url), central_url)
    old.run("init-central", "--demo-parcels", "30", env=old_code)
    assert central_exec(old, "SELECT version_num FROM tf_schema_version") == [("c0004",)]
    old.run("sync", env=old_code)

    refused = new.run("fleet", check=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "run 'terrafusion-agent init-central'" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    refused = new.run("sync", check=False)
    assert refused.returncode == 1 and "init-central" in refused.stderr

    new.run("init-central")
    assert central_exec(old, "SELECT version_num FROM tf_schema_version") == [
        (head,) for head in heads("central")]
    central_exec(old, "UPDATE parcels SET owner_name = 'AFTER' WHERE prop_id = 100002")
    local_exec(old, "UPDATE parcels SET land_value = 7 WHERE prop_id = 100003")
    summary = json.loads(old.run("sync", env=old_code).stdout)
    assert summary["pulled"] == 1 and summary["pushed"] == 1
    assert old.run("verify", env=old_code).returncode == 0

    new.run("sync")
    new.run("sync")
    assert local_exec(new, "SELECT land_value FROM parcels WHERE prop_id = 100003") == [(7.0,)]
    rows = {r["agent_id"]: r for r in api.fleet(new.load())}
    old_row = rows[local_exec(old, "SELECT value FROM tf_meta WHERE key = 'agent_id'")[0][0]]
    new_row = rows[local_exec(new, "SELECT value FROM tf_meta WHERE key = 'agent_id'")[0][0]]
    # the previous version reports who it is, not how it goes; it is not stale for that
    assert old_row["interval_seconds"] is None and old_row["last_success_at"] is None
    assert old_row["stale"] is False and old_row["version"]
    assert (new_row["last_result"], new_row["interval_seconds"]) == ("success", 300)


# --- Grafana ----------------------------------------------------------------------------


def test_the_dashboards_fleet_panel_reads_tf_fleet_on_a_central(pg_agent):
    dashboard = json.loads((ROOT / "resources" / "monitoring" / "grafana-dashboard.json")
                           .read_text(encoding="utf-8"))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["fleet_datasource"]["type"] == "datasource"
    assert variables["fleet_datasource"]["query"] == "postgres"
    [panel] = [p for p in dashboard["panels"]
               if p.get("datasource", {}).get("uid") == "${fleet_datasource}"]
    assert panel["type"] == "table"
    [target] = panel["targets"]
    stale = [o for o in panel["fieldConfig"]["overrides"]
             if o["matcher"] == {"id": "byName", "options": "stale"}]
    assert stale and "red" in json.dumps(stale)

    pg_agent.run("init-central", "--demo-parcels", "5")
    pg_agent.run("sync")
    central_exec(pg_agent, "INSERT INTO tf_agents (agent_id, hostname, registered_at, "
                           "last_seen_at, interval_seconds) VALUES ('x', 'ROOM-214', %s, %s, 60)",
                 (ago(86400), ago(86400)))
    with psycopg.connect(pg_agent.central_url) as conn:
        cur = conn.execute(target["rawSql"])
        names = [d.name for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
    assert [(r["host"], r["stale"]) for r in rows][0] == ("ROOM-214", True)
    assert rows[1]["stale"] is False and "failures in a row" in names
