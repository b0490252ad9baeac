"""One "sync now", whoever asks (``terrafusion-agent sync``, the plugin's dock and its
``terrafusion:sync`` algorithm), through :func:`terrafusion_agent.api.sync_now`.

When the agent serving the configured local copy answers, it is asked to sync (``POST
/api/v1/syncs`` answers with the run's id) and that run is followed in ``GET
/api/v1/syncs/{id}``: two processes must never sync one copy at once, and the agent holds
the copy's lock. When none answers, ``run_sync`` runs here under that same lock: for a GUI
in a child Python (``sync_worker``, see there why) whose progress comes back as JSON
lines, else (the CLI, or no interpreter to start) in the calling thread.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from typing import Callable, Optional

from .http import AgentClient, ApiError, NoAnswer, agent_for, error_sentence

#: progress(fraction 0..1 or None when unknown, table being synced or "")
Progress = Callable[[Optional[float], str], None]
#: how often a sync run by the agent is looked at
POLL_SECONDS = 0.5

#: ``via`` of a summary the running agent made; else ``via`` is the caller's trigger
VIA_AGENT = "agent"


class SyncFailed(Exception):
    """The sync failed or was stopped; ``str()`` is one sentence for the user (empty for a
    cancel that has nothing more to say: the caller words it in the user's language)."""

    def __init__(self, message: str, cancelled: bool = False, exit_code: int = 1):
        super().__init__(message)
        self.cancelled = cancelled
        #: the CLI's exit status for it: 2 when the configuration is at fault
        self.exit_code = exit_code


def sync_now(cfg, progress: Optional[Progress] = None,
             cancelled: Optional[Callable[[], bool]] = None,
             trigger: str = "plugin", in_child: bool = True) -> dict:
    """Sync ``cfg``'s local copy now; the summary (``via`` says who ran it).

    Raises :class:`SyncFailed` with the agent's sentence when it fails or is stopped.
    """
    progress = progress or (lambda fraction, table: None)
    cancelled = cancelled or (lambda: False)
    client = agent_for(cfg)
    if client is not None:
        try:
            return _via_agent(client, progress, cancelled)
        except NoAnswer:
            pass  # the agent went away between the check and the request: sync here
    if in_child:
        from .launcher import python_interpreter

        python = python_interpreter()
        if python is not None:
            return _in_child(cfg, progress, cancelled, trigger, python)
    return _in_process(cfg, progress, cancelled, trigger)


# --- through the running agent ------------------------------------------------------------


def _via_agent(client: AgentClient, progress: Progress,
               cancelled: Callable[[], bool]) -> dict:
    """Ask the agent for a sync and follow that run (or the one it is already running)."""
    progress(None, "")
    try:
        status, body = client.post("/api/v1/syncs")
    except ApiError as exc:
        raise SyncFailed(str(exc)) from None
    if status not in (202, 409):
        raise SyncFailed(error_sentence(body, status))
    # 409: a sync runs already; the user's wish is fulfilled when that one ends
    run_id = body.get("id")
    if not isinstance(run_id, int):
        raise SyncFailed(error_sentence(body, status) if status == 409 else
                         "The agent accepted the sync but did not say which run it is.")
    run = _follow(client, run_id, progress, cancelled)
    result = run.get("result")
    if result != "success":
        raise SyncFailed(run.get("error") or f"The agent's sync ended with result {result}.",
                         cancelled=result == "cancelled")
    progress(1.0, "")
    return {**run, "via": VIA_AGENT}


def _follow(client: AgentClient, run_id: int, progress: Progress,
            cancelled: Callable[[], bool]) -> dict:
    """The run ``run_id`` once it has ended, its progress passed on meanwhile."""
    while True:
        if cancelled():
            raise SyncFailed("Stopped waiting; the agent finishes the sync on its own.",
                             cancelled=True)
        status, run = client.get(f"/api/v1/syncs/{run_id}")
        if status != 200:
            raise SyncFailed(error_sentence(run, status))
        if run.get("result") not in (None, "running"):
            return run
        shown = run.get("progress") or {}
        fraction = shown.get("fraction")
        progress(float(fraction) if isinstance(fraction, (int, float)) else None,
                 str(shown.get("table") or ""))
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
    from .launcher import child_environment

    command = [python, "-m", "terrafusion_agent.client.sync_worker", "--trigger", trigger]
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
    return {**outcome["summary"], "via": trigger}


def _pump(stream, put) -> None:
    for line in stream:
        put(line)


def _in_process(cfg, progress: Progress, cancelled: Callable[[], bool], trigger: str) -> dict:
    from terrafusion_agent.alerts import for_local_copy
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
    alerts = None
    restore = _sigterm_as_ctrl_c()
    try:
        progress(0.0, "")
        with LocalLock(cfg.local_path):
            alerts = for_local_copy(cfg)  # the streak as the copy recorded it, under its lock
            summary = run_sync(cfg, trigger=trigger, progress=on_progress, stop=stop)
        if alerts is not None:
            alerts.sync_ended("success", summary, None)
    except SyncCancelled as exc:
        raise SyncFailed(str(exc), cancelled=True) from None
    except TerraFusionError as exc:
        if alerts is not None:
            alerts.sync_ended("failed", None, exc)
        raise SyncFailed(str(exc), exit_code=exc.exit_code) from None
    finally:
        restore()
        watcher.done()
        if alerts is not None:
            alerts.wait()  # this process ends soon: give the messages their few seconds
    progress(1.0, "")
    return {**summary, "via": trigger}


def _sigterm_as_ctrl_c() -> Callable[[], None]:
    """In a one-off sync on the main thread (``terrafusion-agent sync``), SIGTERM stops the
    sync as Ctrl+C does, so that it too is recorded as cancelled instead of leaving a run
    that the next sync closes as failed; returns what puts the old handler back."""
    if (threading.current_thread() is not threading.main_thread()
            or not hasattr(signal, "SIGTERM")):
        return lambda: None
    try:
        before = signal.signal(signal.SIGTERM, signal.default_int_handler)
    except (ValueError, OSError):  # not allowed here (an embedding program's thread)
        return lambda: None
    return lambda: signal.signal(signal.SIGTERM, before)


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
