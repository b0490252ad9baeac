"""Pending local edits (``terrafusion-agent pending``) on a PostGIS central: each edit
listed with the base and local value of every column it changes; a discard puts the row
back exactly as it was last synced (geometry by WKB, decimals by digit), drops the edit
and sends nothing to central, and the next sync leaves both sides equal; an edit in
conflict is refused; keys are typed by their columns.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from conftest import AgentEnv, central_exec, local_exec
from osgeo import ogr
from terrafusion_agent import api
from terrafusion_agent.stores.local import LocalStore

ogr.UseExceptions()

TABLES = ["parcels", "districts", "sales", "appraisals", "owners"]
#: an exact decimal a double does not hold, and a vertex no six-decimal WKT shows
EXACT = Decimal("123456789012.123456")
SHAPE = ("MULTIPOLYGON(((1072000.123456789 100.5, 1072010 100.5, 1072010 110.25, "
         "1072000.123456789 100.5)))")


@pytest.fixture
def county(pg_agent) -> AgentEnv:
    """A synced demo county on PostGIS, with a table of exact decimals and one with a key
    of two columns."""
    central_exec(pg_agent, "CREATE TABLE appraisals (id integer PRIMARY KEY, "
                           "value numeric(18,6), note text, geom geometry(MultiPolygon, 2927))")
    central_exec(pg_agent, "INSERT INTO appraisals VALUES "
                           "(1, %s, 'first', ST_GeomFromText(%s, 2927)), "
                           "(2, 0.000001, 'second', NULL)", (EXACT, SHAPE))
    central_exec(pg_agent, "CREATE TABLE owners (prop_id bigint, seq integer, name text, "
                           "PRIMARY KEY (prop_id, seq))")
    central_exec(pg_agent, "INSERT INTO owners VALUES (100001, 1, 'ANN'), (100001, 2, 'BOB')")
    with pg_agent.config.open("a", encoding="utf-8") as f:
        f.write(f"[sync]\ntables = {json.dumps(TABLES)}\n")
    pg_agent.run("init-central", "--demo-parcels", "60")
    pg_agent.run("sync")
    return pg_agent


def _pending(agent: AgentEnv) -> list[dict]:
    return json.loads(agent.run("pending", "list").stdout)["edits"]


def _row(agent: AgentEnv, table: str, *key) -> dict | None:
    """The local row as the agent reads it: geometry as WKB, exact decimals as Decimal."""
    with LocalStore.open(agent.local_path) as local:
        return local.rows_by_key(local.table_info(table), [key]).get(key)


def _central_state(agent: AgentEnv) -> list:
    """Every synced table's content and the change log's length: any write to central,
    by the agent or a trigger, changes it."""
    state = [central_exec(agent, f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' "  # noqa: S608
                                 f"ORDER BY t::text), '')) FROM {table} t")
             for table in TABLES]
    return state + [central_exec(agent, "SELECT count(*), max(seq) FROM tf_change_log")]


def _wkb(wkt: str) -> bytes:
    return bytes(ogr.CreateGeometryFromWkt(wkt).ExportToIsoWkb(ogr.wkbNDR))


def _changes(edit: dict) -> dict[str, tuple]:
    return {c["column"]: (c["base"], c["local"]) for c in edit["changes"]}


def _one_sentence(proc, code: int, *fragments: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr


# --- listing --------------------------------------------------------------------------------


def test_pending_list_shows_base_and_local_value_of_each_changed_column(county):
    central_owner = central_exec(county, "SELECT owner_name, ST_AsBinary(geom) FROM parcels "
                                         "WHERE prop_id = 100002")[0]
    local_exec(county, "UPDATE parcels SET owner_name = 'NEW OWNER', "
                       "geom = ST_Translate(geom, 0.5, 0, 0) WHERE prop_id = 100002")
    local_exec(county, "DELETE FROM owners WHERE prop_id = 100001 AND seq = 2")
    local_exec(county, "UPDATE appraisals SET value = 98765432109.87654, note = 'checked' "
                       "WHERE id = 1")
    local_exec(county, "INSERT INTO sales (prop_id, sale_date, sale_price) "
                       "VALUES (100002, '2026-05-01', 250000)")

    parcel, owner, appraisal, sale = _pending(county)

    assert (parcel["table"], parcel["key"], parcel["op"], parcel["state"]) == (
        "parcels", [100002], "update", "pending")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", parcel["changed_at"])
    changes = _changes(parcel)
    assert list(changes) == ["owner_name", "geom"]  # only what changed, in column order
    assert changes["owner_name"] == (central_owner[0], "NEW OWNER")
    base_wkt, local_wkt = changes["geom"]
    assert _wkb(base_wkt) == bytes(central_owner[1])  # WKT, every digit of the vertices
    assert _wkb(local_wkt) == _row(county, "parcels", 100002)["geom"]
    # a delete shows every value as last synced, nothing locally
    assert (owner["op"], owner["key"]) == ("delete", [100001, 2])
    assert _changes(owner) == {"prop_id": (100001, None), "seq": (2, None),
                               "name": ("BOB", None)}
    # an exact decimal keeps its digits; the untouched geometry is not listed
    assert _changes(appraisal) == {"value": (str(EXACT), 98765432109.87654),
                                   "note": ("first", "checked")}
    # an insert shows every local value, its key the permanent one it was given
    assert sale["op"] == "insert" and sale["key"][0] == _changes(sale)["sale_id"][1]
    assert _changes(sale) == {"sale_id": (None, sale["key"][0]), "prop_id": (None, 100002),
                              "sale_date": (None, "2026-05-01"),
                              "sale_price": (None, 250000.0)}
    # the API gives the same, and the old keys stay for its earlier callers
    listed = api.pending_edits(county.load())
    assert listed == [parcel, owner, appraisal, sale]
    assert {"id", "version"} <= set(listed[0])
    located = api.pending_edits(county.load(), limit=1, with_geometry=True)
    assert _wkb(located[0]["geometry"]) == _row(county, "parcels", 100002)["geom"]


# --- discarding -----------------------------------------------------------------------------


def test_discard_restores_each_row_exactly_and_nothing_reaches_central(county):
    before = {("appraisals", 1): _row(county, "appraisals", 1),
              ("parcels", 100003): _row(county, "parcels", 100003)}
    assert before[("appraisals", 1)]["value"] == EXACT
    central_before = _central_state(county)
    # the shape moves by a ten-millionth of a foot: only an exact restore puts it back
    local_exec(county, "UPDATE appraisals SET value = 98765432109.87654, "
                       "geom = ST_Translate(geom, 0.0000001, 0, 0) WHERE id = 1")
    local_exec(county, "DELETE FROM parcels WHERE prop_id = 100003")
    local_exec(county, "INSERT INTO parcels (geo_id, owner_name, geom) "
                       "SELECT 'OFFLINE-1', 'NEW', geom FROM parcels WHERE prop_id = 100004")
    [new_key] = [e["key"][0] for e in _pending(county) if e["op"] == "insert"]

    for table, key, op in (("appraisals", 1, "update"), ("parcels", 100003, "delete"),
                           ("parcels", new_key, "insert")):
        done = json.loads(county.run("pending", "discard", table, str(key)).stdout)
        assert [(d["table"], d["key"], d["op"]) for d in done["discarded"]] == [
            (table, [key], op)]
        assert done["via"] == "here"

    assert _row(county, "appraisals", 1) == before[("appraisals", 1)]
    assert _row(county, "parcels", 100003) == before[("parcels", 100003)]
    assert _row(county, "parcels", new_key) is None
    assert _pending(county) == []
    assert _central_state(county) == central_before
    summary = json.loads(county.run("sync").stdout)
    assert summary["pushed"] == 0 and summary["conflicts"] == 0
    assert _central_state(county) == central_before
    assert county.run("verify", check=False).returncode == 0
    assert _row(county, "appraisals", 1)["value"] == EXACT


def test_a_row_edited_again_after_listing_is_discarded_as_it_is_now(county):
    before = _row(county, "parcels", 100009)
    local_exec(county, "UPDATE parcels SET owner_name = 'FIRST' WHERE prop_id = 100009")
    [listed] = api.pending_edits(county.load())
    assert [c["column"] for c in listed["changes"]] == ["owner_name"]
    local_exec(county, "UPDATE parcels SET land_value = 7 WHERE prop_id = 100009")

    done = api.discard_pending(county.load(), [("parcels", (100009,))])

    [discarded] = done["discarded"]
    assert [c["column"] for c in discarded["changes"]] == ["owner_name", "land_value"]
    assert discarded["version"] == listed["version"] + 1
    assert _row(county, "parcels", 100009) == before
    assert api.pending_edits(county.load()) == []


def test_discarding_a_refused_edit_settles_it_and_the_next_sync_brings_centrals_row(county):
    original = _row(county, "parcels", 100005)
    local_exec(county, "UPDATE parcels SET geo_id = 'TAKEN' WHERE prop_id = 100005")
    central_exec(county, "UPDATE parcels SET geo_id = 'TAKEN' WHERE prop_id = 100006")
    assert json.loads(county.run("sync").stdout)["rejected"] == 1
    # central moves the refused row on; pulls leave a row with a waiting edit alone
    central_exec(county, "UPDATE parcels SET owner_name = 'MOVED ON' WHERE prop_id = 100005")
    county.run("sync")
    assert _row(county, "parcels", 100005)["owner_name"] == original["owner_name"]
    [refused] = _pending(county)
    assert refused["state"] == "rejected" and "geo_id" in refused["message"]

    done = json.loads(county.run("pending", "discard", "parcels", "100005").stdout)

    assert done["discarded"][0]["state"] == "rejected"
    assert _row(county, "parcels", 100005) == original  # as last synced, at once
    [settled] = [c for c in json.loads(county.run("conflicts", "list", "--all").stdout)
                 if c["id"] == refused["conflict_id"]]
    assert settled["resolution"] == "discarded" and settled["resolved_at"]
    assert json.loads(county.run("conflicts", "list").stdout) == []
    summary = json.loads(county.run("sync").stdout)
    assert summary["pushed"] == 0 and summary["rejected"] == 0
    assert _row(county, "parcels", 100005)["owner_name"] == "MOVED ON"
    assert central_exec(county, "SELECT geo_id FROM parcels WHERE prop_id = 100005") == [
        (original["geo_id"],)]
    assert county.run("verify", check=False).returncode == 0


def test_an_edit_in_conflict_is_refused_and_discard_all_leaves_it(county):
    local_exec(county, "UPDATE parcels SET land_value = 1 WHERE prop_id = 100007")
    central_exec(county, "UPDATE parcels SET land_value = 2 WHERE prop_id = 100007")
    county.run("sync")
    [conflict] = json.loads(county.run("conflicts", "list").stdout)
    local_exec(county, "UPDATE parcels SET owner_name = 'TAKE BACK' WHERE prop_id = 100008")
    local_exec(county, "UPDATE owners SET name = 'TAKE BACK' WHERE prop_id = 100001")
    waiting, *others = _pending(county)
    assert waiting["state"] == "conflict" and waiting["conflict_id"] == conflict["id"]
    assert [e["state"] for e in others] == ["pending"] * 3

    refused = county.run("pending", "discard", "parcels", "100007", check=False)

    _one_sentence(refused, 1, f"conflicts resolve {conflict['id']} --keep central")
    assert local_exec(county, "SELECT land_value FROM parcels WHERE prop_id = 100007") == [
        (1.0,)]
    everything = county.run("pending", "discard", "--all")
    done = json.loads(everything.stdout)
    assert sorted(d["key"] for d in done["discarded"]) == [[100001, 1], [100001, 2],
                                                           [100008]]
    assert done["conflicts_left"] == 1
    assert "1 edit(s) waiting in a conflict were left" in everything.stderr
    assert [e["key"] for e in _pending(county)] == [[100007]]
    assert [c["id"] for c in json.loads(county.run("conflicts", "list").stdout)] == [
        conflict["id"]]


def test_keys_are_typed_as_their_columns_and_a_bad_one_is_one_sentence(county):
    local_exec(county, "UPDATE owners SET name = 'CHANGED' WHERE prop_id = 100001")
    local_exec(county, "UPDATE parcels SET owner_name = 'CHANGED' WHERE prop_id = 100010")

    for args in (["parcels", "abc"], ["parcels", "[100010, 1]"], ["owners", "100001"],
                 ["owners", "[100001, 1.5]"], ["owners", "[100001"], ["parcels"],
                 ["parcels", "100010", "--all"]):
        proc = county.run("pending", "discard", *args, check=False)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and proc.stdout == ""
    _one_sentence(county.run("pending", "discard", "parcels", "100011", check=False), 1,
                  "no pending edit of parcels 100011")
    _one_sentence(county.run("pending", "discard", "nosuch", "1", check=False), 1, "nosuch")

    # a key of one column as typed; of two, as a JSON array, its values typed as well
    for args, key in ((["parcels", " 100010"], [100010]),
                      (["owners", "[100001, 1]"], [100001, 1]),
                      (["owners", '["100001", "2"]'], [100001, 2])):
        done = json.loads(county.run("pending", "discard", *args).stdout)
        assert [d["key"] for d in done["discarded"]] == [key]
    assert _pending(county) == []
    assert local_exec(county, "SELECT name FROM owners ORDER BY seq") == [("ANN",), ("BOB",)]
