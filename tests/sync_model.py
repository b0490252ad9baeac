"""A model-based randomized test of sync: three agents, a central writer, faults, restarts.

Three agents (each its own config and local copy) and a central writer (plain psycopg, as
the assessment system would write) edit one demo county at random from a seeded
generator: local updates of the same and of different columns, local geometry edits,
local deletes, offline inserts of parcels and sales (SQLite picks the key; the agent's
triggers make it permanent), central updates, deletes, inserts and an added column
(schema drift), interleaved with syncs through the CLI, syncs killed at named fault
points (``TERRAFUSION_FAULT``), syncs paused at a fault point while the central server
is stopped with ``pg_ctl -m immediate`` and started again, conflict resolutions, and
central restarts.

The model of every edit and the oracle that judges the outcome are in ``sync_oracle.py``.

**Faults.** A sync armed with a fault point that it never reaches exits 0: that is
counted, not failed, and told apart by what the sync had to do (the queue and the
in-flight push batches in its local copy when it started, a full copy after a column was
added), so the totals show how many faults fired and how many could not have.

**Notices** are product behaviour worth knowing that is not a loss (the first INSERT on a
long-lived SpatiaLite connection after the agent rebuilt the table); they are counted and
reported with their seed and step, and do not fail a run.

Run ``python tests/sync_model.py --minutes 10`` (what ``make soak`` does) for a soak of
many episodes; ``tests/test_sync_model.py`` runs one episode of the CI size.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _p in (str(REPO / "agent"), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import psycopg  # noqa: E402
from conftest import AgentEnv, write_config  # noqa: E402
from pgcluster import PgCluster  # noqa: E402
from sync_oracle import (  # noqa: E402
    AGENTS,
    CENTRAL,
    GEOM,
    KEYS,
    MARKER,
    Discrepancy,
    Model,
    Write,
    val,
)
from terrafusion_agent.faults import POINTS  # noqa: E402

PARCELS = 300
HOT_KEYS = list(range(100001, 100013))  # rows every writer edits: contention on purpose
#: columns the update operations pick from (added columns join parcels)
EDITABLE = {"parcels": ["owner_name", "situs_address", "land_value"], "sales": ["sale_price"]}
FIRST_SALE_MARK = datetime.date(2031, 1, 1)
SYNC_TIMEOUT = 180
#: fault points a sync passes before its pull commits locally
BEFORE_PULL_COMMIT = ("settle.", "pull.after_snapshot", "pull.mid_bulk_copy",
                      "pull.before_local_commit", "schema.")
#: central settings a bare ``pg_ctl start`` must find again after an immediate stop. The
#: WAL writer is slowed down so that an acknowledged asynchronous commit really is lost
#: by an immediate stop: the agent's writes must be durable whatever the server does.
SERVER_SETTINGS = {
    "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
    "wal_writer_delay": "10s", "max_connections": "100", "shared_buffers": "128MB",
}


def qi(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --- the systems under test -----------------------------------------------------------------


class Central:
    """The throwaway PostgreSQL server, stopped and started again at will, and the
    county database in it, written as the assessment system would (plain psycopg)."""

    def __init__(self):
        self.cluster = PgCluster().start()
        for name, value in {**SERVER_SETTINGS, "port": str(self.cluster.port),
                            "unix_socket_directories": str(self.cluster.root),
                            "listen_addresses": ""}.items():
            self.cluster.psql("postgres", f"ALTER SYSTEM SET {name} = '{value}'")
        self.restart()
        self.url = ""

    def create(self, name: str) -> str:
        self.url = self.cluster.create_db(name)
        self.dbname = name
        return self.url

    def drop(self) -> None:
        self.cluster.drop_db(self.dbname)

    def stop(self) -> None:
        self.cluster._run(str(self.cluster.bindir / "pg_ctl"), "-D", str(self.cluster.data),
                          "-m", "immediate", "-w", "stop")

    def start(self) -> None:
        self.cluster._run(str(self.cluster.bindir / "pg_ctl"), "-D", str(self.cluster.data),
                          "-w", "-l", str(self.cluster.root / "server.log"), "start")

    def restart(self) -> None:
        self.stop()
        self.start()

    def ensure_running(self) -> None:
        try:
            self.cluster.psql("postgres", "SELECT 1")
        except subprocess.CalledProcessError:
            self.start()

    def close(self) -> None:
        self.cluster.stop()

    def connect(self) -> psycopg.Connection:
        conn = psycopg.connect(self.url, connect_timeout=10, autocommit=True)
        # the assessment system's commits are durable; only the agent's are under test
        conn.execute("SET synchronous_commit = on")
        conn.execute("SET lock_timeout = '20s'")
        return conn

    def columns(self, conn, table: str) -> list[str]:
        return [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "'public' AND table_name = %s ORDER BY ordinal_position", (table,))]

    def read(self, conn, table: str, where: str = "", params: tuple = ()) -> dict:
        cols = self.columns(conn, table)
        exprs = ", ".join(f"ST_AsBinary({qi(c)})" if c == GEOM else qi(c) for c in cols)
        out = {}
        for r in conn.execute(f"SELECT {exprs} FROM {qi(table)} {where}", params):
            row = {c: val(c, v) for c, v in zip(cols, r)}
            out[r[cols.index(KEYS[table])]] = row
        return out

    def snapshot(self) -> dict:
        with self.connect() as conn:
            return {t: self.read(conn, t) for t in KEYS}


def local_connect(path: Path) -> sqlite3.Connection:
    """The local copy opened as QGIS or any SpatiaLite client would."""
    conn = sqlite3.connect(str(path), timeout=60, isolation_level=None)
    conn.enable_load_extension(True)
    conn.load_extension("mod_spatialite")
    conn.enable_load_extension(False)
    conn.execute("PRAGMA busy_timeout = 60000")
    return conn


def local_columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({qi(table)})")]


def local_read(conn: sqlite3.Connection, table: str, where: str = "",
               params: tuple = ()) -> dict:
    cols = local_columns(conn, table)
    exprs = ", ".join(f"AsBinary({qi(c)})" if c == GEOM else qi(c) for c in cols)
    out = {}
    for r in conn.execute(f"SELECT {exprs} FROM {qi(table)} {where}", params):
        out[r[cols.index(KEYS[table])]] = {c: val(c, v) for c, v in zip(cols, r)}
    return out


@dataclass
class SyncRun:
    agent: str
    started: int
    rc: int = 0
    stdout: str = ""
    stderr: str = ""
    fault: Optional[str] = None
    fired: bool = False
    restarted: bool = False  # the central server went away during the run
    edited_during: bool = False  # a local edit was made while it ran
    central_written: bool = False  # central was written while it ran
    queue: tuple = (0, 0)  # (pending edits, push batches in flight) when it started
    behind: Optional[bool] = None  # central had rows it had not pulled, when it started

    @property
    def summary(self) -> Optional[dict]:
        try:
            return json.loads(self.stdout) if self.rc == 0 else None
        except ValueError:
            return None

    def outcome(self) -> str:
        fault = f" [{self.fault}{' fired' if self.fired else ' not reached'}]" \
            if self.fault else ""
        restart = " [central restarted]" if self.restarted else ""
        if self.rc == 0:
            s = self.summary or {}
            what = (f"ok pulled {s.get('pulled')} pushed {s.get('pushed')} "
                    f"conflicts {s.get('conflicts')} pending {s.get('pending')}")
        elif self.rc == -9:
            what = "killed"
        else:
            what = f"exit {self.rc}: {self.stderr.strip()[-200:]}"
        return what + fault + restart


class ModelFailure(AssertionError):
    """A discrepancy; ``stats`` holds the episode's counts up to it."""

    def __init__(self, message: str, stats: Stats):
        super().__init__(message)
        self.stats = stats


@dataclass
class Stats:
    ops: Counter = field(default_factory=Counter)
    syncs: Counter = field(default_factory=Counter)
    faults: Counter = field(default_factory=Counter)
    fired_points: Counter = field(default_factory=Counter)
    unreached_points: Counter = field(default_factory=Counter)
    restarts: int = 0
    conflicts: int = 0
    resolved: Counter = field(default_factory=Counter)
    problems: Counter = field(default_factory=Counter)
    notices: Counter = field(default_factory=Counter)
    notice_at: list = field(default_factory=list)
    episodes: int = 0
    steps: int = 0
    failures: list = field(default_factory=list)

    def merge(self, other: Stats) -> None:
        for name in ("ops", "syncs", "faults", "fired_points", "unreached_points",
                     "resolved", "problems", "notices"):
            getattr(self, name).update(getattr(other, name))
        self.restarts += other.restarts
        self.conflicts += other.conflicts
        self.episodes += other.episodes
        self.steps += other.steps
        self.failures += other.failures
        self.notice_at += other.notice_at

    def report(self) -> str:
        def fmt(c: Counter) -> str:
            return ", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "none"
        return "\n".join([
            f"episodes {self.episodes}, steps {self.steps}",
            f"operations {sum(self.ops.values())}: {fmt(self.ops)}",
            f"syncs {sum(self.syncs.values())}: {fmt(self.syncs)}",
            f"faults armed {self.faults['armed']}, fired (crashes and pauses) "
            f"{self.faults['fired']}, not reached {self.faults['unreached']} "
            f"({self.faults['unreached_expected']} expected: the sync had no such step; "
            f"{self.faults['unreached_maybe']} after an interrupted push, whose receipt may "
            "leave nothing to push)",
            f"  fired at: {fmt(self.fired_points)}",
            f"  not reached although the sync had that step: {fmt(self.unreached_points)}",
            f"central restarts {self.restarts}",
            f"conflicts recorded {self.conflicts}, resolved {fmt(self.resolved)}",
            f"losses {self.problems['loss']}, other discrepancies "
            f"{fmt(Counter({k: v for k, v in self.problems.items() if k != 'loss'}))}",
            f"notices (not failures): {fmt(self.notices)}"
            + (f" (first at {self.notice_at[0]})" if self.notice_at else ""),
        ])


# --- the driver ----------------------------------------------------------------------------


class Episode:
    """One county, three agents and a central writer, ``steps`` random operations, the
    final convergence and the full check."""

    def __init__(self, central: Central, workdir: Path, seed: int, steps: int,
                 log: Callable[[str], None] = lambda s: None):
        self.central, self.dir, self.seed, self.steps = central, workdir, seed, steps
        self.rng = random.Random(seed)
        self.model = Model()
        self.stats = Stats(episodes=1)
        self.history: list[str] = []
        self.step = 0
        self.opno = 0
        self.log = log
        self.drift = 0
        self.pauses = 0
        self.env = self._child_env()
        self.agents: dict[str, AgentEnv] = {}
        self.conns: dict[str, sqlite3.Connection] = {}
        #: whether an agent's next pull copies parcels in full (a column was added
        #: centrally since); None once a sync that failed may or may not have done it
        self.full_copy: dict[str, Optional[bool]] = {}
        #: whether central holds row changes an agent has not pulled (its next sync then
        #: pulls; with nothing to push either, the poll is the whole sync); None: cannot tell
        self.behind: dict[str, Optional[bool]] = {}
        self.central_write_tick = 0
        self.w_keys = 0

    def _child_env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TERRAFUSION_")}
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO / "agent"), *filter(None, [env.get("PYTHONPATH")])])
        for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
            env[var] = str(self.dir / "xdg" / var.lower())
        return env

    # --- plumbing -----------------------------------------------------------------------

    def cli(self, agent: str, *args: str, extra: Optional[dict] = None,
            timeout: float = SYNC_TIMEOUT) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "terrafusion_agent", "--config",
             str(self.agents[agent].config), *args],
            capture_output=True, text=True, timeout=timeout, env={**self.env, **(extra or {})})

    def popen_sync(self, agent: str, extra: Optional[dict] = None) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "terrafusion_agent", "--config",
             str(self.agents[agent].config), "sync"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**self.env, **(extra or {})})

    def note(self, text: str) -> None:
        line = f"step {self.step:4d}: {text}"
        self.history.append(line)
        self.log(line)

    def fail(self, problems: list[Discrepancy]) -> None:
        for p in problems:
            self.stats.problems[p.kind] += p.count
        tail = "\n".join(self.history[-30:])
        body = "\n".join(f"[{p.kind}] {p.text}" for p in problems)
        count = f"{len(problems)} discrepanc{'y' if len(problems) == 1 else 'ies'}"
        message = (f"sync model: seed {self.seed}, step {self.step}: {count}\n{body}\n"
                   f"--- last operations (seed {self.seed}) ---\n{tail}\n"
                   f"--- replay: SYNC_MODEL_SEED={self.seed} SYNC_MODEL_STEPS={self.steps} "
                   f"pytest tests/test_sync_model.py, or python tests/sync_model.py "
                   f"--seed {self.seed} --steps {self.steps} --minutes 0 -v (the same "
                   "operations, until a step that depends on timing, such as syncs together "
                   "or a restart, takes another course)")
        self.stats.failures.append(message)
        raise ModelFailure(message, self.stats)

    def tag(self, writer: str) -> str:
        self.opno += 1
        return f"{writer}{self.opno}"

    def number(self, writer: str, base: int) -> int:
        self.opno += 1
        return base + self.opno * 10 + "ABCW".index(writer)

    # --- setup --------------------------------------------------------------------------

    def setup(self) -> None:
        url = self.central.url
        for name in AGENTS:
            d = self.dir / name
            self.agents[name] = AgentEnv(d, write_config(d, url), url)
        proc = self.cli("A", "init-central", "--demo-parcels", str(PARCELS))
        if proc.returncode:
            raise RuntimeError(f"init-central failed: {proc.stderr}")
        with self.central.connect() as conn:
            conn.execute("CHECKPOINT")  # the county survives the restarts to come
        for name in AGENTS:
            run = self.run_sync(name, fault=None)
            if run.rc:
                raise RuntimeError(f"first sync of {name} failed: {run.stderr}")
            self.conns[name] = local_connect(self.agents[name].local_path)
        self.model.load_initial(self.central.snapshot())
        self.behind = {name: False for name in AGENTS}
        self.note(f"county of {PARCELS} parcels, agents {', '.join(AGENTS)} synced")

    def close(self) -> None:
        for conn in self.conns.values():
            conn.close()

    # --- local edits, as QGIS makes them --------------------------------------------------

    def local_keys(self, agent: str, table: str) -> list:
        return [r[0] for r in self.conns[agent].execute(
            f"SELECT {qi(KEYS[table])} FROM {qi(table)}")]

    def pick_key(self, keys: list, table: str):
        if table == "parcels" and self.rng.random() < 0.55:
            hot = [k for k in HOT_KEYS if k in set(keys)]
            if hot:
                return self.rng.choice(hot)
        return self.rng.choice(keys) if keys else None

    def local_edit(self, agent: str, table: str, key, col: str, expr: str,
                   params: Callable[[int], tuple]) -> Optional[Write]:
        """One UPDATE in its own transaction; the value seen before it is its prev.
        ``params(attempt)``: a geometry edit that lands on a value the cell already had
        is rolled back and tried with the next attempt's parameters."""
        conn = self.conns[agent]
        pk = qi(KEYS[table])
        read = f"AsBinary({qi(col)})" if col == GEOM else qi(col)
        for attempt in range(5):
            conn.execute("BEGIN IMMEDIATE")
            try:
                prev = conn.execute(f"SELECT {read} FROM {qi(table)} WHERE {pk} = ?",
                                    (key,)).fetchone()
                if prev is None:
                    conn.execute("ROLLBACK")
                    return None
                conn.execute(f"UPDATE {qi(table)} SET {qi(col)} = {expr} WHERE {pk} = ?",
                             (*params(attempt), key))
                new = conn.execute(f"SELECT {read} FROM {qi(table)} WHERE {pk} = ?",
                                   (key,)).fetchone()[0]
                value = val(col, new)
                if self.model.known(table, key, col, value):
                    conn.execute("ROLLBACK")  # a geometry that happens to exist already
                    continue
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return self.model.record_set(agent, table, key, col, value, val(col, prev[0]),
                                         self.step)
        return None

    def op_local_update(self, agent: str) -> str:
        table = "sales" if self.rng.random() < 0.2 else "parcels"
        key = self.pick_key(self.local_keys(agent, table), table)
        cols = [c for c in EDITABLE[table] + (list(self.model.added) if table == "parcels"
                                               else [])
                if c in local_columns(self.conns[agent], table)]
        col = self.rng.choice(cols)
        if col in ("land_value", "sale_price"):
            value: Any = self.number(agent, 1_000_000)
        else:
            value = f"{self.tag(agent)} {col}"
        w = self.local_edit(agent, table, key, col, "?", lambda i: (value,))
        return f"{agent} local update {table} {key} {col} = {value!r}" + ("" if w else " (gone)")

    def op_local_geometry(self, agent: str) -> str:
        key = self.pick_key(self.local_keys(agent, "parcels"), "parcels")
        n = self.number(agent, 0)
        if self.rng.random() < 0.5:
            w = self.local_edit(agent, "parcels", key, GEOM, "ST_Translate(geom, ?, ?, 0)",
                                lambda i: (n % 97 + 1, n % 89 + 1 + i))
            what = "ST_Translate"
        else:
            def square(i: int) -> tuple:
                x, y = 1_040_000 + (n % 5000) * 7, 60_000 + (n // 5000) * 7 + i
                return (f"MULTIPOLYGON((({x} {y}, {x + 50} {y}, {x + 50} {y + 40}, "
                        f"{x} {y + 40}, {x} {y})))",)
            w = self.local_edit(agent, "parcels", key, GEOM, "GeomFromText(?, 2927)", square)
            what = "GeomFromText"
        return f"{agent} local geometry {what} parcels {key}" + ("" if w else " (gone)")

    def op_local_delete(self, agent: str) -> str:
        table = "sales" if self.rng.random() < 0.4 else "parcels"
        keys = self.local_keys(agent, table)
        if table == "parcels":
            keys = [k for k in keys if k not in HOT_KEYS[:4]]  # keep some rows contended
        key = self.pick_key(keys, table)
        conn = self.conns[agent]
        conn.execute("BEGIN IMMEDIATE")
        seen = local_read(conn, table, f"WHERE {qi(KEYS[table])} = ?", (key,)).get(key)
        conn.execute(f"DELETE FROM {qi(table)} WHERE {qi(KEYS[table])} = ?", (key,))
        conn.execute("COMMIT")
        if seen:
            self.model.record_delete(agent, table, key, seen, self.step)
        return f"{agent} local delete {table} {key}"

    def op_local_insert(self, agent: str) -> str:
        """A feature digitised offline: no key given, SQLite picks one and the agent's
        trigger stores the row under its next permanent key."""
        conn = self.conns[agent]
        tag = self.tag(agent)
        if self.rng.random() < 0.6:
            table = "parcels"
            x, y = 1_030_000 + (self.opno % 4000) * 9, 50_000 + (self.opno // 4000) * 9
            marker = f"INS {tag} LOT 1"
            row = {"geo_id": f"N-{tag}", "situs_address": f"{tag} situs", "owner_name":
                   f"{tag} owner", "legal_desc": marker, "acres": 0.25,
                   "land_value": self.number(agent, 3_000_000), "impr_value": 0,
                   "market_value": 1, "tax_area_code": "101", "property_use_code": "11",
                   "year_built": 2026}
            cols = ", ".join(qi(c) for c in [*row, GEOM])
            self.first_insert(agent, f"INSERT INTO parcels ({cols}) VALUES "
                              f"({', '.join('?' * len(row))}, GeomFromText(?, 2927))",
                              (*row.values(), f"MULTIPOLYGON((({x} {y}, {x + 30} {y}, "
                                              f"{x + 30} {y + 30}, {x} {y + 30}, {x} {y})))"))
        else:
            table = "sales"
            parcels = self.local_keys(agent, "parcels")
            marker = (FIRST_SALE_MARK + datetime.timedelta(days=self.opno)).isoformat()
            row = {"prop_id": self.rng.choice(parcels), "sale_date": marker,
                   "sale_price": self.number(agent, 4_000_000)}
            self.first_insert(agent, "INSERT INTO sales (prop_id, sale_date, sale_price) "
                              "VALUES (?, ?, ?)", tuple(row.values()))
        stored = local_read(conn, table, f"WHERE {qi(MARKER[table])} = ?", (marker,))
        if len(stored) != 1:
            self.fail([Discrepancy("duplicate", f"{agent}'s offline insert {marker} is "
                                   f"stored {len(stored)} times locally")])
        key, values = next(iter(stored.items()))
        if self.model.key_in_use(table, key):
            self.fail([Discrepancy("duplicate", f"{agent}'s offline insert into {table} got "
                                   f"key {key}, which another row has used")])
        values = {c: v for c, v in values.items()
                  if c not in self.model.added}  # left empty: not an edit
        self.model.record_insert(agent, table, key, values, self.step)
        return f"{agent} offline insert {table} key {key} ({marker})"

    def first_insert(self, agent: str, sql: str, params: tuple) -> None:
        """An INSERT on the long-lived connection, as QGIS makes it. After the agent
        rebuilt the table (a central column added), the first INSERT on a connection that
        had updated the table before fails with "no such table"; a second try works. That
        is recorded (seed and step) and reported at the end, not taken for a loss."""
        try:
            self.conns[agent].execute(sql, params)
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise
            self.stats.notices[f"first INSERT after a rebuild refused: {exc}"] += 1
            self.stats.notice_at.append(f"seed {self.seed} step {self.step} agent {agent}")
            self.note(f"  {agent}'s connection refused the INSERT ({exc}); tried again")
            self.conns[agent].execute(sql, params)

    # --- the central writer ---------------------------------------------------------------

    def central_written(self) -> None:
        """The central writer changed rows: every agent is behind."""
        self.central_write_tick = self.model.tick()
        self.behind.update({a: True for a in AGENTS})

    def central_keys(self, conn, table: str) -> list:
        return [r[0] for r in conn.execute(f"SELECT {qi(KEYS[table])} FROM {qi(table)}")]

    def central_edit(self, conn, table: str, key, col: str, expr: str,
                     params: Callable[[int], tuple]) -> Optional[Write]:
        """One UPDATE in its own transaction, the row locked while its old value is read."""
        pk = qi(KEYS[table])
        read = f"ST_AsBinary({qi(col)})" if col == GEOM else qi(col)
        for attempt in range(5):
            with conn.transaction():
                prev = conn.execute(f"SELECT {read} FROM {qi(table)} WHERE {pk} = %s "
                                    "FOR UPDATE", (key,)).fetchone()
                if prev is None:
                    return None
                new = conn.execute(f"UPDATE {qi(table)} SET {qi(col)} = {expr} WHERE {pk} = "
                                   f"%s RETURNING {read}", (*params(attempt), key)).fetchone()[0]
                value = val(col, new)
                if self.model.known(table, key, col, value):
                    raise psycopg.Rollback()  # a geometry the cell had already: next attempt
                self.central_written()
                return self.model.record_set(CENTRAL, table, key, col, value,
                                             val(col, prev[0]), self.step)
        return None

    def op_central_update(self) -> str:
        table = "sales" if self.rng.random() < 0.2 else "parcels"
        with self.central.connect() as conn:
            key = self.pick_key(self.central_keys(conn, table), table)
            cols = [c for c in EDITABLE[table] + (list(self.model.added)
                                                  if table == "parcels" else [])]
            col = self.rng.choice(cols)
            if col in ("land_value", "sale_price"):
                value: Any = self.number(CENTRAL, 1_000_000)
            else:
                value = f"{self.tag(CENTRAL)} {col}"
            w = self.central_edit(conn, table, key, col, "%s", lambda i: (value,))
        return f"W central update {table} {key} {col} = {value!r}" + ("" if w else " (gone)")

    def op_central_geometry(self) -> str:
        with self.central.connect() as conn:
            key = self.pick_key(self.central_keys(conn, "parcels"), "parcels")
            n = self.number(CENTRAL, 0)
            w = self.central_edit(conn, "parcels", key, GEOM, "ST_Translate(geom, %s, %s)",
                                  lambda i: (n % 83 + 1, n % 79 + 1 + i))
        return f"W central geometry ST_Translate parcels {key}" + ("" if w else " (gone)")

    def op_central_delete(self) -> str:
        table = "sales" if self.rng.random() < 0.4 else "parcels"
        with self.central.connect() as conn:
            keys = self.central_keys(conn, table)
            if table == "parcels":
                keys = [k for k in keys if k not in HOT_KEYS[:4]]
            key = self.pick_key(keys, table)
            with conn.transaction():
                seen = self.central.read(conn, table, f"WHERE {qi(KEYS[table])} = %s "
                                         "FOR UPDATE", (key,)).get(key)
                conn.execute(f"DELETE FROM {qi(table)} WHERE {qi(KEYS[table])} = %s", (key,))
        if seen:
            self.central_written()
            self.model.record_delete(CENTRAL, table, key, seen, self.step)
        return f"W central delete {table} {key}"

    def op_central_insert(self) -> str:
        tag = self.tag(CENTRAL)
        with self.central.connect() as conn, conn.transaction():
            if self.rng.random() < 0.6:
                table = "parcels"
                self.w_keys += 1
                key = 200_000 + self.w_keys  # the assessment system's own numbering
                x, y = 1_020_000 + (self.opno % 4000) * 9, 40_000 + (self.opno // 4000) * 9
                marker = f"INS {tag} LOT 1"
                conn.execute(
                    "INSERT INTO parcels (prop_id, geo_id, situs_address, owner_name, "
                    "legal_desc, acres, land_value, impr_value, market_value, tax_area_code, "
                    "property_use_code, year_built, geom) VALUES (%s, %s, %s, %s, %s, 0.5, "
                    "%s, 100, 200, '102', '12', 1999, ST_Multi(ST_MakeEnvelope(%s, %s, %s, "
                    "%s, 2927)))",
                    (key, f"N-{tag}", f"{tag} situs", f"{tag} owner", marker,
                     self.number(CENTRAL, 5_000_000), x, y, x + 20, y + 20))
            else:
                table = "sales"
                marker = (FIRST_SALE_MARK + datetime.timedelta(days=self.opno)).isoformat()
                key = conn.execute(
                    "INSERT INTO sales (prop_id, sale_date, sale_price) VALUES "
                    "((SELECT min(prop_id) FROM parcels), %s, %s) RETURNING sale_id",
                    (marker, self.number(CENTRAL, 6_000_000))).fetchone()[0]
            row = self.central.read(conn, table, f"WHERE {qi(KEYS[table])} = %s", (key,))[key]
        self.central_written()
        self.model.record_insert(CENTRAL, table, key, row, self.step)
        return f"W central insert {table} key {key} ({marker})"

    def op_add_column(self) -> str:
        self.drift += 1
        col = f"note_{self.drift}"
        default = f"default {self.drift}" if self.rng.random() < 0.5 else None
        clause = f" DEFAULT '{default}'" if default else ""
        with self.central.connect() as conn:
            conn.execute(f"ALTER TABLE parcels ADD COLUMN {qi(col)} text{clause}")
        self.model.add_column(col, val(col, default))
        self.full_copy.update({a: True for a in AGENTS})
        self.central_written()
        return f"W central ALTER TABLE parcels ADD COLUMN {col} text{clause}"

    # --- syncs, faults, restarts ----------------------------------------------------------

    def queue(self, agent: str) -> tuple[int, int]:
        """(edits waiting to be pushed, push batches of an interrupted sync) as the local
        copy holds them: only to tell which fault points a sync will pass."""
        conn = self.conns.get(agent)
        if conn is None:
            return 0, 0
        pending = conn.execute("SELECT count(*) FROM tf_local_changes "
                               "WHERE state = 'pending'").fetchone()[0]
        in_flight = conn.execute("SELECT count(*) FROM tf_push_inflight").fetchone()[0]
        return pending, in_flight

    def predicted_reachable(self, agent: str, point: str, nth: int, queue: tuple[int, int],
                            behind: Optional[bool] = None, start: bool = True
                            ) -> Optional[bool]:
        """Whether a sync starting with ``queue`` (and ``behind`` central, when
        ``start`` is False: the sync is over and central may have moved since) passes
        ``point`` ``nth`` times (None: cannot tell)."""
        if nth != 1:
            return False  # every point is passed at most once per sync here
        if point in ("pull.mid_bulk_copy", "schema.mid_rebuild"):
            return self.full_copy.get(agent, False)
        if point.startswith("pull."):
            # an idle sync (nothing new centrally, nothing to push) is the poll alone
            if self.full_copy.get(agent) or queue[0] or queue[1]:
                return True
            return self.behind.get(agent) if start else behind
        if point == "purge.before_commit":
            return None  # once per central per period, by whichever agent comes first
        if point.startswith("push."):
            # an interrupted push's receipt may settle the whole queue before the push
            return queue[0] > 0 if not queue[1] else None
        if point == "settle.before_local_commit":
            return queue[1] > 0
        return False  # keys: a block of a million never runs low; resolve: not a sync

    def choose_fault(self, agent: str) -> Optional[str]:
        if self.rng.random() >= 0.4:
            return None
        # points of a sync: a resolution or a discard is not one
        points = [p for p in POINTS if not p.startswith(("resolve.", "discard."))]
        if self.full_copy.get(agent) and self.rng.random() < 0.5:
            return self.rng.choice(["pull.mid_bulk_copy", "schema.mid_rebuild"])
        queue = self.queue(agent)
        likely = [p for p in points if self.predicted_reachable(agent, p, 1, queue)]
        point = self.rng.choice(likely if likely and self.rng.random() < 0.75 else points)
        return point if self.rng.random() < 0.9 else f"{point}:2"

    def run_sync(self, agent: str, fault: Optional[str], pause_action: Optional[str] = None
                 ) -> SyncRun:
        """One `terrafusion-agent sync`; with ``pause_action`` the process stops at the
        fault point while the central server is restarted (or written to)."""
        run = SyncRun(agent, self.model.tick(), fault=fault, queue=self.queue(agent),
                      behind=self.behind.get(agent))
        extra = {}
        if fault:
            extra["TERRAFUSION_FAULT"] = fault
            self.stats.faults["armed"] += 1
        pause = None
        if fault and pause_action:
            self.pauses += 1
            pause = self.dir / f"pause-{self.pauses}"
            extra["TERRAFUSION_FAULT_PAUSE"] = str(pause)
        proc = self.popen_sync(agent, extra)
        try:
            if pause is not None:
                reached = pause.with_name(pause.name + ".reached")
                deadline = time.monotonic() + SYNC_TIMEOUT
                while not reached.exists() and proc.poll() is None:
                    if time.monotonic() > deadline:
                        raise subprocess.TimeoutExpired("sync", SYNC_TIMEOUT)
                    time.sleep(0.005)
                if reached.exists():
                    run.fired = True
                    if pause_action == "restart":
                        self.central.stop()
                        run.restarted = True
                        time.sleep(self.rng.choice([0, 0, 0.2]))
                        self.central.start()
                        self.stats.restarts += 1
                    else:
                        run.central_written = True
                        self.note(f"  while {agent} waits at {fault}: "
                                  + self.central_op_between())
                    pause.with_name(pause.name + ".go").touch()
            run.stdout, run.stderr = proc.communicate(timeout=SYNC_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            if pause is not None:
                pause.with_name(pause.name + ".go").touch()
            self.fail([Discrepancy("sync", f"the sync of {agent} (fault {fault}) did not "
                                   f"finish within {SYNC_TIMEOUT} s")])
        run.rc = proc.returncode
        if run.rc == -9:
            run.fired = True
        return run

    def central_op_between(self) -> str:
        op = self.rng.choice([self.op_central_update, self.op_central_update,
                              self.op_central_geometry, self.op_central_insert,
                              self.op_central_delete])
        self.stats.ops["central_while_paused"] += 1
        return op()

    def book_behind(self, runs: list[SyncRun]) -> None:
        """Which agents are behind central after ``runs`` (syncs that ran together):
        rows a sync pushed put every other agent behind; a sync that worked caught its
        agent up, unless central was written while it ran; a failed one may have pulled
        before it failed."""
        def pushed(run: SyncRun) -> Optional[bool]:
            summary = run.summary if run.rc == 0 else None
            if summary is not None and summary.get("pushed"):
                return True
            could = run.queue[0] or run.queue[1] or run.edited_during
            return None if could and (summary is None or run.queue[1]) else False

        def either(a: Optional[bool], b: Optional[bool]) -> Optional[bool]:
            return True if True in (a, b) else None if None in (a, b) else False

        by = {run.agent: pushed(run) for run in runs}
        for agent in AGENTS:
            others: Optional[bool] = False
            for other, value in by.items():
                if other != agent:
                    others = either(others, value)
            run = next((r for r in runs if r.agent == agent), None)
            if run is None:
                self.behind[agent] = either(self.behind.get(agent), others)
            elif run.rc == 0:
                # its pull took what central had when it began: a write since may be in it
                meanwhile = others is not False or self.central_write_tick > run.started
                self.behind[agent] = None if meanwhile else False
            else:
                was = either(self.behind.get(agent), others)
                self.behind[agent] = None if was is not False else False

    def settle_run(self, run: SyncRun, alone: bool) -> list[Discrepancy]:
        """Book one finished sync: fault accounting, the model, and the checks that this
        outcome makes decidable."""
        problems: list[Discrepancy] = []
        agent = run.agent
        if run.fault:
            point, _, nth = run.fault.partition(":")
            if run.fired:
                self.stats.faults["fired"] += 1
                self.stats.fired_points[point] += 1
            elif run.rc == 0:
                self.stats.faults["unreached"] += 1
                reach = self.predicted_reachable(agent, point, int(nth or 1), run.queue,
                                                 run.behind, start=False)
                if reach is False:
                    self.stats.faults["unreached_expected"] += 1
                elif reach is None:
                    self.stats.faults["unreached_maybe"] += 1
                else:
                    self.stats.unreached_points[point] += 1
                    self.note(f"  {point} was not reached although this sync had it")
        if run.fired and run.fault and not run.fault.startswith(BEFORE_PULL_COMMIT):
            self.full_copy[agent] = False  # it died after its pull committed
        elif run.rc != 0 and self.full_copy.get(agent):
            self.full_copy[agent] = None
        if run.rc == 0:
            self.stats.syncs["ok"] += 1
            self.model.sync_succeeded(agent, run.started)
            self.full_copy[agent] = False
            summary = run.summary
            if summary is None:
                problems.append(Discrepancy("sync", f"{agent}'s sync printed no JSON summary"))
            elif not run.edited_during and summary.get("pending"):
                problems.append(Discrepancy("sync", f"{agent}'s sync succeeded with "
                                            f"{summary['pending']} edit(s) still pending"))
        elif run.rc == -9 and run.fault:
            self.stats.syncs["killed at a fault point"] += 1
        elif run.rc == 1 and run.restarted:
            self.stats.syncs["failed: central restarted"] += 1
            lines = run.stderr.strip().splitlines()
            if len(lines) != 1 or "Traceback" in run.stderr:
                problems.append(Discrepancy("sync", f"{agent}'s sync failed without one clear "
                                            f"sentence:\n{run.stderr}"))
        else:
            self.stats.syncs[f"failed: exit {run.rc}"] += 1
            problems.append(Discrepancy("sync", f"{agent}'s sync exited {run.rc} (fault "
                                        f"{run.fault}, central restarted: {run.restarted}):"
                                        f"\n{run.stderr.strip()}"))
        problems += self.refresh_conflicts(agent)
        return problems

    def refresh_conflicts(self, agent: str) -> list[Discrepancy]:
        proc = self.cli(agent, "conflicts", "list", "--all")
        if proc.returncode:
            return [Discrepancy("cli", f"conflicts list of {agent} exited "
                                f"{proc.returncode}: {proc.stderr}")]
        records = json.loads(proc.stdout)
        before = len(self.model.agents[agent].conflicts)
        problems = self.model.conflicts_listed(agent, records)
        self.stats.conflicts += len(self.model.agents[agent].conflicts) - before
        return problems

    def op_sync(self, agent: str) -> str:
        fault = self.choose_fault(agent)
        action = None
        if fault and self.rng.random() < 0.35:
            action = "restart" if self.rng.random() < 0.7 else "write"
            if action == "write" and fault.split(":")[0] in (
                    "push.before_central_commit", "keys.during_allocation",
                    "purge.before_commit"):
                action = "restart"  # central rows are locked there: a writer would wait
        run = self.run_sync(agent, fault, action)
        problems = self.settle_run(run, alone=True)
        self.book_behind([run])
        self.note(f"{agent} sync -> {run.outcome()}")
        central = self.central.snapshot()
        problems += self.model.check_central(central, self.step)
        if run.rc == 0 and not run.restarted and not run.central_written:
            local = {t: local_read(self.conns[agent], t) for t in KEYS}
            problems += self.model.check_copy(agent, local, central)
            problems += self.model.check_resolutions(agent, central)
        if problems:
            self.fail(problems)
        return f"{agent} sync"

    def op_sync_together(self) -> str:
        """Two or three agents sync at once; maybe a fault in one, a central write or a
        local edit meanwhile, or a central restart in the middle."""
        names = self.rng.sample(AGENTS, self.rng.choice([2, 3]))
        runs, procs = [], []
        faulty = self.rng.choice(names) if self.rng.random() < 0.3 else None
        for name in names:
            fault = self.choose_fault(name) if name == faulty else None
            run = SyncRun(name, self.model.tick(), fault=fault, queue=self.queue(name),
                          behind=self.behind.get(name))
            if fault:
                self.stats.faults["armed"] += 1
            runs.append(run)
            procs.append(self.popen_sync(name, {"TERRAFUSION_FAULT": fault} if fault else None))
        extra = self.rng.random()
        notes = []
        if extra < 0.2:
            time.sleep(self.rng.uniform(0.05, 0.3))
            self.central.restart()
            self.stats.restarts += 1
            for run in runs:
                run.restarted = True
            notes.append("central restarted meanwhile")
        elif extra < 0.45:
            notes.append("meanwhile " + self.central_op_between())
        elif extra < 0.65:
            i = self.rng.randrange(len(names))
            runs[i].edited_during = True
            notes.append("meanwhile " + self.op_local_update(names[i]))
        problems: list[Discrepancy] = []
        for run, proc in zip(runs, procs):
            try:
                run.stdout, run.stderr = proc.communicate(timeout=SYNC_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                self.fail([Discrepancy("sync", f"the sync of {run.agent} did not finish")])
            run.rc = proc.returncode
            run.fired = run.rc == -9
        for run in runs:
            problems += self.settle_run(run, alone=False)
        self.book_behind(runs)
        self.note(f"syncs together ({'; '.join(notes) or 'nothing else'}): " +
                  "; ".join(f"{r.agent} -> {r.outcome()}" for r in runs))
        problems += self.model.check_central(self.central.snapshot(), self.step)
        if problems:
            self.fail(problems)
        return "syncs together"

    def op_restart(self) -> str:
        """The central server stops at once (as on a crash); maybe an agent tries to sync
        while it is down; then it starts again."""
        self.central.stop()
        self.stats.restarts += 1
        text = "central stopped (immediate) and started"
        problems = []
        if self.rng.random() < 0.5:
            agent = self.rng.choice(AGENTS)
            run = SyncRun(agent, self.model.tick(), restarted=True,
                          behind=self.behind.get(agent))
            proc = self.cli(agent, "sync")
            run.rc, run.stdout, run.stderr = proc.returncode, proc.stdout, proc.stderr
            if run.rc != 1:
                problems.append(Discrepancy("sync", f"{agent}'s sync with central down "
                                            f"exited {run.rc}: {run.stderr}"))
            problems += self.settle_run(run, alone=True)
            self.book_behind([run])
            text += f"; {agent} synced while it was down -> {run.outcome()}"
        self.central.start()
        self.note(text)
        problems += self.model.check_central(self.central.snapshot(), self.step)
        if problems:
            self.fail(problems)
        return "central restart"

    def op_resolve(self) -> Optional[str]:
        candidates = [(a, c) for a in AGENTS for c in self.model.agents[a].open_conflicts()]
        if not candidates:
            return None
        agent, c = self.rng.choice(candidates)
        keep = self.rng.choice(["local", "central", "merge"])
        if keep == "merge":
            # a side per column needs both rows as they are now (a local delete since the
            # last listing leaves nothing to merge)
            problems = self.refresh_conflicts(agent)
            if problems:
                self.fail(problems)
            c = self.model.agents[agent].conflicts[c["id"]]
            if c["resolved_at"] is not None:
                return None
            if c["local"] is None or c["central"] is None:
                keep = self.rng.choice(["local", "central"])
            else:
                keep = {col: self.rng.choice(["local", "central"]) for col in c["columns"]}
        return self.resolve(agent, c, keep, fault_ok=True)

    def resolve(self, agent: str, c: dict, keep, fault_ok: bool = False) -> str:
        """Resolve ``c`` keeping ``keep`` ("local", "central"), or with the merge
        {column: side} ``keep``."""
        extra = None
        if fault_ok and self.rng.random() < 0.15:
            extra = {"TERRAFUSION_FAULT": "resolve.before_local_commit"}
            self.stats.faults["armed"] += 1
        how = (["--keep", keep] if isinstance(keep, str) else
               ["--merge", json.dumps(keep, sort_keys=True)])
        proc = self.cli(agent, "conflicts", "resolve", str(c["id"]), *how, extra=extra)
        outcome = "ok"
        problems: list[Discrepancy] = []
        if extra and proc.returncode == -9:
            self.stats.faults["fired"] += 1
            self.stats.fired_points["resolve.before_local_commit"] += 1
            outcome = "killed at resolve.before_local_commit"
        elif proc.returncode:
            problems.append(Discrepancy("cli", f"conflicts resolve {c['id']} {' '.join(how)} "
                                        f"of {agent} exited {proc.returncode}: {proc.stderr}"))
        elif extra:
            self.stats.faults["unreached"] += 1
            self.stats.unreached_points["resolve.before_local_commit"] += 1
        problems += self.refresh_conflicts(agent)
        now = self.model.agents[agent].conflicts[c["id"]]
        if now["resolved_at"] is not None:
            self.model.resolved(agent, c, keep)
            self.stats.resolved[f"keep {keep}" if isinstance(keep, str) else "merge"] += 1
        elif proc.returncode == 0:
            problems.append(Discrepancy("cli", f"conflict {c['id']} of {agent} is still open "
                                        f"after resolve {' '.join(how)}"))
        self.note(f"{agent} conflicts resolve {c['id']} ({c['table']} {c['pk']} "
                  f"{c['columns']}) {' '.join(how)} -> {outcome}")
        if problems:
            self.fail(problems)
        return f"{agent} resolve"

    # --- the episode ----------------------------------------------------------------------

    def choose_op(self) -> tuple[str, Callable[[], Optional[str]]]:
        a = self.rng.choice(AGENTS)
        table = [
            (30, "local update", lambda: self.op_local_update(a)),
            (6, "local geometry", lambda: self.op_local_geometry(a)),
            (4, "local delete", lambda: self.op_local_delete(a)),
            (8, "offline insert", lambda: self.op_local_insert(a)),
            (11, "central update", self.op_central_update),
            (3, "central geometry", self.op_central_geometry),
            (3, "central delete", self.op_central_delete),
            (4, "central insert", self.op_central_insert),
            (0.6 if self.drift < 3 else 0, "central add column", self.op_add_column),
            (17, "sync", lambda: self.op_sync(a)),
            (4, "syncs together", self.op_sync_together),
            (5, "resolve", self.op_resolve),
            (1.2, "central restart", self.op_restart),
        ]
        x = self.rng.uniform(0, sum(w for w, _, _ in table))
        for weight, name, op in table:
            x -= weight
            if x <= 0:
                return name, op
        return table[0][1], table[0][2]

    def run(self) -> Stats:
        self.setup()
        for step in range(1, self.steps + 1):
            self.step = self.stats.steps = step
            name, op = self.choose_op()
            text = op()
            if text is None:
                continue  # nothing to do (no open conflict to resolve)
            self.stats.ops[name] += 1
            if name.startswith("central") and name != "central restart":
                self.note(text)
                problems = self.model.check_central(self.central.snapshot(), self.step)
                if problems:
                    self.fail(problems)
            elif name.startswith(("local", "offline")):
                self.note(text)
        self.finish()
        return self.stats

    def finish(self) -> None:
        """Resolve every conflict, sync every agent until nothing moves, then twice more
        without faults, and check everything."""
        self.step = self.steps + 1
        self.note("final: resolve everything, sync until quiet")
        for rnd in range(8):
            for agent in AGENTS:
                for c in self.model.agents[agent].open_conflicts():
                    keep = self.rng.choice(["local", "central"]) if rnd < 3 else "central"
                    self.resolve(agent, c, keep)
            recorded = self.stats.conflicts
            for agent in AGENTS:
                self.final_sync(agent)
            if self.stats.conflicts == recorded and not any(
                    self.model.agents[a].open_conflicts() for a in AGENTS):
                break
        for _ in range(2):
            for agent in AGENTS:
                self.final_sync(agent)
        problems = []
        central = self.central.snapshot()
        problems += self.model.check_central(central, self.step)
        problems += self.model.check_final()
        for agent in AGENTS:
            view = self.model.agents[agent]
            if view.open_conflicts():
                problems.append(Discrepancy("conflict", f"{agent} still has open conflicts "
                                            f"after the final syncs: {view.open_conflicts()}"))
            local = {t: local_read(self.conns[agent], t) for t in KEYS}
            problems += self.model.check_copy(agent, local, central)
            problems += self.model.check_resolutions(agent, central)
            proc = self.cli(agent, "verify")
            if proc.returncode:
                problems.append(Discrepancy("verify", f"verify of {agent} exited "
                                            f"{proc.returncode}:\n{proc.stdout}{proc.stderr}"))
        self.note("final check done")
        if problems:
            self.fail(problems)

    def final_sync(self, agent: str) -> None:
        run = self.run_sync(agent, fault=None)
        problems = self.settle_run(run, alone=True)
        self.book_behind([run])
        self.stats.ops["final sync"] += 1
        self.note(f"{agent} final sync -> {run.outcome()}")
        if run.rc == 0:
            summary = run.summary or {}
            if summary.get("pending"):
                problems.append(Discrepancy("sync", f"{agent} has {summary['pending']} "
                                            "edit(s) pending after a final sync"))
        central = self.central.snapshot()
        problems += self.model.check_central(central, self.step)
        if run.rc == 0:
            local = {t: local_read(self.conns[agent], t) for t in KEYS}
            problems += self.model.check_copy(agent, local, central)
            problems += self.model.check_resolutions(agent, central)
        if problems:
            self.fail(problems)


def run_episode(seed: int, steps: int, workdir: Path, central: Optional[Central] = None,
                log: Callable[[str], None] = lambda s: None) -> Stats:
    """One episode on a fresh county (and a server of its own unless one is given);
    raises ModelFailure naming the seed, the step, the recent operations and what is
    wrong."""
    own = central is None
    if central is None:
        central = Central()
    central.create(f"county_{seed}")
    episode = Episode(central, Path(workdir), seed, steps, log)
    try:
        return episode.run()
    finally:
        episode.close()
        if own:
            central.close()
        else:
            central.ensure_running()
            central.drop()


def soak(minutes: float, seed: Optional[int], steps: int, verbose: bool) -> int:
    """Episodes with fresh seeds until the time is up; prints the totals."""
    base = seed if seed is not None else random.SystemRandom().randrange(1, 10**9)
    deadline = time.monotonic() + minutes * 60
    total = Stats()
    central = Central()
    root = Path(tempfile.mkdtemp(prefix="tf-soak-"))
    n = 0
    try:
        while True:
            episode_seed = base + n
            print(f"episode {n + 1}: seed {episode_seed}, {steps} steps", flush=True)
            try:
                stats = run_episode(episode_seed, steps, root / str(n), central,
                                    log=print if verbose else (lambda s: None))
            except ModelFailure as exc:
                stats = exc.stats
                print(str(exc), flush=True)
            total.merge(stats)
            shutil.rmtree(root / str(n), ignore_errors=True)
            n += 1
            if minutes == 0 or time.monotonic() > deadline:
                break
    finally:
        central.close()
        shutil.rmtree(root, ignore_errors=True)
    print("\n=== soak summary ===")
    print(total.report())
    if total.failures:
        print(f"\n{len(total.failures)} episode(s) failed; first seeds: " + ", ".join(
            f.split("seed ")[1].split(",")[0] for f in total.failures[:10]))
        return 1
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10,
                        help="run episodes until this much time has passed (0: one episode)")
    parser.add_argument("--seed", type=int, help="first episode's seed (default: random)")
    parser.add_argument("--steps", type=int, default=600, help="operations per episode")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every operation")
    args = parser.parse_args(argv)
    return soak(args.minutes, args.seed, args.steps, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
