"""Central audit history against PostGIS: what it adds to a mass update, and how fast one
feature's history reads back.

Goals (issue: central audit history): ``UPDATE parcels SET land_value = land_value + 1``
of the large county (1,000,000 parcels) takes at most 1.5x as long with the history as
with the change log alone; one feature's history reads in under 50 ms with 10,000,000
entries in the history.

"Without history" is the same central, the same statement, the same triggers and
function made by the same generator (``tf_track(..., history => false)``): only the
history's part of the capture statement is left out. Each run starts from the same
state (the table rewritten, the logs emptied, a checkpoint) and includes its commit.
"""

from __future__ import annotations

import random
import shutil
import statistics
import subprocess
import sys
import time

import psycopg
from terrafusion_agent.stores.postgis import PostGISCentral

RUNS = 3
ENTRIES = 10_000_000
LOOKUPS = 50


def _county(ctx, n: int) -> str:
    """A PostGIS database with an n-parcel demo county, tracked; its URL."""
    name = f"bench_history_{n}"
    try:
        ctx.cluster.drop_db(name)
    except subprocess.CalledProcessError:
        pass
    url = ctx.cluster.create_db(name)
    work = ctx.work / "history" / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cfg = work / "agent.toml"
    cfg.write_text(f'[central]\nurl = "{url}"\n[local]\npath = "local.sqlite"\n'
                   '[sync]\ntables = ["parcels"]\n[logging]\ndir = "logs"\n')
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "terrafusion_agent", "--config", str(cfg),
                    "init-central", "--demo-parcels", str(n)],
                   check=True, stdout=subprocess.DEVNULL)
    print(f"  demo county of {n:,} parcels generated in {time.perf_counter() - t0:.1f} s",
          flush=True)
    return url


def _mass_update(url: str, history: bool) -> float:
    """Seconds of one ``UPDATE`` of every parcel, commit included, with or without the
    history, from a freshly rewritten table."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT tf_track('parcels'::regclass, ARRAY['prop_id'], %s)", (history,))
        conn.execute("TRUNCATE tf_change_log, tf_history, tf_history_tx")
        conn.execute("VACUUM FULL ANALYZE parcels")
        conn.execute("CHECKPOINT")
        t0 = time.perf_counter()
        with conn.transaction():
            conn.execute("UPDATE parcels SET land_value = land_value + 1")
        elapsed = time.perf_counter() - t0
        logged = conn.execute("SELECT (SELECT count(*) FROM tf_change_log), "
                              "(SELECT count(*) FROM tf_history)").fetchone()
    assert logged is not None and logged[0] > 0 and (logged[1] > 0) == history, logged
    return elapsed


def _fill_history(url: str, parcels: int, entries: int) -> None:
    """``entries`` history entries over the county's parcels, made set-based: a hundred
    parcels' land values per transaction, the transactions a few seconds apart over ten
    years, every parcel changed about ``entries / parcels`` times. The key index is
    built after the load, as a restore would."""
    txs = entries // 100
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT tf_track('parcels'::regclass, ARRAY['prop_id'], true)")
        conn.execute("TRUNCATE tf_change_log, tf_history, tf_history_tx")
        conn.execute("ALTER TABLE tf_history DROP CONSTRAINT tf_history_pkey")
        conn.execute(
            "INSERT INTO tf_history_tx (xid, committed_at, role, application) "
            "SELECT g, timestamptz '2016-01-01 00:00Z' + g * (interval '3650 days' / %s), "
            "'assessor', 'bench' FROM generate_series(1, %s) g", (txs, txs))
        first = conn.execute("SELECT min(id) FROM tf_history_tx").fetchone()
        conn.execute(
            "INSERT INTO tf_history (tx, table_name, feature, pk, op, cols, old_vals, new_vals) "
            "SELECT %(first)s + (i - 1) / 100, 'parcels', "
            "tf_history_feature('parcels', jsonb_build_array(p)), jsonb_build_array(p), 'U', "
            "ARRAY['land_value'], ARRAY[(i %% 500000)::text || '.00'], "
            "ARRAY[(i %% 500000 + 1)::text || '.00'] "
            "FROM generate_series(1, %(n)s) i, "
            "LATERAL (SELECT 100001 + (i * 7919::int8) %% %(parcels)s AS p) k",
            {"first": first[0] if first else 1, "n": entries, "parcels": parcels})
        conn.execute("ALTER TABLE tf_history ADD PRIMARY KEY (feature, id)")
        conn.execute("VACUUM ANALYZE tf_history")
        conn.execute("VACUUM ANALYZE tf_history_tx")


def _history_reads(url: str, parcels: int, rng: random.Random) -> list[float]:
    """Seconds of each of ``LOOKUPS`` reads of one random parcel's history."""
    store = PostGISCentral(url)
    try:
        info = store.table_info("parcels")
        times = []
        for _ in range(LOOKUPS):
            key = (100001 + rng.randrange(parcels),)
            t0 = time.perf_counter()
            found = store.history(info, key)
            times.append(time.perf_counter() - t0)
            assert found, key
        return times
    finally:
        store.close()


def run(ctx) -> dict:
    n = ctx.parcels
    url = _county(ctx, n)
    runs: dict[bool, list[float]] = {False: [], True: []}
    for i in range(RUNS):
        for history in (False, True):
            runs[history].append(_mass_update(url, history))
            print(f"  mass update {i + 1}/{RUNS}, history {'on' if history else 'off'}: "
                  f"{runs[history][-1]:.1f} s", flush=True)
    without, with_ = min(runs[False]), min(runs[True])
    t0 = time.perf_counter()
    _fill_history(url, n, ENTRIES)
    print(f"  {ENTRIES:,} history entries made in {time.perf_counter() - t0:.0f} s",
          flush=True)
    reads = _history_reads(url, n, random.Random(11))
    median, worst = statistics.median(reads), max(reads)
    return {
        "mass_update": {"parcels": n, "with_history_s": round(with_, 2),
                        "without_history_s": round(without, 2),
                        "ratio": round(with_ / without, 3),
                        "runs_with_s": [round(t, 2) for t in runs[True]],
                        "runs_without_s": [round(t, 2) for t in runs[False]]},
        "feature_history": {"entries": ENTRIES, "lookups": LOOKUPS,
                            "median_ms": round(median * 1000, 2),
                            "max_ms": round(worst * 1000, 2)},
        "table": [
            ("measure", "ours", "reference", "ratio / goal"),
            (f"mass update of {n:,} parcels", f"{with_:.1f} s with history",
             f"{without:.1f} s change log only", f"{with_ / without:.2f}x (goal <= 1.5x)"),
            (f"one feature's history, {ENTRIES:,} entries", f"{median * 1000:.1f} ms median",
             f"{worst * 1000:.1f} ms slowest of {LOOKUPS}", "goal < 50 ms"),
        ],
    }
