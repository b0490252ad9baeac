"""``[http] metrics_host``: a second listener for a Prometheus on the network serves only
/metrics and /health/live, while the API, whose answers carry owner names, stays on
``http.host`` (loopback)."""

from __future__ import annotations

import socket

import pytest
from conftest import AgentEnv
from service_helpers import get, started_agent, wait_for

pytestmark = pytest.mark.timeout(120)

#: another loopback address: the metrics listener is told apart from the API's 127.0.0.1
METRICS_HOST = "127.0.0.2"


def agent_with_metrics_host(directory, metrics_port: int = 0) -> AgentEnv:
    url = f"sqlite:///{directory / 'central.sqlite'}"
    config = directory / "agent.toml"
    config.write_text(
        f'[central]\nurl = "{url}"\n[local]\npath = "local.sqlite"\n'
        f'[http]\nport = 0\nmetrics_host = "{METRICS_HOST}"\nmetrics_port = {metrics_port}\n'
        '[logging]\ndir = "logs"\n', encoding="utf-8")
    return AgentEnv(directory, config, url)


def test_the_metrics_listener_serves_metrics_and_refuses_the_api(tmp_path):
    env = agent_with_metrics_host(tmp_path)
    env.run("init-central", "--demo-parcels", "10")
    with started_agent(env) as agent:
        wait_for(lambda: get(agent.base_url + "/health").json.get("last_sync"), 60,
                 "the first sync")
        metrics = agent.metrics_url
        assert metrics.startswith(f"http://{METRICS_HOST}:")
        scraped = get(metrics)
        assert scraped.status == 200 and "terrafusion_sync_runs_total" in scraped.text
        lan = metrics.rsplit("/metrics", 1)[0]
        assert get(lan + "/health/live").status == 200
        for path in ("/api/v1/conflicts", "/api/v1/pending", "/api/v1/syncs", "/health",
                     "/", "/openapi.json", "/api/v1/history/parcels/100001"):
            answer = get(lan + path)
            assert answer.status == 404, (path, answer)
        # the API listens on loopback's 127.0.0.1 only: not on the metrics listener's address
        api_port = agent.port
        assert agent.server.socket.getsockname()[0] == "127.0.0.1"
        assert get(agent.base_url + "/api/v1/conflicts").status == 200
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((METRICS_HOST, api_port), timeout=5).close()


def test_no_metrics_listener_unless_configured(tmp_path):
    env = agent_with_metrics_host(tmp_path)
    env.config.write_text(env.config.read_text().replace(f'metrics_host = "{METRICS_HOST}"',
                                                         'metrics_host = ""'))
    env.run("init-central", "--demo-parcels", "10")
    with started_agent(env) as agent:
        assert agent.metrics_url is None and agent.metrics_server is None


def test_a_metrics_listener_on_the_apis_own_address_is_refused(tmp_path):
    env = agent_with_metrics_host(tmp_path, metrics_port=8765)
    env.config.write_text(env.config.read_text().replace("port = 0\n", "port = 8765\n", 1)
                          .replace(METRICS_HOST, "127.0.0.1"))
    proc = env.run("status", check=False)
    assert proc.returncode == 2
    assert "http.metrics_port is 8765, the API's own port" in proc.stderr
