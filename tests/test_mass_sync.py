"""Revaluation day on a real PostGIS central: thousands of rows edited on both sides at
once go through the set-based push (a temporary table and one statement per step) and
the bulk pull, with exactly the outcomes of the row-by-row path: merges, conflicts,
refused rows set aside alone, pending edits kept through a bulk copy, and nothing lost
when a mass push is killed at its fault points.

Expected rows and conflicts are worked out here from the edits themselves, never by
the code under test.
"""

from __future__ import annotations

import itertools
import json

import pytest
from conftest import AgentEnv, central_exec, local_exec, write_config
from terrafusion_agent.stores import postgis
from terrafusion_agent.sync import pull as pull_module
from terrafusion_agent.sync.engine import run_sync

PARCELS = 3000
K = 100001  # the demo county's first key
ROWS = "SELECT prop_id, geo_id, owner_name, land_value{cast} FROM parcels ORDER BY prop_id"
_names = (f"mass_{i}" for i in itertools.count(1))


@pytest.fixture(scope="module")
def county(pg_cluster, tmp_path_factory):
    """A template database holding a demo county (made once for the module)."""
    d = tmp_path_factory.mktemp("mass_tpl")
    url = pg_cluster.create_db("mass_tpl")
    AgentEnv(d, write_config(d, url), url).run("init-central", "--demo-parcels",
                                               str(PARCELS))
    return pg_cluster


@pytest.fixture
def agent(county, tmp_path) -> AgentEnv:
    """An agent on a fresh copy of the county, synced once."""
    name = next(_names)
    county.psql("postgres", f'CREATE DATABASE "{name}" TEMPLATE mass_tpl')
    env = AgentEnv(tmp_path, write_config(tmp_path, county.url(name)), county.url(name))
    env.run("sync")
    return env


def central_rows(agent: AgentEnv) -> dict[int, tuple]:
    return {r[0]: tuple(r[1:]) for r in central_exec(agent, ROWS.format(cast="::float8"))}


def local_rows(agent: AgentEnv) -> dict[int, tuple]:
    return {r[0]: tuple(r[1:]) for r in local_exec(agent, ROWS.format(cast=""))}


def open_conflicts(agent: AgentEnv) -> list[dict]:
    return json.loads(agent.run("conflicts", "list").stdout)


def between(first: int, count: int) -> range:
    return range(first, first + count)


# the two-way scenario: which rows each side edits
A = between(K, 600)            # central: owner_name
B = between(K + 400, 600)      # local: land_value (200 rows also in A: they merge)
C = between(K + 1000, 100)     # both: owner_name, different values -> conflicts
D = between(K + 1100, 50)      # local delete, central owner_name update -> conflicts
E = between(K + 1150, 50)      # central delete, local land_value update -> conflicts
G = between(K + 1200, 100)     # local delete only
H = between(K + 1300, 50)      # both: owner_name to the same value -> no conflict
NEW = between(900001, 300)     # local inserts


def make_two_way_edits(agent: AgentEnv) -> None:
    def span(r: range) -> tuple[int, int]:
        return r[0], r[-1]

    central_exec(agent, "UPDATE parcels SET owner_name = 'cen-' || prop_id "
                        "WHERE prop_id BETWEEN %s AND %s OR prop_id BETWEEN %s AND %s "
                        "OR prop_id BETWEEN %s AND %s", (*span(A), *span(C), *span(D)))
    central_exec(agent, "DELETE FROM parcels WHERE prop_id BETWEEN %s AND %s", span(E))
    central_exec(agent, "UPDATE parcels SET owner_name = 'same-' || prop_id "
                        "WHERE prop_id BETWEEN %s AND %s", span(H))
    local_exec(agent, "UPDATE parcels SET land_value = land_value + 1000 "
                      "WHERE prop_id BETWEEN ? AND ? OR prop_id BETWEEN ? AND ?",
               (*span(B), *span(E)))
    local_exec(agent, "UPDATE parcels SET owner_name = 'loc-' || prop_id "
                      "WHERE prop_id BETWEEN ? AND ?", span(C))
    local_exec(agent, "UPDATE parcels SET owner_name = 'same-' || prop_id "
                      "WHERE prop_id BETWEEN ? AND ?", span(H))
    local_exec(agent, "DELETE FROM parcels WHERE prop_id BETWEEN ? AND ? "
                      "OR prop_id BETWEEN ? AND ?", (*span(D), *span(G)))
    for pid in NEW:
        local_exec(agent, "INSERT INTO parcels (prop_id, geo_id, owner_name, land_value, "
                          "geom) VALUES (?, ?, ?, ?, CastToMultiPolygon(BuildMbr(?, 0, ?, "
                          "10, 2927)))", (pid, f"NEW-{pid}", f"new-{pid}", pid / 100,
                                          pid, pid + 5))


def expected_two_way(before: dict[int, tuple]) -> tuple[dict, dict]:
    """(central, local) rows after the sync, worked out from the edits."""
    central = dict(before)
    for pid in A:
        geo, _, land = central[pid]
        central[pid] = (geo, f"cen-{pid}", land)
    for pid in B:
        geo, owner, land = central[pid]
        central[pid] = (geo, owner, land + 1000)
    for pid in [*C, *D]:
        geo, _, land = central[pid]
        central[pid] = (geo, f"cen-{pid}", land)
    for pid in H:
        geo, _, land = central[pid]
        central[pid] = (geo, f"same-{pid}", land)
    for pid in [*E, *G]:
        del central[pid]
    for pid in NEW:
        central[pid] = (f"NEW-{pid}", f"new-{pid}", pid / 100)
    local = dict(central)
    for pid in C:  # conflicts leave the local row as the analyst made it
        geo, _, land = central[pid]
        local[pid] = (geo, f"loc-{pid}", land)
    for pid in D:
        del local[pid]
    for pid in E:
        geo, owner, land = before[pid]
        local[pid] = (geo, owner, land + 1000)
    return central, local


@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", ["set-based", "row-by-row"])
def test_mass_two_way_sync_merges_and_conflicts_exactly_as_row_by_row(agent, path,
                                                                      monkeypatch):
    if path == "row-by-row":
        monkeypatch.setattr(postgis, "ROW_BY_ROW", 10**9)
    before = central_rows(agent)
    make_two_way_edits(agent)
    summary = run_sync(agent.load(), trigger="test")
    want_central, want_local = expected_two_way(before)
    assert central_rows(agent) == want_central
    assert local_rows(agent) == want_local
    conflicts = open_conflicts(agent)
    assert sorted(c["pk"][0] for c in conflicts) == [*C, *D, *E]
    assert {c["kind"] for c in conflicts} == {"conflict"}
    assert summary["conflicts"] == len(C) + len(D) + len(E)
    # the rows set to the value central already holds need no write
    assert summary["rows"]["push"] == {"insert": len(NEW), "update": len(B),
                                       "delete": len(G)}
    assert summary["pending"] == 0
    # a second sync has nothing left to do and changes nothing
    again = run_sync(agent.load(), trigger="test")
    assert again["pushed"] == 0 and again["pulled"] == 0
    assert central_rows(agent) == want_central and local_rows(agent) == want_local


@pytest.mark.timeout(600)
def test_bulk_pull_keeps_pending_edits_and_the_push_still_checks_them(agent, monkeypatch):
    # the county is small: make the bulk path's floor fit it
    monkeypatch.setattr(pull_module, "BULK_MIN_CHANGES", 100)
    before = central_rows(agent)
    mine, clash, gone, new = between(K, 50), between(K, 10), K + 50, 900001
    local_exec(agent, "UPDATE parcels SET owner_name = 'loc-' || prop_id "
                      "WHERE prop_id BETWEEN ? AND ?", (mine[0], mine[-1]))
    local_exec(agent, "DELETE FROM parcels WHERE prop_id = ?", (gone,))
    local_exec(agent, "INSERT INTO parcels (prop_id, geo_id, owner_name, land_value, geom) "
                      "VALUES (?, 'NEW-1', 'new', 1, CastToMultiPolygon(BuildMbr(0, 0, 5, 5, "
                      "2927)))", (new,))
    # revaluation day centrally, and a clash on ten of the locally edited rows
    central_exec(agent, "UPDATE parcels SET land_value = land_value + 1")
    central_exec(agent, "UPDATE parcels SET owner_name = 'cen-' || prop_id "
                        "WHERE prop_id BETWEEN %s AND %s", (clash[0], clash[-1]))
    summary = run_sync(agent.load(), trigger="test")
    assert summary["tables"]["parcels"]["mode"] == "bulk"
    central, local = central_rows(agent), local_rows(agent)
    for pid, (geo, owner, land) in before.items():
        if pid == gone:  # a delete against central's update: a conflict
            assert central[pid] == (geo, owner, land + 1) and pid not in local
        elif pid in clash:  # conflicts: each side keeps its own
            assert central[pid] == (geo, f"cen-{pid}", land + 1)
            assert local[pid] == (geo, f"loc-{pid}", land)
        elif pid in mine:  # merged: the local owner and central's new value
            assert central[pid] == local[pid] == (geo, f"loc-{pid}", land + 1)
        else:
            assert central[pid] == local[pid] == (geo, owner, land + 1)
    assert central[new] == local[new] == ("NEW-1", "new", 1.0)
    assert sorted(c["pk"][0] for c in open_conflicts(agent)) == [*clash, gone]


@pytest.mark.timeout(600)
def test_a_revaluation_on_both_sides_is_fetched_not_copied_and_merges(agent, monkeypatch):
    """Central changed every row, and the analyst most of them: a copy would have to
    read back and rewrite every locally edited row, so the changed rows are fetched."""
    monkeypatch.setattr(pull_module, "BULK_MIN_CHANGES", 100)
    before = central_rows(agent)
    local_exec(agent, "UPDATE parcels SET owner_name = 'loc-' || prop_id")
    central_exec(agent, "UPDATE parcels SET land_value = land_value + 1")
    summary = run_sync(agent.load(), trigger="test")
    assert summary["tables"]["parcels"]["mode"] == "incremental"
    assert summary["conflicts"] == 0 and summary["pending"] == 0
    want = {pid: (geo, f"loc-{pid}", land + 1) for pid, (geo, _, land) in before.items()}
    assert central_rows(agent) == local_rows(agent) == want


@pytest.mark.timeout(600)
def test_a_refused_row_inside_a_mass_push_is_rejected_alone(agent):
    central_exec(agent, "ALTER TABLE parcels ADD CONSTRAINT land_not_negative "
                        "CHECK (land_value >= 0)")
    before = central_rows(agent)
    edited, bad = between(K, 500), K + 250
    local_exec(agent, "UPDATE parcels SET land_value = land_value + 1 "
                      "WHERE prop_id BETWEEN ? AND ?", (edited[0], edited[-1]))
    local_exec(agent, "UPDATE parcels SET land_value = -5 WHERE prop_id = ?", (bad,))
    taken = before[K + 2000][0]  # a geo_id already used: the unique key refuses it
    for pid in NEW[:100]:
        geo = taken if pid == NEW[50] else f"NEW-{pid}"
        local_exec(agent, "INSERT INTO parcels (prop_id, geo_id, owner_name, geom) "
                          "VALUES (?, ?, 'new', CastToMultiPolygon(BuildMbr(0, 0, 5, 5, "
                          "2927)))", (pid, geo))
    summary = run_sync(agent.load(), trigger="test")
    assert summary["rejected"] == 2
    central = central_rows(agent)
    for pid in edited:
        geo, owner, land = before[pid]
        assert central[pid] == (geo, owner, land if pid == bad else land + 1)
    assert [pid for pid in NEW[:100] if pid in central] == [
        pid for pid in NEW[:100] if pid != NEW[50]]
    rejected = open_conflicts(agent)
    assert sorted(c["pk"][0] for c in rejected) == [bad, NEW[50]]
    assert {c["kind"] for c in rejected} == {"rejected"}
    messages = {c["pk"][0]: c["message"] for c in rejected}
    assert "land_not_negative" in messages[bad]
    assert "geo_id" in messages[NEW[50]] or "parcels_geo_id_key" in messages[NEW[50]]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("point", ["push.before_central_commit", "push.after_central_commit",
                                   "push.before_local_commit"])
def test_a_mass_push_killed_at_its_fault_points_loses_nothing(agent, point):
    before = central_rows(agent)
    mine, theirs = between(K, 1000), between(K + 500, 1000)
    local_exec(agent, "UPDATE parcels SET land_value = land_value + 1 "
                      "WHERE prop_id BETWEEN ? AND ?", (mine[0], mine[-1]))
    central_exec(agent, "UPDATE parcels SET owner_name = 'cen-' || prop_id "
                        "WHERE prop_id BETWEEN %s AND %s", (theirs[0], theirs[-1]))
    proc = agent.run("sync", check=False, env={"TERRAFUSION_FAULT": point})
    assert proc.returncode == -9, proc.stderr  # killed right at the point
    agent.run("sync")
    agent.run("sync")
    want = dict(before)
    for pid in mine:
        geo, owner, land = want[pid]
        want[pid] = (geo, owner, land + 1)
    for pid in theirs:
        geo, _, land = want[pid]
        want[pid] = (geo, f"cen-{pid}", land)
    assert central_rows(agent) == want
    assert local_rows(agent) == want
    assert open_conflicts(agent) == []
    pending = local_exec(agent, "SELECT count(*) FROM tf_local_changes")[0][0]
    assert pending == 0
