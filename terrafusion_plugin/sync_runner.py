"""One "sync now", whoever asks (the dock's task, the ``terrafusion:sync`` algorithm).

No Qt here. When the agent serving the configured local copy answers, it is asked to
sync (``POST /api/v1/syncs``) and the run is followed in ``GET /api/v1/syncs``: two
processes must never sync one copy at once, and the agent holds the copy's lock. When
none answers, the agent package's own ``run_sync`` runs under that same lock, exactly as
``terrafusion-agent sync`` does: in a child Python (``sync_worker.py``, see there why)
whose progress comes back as JSON lines, or, when no Python interpreter can be found to
start, in the calling thread.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from .agent_client import AgentClient, ApiError, NoAnswer, base_url

#: progress(fraction 0..1 or None when unknown, table being synced or "")
Progress = Callable[[Optional[float], str], None]
#: how often a sync run by the agent is looked at
POLL_SECONDS = 0.5
#: a run that never shows up in the agent's history is given up on after this long
FIND_RUN_SECONDS = 30.0

VIA_AGENT = "agent"
VIA_PLUGIN = "plugin"


class SyncFailed(Exception):
    """The sync failed or was stopped; ``str()`` is one sentence for the user (empty for a
    cancel that has nothing more to say: the caller words it in the user's language)."""

    def __init__(self, message: str, cancelled: bool = False):
        super().__init__(message)
        self.cancelled = cancelled


def agent_client_for(cfg, timeout: float = 2.0) -> Optional[AgentClient]:
    """A client for the agent that serves ``cfg``'s local copy, or None if none answers."""
    if not cfg.http_port:
        return None  # port 0: the agent picked a port nobody can know
    client = AgentClient(base_url(cfg.http_host, cfg.http_port), cfg.token_file)
    try:
        status, live = client.get("/health/live", timeout)
        if status != 200 or live.get("status") != "pass":
            return None
        _, health = client.get("/health", max(timeout, 5.0))
    except NoAnswer:
        return None
    if health.get("local_path") not in (None, str(cfg.local_path)):
        return None  # an agent for another copy holds the port
    return client


def sync_now(cfg, progress: Optional[Progress] = None,
             cancelled: Optional[Callable[[], bool]] = None,
             trigger: str = "plugin") -> dict:
    """Sync ``cfg``'s local copy now; the summary (``via`` says who ran it).

    Raises :class:`SyncFailed` with the agent's sentence when it fails or is stopped.
    """
    progress = progress or (lambda fraction, table: None)
    cancelled = cancelled or (lambda: False)
    client = agent_client_for(cfg)
    if client is not None:
        try:
            return _via_agent(client, progress, cancelled)
        except NoAnswer:
            pass  # the agent went away between the check and the request: sync here
    from .agent_launcher import python_interpreter

    python = python_interpreter()
    if python is not None:
        return _in_child(cfg, progress, cancelled, trigger, python)
    return _in_process(cfg, progress, cancelled, trigger)


# --- through the running agent ------------------------------------------------------------


def _via_agent(client: AgentClient, progress: Progress,
               cancelled: Callable[[], bool]) -> dict:
    progress(None, "")
    baseline = _latest_run_id(client)
    try:
        status, body = client.post("/api/v1/syncs")
    except ApiError as exc:
        raise SyncFailed(str(exc)) from None
    if status == 409:
        # A scheduled sync runs already: the user's wish is fulfilled when it ends.
        run_id = None
    else:
        try:
            body = client.checked(status, body, 200, 202)
        except ApiError as exc:
            raise SyncFailed(str(exc)) from None
        run_id = body.get("id")
    run = _wait_for_run(client, run_id, baseline, cancelled)
    result = run.get("result")
    if result != "success":
        raise SyncFailed(run.get("error") or f"The agent's sync ended with result {result}.",
                         cancelled=result == "cancelled")
    progress(1.0, "")
    return {**run, "via": VIA_AGENT}


def _latest_run_id(client: AgentClient) -> int:
    _, body = client.get("/api/v1/syncs?limit=1")
    runs = body.get("runs") or []
    return int(runs[0]["id"]) if runs else 0


def _wait_for_run(client: AgentClient, run_id: Optional[int], baseline: int,
                  cancelled: Callable[[], bool]) -> dict:
    """Poll the agent's history until the run (or the first run after ``baseline``) ends."""
    started = time.monotonic()
    while True:
        if cancelled():
            raise SyncFailed("Stopped waiting; the agent finishes the sync on its own.",
                             cancelled=True)
        _, body = client.get("/api/v1/syncs?limit=10")
        runs = [r for r in body.get("runs") or [] if isinstance(r, dict)]
        if run_id is not None:
            mine = [r for r in runs if r.get("id") == run_id]
        else:
            mine = sorted((r for r in runs if int(r.get("id") or 0) > baseline),
                          key=lambda r: r["id"])[:1]
            if not mine:
                # the 409 case: the run in progress may have started before ``baseline``
                mine = [r for r in runs if r.get("result") == "running"][:1]
                if not mine and runs and time.monotonic() - started > POLL_SECONDS * 4:
                    mine = runs[:1]
        if mine and mine[0].get("result") not in (None, "running"):
            return mine[0]
        if not mine and time.monotonic() - started > FIND_RUN_SECONDS:
            raise SyncFailed("The agent accepted the sync, but it never appeared in its "
                             "history.")
        time.sleep(POLL_SECONDS)


# --- here, without the agent -------------------------------------------------------------


class _Overall:
    """run_sync reports per table; the bar shows the whole run."""

    def __init__(self, tables, progress: Progress):
        self.tables = list(tables) or [""]
        self.seen: list[str] = []
        self.progress = progress

    def __call__(self, table: str, done: int, total: int) -> None:
        if table not in self.seen:
            self.seen.append(table)
        index = min(self.seen.index(table), len(self.tables) - 1)
        within = (done / total) if total else 1.0
        self.progress(min(1.0, (index + within) / len(self.tables)), table)


def _in_child(cfg, progress: Progress, cancelled: Callable[[], bool], trigger: str,
              python: str) -> dict:
    from .agent_launcher import child_environment

    command = [python, str(Path(__file__).with_name("sync_worker.py")), "--trigger", trigger]
    if cfg.source is not None:
        command += ["--config", str(cfg.source)]
    kwargs: dict = {}
    if os.name == "nt":
        # its own process group, so that CTRL_BREAK reaches it and not QGIS
        kwargs["creationflags"] = (subprocess.CREATE_NEW_PROCESS_GROUP
                                   | subprocess.CREATE_NO_WINDOW)
    overall = _Overall(cfg.tables, progress)
    progress(0.0, "")
    try:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,  # noqa: S603
                                stderr=subprocess.PIPE, env=child_environment(),
                                encoding="utf-8", errors="replace", **kwargs)
    except OSError:
        return _in_process(cfg, progress, cancelled, trigger)
    lines: queue.Queue = queue.Queue()
    errors: list[str] = []
    readers = [threading.Thread(target=_pump, args=(proc.stdout, lines.put), daemon=True),
               threading.Thread(target=_pump, args=(proc.stderr, errors.append), daemon=True)]
    for reader in readers:
        reader.start()
    outcome: Optional[dict] = None
    stopping = False
    while True:
        if cancelled() and not stopping:
            stopping = True
            proc.send_signal(signal.CTRL_BREAK_EVENT if os.name == "nt" else signal.SIGTERM)
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            if proc.poll() is not None and not readers[0].is_alive() and lines.empty():
                break
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue  # not ours: a library printing to stdout
        if event.get("event") == "progress":
            overall(event.get("table") or "", int(event.get("done") or 0),
                    int(event.get("total") or 0))
        elif event.get("event") in ("done", "error"):
            outcome = event
    proc.wait()
    readers[1].join(timeout=5)
    if outcome is None:
        if stopping:  # stopped before it could say so: nothing was done yet
            raise SyncFailed("", cancelled=True)
        reason = next((ln.strip() for ln in reversed(errors) if ln.strip()), "")
        raise SyncFailed(reason or f"The sync stopped unexpectedly (exit code {proc.returncode}).")
    if outcome["event"] == "error":
        raise SyncFailed(outcome.get("message") or "The sync failed.",
                         cancelled=bool(outcome.get("cancelled")))
    progress(1.0, "")
    return {**outcome["summary"], "via": VIA_PLUGIN}


def _pump(stream, put) -> None:
    for line in stream:
        put(line)


def _in_process(cfg, progress: Progress, cancelled: Callable[[], bool], trigger: str) -> dict:
    from terrafusion_agent.errors import SyncCancelled, TerraFusionError
    from terrafusion_agent.lock import LocalLock
    from terrafusion_agent.sync.engine import run_sync

    stop = threading.Event()
    overall = _Overall(cfg.tables, progress)

    def on_progress(table: str, done: int, total: int) -> None:
        overall(table, done, total)
        if cancelled():
            stop.set()

    watcher = _CancelWatcher(cancelled, stop)
    watcher.start()
    try:
        progress(0.0, "")
        with LocalLock(cfg.local_path):
            summary = run_sync(cfg, trigger=trigger, progress=on_progress, stop=stop)
    except SyncCancelled as exc:
        raise SyncFailed(str(exc), cancelled=True) from None
    except TerraFusionError as exc:
        raise SyncFailed(str(exc)) from None
    finally:
        watcher.done()
    progress(1.0, "")
    return {**summary, "via": VIA_PLUGIN}


class _CancelWatcher(threading.Thread):
    """Turns a polled "cancelled?" into the engine's stop event while a sync runs.

    The engine looks at ``stop`` between transactions; without this, a cancel would only
    be noticed at the next progress report, which a slow central may delay.
    """

    def __init__(self, cancelled: Callable[[], bool], stop: threading.Event):
        super().__init__(name="terrafusion-sync-cancel", daemon=True)
        self.cancelled = cancelled
        self.stop = stop
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.1):
            if self.cancelled():
                self.stop.set()
                return

    def done(self) -> None:
        self._done.set()
