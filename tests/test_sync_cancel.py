"""A sync stopped on purpose is ``cancelled``, not ``failed``: Ctrl+C or SIGTERM of
``terrafusion-agent sync``, and an agent stopped during its sync. Status, the failure
streak and alerts do not count it as a failure. The signal lands at a named fault point
(``TERRAFUSION_FAULT_PAUSE``), where the process waits for it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import test_alerts
from conftest import AgentEnv, central_exec, local_exec, write_config
from service_helpers import get, post, read_token, start_process, stop_process, wait_for

pytestmark = pytest.mark.timeout(300)
#: the alert receiver of the alert tests, as a fixture here too
receiver = test_alerts.receiver

POINT = "pull.after_local_commit"


def _as_a_terminal_hands_it_over() -> None:
    """In the child: signals as a shell hands them to a command, whatever this long-lived
    pytest process did to its own (ignored or blocked signals are inherited)."""
    for name in ("SIGINT", "SIGTERM"):
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def paused_sync(env: AgentEnv, pause: Path) -> subprocess.Popen:
    """``terrafusion-agent sync`` waiting at :data:`POINT`, its pull committed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "terrafusion_agent", "--config", str(env.config), "sync"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TERRAFUSION_FAULT": POINT,
             "TERRAFUSION_FAULT_PAUSE": str(pause)},
        preexec_fn=_as_a_terminal_hands_it_over)
    reached = pause.with_name(pause.name + ".reached")
    try:
        wait_for(lambda: reached.exists() or proc.poll() is not None, 60, "the fault point")
    except AssertionError:
        proc.kill()
        raise
    assert proc.poll() is None, proc.communicate()
    return proc


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stopped_one_off_sync_is_cancelled_and_no_failure(tmp_path, receiver, stop):
    url = f"sqlite:///{tmp_path / 'central.sqlite'}"
    env = AgentEnv(tmp_path, write_config(
        tmp_path, url, f'[alerts]\nwebhook_url = "{receiver.url}"\nfailures_threshold = 2\n'),
        url)
    env.run("init-central", "--demo-parcels", "50")
    env.run("sync")
    central_exec(env, "UPDATE parcels SET owner_name = 'CANCEL' WHERE prop_id IN "
                      "(SELECT prop_id FROM parcels ORDER BY prop_id LIMIT 4)")
    proc = paused_sync(env, tmp_path / "pause")
    proc.send_signal(stop)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    assert out == ""

    [(result, error)] = local_exec(
        env, "SELECT result, error FROM tf_sync_runs ORDER BY id DESC LIMIT 1")
    assert result == "cancelled" and "KeyboardInterrupt" not in error
    assert "interrupted" in error
    # what was committed stays: the pull before the point
    assert local_exec(env, "SELECT count(*) FROM parcels WHERE owner_name = 'CANCEL'") == [(4,)]
    status = json.loads(env.run("status").stdout)
    assert status["last_sync"]["result"] == "cancelled"
    assert status["checks"]["sync:result"][0]["status"] == "pass"
    assert status["status"] == "pass"
    lines = [json.loads(line) for line in
             (tmp_path / "logs" / "agent.jsonl").read_text(encoding="utf-8").splitlines()]
    [line] = [entry for entry in lines if entry.get("result") == "cancelled"]
    assert line["level"] == "INFO" and line["event"] == "sync" and line["role"] == "sync"

    # The next sync fails: with the cancel counted as a failure, that would be two in a
    # row, the threshold, and an alert; it is the first.
    failed = env.run("sync", check=False,
                     env={"TERRAFUSION_CENTRAL__URL": f"sqlite:///{tmp_path / 'gone.sqlite'}"})
    assert failed.returncode == 1
    assert receiver.events() == []
    assert json.loads(env.run("status").stdout)["last_sync"]["result"] == "failed"
    results = [r for (r,) in local_exec(env, "SELECT result FROM tf_sync_runs ORDER BY id")]
    assert results == ["success", "cancelled", "failed"]


def test_an_agent_stopped_during_its_sync_records_it_cancelled(tmp_path):
    url = f"sqlite:///{tmp_path / 'central.sqlite'}"
    env = AgentEnv(tmp_path, write_config(tmp_path, url), url)
    env.run("init-central", "--demo-parcels", "50")
    env.run("sync")
    central_exec(env, "UPDATE parcels SET owner_name = 'STOPPED' WHERE prop_id IN "
                      "(SELECT prop_id FROM parcels ORDER BY prop_id LIMIT 3)")
    pause = tmp_path / "pause"
    proc, base = start_process(env.config, interval=300, env={
        "TERRAFUSION_FAULT": POINT, "TERRAFUSION_FAULT_PAUSE": str(pause)})
    try:
        wait_for(pause.with_name("pause.reached").exists, 60, "the sync to reach the point")
        [run] = get(base + "/api/v1/syncs?limit=1").json["runs"]
        assert post(base + "/api/v1/syncs", token=read_token(tmp_path)).status == 409
        proc.send_signal(signal.SIGTERM)
        log = tmp_path / "logs" / "agent.jsonl"
        wait_for(lambda: '"event": "stop"' in log.read_text(encoding="utf-8"), 30,
                 "the agent to start stopping")
        pause.with_name("pause.go").touch()  # the sync goes on, and meets the stop
        assert proc.wait(timeout=60) == 0
    finally:
        stop_process(proc)
    [(result, error)] = local_exec(env, "SELECT result, error FROM tf_sync_runs WHERE id = ?",
                                   (run["id"],))
    assert result == "cancelled" and "stopped" in error
    status = json.loads(env.run("status").stdout)
    assert status["status"] == "pass" and status["last_sync"]["result"] == "cancelled"
