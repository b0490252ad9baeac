"""``make loadtest``: a fleet of real agents against one PostGIS, measured and checked.

Starts a throwaway PostGIS with one demo county and N agents, each the agent's own code in
its own process (``terrafusion-agent run``) with its own configuration, local copy, HTTP
port and token, syncing every few seconds. Agents start in waves so the first full pulls
do not all land at once. Then two measured phases:

- **idle**: nobody edits; every sync is a poll that finds nothing;
- **load**: an "assessor import" (another database role) revalues random parcels
  centrally, analysts edit owner names in the agents' local copies the way QGIS does (its
  own SQLite connection, an UPDATE the local triggers capture), and some rows are edited
  in the same column on both sides so that conflicts happen.

For each phase: central CPU (the PostgreSQL server's processes, from /proc) per sync,
statements per sync (pg_stat_statements), sync latency p50/p99 (each agent's recorded
runs, ``GET /api/v1/syncs``), peak connections (``pg_stat_activity``), failed runs. From
the CPU per sync: how many agents one central core serves at a one-minute interval.

Then the oracle: the edit drivers stop, every agent syncs twice through its API (the
first round pushes every edit, the second pulls what the others pushed), and every edit
must be accounted for. Every value written is unique and recorded with the value its
writer saw in that cell (``prev``), so a cell's history is a chain: an edit is accounted
for when it is on the chain of central's final value (it arrived, or a writer who had
seen it overwrote it), or, for a local edit, when its agent recorded a conflict or a
rejection on that row. A central edit off the chain was overwritten by someone who never
saw it: a loss. Every agent's copy must equal central for every edited cell unless the
agent holds that row in an open conflict; every conflict must be on a row edited on both
sides; nothing may be left pending. Any violation: exit 1.

The harness knows the agent only from outside: its command line, its configuration file,
its HTTP API, its local copy as QGIS sees it; central only through SQL.

Usage: ``python scripts/loadtest.py [--agents N] [--minutes M] [--interval S] [...]``;
the report goes to ``build/loadtest.json`` and a table to stdout.
"""

from __future__ import annotations

import argparse
import atexit
import http.client
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

CLK = os.sysconf("SC_CLK_TCK")
DB = "county"
ASSESSOR = "tf_assessor"
#: application names of the harness's own connections, left out of the agents' figures
OWN_APPS = ("tf-loadtest", "assessor-import")
#: MemAvailable kept free for the rest of the machine while agents start
MEM_RESERVE_MB = 2048
#: the one-minute interval the agents-per-core figure is stated for
TARGET_INTERVAL = 60
GOAL_AGENTS_PER_CORE = 20_000
#: the interval agents start with: their first sync, then quiet until the test's own
#: interval is set, so the later waves' first pulls do not compete with a polling fleet
STARTUP_INTERVAL = 3600
#: the agents' nice value: the server and the drivers are not slowed by the fleet
AGENT_NICENESS = 10


@dataclass
class Options:
    agents: int = 200
    minutes: float = 3.0
    interval: int = 5
    #: demo county size; 0: 10 parcels per agent, at least 2,000
    parcels: int = 0
    idle_seconds: float = 30.0
    wave: int = 20
    #: local edits per agent per minute of the load phase
    local_rate: float = 1.0
    #: fraction of local edits whose cell central also edits, near the same time
    contested: float = 0.3
    #: assessor batches per second, and parcels revalued per batch
    central_rate: float = 0.5
    batch_rows: int = 10
    seed: int = 1
    out: Optional[str] = str(ROOT / "build" / "loadtest.json")

    def county_size(self) -> int:
        return self.parcels or max(2000, 10 * self.agents)


# --- /proc ----------------------------------------------------------------------------------


def _stat(pid: int) -> Optional[list[str]]:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _ticks(fields: list[str], children: bool = True) -> int:
    # utime stime, and cutime cstime: the CPU of children already reaped
    n = int(fields[11]) + int(fields[12])
    return n + int(fields[13]) + int(fields[14]) if children else n


def server_cpu_seconds(postmaster: int, exclude: set[int]) -> float:
    """CPU used so far by a PostgreSQL server: the postmaster with every backend it has
    reaped (a backend's CPU moves into its cutime when it exits) plus the live ones,
    except ``exclude`` (the harness's own backends, which live to the end)."""
    fields = _stat(postmaster)
    if fields is None:
        raise RuntimeError("The PostgreSQL server is gone.")
    total = _ticks(fields)
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in exclude:
            continue
        f = _stat(int(name))
        if f is not None and int(f[1]) == postmaster:
            total += _ticks(f)
    return total / CLK


def process_cpu_seconds(pids: list[int]) -> float:
    return sum(_ticks(f) for f in map(_stat, pids) if f is not None) / CLK


def rss_mb(pid: int) -> Optional[float]:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def mem_available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- values and the oracle ------------------------------------------------------------------


def norm(col: str, value: Any) -> Optional[str]:
    """One cell's value as a comparable string: central's Decimal and the local copy's
    double of the same numeric(14,2) compare equal."""
    if value is None:
        return None
    if col == "land_value":
        d = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
        return str(d.quantize(Decimal("0.01")))
    return str(value)


def oracle(edits: list[dict], central: dict[tuple, Optional[str]],
           copies: dict[int, dict[tuple, Optional[str]]], conflicts: dict[int, list[dict]],
           pending: dict[int, list[dict]]) -> dict:
    """Check a finished run (see the module's docstring). ``edits``: {"agent": i or None
    for central, "key", "col", "value", "prev"} with normalized values; ``central`` and
    each of ``copies``: {(key, col): value} for every edited cell; ``conflicts`` and
    ``pending``: per agent, as its API lists them. Returns the counts and violations."""
    by_cell: dict[tuple, dict[Optional[str], dict]] = {}
    for e in edits:
        by_cell.setdefault((e["key"], e["col"]), {})[e["value"]] = e
    on_chain: set[int] = set()
    for cell, written in by_cell.items():
        value, seen = central.get(cell), set()
        while value in written and value not in seen:
            seen.add(value)
            on_chain.add(id(written[value]))
            value = written[value]["prev"]

    def held(agent: int, key: Any, col: Optional[str] = None, open_only: bool = False):
        return any(c.get("table") == "parcels" and c.get("pk") == [key]
                   and (col is None or col in (c.get("columns") or []) or c["kind"] == "rejected")
                   and not (open_only and c.get("resolved_at"))
                   for c in conflicts.get(agent, []))

    violations: list[dict] = []
    arrived = by_conflict = 0
    for e in edits:
        if id(e) in on_chain:
            arrived += 1
        elif e["agent"] is not None and held(e["agent"], e["key"], e["col"]):
            by_conflict += 1
        elif e["agent"] is not None:
            violations.append({"kind": "local edit lost", "agent": e["agent"], "key": e["key"],
                               "column": e["col"], "value": e["value"],
                               "central": central.get((e["key"], e["col"]))})
        else:
            violations.append({"kind": "central edit overwritten unseen", "key": e["key"],
                               "column": e["col"], "value": e["value"],
                               "central": central.get((e["key"], e["col"]))})
    for agent, cells in copies.items():
        for cell, value in central.items():
            if cells.get(cell) != value and not held(agent, cell[0], open_only=True):
                violations.append({"kind": "copy differs from central", "agent": agent,
                                   "key": cell[0], "column": cell[1], "local": cells.get(cell),
                                   "central": value})
    edited_locally = {(e["agent"], e["key"], e["col"]) for e in edits if e["agent"] is not None}
    edited_centrally = {(e["key"], e["col"]) for e in edits if e["agent"] is None}
    kinds: dict[str, int] = {}
    for agent, found in conflicts.items():
        for c in found:
            kinds[c["kind"]] = kinds.get(c["kind"], 0) + 1
            key = (c.get("pk") or [None])[0]
            true = c["kind"] == "conflict" and all(
                (agent, key, col) in edited_locally and (key, col) in edited_centrally
                for col in c.get("columns") or [None])
            if not true:
                violations.append({"kind": f"unexpected {c['kind']}", "agent": agent,
                                   "key": key, "columns": c.get("columns"),
                                   "message": c.get("message")})
    for agent, found in pending.items():
        for p in found:
            if p.get("state") == "pending":
                violations.append({"kind": "edit still pending after the final syncs",
                                   "agent": agent, "key": p.get("key")})
    by_kind: dict[str, int] = {}
    for v in violations:
        by_kind[v["kind"]] = by_kind.get(v["kind"], 0) + 1
    return {"edits_checked": len(edits), "cells_checked": len(central),
            "copies_checked": len(copies), "arrived": arrived,
            "kept_as_conflict": by_conflict, "conflicts": kinds.get("conflict", 0),
            "rejected": kinds.get("rejected", 0), "violations": len(violations),
            "by_kind": by_kind, "examples": violations[:20]}


# --- the edit drivers (separate processes) --------------------------------------------------


class _Stop:
    flag = False


def _wait_until(when: float) -> bool:
    while not _Stop.flag:
        left = when - time.time()
        if left <= 0:
            return True
        time.sleep(min(left, 0.2))
    return False


def _log_line(out, record: dict) -> None:
    out.write(json.dumps(record) + "\n")
    out.flush()


def drive_local(plan: dict, out) -> None:
    """Analysts' edits: each opens the agent's local copy on its own connection with
    SpatiaLite loaded, as QGIS does, reads the cell and updates it in one transaction."""
    for when, agent, path, key, value in plan["local"]:
        if not _wait_until(when):
            return
        try:
            conn = sqlite3.connect(path, timeout=120, isolation_level=None)
            try:
                conn.enable_load_extension(True)
                conn.load_extension("mod_spatialite")
                conn.execute("BEGIN IMMEDIATE")
                row = conn.execute("SELECT owner_name FROM parcels WHERE prop_id = ?",
                                   (key,)).fetchone()
                if row is None:
                    conn.execute("ROLLBACK")
                    _log_line(out, {"error": f"agent {agent}: parcel {key} is not in its copy"})
                    continue
                conn.execute("UPDATE parcels SET owner_name = ? WHERE prop_id = ?", (value, key))
                conn.execute("COMMIT")
            finally:
                conn.close()
        except sqlite3.Error as exc:
            _log_line(out, {"error": f"agent {agent}: local edit of {key}: {exc}"})
            continue
        _log_line(out, {"agent": agent, "key": key, "col": "owner_name", "value": value,
                        "prev": norm("owner_name", row[0]), "t": time.time()})


def drive_central(plan: dict, out) -> None:
    """The assessor import: batches of revalued parcels, plus the owner names of some
    parcels analysts edit too, each under row locks taken in key order (as agents take
    them), logging the value seen before each write."""
    import psycopg

    rng = random.Random(plan["seed"])
    keys = plan["keys"]
    work: list[tuple[float, str, list]] = [(t, "owner_name", [k]) for t, k in plan["owners"]]
    t, n = plan["start"], 0
    while t < plan["end"]:
        work.append((t, "land_value", sorted(rng.sample(keys, plan["batch_rows"]))))
        t += plan["every"]
    work.sort(key=lambda w: w[0])
    conn = psycopg.connect(plan["url"], user=ASSESSOR, application_name="assessor-import",
                           autocommit=True)
    _log_line(out, {"backend_pid": conn.info.backend_pid})
    col_sql = {"land_value": "land_value = v.val::numeric",
               "owner_name": "owner_name = v.val"}
    for when, col, batch in work:
        if not _wait_until(when):
            break
        values = []
        for _ in batch:
            n += 1
            values.append(f"{9_000_000 + n}.25" if col == "land_value"
                          else f"ASSESSOR IMPORT {n}")
        try:
            with conn.transaction():
                prev = dict(conn.execute(
                    f"SELECT prop_id, {col} FROM parcels WHERE prop_id = ANY(%s) "
                    "ORDER BY prop_id FOR UPDATE", (batch,)).fetchall())
                conn.execute(
                    f"UPDATE parcels SET {col_sql[col]} FROM unnest(%s::bigint[], %s::text[]) "
                    "AS v(id, val) WHERE prop_id = v.id", (batch, values))
        except psycopg.Error as exc:
            _log_line(out, {"error": f"assessor import: {str(exc).strip()}"})
            continue
        now = time.time()
        for key, value in zip(batch, values):
            _log_line(out, {"agent": None, "key": key, "col": col, "value": norm(col, value),
                            "prev": norm(col, prev.get(key)), "t": now})
    conn.close()


def _driver_main(kind: str, plan_path: str, log_path: str) -> int:
    signal.signal(signal.SIGTERM, lambda *_: setattr(_Stop, "flag", True))
    signal.signal(signal.SIGINT, lambda *_: setattr(_Stop, "flag", True))
    plan = json.loads(Path(plan_path).read_text())
    with open(log_path, "a", encoding="utf-8") as out:
        (drive_local if kind == "local" else drive_central)(plan, out)
    return 0


# --- agents ---------------------------------------------------------------------------------


def _http(port: int, method: str, path: str, token: Optional[str] = None,
          timeout: float = 60) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        conn.request(method, path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, json.loads(body) if body else None
    finally:
        conn.close()


def _epoch(iso: Optional[str]) -> Optional[float]:
    if not iso:
        return None
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@dataclass
class Agent:
    index: int
    dir: Path
    port: int
    proc: Optional[subprocess.Popen] = None
    token: Optional[str] = None
    first_sync: bool = False
    runs: list[dict] = field(default_factory=list)

    @property
    def config(self) -> Path:
        return self.dir / "agent.toml"

    @property
    def local_path(self) -> Path:
        return self.dir / "local.sqlite"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def get(self, path: str) -> Any:
        status, body = _http(self.port, "GET", path)
        if status != 200:
            raise RuntimeError(f"agent {self.index}: GET {path} answered {status}: {body}")
        return body

    def sync_once(self, deadline: float) -> dict:
        """A sync that starts now, through the API, followed to its end. A sync already
        running started before now: wait for it, then ask again."""
        if self.token is None:
            self.token = (self.dir / "token").read_text().strip()
        while time.time() < deadline:
            status, body = _http(self.port, "POST", "/api/v1/syncs", self.token)
            if status not in (202, 409):
                raise RuntimeError(f"agent {self.index}: POST /api/v1/syncs answered "
                                   f"{status}: {body}")
            run = {"result": "running"}
            while run.get("result") == "running" and time.time() < deadline:
                time.sleep(0.3)
                run = self.get(f"/api/v1/syncs/{body['id']}")
            if status == 202:
                return run
        raise RuntimeError(f"agent {self.index}: the final sync did not end in time")


def _free_ports(n: int) -> list[int]:
    import socket

    held = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            held.append(s)
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


def _pct(values: list[float], q: float) -> Optional[float]:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


# --- the fleet ------------------------------------------------------------------------------


class Fleet:
    """Everything a run starts: one folder, the cluster, agents, drivers. ``close()``
    (also at exit) stops every process by its process group and removes the folder."""

    def __init__(self, opts: Options, log: Callable[[str], None]):
        self.opts = opts
        self.log = log
        self.root = Path(tempfile.mkdtemp(prefix="tf-loadtest-"))
        self.cluster: Any = None
        self.sampler: Any = None
        self.agents: list[Agent] = []
        self.drivers: list[subprocess.Popen] = []
        self.errors: list[str] = []
        self._closed = False
        atexit.register(self.close)

    # processes

    def _spawn(self, cmd: list[str], out: Path, env: Optional[dict] = None) -> subprocess.Popen:
        # own session: Ctrl+C reaches the harness, which stops everything in order;
        # the parent-death signal ends the process even if the harness is killed hard
        with open(out, "ab") as f:
            return subprocess.Popen(["setpriv", "--pdeathsig", "SIGTERM", "--", *cmd],
                                    stdout=f, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)

    def _stop(self, procs: list[subprocess.Popen], grace: float) -> None:
        live = [p for p in procs if p.poll() is None]
        for p in live:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.time() + grace
        for p in live:
            try:
                p.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                pass
        for p in live:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop(self.drivers, 10)
        self._stop([a.proc for a in self.agents if a.proc is not None], 20)
        if self.cluster is not None:
            self.cluster.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    # central

    def start_central(self) -> str:
        from pgcluster import PgCluster

        # room for every agent keeping a connection, and statement statistics
        conns = max(100, 2 * self.opts.agents + 20)
        self.cluster = PgCluster(extra_options=f"-c max_connections={conns} "
                                 "-c shared_preload_libraries=pg_stat_statements").start()
        url = self.cluster.create_db(DB)
        self._write_config(self.root / "init", url, 0)
        n = self.opts.county_size()
        subprocess.run([sys.executable, "-m", "terrafusion_agent", "--config",
                        str(self.root / "init" / "agent.toml"), "init-central",
                        "--demo-parcels", str(n)], check=True, capture_output=True,
                       env=self._env(self.root / "init"))
        for sql in ("CREATE EXTENSION pg_stat_statements",
                    f"DO $$ BEGIN CREATE ROLE {ASSESSOR} LOGIN; EXCEPTION WHEN "
                    "duplicate_object THEN NULL; END $$",
                    f"GRANT USAGE ON SCHEMA public TO {ASSESSOR}",
                    f"GRANT SELECT, UPDATE ON parcels TO {ASSESSOR}"):
            self.cluster.psql(DB, sql)
        self.url = url
        return url

    def postmaster(self) -> int:
        return int((self.cluster.data / "postmaster.pid").read_text().split()[0])

    # agents

    def _env(self, home: Path) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TERRAFUSION_")}
        for var, sub in (("XDG_CONFIG_HOME", "xdg-config"), ("XDG_DATA_HOME", "xdg-data"),
                         ("XDG_STATE_HOME", "xdg-state"), ("XDG_CACHE_HOME", "xdg-cache")):
            env[var] = str(home / sub)
        return env

    def _write_config(self, directory: Path, url: str, port: int,
                      interval: int = STARTUP_INTERVAL) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "agent.toml").write_text(
            f'[central]\nurl = "{url}"\n[local]\npath = "local.sqlite"\n'
            f'[sync]\ninterval_seconds = {interval}\n'
            f'[http]\nport = {port}\n[logging]\ndir = "logs"\n', encoding="utf-8")

    def start_agents(self) -> None:
        """Waves of ``opts.wave`` agents, each wave once the previous one has finished its
        first syncs; no new wave while less than MEM_RESERVE_MB would stay available."""
        ports = _free_ports(self.opts.agents)
        for i in range(self.opts.agents):
            self.agents.append(Agent(i, self.root / f"agent{i:03d}", ports[i]))
        for start in range(0, len(self.agents), self.opts.wave):
            wave = self.agents[start:start + self.opts.wave]
            per_agent = self._rss_per_agent()
            if mem_available_mb() - per_agent * len(wave) < MEM_RESERVE_MB:
                self.errors.append(
                    f"only {start} agents started: {mem_available_mb():.0f} MB available, "
                    f"{per_agent:.0f} MB per agent, {MEM_RESERVE_MB} MB kept free")
                self.log(self.errors[-1])
                break
            for a in wave:
                self._write_config(a.dir, self.url, a.port)
                # central and the edit drivers stand for other machines: on this one they
                # go first, and the agents share what is left
                a.proc = self._spawn(["nice", "-n", str(AGENT_NICENESS), sys.executable, "-m",
                                      "terrafusion_agent", "--config", str(a.config), "run"],
                                     a.dir / "agent.out", self._env(a.dir))
            self._await_first_sync(wave)
            started = sum(a.proc is not None for a in self.agents)
            ok = sum(a.first_sync for a in self.agents)
            self.log(f"  {started} agents started, {ok} synced once, "
                     f"{mem_available_mb():.0f} MB available")

    def set_interval(self, interval: int, spread: bool) -> None:
        """``interval`` in every agent's file, each told to re-read it (a reload schedules
        the next sync one interval later). ``spread``: the reloads spread over one
        interval, so the fleet's syncs are spread as a real fleet's are."""
        agents = self.live_agents()
        gap = interval / max(1, len(agents)) if spread else 0.0
        for a in agents:
            t = time.time()
            self._write_config(a.dir, self.url, a.port, interval)
            a.token = (a.dir / "token").read_text().strip()
            status, body = _http(a.port, "POST", "/api/v1/config/reload", a.token)
            if status != 200 or "sync.interval_seconds" not in body.get("changed", []):
                self.errors.append(f"agent {a.index}: the reload answered {status}: {body}")
            time.sleep(max(0.0, gap - (time.time() - t)))

    def _rss_per_agent(self) -> float:
        rss = [r for a in self.agents if a.alive() for r in [rss_mb(a.proc.pid)] if r]
        return max(rss) if rss else 120.0

    def _await_first_sync(self, wave: list[Agent], timeout: float = 600) -> None:
        deadline = time.time() + timeout
        waiting = list(wave)
        while waiting and time.time() < deadline:
            time.sleep(1)
            for a in list(waiting):
                if not a.alive():
                    self.errors.append(f"agent {a.index} exited at start "
                                       f"({a.proc.returncode}): {self._tail(a)}")
                    waiting.remove(a)
                    continue
                try:
                    health = a.get("/health")
                except (OSError, RuntimeError, http.client.HTTPException):
                    continue  # not listening yet
                if health.get("last_success"):
                    a.first_sync = True
                    waiting.remove(a)
        for a in waiting:
            self.errors.append(f"agent {a.index} had no successful sync within "
                               f"{timeout:.0f} s of its start")

    def _tail(self, a: Agent) -> str:
        try:
            return (a.dir / "agent.out").read_text(errors="replace").strip()[-300:]
        except OSError:
            return ""

    def live_agents(self) -> list[Agent]:
        return [a for a in self.agents if a.alive() and a.first_sync]

    # drivers

    def start_drivers(self, start: float, end: float) -> Path:
        """Plans every edit of the load phase (times, rows, values) and starts the two
        drivers; returns the folder their logs go to."""
        o = self.opts
        rng = random.Random(o.seed)
        keys = [r[0] for r in self.sampler.sql("SELECT prop_id FROM parcels ORDER BY prop_id")]
        agents = self.live_agents()
        # each agent edits its own rows, each at most once: a local edit's value is then
        # only ever challenged by central, and the chain of a cell stays short
        shuffled = keys[:]
        rng.shuffle(shuffled)
        share = len(shuffled) // max(1, len(agents))
        rows = {a.index: shuffled[k * share:(k + 1) * share] for k, a in enumerate(agents)}
        count = int(o.local_rate * len(agents) * (end - start) / 60)
        local, owners = [], []
        for n in range(count):
            free = [a for a in agents if rows[a.index]]
            if not free:
                break
            a = rng.choice(free)
            key = rows[a.index].pop()
            when = rng.uniform(start, end)
            local.append((when, a.index, str(a.local_path), key, f"ANALYST {a.index}/{n}"))
            if rng.random() < o.contested:
                # the same cell at central: before, during or after the agent's next sync
                owners.append((min(end, max(start, when + rng.uniform(-o.interval,
                                                                       2 * o.interval))),
                               key))
        local.sort()
        folder = self.root / "drivers"
        folder.mkdir(exist_ok=True)
        plan = {"start": start, "end": end, "seed": o.seed, "url": self.url, "keys": keys,
                "every": 1 / o.central_rate if o.central_rate > 0 else end - start + 1,
                "batch_rows": min(o.batch_rows, len(keys)), "local": local, "owners": owners}
        (folder / "plan.json").write_text(json.dumps(plan))
        for kind in ("local", "central"):
            self.drivers.append(self._spawn(
                [sys.executable, str(Path(__file__).resolve()), "--drive", kind,
                 str(folder / "plan.json"), str(folder / f"{kind}.jsonl")],
                folder / f"{kind}.out"))
        return folder

    def wait_drivers(self, end: float) -> None:
        """Drivers finish their plan; one that fell behind gets a minute more, then is
        stopped (what it did not do is not in its log, and the report shows it)."""
        for p in self.drivers:
            try:
                p.wait(max(1, end + 60 - time.time()))
            except subprocess.TimeoutExpired:
                pass
        self._stop(self.drivers, 10)
        for p in self.drivers:
            if p.returncode != 0:
                self.errors.append(f"an edit driver exited with {p.returncode}")


class Sampler(threading.Thread):
    """Four times a second: agents' connections to central; every five seconds: memory."""

    def __init__(self, fleet: Fleet):
        super().__init__(daemon=True)
        import psycopg

        self.fleet = fleet
        self.conn = psycopg.connect(fleet.url, application_name="tf-loadtest",
                                    autocommit=True)
        self.backend_pid = self.conn.info.backend_pid
        self.connections: list[tuple[float, int]] = []
        self.memory: list[tuple[float, float, list[float]]] = []
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        n = 0
        while not self._halt.wait(0.25):
            try:
                with self._lock:
                    count = self.conn.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
                        "'client backend' AND NOT application_name = ANY(%s)",
                        (list(OWN_APPS),)).fetchone()[0]
                self.connections.append((time.time(), count))
            except Exception as exc:  # the run goes on; the gap shows in the samples
                self.fleet.errors.append(f"sampling pg_stat_activity: {exc}")
            n += 1
            if n % 20 == 0:
                rss = [r for a in self.fleet.agents if a.alive()
                       for r in [rss_mb(a.proc.pid)] if r]
                self.memory.append((time.time(), mem_available_mb(), rss))

    def sql(self, query: str, params: tuple = ()) -> list:
        with self._lock:
            return self.conn.execute(query, params or None).fetchall()

    def stop(self) -> None:
        self._halt.set()
        self.join(5)
        self.conn.close()


@dataclass
class Phase:
    name: str
    start: float = 0.0
    end: float = 0.0
    cpu: float = 0.0
    agent_cpu: float = 0.0
    statements: int = 0
    statement_ms: float = 0.0
    sessions: int = 0


_PGSS = ("SELECT coalesce(sum(calls), 0)::bigint, coalesce(sum(total_exec_time), 0)::float8 "
         "FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid "
         f"WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = '{DB}') "
         f"AND r.rolname <> '{ASSESSOR}' AND s.query NOT ILIKE '%pg_stat%'")


_SESSIONS = f"SELECT sessions FROM pg_stat_database WHERE datname = '{DB}'"


class Measure:
    def __init__(self, fleet: Fleet, sampler: Sampler, exclude: set[int]):
        self.fleet, self.sampler, self.exclude = fleet, sampler, exclude

    def begin(self, name: str) -> Phase:
        self.sampler.sql("SELECT pg_stat_statements_reset()")
        p = Phase(name, start=time.time())
        p.sessions = self.sampler.sql(_SESSIONS)[0][0]
        p.cpu = server_cpu_seconds(self.fleet.postmaster(), self.exclude)
        p.agent_cpu = process_cpu_seconds([a.proc.pid for a in self.fleet.live_agents()])
        return p

    def end(self, p: Phase) -> Phase:
        p.end = time.time()
        p.cpu = server_cpu_seconds(self.fleet.postmaster(), self.exclude) - p.cpu
        p.agent_cpu = process_cpu_seconds(
            [a.proc.pid for a in self.fleet.live_agents()]) - p.agent_cpu
        p.statements, p.statement_ms = self.sampler.sql(_PGSS)[0]
        p.sessions = self.sampler.sql(_SESSIONS)[0][0] - p.sessions
        return p


def _phase_report(p: Phase, agents: list[Agent], sampler: Sampler) -> dict:
    runs = [r for a in agents for r in a.runs
            if (_epoch(r.get("started_at")) or 0) >= p.start
            and (_epoch(r.get("started_at")) or 0) < p.end]
    done = [r for r in runs if r.get("result") in ("success", "failed")]
    lat = [1000 * r["duration_seconds"] for r in done if r.get("duration_seconds") is not None]
    seconds = p.end - p.start
    syncs = len(runs)
    conns = [n for t, n in sampler.connections if p.start <= t < p.end]
    cpu_per = p.cpu / syncs if syncs else None
    return {
        "seconds": round(seconds, 1), "agents": len(agents), "syncs": syncs,
        "failed": sum(r.get("result") == "failed" for r in runs),
        "syncs_per_second": round(syncs / seconds, 2) if seconds else None,
        "effective_interval_s": round(len(agents) * seconds / syncs, 1) if syncs else None,
        "central_cpu_s": round(p.cpu, 2),
        # CPU is counted in clock ticks (10 ms): a few idle polls may use less than one
        "central_cpu_ms_per_sync": round(1000 * cpu_per, 3) if cpu_per is not None else None,
        "statements_per_sync": round(p.statements / syncs, 1) if syncs else None,
        "statement_ms_per_sync": round(p.statement_ms / syncs, 3) if syncs else None,
        "agent_cpu_ms_per_sync": round(1000 * p.agent_cpu / syncs, 1) if syncs else None,
        "latency_p50_ms": round(_pct(lat, 0.5), 1) if lat else None,
        "latency_p99_ms": round(_pct(lat, 0.99), 1) if lat else None,
        "latency_max_ms": round(max(lat), 1) if lat else None,
        "new_connections_per_sync": round(p.sessions / syncs, 2) if syncs else None,
        "connections_peak": max(conns) if conns else None,
        "connections_mean": round(statistics.mean(conns), 1) if conns else None,
        "agents_per_core_at_60s": int(TARGET_INTERVAL / cpu_per) if cpu_per else None,
        "pulled": sum(r.get("pulled") or 0 for r in runs),
        "pushed": sum(r.get("pushed") or 0 for r in runs),
        "conflicts": sum(r.get("conflicts") or 0 for r in runs),
    }


def _read_edits(folder: Path, fleet: Fleet) -> tuple[list[dict], Optional[int]]:
    edits, backend = [], None
    for kind in ("local", "central"):
        path = folder / f"{kind}.jsonl"
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            if "backend_pid" in rec:
                backend = rec["backend_pid"]
            elif "error" in rec:
                fleet.errors.append(rec["error"])
            else:
                edits.append(rec)
    return edits, backend


def _driver_backend(log_path: Path, deadline: float) -> Optional[int]:
    """The pid of the assessor driver's server backend, its log's first line."""
    while time.time() < deadline:
        if log_path.exists():
            first = log_path.read_text(encoding="utf-8").split("\n", 1)[0]
            if first.endswith("}"):
                return json.loads(first).get("backend_pid")
        time.sleep(0.2)
    return None


def _check(sampler: Sampler, edits: list[dict], agents: list[Agent]) -> dict:
    cells = sorted({(e["key"], e["col"]) for e in edits})
    keys = sorted({k for k, _ in cells})
    central: dict[tuple, Optional[str]] = {}
    rows = sampler.sql(
        "SELECT prop_id, owner_name, land_value FROM parcels WHERE prop_id = ANY(%s)", (keys,))
    by_key = {r[0]: {"owner_name": r[1], "land_value": r[2]} for r in rows}
    for key, col in cells:
        central[(key, col)] = norm(col, by_key.get(key, {}).get(col))
    copies, conflicts, pending = {}, {}, {}
    for a in agents:
        conn = sqlite3.connect(str(a.local_path), timeout=120)
        try:
            found = {r[0]: {"owner_name": r[1], "land_value": r[2]} for r in conn.execute(
                f"SELECT prop_id, owner_name, land_value FROM parcels WHERE prop_id IN "
                f"({','.join('?' * len(keys))})", keys)} if keys else {}
        finally:
            conn.close()
        copies[a.index] = {(k, c): norm(c, found.get(k, {}).get(c)) for k, c in cells}
        conflicts[a.index] = a.get("/api/v1/conflicts?all=true")["conflicts"]
        pending[a.index] = a.get("/api/v1/pending")["edits"]
    return oracle(edits, central, copies, conflicts, pending)


def _group_errors(messages: list[str]) -> list[dict]:
    groups: dict[str, int] = {}
    for m in messages:
        key = re.sub(r"\d+", "N", (m or "(no message)").strip())[:240]
        groups[key] = groups.get(key, 0) + 1
    return [{"message": k, "count": v} for k, v in sorted(groups.items(), key=lambda x: -x[1])]


def run(opts: Options, log: Callable[[str], None] = print) -> dict:
    """One load test; returns the report (see the module's docstring). Every process and
    folder it made is gone when it returns or raises."""
    fleet = Fleet(opts, log)
    sampler: Optional[Sampler] = None
    try:
        t0 = time.time()
        log(f"central: PostGIS with a {opts.county_size():,}-parcel demo county")
        fleet.start_central()
        sampler = fleet.sampler = Sampler(fleet)
        sampler.start()
        log(f"starting {opts.agents} agents in waves of {opts.wave}")
        t_agents = time.time()
        fleet.start_agents()
        startup_s = time.time() - t_agents
        log(f"every agent now syncs every {opts.interval} s")
        fleet.set_interval(opts.interval, spread=True)
        time.sleep(2 * opts.interval)
        exclude = {sampler.backend_pid}
        measure = Measure(fleet, sampler, exclude)
        phases: list[Phase] = []
        if opts.idle_seconds > 0:
            log(f"idle phase: {opts.idle_seconds:.0f} s, no edits")
            p = measure.begin("idle")
            time.sleep(opts.idle_seconds)
            phases.append(measure.end(p))
        load_s = opts.minutes * 60
        log(f"load phase: {load_s:.0f} s of central and local edits")
        start = time.time() + 1
        folder = fleet.start_drivers(start, start + load_s)
        # the assessor's backend is not an agent's cost: wait for its pid, then exclude it
        backend = _driver_backend(folder / "central.jsonl", time.time() + 30)
        if backend:
            exclude.add(backend)
        p = measure.begin("load")
        fleet.wait_drivers(start + load_s)
        phases.append(measure.end(p))
        edits, _ = _read_edits(folder, fleet)
        planned = json.loads((folder / "plan.json").read_text())

        agents = fleet.live_agents()
        log(f"oracle: {len(edits)} edits; the agents stop polling, then each syncs twice")
        # the final syncs on a quiet machine: the oracle's rounds are not measured
        fleet.set_interval(STARTUP_INTERVAL, spread=False)
        final_failures = []
        for round_no in (1, 2):
            pool = ThreadPoolExecutor(16)
            try:
                results = list(pool.map(_final_sync, agents))
            finally:
                # on Ctrl+C, no waiting for syncs in flight: stopping the agents ends them
                pool.shutdown(wait=False, cancel_futures=True)
            for a, r in zip(agents, results):
                if r.get("result") != "success":
                    final_failures.append(f"agent {a.index}, final round {round_no}: "
                                          f"{r.get('error') or r}")
        verdict = _check(sampler, edits, agents)
        for msg in final_failures:
            verdict["violations"] += 1
            verdict["by_kind"]["final sync failed"] = \
                verdict["by_kind"].get("final sync failed", 0) + 1
            verdict["examples"].append({"kind": "final sync failed", "detail": msg})
        for a in fleet.agents:
            if a.proc is not None and a.alive():
                a.runs = a.get("/api/v1/syncs?limit=1000")["runs"]
        died = [f"agent {a.index} exited with {a.proc.returncode}: {fleet._tail(a)}"
                for a in fleet.agents if a.proc is not None and not a.alive()]
        all_runs = [r for a in fleet.agents for r in a.runs]
        first = [r for a in fleet.agents if a.runs for r in [min(
            a.runs, key=lambda r: r["id"])] if r.get("duration_seconds") is not None]
        memory = sampler.memory
        rss_all = [r for _, _, rss in memory for r in rss]
        report = {
            "options": asdict(opts) | {"parcels": opts.county_size()},
            "machine": {"cpus": os.cpu_count(),
                        "mem_total_mb": round(_meminfo("MemTotal") / 1024)},
            "agents": {
                "requested": opts.agents,
                "started": sum(a.proc is not None for a in fleet.agents),
                "synced_once": sum(a.first_sync for a in fleet.agents),
                "startup_s": round(startup_s, 1),
                "first_sync_p50_s": round(_pct([r["duration_seconds"] for r in first], .5), 2)
                if first else None,
                "first_sync_max_s": round(max(r["duration_seconds"] for r in first), 2)
                if first else None,
                "rss_mb_mean": round(statistics.mean(rss_all), 1) if rss_all else None,
                "rss_mb_max": round(max(rss_all), 1) if rss_all else None,
                "rss_total_mb_peak": round(max(sum(rss) for _, _, rss in memory))
                if memory else None,
                "mem_available_mb_min": round(min(m for _, m, _ in memory)) if memory else None,
            },
            "phases": {p.name: _phase_report(p, agents, sampler) for p in phases},
            "edits": {
                "planned_local": len(planned["local"]),
                "planned_central": len(planned["owners"]) + planned["batch_rows"] * int(
                    (planned["end"] - planned["start"]) / planned["every"] + 0.999),
                "local": sum(e["agent"] is not None for e in edits),
                "central_land_value": sum(e["agent"] is None and e["col"] == "land_value"
                                          for e in edits),
                "central_owner_name": sum(e["agent"] is None and e["col"] == "owner_name"
                                          for e in edits),
            },
            "errors": {
                "failed_runs": sum(r.get("result") == "failed" for r in all_runs),
                "failed_by_message": _group_errors(
                    [r.get("error") for r in all_runs if r.get("result") == "failed"]),
                "agents_died": died,
                "harness": fleet.errors,
            },
            "oracle": verdict,
            "seconds": round(time.time() - t0, 1),
            "work_dir": str(fleet.root),
        }
        report["headline"] = _headline(report)
        return report
    finally:
        if sampler is not None:
            sampler.stop()
        fleet.close()


def _final_sync(a: Agent) -> dict:
    try:
        return a.sync_once(time.time() + 600)
    except (OSError, RuntimeError, http.client.HTTPException) as exc:
        return {"result": "failed", "error": str(exc)}


def _meminfo(name: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return 0


def _headline(report: dict) -> dict:
    phases = report["phases"]
    basis = "idle" if phases.get("idle", {}).get("central_cpu_ms_per_sync") else "load"
    ms = phases[basis]["central_cpu_ms_per_sync"]
    out = {"basis": basis, "central_core_seconds_per_poll": ms / 1000 if ms else None,
           "polls_per_core_second": round(1000 / ms, 1) if ms else None,
           "agents_per_core_at_60s": int(TARGET_INTERVAL * 1000 / ms) if ms else None,
           "goal_agents_per_core": GOAL_AGENTS_PER_CORE}
    if "load" in phases and phases["load"].get("agents_per_core_at_60s"):
        out["agents_per_core_at_60s_with_edits"] = phases["load"]["agents_per_core_at_60s"]
    return out


def table(report: dict) -> list[tuple]:
    """The report as rows for a table: measure, then one column per phase."""
    names = list(report["phases"])
    rows: list[tuple] = [("measure", *names)]
    labels = [
        ("agents syncing", "agents"), ("syncs", "syncs"), ("failed syncs", "failed"),
        ("effective interval (s)", "effective_interval_s"),
        ("central CPU per sync (ms)", "central_cpu_ms_per_sync"),
        ("statements per sync", "statements_per_sync"),
        ("statement time per sync (ms)", "statement_ms_per_sync"),
        ("agent CPU per sync (ms)", "agent_cpu_ms_per_sync"),
        ("sync latency p50 (ms)", "latency_p50_ms"), ("sync latency p99 (ms)", "latency_p99_ms"),
        ("new connections to central per sync", "new_connections_per_sync"),
        ("connections to central, peak", "connections_peak"),
        ("connections to central, mean", "connections_mean"),
        ("rows pulled / pushed", None), ("conflicts detected", "conflicts"),
        ("agents one central core serves at 60 s", "agents_per_core_at_60s"),
    ]
    for label, key in labels:
        if key is None:
            rows.append((label, *(f"{report['phases'][n]['pulled']} / "
                                  f"{report['phases'][n]['pushed']}" for n in names)))
        else:
            rows.append((label, *(report["phases"][n].get(key) for n in names)))
    ag, o, h = report["agents"], report["oracle"], report["headline"]
    rows += [
        ("agents started / synced once", f"{ag['started']} / {ag['synced_once']}"),
        ("first full pull p50 / max (s)", f"{ag['first_sync_p50_s']} / {ag['first_sync_max_s']}"),
        ("agent RSS mean / max (MB)", f"{ag['rss_mb_mean']} / {ag['rss_mb_max']}"),
        ("edits: local / central land value / central owner",
         f"{report['edits']['local']} / {report['edits']['central_land_value']} / "
         f"{report['edits']['central_owner_name']}"),
        ("oracle: arrived / kept as conflict / violations",
         f"{o['arrived']} / {o['kept_as_conflict']} / {o['violations']}"),
        ("failed runs (all phases) / agents died",
         f"{report['errors']['failed_runs']} / {len(report['errors']['agents_died'])}"),
        (f"agents per central core at 60 s ({h['basis']} polls; goal "
         f"{h['goal_agents_per_core']:,})", h["agents_per_core_at_60s"]),
    ]
    return rows


def print_table(rows: list[tuple]) -> None:
    widths = [max(len(str(r[i])) if i < len(r) else 0 for r in rows)
              for i in range(max(map(len, rows)))]
    for r in rows:
        print("  " + "  ".join(str(c).ljust(widths[i]) for i, c in enumerate(r)).rstrip())


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--drive"]:
        return _driver_main(*argv[1:4])
    d = Options()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=d.agents,
                    help="agents to start, each its own process (default %(default)s)")
    ap.add_argument("--minutes", type=float, default=d.minutes,
                    help="length of the load phase")
    ap.add_argument("--interval", type=int, default=d.interval,
                    help="each agent's sync.interval_seconds (at least 5)")
    ap.add_argument("--parcels", type=int, default=d.parcels,
                    help="demo county size (default: 10 per agent, at least 2,000)")
    ap.add_argument("--idle-seconds", type=float, default=d.idle_seconds,
                    help="length of the idle phase, nobody editing (default %(default)s)")
    ap.add_argument("--wave", type=int, default=d.wave, help="agents started at once")
    ap.add_argument("--local-rate", type=float, default=d.local_rate,
                    help="local edits per agent per minute")
    ap.add_argument("--contested", type=float, default=d.contested,
                    help="fraction of local edits central also makes to the same cell")
    ap.add_argument("--central-rate", type=float, default=d.central_rate,
                    help="assessor batches per second")
    ap.add_argument("--batch-rows", type=int, default=d.batch_rows,
                    help="parcels each assessor batch revalues (default %(default)s)")
    ap.add_argument("--seed", type=int, default=d.seed,
                    help="seed of the edits' random choices (default %(default)s)")
    ap.add_argument("--out", default=d.out, help="the JSON report")
    args = ap.parse_args(argv)
    if args.interval < 5:
        ap.error("--interval must be at least 5 (sync.interval_seconds' minimum)")
    if args.agents < 1:
        ap.error("--agents must be at least 1")
    opts = Options(**{k: v for k, v in vars(args).items()})

    # SIGTERM and SIGHUP end the run like Ctrl+C: through the finally that stops it all
    def _interrupt(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    try:
        report = run(opts, log=lambda m: print(m, flush=True))
    except KeyboardInterrupt:
        print("interrupted; every agent, driver and the cluster are stopped", file=sys.stderr)
        return 130
    if opts.out:
        out = Path(opts.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))
    print_table(table(report))
    o = report["oracle"]
    if o["violations"]:
        print(f"ORACLE: {o['violations']} violations {o['by_kind']}; first: "
              f"{json.dumps(o['examples'][:5])}", file=sys.stderr)
    if report["errors"]["failed_by_message"]:
        print("failed runs by message:", file=sys.stderr)
        for g in report["errors"]["failed_by_message"][:10]:
            print(f"  {g['count']:5d}  {g['message']}", file=sys.stderr)
    for m in report["errors"]["agents_died"] + report["errors"]["harness"]:
        print(f"  {m}", file=sys.stderr)
    if opts.out:
        print(f"report in {opts.out}")
    return 1 if o["violations"] or report["errors"]["agents_died"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
