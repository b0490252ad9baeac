"""The agent as a service: idle footprint after a sync, /health latency under load, and
how soon it stops.

Starts ``terrafusion-agent run`` on a small embedded demo county, lets the first sync
finish, then measures from /proc for 60 s of idleness (RSS, CPU), and /health latency at
200 requests/s for 10 s from a second process, each request on a new connection as curl
or a monitoring probe would make it. Latencies count from each request's scheduled time,
so a stalled server cannot hide behind a stalled load generator (no coordinated
omission). Then SIGINT: how soon the idle agent exits. Last, an agent whose sync is stuck
in a database call (the local copy's write lock held by another connection, as a long
QGIS edit session would hold it): /health latency meanwhile, and how soon SIGTERM ends it.

Goals (issue 4): idle RSS <= 80 MB, idle CPU < 0.5 %, /health p99 < 20 ms; /health while
a sync is stuck under 1 s; exit after SIGINT or SIGTERM within 10 s (README), at once when
idle. And /health answers within 1 s while 300 other connections sit idle, and while 300
clients dribble their request headers a line at a time (waitress's defaults shut every
client out for up to 120 s at 100 open connections).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

IDLE_SECONDS = 60
RATE = 200
LOAD_SECONDS = 10
PARCELS = 2000
#: connections held open by others while /health is asked, and how often it is asked
HELD_CONNECTIONS = 300
HELD_PROBES = 20

_LOADGEN = r"""
import http.client, json, sys, threading, time
host, port = sys.argv[1], int(sys.argv[2])
rate, seconds, workers = float(sys.argv[3]), float(sys.argv[4]), 4
n = int(rate * seconds)
lat = [None] * n
errors = []
start = time.perf_counter() + 0.2

def worker(k):
    for i in range(k, n, workers):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        try:
            c = http.client.HTTPConnection(host, port, timeout=5)
            c.request("GET", "/health")
            r = c.getresponse()
            r.read()
            c.close()
            if r.status != 200:
                errors.append(r.status)
        except Exception as exc:
            errors.append(repr(exc))
        lat[i] = (time.perf_counter() - due) * 1000

threads = [threading.Thread(target=worker, args=(k,)) for k in range(workers)]
for t in threads: t.start()
for t in threads: t.join()
elapsed = time.perf_counter() - start
print(json.dumps({"latencies_ms": [x for x in lat if x is not None], "errors": errors[:10],
                  "error_count": len(errors), "elapsed": elapsed}))
"""


def _get(url: str) -> dict:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as resp:
        return json.loads(resp.read())


def _health_ms(host: str, port: int) -> float:
    """One GET /health on a new connection, in ms (10 s at most)."""
    import http.client

    started = time.perf_counter()
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", "/health")
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"/health answered {response.status}")
    finally:
        conn.close()
    return (time.perf_counter() - started) * 1000


def _health_while_held(host: str, port: int, dribble: bool) -> float:
    """The slowest of a few /health requests while HELD_CONNECTIONS other connections
    stay open: idle, or sending a header line every 0.1 s and never ending the request."""
    import socket
    import threading

    held = [socket.create_connection((host, port), timeout=10)
            for _ in range(HELD_CONNECTIONS)]
    stop = threading.Event()

    def dribbler() -> None:
        for conn in held:
            conn.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        n = 0
        while not stop.wait(0.1):
            n += 1
            for conn in held:
                conn.sendall(f"X-Slow-{n}: 1\r\n".encode())

    thread = threading.Thread(target=dribbler, daemon=True) if dribble else None
    try:
        if thread:
            thread.start()
            time.sleep(0.5)  # the dribbling is under way
        return max(_health_ms(host, port) for _ in range(HELD_PROBES))
    finally:
        stop.set()
        if thread:
            thread.join(10)
        for conn in held:
            conn.close()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _start(agent: list[str]) -> tuple[subprocess.Popen, str]:
    """``terrafusion-agent run``; returns the process and its base URL."""
    proc = subprocess.Popen([*agent, "run"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = re.search(r"health: (http://\S+)/health", proc.stdout.readline())
        if m:
            return proc, m.group(1)
    proc.kill()
    raise RuntimeError(f"the agent did not start: {proc.stderr.read()}")


def _stop_seconds(proc: subprocess.Popen, sig: int) -> float:
    """Seconds from ``sig`` to the process's exit (which must be 0)."""
    t0 = time.monotonic()
    proc.send_signal(sig)
    code = proc.wait(60)
    took = time.monotonic() - t0
    if code != 0:
        raise RuntimeError(f"the agent exited {code} after signal {sig}")
    return took


def _stuck_sync(agent: list[str], local: Path) -> dict:
    """/health latency while a sync waits on the local copy's write lock, then SIGTERM."""
    blocker = sqlite3.connect(str(local), timeout=5, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    proc = None
    try:
        proc, base = _start(agent)
        deadline = time.monotonic() + 30
        while not _get(base + "/health").get("sync_running"):
            if time.monotonic() > deadline:
                raise RuntimeError("the scheduled sync did not start")
            time.sleep(0.1)
        latencies = []
        for _ in range(20):
            t0 = time.perf_counter()
            _get(base + "/health")
            latencies.append((time.perf_counter() - t0) * 1000)
        stop = _stop_seconds(proc, signal.SIGTERM)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        blocker.execute("ROLLBACK")
        blocker.close()
    return {"health_while_stuck_median_ms": round(statistics.median(latencies), 2),
            "health_while_stuck_max_ms": round(max(latencies), 2),
            "sigterm_stuck_sync_exit_s": round(stop, 2)}


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def run(ctx) -> dict:
    work: Path = ctx.work / "service"
    work.mkdir(parents=True, exist_ok=True)
    for stale in ("central.sqlite", "local.sqlite"):
        for suffix in ("", "-wal", "-shm"):
            (work / f"{stale}{suffix}").unlink(missing_ok=True)
    config = work / "agent.toml"
    config.write_text(
        f'[central]\nurl = "sqlite:///{work / "central.sqlite"}"\n'
        '[local]\npath = "local.sqlite"\n[sync]\ninterval_seconds = 3600\n'
        '[http]\nport = 0\n[logging]\ndir = "logs"\n', encoding="utf-8")
    agent = [sys.executable, "-m", "terrafusion_agent", "--config", str(config)]
    subprocess.run([*agent, "init-central", "--demo-parcels", str(PARCELS)], check=True,
                   capture_output=True, timeout=600)

    proc, base = _start(agent)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            body = _get(base + "/health")
            if (body.get("last_sync") or {}).get("result") == "success" \
                    and not body.get("sync_running"):
                break
            time.sleep(0.5)
        else:
            raise RuntimeError("the first sync did not finish")
        pulled = body["last_sync"]["pulled"]
        rss_after_sync = _rss_mb(proc.pid)

        # idle: no request, no sync (the next one is an hour away)
        ticks0, t0 = _cpu_ticks(proc.pid), time.monotonic()
        peak = rss_after_sync
        while time.monotonic() - t0 < IDLE_SECONDS:
            time.sleep(1)
            peak = max(peak, _rss_mb(proc.pid))
        cpu_seconds = (_cpu_ticks(proc.pid) - ticks0) / os.sysconf("SC_CLK_TCK")
        idle_cpu = 100 * cpu_seconds / (time.monotonic() - t0)
        idle_rss = _rss_mb(proc.pid)

        host, port = base.split("//", 1)[1].rsplit(":", 1)
        load = subprocess.run([sys.executable, "-c", _LOADGEN, host, port, str(RATE),
                               str(LOAD_SECONDS)], capture_output=True, text=True, check=True,
                              timeout=LOAD_SECONDS * 10)
        result = json.loads(load.stdout)
        lat = result["latencies_ms"]
        rss_after_load = _rss_mb(proc.pid)
        held_idle_ms = _health_while_held(host, int(port), dribble=False)
        held_dribbling_ms = _health_while_held(host, int(port), dribble=True)
        sigint_idle = _stop_seconds(proc, signal.SIGINT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stuck = _stuck_sync(agent, work / "local.sqlite")

    out = {
        "parcels": PARCELS,
        "rows_pulled": pulled,
        "idle_seconds": IDLE_SECONDS,
        "rss_after_sync_mb": round(rss_after_sync, 1),
        "idle_rss_mb": round(idle_rss, 1),
        "idle_rss_peak_mb": round(peak, 1),
        "idle_cpu_percent": round(idle_cpu, 3),
        "health_rate_rps": RATE,
        "health_requests": len(lat),
        "health_errors": result["error_count"],
        "health_p50_ms": round(_pct(lat, 0.50), 2),
        "health_p99_ms": round(_pct(lat, 0.99), 2),
        "health_max_ms": round(max(lat), 2),
        "rss_after_load_mb": round(rss_after_load, 1),
        "sigint_idle_exit_s": round(sigint_idle, 2),
        **stuck,
        "held_connections": HELD_CONNECTIONS,
        "health_max_ms_with_idle_connections": round(held_idle_ms, 2),
        "health_max_ms_with_dribbling_connections": round(held_dribbling_ms, 2),
    }
    out["table"] = [
        ("measure", "value", "goal"),
        ("idle RSS after a sync (MB)", out["idle_rss_mb"], "<= 80"),
        ("idle CPU over 60 s (%)", out["idle_cpu_percent"], "< 0.5"),
        (f"/health p50 at {RATE} req/s (ms)", out["health_p50_ms"], ""),
        (f"/health p99 at {RATE} req/s (ms)", out["health_p99_ms"], "< 20"),
        ("/health errors", out["health_errors"], "0"),
        ("/health while a sync is stuck, max (ms)", out["health_while_stuck_max_ms"],
         "< 1000"),
        ("exit after SIGINT, idle (s)", out["sigint_idle_exit_s"], "< 3"),
        ("exit after SIGTERM, sync stuck (s)", out["sigterm_stuck_sync_exit_s"], "<= 10"),
        (f"/health with {HELD_CONNECTIONS} idle connections open, slowest (ms)",
         out["health_max_ms_with_idle_connections"], "< 1000"),
        (f"/health with {HELD_CONNECTIONS} clients dribbling headers, slowest (ms)",
         out["health_max_ms_with_dribbling_connections"], "< 1000"),
    ]
    return out
