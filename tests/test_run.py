"""``terrafusion-agent run``: scheduler, /health/live, clean stop, one agent per local copy."""

import json
import signal
import time
import urllib.request

import pytest
from service_helpers import start_process


def get(url):
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, resp.headers.get("Content-Type"), json.loads(resp.read())


@pytest.fixture
def running(sqlite_agent):
    sqlite_agent.run("init-central", "--demo-parcels", "200")
    proc, base = start_process(sqlite_agent.config)
    yield sqlite_agent, proc, base
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_live_answers_on_loopback(running):
    _, _, base = running
    assert base.startswith("http://127.0.0.1:")
    status, ctype, body = get(base + "/health/live")
    assert status == 200 and body == {"status": "pass"}
    assert ctype.startswith("application/health+json")


def test_scheduler_runs_the_first_sync_at_once(running):
    agent, _, base = running
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        _, _, body = get(base + "/health")
        if body["last_sync"] and body["last_sync"]["result"] == "success":
            break
        time.sleep(0.3)
    assert body["last_sync"]["result"] == "success"
    assert body["last_sync"]["trigger"] == "schedule"
    assert body["next_sync"] is not None
    assert json.loads(agent.run("verify").stdout)["ok"] is True


def test_sigterm_stops_cleanly(running):
    _, proc, _ = running
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    assert "stopped" in proc.stdout.read()


def test_second_agent_on_the_same_local_copy_is_refused(running):
    agent, _, _ = running
    proc = agent.run("run", check=False, timeout=30)
    assert proc.returncode == 1
    assert "already using the local copy" in proc.stderr
    assert "Traceback" not in proc.stderr
    sync = agent.run("sync", check=False)
    # its port (0) is not known: the CLI cannot hand it the sync, and says what to do
    assert sync.returncode == 1 and "does not answer at the configured API" in sync.stderr


def test_status_prints_the_health_body(sqlite_agent):
    sqlite_agent.run("init-central", "--demo-parcels", "20")
    sqlite_agent.run("sync")
    body = json.loads(sqlite_agent.run("status").stdout)
    assert body["status"] == "pass"
    assert body["central_reachable"] is True
    assert body["last_sync"]["pulled"] > 20
    assert body["open_conflicts"] == 0


def test_status_asks_the_running_agent(sqlite_agent):
    import socket

    with socket.socket() as s:  # a free port for the agent and for `status` to find it
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    sqlite_agent.run("init-central", "--demo-parcels", "20")
    env = {"TERRAFUSION_HTTP__PORT": port}
    proc, base = start_process(sqlite_agent.config, env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not get(base + "/health")[2]["last_success"]:
            time.sleep(0.3)
        body = json.loads(sqlite_agent.run("status", env=env).stdout)
        _, _, served = get(base + "/health")
        assert set(body) == set(served)
        assert body["next_sync"] is not None  # only the running agent knows it
        assert body["sync_running"] is None and body["consecutive_failures"] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
