"""Pending edits through a running agent: ``GET /api/v1/pending`` gives what ``pending
list`` prints, ``POST /api/v1/pending/discard`` needs the token and answers bad bodies
with 4xx in one sentence, and a discard asked of the API (``terrafusion_agent.api``, the
CLI) while the agent serves the copy is made by the agent, after a sync it is running.

One agent (embedded SpatiaLite central, 120 demo parcels) serves the module, in this
process, with the real sync engine held where a test chooses (:class:`HeldSync`).
"""

from __future__ import annotations

import json
import logging
import threading

import pytest
from conftest import local_exec
from service_helpers import HeldSync, get, post, serving_agent, wait_for
from terrafusion_agent import api


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    held = HeldSync()
    with serving_agent(tmp_path_factory.mktemp("pending"), 120, sync=held) as (env, agent):
        wait_for(lambda: (get(agent.base_url + "/health").json.get("last_sync") or {})
                 .get("result") == "success", 60, "the first scheduled sync")
        wait_for(lambda: not agent.scheduler.is_running(), 60, "the first sync to end")
        yield env, agent, held


@pytest.fixture
def agent_env(served):
    """The environment that points the CLI and the API at the serving agent's port."""
    env, agent, _ = served
    yield {"TERRAFUSION_HTTP__PORT": str(agent.port)}
    # every test starts from a copy without pending edits
    api.discard_pending(api.load_config(env.config,
                                        environ={"TERRAFUSION_HTTP__PORT": str(agent.port)}),
                        None)


def _url(served, path: str) -> str:
    return served[1].base_url + path


def _sync_now(served) -> None:
    env, agent, _ = served
    assert post(_url(served, "/api/v1/syncs"), token=agent.token).status == 202
    wait_for(lambda: not agent.scheduler.is_running(), 60, "the sync to end")


def test_get_pending_is_what_the_cli_lists(served, agent_env):
    env = served[0]
    local_exec(env, "UPDATE parcels SET owner_name = 'HTTP' WHERE prop_id = 100002")
    local_exec(env, "DELETE FROM sales WHERE sale_id = (SELECT min(sale_id) FROM sales)")

    body = get(_url(served, "/api/v1/pending")).json

    assert body == json.loads(env.run("pending", "list").stdout)
    assert [(e["table"], e["op"]) for e in body["edits"]] == [("parcels", "update"),
                                                             ("sales", "delete")]
    assert get(_url(served, "/api/v1/pending?limit=1")).json["edits"] == body["edits"][:1]
    assert get(_url(served, "/api/v1/pending?limit=0")).status == 400


def test_the_cli_discards_through_the_running_agent(served, agent_env):
    env = served[0]
    before = local_exec(env, "SELECT owner_name FROM parcels WHERE prop_id = 100003")
    local_exec(env, "UPDATE parcels SET owner_name = 'GONE SOON' WHERE prop_id = 100003")

    # the agent holds the copy's lock: a discard made here would be refused
    proc = env.run("pending", "discard", "parcels", "100003", env=agent_env)

    done = json.loads(proc.stdout)
    assert done["via"] == "agent" and [d["key"] for d in done["discarded"]] == [[100003]]
    assert local_exec(env, "SELECT owner_name FROM parcels WHERE prop_id = 100003") == before
    assert get(_url(served, "/health")).json["pending_local_edits"] == 0
    missing = env.run("pending", "discard", "parcels", "100003", env=agent_env, check=False)
    assert missing.returncode == 1 and "no pending edit of parcels 100003" in missing.stderr
    bad = env.run("pending", "discard", "parcels", "x", env=agent_env, check=False)
    assert bad.returncode == 2 and "prop_id" in bad.stderr


def _refused_edit(env) -> tuple[int, str]:
    """A parcel whose local edit central refuses at the next sync (a duplicate geo_id
    made centrally after the edit); its key and its geo_id as last synced."""
    from conftest import central_exec

    pid, geo_id = local_exec(env, "SELECT prop_id, geo_id FROM parcels "
                                  "ORDER BY prop_id DESC LIMIT 1")[0]
    local_exec(env, "UPDATE parcels SET geo_id = 'DUPLICATE' WHERE prop_id = ?", (pid,))
    central_exec(env, "UPDATE parcels SET geo_id = 'DUPLICATE' WHERE prop_id = "
                      "(SELECT min(prop_id) FROM parcels)")
    return pid, geo_id


def test_a_discard_sent_during_a_sync_waits_for_it_then_applies(served, agent_env, caplog):
    from conftest import central_exec

    env, agent, held = served
    caplog.set_level(logging.INFO, logger="terrafusion")
    pid, geo_id = _refused_edit(env)
    _sync_now(served)
    [refused] = get(_url(served, "/api/v1/pending")).json["edits"]
    assert refused["state"] == "rejected"  # a sync does not send it again: it stays put
    local_exec(env, "UPDATE parcels SET owner_name = 'ON ITS WAY' WHERE prop_id = 100004")
    cfg = api.load_config(env.config, environ=agent_env)
    answers: list = []
    with held.held("start"):
        sync = post(_url(served, "/api/v1/syncs"), token=agent.token)
        assert sync.status == 202, sync
        held.wait_reached()  # the run is under way, its work not begun
        discarding = threading.Thread(target=lambda: answers.append(
            api.discard_pending(cfg, None)))
        discarding.start()
        wait_for(lambda: any("discarding pending edits waits" in r.getMessage()
                             for r in caplog.records), 30, "the discard to wait")
        assert answers == []
    discarding.join(120)
    [done] = answers
    # the sync went first: the edit it pushed had left, only the refused one is discarded
    assert done["via"] == "agent" and [d["key"] for d in done["discarded"]] == [[pid]]
    assert get(_url(served, f"/api/v1/syncs/{sync.json['id']}")).json["result"] == "success"
    assert central_exec(env, "SELECT owner_name FROM parcels WHERE prop_id = 100004") == [
        ("ON ITS WAY",)]
    assert local_exec(env, "SELECT geo_id FROM parcels WHERE prop_id = ?", (pid,)) == [
        (geo_id,)]
    assert get(_url(served, "/api/v1/conflicts")).json == {"conflicts": []}
    assert get(_url(served, "/health")).json["rejected_rows"] == 0


def test_discard_needs_the_token(served):
    url = _url(served, "/api/v1/pending/discard")
    assert post(url, {"all": True}).status == 401
    assert post(url, {"all": True}, token="wrong").status == 401


@pytest.mark.parametrize("raw, status", [
    (b"not json", 400),
    (b"[]", 422),
    (b"{}", 422),
    (b'{"all": false}', 422),
    (b'{"all": true, "edits": [{"table": "parcels", "key": [1]}]}', 422),
    (b'{"edits": []}', 422),
    (b'{"edits": {"table": "parcels"}}', 422),
    (b'{"edits": [{"table": "parcels"}]}', 422),
    (b'{"edits": [{"table": "parcels", "key": [1], "op": "x"}]}', 422),
    (b'{"edits": [{"table": "", "key": [1]}]}', 422),
    (b'{"edits": [{"table": "parcels", "key": 100002}]}', 422),
    (b'{"edits": [{"table": "parcels", "key": [true]}]}', 422),
    (b'{"edits": [{"table": "parcels", "key": [null]}]}', 422),
    (b'{"edits": [{"table": "parcels", "key": ["abc"]}]}', 422),
    (b'{"edits": [{"table": "parcels", "key": [1, 2]}]}', 422),
    (b'{"edits": [{"table": "parcels", "key": [1.5]}]}', 422),
    (b'{"edits": [{"table": "parcels", "key": [1e400]}]}', 422),
    (b'{"edits": [{"table": "parcels", "key": [99999999999999999999999]}]}', 422),
    (b'{"edits": [{"table": "parcels", "key": ["\\ud800"]}]}', 422),
    (b'{"edits": [{"table": "nosuch", "key": [1]}]}', 404),
    (b'{"edits": [{"table": "parcels", "key": [1]}]}', 404),
])
def test_bad_discard_bodies_are_4xx_in_one_sentence(served, raw, status):
    r = post(_url(served, "/api/v1/pending/discard"), raw=raw, token=served[1].token)
    assert r.status == status, r
    assert r.json["status"] == status and r.json["error"].endswith(".")


def test_an_edit_in_conflict_is_a_409_naming_its_resolution(served, agent_env):
    from conftest import central_exec

    env, agent, _ = served
    pid = 100007
    local_exec(env, "UPDATE parcels SET land_value = 1 WHERE prop_id = ?", (pid,))
    central_exec(env, "UPDATE parcels SET land_value = 2 WHERE prop_id = ?", (pid,))
    _sync_now(served)
    [conflict] = get(_url(served, "/api/v1/conflicts")).json["conflicts"]

    r = post(_url(served, "/api/v1/pending/discard"),
             {"edits": [{"table": "parcels", "key": [pid]}]}, token=agent.token)

    assert r.status == 409, r
    assert f"conflicts resolve {conflict['id']} --keep central" in r.json["error"]
    everything = post(_url(served, "/api/v1/pending/discard"), {"all": True},
                      token=agent.token)
    assert everything.status == 200
    assert everything.json == {"discarded": [], "conflicts_left": 1}
    assert post(_url(served, f"/api/v1/conflicts/{conflict['id']}/resolve"),
                {"keep": "central"}, token=agent.token).status == 200
