"""Resolving a conflict column by column (``conflicts resolve ID --merge JSON``) on a real
PostGIS central: each column local, central or a value typed in; central ends exactly as
chosen, a central change made after detection is a new conflict and never overwritten,
and a merge that cannot be made is one sentence that changes nothing.
"""

from __future__ import annotations

import json
import uuid

import pytest
from conftest import AgentEnv, central_exec, local_exec, synced_copy, write_config

#: the columns of parcels besides its key, each with a trigger noting that a push sent it
PARCEL_COLUMNS = ("geo_id", "situs_address", "owner_name", "legal_desc", "acres",
                  "land_value", "impr_value", "market_value", "tax_area_code",
                  "property_use_code", "year_built", "geom")
LOCAL_ROW = ("SELECT owner_name, land_value, situs_address, legal_desc, acres, year_built "
             "FROM parcels WHERE prop_id = ?")
CENTRAL_ROW = ("SELECT owner_name, land_value::float8, situs_address, legal_desc, "
               "acres::float8, year_built FROM parcels WHERE prop_id = %s")


def sync(agent: AgentEnv) -> dict:
    return json.loads(agent.run("sync").stdout)


def open_conflicts(agent: AgentEnv) -> list[dict]:
    return json.loads(agent.run("conflicts", "list").stdout)


def resolve(agent: AgentEnv, conflict_id: int, merge, check: bool = True):
    text = merge if isinstance(merge, str) else json.dumps(merge)
    return agent.run("conflicts", "resolve", str(conflict_id), "--merge", text, check=check)


def central_row(agent: AgentEnv, pid: int) -> tuple:
    [row] = central_exec(agent, CENTRAL_ROW, (pid,))
    return row


def local_row(agent: AgentEnv, pid: int) -> tuple:
    [row] = local_exec(agent, LOCAL_ROW, (pid,))
    return row


def central_geometry(agent: AgentEnv, pid: int) -> bytes:
    return bytes(central_exec(agent, "SELECT ST_AsBinary(geom) FROM parcels WHERE prop_id = %s",
                              (pid,))[0][0])


def local_geometry(agent: AgentEnv, pid: int) -> bytes:
    return bytes(local_exec(agent, "SELECT AsBinary(geom) FROM parcels WHERE prop_id = ?",
                            (pid,))[0][0])


def note_sent_columns(agent: AgentEnv) -> None:
    """From now on, every UPDATE of parcels notes each column its SET list names (a
    column the push sends, whether or not its value changes)."""
    central_exec(agent, "CREATE TABLE sent_columns (col text)")
    central_exec(agent, "CREATE FUNCTION note_sent() RETURNS trigger LANGUAGE plpgsql AS $$ "
                        "BEGIN INSERT INTO sent_columns VALUES (TG_ARGV[0]); RETURN NULL; "
                        "END $$")
    for col in PARCEL_COLUMNS:
        central_exec(agent, f"CREATE TRIGGER sent_{col} AFTER UPDATE OF {col} ON parcels "
                            f"FOR EACH ROW EXECUTE FUNCTION note_sent('{col}')")


def sent_columns(agent: AgentEnv) -> set[str]:
    return {r[0] for r in central_exec(agent, "SELECT col FROM sent_columns")}


@pytest.fixture
def synced(request, tmp_path):
    return synced_copy(request, tmp_path, "postgis", 60)


def test_a_per_column_merge_reaches_central_exactly_as_chosen(synced):
    pid = 100007
    # both sides change the same four columns, geometry included; each side also changes
    # a column of its own
    local_exec(synced, "UPDATE parcels SET owner_name = 'LOCAL OWNER', land_value = 1, "
                       "situs_address = 'LOCAL ADDRESS', legal_desc = 'MY LEGAL', "
                       "geom = ST_Translate(geom, 5, 0, 0) WHERE prop_id = ?", (pid,))
    central_exec(synced, "UPDATE parcels SET owner_name = 'CENTRAL OWNER', land_value = 2, "
                         "situs_address = 'CENTRAL ADDRESS', acres = 7, "
                         "geom = ST_Translate(geom, 0, 9) WHERE prop_id = %s", (pid,))
    assert sync(synced)["conflicts"] == 1
    [c] = open_conflicts(synced)
    assert c["columns"] == ["geom", "land_value", "owner_name", "situs_address"]
    theirs = central_geometry(synced, pid)

    resolve(synced, c["id"], {"owner_name": "central", "land_value": 123000,
                              "situs_address": "local", "geom": "central",
                              "year_built": 1999})

    # the local copy shows the choice at once, with the analyst's other edit kept
    assert local_row(synced, pid)[:4] == ("CENTRAL OWNER", 123000.0, "LOCAL ADDRESS",
                                          "MY LEGAL")
    assert local_row(synced, pid)[5] == 1999
    assert local_geometry(synced, pid) == theirs
    [resolved] = json.loads(synced.run("conflicts", "list", "--all").stdout)
    assert resolved["resolution"] == "merge" and resolved["resolved_at"]
    note_sent_columns(synced)
    summary = sync(synced)
    assert summary["conflicts"] == 0 and summary["rows"]["push"]["update"] == 1
    # exactly the columns whose choice differs from central's row at detection
    assert sent_columns(synced) == {"land_value", "situs_address", "legal_desc",
                                    "year_built"}
    expected = ("CENTRAL OWNER", 123000.0, "LOCAL ADDRESS", "MY LEGAL", 7.0, 1999)
    assert central_row(synced, pid) == expected
    assert central_geometry(synced, pid) == theirs
    sync(synced)
    assert local_row(synced, pid) == expected
    assert local_geometry(synced, pid) == theirs
    assert open_conflicts(synced) == []
    assert synced.run("verify").returncode == 0


def test_the_geometry_and_a_typed_text_can_come_from_the_local_side(synced):
    pid = 100009
    local_exec(synced, "UPDATE parcels SET owner_name = 'LOCAL OWNER', "
                       "geom = ST_Translate(geom, 5, 0, 0) WHERE prop_id = ?", (pid,))
    central_exec(synced, "UPDATE parcels SET owner_name = 'CENTRAL OWNER', "
                         "geom = ST_Translate(geom, 0, 9) WHERE prop_id = %s", (pid,))
    sync(synced)
    mine = local_geometry(synced, pid)
    [c] = open_conflicts(synced)
    # a text that reads as a side is typed as {"value": ...}
    resolve(synced, c["id"], {"owner_name": {"value": "central"}, "geom": "local"})
    sync(synced)
    assert central_row(synced, pid)[0] == "central"
    assert central_geometry(synced, pid) == mine
    sync(synced)
    assert synced.run("verify").returncode == 0


def test_a_central_change_to_a_chosen_column_after_detection_is_a_new_conflict(synced):
    pid = 100011
    local_exec(synced, "UPDATE parcels SET owner_name = 'MINE', land_value = 1 "
                       "WHERE prop_id = ?", (pid,))
    central_exec(synced, "UPDATE parcels SET owner_name = 'THEIRS', land_value = 2 "
                         "WHERE prop_id = %s", (pid,))
    sync(synced)
    [first] = open_conflicts(synced)
    resolve(synced, first["id"], {"owner_name": "local", "land_value": 5})
    # after detection somebody changes a column the merge chose a value for
    central_exec(synced, "UPDATE parcels SET land_value = 777 WHERE prop_id = %s", (pid,))

    summary = sync(synced)

    assert summary["conflicts"] == 1 and summary["rows"]["push"]["update"] == 0
    assert central_row(synced, pid)[:2] == ("THEIRS", 777.0)  # nothing overwritten
    [second] = open_conflicts(synced)
    assert second["id"] != first["id"] and second["columns"] == ["land_value"]
    assert (second["local"]["land_value"], second["central"]["land_value"]) == (5.0, 777.0)
    assert second["local"]["owner_name"] == "MINE"


def test_a_central_change_to_a_column_chosen_central_is_simply_pulled(synced):
    pid = 100012
    local_exec(synced, "UPDATE parcels SET owner_name = 'MINE', land_value = 1 "
                       "WHERE prop_id = ?", (pid,))
    central_exec(synced, "UPDATE parcels SET owner_name = 'THEIRS', land_value = 2 "
                         "WHERE prop_id = %s", (pid,))
    sync(synced)
    [c] = open_conflicts(synced)
    resolve(synced, c["id"], {"owner_name": "local", "land_value": "central"})
    central_exec(synced, "UPDATE parcels SET land_value = 3 WHERE prop_id = %s", (pid,))

    summary = sync(synced)

    assert summary["conflicts"] == 0
    assert central_row(synced, pid)[:2] == ("MINE", 3.0)
    sync(synced)
    assert local_row(synced, pid)[:2] == ("MINE", 3.0)
    assert synced.run("verify").returncode == 0


def test_a_merge_equal_to_central_leaves_nothing_to_push(synced):
    pid = 100013
    local_exec(synced, "UPDATE parcels SET owner_name = 'MINE' WHERE prop_id = ?", (pid,))
    central_exec(synced, "UPDATE parcels SET owner_name = 'THEIRS' WHERE prop_id = %s", (pid,))
    sync(synced)
    [c] = open_conflicts(synced)
    resolve(synced, c["id"], {"owner_name": {"value": "THEIRS"}})
    assert local_exec(synced, "SELECT op, state FROM tf_local_changes") == [
        ("refetch", "refetch")]
    central_exec(synced, "UPDATE parcels SET owner_name = 'THEIRS AGAIN' "
                         "WHERE prop_id = %s", (pid,))

    summary = sync(synced)

    assert summary["pushed"] == 0 and summary["conflicts"] == 0
    assert local_row(synced, pid)[0] == "THEIRS AGAIN"
    assert synced.run("verify").returncode == 0


# --- merges that cannot be made -----------------------------------------------------------


@pytest.fixture(scope="module")
def conflicted(pg_cluster, tmp_path_factory):
    """One open conflict (owner_name and land_value of parcel 100004), a row deleted
    locally against a central update (100005), and a row central refused (100006)."""
    name = f"tf_merge_{uuid.uuid4().hex[:8]}"
    url = pg_cluster.create_db(name)
    directory = tmp_path_factory.mktemp("merge")
    agent = AgentEnv(directory, write_config(directory, url), url)
    agent.run("init-central", "--demo-parcels", "40")
    sync(agent)
    local_exec(agent, "UPDATE parcels SET owner_name = 'MINE', land_value = 1 "
                      "WHERE prop_id = 100004")
    central_exec(agent, "UPDATE parcels SET owner_name = 'THEIRS', land_value = 2 "
                        "WHERE prop_id = 100004")
    local_exec(agent, "DELETE FROM parcels WHERE prop_id = 100005")
    central_exec(agent, "UPDATE parcels SET owner_name = 'THEIRS' WHERE prop_id = 100005")
    local_exec(agent, "UPDATE parcels SET geo_id = 'TAKEN' WHERE prop_id = 100006")
    central_exec(agent, "UPDATE parcels SET geo_id = 'TAKEN' WHERE prop_id = 100007")
    summary = sync(agent)
    assert (summary["conflicts"], summary["rejected"]) == (2, 1)
    ids = {c["pk"][0]: c["id"] for c in open_conflicts(agent)}
    yield agent, ids
    pg_cluster.drop_db(name)


def _state(agent: AgentEnv) -> tuple:
    """Everything a resolution could change, on both sides."""
    return (local_exec(agent, "SELECT prop_id, geo_id, owner_name, land_value, year_built, "
                              "AsBinary(geom) FROM parcels WHERE prop_id IN "
                              "(100004, 100005, 100006) ORDER BY prop_id"),
            local_exec(agent, "SELECT * FROM tf_local_changes ORDER BY id"),
            local_exec(agent, "SELECT * FROM tf_conflicts ORDER BY id"),
            central_exec(agent, "SELECT prop_id, geo_id, owner_name, land_value::text, "
                                "year_built, ST_AsBinary(geom) FROM parcels "
                                "ORDER BY prop_id"))


BOTH = {"owner_name": "local", "land_value": "central"}


@pytest.mark.parametrize(("which", "arguments", "culprit"), [
    (100004, ["--merge", json.dumps({**BOTH, "ownr_name": "local"})], "ownr_name"),
    (100004, ["--merge", json.dumps({**BOTH, "prop_id": 5})], "prop_id is the key"),
    (100004, ["--merge", json.dumps({"owner_name": "local"})], "leaves out land_value"),
    (100004, ["--merge", json.dumps({**BOTH, "year_built": "abc"})],
     "year_built of table parcels takes a whole number, not the text 'abc'"),
    (100004, ["--merge", json.dumps({**BOTH, "year_built": 2**40})], "year_built"),
    (100004, ["--merge", json.dumps({**BOTH, "land_value": 1e13})],
     "land_value of table parcels (numeric(14,2)) cannot hold"),
    (100004, ["--merge", json.dumps({**BOTH, "owner_name": 12})], "owner_name"),
    (100004, ["--merge", json.dumps({**BOTH, "geom": "POLYGON(("})],
     "'POLYGON((' is not WKT"),
    (100004, ["--merge", json.dumps({**BOTH, "geom": "POINT(1 2)"})],
     "geom of table parcels takes a MULTIPOLYGON, not a POINT"),
    (100004, ["--merge", json.dumps({**BOTH, "geo_id": None})],
     "geo_id of table parcels cannot be NULL"),
    (100004, ["--merge", json.dumps({**BOTH, "owner_name": {"val": "x"}})], "owner_name"),
    (100004, ["--merge", json.dumps({**BOTH, "owner_name": ["x"]})], "owner_name"),
    (100004, ["--merge", "{owner_name: local}"], "--merge is not valid JSON"),
    (100004, ["--merge", '["owner_name"]'], "--merge must be a JSON object"),
    (100004, ["--merge", json.dumps(BOTH), "--keep", "local"], "--keep or --merge, not both"),
    (100004, [], "needs --keep local|central or --merge"),
    (100005, ["--merge", json.dumps({"owner_name": "central"})],
     "deleted locally, so there are no two rows to merge; keep one side instead "
     "(--keep local|central)"),
    (100006, ["--merge", json.dumps({"geo_id": "central"})], "refused"),
])
def test_a_merge_that_cannot_be_made_is_one_sentence_and_changes_nothing(
        conflicted, which, arguments, culprit):
    agent, ids = conflicted
    before = _state(agent)
    proc = agent.run("conflicts", "resolve", str(ids[which]), *arguments, check=False)
    assert proc.returncode == 2, proc
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in proc.stderr, err
    assert culprit in err, err
    assert proc.stdout == ""
    assert _state(agent) == before
