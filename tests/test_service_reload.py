"""Settings apply without a restart: ``POST /api/v1/config/reload`` and SIGHUP.

The endpoint is tested on an agent in this process (its schedule idle, so nothing but the
test changes its state); SIGHUP on ``terrafusion-agent run`` in a subprocess, the way a
service manager sends it.
"""

from __future__ import annotations

import json
import logging
import signal
from dataclasses import fields
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import AgentEnv, synced_county
from service_helpers import (
    get,
    idle_schedule,
    post,
    start_process,
    started_agent,
    stop_process,
    wait_for,
)
from terrafusion_agent import config as config_mod
from terrafusion_agent.config import Config
from terrafusion_agent.errors import ConfigError

pytestmark = pytest.mark.timeout(180)

RELOAD = "/api/v1/config/reload"


def _load(env: AgentEnv) -> Config:
    return config_mod.load(env.config, environ={})


@pytest.fixture
def running(tmp_path):
    env = synced_county(tmp_path, 20)
    with started_agent(env, sync=idle_schedule) as agent:
        yield env, agent


def _rewrite(env: AgentEnv, old: str, new: str) -> None:
    text = env.config.read_text()
    assert old in text
    env.config.write_text(text.replace(old, new))


def test_an_unchanged_file_reloads_with_nothing_changed(running):
    _, agent = running
    r = post(agent.base_url + RELOAD, token=agent.token)
    assert r.status == 200, r
    assert r.json == {"reloaded": True, "changed": [], "restart_required": []}


def test_live_settings_apply_and_start_settings_wait_for_a_restart(running, caplog):
    env, agent = running
    caplog.set_level(logging.INFO, logger="terrafusion")
    env.config.write_text(env.config.read_text().replace("port = 0", "port = 18765") + (
        '[sync]\ninterval_seconds = 45\ntables = ["parcels", "districts"]\n'
        'conflict_policy = "central_wins"\n'
        '[export.presets.public]\ntable = "parcels"\nformat = "geojson"\n'))
    _rewrite(env, '[logging]\ndir = "logs"\n', '[logging]\ndir = "logs"\nlevel = "DEBUG"\n')
    r = post(agent.base_url + RELOAD, {}, token=agent.token)
    assert r.status == 200, r
    assert r.json == {"reloaded": True,
                      "changed": ["export.presets.public", "logging.level",
                                  "sync.conflict_policy", "sync.interval_seconds",
                                  "sync.tables"],
                      "restart_required": ["http.port"]}
    # what a sync, an export and the health body read from now on
    assert agent.scheduler.config.tables == ("parcels", "districts")
    assert agent.config.policy_for("parcels") == "central_wins"
    assert set(agent.config.presets) == {"public"}
    assert logging.getLogger("terrafusion").level == logging.DEBUG
    body = get(agent.base_url + "/health").json
    assert body["interval_seconds"] == 45
    # still listening where it started, on the port it was given then
    assert agent.config.http_port == 0 and agent.base_url.startswith("http://127.0.0.1:")
    [line] = [r for r in caplog.records if getattr(r, "event", None) == "reload"]
    assert line.getMessage() == (
        "configuration reloaded; changed: export.presets.public, logging.level, "
        "sync.conflict_policy, sync.interval_seconds, sync.tables; needing a restart: "
        "http.port")


def _seconds_until(iso: str) -> float:
    when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return (when - datetime.now(timezone.utc)).total_seconds()


def test_a_new_interval_moves_the_next_sync(running):
    env, agent = running
    # the first sync ran at start, so the next one is five minutes (300 s) away
    assert 290 < _seconds_until(get(agent.base_url + "/health").json["next_sync"]) <= 300
    env.config.write_text(env.config.read_text() + "[sync]\ninterval_seconds = 30\n")
    assert post(agent.base_url + RELOAD, token=agent.token).json["changed"] == [
        "sync.interval_seconds"]
    assert 25 < _seconds_until(get(agent.base_url + "/health").json["next_sync"]) <= 30


def test_a_bad_file_is_refused_with_the_sentence_of_the_start_and_changes_nothing(
        running, caplog):
    env, agent = running
    caplog.set_level(logging.INFO, logger="terrafusion")
    env.config.write_text(env.config.read_text() + "[sync]\ninterval_seconds = 2\n")
    with pytest.raises(ConfigError) as at_start:
        _load(env)
    r = post(agent.base_url + RELOAD, token=agent.token)
    assert r.status == 422, r
    assert r.json["code"] == "invalid_config"
    assert r.json["error"] == str(at_start.value)
    assert "sync.interval_seconds" in r.json["error"]
    assert agent.config.interval_seconds == 300
    assert get(agent.base_url + "/health").json["interval_seconds"] == 300
    [line] = [r for r in caplog.records if getattr(r, "event", None) == "reload"]
    assert line.getMessage() == ("configuration not reloaded, the running one stays: "
                                 f"{at_start.value}")


def test_a_reload_logs_the_names_of_what_changed_never_the_values(running, caplog):
    env, agent = running
    caplog.set_level(logging.INFO, logger="terrafusion")
    new_central = f"sqlite:///{env.dir / 'elsewhere.sqlite'}"
    _rewrite(env, f'url = "{env.central_url}"', f'url = "{new_central}"')
    assert post(agent.base_url + RELOAD, token=agent.token).json["changed"] == ["central.url"]
    assert agent.scheduler.config.central_url == new_central
    logged = "\n".join(r.getMessage() + json.dumps(getattr(r, "changed", None))
                       for r in caplog.records)
    assert "central.url" in logged and "elsewhere" not in logged


def test_a_reload_body_must_be_empty(running):
    _, agent = running
    r = post(agent.base_url + RELOAD, {"path": "/etc/passwd"}, token=agent.token)
    assert r.status == 422 and r.json["code"] == "invalid_request"


def test_every_configuration_field_is_classified_for_a_reload():
    # each field of Config comes from a declared key, and each key says whether it applies
    # live; the restart keys are the ones a running agent binds at start
    # (a preset's keys fill one field, ``presets``)
    declared = {"presets" if k.section == "export" else k.field for k in config_mod.KEYS}
    assert {f.name for f in fields(Config)} - {"source", "file"} <= declared
    assert config_mod.RESTART_KEYS == {"local.path", "http.host", "http.port",
                                       "http.metrics_host", "http.metrics_port",
                                       "http.token_file", "logging.dir"}


# --- SIGHUP -------------------------------------------------------------------------------


def _log_lines(directory: Path) -> list[dict]:
    return [json.loads(line) for path in sorted((directory / "logs").glob("agent.jsonl*"))
            for line in path.read_text().splitlines()]


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_sighup_reloads_the_file_and_a_bad_one_leaves_the_agent_as_it_was(sqlite_agent):
    env = sqlite_agent
    env.run("init-central", "--demo-parcels", "20")
    env.config.write_text(env.config.read_text() + "[sync]\ninterval_seconds = 300\n")
    proc, base = start_process(env.config, interval=None)  # the file's own interval
    try:
        wait_for(lambda: get(base + "/health/ready").status == 200, 60, "the first sync")
        assert get(base + "/health").json["interval_seconds"] == 300

        _rewrite(env, "interval_seconds = 300", "interval_seconds = 20")
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: get(base + "/health").json["interval_seconds"] == 20, 30,
                 "the new interval")
        [reloaded] = [line for line in _log_lines(env.dir) if line.get("event") == "reload"]
        assert reloaded["changed"] == ["sync.interval_seconds"]

        _rewrite(env, "interval_seconds = 20", "interval_seconds = \"soon\"")
        with pytest.raises(ConfigError) as at_start:
            config_mod.load(env.config, environ={})
        proc.send_signal(signal.SIGHUP)
        refused = wait_for(lambda: [line for line in _log_lines(env.dir)
                                    if line.get("result") == "refused"], 30,
                           "the refusal to be logged")
        assert [line["message"] for line in refused] == [
            f"configuration not reloaded, the running one stays: {at_start.value}"]
        assert proc.poll() is None
        assert get(base + "/health").json["interval_seconds"] == 20
        assert get(base + "/health/live").status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        stop_process(proc)
