"""Concurrency: three agents syncing at once over the same rows.

Every local edit arrives exactly once or is a recorded conflict. (Syncs killed at every
commit boundary and a central server stopped there: tests/test_sync_faults.py.)
"""

import json
import subprocess
import sys

import pytest
from conftest import AgentEnv, central_exec, local_exec, write_config


def start_sync(agent):
    return subprocess.Popen(
        [sys.executable, "-m", "terrafusion_agent", "--config", str(agent.config), "sync"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def converge(agent):
    """One sync, which must succeed: no retry hides a failure."""
    proc = agent.run("sync", check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.timeout(600)
def test_three_agents_editing_overlapping_rows_never_overwrite_silently(pg_url, tmp_path):
    agents = []
    for name in ("a", "b", "c"):
        d = tmp_path / name
        agents.append(AgentEnv(d, write_config(d, pg_url), pg_url))
    agents[0].run("init-central", "--demo-parcels", "300")
    for agent in agents:
        converge(agent)
    edits = []  # (agent index, prop_id, column, value)
    for rnd in range(3):
        for i, agent in enumerate(agents):
            for pid in range(100001, 100021):  # the same rows for everybody
                value = f"{'abc'[i]}-{rnd}-{pid}"
                local_exec(agent, "UPDATE parcels SET owner_name = ? WHERE prop_id = ?",
                           (value, pid))
                edits.append((i, pid, "owner_name", value))
            for pid in range(100101 + 30 * i, 100111 + 30 * i):  # rows of its own
                value = f"{'abc'[i]}-{rnd}-{pid}"
                local_exec(agent, "UPDATE parcels SET situs_address = ? WHERE prop_id = ?",
                           (value, pid))
                edits.append((i, pid, "situs_address", value))
        procs = [start_sync(agent) for agent in agents]
        for proc in procs:
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err
    for agent in agents:
        converge(agent)
    central = {(pid, col): value for pid, col, value in (
        [(r[0], "owner_name", r[1]) for r in central_exec(
            agents[0], "SELECT prop_id, owner_name FROM parcels")] +
        [(r[0], "situs_address", r[1]) for r in central_exec(
            agents[0], "SELECT prop_id, situs_address FROM parcels")])}
    open_conflicts = [
        {tuple(c["pk"]) for c in json.loads(agent.run("conflicts", "list").stdout)}
        for agent in agents]
    last_edit = {}
    for i, pid, col, value in edits:
        last_edit[(i, pid, col)] = value
    for (i, pid, col), value in last_edit.items():
        applied = central[(pid, col)] == value
        conflicted = (pid,) in open_conflicts[i]
        assert applied or conflicted, (i, pid, col, value, central[(pid, col)])
    # rows edited by one agent only always arrive
    for i in range(3):
        for pid in range(100101 + 30 * i, 100111 + 30 * i):
            assert central[(pid, "situs_address")] == f"{'abc'[i]}-2-{pid}"
    # somebody's edit won every contested row, and the others hold a recorded conflict
    for pid in range(100001, 100021):
        winners = [i for i in range(3) if central[(pid, "owner_name")] ==
                   last_edit[(i, pid, "owner_name")]]
        assert len(winners) >= 1
        assert all((pid,) in open_conflicts[i] for i in range(3) if i not in winners)
