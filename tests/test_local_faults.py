"""A damaged, full, read-only or busy local copy: one sentence naming the file, every
attempt recorded, and nothing lost.

Real faults only: pages of the real SpatiaLite file overwritten with garbage, a real
tmpfs filled up or remounted read-only, real locks held by a second process that says
when it holds them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import sqlite3
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from conftest import AgentEnv, central_exec, local_exec, write_config
from service_helpers import get, wait_for
from terrafusion_agent import config as config_mod
from terrafusion_agent.service.daemon import Agent
from terrafusion_agent.stores.local import LocalStore

#: what a failing disk or a bad copy leaves in a page: nothing SQLite can parse
GARBAGE = bytes(range(256)) * 16
RECOVER = "terrafusion-agent recover"


# --- helpers ----------------------------------------------------------------------------


def synced(agent: AgentEnv, parcels: int = 300) -> AgentEnv:
    agent.run("init-central", "--demo-parcels", str(parcels))
    agent.run("sync")
    return agent


def damage_pages(path: Path, pages) -> None:
    """Overwrite whole pages of the database file with garbage."""
    assert not Path(f"{path}-wal").exists(), "every page must be in the file itself"
    size = sqlite3.connect(path).execute("PRAGMA page_size").fetchone()[0]
    garbage = (GARBAGE * (size // len(GARBAGE) + 1))[:size]
    with open(path, "r+b") as f:
        for page in pages:
            f.seek((page - 1) * size)
            f.write(garbage)


def page_holding(path: Path, marker: str) -> int:
    """The one page of the file holding ``marker``."""
    data = path.read_bytes()
    assert data.count(marker.encode()) == 1, marker
    size = sqlite3.connect(path).execute("PRAGMA page_size").fetchone()[0]
    return data.index(marker.encode()) // size + 1


def one_sentence(proc: subprocess.CompletedProcess, *words: str) -> str:
    """The CLI failed with one line on stderr, holding every one of ``words``."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def status(agent: AgentEnv, **env) -> dict:
    return json.loads(agent.run("status", env=env or None).stdout)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def nothing_moved(agent: AgentEnv, before: str) -> None:
    assert digest(agent.local_path) == before
    assert [p.name for p in agent.local_path.parent.iterdir()
            if ".damaged-" in p.name or ".recovering" in p.name] == []


_WRITE_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("holding", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""
_LOCK_HOLDER = """
import sys
from pathlib import Path
from terrafusion_agent.lock import LocalLock
lock = LocalLock(Path(sys.argv[1]))
lock.acquire()
print("holding", flush=True)
sys.stdin.read()
"""


@contextmanager
def held_by_another_process(path: Path, script: str) -> Iterator[None]:
    """A second process holds a lock on ``path`` until the block ends; it says when it
    holds it, so nothing here guesses with a sleep."""
    proc = subprocess.Popen([sys.executable, "-c", script, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "holding", proc.stderr.read()
        yield
    finally:
        proc.stdin.close()
        proc.wait(20)


# --- a damaged copy -----------------------------------------------------------------------


def test_a_copy_damaged_in_the_middle_is_one_sentence_for_sync_verify_export_and_status(
        pg_agent):
    agent = synced(pg_agent)
    local_exec(agent, "UPDATE parcels SET owner_name = 'DAMAGED-ROW' WHERE prop_id = 100100")
    damage_pages(agent.local_path, [page_holding(agent.local_path, "DAMAGED-ROW")])
    path = str(agent.local_path)

    sentence = one_sentence(agent.run("sync", check=False), path, "damaged", RECOVER)
    one_sentence(agent.run("verify", check=False), path, "damaged", RECOVER)
    export = one_sentence(agent.run("export", "parcels", "--format", "csv", "--out",
                                    str(agent.dir / "parcels.csv"), check=False),
                          path, "damaged", RECOVER)
    assert "filter" not in export
    body = status(agent)
    assert body["status"] == "fail"
    [local_check] = body["checks"]["local:reachable"]
    assert local_check["status"] == "fail" and RECOVER in local_check["output"]
    assert body["last_sync"]["result"] == "failed"
    assert body["last_sync"]["error"] == sentence.removeprefix("terrafusion-agent: ")


def test_a_copy_whose_first_page_is_damaged_names_recover_everywhere(pg_agent):
    agent = synced(pg_agent)
    damage_pages(agent.local_path, [1])  # SQLite: "file is not a database"
    path = str(agent.local_path)
    for command in (["sync"], ["verify"], ["conflicts", "list"],
                    ["export", "parcels", "--format", "gpkg", "--out", str(agent.dir / "p.gpkg")]):
        one_sentence(agent.run(*command, check=False), path, "damaged", RECOVER)
    [local_check] = status(agent)["checks"]["local:reachable"]
    assert local_check["status"] == "fail" and RECOVER in local_check["output"]

    # the running agent keeps serving and says so too
    running = Agent(config_mod.load(agent.config, environ={}))
    running.start()
    try:
        wait_for(lambda: running.scheduler.consecutive_failures >= 1, 30, "the first sync")
        assert RECOVER in running.scheduler.last_error and path in running.scheduler.last_error
        body = get(running.base_url + "/health").json
        assert body["checks"]["local:reachable"][0]["status"] == "fail"
        assert RECOVER in body["checks"]["local:reachable"][0]["output"]
        for route in ("/api/v1/conflicts", "/api/v1/exports/1"):
            answer = get(running.base_url + route)
            assert answer.status == 503 and answer.json["code"] == "local_damaged", route
            assert RECOVER in answer.json["error"]
    finally:
        running.stop()

    # nothing of it can be read, not even its pending edits: rebuilt all the same
    report = json.loads(agent.run("recover").stdout)
    assert report["edits_saved"] == 0 and report["edits_lost"] == 0
    assert ["none of its pending edits can be read" in p for p in report["problems"]] == [
        True]
    assert agent.run("verify", check=False).returncode == 0


def test_a_sync_that_meets_a_damaged_copy_fails_the_agents_local_check(pg_agent):
    agent = synced(pg_agent)
    local_exec(agent, "UPDATE parcels SET owner_name = 'DAMAGED-ROW' WHERE prop_id = 100100")
    damage_pages(agent.local_path, [page_holding(agent.local_path, "DAMAGED-ROW")])
    running = Agent(config_mod.load(agent.config, environ={}))
    running.start()
    try:
        wait_for(lambda: running.scheduler.consecutive_failures >= 1, 30, "the first sync")
        body = get(running.base_url + "/health").json
        [local_check] = body["checks"]["local:reachable"]
        assert local_check["status"] == "fail" and RECOVER in local_check["output"]
        [run, _first] = get(running.base_url + "/api/v1/syncs").json["runs"]
        assert run["result"] == "failed" and RECOVER in run["error"]
    finally:
        running.stop()


# --- recover ------------------------------------------------------------------------------


def entries(path: Path) -> dict[tuple, tuple]:
    conn = sqlite3.connect(path)
    try:
        return {(t, pk): (op, base, state) for t, pk, op, base, state in conn.execute(
            "SELECT table_name, pk_json, op, base_json, state FROM tf_local_changes")}
    finally:
        conn.close()


def test_recover_rebuilds_the_copy_and_reapplies_every_edit_it_can_still_read(pg_agent):
    agent = synced(pg_agent)
    owner = "UPDATE parcels SET owner_name = ? WHERE prop_id = ?"
    local_exec(agent, owner, ("LOST-EDIT", 100010))
    local_exec(agent, owner, ("LOCAL-MERGED", 100200))
    local_exec(agent, owner, ("LOCAL-CONFLICT", 100150))
    local_exec(agent, "DELETE FROM parcels WHERE prop_id = 100120")
    local_exec(agent, "INSERT INTO parcels (geo_id, owner_name, geom) VALUES ('OFFLINE-NEW', "
                      "'NEW', CastToMultiPolygon(BuildMbr(1050000, 80000, 1050100, 80100, "
                      "2927)))")
    [(new_key,)] = local_exec(agent, "SELECT prop_id FROM parcels WHERE geo_id = 'OFFLINE-NEW'")
    # central moves on meanwhile: one edit merges, one conflicts, as they would have
    central_exec(agent, "UPDATE parcels SET market_value = 999 WHERE prop_id = 100200")
    central_exec(agent, "UPDATE parcels SET owner_name = 'CENTRAL-CONFLICT' "
                        "WHERE prop_id = 100150")
    before = entries(agent.local_path)
    lost_page = page_holding(agent.local_path, "LOST-EDIT")
    for other in ("LOCAL-MERGED", "LOCAL-CONFLICT", "OFFLINE-NEW"):
        assert page_holding(agent.local_path, other) != lost_page
    damage_pages(agent.local_path, [lost_page])

    report = json.loads(agent.run("recover").stdout)

    assert report["edits_saved"] == 4 and report["edits_lost"] == 1
    assert [(e["table"], e["key"], e["op"]) for e in report["lost"]] == [
        ("parcels", [100010], "update")]
    aside = Path(report["damaged_copy"])
    assert aside.parent == agent.local_path.parent
    assert re.fullmatch(r"local\.sqlite\.damaged-\d{8}T\d{6}Z", aside.name)
    assert GARBAGE in aside.read_bytes()  # the damaged file itself, kept as it was
    assert sqlite3.connect(agent.local_path).execute("PRAGMA quick_check").fetchone() == ("ok",)
    # pending again, each with the base the damaged copy recorded
    after = entries(agent.local_path)
    del before[("parcels", "[100010]")]
    assert after == {k: (op, base, "pending") for k, (op, base, _) in before.items()}
    assert local_exec(agent, "SELECT owner_name FROM parcels WHERE prop_id = 100150") == [
        ("LOCAL-CONFLICT",)]

    summary = json.loads(agent.run("sync").stdout)
    assert summary["rows"]["push"] == {"insert": 1, "update": 1, "delete": 1}
    assert summary["conflicts"] == 1
    rows = central_exec(agent, "SELECT prop_id, owner_name, market_value FROM parcels "
                               "WHERE prop_id IN (100120, 100150, 100200, %s) ORDER BY 1",
                        (new_key,))
    assert [(k, o, float(v) if k == 100200 else None) for k, o, v in rows] == [
        (100150, "CENTRAL-CONFLICT", None), (100200, "LOCAL-MERGED", 999.0),
        (new_key, "NEW", None)]
    [conflict] = json.loads(agent.run("conflicts", "list").stdout)
    assert conflict["pk"] == [100150] and conflict["local"]["owner_name"] == "LOCAL-CONFLICT"


def test_a_damaged_page_of_the_edit_log_loses_only_the_edits_it_holds(pg_agent):
    agent = synced(pg_agent)
    local_exec(agent, "UPDATE parcels SET land_value = land_value + 1 "
                      "WHERE prop_id BETWEEN 100001 AND 100120")
    conn = sqlite3.connect(agent.local_path)
    leaves = conn.execute("SELECT pageno, ncell FROM dbstat WHERE name = 'tf_local_changes' "
                          "AND pagetype = 'leaf' ORDER BY pageno").fetchall()
    conn.close()
    assert len(leaves) >= 3
    page, held = leaves[len(leaves) // 2]  # neither the first nor the last
    damage_pages(agent.local_path, [page])

    report = json.loads(agent.run("recover").stdout)

    assert report["edits_saved"] == 120 - held
    assert ["Some pending edits cannot be read" in p for p in report["problems"]] == [True]
    assert local_exec(agent, "SELECT count(*) FROM tf_local_changes "
                             "WHERE state = 'pending'") == [(120 - held,)]
    assert json.loads(agent.run("sync").stdout)["rows"]["push"]["update"] == 120 - held


def test_recover_refuses_while_an_agent_holds_the_local_lock(pg_agent):
    agent = synced(pg_agent, 50)
    before = digest(agent.local_path)
    with held_by_another_process(agent.local_path, _LOCK_HOLDER):
        one_sentence(agent.run("recover", check=False), str(agent.local_path), "agent",
                     "stop it")
    nothing_moved(agent, before)


def test_recover_refuses_while_another_program_is_writing(pg_agent):
    agent = synced(pg_agent, 50)
    before = digest(agent.local_path)
    with held_by_another_process(agent.local_path, _WRITE_HOLDER):
        one_sentence(agent.run("recover", check=False,
                               env={"TERRAFUSION_LOCAL__BUSY_TIMEOUT_SECONDS": "1"}),
                     str(agent.local_path), "busy", "QGIS may be saving")
    nothing_moved(agent, before)


def test_recover_without_central_moves_nothing(pg_agent):
    agent = synced(pg_agent, 50)
    local_exec(agent, "UPDATE parcels SET owner_name = 'KEPT' WHERE prop_id = 100001")
    before = digest(agent.local_path)
    gone = {"TERRAFUSION_CENTRAL__URL": "postgresql://nobody@127.0.0.1:9/none",
            "TERRAFUSION_CENTRAL__CONNECT_TIMEOUT_SECONDS": "1"}
    one_sentence(agent.run("recover", check=False, env=gone), "central")
    nothing_moved(agent, before)
    assert local_exec(agent, "SELECT count(*) FROM tf_local_changes") == [(1,)]


# --- a full, read-only or busy copy -------------------------------------------------------


def test_a_full_disk_during_a_first_pull_is_one_sentence_and_the_next_sync_completes(
        pg_url, small_disk):
    disk = small_disk(64 << 20)
    agent = AgentEnv(disk, write_config(disk, pg_url), pg_url)  # logs there too
    agent.run("init-central", "--demo-parcels", "10000")
    LocalStore.open(agent.local_path).close()  # an empty copy, then hardly any room left
    filler = disk / "filler"
    with open(filler, "wb") as f:
        left = shutil.disk_usage(disk).free - (1 << 20)
        while left > 0:
            left -= f.write(b"\0" * min(left, 1 << 20))

    proc = agent.run("sync", check=False)
    sentence = one_sentence(proc, f"The disk holding the local copy {agent.local_path} is full")
    assert "rollback" not in proc.stderr.lower()
    body = status(agent)
    assert body["last_sync"]["result"] == "failed"
    assert body["last_sync"]["error"] == sentence.removeprefix("terrafusion-agent: ")
    assert body["checks"]["sync:result"][0]["output"] == body["last_sync"]["error"]

    filler.unlink()
    assert json.loads(agent.run("sync").stdout)["result"] == "success"
    assert agent.run("verify", check=False).returncode == 0


def test_a_read_only_disk_is_one_sentence_naming_the_copy(pg_url, small_disk):
    disk = small_disk(64 << 20)
    agent = synced(AgentEnv(disk, write_config(disk, pg_url), pg_url), 50)
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    path = str(agent.local_path)
    one_sentence(agent.run("sync", check=False), path, "write")
    one_sentence(agent.run("verify", check=False), path, "write")
    [local_check] = status(agent)["checks"]["local:reachable"]
    assert local_check["status"] == "fail" and path in local_check["output"]


def test_a_copy_held_busy_fails_the_cli_sync_in_one_sentence(pg_agent):
    agent = synced(pg_agent, 50)
    with held_by_another_process(agent.local_path, _WRITE_HOLDER):
        one_sentence(agent.run("sync", check=False,
                               env={"TERRAFUSION_LOCAL__BUSY_TIMEOUT_SECONDS": "1"}),
                     str(agent.local_path), "busy", "QGIS may be saving")


def test_a_run_left_running_by_a_killed_sync_is_closed_by_the_next(pg_agent):
    agent = synced(pg_agent, 50)
    # what a sync killed with SIGKILL (or one whose end the copy refused) leaves behind
    local_exec(agent, "INSERT INTO tf_sync_runs (started_at, result, trigger) "
                      "VALUES ('2026-01-01T00:00:00.000Z', 'running', 'cli')")
    agent.run("sync")
    runs = local_exec(agent, "SELECT result, error FROM tf_sync_runs ORDER BY id")
    assert [result for result, _ in runs] == ["success", "failed", "success"]
    assert "ended without recording its result" in runs[1][1]


def test_the_agent_records_a_busy_attempt_and_syncs_at_the_next_tick(pg_agent, caplog):
    agent = synced(pg_agent, 50)
    caplog.set_level(logging.INFO, logger="terrafusion")
    config = config_mod.load(agent.config, environ={
        "TERRAFUSION_LOCAL__BUSY_TIMEOUT_SECONDS": "1", "TERRAFUSION_SYNC__INTERVAL_SECONDS": "5"})
    running = Agent(config)
    try:
        with held_by_another_process(agent.local_path, _WRITE_HOLDER):
            running.start()  # its first sync starts at once and finds the copy locked
            wait_for(lambda: running.scheduler.consecutive_failures >= 1, 30,
                     "the attempt on the busy copy")
        assert "busy" in running.scheduler.last_error
        assert "QGIS may be saving" in running.scheduler.last_error
        [line] = [r for r in caplog.records if getattr(r, "event", None) == "sync"]
        assert line.result == "failed" and line.run_id is None
        assert not hasattr(line, "pulled")  # not the figures of the run before it
        # nothing else is done to bring it on: the retry comes at the next tick
        wait_for(lambda: [(r["trigger"], r["result"]) for r in running.recent_runs(1)] == [
            ("schedule", "success")], 30, "the retry")
        runs = running.recent_runs(3)
    finally:
        running.stop()
    assert [(r["result"], r["trigger"]) for r in runs] == [
        ("success", "schedule"), ("failed", "schedule"), ("success", "cli")]
    assert "busy" in runs[1]["error"] and runs[1]["started_at"] < runs[0]["started_at"]
