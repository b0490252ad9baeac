"""The agent as a daemon (``terrafusion-agent run`` in a subprocess): outages, secrets, stop.

PostGIS is the real deployment, so the central outage and the secrets are tested on it: the
test database refuses connections (``ALLOW_CONNECTIONS false``), exactly what an agent sees
when central is down, without disturbing the shared test cluster.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from pathlib import Path

import pytest
from conftest import AgentEnv, write_config
from service_helpers import (
    get,
    local_write_lock,
    post,
    read_token,
    start_process,
    stop_process,
    wait_for,
)

pytestmark = pytest.mark.timeout(180)

PASSWORD = "Zebra-Quokka-93x"
PGPASSWORD = "Pg-Env-Walrus-77"
WRONG_TOKEN = "Wrong-Token-Narwhal-5555"


def _dbname(url: str) -> str:
    return url.split("@/", 1)[1].split("?", 1)[0]


def set_central_up(cluster, url: str, up: bool) -> None:
    """Let the test database accept connections, or refuse them and drop the open ones."""
    db = _dbname(url)
    cluster.psql("postgres", f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS {str(up).lower()}')
    if not up:
        cluster.psql("postgres", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 f"WHERE datname = '{db}'")


def runs(base: str, n: int = 50) -> list[dict]:
    return get(f"{base}/api/v1/syncs?limit={n}").json["runs"]


@pytest.fixture
def pg_running(pg_agent, pg_cluster):
    pg_agent.run("init-central", "--demo-parcels", "100")
    proc, base = start_process(pg_agent.config, interval=5)
    try:
        wait_for(lambda: get(base + "/health/ready").status == 200, 60, "the agent to be ready")
        yield pg_agent, proc, base
    finally:
        set_central_up(pg_cluster, pg_agent.central_url, True)
        stop_process(proc)


def test_central_outage_is_reported_and_recovered_from_by_itself(pg_running, pg_cluster):
    agent, _, base = pg_running
    set_central_up(pg_cluster, agent.central_url, False)
    try:
        def not_ready():
            r = get(base + "/health/ready")
            return r if r.status == 503 and "central:reachable" in r.json["failing"] else None

        r = wait_for(not_ready, 30, "ready to report central down")
        reason = r.json["checks"]["central:reachable"][0]["output"]
        assert "cannot be reached" in reason and _dbname(agent.central_url) in reason
        assert get(base + "/health/live").status == 200
        health = get(base + "/health").json
        assert health["status"] == "fail" and health["central_reachable"] is False

        # the schedule keeps trying (and failing) on its own
        failed_before = sum(r["result"] == "failed" for r in runs(base))
        wait_for(lambda: sum(r["result"] == "failed" for r in runs(base)) > failed_before,
                 30, "another scheduled attempt")
        assert get(base + "/health").json["consecutive_failures"] >= 1
        assert all(r["trigger"] == "schedule" for r in runs(base))
    finally:
        set_central_up(pg_cluster, agent.central_url, True)

    wait_for(lambda: get(base + "/health/ready").status == 200, 40, "recovery")
    health = get(base + "/health").json
    assert health["last_sync"]["result"] == "success"
    assert health["last_sync"]["trigger"] == "schedule"
    assert health["consecutive_failures"] == 0 and health["central_reachable"] is True


def test_a_hung_central_cannot_wedge_the_schedule(pg_agent, pg_cluster):
    import psycopg

    pg_agent.run("init-central", "--demo-parcels", "50")
    env = {"TERRAFUSION_CENTRAL__STATEMENT_TIMEOUT_SECONDS": "2"}
    proc, base = start_process(pg_agent.config, env=env, interval=5)
    try:
        wait_for(lambda: get(base + "/health/ready").status == 200, 60, "the first sync")
        done_before = len(runs(base))
        # Another session locks every table: each statement of a sync now waits, as on
        # a central that hangs; only the statement timeout gets the sync out.
        with psycopg.connect(pg_agent.central_url) as blocker:
            tables = [r[0] for r in blocker.execute(
                "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
                "WHERE schemaname = 'public'")]
            blocker.execute(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE")
            failed = wait_for(lambda: next((r for r in runs(base)[:3] if r["id"] > done_before
                                            and r["result"] == "failed"), None),
                              30, "a sync to fail on the statement timeout")
            assert "timeout" in (failed["error"] or "").lower(), failed
            # health answers from its cache meanwhile (how fast: make bench, bench_service)
            assert get(base + "/health/live").status == 200
            assert get(base + "/health").status == 200
            blocker.rollback()
        wait_for(lambda: runs(base)[0]["result"] == "success" and runs(base)[0]["id"]
                 > failed["id"], 40, "the schedule to go on and succeed")
    finally:
        stop_process(proc)


@pytest.fixture
def secret_agent(tmp_path, pg_url, pg_cluster):
    # A distinctive password in the URL and in PGPASSWORD: the trust-authenticated test
    # cluster never asks for it, so it can only leak, never be needed.
    url = pg_url.replace("postgres@/", f"postgres:{PASSWORD}@/", 1)
    assert PASSWORD in url
    agent = AgentEnv(tmp_path, write_config(tmp_path, url), url)
    agent.run("init-central", "--demo-parcels", "50", env={"PGPASSWORD": PGPASSWORD})
    yield agent
    set_central_up(pg_cluster, pg_url, True)


def test_no_password_or_token_in_logs_bodies_or_errors(secret_agent, pg_cluster, pg_url):
    agent = secret_agent
    env = {"PGPASSWORD": PGPASSWORD}
    proc, base = start_process(agent.config, env=env, interval=300)
    seen: list[str] = []
    try:
        token = read_token(agent.dir)
        wait_for(lambda: get(base + "/health/ready").status == 200, 60, "the first sync")
        set_central_up(pg_cluster, pg_url, False)
        assert post(base + "/api/v1/syncs", token=token).status == 202
        wait_for(lambda: get(base + "/health").json["consecutive_failures"] >= 1, 30,
                 "a failed sync")
        for path in ("/health", "/health/ready", "/", "/api/v1/syncs", "/metrics",
                     "/api/v1/conflicts", "/openapi.json", "/nowhere"):
            seen.append(get(base + path).text)
        seen.append(post(base + "/api/v1/syncs", headers={
            "Authorization": f"Bearer {WRONG_TOKEN}"}).text)
        seen.append(post(base + "/api/v1/conflicts/7/resolve", {"keep": "x"}, token=token).text)
        # requests whose errors quote what the client sent: a token pasted into a path or
        # a filter comes back in the answer, masked
        echoed = [
            post(base + "/api/v1/exports", {"table": "parcels", "format": "csv",
                                            "out": f"/nonexistent/{token}/parcels.csv"},
                 token=token),
            post(base + "/api/v1/exports", {"table": "parcels", "format": "csv",
                                            "out": str(agent.dir / "parcels.csv"),
                                            "where": f"Authorization: Bearer {WRONG_TOKEN}"},
                 token=token),
        ]
        for answer in echoed:
            assert answer.status == 422 and "***" in answer.json["error"], answer
            seen.append(answer.text)
        seen.append(agent.run("status", env=env).stdout)
        failed = agent.run("sync", check=False, env=env)  # busy: the agent holds the copy
        seen += [failed.stdout, failed.stderr]

        health = json.loads(seen[0])
        assert "***" in health["central"] and PASSWORD not in health["central"]
        assert health["last_error"] and health["consecutive_failures"] >= 1
    finally:
        set_central_up(pg_cluster, pg_url, True)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        seen += [out, err]
    logs = sorted((agent.dir / "logs").glob("agent.jsonl*"))
    assert logs, "the agent wrote no log"
    for path in logs:
        text = path.read_text()
        seen.append(text)
        for line in text.splitlines():
            json.loads(line)  # every line is one JSON object
    everything = "\n".join(seen)
    assert "sync failed" in everything  # the failure was logged and shown ...
    for secret in (PASSWORD, PGPASSWORD, token, WRONG_TOKEN):
        assert secret not in everything  # ... without a secret in any of it


#: a raw "%" (not written as %25): libpq refuses the URL and quotes the password alone
PERCENT_PASSWORD = "Ibis-%zz-Okapi-42"


def test_a_password_the_driver_quotes_alone_is_masked_everywhere(tmp_path, pg_url):
    url = pg_url.replace("postgres@/", f"postgres:{PERCENT_PASSWORD}@/", 1)
    agent = AgentEnv(tmp_path, write_config(tmp_path, url), url)
    proc, base = start_process(agent.config, interval=300)
    seen: list[str] = []
    try:
        failed = wait_for(lambda: next((r for r in runs(base) if r["result"] == "failed"),
                                       None), 30, "the first sync to fail")
        # the driver's words, with the password in them, reached the run
        assert 'percent-encoded token: "***"' in failed["error"], failed
        for path in ("/health", "/health/ready", "/", "/api/v1/syncs"):
            seen.append(get(base + path).text)
        seen.append(agent.run("status").stdout)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        seen += [out, err]
    cli = agent.run("sync", check=False)
    assert cli.returncode == 1 and "percent-encoded" in cli.stderr
    seen += [cli.stdout, cli.stderr]
    seen += [p.read_text() for p in (agent.dir / "logs").glob("agent.jsonl*")]
    with sqlite3.connect(agent.local_path) as conn:
        history = conn.execute("SELECT error FROM tf_sync_runs").fetchall()
    assert len(history) >= 2 and all(error for (error,) in history)
    seen += [error for (error,) in history]
    assert PERCENT_PASSWORD not in "\n".join(seen)


def test_sigterm_during_a_stuck_sync_exits_0_without_waiting_for_it(sqlite_agent):
    agent = sqlite_agent
    agent.run("init-central", "--demo-parcels", "100")
    agent.run("sync")
    # A sync stuck in a database call (here: waiting on a write lock for up to 30 s) cannot
    # reach a transaction boundary; the agent must exit anyway, and nothing is half-written.
    # The lock is held until the agent is gone, so waiting for the sync would take the
    # whole 30 s busy timeout; how soon it exits is measured by make bench (bench_service).
    with local_write_lock(agent.local_path):
        proc, base = start_process(agent.config, interval=300)
        try:
            wait_for(lambda: get(base + "/health").json.get("sync_running"), 30,
                     "the scheduled sync to start")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=25) == 0
        finally:
            stop_process(proc)
    assert "stopped" in proc.stdout.read()
    agent.run("sync")  # the lock went with the process
    assert json.loads(agent.run("verify").stdout)["ok"] is True


def test_sigint_between_syncs_exits_0(sqlite_agent):
    agent = sqlite_agent
    agent.run("init-central", "--demo-parcels", "50")
    proc, base = start_process(agent.config, interval=300)
    try:
        wait_for(lambda: get(base + "/health/ready").status == 200, 60, "the first sync")
        proc.send_signal(signal.SIGINT)
        # a guard, not a measure (make bench, bench_service): the next sync is 300 s away
        assert proc.wait(timeout=15) == 0
    finally:
        stop_process(proc)


def test_every_sync_writes_one_log_line_with_its_figures(sqlite_agent):
    agent = sqlite_agent
    agent.run("init-central", "--demo-parcels", "50")
    proc, base = start_process(agent.config, interval=300)
    try:
        wait_for(lambda: get(base + "/health/ready").status == 200, 60, "the first sync")
        token = read_token(agent.dir)
        assert post(base + "/api/v1/syncs", token=token).status == 202
        wait_for(lambda: len(runs(base)) >= 2 and runs(base)[0]["finished_at"], 30,
                 "the second sync")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    lines = [json.loads(line) for path in (agent.dir / "logs").glob("agent.jsonl*")
             for line in Path(path).read_text().splitlines()]
    syncs = [line for line in lines if line.get("event") == "sync"]
    assert [s["trigger"] for s in syncs] == ["schedule", "api"]
    first = syncs[0]
    assert first["result"] == "success" and first["pulled"] > 50
    assert first["rows"]["pull"]["insert"] > 50
    assert first["duration_seconds"] > 0 and first["run_id"] == 1
    assert {"pending_local_edits", "open_conflicts", "pushed", "conflicts"} <= set(first)


def test_a_stale_group_readable_token_file_is_reported(sqlite_agent):
    agent = sqlite_agent
    agent.run("init-central", "--demo-parcels", "20")
    token_file = agent.dir / "token"
    token_file.write_text("a-token-that-someone-else-can-read-0123456789\n")
    os.chmod(token_file, 0o644)
    proc, base = start_process(agent.config, interval=300)
    try:
        assert post(base + "/api/v1/syncs",
                    token="a-token-that-someone-else-can-read-0123456789").status in (202, 409)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    log = "\n".join(p.read_text() for p in (agent.dir / "logs").glob("agent.jsonl*"))
    assert "can be read by other users" in log
    assert "a-token-that-someone-else-can-read" not in log


def test_the_run_of_an_agent_killed_mid_sync_is_closed_when_it_comes_back(sqlite_agent):
    agent = sqlite_agent
    agent.run("init-central", "--demo-parcels", "50")
    # the first (scheduled) sync passes the point; the one asked for below waits there
    pause = agent.dir / "pause"
    proc, base = start_process(agent.config, interval=300, env={
        "TERRAFUSION_FAULT": "pull.after_local_commit:2", "TERRAFUSION_FAULT_PAUSE": str(pause)})
    try:
        wait_for(lambda: get(base + "/health/ready").status == 200, 60, "the first sync")
        started = post(base + "/api/v1/syncs", token=read_token(agent.dir))
        assert started.status == 202, started
        wait_for(pause.with_name("pause.reached").exists, 30, "the sync to reach the point")
        proc.kill()  # kill -9 in the middle of the sync
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        stop_process(proc)
    run_id = started.json["id"]
    with sqlite3.connect(agent.local_path) as conn:
        assert conn.execute("SELECT result FROM tf_sync_runs WHERE id = ?",
                            (run_id,)).fetchone() == ("running",)

    proc, base = start_process(agent.config, interval=300)
    try:
        def closed():
            run = get(f"{base}/api/v1/syncs/{run_id}").json
            return run if run["result"] != "running" else None

        run = wait_for(closed, 60, "the killed run to be closed")
        assert run["result"] == "failed" and "ended without recording its result" in run["error"]
        assert run["finished_at"] is not None and "progress" not in run
        wait_for(lambda: runs(base)[0]["result"] == "success", 60, "the next sync")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
