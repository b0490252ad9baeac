"""A county's own PostGIS, set up as the README says: the owner of the tables runs
``init-central``, a database administrator runs the README's grants for the analysts'
group role (the block itself, read from the README), and an analyst's agent, connecting
as a member of that role, syncs both ways, digitises offline (keys reserved from the
tables' sequences, which only their owner may alter), reads the history and the fleet,
and can neither delete the audit history nor make its agent purge it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import psycopg
import pytest
from conftest import AgentEnv, local_exec, write_config

ROOT = Path(__file__).resolve().parent.parent
OWNER, ANALYST = "tf_test_gis_owner", "jane"


def readme_grants() -> str:
    """The SQL block the README marks as the editors' grants."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- editor-grants:[^>]*-->\s*```sql\n(.*?)```", text, re.S)
    assert found, "the README has no block marked editor-grants"
    return found.group(1)


@pytest.fixture(params=["public", "gis"])
def county(request, pg_cluster, tmp_path):
    """A county database whose tables belong to a role that is not a superuser, set up
    by it with init-central in schema ``public`` or a schema of their own; the README's
    grants run by an administrator, as the README says for that schema. Yields (owner's
    agent, analyst's agent, the schema)."""
    schema = request.param
    db = f"tf_roles_{tmp_path.name[-12:].lower()}"
    db = re.sub(r"[^a-z0-9_]", "_", db)
    for role in (ANALYST, "tf_editors", OWNER):
        _drop_role(pg_cluster, role)
    pg_cluster.create_db(db)
    pg_cluster.psql("postgres", f"CREATE ROLE {OWNER} LOGIN")
    if schema == "public":
        pg_cluster.psql(db, f"GRANT CREATE ON SCHEMA public TO {OWNER}")
    else:
        pg_cluster.psql(db, f"CREATE SCHEMA {schema} AUTHORIZATION {OWNER}")
    url = pg_cluster.url(db)
    user = f"{pg_cluster.user}@/"
    owner_url, analyst_url = (url.replace(user, f"{role}@/", 1) for role in (OWNER, ANALYST))
    owner, analyst = (AgentEnv(tmp_path / name, _config(tmp_path / name, url, schema), url)
                      for name, url in (("owner", owner_url), ("jane", analyst_url)))
    try:
        owner.run("init-central", "--demo-parcels", "40")
        grants = readme_grants().replace("SCHEMA public", f"SCHEMA {schema}")
        pg_cluster.psql(db, f"SET search_path = {schema}, public; {grants}")
        yield owner, analyst, schema
    finally:
        pg_cluster.drop_db(db)
        for role in (ANALYST, "tf_editors", OWNER):
            _drop_role(pg_cluster, role)


def _config(directory: Path, url: str, schema: str) -> Path:
    config = write_config(directory, url)
    config.write_text(config.read_text().replace(
        "[central]\n", f'[central]\nschema = "{schema}"\n', 1))
    return config


def connect(url: str, schema: str) -> psycopg.Connection:
    conn = psycopg.connect(url, autocommit=True)
    conn.execute(f"SET search_path = {schema}, public")
    return conn


def _drop_role(cluster, role: str) -> None:
    exists = cluster.psql("postgres", f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'")
    if exists:
        cluster.psql("postgres", f"DROP ROLE {role}")


def test_an_analysts_role_with_the_readme_grants_syncs_both_ways_and_digitises_offline(
        county):
    owner, analyst, schema = county
    summary = json.loads(analyst.run("sync").stdout)
    assert summary["result"] == "success"
    with connect(owner.central_url, schema) as central:
        # the reservation through tf_reserve_keys put the sequence's increment back
        assert central.execute(
            "SELECT seqincrement FROM pg_sequence "
            "WHERE seqrelid = 'districts_district_id_seq'::regclass").fetchone()[0] == 1
        # offline: a new district (key from the sequence's block), a new parcel (key from
        # the high range), an edit; central meanwhile: a district from the sequence, and
        # another column of the edited parcel
        local_exec(analyst, "INSERT INTO districts (district_type, code, name) "
                            "VALUES ('zoning', 'R-9', 'Jane''s zone')")
        local_exec(analyst, "INSERT INTO parcels (geo_id, owner_name) VALUES ('J-1', 'JANE')")
        local_exec(analyst, "UPDATE parcels SET land_value = 12345 WHERE prop_id = 100001")
        central.execute("INSERT INTO districts (district_type, code, name) "
                        "VALUES ('zoning', 'R-10', 'The office''s zone')")
        central.execute("UPDATE parcels SET owner_name = 'CENTRAL' WHERE prop_id = 100001")

        summary = json.loads(analyst.run("sync").stdout)
        assert summary["result"] == "success" and summary["conflicts"] == 0
        names = {r[0] for r in central.execute(
            "SELECT name FROM districts WHERE code IN ('R-9', 'R-10')")}
        assert names == {"Jane's zone", "The office's zone"}
        assert central.execute("SELECT owner_name, land_value FROM parcels "
                               "WHERE prop_id = 100001").fetchone() == ("CENTRAL", 12345)
        assert central.execute("SELECT count(*) FROM parcels WHERE geo_id = 'J-1'"
                               ).fetchone()[0] == 1
    assert analyst.run("verify").returncode == 0

    # who changed it, as central recorded it: the analyst's own login role
    history = json.loads(analyst.run("history", "parcels", "100001").stdout)
    assert history["entries"][0]["role"] == ANALYST
    fleet = json.loads(analyst.run("fleet", "--json").stdout)
    assert [a["last_result"] for a in fleet["agents"]] == ["success"]


def test_an_analysts_role_cannot_delete_the_audit_history_and_its_agent_leaves_the_purge(
        county, pg_cluster):
    owner, analyst, schema = county
    analyst.run("sync")
    db = owner.central_url.split("@/", 1)[1].split("?", 1)[0]
    path = f"SET search_path = {schema}, public; "
    # changes of two days ago, and a purge due: any agent that may purge would now
    pg_cluster.psql(db, path + "UPDATE parcels SET land_value = land_value + 1 "
                              "WHERE prop_id < 100010")
    pg_cluster.psql(db, path + "UPDATE tf_change_log SET changed_at = now() - interval '2 days'; "
                        "DELETE FROM tf_settings WHERE key = 'purged_at'")
    aged = int(pg_cluster.psql(db, path + "SELECT count(*) FROM tf_change_log"))
    assert aged > 0
    env = {"TERRAFUSION_CENTRAL__RETENTION_DAYS": "1"}

    assert json.loads(analyst.run("sync", env=env).stdout)["result"] == "success"
    assert int(pg_cluster.psql(db, path + "SELECT count(*) FROM tf_change_log")) == aged
    with connect(analyst.central_url, schema) as conn:
        for table in ("tf_history", "tf_change_log"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"DELETE FROM {table}")

    owner.run("sync", env=env)  # the owner's agent may, and does
    assert int(pg_cluster.psql(db, path + "SELECT count(*) FROM tf_change_log")) == 0


def test_an_analyst_can_neither_hide_writes_from_the_capture_nor_exhaust_a_sequence(county):
    owner, analyst, schema = county
    analyst.run("sync")
    with connect(analyst.central_url, schema) as conn:
        # a temporary table of the writer's own cannot take the capture's rows
        conn.execute("CREATE TEMP TABLE tf_change_log AS SELECT * FROM tf_change_log LIMIT 0")
        conn.execute("CREATE TEMP TABLE tf_history AS SELECT * FROM tf_history LIMIT 0")
        conn.execute("UPDATE parcels SET owner_name = 'QUIET' WHERE prop_id = 100005")
        assert conn.execute("SELECT count(*) FROM pg_temp.tf_change_log").fetchone() == (0,)
        for seq, size in ((f"{schema}.tf_history_id_seq", 10),
                          (f"{schema}.districts_district_id_seq", 10 ** 12)):
            with pytest.raises((psycopg.errors.InsufficientPrivilege,
                                psycopg.errors.InvalidParameterValue)):
                conn.execute("SELECT tf_reserve_keys(%s::regclass, %s)", (seq, size))
    with connect(owner.central_url, schema) as conn:
        assert conn.execute("SELECT count(*) FROM tf_change_log WHERE pk = '[100005]'"
                            ).fetchone() == (1,)
    owner.run("sync")
    assert local_exec(owner, "SELECT owner_name FROM parcels WHERE prop_id = 100005") == [
        ("QUIET",)]
