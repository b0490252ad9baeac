"""``make bench``: measured side by side with the tools a user would otherwise pick.

Each ``bench/bench_*.py`` module exposes ``run(ctx) -> dict``; results go to
``build/bench.json`` and a table on stdout. Absolute times drift between machines; the
ratios against ogr2ogr measured in the same run are what the goals are about.

Usage: ``python bench/run.py [--only NAME ...] [--parcels N]``
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))


class Context:
    """Shared between benchmark modules: a PostGIS cluster started once, a work folder."""

    def __init__(self, work: Path, parcels: int):
        self.work = work
        self.parcels = parcels
        self._cluster = None

    @property
    def cluster(self):
        if self._cluster is None:
            from pgcluster import PgCluster

            self._cluster = PgCluster().start()
        return self._cluster

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.stop()


def timed(fn, *args, **kw) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t0, out


def main() -> int:
    modules = sorted(p.stem[len("bench_"):] for p in HERE.glob("bench_*.py"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", choices=modules, default=modules)
    ap.add_argument("--parcels", type=int, default=1_000_000,
                    help="size of the large demo county (default 1,000,000)")
    args = ap.parse_args()
    work = ROOT / "build" / "bench-work"
    work.mkdir(parents=True, exist_ok=True)
    ctx = Context(work, args.parcels)
    results: dict = {"machine": {"python": platform.python_version(),
                                 "platform": platform.platform(),
                                 "cpus": __import__("os").cpu_count()},
                     "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        for name in args.only:
            print(f"== {name}", flush=True)
            mod = importlib.import_module(f"bench_{name}")
            results[name] = mod.run(ctx)
            for row in results[name].get("table", []):
                print("  " + " | ".join(str(c) for c in row), flush=True)
    finally:
        ctx.close()
    out = ROOT / "build" / "bench.json"
    previous = json.loads(out.read_text()) if out.exists() else {}
    previous.update(results)
    out.write_text(json.dumps(previous, indent=2))
    print(f"results in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
