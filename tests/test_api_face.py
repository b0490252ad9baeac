"""``terrafusion_agent.api``: one rule for who does the work, whoever asks.

A running agent serving the local copy is asked over its HTTP API (it holds the copy's
lock); without one the work is done in the calling process under that lock; a lock held
by an agent that does not answer is refused with one sentence and nothing is written.
The CLI goes through the same module as the plugin, so these run the real CLI against a
real ``terrafusion-agent run``.
"""

from __future__ import annotations

import json
import socket

import pytest
from conftest import central_exec, local_exec
from service_helpers import get, start_process, stop_process, wait_for
from terrafusion_agent import api
from terrafusion_agent.lock import LocalLock


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _on_port(agent, port: int) -> None:
    agent.config.write_text(agent.config.read_text().replace("port = 0", f"port = {port}"))


def _runs(base: str) -> list[dict]:
    return get(base + "/api/v1/syncs").json["runs"]


def _conflict(agent, prop_id: int = 100004) -> int:
    """One real conflict (the same value changed on both sides, then a sync); its id."""
    local_exec(agent, "UPDATE parcels SET land_value = 1 WHERE prop_id = ?", (prop_id,))
    central_exec(agent, "UPDATE parcels SET land_value = 2 WHERE prop_id = ?", (prop_id,))
    agent.run("sync")
    [conflict] = json.loads(agent.run("conflicts", "list").stdout)
    return conflict["id"]


def test_cli_sync_hands_the_sync_to_the_running_agent_and_prints_its_summary(sqlite_agent):
    agent = sqlite_agent
    _on_port(agent, _free_port())
    agent.run("init-central", "--demo-parcels", "80")
    proc, base = start_process(agent.config, interval=300)
    try:
        wait_for(lambda: any(r["result"] == "success" for r in _runs(base)), 60,
                 "the agent's first sync")
        central_exec(agent, "UPDATE parcels SET owner_name = 'HANDED' WHERE prop_id = 100003")

        cli = agent.run("sync")  # the agent holds the lock: this only works through it

        summary = json.loads(cli.stdout)
        assert summary["via"] == "agent" and summary["result"] == "success"
        assert summary["pulled"] == 1 and summary["trigger"] == "api"
        # the whole summary, as a sync run here prints it
        assert {"tables", "rows", "rejected", "pending", "open_conflicts"} <= set(summary)
        assert _runs(base)[0]["id"] == summary["id"]
        assert local_exec(agent, "SELECT owner_name FROM parcels WHERE prop_id = 100003") \
            == [("HANDED",)]
    finally:
        stop_process(proc)


def test_cli_sync_without_an_agent_syncs_here_and_says_so(sqlite_agent):
    agent = sqlite_agent
    agent.run("init-central", "--demo-parcels", "40")
    summary = json.loads(agent.run("sync").stdout)
    assert summary["via"] == "cli" and summary["result"] == "success"
    assert summary["pulled"] > 0


def test_cli_resolve_goes_through_the_running_agent(sqlite_agent):
    agent = sqlite_agent
    _on_port(agent, _free_port())
    agent.run("init-central", "--demo-parcels", "40")
    agent.run("sync")
    conflict = _conflict(agent)
    proc, base = start_process(agent.config, interval=300)
    try:
        wait_for(lambda: any(r["result"] == "success" for r in _runs(base)), 60,
                 "the agent's first sync")
        resolved = json.loads(agent.run("conflicts", "resolve", str(conflict),
                                        "--keep", "local").stdout)
        assert resolved["id"] == conflict
        assert json.loads(agent.run("conflicts", "list").stdout) == []
    finally:
        stop_process(proc)
    agent.run("sync")
    assert central_exec(agent, "SELECT land_value FROM parcels WHERE prop_id = 100004") \
        == [(1,)]


def test_cli_resolve_is_refused_while_an_agent_that_does_not_answer_holds_the_copy(
        sqlite_agent):
    """Before, ``conflicts resolve`` took no lock at all and could write beside a sync."""
    agent = sqlite_agent
    agent.run("init-central", "--demo-parcels", "40")
    agent.run("sync")
    conflict = _conflict(agent)
    with LocalLock(agent.local_path):  # an agent whose port nobody knows (port = 0)
        refused = agent.run("conflicts", "resolve", str(conflict), "--keep", "central",
                            check=False)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and "already using the local copy" in refused.stderr
    [still_open] = json.loads(agent.run("conflicts", "list").stdout)
    assert still_open["id"] == conflict and not still_open.get("resolved_at")


def test_api_resolves_here_under_the_lock_without_an_agent(sqlite_agent):
    agent = sqlite_agent
    agent.run("init-central", "--demo-parcels", "40")
    agent.run("sync")
    conflict = _conflict(agent)
    done = api.resolve_conflicts(agent.load(), [conflict, 999], "central")
    assert done.via == "here" and done.resolved == [conflict]
    assert len(done.errors) == 1 and "999" in done.errors[0]
    assert local_exec(agent, "SELECT land_value FROM parcels WHERE prop_id = 100004") \
        == [(2,)]


def test_api_lists_pending_edits_and_the_sync_history(sqlite_agent):
    agent = sqlite_agent
    agent.run("init-central", "--demo-parcels", "40")
    agent.run("sync")
    local_exec(agent, "UPDATE parcels SET owner_name = 'WAITING' WHERE prop_id = 100002")
    local_exec(agent, "DELETE FROM sales WHERE rowid = (SELECT min(rowid) FROM sales)")
    cfg = agent.load()

    edits = api.pending_edits(cfg)
    assert [(e["table"], e["op"]) for e in edits] == [("parcels", "update"), ("sales", "delete")]
    assert edits[0]["key"] == [100002]
    assert api.pending_edits(cfg, limit=1) == edits[:1]
    [run] = api.sync_history(cfg)
    assert run["result"] == "success" and run["trigger"] == "cli"

    agent.run("sync")
    assert api.pending_edits(cfg) == []
    assert [r["id"] for r in api.sync_history(cfg)] == [2, 1]


def test_cli_merge_goes_through_the_running_agent_and_a_bad_one_exits_2(sqlite_agent):
    agent = sqlite_agent
    _on_port(agent, _free_port())
    agent.run("init-central", "--demo-parcels", "40")
    agent.run("sync")
    conflict = _conflict(agent)
    proc, base = start_process(agent.config, interval=300)
    try:
        wait_for(lambda: any(r["result"] == "success" for r in _runs(base)), 60,
                 "the agent's first sync")
        bad = agent.run("conflicts", "resolve", str(conflict), "--merge",
                        '{"land_value": "lots"}', check=False)
        assert bad.returncode == 2 and bad.stdout == ""
        assert bad.stderr.count("\n") == 1 and "land_value" in bad.stderr
        # the agent holds the copy's lock: a merge made here would be refused
        merged = json.loads(agent.run("conflicts", "resolve", str(conflict), "--merge",
                                      '{"land_value": 3}').stdout)
        assert merged["id"] == conflict and merged["resolution"] == "merge"
    finally:
        stop_process(proc)
    agent.run("sync")
    assert central_exec(agent, "SELECT land_value FROM parcels WHERE prop_id = 100004") \
        == [(3,)]


def test_api_merges_one_conflict_at_a_time_and_never_with_keep(sqlite_agent):
    from terrafusion_agent.errors import BadRequest, InvalidMerge

    cfg = sqlite_agent.load()
    with pytest.raises(InvalidMerge, match="one conflict at a time"):
        api.resolve_conflicts(cfg, [1, 2], merge={"land_value": "local"})
    with pytest.raises(BadRequest, match="not both"):
        api.resolve_conflicts(cfg, [1], "local", {"land_value": "local"})
    with pytest.raises(BadRequest, match="not both or neither"):
        api.resolve_conflicts(cfg, [1])
