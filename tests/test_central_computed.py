"""Columns central computes or rewrites. Newer county schemas have a key that is an
identity column ``GENERATED ALWAYS`` and stored generated columns (a parcel's acreage
from its geometry): the agent never writes a computed column, takes the value central
computed back into the local copy, counts an analyst's typing into one as no edit, and
pushes offline inserts with the keys it reserved from the identity's sequence. Central
also rewrites what it is given in other types (a date written ``2026-1-5``, JSON,
arrays, network addresses, timestamps): the local copy takes central's spelling, so the
next edit of the column is not taken for a conflict. One row or many (the many go
through a temporary table)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg
import pytest
from conftest import AgentEnv, local_exec, write_config
from service_helpers import wait_for

TABLE = """
CREATE TABLE lots (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text NOT NULL,
  acres numeric GENERATED ALWAYS AS (round((ST_Area(geom) / 43560.0)::numeric, 4)) STORED,
  geom geometry(Polygon, 2927))"""


def square(x: float, side: float) -> str:
    return (f"ST_GeomFromText('POLYGON(({x} 0, {x + side} 0, {x + side} {side}, {x} {side}, "
            f"{x} 0))', 2927)")


@pytest.fixture
def lots(pg_agent) -> AgentEnv:
    with psycopg.connect(pg_agent.central_url, autocommit=True) as central:
        central.execute(TABLE)
        central.execute("INSERT INTO lots (name, geom) SELECT 'lot ' || i, "
                        "ST_MakeEnvelope(i * 1000, 0, i * 1000 + 500, 500, 2927) "
                        "FROM generate_series(1, 40) i")
    agent = AgentEnv(pg_agent.dir, write_config(pg_agent.dir, pg_agent.central_url,
                                                '[sync]\ntables = ["lots"]\n'),
                     pg_agent.central_url)
    agent.run("init-central")
    agent.run("sync")
    return agent


def central_rows(agent: AgentEnv) -> dict[int, tuple]:
    with psycopg.connect(agent.central_url, autocommit=True) as central:
        return {r[0]: (r[1], float(r[2]) if r[2] is not None else None)
                for r in central.execute("SELECT id, name, acres FROM lots")}


def local_rows(agent: AgentEnv) -> dict[int, tuple]:
    return {r[0]: (r[1], r[2]) for r in local_exec(agent, "SELECT id, name, acres FROM lots")}


@pytest.mark.parametrize("edited", [1, 30], ids=["one row", "many rows"])
def test_offline_inserts_and_geometry_edits_take_the_values_central_computes(lots, edited):
    for i in range(1, edited + 1):
        local_exec(lots, f"UPDATE lots SET geom = {square(i * 1000, 1000)} WHERE id = ?", (i,))
    for i in range(edited):
        local_exec(lots, f"INSERT INTO lots (name, geom) VALUES (?, {square(-5000 - i * 10, 5)})",
                   (f"offline {i}",))
    summary = json.loads(lots.run("sync").stdout)
    assert (summary["pushed"], summary["conflicts"], summary["rejected"]) == (2 * edited, 0, 0)
    central = central_rows(lots)
    assert all(central[i][1] == round(1000 * 1000 / 43560, 4) for i in range(1, edited + 1))
    assert sum(1 for name, _ in central.values() if name.startswith("offline")) == edited
    # the local copy holds what central computed, the new rows' acreage included
    assert local_rows(lots) == central
    assert lots.run("verify").returncode == 0
    # central's own inserts go on from the identity's sequence, past the agent's block
    with psycopg.connect(lots.central_url, autocommit=True) as conn:
        conn.execute(f"INSERT INTO lots (name, geom) VALUES ('office', {square(0, 10)})")
    lots.run("sync")
    assert local_rows(lots) == central_rows(lots)
    assert len(central_rows(lots)) == 40 + edited + 1


def test_typing_into_a_computed_column_is_no_edit_and_central_changes_still_merge(lots):
    # the analyst types an acreage and renames lot 1; central moves lot 2 meanwhile
    local_exec(lots, "UPDATE lots SET acres = 999, name = 'renamed' WHERE id = 1")
    local_exec(lots, "UPDATE lots SET name = 'renamed too' WHERE id = 2")
    with psycopg.connect(lots.central_url, autocommit=True) as central:
        central.execute(f"UPDATE lots SET geom = {square(2000, 2000)} WHERE id = 2")
    summary = json.loads(lots.run("sync").stdout)
    assert (summary["conflicts"], summary["rejected"]) == (0, 0)
    central = central_rows(lots)
    assert central[1] == ("renamed", round(500 * 500 / 43560, 4))
    assert central[2] == ("renamed too", round(2000 * 2000 / 43560, 4))
    assert local_rows(lots) == central
    assert json.loads(lots.run("pending", "list").stdout)["edits"] == []


#: (column, its type, a first and a second value as an analyst might type them)
SPELLINGS = [("meta", "jsonb", "'{\"k\":2}'", "'{\"k\":3}'"),
             ("ip", "inet", "'10.0.0.2'", "'10.0.0.3'"),
             ("day", "date", "'2026-1-5'", "'2026-01-06'"),
             ("at", "timestamptz", "'2026-12-01T10:00:00Z'", "'2026-12-01T11:00:00Z'"),
             ("tags", "text[]", "'{a, b}'", "'{c}'"),
             ("uid", "uuid", "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'",
              "'B0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'"),
             ("amount", "numeric(10,2)", "1234.567", "1234.561"),
             ("ratio", "real", "0.1", "0.3")]


@pytest.mark.parametrize("rows", [1, 12], ids=["one row", "many rows"])
def test_values_central_rewrites_come_back_in_its_spelling_and_edit_again_cleanly(
        pg_agent, rows):
    with psycopg.connect(pg_agent.central_url, autocommit=True) as central:
        central.execute("CREATE TABLE notes (id int PRIMARY KEY, other text, " + ", ".join(
            f"{name} {kind}" for name, kind, _, _ in SPELLINGS) + ")")
        central.execute("INSERT INTO notes (id, other) SELECT i, 'o' "
                        f"FROM generate_series(1, {rows}) i")
    agent = AgentEnv(pg_agent.dir, write_config(pg_agent.dir, pg_agent.central_url,
                                                '[sync]\ntables = ["notes"]\n'),
                     pg_agent.central_url)
    agent.run("init-central")
    agent.run("sync")
    sets = ", ".join(f"{name} = {first}" for name, _, first, _ in SPELLINGS)
    local_exec(agent, f"UPDATE notes SET {sets}")
    assert json.loads(agent.run("sync").stdout)["pushed"] == rows
    assert agent.run("verify").returncode == 0  # the local copy spells it as central does

    # each column again here, another one there: merged, not a conflict
    sets = ", ".join(f"{name} = {second}" for name, _, _, second in SPELLINGS)
    local_exec(agent, f"UPDATE notes SET {sets}")
    with psycopg.connect(agent.central_url, autocommit=True) as central:
        central.execute("UPDATE notes SET other = 'central'")
        summary = json.loads(agent.run("sync").stdout)
        assert summary["conflicts"] == 0
        assert central.execute(
            "SELECT DISTINCT other, meta ->> 'k', host(ip), day::text, tags::text, uid::text, "
            "amount::text, ratio::text FROM notes").fetchall() == [
                ("central", "3", "10.0.0.3", "2026-01-06", "{c}",
                 "b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "1234.56", "0.3")]
    assert agent.run("verify").returncode == 0


def test_an_edit_made_while_its_row_is_pushed_takes_centrals_spelling_as_seen(
        pg_agent, tmp_path):
    """The analyst edits a row again while the push that carries its first edit is under
    way: the later edit is rebased onto the row central holds, and the value this push
    wrote, which central spelled its own way, counts as seen, not as central's change."""
    with psycopg.connect(pg_agent.central_url, autocommit=True) as central:
        central.execute("CREATE TABLE notes (id int PRIMARY KEY, other text, meta jsonb)")
        central.execute("INSERT INTO notes VALUES (1, 'o', '{}')")
    agent = AgentEnv(pg_agent.dir, write_config(pg_agent.dir, pg_agent.central_url,
                                                '[sync]\ntables = ["notes"]\n'),
                     pg_agent.central_url)
    agent.run("init-central")
    agent.run("sync")
    local_exec(agent, "UPDATE notes SET meta = '{\"k\":2}' WHERE id = 1")
    pause = tmp_path / "pause"
    proc = subprocess.Popen(
        [sys.executable, "-m", "terrafusion_agent", "--config", str(agent.config), "sync"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TERRAFUSION_FAULT": "push.before_central_commit",
             "TERRAFUSION_FAULT_PAUSE": str(pause)})
    try:
        wait_for(lambda: pause.with_name("pause.reached").exists() or proc.poll() is not None,
                 60, "the fault point")
        assert proc.poll() is None, proc.communicate()
        local_exec(agent, "UPDATE notes SET meta = '{\"k\":3}' WHERE id = 1")
        pause.with_name("pause.go").write_text("go")
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    with psycopg.connect(agent.central_url, autocommit=True) as central:
        central.execute("UPDATE notes SET other = 'central' WHERE id = 1")
        summary = json.loads(agent.run("sync").stdout)
        assert summary["conflicts"] == 0
        assert central.execute("SELECT other, meta ->> 'k' FROM notes").fetchone() == (
            "central", "3")
    assert agent.run("verify").returncode == 0


def test_a_number_central_rounds_comes_back_rounded_and_edits_again_cleanly(pg_agent):
    """Only numbers written: a numeric(10,2) keeps two decimals, a real a float's."""
    with psycopg.connect(pg_agent.central_url, autocommit=True) as central:
        central.execute("CREATE TABLE fees (id int PRIMARY KEY, other text, "
                        "amount numeric(10,2), ratio real)")
        central.execute("INSERT INTO fees VALUES (1, 'o', 1, 1), (2, 'o', 1, 1)")
    agent = AgentEnv(pg_agent.dir, write_config(pg_agent.dir, pg_agent.central_url,
                                                '[sync]\ntables = ["fees"]\n'),
                     pg_agent.central_url)
    agent.run("init-central")
    agent.run("sync")
    local_exec(agent, "UPDATE fees SET amount = 1234.567 WHERE id = 1")
    local_exec(agent, "UPDATE fees SET ratio = 0.1 WHERE id = 2")
    agent.run("sync")
    assert agent.run("verify").returncode == 0
    local_exec(agent, "UPDATE fees SET amount = 99.5 WHERE id = 1")
    local_exec(agent, "UPDATE fees SET ratio = 0.5 WHERE id = 2")
    with psycopg.connect(agent.central_url, autocommit=True) as central:
        central.execute("UPDATE fees SET other = 'central'")
        assert json.loads(agent.run("sync").stdout)["conflicts"] == 0
        assert central.execute("SELECT amount::text, ratio::text FROM fees ORDER BY id"
                               ).fetchall() == [("99.50", "1"), ("1.00", "0.5")]
