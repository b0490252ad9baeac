"""A county whose parcels change after a moment T, with a copy of them saved at T: what the
tests of exports as of a past moment compare with (the engine's, the dialog's and
Processing's).
"""

from __future__ import annotations

import contextlib
import os
import time
from datetime import datetime, timedelta, timezone

from conftest import AgentEnv, central_exec
from terrafusion_agent import config as config_mod

#: the demo county's parcels, and the attributes every export of them carries
PARCELS = 300
FIELDS = ["prop_id", "geo_id", "situs_address", "owner_name", "legal_desc", "acres",
          "land_value", "impr_value", "market_value", "tax_area_code", "property_use_code",
          "year_built"]


class Changed:
    """A synced county, a copy of its parcels saved at ``at``, and central changed after."""

    def __init__(self, env: AgentEnv, at: str, before: dict[int, dict], after: dict[int, dict]):
        self.env = env
        self.at = at
        self.before = before
        self.after = after

    def config(self):
        return config_mod.load(self.env.config)


def _geometry_sql(env: AgentEnv) -> str:
    return "AsBinary(geom)" if env.central_url.startswith("sqlite") else "ST_AsBinary(geom)"


def central_parcels(env: AgentEnv) -> dict[int, dict]:
    """The parcels as central holds them now, by prop_id, geometry as WKB."""
    names = ", ".join(FIELDS)
    rows = central_exec(env, f"SELECT {names}, {_geometry_sql(env)} FROM parcels")
    return {r[0]: {**dict(zip(FIELDS, r[:-1])), "geom": bytes(r[-1])} for r in rows}


def a_moment_passed() -> str:
    """A whole second that has passed: the next one after now, once the clock is past it.

    Whole, so that the plugin's date and time widget (whole seconds) can name it too; the
    changes after it are then made strictly after it, on the one clock central and this
    machine share. Waiting for the clock is waiting for a condition, not for luck.
    """
    now = datetime.now(timezone.utc)
    moment = now.replace(microsecond=0) + timedelta(seconds=1)
    while datetime.now(timezone.utc) <= moment + timedelta(milliseconds=5):
        time.sleep(0.01)
    return moment.isoformat().replace("+00:00", "Z")


def change_after(env: AgentEnv) -> dict[str, list[int]]:
    """Every kind of change, made on central as another client would make it."""
    keys = sorted(r[0] for r in central_exec(env, "SELECT prop_id FROM parcels"))
    updated, twice, deleted, moved = keys[0:4], keys[4], keys[10:13], keys[20]
    placeholders = ", ".join(str(k) for k in updated)
    central_exec(env, "UPDATE parcels SET owner_name = 'CHANGED AFTER T', "
                      f"market_value = 987654.32 WHERE prop_id IN ({placeholders})")
    central_exec(env, "UPDATE parcels SET year_built = 1901 WHERE prop_id = %s", (twice,))
    central_exec(env, "UPDATE parcels SET year_built = 1902, legal_desc = NULL "
                      "WHERE prop_id = %s", (twice,))
    central_exec(env, f"DELETE FROM parcels WHERE prop_id IN "
                      f"({', '.join(str(k) for k in deleted)})")
    translate = ("ST_Translate(geom, 250, -40, 0)" if env.central_url.startswith("sqlite")
                 else "ST_Translate(geom, 250, -40)")
    central_exec(env, f"UPDATE parcels SET geom = {translate} WHERE prop_id = %s", (moved,))
    new = keys[-1] + 1000
    names = ", ".join(FIELDS[1:])
    central_exec(env, f"INSERT INTO parcels (prop_id, {names}, geom) SELECT %s, "
                      f"geo_id || '-NEW', {', '.join(FIELDS[2:])}, geom FROM parcels "
                      "WHERE prop_id = %s", (new, keys[30]))
    gone = new + 1  # inserted and deleted again after T: never part of the table at T
    central_exec(env, f"INSERT INTO parcels (prop_id, {names}, geom) SELECT %s, "
                      f"geo_id || '-GONE', {', '.join(FIELDS[2:])}, geom FROM parcels "
                      "WHERE prop_id = %s", (gone, keys[31]))
    central_exec(env, "DELETE FROM parcels WHERE prop_id = %s", (gone,))
    return {"updated": updated + [twice], "deleted": deleted, "moved": [moved],
            "inserted": [new]}


def changed_county(env: AgentEnv, parcels: int = PARCELS) -> Changed:
    """``env``'s central made with ``parcels`` demo parcels and synced, a copy saved at a
    moment, every kind of change made after it and synced again."""
    env.run("init-central", "--demo-parcels", str(parcels))
    env.run("sync")
    before = central_parcels(env)
    at = a_moment_passed()
    change_after(env)
    env.run("sync")  # the local copy is now the table as it is, not as it was
    after = central_parcels(env)
    assert after != before and len(after) == len(before) - 3 + 1
    return Changed(env, at, before, after)


@contextlib.contextmanager
def local_time_zone(name: str):
    """This process (Qt included) in the time zone ``name``: local time is then not UTC,
    so the plugin's conversion of a local date and time to UTC is put to the test."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()
