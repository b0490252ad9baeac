"""The status page at ``/`` against a real synced local copy, and the one duration of a
sync run: the ``sync`` summary, the run's one log line, ``/api/v1/syncs`` and the page
give the same figure, the one its record holds."""

from __future__ import annotations

import html
import json
import re
import socket
import sqlite3
import time
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from conftest import AgentEnv, central_exec, embedded_agent
from service_helpers import get, start_process, started_agent, wait_for
from terrafusion_agent.timeutil import format_duration, parse

pytestmark = pytest.mark.timeout(300)

PARCELS = 1500
TABLES = ("parcels", "districts", "sales")


def visible_text(page: str) -> str:
    """What a reader sees: no style sheet, no markup, entities decoded."""
    page = re.sub(r"<style>.*?</style>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def local_counts(env: AgentEnv) -> dict[str, int]:
    with sqlite3.connect(env.local_path) as conn:
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in TABLES}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_row(page: str, run_id: int) -> str:
    """The row of run ``run_id`` in the page's table of recent syncs."""
    match = re.search(rf"<tr><td>{run_id}</td>.*?</tr>", page, flags=re.S)
    assert match, f"no row for sync {run_id}"
    return match.group(0)


@pytest.fixture
def pacific(monkeypatch):
    """This machine's local time zone is the US west coast's for the test."""
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    yield ZoneInfo("America/Los_Angeles")
    monkeypatch.undo()
    time.tzset()


def test_the_page_shows_a_synced_copy_in_plain_words_and_local_time(tmp_path, pacific):
    env = embedded_agent(tmp_path, "[sync]\ninterval_seconds = 300\n")
    env.run("init-central", "--demo-parcels", str(PARCELS))
    first = json.loads(env.run("sync").stdout)
    central_exec(env, "UPDATE parcels SET owner_name = 'PAGE TEST' WHERE prop_id IN "
                      "(SELECT prop_id FROM parcels ORDER BY prop_id LIMIT 7)")
    with started_agent(env) as agent:
        wait_for(lambda: len(agent.recent_runs(5)) >= 2
                 and agent.recent_runs(1)[0]["result"] == "success", 60,
                 "the agent's first sync")
        wait_for(lambda: not agent.scheduler.is_running(), 30, "the sync to end")
        agent.monitor.local.refresh()
        answer = get(agent.base_url + "/")
        health = get(agent.base_url + "/health").json
    assert answer.status == 200 and answer.content_type.startswith("text/html")
    page, text = answer.text, visible_text(answer.text)

    # plain words, not the health check's
    assert health["status"] == "pass"
    assert "Working normally" in text and not re.search(r"\bpass\b", text)
    # one line per table: its rows (with separators) and its last pull, in local time
    counts = local_counts(env)
    assert counts["parcels"] == PARCELS
    last_success = parse(health["last_success"]).astimezone(pacific)
    for table, n in counts.items():
        line = re.search(rf"{table}: ([\d,]+) rows; last pull ([^;<]+)", text)
        assert line, f"no line for {table}"
        assert line.group(1) == f"{n:,}"
        assert line.group(2).startswith(last_success.strftime("%Y-%m-%d %H:%M:%S"))
        assert re.search(r"P[SD]T \((just now|\d+ s ago)\)", line.group(2)), line.group(2)
    assert re.search(r"parcels: 1,500 rows; last pull [^;]+; last changes pulled [^:]+:"
                     r"\d\d:\d\d P[SD]T \([^)]*\): 7 rows", text), text
    # the first sync's figures with thousands separators, its time as here and now
    row = visible_text(run_row(page, first["id"]))
    assert f"{first['pulled']:,}" in row and first["pulled"] >= 1000
    started = parse(first["started_at"]).astimezone(pacific)
    assert started.strftime("%Y-%m-%d %H:%M:%S") in row and "command line" in row
    assert "succeeded" in row
    # a chart with a labelled axis, in seconds
    chart = page[page.index("<svg"):page.index("</svg>")]
    assert "duration (seconds)" in chart and ">0 s</text>" in chart
    assert chart.count("<rect") == 2 and "oldest to newest" in chart
    # self-contained: nothing fetched from elsewhere, no script
    for external in ("<script", 'src="http', 'href="http', "@import", "url("):
        assert external not in page
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]


def test_the_page_names_a_failing_check_in_plain_words(tmp_path):
    env = embedded_agent(tmp_path, "[sync]\ninterval_seconds = 300\n")
    env.run("init-central", "--demo-parcels", "30")
    env.run("sync")
    (tmp_path / "central.sqlite").rename(tmp_path / "moved.sqlite")
    with started_agent(env) as agent:
        wait_for(lambda: agent.scheduler.consecutive_failures >= 1, 60, "a failed sync")
        agent.monitor.central.refresh()
        text = visible_text(get(agent.base_url + "/").text)
    assert "Not working" in text
    assert "Central database:" in text and "(not reachable)" in text
    assert re.search(r"\bfail\b", text) is None


def test_one_sync_has_one_duration_and_one_log_line_everywhere(tmp_path):
    env = embedded_agent(tmp_path, "[sync]\ninterval_seconds = 300\n")
    env.run("init-central", "--demo-parcels", "300")
    alone = json.loads(env.run("sync").stdout)  # no agent runs: the sync runs here
    # a fixed port, so that the CLI finds the running agent
    port = {"TERRAFUSION_HTTP__PORT": str(free_port())}
    proc, base = start_process(env.config, env=port, interval=None)
    try:
        wait_for(lambda: get(base + "/health/ready").status == 200, 60, "the agent's sync")
        handed = json.loads(env.run("sync", env=port).stdout)  # handed to the running agent
        assert handed["via"] == "agent" and handed["id"] > alone["id"]
        runs = {r["id"]: r for r in get(base + "/api/v1/syncs?limit=10").json["runs"]}
        page = get(base + "/").text
    finally:
        proc.terminate()
        proc.wait(30)
    lines = [json.loads(line) for path in sorted((tmp_path / "logs").glob("agent.jsonl*"))
             for line in path.read_text(encoding="utf-8").splitlines()]
    for summary, role in ((alone, "sync"), (handed, "agent")):
        run_id, seconds = summary["id"], summary["duration_seconds"]
        assert seconds is not None and seconds > 0
        # the record's own times give it, to the millisecond
        assert seconds == round((parse(summary["finished_at"])
                                 - parse(summary["started_at"])).total_seconds(), 3)
        assert runs[run_id]["duration_seconds"] == seconds
        assert format_duration(seconds) in visible_text(run_row(page, run_id))
        # one line for the sync, at INFO, with the same figure and who wrote it
        about = [entry for entry in lines if entry.get("run_id") == run_id
                 or re.search(rf"\bsync {run_id}\b", entry["message"])]
        assert len(about) == 1, about
        [line] = about
        assert line["level"] == "INFO" and line["event"] == "sync"
        assert line["duration_seconds"] == seconds
        assert format_duration(seconds) in line["message"]
        assert line["role"] == role and isinstance(line["pid"], int)
        assert line["config"] == str(env.config.resolve())
        assert line["local_copy"] == str(env.local_path.resolve())
    # the run the agent made at start has its line too, from the agent's process
    started = [entry for entry in lines if entry.get("event") == "sync"
               and entry.get("trigger") == "schedule"]
    assert len(started) == 1 and started[0]["pid"] == proc.pid


def test_durations_read_the_same_in_the_log_and_on_the_page():
    from terrafusion_agent.service.statuspage import axis_ticks

    assert format_duration(0.4) == "0.400 s"
    assert format_duration(1234.5) == "1,234.500 s (20 min 34 s)"
    assert format_duration(7300) == "7,300.000 s (2 h 1 min)"
    assert axis_ticks(0.468) == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert axis_ticks(12) == [0, 5, 10, 15]


def test_relative_times_read_as_a_person_says_them():
    from terrafusion_agent.service.statuspage import ago

    now = datetime(2026, 12, 2, 12, 0, 0, tzinfo=timezone.utc)

    def at(seconds: float) -> datetime:
        return datetime.fromtimestamp(now.timestamp() - seconds, timezone.utc)

    assert ago(at(2), now) == "just now"
    assert ago(at(42), now) == "42 s ago"
    assert ago(at(3 * 60 + 5), now) == "3 min ago"
    assert ago(at(5 * 3600), now) == "5 h ago"
    assert ago(at(3 * 86400), now) == "3 days ago"
    assert ago(at(-240), now) == "in 4 min"

