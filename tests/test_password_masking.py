"""A password typed into the central URL is a secret from the moment the configuration is
read. libpq quotes a raw ``%`` back in its own words ('invalid percent-encoded token:
"pa%ss"'), where no URL pattern finds it; it must still reach no message, log line,
status body, API answer or stored run, and a run stored unmasked by an older agent is
served masked."""

from __future__ import annotations

import sqlite3

import pytest
from conftest import AgentEnv, write_config
from service_helpers import get, start_process, stop_process, wait_for

PASSWORD = "pa%ss"
#: what an older agent stored in the run history, as libpq said it
OLD_ERROR = f'The central database cannot be reached: invalid percent-encoded token: "{PASSWORD}".'


@pytest.fixture
def env(tmp_path, pg_url) -> AgentEnv:
    """An agent whose central URL carries the password with a raw ``%``, as typed."""
    scheme, rest = pg_url.split("://", 1)
    url = f"{scheme}://gis:{PASSWORD}@{rest.split('@', 1)[1]}"
    return AgentEnv(tmp_path, write_config(tmp_path, url), url)


def runs(env: AgentEnv) -> list[str]:
    conn = sqlite3.connect(env.local_path)
    try:
        return [row[0] for row in conn.execute("SELECT error FROM tf_sync_runs")]
    finally:
        conn.close()


def test_the_password_libpq_quotes_back_is_masked_everywhere(env):
    sync = env.run("sync", check=False)
    assert sync.returncode == 1
    # the very message that carried the password, now without it
    assert "invalid percent-encoded token" in sync.stderr, sync.stderr
    assert PASSWORD not in sync.stderr, sync.stderr
    status = env.run("status")
    assert "invalid percent-encoded token" in status.stdout
    assert PASSWORD not in status.stdout
    stored = runs(env)
    assert stored and all(PASSWORD not in error for error in stored), stored

    # a run stored unmasked by an older agent, which later agents must not serve as is
    conn = sqlite3.connect(env.local_path)
    with conn:
        conn.execute("UPDATE tf_sync_runs SET error = ?", (OLD_ERROR,))
    conn.close()
    proc, base = start_process(env.config, interval=3600)
    try:
        wait_for(lambda: len(get(base + "/api/v1/syncs").json["runs"]) >= 2, 60,
                 "the agent's own sync at start")
        answers = {path: get(base + path).text
                   for path in ("/", "/health", "/health/ready", "/api/v1/syncs")}
    finally:
        stop_process(proc)
        agent_stderr = proc.stderr.read()
    for path, body in answers.items():
        assert PASSWORD not in body, (path, body)
    assert "invalid percent-encoded token" in answers["/api/v1/syncs"]
    assert PASSWORD not in agent_stderr, agent_stderr
    log = (env.dir / "logs" / "agent.jsonl").read_text(encoding="utf-8")
    assert "invalid percent-encoded token" in log and PASSWORD not in log
    assert all(PASSWORD not in error for error in runs(env) if error != OLD_ERROR)


def test_the_configured_password_is_known_as_written_and_decoded():
    from terrafusion_agent.redact import url_passwords

    assert url_passwords("postgresql://gis:pa%ss@/db?host=/tmp") == {"pa%ss"}
    assert url_passwords("postgresql://gis:p%40ss%25@db/x") == {"p%40ss%25", "p@ss%"}
    assert url_passwords("postgresql://gis:p@ss@db/x") == {"p", "p@ss"}
    assert url_passwords("postgresql://gis@db/x?sslmode=require&password=s%3Dcret") == {
        "s%3Dcret", "s=cret"}
    assert url_passwords("postgresql://gis@db/x") == set()
    assert url_passwords("sqlite:///home/gis/central.sqlite") == set()
