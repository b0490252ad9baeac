"""The export jobs' record in the local copy: the table ``tf_export_jobs``.

One row per job the API queued, so a job's state outlives the process that ran it. The
jobs keep their live state in memory (see :mod:`terrafusion_agent.export.jobs`); this
table is where it is written down and where older jobs are read back from.

Each call opens its own short plain connection: the table needs no SpatiaLite, API
workers and the job worker each write from their own thread, and a sync holding the
local copy's write lock is waited for (up to :data:`DB_TIMEOUT_SECONDS`) rather than
shared. The connections are :class:`~terrafusion_agent.stores.local.LocalConnection`s,
so a damaged, full or busy copy is one sentence naming it.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

from terrafusion_agent.sql import quote_ident as qi
from terrafusion_agent.stores.local import LocalConnection

DB_TIMEOUT_SECONDS = 30.0
#: a job's row, in the table's order
COLUMNS = ("id", "status", "table_name", "format", "out_path", "preset", "request_json",
           "trigger", "features", "bytes", "duration_seconds", "error", "pid", "created_at",
           "started_at", "finished_at")
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM tf_export_jobs"


class ExportJobsTable:
    """``tf_export_jobs`` of the local copy at ``path``; rows are dicts by column name."""

    def __init__(self, path: Path):
        self.path = path

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(str(self.path), timeout=DB_TIMEOUT_SECONDS,
                               isolation_level=None, factory=LocalConnection)
        try:
            yield conn
        finally:
            conn.close()

    def exists(self) -> bool:
        """Whether the table is there (a copy made before exports had jobs has none)."""
        with self._connect() as conn:
            return conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                                "AND name = 'tf_export_jobs'").fetchone()[0] > 0

    def insert(self, row: dict[str, Any]) -> int:
        """Record a new job from ``row`` (every column but ``id``); returns its id."""
        names = [n for n in COLUMNS if n != "id"]
        with self._connect() as conn:
            cur = conn.execute(
                f"INSERT INTO tf_export_jobs ({', '.join(qi(n) for n in names)}) "
                f"VALUES ({', '.join('?' for _ in names)})", [row[n] for n in names])
            return int(cur.lastrowid or 0)  # an INSERT into a rowid table always sets it

    def update(self, job_id: int, values: dict[str, Any]) -> None:
        """Write some columns of one job."""
        unknown = set(values) - set(COLUMNS)
        if unknown:
            raise ValueError(f"tf_export_jobs has no column {sorted(unknown)[0]!r}")
        sets = ", ".join(f"{qi(n)} = ?" for n in values)
        with self._connect() as conn:
            conn.execute(f"UPDATE tf_export_jobs SET {sets} WHERE id = ?",
                         [*values.values(), job_id])

    def read(self, job_id: int) -> Optional[dict[str, Any]]:
        """One job's row; None when there is none."""
        with self._connect() as conn:
            row = conn.execute(f"{_SELECT} WHERE id = ?", (job_id,)).fetchone()
        return dict(zip(COLUMNS, row)) if row else None

    def recent(self, limit: int) -> list[dict[str, Any]]:
        """The ``limit`` newest jobs' rows, newest first."""
        with self._connect() as conn:
            rows = conn.execute(f"{_SELECT} ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [dict(zip(COLUMNS, row)) for row in rows]

    def unfinished(self) -> list[tuple[int, Optional[int], Optional[str]]]:
        """(id, pid, out_path) of every job recorded as pending or running."""
        with self._connect() as conn:
            return conn.execute("SELECT id, pid, out_path FROM tf_export_jobs "
                                "WHERE status IN ('pending', 'running')").fetchall()
