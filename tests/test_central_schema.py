"""A county whose tables live in a schema of their own (``central.schema``), PostGIS
staying in ``public`` as it usually does: the capture records every write (the
assessment system's too, and geometries in the history), the agent finds its bookkeeping
there whatever its session's search path, and a name no identifier rule likes works as
well as a plain one. What the previous version left half made in such a schema works
after ``init-central``."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from conftest import AgentEnv, agent_before, local_exec, write_config

MIGRATION = "agent/terrafusion_agent/migrations/central/versions/0006_key_blocks_for_editors.py"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def county_in(pg_cluster, tmp_path: Path, schema: str, name: str = "a") -> AgentEnv:
    """An agent configured for schema ``schema`` of a new database (made once per test)."""
    url = pg_cluster.url(f"tf_{tmp_path.name[-20:]}".lower().replace("-", "_"))
    db = url.split("@/", 1)[1].split("?", 1)[0]
    if not pg_cluster.psql("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{db}'"):
        pg_cluster.create_db(db)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {_ident(schema)}")
    toml_schema = schema.replace("\\", "\\\\").replace('"', '\\"')
    directory = tmp_path / name
    config = write_config(directory, url)
    config.write_text(config.read_text().replace(
        "[central]\n", f'[central]\nschema = "{toml_schema}"\n', 1))
    return AgentEnv(directory, config, url)


@pytest.mark.parametrize("schema", ["gis", "Assessor's \"GIS\" $fn$"])
def test_a_county_in_its_own_schema_syncs_both_ways_with_its_history(
        pg_cluster, tmp_path, schema):
    agent = county_in(pg_cluster, tmp_path, schema)
    agent.run("init-central", "--demo-parcels", "30")
    agent.run("sync")
    s = _ident(schema)
    with psycopg.connect(agent.central_url, autocommit=True) as central:
        # the assessment system writes with its own search path
        central.execute(f"UPDATE {s}.parcels SET owner_name = 'CENTRAL', "
                        "geom = ST_Translate(geom, 10, 0) WHERE prop_id = 100001")
        local_exec(agent, "UPDATE parcels SET land_value = 7 WHERE prop_id = 100001")
        local_exec(agent, "INSERT INTO districts (district_type, code, name) "
                          "VALUES ('zoning', 'Z-1', 'offline')")
        summary = json.loads(agent.run("sync").stdout)
        assert (summary["pushed"], summary["conflicts"]) == (2, 0)
        assert local_exec(agent, "SELECT owner_name FROM parcels WHERE prop_id = 100001") == [
            ("CENTRAL",)]
        assert central.execute(f"SELECT owner_name, land_value FROM {s}.parcels "
                               "WHERE prop_id = 100001").fetchone() == ("CENTRAL", 7)
        assert central.execute(f"SELECT count(*) FROM {s}.districts WHERE code = 'Z-1'"
                               ).fetchone() == (1,)
        # nothing of the bookkeeping landed in public
        assert central.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'tf%' AND "
                               "relnamespace = 'public'::regnamespace").fetchone() == (0,)
    assert agent.run("verify").returncode == 0
    entries = json.loads(agent.run("history", "parcels", "100001").stdout)["entries"]
    moved = next(e for e in entries if "geom" in e["columns"])
    assert moved["new"]["geom"].startswith("MULTIPOLYGON") and moved["new"]["geom"] != \
        moved["old"]["geom"]
    assert entries[0]["columns"] == ["land_value"]  # the agent's push, newest first
    fleet = json.loads(agent.run("fleet", "--json").stdout)["agents"]
    assert [a["last_result"] for a in fleet] == ["success"]


def test_init_central_finishes_what_the_previous_version_left_in_a_schema(
        pg_cluster, tmp_path):
    old_code = {"PYTHONPATH": str(agent_before(MIGRATION, tmp_path / "previous"))}
    old = county_in(pg_cluster, tmp_path, "gis", "old")
    # the previous version made the county and its bookkeeping, then could not find it
    assert old.run("init-central", "--demo-parcels", "20", env=old_code,
                   check=False).returncode != 0
    new = county_in(pg_cluster, tmp_path, "gis", "new")
    new.run("init-central")
    with psycopg.connect(new.central_url, autocommit=True) as central:
        central.execute("UPDATE gis.parcels SET owner_name = 'X' WHERE prop_id = 100001")
        assert central.execute("SELECT count(*) FROM gis.tf_change_log").fetchone() == (1,)
    new.run("sync")
    assert local_exec(new, "SELECT owner_name FROM parcels WHERE prop_id = 100001") == [("X",)]
    assert new.run("verify").returncode == 0
