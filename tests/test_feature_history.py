"""A feature's history where people see it (the API, ``terrafusion-agent history``,
``GET /api/v1/history/{table}/{key}``) and restoring one of its versions, on real
PostGIS: edits made centrally by another application and pushed by an agent, since /
until, a restored version that is a pending edit like one made in QGIS (pushed, then
recorded centrally as the agent's change; a conflict, never an overwrite, when central
changed the same column meanwhile), a deleted feature brought back, exact decimals and a
key of two columns, and bad input answered in one sentence.
"""

from __future__ import annotations

import getpass
import json
import socket
import urllib.parse
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import AgentEnv, central_exec, local_exec, synced_copy, write_config
from service_helpers import get, idle_schedule, started_agent
from terrafusion_agent import api
from terrafusion_agent.errors import BadRequest, InvalidArgument, NotFound, UnknownTable
from terrafusion_agent.stores.local import LocalStore

PROP = 100004
APP = "assessor-app"


def central_as_app(agent: AgentEnv, sql: str, params: tuple = ()) -> None:
    """Write centrally as the assessment system would: its own application name."""
    import psycopg

    with psycopg.connect(agent.central_url, autocommit=True, application_name=APP) as conn:
        conn.execute(sql, params or None)


def central_now(agent: AgentEnv) -> str:
    """Central's clock now, as history times are written (UTC, microseconds, Z)."""
    return central_exec(agent, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', "
                               "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")[0][0]


def history(agent: AgentEnv, table: str, key: str, *options: str) -> dict:
    return json.loads(agent.run("history", table, key, *options).stdout)


def owner(agent: AgentEnv, where: str = "central", prop: int = PROP):
    if where == "central":
        return central_exec(agent, "SELECT owner_name FROM parcels WHERE prop_id = %s",
                            (prop,))[0][0]
    rows = local_exec(agent, "SELECT owner_name FROM parcels WHERE prop_id = ?", (prop,))
    return rows[0][0] if rows else None


def central_wkb(agent: AgentEnv, prop: int = PROP) -> bytes:
    return bytes(central_exec(agent, "SELECT ST_AsBinary(geom) FROM parcels "
                                     "WHERE prop_id = %s", (prop,))[0][0])


def local_wkb(agent: AgentEnv, prop: int = PROP) -> bytes:
    return bytes(local_exec(agent, "SELECT AsBinary(geom) FROM parcels WHERE prop_id = ?",
                            (prop,))[0][0])


def agent_id(agent: AgentEnv) -> str:
    with LocalStore.open_existing(agent.local_path) as local:
        return local.agent_id()


def synced_county(agent: AgentEnv) -> AgentEnv:
    agent.run("init-central", "--demo-parcels", "60")
    agent.run("sync")
    return agent


@pytest.fixture
def county(request, tmp_path) -> AgentEnv:
    """A demo county on a fresh PostGIS, synced once."""
    return synced_copy(request, tmp_path, "postgis", 60)


@pytest.fixture(scope="module")
def edited(pg_cluster, tmp_path_factory):
    """A county where parcel 100004 was edited twice: centrally by the assessment
    system, then in the local copy and pushed by the agent; ``between`` is a moment
    between the two changes."""
    directory = tmp_path_factory.mktemp("edited")
    url = pg_cluster.create_db("tf_feature_history")
    env = synced_county(AgentEnv(directory, write_config(directory, url), url))
    original = owner(env)
    central_as_app(env, "UPDATE parcels SET owner_name = 'CENTRAL OWNER' "
                        "WHERE prop_id = %s", (PROP,))
    env.run("sync")
    between = central_now(env)
    local_exec(env, "UPDATE parcels SET owner_name = 'AGENT OWNER', "
                    "geom = ST_Translate(geom, 12, 5, 0) WHERE prop_id = ?", (PROP,))
    assert json.loads(env.run("sync").stdout)["pushed"] == 1
    yield env, original, between
    pg_cluster.drop_db("tf_feature_history")


# --- reading the history ------------------------------------------------------------------


def test_history_shows_a_central_edit_and_an_agent_push_newest_first(edited):
    env, original, _ = edited

    body = history(env, "parcels", str(PROP))

    assert body["table"] == "parcels" and body["key"] == [PROP]
    pushed, central = body["entries"]
    assert [pushed["op"], central["op"]] == ["update", "update"]
    assert pushed["committed_at"] > central["committed_at"] >= body["history_start"]
    # the agent's push names the agent: its id, who ran it, where
    assert pushed["agent"] == {"id": agent_id(env), "os_user": getpass.getuser(),
                               "host": socket.gethostname()}
    assert set(pushed["columns"]) == {"owner_name", "geom"}
    assert pushed["old"]["owner_name"] == "CENTRAL OWNER"
    assert pushed["new"]["owner_name"] == "AGENT OWNER"
    assert pushed["old"]["geom"].startswith("MULTIPOLYGON")
    assert pushed["old"]["geom"] != pushed["new"]["geom"]
    # the assessment system's edit names its application, and no agent
    assert central["agent"] is None and central["application"] == APP
    assert central["columns"] == ["owner_name"]
    assert central["old"] == {"owner_name": original}
    assert central["new"] == {"owner_name": "CENTRAL OWNER"}
    assert api.feature_history(env.load(), "parcels", PROP) == body["entries"]


def test_http_answers_the_body_the_cli_prints(edited):
    env, _, _ = edited
    printed = history(env, "parcels", str(PROP))
    with started_agent(env, sync=idle_schedule) as agent:
        base = f"{agent.base_url}/api/v1/history/parcels"
        plain = get(f"{base}/{PROP}")
        as_array = get(f"{base}/{urllib.parse.quote(json.dumps([PROP]), safe='')}")

    assert plain.status == 200, plain
    assert plain.json == printed
    assert as_array.status == 200 and as_array.json == printed


def test_since_and_until_keep_the_entries_between_them(edited):
    env, _, between = edited

    after = history(env, "parcels", str(PROP), "--since", between)["entries"]
    before = history(env, "parcels", str(PROP), "--until", between)["entries"]
    neither = history(env, "parcels", str(PROP), "--since", "2001-01-01",
                      "--until", "2001-01-02")

    assert [e["new"]["owner_name"] for e in after] == ["AGENT OWNER"]
    assert [e["new"]["owner_name"] for e in before] == ["CENTRAL OWNER"]
    assert neither["entries"] == [] and neither["history_start"] is not None
    with started_agent(env, sync=idle_schedule) as agent:
        query = urllib.parse.urlencode({"since": between})
        r = get(f"{agent.base_url}/api/v1/history/parcels/{PROP}?{query}")
    assert r.status == 200 and r.json["entries"] == after


def test_a_feature_never_changed_has_an_empty_history(edited):
    env, _, _ = edited
    body = history(env, "parcels", "100005")
    assert body["key"] == [100005] and body["entries"] == []


@pytest.mark.parametrize("args, named", [
    (["nosuch", "1"], ["'nosuch'", "not synced", "parcels"]),
    (["parcels", "abc"], ["'abc'", "prop_id", "whole numbers"]),
    (["parcels", "[100004, 2]"], ["1 column", "prop_id", "not 2"]),
    (["parcels", "100004", "--since", "yesterday"], ["since", "'yesterday'", "ISO 8601"]),
    (["parcels", "100004", "--until", "2026-13-01"], ["until", "'2026-13-01'"]),
    (["parcels", "100004", "--since", "2026-12-02", "--until", "2026-12-01"],
     ["since", "later than until"]),
])
def test_bad_input_is_one_sentence_naming_it_and_exits_2(edited, args, named):
    env, _, _ = edited
    proc = env.run("history", *args, check=False)
    err = proc.stderr.strip()
    assert proc.returncode == 2, (proc.returncode, err)
    assert "Traceback" not in proc.stderr and len(err.splitlines()) == 1, err
    for fragment in named:
        assert fragment in err, err


def test_http_bad_input_is_a_4xx_with_a_sentence_never_a_5xx(edited):
    env, _, _ = edited
    with started_agent(env, sync=idle_schedule) as agent:
        base = f"{agent.base_url}/api/v1/history"
        answers = {
            "unknown table": get(f"{base}/nosuch/1"),
            "bad key": get(f"{base}/parcels/abc"),
            "wrong shape": get(f"{base}/parcels/{urllib.parse.quote('[1,2]')}"),
            "bad time": get(f"{base}/parcels/{PROP}?since=soon"),
            "no key": get(f"{base}/parcels/"),
        }
    statuses = {what: a.status for what, a in answers.items()}
    assert statuses == {"unknown table": 404, "bad key": 400, "wrong shape": 400,
                        "bad time": 400, "no key": 404}
    assert "since" in answers["bad time"].json["error"]
    assert answers["bad key"].json["code"] == "invalid_argument"
    assert "prop_id" in answers["bad key"].json["error"]


def test_parse_key_types_the_key_by_its_columns(edited):
    env, _, _ = edited
    cfg = env.load()
    assert api.parse_key(cfg, "parcels", "100004") == (100004,)
    assert api.parse_key(cfg, "parcels", " [100004] ") == (100004,)
    with pytest.raises(InvalidArgument, match="prop_id"):
        api.parse_key(cfg, "parcels", "100004.5")
    with pytest.raises(UnknownTable, match="not synced"):
        api.parse_key(cfg, "parcel", "1")


# --- restoring a version ------------------------------------------------------------------


def _entries(agent: AgentEnv, prop: int = PROP) -> list[dict]:
    return history(agent, "parcels", str(prop))["entries"]


def test_restore_makes_the_local_row_that_version_as_a_pending_edit_which_the_next_sync_pushes(
        county):
    first_geometry = central_wkb(county)
    central_as_app(county, "UPDATE parcels SET owner_name = 'V1' WHERE prop_id = %s", (PROP,))
    central_as_app(county, "UPDATE parcels SET owner_name = 'V2', "
                           "geom = ST_Translate(geom, 30, 0) WHERE prop_id = %s", (PROP,))
    county.run("sync")
    assert owner(county, "local") == "V2" and local_wkb(county) != first_geometry
    v1 = _entries(county)[1]
    cfg = county.load()

    done = api.restore_version(cfg, "parcels", PROP, v1["id"])

    assert done == {"table": "parcels", "key": [PROP], "entry_id": v1["id"], "op": "update",
                    "columns": ["owner_name", "geom"]}
    assert owner(county, "local") == "V1" and local_wkb(county) == first_geometry
    # an edit as QGIS makes one: pending, until the next sync pushes it
    assert [(e["table"], e["key"], e["op"]) for e in api.pending_edits(cfg)] == [
        ("parcels", [PROP], "update")]
    summary = json.loads(county.run("sync").stdout)
    assert (summary["pushed"], summary["conflicts"]) == (1, 0)
    assert owner(county) == "V1" and central_wkb(county) == first_geometry
    assert api.pending_edits(cfg) == []
    # central recorded the push as this agent's change
    newest = _entries(county)[0]
    assert newest["agent"]["id"] == agent_id(county)
    assert newest["old"]["owner_name"] == "V2" and newest["new"]["owner_name"] == "V1"
    assert set(newest["columns"]) == {"owner_name", "geom"}


def test_restore_when_central_changed_the_same_column_meanwhile_is_a_conflict(county):
    central_as_app(county, "UPDATE parcels SET owner_name = 'V1' WHERE prop_id = %s", (PROP,))
    central_as_app(county, "UPDATE parcels SET owner_name = 'V2' WHERE prop_id = %s", (PROP,))
    county.run("sync")
    v1 = _entries(county)[1]
    api.restore_version(county.load(), "parcels", PROP, v1["id"])
    central_as_app(county, "UPDATE parcels SET owner_name = 'V3' WHERE prop_id = %s", (PROP,))

    summary = json.loads(county.run("sync").stdout)

    assert summary["conflicts"] == 1 and summary["pushed"] == 0
    assert owner(county) == "V3"
    [conflict] = json.loads(county.run("conflicts", "list").stdout)
    assert conflict["pk"] == [PROP] and conflict["columns"] == ["owner_name"]
    assert (conflict["local"]["owner_name"], conflict["central"]["owner_name"]) == \
        ("V1", "V3")


def test_a_feature_deleted_since_comes_back_and_returns_to_central(county):
    prop = central_exec(county, "SELECT min(prop_id) FROM parcels p WHERE NOT EXISTS "
                                "(SELECT 1 FROM sales s WHERE s.prop_id = p.prop_id)")[0][0]
    central_as_app(county, "UPDATE parcels SET owner_name = 'LAST' WHERE prop_id = %s",
                   (prop,))
    geometry = central_wkb(county, prop)
    central_as_app(county, "DELETE FROM parcels WHERE prop_id = %s", (prop,))
    county.run("sync")
    assert owner(county, "local", prop) is None
    deleted, last = _entries(county, prop)
    assert (deleted["op"], last["op"]) == ("delete", "update")
    cfg = county.load()

    done = api.restore_version(cfg, "parcels", prop, last["id"])

    assert done["op"] == "insert"
    assert owner(county, "local", prop) == "LAST" and local_wkb(county, prop) == geometry
    assert [(e["key"], e["op"]) for e in api.pending_edits(cfg)] == [([prop], "insert")]
    assert json.loads(county.run("sync").stdout)["pushed"] == 1
    assert owner(county, "central", prop) == "LAST" and central_wkb(county, prop) == geometry
    assert _entries(county, prop)[0]["op"] == "insert"


def test_restoring_the_version_of_a_delete_is_refused_naming_what_to_do(county):
    prop = central_exec(county, "SELECT min(prop_id) FROM parcels p WHERE NOT EXISTS "
                                "(SELECT 1 FROM sales s WHERE s.prop_id = p.prop_id)")[0][0]
    central_as_app(county, "DELETE FROM parcels WHERE prop_id = %s", (prop,))
    county.run("sync")
    [deleted] = _entries(county, prop)
    cfg = county.load()

    with pytest.raises(BadRequest, match="restore the version before it") as refused:
        api.restore_version(cfg, "parcels", prop, deleted["id"])

    assert str(deleted["id"]) in str(refused.value)
    assert owner(county, "local", prop) is None and api.pending_edits(cfg) == []


def test_restoring_the_version_it_already_is_changes_nothing(county):
    central_as_app(county, "UPDATE parcels SET owner_name = 'V1' WHERE prop_id = %s", (PROP,))
    county.run("sync")
    [v1] = _entries(county)
    cfg = county.load()

    done = api.restore_version(cfg, "parcels", PROP, v1["id"])

    assert (done["op"], done["columns"]) == (None, [])
    assert api.pending_edits(cfg) == []


def test_an_entry_of_another_feature_or_table_is_not_restored(county):
    central_as_app(county, "UPDATE parcels SET owner_name = 'V1' WHERE prop_id = %s", (PROP,))
    county.run("sync")
    [v1] = _entries(county)
    cfg = county.load()

    with pytest.raises(NotFound):
        api.restore_version(cfg, "parcels", PROP + 1, v1["id"])
    with pytest.raises(UnknownTable, match="not synced"):
        api.restore_version(cfg, "parcel", PROP, v1["id"])
    with pytest.raises(InvalidArgument, match="whole number"):
        api.restore_version(cfg, "parcels", PROP, 0)
    assert owner(county, "local", PROP + 1) == owner(county, "central", PROP + 1)
    assert api.pending_edits(cfg) == []


# --- a key of two columns and exact decimals ----------------------------------------------


@pytest.fixture
def pairs(pg_agent) -> AgentEnv:
    """A synced table keyed by two columns (in another order than its columns') with a
    numeric that holds more digits than a double."""
    central_exec(pg_agent, "CREATE TABLE pairs (a integer, b text, amount numeric(20,6), "
                           "note text, PRIMARY KEY (b, a))")
    central_exec(pg_agent, "INSERT INTO pairs VALUES (1, 'x', 1.5, 'first')")
    config = Path(pg_agent.config)
    config.write_text(config.read_text() + '[sync]\ntables = ["pairs"]\n', encoding="utf-8")
    pg_agent.run("init-central")
    pg_agent.run("sync")
    return pg_agent


def test_a_key_of_two_columns_is_a_json_array_and_exact_digits_are_restored(pairs):
    exact = Decimal("12345678901234.123456")
    central_as_app(pairs, "UPDATE pairs SET amount = %s WHERE b = 'x' AND a = 1", (exact,))
    central_as_app(pairs, "UPDATE pairs SET amount = 2, note = 'second' "
                          "WHERE b = 'x' AND a = 1")
    pairs.run("sync")
    body = history(pairs, "pairs", '["x", 1]')
    assert body["key"] == ["x", 1]
    newest, with_digits = body["entries"][:2]
    assert set(newest["columns"]) == {"amount", "note"} and newest["new"]["note"] == "second"
    proc = pairs.run("history", "pairs", "1", check=False)
    assert proc.returncode == 2 and "JSON array of 2 values" in proc.stderr

    done = api.restore_version(pairs.load(), "pairs", ["x", 1], with_digits["id"])

    assert (done["key"], done["op"], done["columns"]) == (["x", 1], "update",
                                                          ["amount", "note"])
    with LocalStore.open_existing(pairs.local_path) as local:
        info = local.table_info("pairs")
        row = local.rows_by_key(info, [("x", 1)])[("x", 1)]
    assert row["amount"] == exact
    pairs.run("sync")
    assert central_exec(pairs, "SELECT amount FROM pairs WHERE b = 'x' AND a = 1") == \
        [(exact,)]


def test_http_takes_a_url_encoded_key_of_two_columns_with_a_slash_and_accents(pairs):
    central_exec(pairs, "INSERT INTO pairs VALUES (2, 'lot 7/B ñ', 3, 'new')")
    central_as_app(pairs, "UPDATE pairs SET note = 'seen' WHERE a = 2")
    key = urllib.parse.quote(json.dumps(["lot 7/B ñ", 2], ensure_ascii=False), safe="")
    with started_agent(pairs, sync=idle_schedule) as agent:
        r = get(f"{agent.base_url}/api/v1/history/pairs/{key}")
    assert r.status == 200, r
    assert r.json["key"] == ["lot 7/B ñ", 2]
    assert [(e["op"], e["new"]["note"]) for e in r.json["entries"]] == [
        ("update", "seen"), ("insert", "new")]
