"""Helpers for the tests of the agent as a service: HTTP calls, waiting, running agents."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from conftest import AgentEnv, embedded_agent
from terrafusion_agent import config as config_mod
from terrafusion_agent.service.daemon import Agent

# the agent is local: never route test requests through a proxy from the environment
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Answer:
    """One HTTP answer: status, headers, raw body, and the body as JSON when it is."""

    def __init__(self, status: int, headers, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def __repr__(self) -> str:
        return f"<Answer {self.status} {self.body[:300]!r}>"


def call(method: str, url: str, body: Any = None, *, token: Optional[str] = None,
         headers: Optional[dict[str, str]] = None, raw: Optional[bytes] = None,
         timeout: float = 15) -> Answer:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None and "Content-Type" not in req.headers:
        req.add_header("Content-Type", "application/json")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return Answer(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, exc.headers, exc.read())


def get(url: str, **kw) -> Answer:
    return call("GET", url, **kw)


def post(url: str, body: Any = None, **kw) -> Answer:
    return call("POST", url, body, **kw)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str,
             interval: float = 0.2) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def last_sync_result(base: str) -> Optional[str]:
    body = get(base + "/health").json
    return (body.get("last_sync") or {}).get("result")


def idle_schedule(config, trigger, stop, **_):
    """Stands in for run_sync when a test wants no sync to change the agent's state: it
    waits for the agent to stop."""
    from terrafusion_agent.errors import SyncCancelled

    stop.wait()
    raise SyncCancelled("The sync was stopped.")


class HeldSync:
    """The real ``run_sync``, which a test can hold where it chooses: ``"start"`` (the run
    is recorded and running, its work not begun) or ``"progress"`` (at the first progress
    report of the engine: in the middle of the pull or the push, its transaction open).

    Pass it to the Agent as ``sync``; ``with held.held(where):`` holds the next sync there
    until the block ends, and ``held.reached`` tells when it got there.
    """

    def __init__(self):
        self._where: Optional[str] = None
        self.reached = threading.Event()
        self._go = threading.Event()

    def __call__(self, config, trigger, stop, run_id, progress):
        from terrafusion_agent.sync.engine import run_sync

        where = self._where
        if where == "start":
            self._wait()

        def report(table: str, done: int, total: int) -> None:
            progress(table, done, total)
            if where == "progress" and not self.reached.is_set():
                self._wait()

        return run_sync(config, trigger=trigger, stop=stop, run_id=run_id, progress=report)

    def _wait(self) -> None:
        self.reached.set()
        if not self._go.wait(60):
            raise AssertionError("a held sync was not let go within 60 s")

    def wait_reached(self, timeout: float = 30) -> None:
        if not self.reached.wait(timeout):
            raise AssertionError(f"the held sync did not get to {self._where} in {timeout} s")

    @contextmanager
    def held(self, where: str = "start") -> Iterator[HeldSync]:
        self.reached.clear()
        self._go.clear()
        self._where = where
        try:
            yield self
        finally:
            self._where = None
            self._go.set()


@contextmanager
def serving_agent(directory: Path, parcels: int, *, sync: Optional[Callable] = None
                  ) -> Iterator[tuple[AgentEnv, Agent]]:
    """An agent serving in this process on a new SpatiaLite central of ``parcels`` demo
    parcels (it syncs at start, then every five minutes); stopped on leaving.
    ``sync`` replaces run_sync (a :class:`HeldSync`, say)."""
    env = embedded_agent(directory, "[sync]\ninterval_seconds = 300\n")
    env.run("init-central", "--demo-parcels", str(parcels))
    with started_agent(env, sync=sync) as agent:
        yield env, agent


@contextmanager
def started_agent(env: AgentEnv, *, sync: Optional[Callable] = None) -> Iterator[Agent]:
    """An agent serving ``env``'s configuration in this process, which a reload reads again
    from the file (never from this process's environment); stopped on leaving. ``sync``
    replaces run_sync."""
    def load() -> config_mod.Config:
        return config_mod.load(env.config, environ={})

    agent = Agent(load(), sync=sync, load_config=load)
    agent.start()
    try:
        yield agent
    finally:
        agent.stop()


def start_process(config: Path, env: Optional[dict[str, str]] = None,
                  interval: Optional[int] = 5) -> tuple[subprocess.Popen, str]:
    """``terrafusion-agent run`` in a subprocess; returns it and its base URL.

    ``interval`` overrides the file's sync interval from the environment (None: the
    file's own).
    """
    override = {} if interval is None else {"TERRAFUSION_SYNC__INTERVAL_SECONDS": str(interval)}
    full_env = {**os.environ, **override, **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "terrafusion_agent", "--config", str(config), "run"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(r"health: (http://\S+)/health", line)
        if m:
            return proc, m.group(1)
    proc.kill()
    raise AssertionError(f"agent did not start: {proc.stderr.read()}")


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


@contextmanager
def local_write_lock(path: Path) -> Iterator[sqlite3.Connection]:
    """Hold the local copy's SQLite write lock, as a long QGIS edit session would.

    Any sync must record its run in the local copy first, so while this is held a sync
    that starts waits (the busy timeout), deterministically.
    """
    conn = sqlite3.connect(str(path), timeout=5, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def read_token(config_dir: Path) -> str:
    return (config_dir / "token").read_text().strip()
