"""Metrics of docs/contract.md: promtool-clean, on the agent's own registry, moving with
the work; and the shipped alert rules and Grafana dashboard."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from service_helpers import get, post, serving_agent, wait_for
from terrafusion_agent.metrics import AgentMetrics

MONITORING = Path(__file__).resolve().parents[1] / "resources" / "monitoring"
CONTRACT = (
    "terrafusion_sync_runs_total", "terrafusion_sync_duration_seconds",
    "terrafusion_sync_rows_total", "terrafusion_sync_conflicts_total",
    "terrafusion_sync_open_conflicts", "terrafusion_sync_pending_changes",
    "terrafusion_sync_last_success_timestamp_seconds", "terrafusion_export_jobs_total",
    "terrafusion_export_duration_seconds", "terrafusion_export_features_total",
    "terrafusion_sync_rejected_rows", "terrafusion_sync_interval_seconds",
)
needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                                    reason="promtool (Debian package prometheus) is missing")


def parse(text: str) -> dict[str, float]:
    """Prometheus text -> {'name{labels}': value} (samples only)."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], input=stdin, capture_output=True, text=True,
                          timeout=60)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with serving_agent(tmp_path_factory.mktemp("metrics"), 100) as (env, agent):
        wait_for(lambda: get(agent.base_url + "/health/ready").status == 200, 60, "first sync")
        wait_for(lambda: not agent.scheduler.is_running(), 30, "the sync to end")
        yield env, agent


def scrape(agent) -> str:
    r = get(agent.base_url + "/metrics")
    assert r.status == 200 and r.content_type.startswith("text/plain")
    return r.text


@needs_promtool
def test_metrics_pass_promtool(served):
    _, agent = served
    proc = promtool("check", "metrics", stdin=scrape(agent))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_contract_metric_is_exposed(served):
    _, agent = served
    text = scrape(agent)
    for name in CONTRACT:
        assert f"# TYPE {name} " in text, name
    samples = parse(text)
    for direction in ("pull", "push"):
        for op in ("insert", "update", "delete"):
            assert f'terrafusion_sync_rows_total{{direction="{direction}",op="{op}"}}' in samples


def test_no_created_series_are_exposed(served):
    # one more series per counter and histogram, read by no rule or panel
    _, agent = served
    assert "_created" not in scrape(agent)


def test_interval_gauge_is_the_configured_interval_and_follows_a_reload(served):
    env, agent = served
    assert parse(scrape(agent))["terrafusion_sync_interval_seconds"] == 300
    original = env.config.read_text()
    env.config.write_text(original.replace("interval_seconds = 300", "interval_seconds = 900"))
    try:
        agent.reload_config()
        assert parse(scrape(agent))["terrafusion_sync_interval_seconds"] == 900
    finally:
        env.config.write_text(original)
        agent.reload_config()
    assert parse(scrape(agent))["terrafusion_sync_interval_seconds"] == 300


def test_sync_counters_move_with_a_sync(served):
    _, agent = served
    before = parse(scrape(agent))
    assert before['terrafusion_sync_runs_total{result="success"}'] >= 1
    assert before["terrafusion_sync_last_success_timestamp_seconds"] > 0
    assert before['terrafusion_sync_rows_total{direction="pull",op="insert"}'] > 100
    assert post(agent.base_url + "/api/v1/syncs", token=agent.token).status == 202
    wait_for(lambda: parse(scrape(agent))['terrafusion_sync_runs_total{result="success"}']
             == before['terrafusion_sync_runs_total{result="success"}'] + 1, 30, "the count")
    after = parse(scrape(agent))
    assert after["terrafusion_sync_duration_seconds_count"] == \
        before["terrafusion_sync_duration_seconds_count"] + 1
    assert after["terrafusion_sync_last_success_timestamp_seconds"] >= \
        before["terrafusion_sync_last_success_timestamp_seconds"]


def test_gauges_follow_the_local_copy(served):
    env, agent = served
    from terrafusion_agent.stores import spatialite

    conn = spatialite.connect(env.local_path)
    try:
        conn.execute("UPDATE sales SET sale_price = sale_price + 1 WHERE sale_id IN "
                     "(SELECT sale_id FROM sales ORDER BY sale_id LIMIT 2)")
    finally:
        conn.close()
    agent.monitor.local.refresh()
    samples = parse(scrape(agent))
    assert samples["terrafusion_sync_pending_changes"] == 2
    assert samples["terrafusion_sync_open_conflicts"] == 0
    assert post(agent.base_url + "/api/v1/syncs", token=agent.token).status == 202
    wait_for(lambda: parse(scrape(agent))["terrafusion_sync_pending_changes"] == 0, 30,
             "the edits to be pushed")
    assert parse(scrape(agent))['terrafusion_sync_rows_total{direction="push",op="update"}'] >= 2


def test_rejected_rows_gauge_counts_rows_central_refused(served):
    env, agent = served
    from terrafusion_agent.stores import spatialite

    local = spatialite.connect(env.local_path)
    central = spatialite.connect(env.central_url[len("sqlite:///"):])
    try:
        first, pid = local.execute("SELECT min(prop_id), max(prop_id) FROM parcels").fetchone()
        local.execute("UPDATE parcels SET geo_id = 'TAKEN' WHERE prop_id = ?", (pid,))
        central.execute("UPDATE parcels SET geo_id = 'TAKEN' WHERE prop_id = ?", (first,))
    finally:
        local.close()
        central.close()
    assert parse(scrape(agent))["terrafusion_sync_rejected_rows"] == 0
    assert post(agent.base_url + "/api/v1/syncs", token=agent.token).status == 202
    wait_for(lambda: parse(scrape(agent))["terrafusion_sync_rejected_rows"] == 1, 30,
             "the refused row to be counted")
    [entry] = get(agent.base_url + "/api/v1/conflicts").json["conflicts"]
    assert post(agent.base_url + f"/api/v1/conflicts/{entry['id']}/resolve",
                {"keep": "central"}, token=agent.token).status == 200
    agent.monitor.local.refresh()
    assert parse(scrape(agent))["terrafusion_sync_rejected_rows"] == 0


def _export_engine_present() -> bool:
    try:
        from terrafusion_agent.export import jobs  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _export_engine_present(), reason="the export engine is not there yet")
def test_export_counters_move_with_an_export_job(served, tmp_path):
    _, agent = served
    before = parse(scrape(agent))
    out = tmp_path / "parcels.geojson"
    r = post(agent.base_url + "/api/v1/exports",
             {"table": "parcels", "format": "geojson", "out": str(out)}, token=agent.token)
    assert r.status == 202, r
    job_id = r.json["id"]
    wait_for(lambda: get(f"{agent.base_url}/api/v1/exports/{job_id}").json["status"]
             in ("completed", "failed"), 60, "the export job")
    assert get(f"{agent.base_url}/api/v1/exports/{job_id}").json["status"] == "completed"
    after = parse(scrape(agent))
    key = 'terrafusion_export_jobs_total{format="geojson",result="completed"}'
    assert after[key] == before[key] + 1
    assert after['terrafusion_export_features_total{format="geojson"}'] >= 100
    assert after["terrafusion_export_duration_seconds_count"] == \
        before["terrafusion_export_duration_seconds_count"] + 1


def test_export_listener_counts_jobs_by_format_and_result():
    m = AgentMetrics()
    m.export_finished({"format": "shp", "result": "completed", "features": 12,
                       "duration_seconds": 0.4})
    m.export_finished({"format": "shp", "result": "failed", "features": 0,
                       "duration_seconds": 0.1})
    samples = parse(m.render().decode())
    assert samples['terrafusion_export_jobs_total{format="shp",result="completed"}'] == 1
    assert samples['terrafusion_export_jobs_total{format="shp",result="failed"}'] == 1
    assert samples['terrafusion_export_features_total{format="shp"}'] == 12
    assert samples["terrafusion_export_duration_seconds_count"] == 2


def test_metrics_live_on_the_agents_own_registry():
    from prometheus_client import REGISTRY, generate_latest

    a, b = AgentMetrics(), AgentMetrics()  # two agents in one process do not clash
    a.sync_ended_badly("failed", 1.0, 1)
    assert "terrafusion_" not in generate_latest(REGISTRY).decode()
    assert parse(b.render().decode())['terrafusion_sync_runs_total{result="failed"}'] == 0


# --- shipped monitoring files -------------------------------------------------------------


@needs_promtool
def test_alert_rules_pass_promtool_and_their_unit_tests():
    check = promtool("check", "rules", str(MONITORING / "alerts.yml"))
    assert check.returncode == 0, check.stdout + check.stderr
    test = promtool("test", "rules", str(MONITORING / "alerts.test.yml"))
    assert test.returncode == 0, test.stdout + test.stderr


def test_stale_sync_alert_is_relative_to_each_agents_interval():
    # alerts.test.yml runs it for agents syncing every 5 minutes and every hour
    text = (MONITORING / "alerts.yml").read_text()
    rule = text[text.index("alert: TerraFusionSyncStale"):text.index("alert: TerraFusionConflicts")]
    assert "* terrafusion_sync_interval_seconds" in rule
    tests = (MONITORING / "alerts.test.yml").read_text()
    assert "terrafusion_sync_interval_seconds{" in tests and "'3600x" in tests


def test_grafana_job_variable_is_visible_and_editable():
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    job = next(v for v in dashboard["templating"]["list"] if v["name"] == "job")
    assert job["hide"] == 0 and job["type"] in ("query", "textbox", "custom")
    assert job["current"]["value"] == "terrafusion-agent"
    if job["type"] == "query":
        assert job.get("allowCustomValue", True)


def test_alert_rules_cover_the_four_situations():
    text = (MONITORING / "alerts.yml").read_text()
    for alert in ("TerraFusionAgentDown", "TerraFusionSyncFailing", "TerraFusionSyncStale",
                  "TerraFusionConflictsPilingUp"):
        assert f"alert: {alert}" in text


@needs_promtool
def test_grafana_dashboard_queries_parse_and_cover_the_metrics(tmp_path):
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    # Prometheus queries (the fleet panel reads the central database: tests/test_fleet.py)
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])
             if "expr" in t]
    assert exprs
    joined = "\n".join(exprs)
    for name in CONTRACT:
        assert name in joined, name
    # Grafana's variables replaced by what they stand for; promtool then parses each query
    rules = [{"record": f"dashboard:query{i}",
              "expr": e.replace("$__rate_interval", "5m").replace("$job", "terrafusion-agent")
              .replace("$instance", ".*")} for i, e in enumerate(exprs)]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    proc = promtool("check", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
