"""The local HTTP API of docs/contract.md against a real server on an ephemeral port.

One agent (embedded SpatiaLite central, 200 demo parcels) serves the whole module: it is
started in-process with the real sync engine, which a test can hold at a chosen point
(:class:`HeldSync`) to make a request meet a running sync deterministically.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sqlite3
import stat
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterator

import pytest
from conftest import AgentEnv, synced_county
from service_helpers import (
    HeldSync,
    call,
    get,
    idle_schedule,
    post,
    serving_agent,
    started_agent,
    wait_for,
)
from terrafusion_agent.service.daemon import Agent

CONTRACT_ROUTES = {
    ("GET", "/"), ("GET", "/health/live"), ("GET", "/health/ready"), ("GET", "/health"),
    ("GET", "/metrics"), ("GET", "/api/v1/syncs"), ("POST", "/api/v1/syncs"),
    ("GET", "/api/v1/syncs/{id}"), ("POST", "/api/v1/config/reload"),
    ("GET", "/api/v1/conflicts"), ("POST", "/api/v1/conflicts/{id}/resolve"),
    ("GET", "/api/v1/pending"), ("POST", "/api/v1/pending/discard"),
    ("POST", "/api/v1/exports"), ("GET", "/api/v1/exports/{id}"), ("GET", "/openapi.json"),
    ("POST", "/api/v1/exports/{id}/cancel"),
    ("GET", "/api/v1/history/{table}/{key}"),
}


@dataclass
class Served:
    env: AgentEnv
    agent: Agent
    base: str
    token: str
    sync: HeldSync

    def wait_idle(self, timeout: float = 60) -> None:
        wait_for(lambda: not self.agent.scheduler.is_running(), timeout, "the sync to end")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    held = HeldSync()
    with serving_agent(tmp_path_factory.mktemp("api"), 200, sync=held) as (env, agent):
        s = Served(env, agent, agent.base_url, agent.token, held)
        wait_for(lambda: (get(s.base + "/health").json.get("last_sync") or {}).get("result")
                 == "success", 60, "the first scheduled sync")
        s.wait_idle()
        yield s


# --- health -------------------------------------------------------------------------------


def test_live_is_pass_while_the_scheduler_runs(served):
    r = get(served.base + "/health/live")
    assert r.status == 200 and r.json == {"status": "pass"}
    assert r.content_type.startswith("application/health+json")


def test_ready_after_a_fresh_sync(served):
    r = get(served.base + "/health/ready")
    assert r.status == 200, r
    assert r.json["status"] == "pass"
    assert set(r.json["checks"]) == {"local:reachable", "central:reachable", "sync:freshness"}


def test_health_body_carries_the_contract_figures(served):
    r = get(served.base + "/health")
    assert r.status == 200 and r.content_type.startswith("application/health+json")
    body = r.json
    assert body["status"] == "pass"
    assert body["version"]
    assert body["central_reachable"] is True
    assert body["next_sync"] is not None
    assert body["pending_local_edits"] == 0
    assert body["open_conflicts"] == 0
    last = body["last_sync"]
    for key in ("started_at", "finished_at", "result", "pulled", "pushed", "conflicts"):
        assert key in last
    assert last["result"] == "success" and last["pulled"] > 200


def test_health_counts_pending_local_edits(served):
    from terrafusion_agent.stores import spatialite

    conn = spatialite.connect(served.env.local_path)
    try:
        conn.execute("UPDATE sales SET sale_price = sale_price + 1 "
                     "WHERE sale_id IN (SELECT sale_id FROM sales ORDER BY sale_id LIMIT 3)")
    finally:
        conn.close()
    served.agent.monitor.local.refresh()  # the figures are cached for a couple of seconds
    assert get(served.base + "/health").json["pending_local_edits"] == 3
    assert post(served.base + "/api/v1/syncs", token=served.token).status == 202
    served.wait_idle()
    assert get(served.base + "/health").json["pending_local_edits"] == 0


def test_health_does_not_open_a_central_connection_per_request(served, monkeypatch):
    # how fast /health answers under load is measured by make bench (bench_service)
    from terrafusion_agent import health

    opened = []
    real_check = health.check_central
    monkeypatch.setattr(health, "check_central", lambda config: opened.append(1)
                        or real_check(config))
    served.agent.monitor.central.refresh()  # the cache now holds a fresh check
    opened.clear()
    started = time.monotonic()
    for _ in range(50):
        assert get(served.base + "/health").status == 200
    # a background refresh per TTL gone by at most, never one per request
    ttls = (time.monotonic() - started) // health.CENTRAL_TTL_SECONDS
    assert len(opened) <= 1 + ttls, opened


@pytest.fixture
def history_agent(tmp_path):
    """An agent (300 s interval) on a copy synced once, whose run history only the test
    changes from then on."""
    env = synced_county(tmp_path, 20)
    with started_agent(env, sync=idle_schedule) as agent:
        yield env, agent


def _last_success_was(env: AgentEnv, agent: Agent, seconds_ago: float) -> None:
    finished = (datetime.now(timezone.utc) - timedelta(seconds=seconds_ago)).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")
    with sqlite3.connect(env.local_path) as conn:
        assert conn.execute("UPDATE tf_sync_runs SET finished_at = ? WHERE result = 'success'",
                            (finished,)).rowcount == 1
    agent.monitor.local.refresh()


def test_ready_is_503_naming_freshness_once_the_last_success_is_older_than_twice_the_interval(
        history_agent):
    env, agent = history_agent
    _last_success_was(env, agent, 2 * agent.config.interval_seconds + 60)
    r = get(agent.base_url + "/health/ready")
    assert r.status == 503, r
    assert r.json["failing"] == ["sync:freshness"]
    assert r.json["checks"]["sync:freshness"][0]["status"] == "warn"


def test_ready_is_200_while_the_last_success_is_younger_than_twice_the_interval(
        history_agent):
    env, agent = history_agent
    _last_success_was(env, agent, 2 * agent.config.interval_seconds - 60)
    r = get(agent.base_url + "/health/ready")
    assert r.status == 200, r
    assert r.json["checks"]["sync:freshness"][0]["status"] == "pass"


# --- syncs --------------------------------------------------------------------------------


def test_sync_runs_are_listed_newest_first(served):
    r = get(served.base + "/api/v1/syncs?limit=2")
    assert r.status == 200
    runs = r.json["runs"]
    assert 1 <= len(runs) <= 2
    assert runs == sorted(runs, key=lambda run: run["id"], reverse=True)
    assert runs[0]["duration_seconds"] is not None


@pytest.mark.parametrize("limit", ["0", "-1", "abc", "1001", "1.5", ""])
def test_a_bad_limit_is_a_400(served, limit):
    r = get(served.base + f"/api/v1/syncs?limit={limit}")
    assert r.status == 400, r
    assert r.json["code"] == "invalid_query"


def _run(served, run_id: int) -> dict:
    r = get(f"{served.base}/api/v1/syncs/{run_id}")
    assert r.status == 200, r
    return r.json


def test_post_sync_answers_with_the_id_of_a_run_recorded_before_its_work(served):
    before = get(served.base + "/api/v1/syncs?limit=1").json["runs"][0]["id"]
    with served.sync.held("start"):
        r = post(served.base + "/api/v1/syncs", token=served.token)
        assert r.status == 202, r
        assert r.json == {"id": r.json["id"], "status": "running"} and r.json["id"] > before
        assert r.headers["Location"] == f"/api/v1/syncs/{r.json['id']}"
        served.sync.wait_reached()
        # no work done yet, and the run is there to follow under that id
        run = _run(served, r.json["id"])
        assert run["result"] == "running" and run["trigger"] == "api"
        assert run["finished_at"] is None and run["duration_seconds"] is None
        assert run["progress"] == {"fraction": 0.0, "table": ""}
        assert get(served.base + "/health").json["sync_running"]["id"] == r.json["id"]
    served.wait_idle()
    run = _run(served, r.json["id"])
    assert run["result"] == "success" and "progress" not in run


def test_a_finished_run_reads_as_it_is_listed(served):
    r = post(served.base + "/api/v1/syncs", token=served.token)
    assert r.status == 202, r
    served.wait_idle()
    listed = next(run for run in get(served.base + "/api/v1/syncs?limit=5").json["runs"]
                  if run["id"] == r.json["id"])
    single = _run(served, r.json["id"])
    # the same run, and for a run this agent made the rest of its summary besides
    assert {k: v for k, v in single.items() if k in listed} == listed
    assert {"tables", "rows", "rejected", "pending", "open_conflicts"} <= set(single)
    assert {"id", "trigger", "started_at", "finished_at", "result", "error", "pulled",
            "pushed", "conflicts", "duration_seconds"} <= set(listed)
    assert listed["result"] == "success" and listed["duration_seconds"] is not None


def test_a_running_run_shows_the_engines_progress(served):
    from terrafusion_agent.stores import spatialite

    central = spatialite.connect(served.env.central_url[len("sqlite:///"):])
    try:
        central.execute("UPDATE parcels SET owner_name = 'PROGRESS' WHERE prop_id IN "
                        "(SELECT prop_id FROM parcels ORDER BY prop_id LIMIT 3)")
    finally:
        central.close()
    with served.sync.held("progress"):
        r = post(served.base + "/api/v1/syncs", token=served.token)
        assert r.status == 202, r
        served.sync.wait_reached()
        run = _run(served, r.json["id"])
        # parcels is the first of three tables and has been pulled: a third of the run
        assert run["result"] == "running"
        assert run["progress"] == {"fraction": round(1 / 3, 4), "table": "parcels"}
        listed = get(served.base + "/api/v1/syncs?limit=1").json["runs"][0]
        assert listed == run
    served.wait_idle()
    assert _run(served, r.json["id"])["pulled"] == 3


def test_an_unknown_run_is_a_404_in_one_sentence(served):
    r = get(served.base + "/api/v1/syncs/424242")
    assert r.status == 404, r
    assert r.json["code"] == "not_found"
    assert r.json["error"] == "There is no sync run with id 424242."
    assert get(served.base + "/api/v1/syncs/latest").status == 404
    assert get(served.base + f"/api/v1/syncs/{2**70}").status == 404


def test_post_sync_accepts_an_empty_json_object(served):
    assert post(served.base + "/api/v1/syncs", {}, token=served.token).status == 202
    served.wait_idle()


def test_an_overlapping_sync_is_refused_with_409_naming_the_running_one(served):
    with served.sync.held("start"):
        first = post(served.base + "/api/v1/syncs", token=served.token)
        assert first.status == 202, first
        second = post(served.base + "/api/v1/syncs", token=served.token)
        assert second.status == 409, second
        assert second.json["code"] == "sync_in_progress"
        assert second.json["id"] == first.json["id"]
        assert second.json["status"] == 409 and second.json["error"]
        # the scheduled path shares the lock: a tick now is skipped, not run twice
        served.agent.scheduler._tick()
        assert get(served.base + "/health").json["sync_running"]["trigger"] == "api"
    served.wait_idle()
    runs = get(served.base + "/api/v1/syncs?limit=2").json["runs"]
    assert [(run["id"], run["result"]) for run in runs][0] == (first.json["id"], "success")
    assert runs[1]["id"] < first.json["id"]


def test_a_sync_asked_for_while_a_conflict_is_resolved_is_a_409_without_a_run(served):
    with served.agent.scheduler.exclusive("resolving a conflict"):
        r = post(served.base + "/api/v1/syncs", token=served.token)
    assert r.status == 409, r
    assert r.json["code"] == "busy" and r.json["id"] is None
    assert "resolving a conflict" in r.json["error"]


def test_a_run_left_running_by_a_killed_agent_is_closed_by_the_next_sync(served):
    # what an agent killed with SIGKILL in the middle of a sync leaves behind
    with sqlite3.connect(served.env.local_path) as conn:
        left = conn.execute("INSERT INTO tf_sync_runs (started_at, result, trigger) "
                            "VALUES ('2026-01-01T00:00:00.000Z', 'running', 'api')").lastrowid
    # not this agent's run: no progress to show, and no end to guess
    assert _run(served, left)["progress"] == {"fraction": None, "table": ""}
    r = post(served.base + "/api/v1/syncs", token=served.token)
    assert r.status == 202, r
    served.wait_idle()
    closed = _run(served, left)
    assert closed["result"] == "failed" and "progress" not in closed
    assert "ended without recording its result" in closed["error"]
    assert _run(served, r.json["id"])["result"] == "success"


# --- authorisation and bad requests -------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/syncs", "/api/v1/conflicts/1/resolve",
                                  "/api/v1/exports", "/api/v1/exports/1/cancel",
                                  "/api/v1/config/reload"])
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token-0123456789",
                                           "Basic dXNlcjpwdw==", "Bearer", "bearer  "])
def test_every_post_needs_the_token(served, path, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    r = post(served.base + path, {"keep": "local"}, headers=headers)
    assert r.status == 401, r
    assert r.json["code"] == "unauthorized"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert served.token not in r.text


def test_the_bearer_scheme_is_case_insensitive(served):
    r = post(served.base + "/api/v1/conflicts/999999/resolve", {"keep": "local"},
             headers={"Authorization": f"bearer {served.token}"})
    assert r.status == 404


def test_the_right_token_under_another_scheme_is_refused(served):
    r = post(served.base + "/api/v1/syncs", headers={"Authorization": f"Basic {served.token}"})
    assert r.status == 401, r


@pytest.mark.parametrize("raw, status", [
    (b"{", 400), (b"not json", 400), (b"\xff\xfe\x00", 400), (b"[" * 100_000, 400),
    (b"[]", 422), (b'"local"', 422), (b"{}", 422), (b'{"keep": "both"}', 422),
    (b'{"keep": 1}', 422), (b'{"keep": "local", "extra": 1}', 422), (b"", 400),
    (b'{"merge": {}}', 422), (b'{"merge": "local"}', 422), (b'{"merge": null}', 422),
    (b'{"merge": [["owner_name", "local"]]}', 422),
    (b'{"keep": "local", "merge": {"owner_name": "local"}}', 422),
])
def test_bad_resolve_bodies_are_4xx_with_a_json_error(served, raw, status):
    r = call("POST", served.base + "/api/v1/conflicts/1/resolve", raw=raw, token=served.token)
    assert r.status == status, r
    assert r.json["error"] and r.json["status"] == status


@pytest.mark.parametrize("raw", [b"[1]", b'{"now": true}', b"nope"])
def test_bad_sync_bodies_are_4xx(served, raw):
    r = call("POST", served.base + "/api/v1/syncs", raw=raw, token=served.token)
    assert r.status in (400, 422), r


def test_an_oversized_body_is_a_413(served):
    r = call("POST", served.base + "/api/v1/syncs", raw=b" " * (2 << 20), token=served.token)
    assert r.status == 413, r
    assert r.json["code"]


def test_unknown_routes_and_methods_answer_json(served):
    r = get(served.base + "/api/v1/nothing")
    assert r.status == 404 and r.json["code"] == "not_found"
    r = call("DELETE", served.base + "/api/v1/syncs")
    assert r.status == 405 and set(r.headers["Allow"].split(", ")) >= {"GET", "POST"}
    r = get(served.base + "/api/v1/conflicts/1/resolve")
    assert r.status == 405
    r = post(served.base + "/api/v1/conflicts/abc/resolve", {"keep": "local"},
             token=served.token)
    assert r.status == 404


def test_a_request_for_another_host_name_is_refused(served):
    # DNS rebinding: a web page's script reaching 127.0.0.1 under its own host name
    r = get(served.base + "/api/v1/conflicts", headers={"Host": "evil.example:8765"})
    assert r.status == 421
    assert get(served.base.replace("127.0.0.1", "localhost") + "/health/live").status == 200


# --- conflicts ----------------------------------------------------------------------------


def _make_conflict(env: AgentEnv, nth: int = 0) -> int:
    """Edit the owner of the ``nth`` last parcel both locally and centrally: the next sync
    records a conflict."""
    from terrafusion_agent.stores import spatialite

    local = spatialite.connect(env.local_path)
    central = spatialite.connect(env.central_url[len("sqlite:///"):])
    try:
        pid = local.execute("SELECT prop_id FROM parcels ORDER BY prop_id DESC LIMIT 1 "
                            "OFFSET ?", (nth,)).fetchone()[0]
        local.execute("UPDATE parcels SET owner_name = 'LOCAL EDIT' WHERE prop_id = ?", (pid,))
        central.execute("UPDATE parcels SET owner_name = 'CENTRAL EDIT' WHERE prop_id = ?",
                        (pid,))
        return pid
    finally:
        local.close()
        central.close()


def test_conflicts_are_listed_and_resolved_once(served):
    assert get(served.base + "/api/v1/conflicts").json == {"conflicts": []}
    pid = _make_conflict(served.env)
    assert post(served.base + "/api/v1/syncs", token=served.token).status == 202
    served.wait_idle()
    conflicts = get(served.base + "/api/v1/conflicts").json["conflicts"]
    assert [c["pk"] for c in conflicts] == [[pid]]
    cid = conflicts[0]["id"]
    health = get(served.base + "/health").json
    assert health["open_conflicts"] == 1
    assert health["status"] == "warn" and health["checks"]["sync:conflicts"][0]["status"] == "warn"
    assert get(served.base + "/health/ready").status == 200  # a conflict is not an outage

    r = post(served.base + f"/api/v1/conflicts/{cid}/resolve", {"keep": "local"},
             token=served.token)
    assert r.status == 200, r
    assert get(served.base + "/api/v1/conflicts").json == {"conflicts": []}
    assert len(get(served.base + "/api/v1/conflicts?all=true").json["conflicts"]) == 1
    again = post(served.base + f"/api/v1/conflicts/{cid}/resolve", {"keep": "central"},
                 token=served.token)
    assert again.status == 409 and "already resolved" in again.json["error"]
    assert get(served.base + "/health").json["open_conflicts"] == 0
    served.wait_idle()


def _make_refused_edit(env: AgentEnv) -> int:
    """Give one parcel another parcel's geo_id locally: central refuses it as a duplicate."""
    from terrafusion_agent.stores import spatialite

    local = spatialite.connect(env.local_path)
    try:
        first, pid = local.execute("SELECT min(prop_id), max(prop_id) FROM parcels").fetchone()
        local.execute("UPDATE parcels SET geo_id = (SELECT geo_id FROM parcels "
                      "WHERE prop_id = ?) || '-DUP' WHERE prop_id = ?", (first, pid))
        central = spatialite.connect(env.central_url[len("sqlite:///"):])
        try:
            # the duplicate is created centrally after the local edit: the local copy's own
            # unique index cannot stop it, central's refuses it at the push
            central.execute("UPDATE parcels SET geo_id = geo_id || '-DUP' WHERE prop_id = ?",
                            (first,))
        finally:
            central.close()
        return pid
    finally:
        local.close()


def test_rejected_rows_are_reported_listed_and_resolved(served):
    pid = _make_refused_edit(served.env)
    assert post(served.base + "/api/v1/syncs", token=served.token).status == 202
    served.wait_idle()

    health = get(served.base + "/health").json
    assert health["rejected_rows"] == 1
    assert health["open_conflicts"] == 0
    check = health["checks"]["sync:rejected"][0]
    assert check["status"] == "warn" and check["observedValue"] == 1
    assert "1 edited row(s) were refused" in check["output"]
    assert health["status"] == "warn"
    assert get(served.base + "/health/ready").status == 200  # a refused row is not an outage
    [entry] = get(served.base + "/api/v1/conflicts").json["conflicts"]
    assert entry["kind"] == "rejected" and entry["pk"] == [pid]
    assert "UNIQUE" in entry["message"] and "geo_id" in entry["message"]

    r = post(served.base + f"/api/v1/conflicts/{entry['id']}/resolve", {"keep": "central"},
             token=served.token)
    assert r.status == 200, r
    health = get(served.base + "/health").json
    assert health["rejected_rows"] == 0
    assert health["checks"]["sync:rejected"] == [{"status": "pass", "observedValue": 0}]
    assert get(served.base + "/api/v1/conflicts").json == {"conflicts": []}


def _open_conflict(served, nth: int) -> tuple[int, int]:
    """(conflict id, prop_id) of a new open conflict on the ``nth`` last parcel."""
    pid = _make_conflict(served.env, nth)
    assert post(served.base + "/api/v1/syncs", token=served.token).status == 202
    served.wait_idle()
    [conflict] = [c for c in get(served.base + "/api/v1/conflicts").json["conflicts"]
                  if c["pk"] == [pid]]
    return conflict["id"], pid


def _central_edit(env: AgentEnv, sql: str) -> None:
    from terrafusion_agent.stores import spatialite

    central = spatialite.connect(env.central_url[len("sqlite:///"):])
    try:
        central.execute(sql)
    finally:
        central.close()


def test_a_resolution_sent_during_a_sync_waits_for_it_then_applies(served, caplog):
    caplog.set_level(logging.INFO, logger="terrafusion")
    cid, pid = _open_conflict(served, 1)
    # something to pull, so that the sync can be held in the middle of its pull
    _central_edit(served.env, "UPDATE parcels SET owner_name = 'MEANWHILE' "
                              "WHERE prop_id = (SELECT min(prop_id) FROM parcels)")
    answers: list = []
    with served.sync.held("progress"):
        sync = post(served.base + "/api/v1/syncs", token=served.token)
        assert sync.status == 202, sync
        served.sync.wait_reached()
        resolving = threading.Thread(target=lambda: answers.append(post(
            f"{served.base}/api/v1/conflicts/{cid}/resolve", {"keep": "local"},
            token=served.token, timeout=120)))
        resolving.start()
        wait_for(lambda: any(f"conflict {cid} waits" in r.getMessage()
                             for r in caplog.records), 30, "the resolution to wait")
        assert answers == []  # the sync is held: the resolution cannot have gone through
    resolving.join(120)
    [answer] = answers
    assert answer.status == 200, answer
    run = _run(served, sync.json["id"])
    assert run["result"] == "success"
    [resolved] = [c for c in get(served.base + "/api/v1/conflicts?all=true").json["conflicts"]
                  if c["id"] == cid]
    assert resolved["resolution"] == "keep_local"
    assert resolved["resolved_at"] >= run["finished_at"]
    # the chosen side reaches central with the next sync
    assert post(served.base + "/api/v1/syncs", token=served.token).status == 202
    served.wait_idle()
    for url in (served.env.central_url[len("sqlite:///"):], served.env.local_path):
        with sqlite3.connect(url) as conn:
            assert conn.execute("SELECT owner_name FROM parcels WHERE prop_id = ?",
                                (pid,)).fetchone() == ("LOCAL EDIT",), url


def test_a_resolution_still_waiting_when_the_bound_passes_is_a_409(served, monkeypatch):
    from terrafusion_agent.service import daemon

    cid, _ = _open_conflict(served, 2)
    monkeypatch.setattr(daemon, "RESOLVE_WAIT_SECONDS", 1.0)
    with served.sync.held("start"):
        assert post(served.base + "/api/v1/syncs", token=served.token).status == 202
        served.sync.wait_reached()
        r = post(f"{served.base}/api/v1/conflicts/{cid}/resolve", {"keep": "central"},
                 token=served.token)
    assert r.status == 409, r
    assert r.json["code"] == "sync_in_progress"
    assert r.json["error"] == ("A sync was still running after 1 s; resolving a conflict "
                               "has to wait until it has finished.")
    served.wait_idle()
    assert [c["id"] for c in get(served.base + "/api/v1/conflicts").json["conflicts"]] == [cid]
    assert post(f"{served.base}/api/v1/conflicts/{cid}/resolve", {"keep": "central"},
                token=served.token).status == 200


def _central_row(env: AgentEnv, pid: int, columns: str) -> tuple:
    with sqlite3.connect(env.central_url[len("sqlite:///"):]) as conn:
        return conn.execute(f"SELECT {columns} FROM parcels WHERE prop_id = ?",
                            (pid,)).fetchone()


def test_a_merge_body_resolves_column_by_column_with_the_token(served):
    cid, pid = _open_conflict(served, 5)
    merge = {"merge": {"owner_name": {"value": "TYPED OWNER"}, "land_value": 4321}}
    url = f"{served.base}/api/v1/conflicts/{cid}/resolve"
    assert post(url, merge).status == 401
    assert cid in [c["id"] for c in get(served.base + "/api/v1/conflicts").json["conflicts"]]

    r = post(url, merge, token=served.token)

    assert r.status == 200, r
    assert r.json["id"] == cid and r.json["resolution"] == "merge"
    assert post(served.base + "/api/v1/syncs", token=served.token).status == 202
    served.wait_idle()
    assert _central_row(served.env, pid, "owner_name, land_value") == ("TYPED OWNER", 4321)


@pytest.mark.parametrize(("merge", "culprit"), [
    ({"owner_name": "local", "year_built": "nineteen"}, "year_built"),
    ({"owner_name": "local", "geom": "MULTIPOLYGON((("}, "geom"),
    ({"owner_nam": "local"}, "owner_nam"),
    ({"land_value": 1}, "leaves out owner_name"),
])
def test_a_bad_merge_is_a_422_naming_the_column_and_changes_nothing(served, merge, culprit):
    cid, pid = _open_conflict(served, 6)
    columns = "owner_name, land_value, year_built, hex(geom)"
    before = _central_row(served.env, pid, columns)

    r = post(f"{served.base}/api/v1/conflicts/{cid}/resolve", {"merge": merge},
             token=served.token)

    assert r.status == 422, r
    assert r.json["code"] == "invalid_request" and culprit in r.json["error"]
    [still] = [c for c in get(served.base + "/api/v1/conflicts").json["conflicts"]
               if c["id"] == cid]
    assert still["local"]["owner_name"] == "LOCAL EDIT"
    assert _central_row(served.env, pid, columns) == before


def test_resolving_an_unknown_conflict_is_a_404(served):
    r = post(served.base + "/api/v1/conflicts/424242/resolve", {"keep": "central"},
             token=served.token)
    assert r.status == 404 and r.json["code"] == "not_found"
    r = post(served.base + f"/api/v1/conflicts/{2**70}/resolve", {"keep": "central"},
             token=served.token)
    assert r.status == 404


def test_a_bad_all_flag_is_a_400(served):
    assert get(served.base + "/api/v1/conflicts?all=maybe").status == 400


# --- exports ------------------------------------------------------------------------------


def _export_engine_present() -> bool:
    try:
        from terrafusion_agent.export import jobs  # noqa: F401
    except ImportError:
        return False
    return True


def test_an_unknown_export_job_is_a_404(served):
    r = get(served.base + "/api/v1/exports/424242")
    assert r.status == (404 if _export_engine_present() else 503), r
    assert r.json["code"]
    assert get(served.base + "/api/v1/exports/not-a-number").status == 404
    assert get(served.base + f"/api/v1/exports/{2**70}").status == 404


@pytest.mark.parametrize("body", [
    {"table": "parcels", "format": "dwg", "out": "/tmp/x.dwg"},
    {"table": "parcels", "format": "geojson"},
    {"table": "parcels", "format": "geojson", "out": "relative.geojson"},
    {"table": "no_such_table", "format": "geojson", "out": "/tmp/x.geojson"},
    {"format": "geojson", "out": "/tmp/x.geojson"},
    {"table": "parcels", "format": "geojson", "out": "/tmp/x.geojson", "colour": "red"},
    [], "parcels",
])
def test_an_invalid_export_request_is_a_422(served, body):
    r = post(served.base + "/api/v1/exports", body, token=served.token)
    assert r.status == (422 if _export_engine_present() else 503), r
    assert r.json["error"]


def test_an_unknown_key_in_an_export_request_is_a_422_naming_it(served):
    if not _export_engine_present():
        pytest.skip("the export engine is not there yet")
    r = post(served.base + "/api/v1/exports", {"table": "parcels", "format": "geojson",
                                               "out": "/tmp/x.geojson", "colour": "red"},
             token=served.token)
    assert r.status == 422, r
    assert r.json["code"] == "invalid_request" and "'colour'" in r.json["error"]


@pytest.mark.parametrize("key, value", [
    ("out", "/tmp/parcels\0.geojson"), ("table", "parcels\0"), ("where", "acres > 1\0"),
    ("crs", "EPSG:4326\0"), ("fields", ["geo_id", "acres\0"]), ("preset", "public\0"),
    ("format", "geojson\0"),
])
def test_a_nul_character_in_an_export_request_is_a_422_naming_the_field(served, key, value):
    body = {"table": "parcels", "format": "geojson", "out": "/tmp/parcels.geojson",
            key: value}
    r = post(served.base + "/api/v1/exports", body, token=served.token)
    assert r.status == 422, r
    assert r.json["code"] == "invalid_request"
    assert f"'{key}'" in r.json["error"] and "NUL" in r.json["error"]


def test_an_export_job_runs_and_reports_its_state(served, tmp_path):
    if not _export_engine_present():
        pytest.skip("the export engine is not there yet")
    out = tmp_path / "districts.geojson"
    r = post(served.base + "/api/v1/exports",
             {"table": "districts", "format": "geojson", "out": str(out)}, token=served.token)
    assert r.status == 202, r
    job = r.json
    assert job["status"] in ("pending", "running", "completed")
    assert r.headers["Location"] == f"/api/v1/exports/{job['id']}"
    done = wait_for(lambda: (lambda j: j if j["status"] in ("completed", "failed") else None)(
        get(f"{served.base}/api/v1/exports/{job['id']}").json), 60, "the export job")
    assert done["status"] == "completed", done
    assert done["features"] > 0 and out.exists()


# --- documents ----------------------------------------------------------------------------


def test_openapi_document_is_valid_and_names_every_route(served):
    from openapi_spec_validator import validate

    r = get(served.base + "/openapi.json")
    assert r.status == 200
    doc = r.json
    validate(doc)
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == CONTRACT_ROUTES
    assert doc["servers"][0]["url"] == served.base
    for method, path in documented:
        op = doc["paths"][path][method.lower()]
        assert ("security" in op) == (method == "POST"), (method, path)


def test_openapi_document_matches_the_router():
    from terrafusion_agent.service.openapi import document
    from terrafusion_agent.service.routes import ROUTES

    routed = set()
    for route in ROUTES:
        path = re.sub(r"<[^>]+>", "{}", route.rule.rule)
        routed |= {(m, path) for m in route.rule.methods if m not in ("HEAD", "OPTIONS")}
    assert routed == {(m.upper(), re.sub(r"\{[^}]+\}", "{}", p))
                      for p, ops in document()["paths"].items() for m in ops}


def test_status_page_is_self_contained_html(served):
    r = get(served.base + "/")
    assert r.status == 200 and r.content_type.startswith("text/html")
    page = r.text
    assert "<svg" in page and "<rect" in page  # the duration chart
    assert "Local edits waiting to be pushed" in page
    assert "Conflicts waiting for a decision" in page
    assert "Next sync" in page and "Last sync" in page
    for external in ("<script", "src=\"http", "href=\"http", "@import", "url("):
        assert external not in page
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]


def test_the_token_file_is_private(served):
    path = served.env.dir / "token"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_text().strip() == served.token and len(served.token) >= 40


def test_concurrent_requests_all_answer(served):
    failures = []

    def hammer():
        for _ in range(20):
            status = get(served.base + "/health").status
            if status != 200:
                failures.append(status)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


# --- many connections held open -------------------------------------------------------------

#: connections held open by other clients while /health must still answer
HELD_CONNECTIONS = 300
#: generous: the bench measures the real figure (bench/bench_service.py)
HEALTH_GUARD_SECONDS = 5


@contextmanager
def held_connections(base: str, count: int) -> Iterator[list[socket.socket]]:
    """``count`` TCP connections to the agent that send nothing, closed on leaving."""
    host, port = base.split("//", 1)[1].rsplit(":", 1)
    held: list[socket.socket] = []
    try:
        for _ in range(count):
            held.append(socket.create_connection((host, int(port)), timeout=5))
        yield held
    finally:
        for conn in held:
            conn.close()


def test_health_answers_while_hundreds_of_idle_connections_are_open(served):
    with held_connections(served.base, HELD_CONNECTIONS):
        r = get(served.base + "/health", timeout=HEALTH_GUARD_SECONDS)
        assert r.status == 200, r
        assert get(served.base + "/health/live", timeout=HEALTH_GUARD_SECONDS).status == 200


def test_health_answers_while_hundreds_of_clients_dribble_their_headers(served):
    stop = threading.Event()
    with held_connections(served.base, HELD_CONNECTIONS) as held:
        for conn in held:
            conn.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")

        def dribble() -> None:
            # a header line now and then, never the blank line that ends the request
            for n in range(600):  # bounded: 60 s at most
                for conn in held:
                    conn.sendall(f"X-Slow-{n}: 1\r\n".encode())
                if stop.wait(0.1):
                    return

        dribbler = threading.Thread(target=dribble, daemon=True)
        dribbler.start()
        try:
            r = get(served.base + "/health", timeout=HEALTH_GUARD_SECONDS)
            assert r.status == 200, r
        finally:
            stop.set()
            dribbler.join(10)


def test_the_routes_do_not_import_the_server_plumbing():
    # http imports routes; routes importing http back was a cycle (both share responses)
    import subprocess
    import sys

    code = ("import sys, terrafusion_agent.service.routes; "
            "print('terrafusion_agent.service.http' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ}).stdout
    assert out.strip() == "False"
