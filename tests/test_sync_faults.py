"""Every named fault point, crashed at deterministically, and the central server stopped
at the same boundaries: the next syncs converge, nothing is lost, nothing is duplicated,
and no conflict appears that two writers did not make.

Each case edits both sides, runs the step with ``TERRAFUSION_FAULT`` naming its point
(the process must die there: a point that is not reached fails the test), edits both
sides again (the same rows and columns as before, so a stale base would show as a false
conflict), syncs twice without faults and checks the oracle.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import AgentEnv, local_exec, write_config
from pgcluster import PgCluster
from terrafusion_agent.faults import POINTS

LOCAL_ROWS = list(range(100001, 100041))  # land_value and situs_address edited locally
CENTRAL_ROWS = list(range(100101, 100141))  # owner_name edited centrally
FIRST_SYNC_POINTS = ("pull.mid_bulk_copy", "keys.during_allocation", "keys.after_allocation")
_names = (f"faults_{i}" for i in itertools.count(1))


@pytest.fixture(scope="module")
def cluster():
    # Asynchronous commits that stay unflushed for seconds: an agent that settles on a
    # commit it did not make durable loses edits when the server stops at once.
    c = PgCluster("-c wal_writer_delay=10s -c wal_writer_flush_after=0").start()
    tpl = AgentEnv(c.root / "tpl", write_config(c.root / "tpl", c.create_db("county_tpl")),
                   c.url("county_tpl"))
    tpl.run("init-central", "--demo-parcels", "400")
    yield c
    c.stop()


@pytest.fixture
def agent(cluster, tmp_path) -> AgentEnv:
    name = next(_names)
    cluster.psql("postgres", f'CREATE DATABASE "{name}" TEMPLATE county_tpl')
    url = cluster.url(name)
    return AgentEnv(tmp_path, write_config(tmp_path, url), url)


def central_exec(agent: AgentEnv, sql: str, params: tuple = ()) -> list:
    """The assessment system's writes: durable, unlike the cluster's default, so that a
    server crash loses only what the agent failed to make durable."""
    import psycopg

    with psycopg.connect(agent.central_url, autocommit=True,
                         options="-c synchronous_commit=on") as conn:
        cur = conn.execute(sql, params or None)
        return cur.fetchall() if cur.description else []


def edit_both_sides(agent: AgentEnv, round_: int, local: bool = True) -> None:
    central_exec(agent, "UPDATE parcels SET owner_name = 'C' || %s || '-' || prop_id "
                        "WHERE prop_id = ANY(%s)", (round_, CENTRAL_ROWS))
    central_exec(agent, "INSERT INTO sales (prop_id, sale_date, sale_price) "
                        "VALUES (100200, '2026-02-01', %s)", (round_ * 10 + 1,))
    if not local:
        return
    conn_rows = [(round_ * 1_000_000 + p, f"L{round_} {p}", p) for p in LOCAL_ROWS]
    from terrafusion_agent.stores.spatialite import connect

    conn = connect(agent.local_path)
    try:
        conn.execute("BEGIN")
        conn.executemany("UPDATE parcels SET land_value = ?, situs_address = ? "
                         "WHERE prop_id = ?", conn_rows)
        conn.execute("INSERT INTO sales (prop_id, sale_date, sale_price) "
                     "VALUES (100001, '2026-03-01', ?)", (round_ * 10 + 2,))
        conn.execute("COMMIT")
    finally:
        conn.close()


def sync(agent: AgentEnv, env: dict | None = None) -> dict:
    proc = agent.run("sync", check=False, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def assert_converged(agent: AgentEnv, last_round: int, local_rounds: list[int]) -> None:
    """The oracle: every edit present exactly once, no conflict, both sides equal."""
    sync(agent)
    summary = sync(agent)
    assert summary["pulled"] == 0 and summary["pushed"] == 0, summary
    assert summary["pending"] == 0 and summary["open_conflicts"] == 0, summary
    assert json.loads(agent.run("conflicts", "list").stdout) == []
    if local_rounds:
        last = local_rounds[-1]
        got = dict(central_exec(agent, "SELECT prop_id, land_value::bigint FROM parcels "
                                       "WHERE prop_id = ANY(%s)", (LOCAL_ROWS,)))
        assert got == {p: last * 1_000_000 + p for p in LOCAL_ROWS}
        addresses = dict(central_exec(agent, "SELECT prop_id, situs_address FROM parcels "
                                             "WHERE prop_id = ANY(%s)", (LOCAL_ROWS,)))
        assert addresses == {p: f"L{last} {p}" for p in LOCAL_ROWS}
    owners = dict(local_exec(agent, "SELECT prop_id, owner_name FROM parcels WHERE prop_id "
                                    f"IN ({','.join(map(str, CENTRAL_ROWS))})"))
    assert owners == {p: f"C{last_round}-{p}" for p in CENTRAL_ROWS}
    prices = sorted(r[0] for r in central_exec(
        agent, "SELECT sale_price::int FROM sales WHERE sale_date >= '2026-02-01'"))
    expected = sorted([r * 10 + 1 for r in range(1, last_round + 1)]
                      + [r * 10 + 2 for r in local_rounds])
    assert prices == expected  # each new sale exactly once, on central
    local_prices = sorted(r[0] for r in local_exec(
        agent, "SELECT CAST(sale_price AS INTEGER) FROM sales WHERE sale_date >= '2026-02-01'"))
    assert local_prices == expected
    assert agent.run("verify", check=False).returncode == 0


def prepare(agent: AgentEnv, point: str) -> tuple[list[str], list[int]]:
    """Bring the agent to where ``point`` is met; returns the command to fault and the
    local edit rounds made so far."""
    if point in FIRST_SYNC_POINTS:
        edit_both_sides(agent, 1, local=False)
        return ["sync"], []
    sync(agent)
    if point == "settle.before_local_commit":
        edit_both_sides(agent, 1)
        killed = agent.run("sync", check=False,
                           env={"TERRAFUSION_FAULT": "push.after_central_commit"})
        assert killed.returncode == -9, killed.stderr
        return ["sync"], [1]
    if point == "resolve.before_local_commit":
        local_exec(agent, "UPDATE parcels SET legal_desc = 'LOCAL' WHERE prop_id = 100300")
        central_exec(agent, "UPDATE parcels SET legal_desc = 'CENTRAL' WHERE prop_id = 100300")
        sync(agent)
        (conflict,) = json.loads(agent.run("conflicts", "list").stdout)
        edit_both_sides(agent, 1)
        return ["conflicts", "resolve", str(conflict["id"]), "--keep", "local"], [1]
    if point == "discard.before_local_commit":
        local_exec(agent, "UPDATE parcels SET legal_desc = 'DISCARD ME' WHERE prop_id = 100300")
        edit_both_sides(agent, 1)
        return ["pending", "discard", "parcels", "100300"], [1]
    edit_both_sides(agent, 1)
    if point == "schema.mid_rebuild":
        central_exec(agent, "ALTER TABLE parcels ADD COLUMN zoning_note text")
    if point == "purge.before_commit":
        central_exec(agent, "UPDATE tf_change_log SET changed_at = now() - interval '400 days'")
        # purged once per central per period: the setup's syncs purged moments ago
        central_exec(agent, "DELETE FROM tf_settings WHERE key = 'purged_at'")
    return ["sync"], [1]


def finish(agent: AgentEnv, point: str, local_rounds: list[int]) -> None:
    if point in FIRST_SYNC_POINTS:
        sync(agent)
    if point == "discard.before_local_commit":
        # the discard did not commit: the edit is still there, whole, and discarding works
        assert local_exec(agent, "SELECT legal_desc FROM parcels WHERE prop_id = 100300") \
            == [("DISCARD ME",)]
        agent.run("pending", "discard", "parcels", "100300")
    edit_both_sides(agent, 2)
    local_rounds = [*local_rounds, 2]
    if point == "resolve.before_local_commit":
        # the resolution did not commit: the conflict is still open, and resolving works
        (conflict,) = json.loads(agent.run("conflicts", "list").stdout)
        agent.run("conflicts", "resolve", str(conflict["id"]), "--keep", "local")
    assert_converged(agent, 2, local_rounds)
    if point == "resolve.before_local_commit":
        assert central_exec(agent, "SELECT legal_desc FROM parcels WHERE prop_id = 100300"
                            ) == [("LOCAL",)]
    if point == "discard.before_local_commit":
        assert central_exec(agent, "SELECT legal_desc FROM parcels WHERE prop_id = 100300"
                            ) != [("DISCARD ME",)]


def test_every_fault_point_is_documented():
    doc = (Path(__file__).parent.parent / "docs" / "guarantees.md").read_text(encoding="utf-8")
    missing = [name for name in POINTS if f"`{name}`" not in doc]
    assert not missing


@pytest.mark.timeout(300)
@pytest.mark.parametrize("point", list(POINTS))
def test_killed_at_fault_point_converges(agent, point):
    command, local_rounds = prepare(agent, point)
    proc = agent.run(*command, check=False, env={"TERRAFUSION_FAULT": point})
    assert proc.returncode == -9, f"{point} was not reached: {proc.stdout}{proc.stderr}"
    finish(agent, point, local_rounds)


def _central_crash_points() -> list[str]:
    # resolving a conflict and discarding an edit never talk to central
    return [p for p in POINTS
            if p not in ("resolve.before_local_commit", "discard.before_local_commit")]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("point", _central_crash_points())
def test_central_stopped_at_fault_point_converges(cluster, agent, point, tmp_path):
    command, local_rounds = prepare(agent, point)
    # another client commits asynchronously (the cluster's default) just before: a
    # checkpoint naming its transaction would be wrong once the crash loses it
    import conftest

    conftest.central_exec(agent, "UPDATE parcels SET year_built = year_built "
                                 "WHERE prop_id = 100399")
    pause = tmp_path / "pause"
    env = {**os.environ, "TERRAFUSION_FAULT": point, "TERRAFUSION_FAULT_PAUSE": str(pause)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "terrafusion_agent", "--config", str(agent.config), *command],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        reached = pause.with_name("pause.reached")
        deadline = time.monotonic() + 120
        while not reached.exists():  # waits for the event, not for time to pass
            assert proc.poll() is None, f"{point} was not reached: {proc.communicate()}"
            assert time.monotonic() < deadline, f"{point} was not reached in 120 s"
            time.sleep(0.01)
        cluster.crash()
        pause.with_name("pause.go").touch()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        if not (cluster.data / "postmaster.pid").exists():
            cluster.restart()
    assert "Traceback" not in err
    if proc.returncode != 0:
        assert proc.returncode == 1 and len(err.strip().splitlines()) == 1, err
    finish(agent, point, local_rounds)


@pytest.mark.timeout(600)
def test_killed_again_and_again_at_every_boundary_converges(agent):
    """Twelve rounds of edits on both sides, each sync killed at another boundary, the
    same rows and columns edited in every round: the stale-base case of a push that
    committed and was never settled, over and over."""
    sync(agent)
    points = ["push.after_central_commit", "push.before_local_commit",
              "push.after_central_commit", "pull.before_local_commit",
              "push.before_central_commit", "push.after_local_commit",
              "pull.after_snapshot", "push.after_central_commit",
              "settle.before_local_commit", "pull.after_local_commit",
              "push.after_central_commit", "push.before_central_commit"]
    rounds = []
    for round_, point in enumerate(points, start=1):
        edit_both_sides(agent, round_)
        rounds.append(round_)
        proc = agent.run("sync", check=False, env={"TERRAFUSION_FAULT": point})
        assert proc.returncode == -9, f"round {round_}: {point} was not reached"
    assert_converged(agent, len(points), rounds)


@pytest.mark.timeout(300)
def test_unsettled_push_is_recognised_after_both_sides_edited_the_rows_again(agent):
    sync(agent)
    edit_both_sides(agent, 1)
    killed = agent.run("sync", check=False, env={"TERRAFUSION_FAULT": "push.after_central_commit"})
    assert killed.returncode == -9
    # central edits another column of the very rows the unsettled push wrote; the
    # analyst edits the pushed column again
    central_exec(agent, "UPDATE parcels SET legal_desc = 'CENTRAL ' || prop_id "
                        "WHERE prop_id = ANY(%s)", (LOCAL_ROWS,))
    local_exec(agent, "UPDATE parcels SET land_value = land_value + 1 WHERE prop_id IN "
                      f"({','.join(map(str, LOCAL_ROWS))})")
    summary = sync(agent)
    assert summary["conflicts"] == 0 and summary["open_conflicts"] == 0, summary
    sync(agent)
    rows = central_exec(agent, "SELECT prop_id, land_value::bigint, legal_desc FROM parcels "
                               "WHERE prop_id = ANY(%s) ORDER BY prop_id", (LOCAL_ROWS,))
    assert rows == [(p, 1_000_000 + p + 1, f"CENTRAL {p}") for p in LOCAL_ROWS]
    assert agent.run("verify", check=False).returncode == 0


@pytest.mark.timeout(300)
@pytest.mark.parametrize("later", ["edit", "delete"])
def test_a_later_edit_of_a_value_central_merged_but_never_showed_is_a_conflict(agent, later):
    """A push merged central's new land value and died before the local copy received
    it: the analyst's later edit (or delete) was made against the old value and must
    meet central's as a conflict, never overwrite it."""
    sync(agent)
    central_exec(agent, "UPDATE parcels SET land_value = 777777 WHERE prop_id = 100350")
    local_exec(agent, "UPDATE parcels SET situs_address = 'MINE' WHERE prop_id = 100350")
    killed = agent.run("sync", check=False, env={"TERRAFUSION_FAULT": "push.after_central_commit"})
    assert killed.returncode == -9
    assert local_exec(agent, "SELECT land_value FROM parcels WHERE prop_id = 100350") != [
        (777777,)]
    if later == "edit":
        local_exec(agent, "UPDATE parcels SET land_value = 1 WHERE prop_id = 100350")
    else:
        local_exec(agent, "DELETE FROM parcels WHERE prop_id = 100350")
    summary = sync(agent)
    assert summary["conflicts"] == 1, summary
    assert central_exec(agent, "SELECT land_value::int, situs_address FROM parcels "
                               "WHERE prop_id = 100350") == [(777777, "MINE")]
