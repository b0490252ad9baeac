"""Rows central refuses are set aside as rejected entries; the rest of the push goes through.

Each refusal kind (CHECK, NOT NULL, unique, foreign key, a raising trigger, a missing
privilege) on a real PostGIS central, and a CHECK on the embedded SpatiaLite central.
"""

import json
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import pytest
from conftest import central_exec, local_exec, synced_copy, write_config

PARCEL = 100001
OTHER = 100002
GOOD_OWNER = "SET ASIDE TEST OTHER EDIT"


def sync(agent):
    return json.loads(agent.run("sync").stdout)


def open_entries(agent):
    return json.loads(agent.run("conflicts", "list").stdout)


def pending(agent):
    return local_exec(agent, "SELECT count(*) FROM tf_local_changes WHERE state = 'pending'")[0][0]


@dataclass
class Refusal:
    """One way central refuses a local edit, and a valid edit that fixes it."""

    name: str
    setup: tuple[str, ...]          # run centrally after the first sync
    bad: str                        # the local edit central refuses
    message: str                    # a fragment of the server's sentence
    fix: str                        # a local edit central accepts
    central_check: str              # central read after the fix ...
    fixed: tuple                    # ... and what it must give
    table: str = "parcels"
    restricted_role: bool = False   # the agent connects as a role lacking a privilege


def _lock_trigger() -> tuple[str, ...]:
    return (
        "CREATE FUNCTION lock_for_appeal() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE EXCEPTION 'parcel % is locked for appeal', NEW.prop_id; END $$",
        f"CREATE TRIGGER parcels_appeal BEFORE UPDATE ON parcels FOR EACH ROW "
        f"WHEN (NEW.prop_id = {PARCEL} AND NEW.land_value IS DISTINCT FROM OLD.land_value) "
        "EXECUTE FUNCTION lock_for_appeal()",
    )


REFUSALS = [
    Refusal(
        "check",
        ("ALTER TABLE parcels ADD CONSTRAINT land_value_not_negative CHECK (land_value >= 0)",),
        f"UPDATE parcels SET land_value = -5 WHERE prop_id = {PARCEL}",
        "land_value_not_negative",
        f"UPDATE parcels SET land_value = 5 WHERE prop_id = {PARCEL}",
        f"SELECT land_value::float FROM parcels WHERE prop_id = {PARCEL}", (5.0,)),
    # geo_id is NOT NULL in the local copy too: a column made NOT NULL centrally later is not
    Refusal(
        "not_null", ("ALTER TABLE parcels ALTER COLUMN situs_address SET NOT NULL",),
        f"UPDATE parcels SET situs_address = NULL WHERE prop_id = {PARCEL}",
        'null value in column "situs_address"',
        f"UPDATE parcels SET situs_address = '1 FIXED WAY' WHERE prop_id = {PARCEL}",
        f"SELECT situs_address FROM parcels WHERE prop_id = {PARCEL}", ("1 FIXED WAY",)),
    Refusal(
        "unique", (),
        f"UPDATE parcels SET geo_id = (SELECT geo_id FROM parcels WHERE prop_id = 100003) "
        f"WHERE prop_id = {PARCEL}",
        "parcels_geo_id_key",
        f"UPDATE parcels SET geo_id = 'FIXED-1' WHERE prop_id = {PARCEL}",
        f"SELECT geo_id FROM parcels WHERE prop_id = {PARCEL}", ("FIXED-1",)),
    Refusal(
        "foreign_key",
        ("ALTER TABLE sales ADD CONSTRAINT sales_prop_id_fkey FOREIGN KEY (prop_id) "
         "REFERENCES parcels (prop_id)",),
        "INSERT INTO sales (prop_id, sale_date, sale_price) "
        "VALUES (999999, '2026-05-01', 250000)",
        "sales_prop_id_fkey",
        f"UPDATE sales SET prop_id = {PARCEL} WHERE prop_id = 999999",
        "SELECT prop_id, sale_price::float FROM sales WHERE sale_date = '2026-05-01' "
        "AND sale_price = 250000", (PARCEL, 250000.0),
        table="sales"),
    Refusal(
        "trigger", _lock_trigger(),
        f"UPDATE parcels SET land_value = land_value + 1000 WHERE prop_id = {PARCEL}",
        f"parcel {PARCEL} is locked for appeal",
        f"UPDATE parcels SET land_value = land_value - 1000, owner_name = 'APPEAL OK' "
        f"WHERE prop_id = {PARCEL}",
        f"SELECT owner_name FROM parcels WHERE prop_id = {PARCEL}", ("APPEAL OK",)),
    Refusal(
        "privilege", (),
        f"UPDATE parcels SET land_value = land_value + 1000 WHERE prop_id = {PARCEL}",
        "permission denied for table parcels",
        f"UPDATE parcels SET land_value = land_value - 1000, owner_name = 'CLERK OK' "
        f"WHERE prop_id = {PARCEL}",
        f"SELECT owner_name FROM parcels WHERE prop_id = {PARCEL}", ("CLERK OK",),
        restricted_role=True),
]


def _as_clerk(agent):
    """Connect the agent as a role that may read parcels but not update their land value."""
    columns = [r[0] for r in central_exec(
        agent, "SELECT column_name FROM information_schema.columns "
               "WHERE table_schema = 'public' AND table_name = 'parcels' "
               "AND column_name <> 'land_value'")]
    db = urlsplit(agent.central_url).path.lstrip("/")
    for sql in (
        "DO $$ BEGIN CREATE ROLE tf_clerk LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; "
        "END $$",
        f'GRANT ALL ON DATABASE "{db}" TO tf_clerk',
        "GRANT USAGE, CREATE ON SCHEMA public TO tf_clerk",
        "GRANT ALL ON ALL TABLES IN SCHEMA public TO tf_clerk",
        "GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO tf_clerk",
        "REVOKE UPDATE ON parcels FROM tf_clerk",
        f"GRANT UPDATE ({', '.join(columns)}) ON parcels TO tf_clerk",
    ):
        central_exec(agent, sql)
    parts = urlsplit(agent.central_url)
    clerk = urlunsplit(parts._replace(netloc="tf_clerk@" + parts.netloc.split("@", 1)[-1]))
    write_config(agent.dir, clerk)


@pytest.fixture
def county(request, tmp_path):
    return synced_copy(request, tmp_path, "postgis", 300)


def _refuse(agent, case: Refusal) -> dict:
    """Set the refusal up, make the bad edit and one good edit, sync once."""
    for sql in case.setup:
        central_exec(agent, sql)
    if case.restricted_role:
        _as_clerk(agent)
    local_exec(agent, case.bad)
    local_exec(agent, f"UPDATE parcels SET owner_name = '{GOOD_OWNER}' WHERE prop_id = {OTHER}")
    return sync(agent)


@pytest.mark.parametrize("case", REFUSALS, ids=[c.name for c in REFUSALS])
def test_refused_row_is_set_aside_and_the_rest_goes_through(county, case):
    summary = _refuse(county, case)

    assert summary["rejected"] == 1
    assert summary["open_rejected"] == 1
    assert central_exec(county, "SELECT owner_name FROM parcels WHERE prop_id = %s",
                        (OTHER,)) == [(GOOD_OWNER,)]
    [entry] = open_entries(county)
    assert entry["kind"] == "rejected"
    assert entry["table"] == case.table
    assert case.message in entry["message"]
    assert pending(county) == 0


@pytest.mark.parametrize("case", REFUSALS, ids=[c.name for c in REFUSALS])
def test_refused_row_is_not_retried_until_edited_and_a_fix_goes_through(county, case):
    _refuse(county, case)

    again = sync(county)
    assert again["pushed"] == 0
    assert again["rejected"] == 0
    assert again["open_rejected"] == 1
    assert len(open_entries(county)) == 1
    assert local_exec(county, "SELECT count(*) FROM tf_conflicts WHERE kind = 'rejected'") == [
        (1,)]

    local_exec(county, case.fix)
    fixed = sync(county)
    assert fixed["pushed"] == 1
    assert fixed["rejected"] == 0
    assert fixed["open_rejected"] == 0
    assert central_exec(county, case.central_check) == [case.fixed]
    assert open_entries(county) == []
    [(resolution,)] = local_exec(
        county, "SELECT resolution FROM tf_conflicts WHERE kind = 'rejected' "
                "AND resolved_at IS NOT NULL")
    assert resolution == "accepted"
    assert pending(county) == 0


@pytest.mark.parametrize("case", [c for c in REFUSALS if c.table == "parcels"],
                         ids=[c.name for c in REFUSALS if c.table == "parcels"])
def test_keep_central_on_a_refused_row_restores_central_locally(county, case):
    columns = "geo_id, situs_address, land_value::float, owner_name"
    central_row = central_exec(county, f"SELECT {columns} FROM parcels WHERE prop_id = %s",
                               (PARCEL,))
    _refuse(county, case)
    [entry] = open_entries(county)

    county.run("conflicts", "resolve", str(entry["id"]), "--keep", "central")

    local_columns = columns.replace("::float", "")
    assert local_exec(county, f"SELECT {local_columns} FROM parcels WHERE prop_id = ?",
                      (PARCEL,)) == central_row
    assert open_entries(county) == []
    after = sync(county)
    assert after["pushed"] == 0
    assert after["rejected"] == 0
    assert central_exec(county, f"SELECT {columns} FROM parcels WHERE prop_id = %s",
                        (PARCEL,)) == central_row
    assert pending(county) == 0


def test_keep_central_on_a_refused_insert_removes_it_locally(county):
    case = next(c for c in REFUSALS if c.name == "foreign_key")
    _refuse(county, case)
    [entry] = open_entries(county)

    county.run("conflicts", "resolve", str(entry["id"]), "--keep", "central")

    assert local_exec(county, "SELECT count(*) FROM sales WHERE prop_id = 999999") == [(0,)]
    after = sync(county)
    assert after["pushed"] == 0
    assert central_exec(county, "SELECT count(*) FROM sales WHERE prop_id = 999999") == [(0,)]


def test_keep_local_on_a_refused_row_tries_it_again(county):
    case = REFUSALS[0]
    _refuse(county, case)
    [entry] = open_entries(county)
    central_exec(county, "ALTER TABLE parcels DROP CONSTRAINT land_value_not_negative")

    county.run("conflicts", "resolve", str(entry["id"]), "--keep", "local")
    after = sync(county)

    assert after["pushed"] == 1
    assert after["open_rejected"] == 0
    assert central_exec(county, "SELECT land_value::float FROM parcels WHERE prop_id = %s",
                        (PARCEL,)) == [(-5.0,)]


def test_embedded_central_refuses_a_duplicate_geo_id(sqlite_agent):
    sqlite_agent.run("init-central", "--demo-parcels", "300")
    sync(sqlite_agent)
    taken = central_exec(sqlite_agent, "SELECT geo_id FROM parcels WHERE prop_id = 100003")[0][0]
    local_exec(sqlite_agent, "UPDATE parcels SET geo_id = ? WHERE prop_id = ?", (taken, PARCEL))
    local_exec(sqlite_agent, "UPDATE parcels SET owner_name = ? WHERE prop_id = ?",
               (GOOD_OWNER, OTHER))

    summary = sync(sqlite_agent)

    assert summary["rejected"] == 1
    assert central_exec(sqlite_agent, "SELECT owner_name FROM parcels WHERE prop_id = ?",
                        (OTHER,)) == [(GOOD_OWNER,)]
    [entry] = open_entries(sqlite_agent)
    assert entry["kind"] == "rejected"
    assert "UNIQUE" in entry["message"] and "geo_id" in entry["message"]
    assert sync(sqlite_agent)["pushed"] == 0
    local_exec(sqlite_agent, "UPDATE parcels SET geo_id = 'FIXED-1' WHERE prop_id = ?",
               (PARCEL,))
    assert sync(sqlite_agent)["pushed"] == 1
    assert central_exec(sqlite_agent, "SELECT geo_id FROM parcels WHERE prop_id = ?",
                        (PARCEL,)) == [("FIXED-1",)]
    assert open_entries(sqlite_agent) == []
