"""A small fleet on one central: ``make loadtest``'s harness at 20 agents for a minute.

Real agent processes syncing every 5 s with one throwaway PostGIS (its own cluster, with
pg_stat_statements), an idle phase and a phase of central and local edits, then the
oracle. The figures per sync (central CPU, statements, new connections, latency) are the
ones the full load test reports; the goal is about the central CPU per idle poll: one
central core serving 20,000 agents or more at a one-minute interval. The oracle's
violations must be 0.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import loadtest  # noqa: E402

AGENTS = 20
MINUTES = 1.0


def run(ctx) -> dict:
    opts = loadtest.Options(agents=AGENTS, minutes=MINUTES, idle_seconds=30, out=None)
    report = loadtest.run(opts, log=lambda m: print("  " + m, flush=True))
    rows = loadtest.table(report)
    rows.append(("oracle violations (goal 0)", report["oracle"]["violations"]))
    return {**report, "table": rows}
