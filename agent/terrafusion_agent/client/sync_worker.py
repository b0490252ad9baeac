"""One sync in a child Python, for the plugin when no agent runs (no Qt, no QGIS).

    python -m terrafusion_agent.client.sync_worker [--config PATH] [--trigger plugin]

Runs ``terrafusion_agent.sync.engine.run_sync`` under the local copy's lock, exactly as
``terrafusion-agent sync`` does, and reports on stdout in JSON lines::

    {"event": "progress", "table": "parcels", "done": 5000, "total": 20000}
    {"event": "done", "summary": {...}}
    {"event": "error", "message": "One sentence.", "cancelled": false}

Why a child process and not a thread of QGIS: a sync imports the migration machinery
(SQLAlchemy, Alembic) and loads SpatiaLite, which hold Python's global lock for up to a
few hundred milliseconds at a time; in QGIS's own process that froze the map and the
dock while the first sync ran (``bench/bench_plugin.py`` measures it). A child also keeps
a crash in a native library away from QGIS. SIGTERM (CTRL_BREAK on Windows) stops the
sync at the next transaction boundary, as Ctrl+C does for the CLI.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading


def _emit(event: dict) -> None:
    sys.stdout.write(json.dumps(event, default=str) + "\n")
    sys.stdout.flush()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="One TerraFusion sync, JSON lines out.")
    parser.add_argument("--config")
    parser.add_argument("--trigger", default="plugin")
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(_signum, _frame) -> None:
        stop.set()

    for name in ("SIGTERM", "SIGINT", "SIGBREAK"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), on_signal)

    from terrafusion_agent import config as tf_config
    from terrafusion_agent import logs
    from terrafusion_agent.errors import SyncCancelled, TerraFusionError
    from terrafusion_agent.lock import LocalLock
    from terrafusion_agent.sync.engine import run_sync

    def progress(table: str, done: int, total: int) -> None:
        _emit({"event": "progress", "table": table, "done": done, "total": total})

    try:
        cfg = tf_config.load(args.config)
        # the sync's lines go to the log every agent process of this user writes
        logs.setup(cfg.log_level, cfg.log_dir, role="plugin-sync", config=cfg)
        with LocalLock(cfg.local_path):
            summary = run_sync(cfg, trigger=args.trigger, progress=progress, stop=stop)
    except SyncCancelled as exc:
        _emit({"event": "error", "message": str(exc), "cancelled": True})
        return 1
    except TerraFusionError as exc:
        _emit({"event": "error", "message": str(exc), "cancelled": False})
        return 1
    _emit({"event": "done", "summary": summary})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
