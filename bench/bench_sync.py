"""Sync speed against PostGIS: first full pull vs ogr2ogr, incremental pull, push.

Goals (issue 3): full pull of the large county at most 0.7x ogr2ogr's time; incremental
pull of 1,000 changed parcels under 0.5 s at 100k and at the large size, with the
large/100k ratio at most 1.2 (O(changes), not O(table)); push of 1,000 edits under 1 s.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

from terrafusion_agent import config as tf_config
from terrafusion_agent.stores.spatialite import connect
from terrafusion_agent.sync.engine import run_sync

CHANGES = 1000


def _agent_config(work: Path, url: str) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    path = work / "agent.toml"
    path.write_text(f'[central]\nurl = "{url}"\n[local]\npath = "local.sqlite"\n'
                    '[sync]\ntables = ["parcels"]\n[logging]\ndir = "logs"\n')
    return path


def _cli(cfg: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "terrafusion_agent", "--config", str(cfg), *args],
                   check=True, stdout=subprocess.DEVNULL)


def demo_county(ctx, n: int, prefix: str = "bench", folder: str = "sync") -> tuple[str, Path]:
    """A PostGIS database with an n-parcel demo county and a config syncing parcels."""
    name = f"{prefix}_{n}"
    try:
        ctx.cluster.drop_db(name)
    except subprocess.CalledProcessError:
        pass
    url = ctx.cluster.create_db(name)
    work = ctx.work / folder / name
    shutil.rmtree(work, ignore_errors=True)
    cfg = _agent_config(work, url)
    t0 = time.perf_counter()
    _cli(cfg, "init-central", "--demo-parcels", str(n))
    print(f"  demo county of {n:,} parcels generated in {time.perf_counter() - t0:.1f} s",
          flush=True)
    return url, cfg


def full_pull(cfg: Path) -> float:
    config = tf_config.load(cfg)
    for suffix in ("", "-wal", "-shm"):
        Path(str(config.local_path) + suffix).unlink(missing_ok=True)
    t0 = time.perf_counter()
    run_sync(config, trigger="bench")
    return time.perf_counter() - t0


def _ogr2ogr(ctx, dbname: str, out: Path) -> float:
    out.unlink(missing_ok=True)
    c = ctx.cluster
    t0 = time.perf_counter()
    subprocess.run(["ogr2ogr", "-f", "SQLite", "-dsco", "SPATIALITE=YES", str(out),
                    f"PG:host={c.root} port={c.port} user={c.user} dbname={dbname}",
                    "parcels"], check=True)
    return time.perf_counter() - t0


def _incremental(ctx, url: str, cfg: Path, n: int, rng: random.Random) -> float:
    ids = rng.sample(range(100_001, 100_001 + n), CHANGES)
    dbname = url.split("/")[3].split("?")[0]
    ctx.cluster.psql(dbname, "UPDATE parcels SET owner_name = owner_name || ' JR' "
                             f"WHERE prop_id IN ({','.join(map(str, ids))})")
    config = tf_config.load(cfg)
    t0 = time.perf_counter()
    summary = run_sync(config, trigger="bench")
    elapsed = time.perf_counter() - t0
    assert summary["rows"]["pull"]["update"] == CHANGES, summary
    return elapsed


def _push(cfg: Path, n: int, rng: random.Random) -> float:
    config = tf_config.load(cfg)
    ids = rng.sample(range(100_001, 100_001 + n), CHANGES)
    conn = connect(config.local_path)
    conn.execute("BEGIN")
    conn.executemany("UPDATE parcels SET land_value = land_value + 1 WHERE prop_id = ?",
                     [(i,) for i in ids])
    conn.execute("COMMIT")
    conn.close()
    t0 = time.perf_counter()
    summary = run_sync(config, trigger="bench")
    elapsed = time.perf_counter() - t0
    assert summary["rows"]["push"]["update"] == CHANGES, summary
    return elapsed


def run(ctx) -> dict:
    rng = random.Random(7)
    large = ctx.parcels
    out: dict = {}
    url_l, cfg_l = demo_county(ctx, large)
    ogr = _ogr2ogr(ctx, f"bench_{large}", ctx.work / "sync" / "ogr2ogr.sqlite")
    ours = full_pull(cfg_l)
    out["full_pull"] = {"parcels": large, "ours_s": round(ours, 2), "ogr2ogr_s": round(ogr, 2),
                        "ratio": round(ours / ogr, 3)}
    inc_l = min(_incremental(ctx, url_l, cfg_l, large, rng) for _ in range(3))
    push = min(_push(cfg_l, large, rng) for _ in range(3))
    url_s, cfg_s = demo_county(ctx, 100_000)
    full_pull(cfg_s)
    inc_s = min(_incremental(ctx, url_s, cfg_s, 100_000, rng) for _ in range(3))
    out["incremental_pull"] = {"changes": CHANGES, "at_100k_s": round(inc_s, 3),
                               f"at_{large}_s": round(inc_l, 3),
                               "ratio_large_to_100k": round(inc_l / inc_s, 2)}
    out["push"] = {"edits": CHANGES, "seconds": round(push, 3)}
    out["table"] = [
        ("measure", "ours", "reference", "ratio / goal"),
        (f"full pull {large:,} parcels", f"{ours:.1f} s", f"ogr2ogr {ogr:.1f} s",
         f"{ours / ogr:.2f}x (goal <= 0.7x)"),
        (f"incremental pull {CHANGES} changes @100k", f"{inc_s:.3f} s", "", "goal < 0.5 s"),
        (f"incremental pull {CHANGES} changes @{large:,}", f"{inc_l:.3f} s", "",
         f"{inc_l / inc_s:.2f}x of 100k (goal <= 1.2)"),
        (f"push {CHANGES} local edits", f"{push:.3f} s", "", "goal < 1 s"),
    ]
    return out
