"""Revaluation day against PostGIS: mass changes on both sides of a large county.

Goals (issue 14): a pull after a central UPDATE of every row costs at most 1.0x the
full pull of the table measured in the same run (and a pull of 10 % changed rows no
more); a push of 100,000 local edits runs at 50,000 rows/s or more; a two-way sync of
100,000 central and 100,000 local edits on overlapping rows (different columns, so
they merge) takes under 5 s, and both sides then hold the same rows.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import psycopg
from bench_sync import demo_county, full_pull
from terrafusion_agent import config as tf_config
from terrafusion_agent.stores.spatialite import connect
from terrafusion_agent.sync.engine import run_sync

FIRST_KEY = 100_001
MASS = 100_000


def _central(url: str, sql: str, params: tuple = ()) -> list:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql, params or None)
        return cur.fetchall() if cur.description else []


def _local(cfg: Path, sql: str, params: list) -> None:
    conn = connect(tf_config.load(cfg).local_path)
    try:
        conn.execute("BEGIN")
        conn.executemany(sql, params)
        conn.execute("COMMIT")
    finally:
        conn.close()


def _sync(cfg: Path) -> tuple[float, dict]:
    config = tf_config.load(cfg)
    t0 = time.perf_counter()
    summary = run_sync(config, trigger="bench")
    return time.perf_counter() - t0, summary


def _pull_after(url: str, cfg: Path, where: str) -> tuple[float, dict]:
    _central(url, f"UPDATE parcels SET land_value = land_value + 1 {where}")
    return _sync(cfg)


def _both_sides(url: str, cfg: Path, keys: list[int]) -> tuple[list, list]:
    """(owner_name, land_value) of ``keys`` centrally and locally, in key order."""
    central = _central(url, "SELECT prop_id, owner_name, land_value::float8 FROM parcels "
                            "WHERE prop_id = ANY(%s) ORDER BY prop_id", (keys,))
    conn = connect(tf_config.load(cfg).local_path)
    try:
        local = conn.execute(
            "SELECT prop_id, owner_name, land_value FROM parcels WHERE prop_id IN "
            "(SELECT value FROM json_each(?)) ORDER BY prop_id",
            (str(keys),)).fetchall()
    finally:
        conn.close()
    return [tuple(r) for r in central], [tuple(r) for r in local]


def run(ctx) -> dict:
    rng = random.Random(14)
    n = ctx.parcels
    url, cfg = demo_county(ctx, n, prefix="bench_mass", folder="mass")
    full = min(full_pull(cfg) for _ in range(2))
    # the fastest of two, as the full pull it is compared with
    every, s_every = min((_pull_after(url, cfg, "") for _ in range(2)), key=lambda r: r[0])
    assert s_every["pulled"] == n, s_every
    ten, s_ten = _pull_after(url, cfg, f"WHERE prop_id % 10 = {rng.randrange(10)}")
    assert s_ten["pulled"] == n // 10, s_ten

    edits = min(MASS, n // 2)
    mine = rng.sample(range(FIRST_KEY, FIRST_KEY + n), edits)
    _local(cfg, "UPDATE parcels SET impr_value = impr_value + 3 WHERE prop_id = ?",
           [(k,) for k in mine])
    push, s_push = _sync(cfg)
    assert s_push["rows"]["push"]["update"] == edits, s_push

    # two-way: half of each side's rows are the other side's too, different columns
    pool = rng.sample(range(FIRST_KEY, FIRST_KEY + n), edits * 3 // 2)
    theirs, ours = sorted(pool[:edits]), pool[edits // 2:]
    _central(url, "UPDATE parcels SET owner_name = owner_name || ' (reval)' "
                  "WHERE prop_id = ANY(%s)", (theirs,))
    _local(cfg, "UPDATE parcels SET land_value = land_value + 7 WHERE prop_id = ?",
           [(k,) for k in ours])
    both, s_both = _sync(cfg)
    central_rows, local_rows = _both_sides(url, cfg, sorted(pool))
    merged = (central_rows == local_rows and s_both["conflicts"] == 0
              and s_both["rows"]["push"]["update"] == len(ours)
              and s_both.get("pending") == 0)

    out = {
        "parcels": n,
        "full_pull_s": round(full, 2),
        "pull_every_row_changed": {"seconds": round(every, 2),
                                   "ratio_to_full": round(every / full, 3)},
        "pull_tenth_changed": {"seconds": round(ten, 2), "ratio_to_full": round(ten / full, 3)},
        "push": {"edits": edits, "seconds": round(push, 2),
                 "rows_per_s": round(edits / push)},
        "two_way": {"central_edits": len(theirs), "local_edits": len(ours),
                    "overlap": edits // 2, "seconds": round(both, 2), "merged": merged},
    }
    out["table"] = [
        ("measure", "ours", "reference", "ratio / goal"),
        (f"full pull {n:,} parcels", f"{full:.2f} s", "", ""),
        ("pull after UPDATE of every row", f"{every:.2f} s", f"full pull {full:.2f} s",
         f"{every / full:.2f}x (goal <= 1.0x)"),
        ("pull after UPDATE of 10 %", f"{ten:.2f} s", f"full pull {full:.2f} s",
         f"{ten / full:.2f}x (goal <= 1.0x)"),
        (f"push {edits:,} local edits (whole sync)", f"{push:.2f} s",
         f"{edits / push:,.0f} rows/s", "goal >= 50,000 rows/s"),
        (f"two-way {len(theirs):,} central + {len(ours):,} local, {edits // 2:,} overlap",
         f"{both:.2f} s", "merged" if merged else "NOT MERGED", "goal < 5 s"),
    ]
    return out
