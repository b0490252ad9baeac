"""Ask the running agent how it is, over its local HTTP API.

A GUI calls it from a background task and only ever sees the resulting :class:`AgentStatus`.
When no agent answers, the figures that do not need one (last sync, pending edits, open
conflicts, recent runs) are read from the local copy itself, so a stopped agent still
shows how far behind the copy is.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .http import LIVE_TIMEOUT_SECONDS, AgentClient, NoAnswer

#: /health also probes the central database, which may take a little longer
HEALTH_TIMEOUT_SECONDS = 5.0
#: runs listed under "Recent syncs"
RECENT_RUNS = 8

RUNNING = "running"
NOT_RUNNING = "not_running"
UNKNOWN = "unknown"

# problems of an agent that answers (the dock words them in the user's language)
SCHEDULER_STOPPED = "scheduler_stopped"
HEALTH_TIMEOUT = "health_timeout"
#: what answers on the port is an agent for another local copy
OTHER_AGENT = "other_agent"

__all__ = ["AgentStatus", "check_agent", "RUNNING", "NOT_RUNNING", "UNKNOWN",
           "SCHEDULER_STOPPED", "HEALTH_TIMEOUT", "OTHER_AGENT"]


@dataclass(frozen=True)
class AgentStatus:
    """What the dock shows.

    ``state`` is RUNNING, NOT_RUNNING or UNKNOWN (the configuration cannot be read; then
    ``error`` is the agent's sentence saying why). ``problem`` is a code such as
    SCHEDULER_STOPPED for an agent that answers but is not well. ``local`` holds the
    local copy's own figures when they were read without the agent.
    """

    state: str
    address: Optional[str] = None
    health: Optional[dict] = None
    local_path: Optional[Path] = None
    local_exists: bool = False
    problem: Optional[str] = None
    error: Optional[str] = None
    url: Optional[str] = None
    port: Optional[int] = None
    config_file: Optional[Path] = None
    local: Optional[dict] = None
    runs: tuple = field(default_factory=tuple)

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    @property
    def serves_this_copy(self) -> bool:
        """An agent answers and it is the one working on the configured local copy."""
        return self.running and self.problem != OTHER_AGENT

    def _figure(self, key: str) -> Any:
        if self.health is not None and self.problem != OTHER_AGENT:
            return self.health.get(key)
        return (self.local or {}).get(key)

    @property
    def last_sync(self) -> Optional[dict]:
        return self._figure("last_sync")

    @property
    def pending_edits(self) -> Optional[int]:
        return self._figure("pending_local_edits")

    @property
    def open_conflicts(self) -> Optional[int]:
        return self._figure("open_conflicts")

    @property
    def next_sync(self) -> Optional[str]:
        return (self.health or {}).get("next_sync") if self.serves_this_copy else None

    @property
    def sync_running(self) -> Optional[dict]:
        return (self.health or {}).get("sync_running") if self.serves_this_copy else None

    @property
    def status_page(self) -> Optional[str]:
        """The agent's human status page (its API's root)."""
        return f"{self.url}/" if self.url and self.running else None


def _local_figures(cfg) -> tuple[Optional[dict], tuple]:
    """The local copy's figures and recent runs, read without the agent."""
    from terrafusion_agent import health
    from terrafusion_agent.errors import TerraFusionError
    from terrafusion_agent.stores.local import LocalStore

    figures = health.read_local(cfg)
    runs: tuple = ()
    if cfg.local_path.exists() and figures.get("check", {}).get("status") == "pass":
        try:
            local = LocalStore.open(cfg.local_path, migrate=False)
            try:
                runs = tuple(local.recent_runs(RECENT_RUNS))
            finally:
                local.close()
        except (TerraFusionError, OSError, sqlite3.Error):
            runs = ()  # the history is a nicety; the figures above already say what failed
    return figures, runs


def check_agent(live_timeout: float = LIVE_TIMEOUT_SECONDS,
                health_timeout: float = HEALTH_TIMEOUT_SECONDS,
                config_path: Optional[str] = None) -> AgentStatus:
    """Load the agent configuration and ask the agent it names for its health."""
    from terrafusion_agent import config as tf_config
    from terrafusion_agent.config import api_base_url
    from terrafusion_agent.errors import TerraFusionError

    try:
        # None: the same lookup as the agent ($TERRAFUSION_CONFIG, then the user's file)
        cfg = tf_config.load(config_path)
    except TerraFusionError as exc:
        return AgentStatus(state=UNKNOWN, error=str(exc))

    url = api_base_url(cfg.http_host, cfg.http_port)
    common = {"address": url.split("//", 1)[1], "url": url, "port": cfg.http_port,
              "config_file": cfg.source, "local_path": cfg.local_path,
              "local_exists": cfg.local_path.exists()}
    client = AgentClient(url, cfg.token_file)
    try:
        live_code, live = client.get("/health/live", live_timeout)
    except NoAnswer:
        figures, runs = _local_figures(cfg)
        return AgentStatus(state=NOT_RUNNING, local=figures, runs=runs, **common)
    if live_code != 200 or live.get("status") != "pass":
        figures, runs = _local_figures(cfg)
        return AgentStatus(state=RUNNING, problem=SCHEDULER_STOPPED, local=figures, runs=runs,
                           **common)
    try:
        _, health = client.get("/health", health_timeout)
    except NoAnswer:
        figures, runs = _local_figures(cfg)
        return AgentStatus(state=RUNNING, problem=HEALTH_TIMEOUT, local=figures, runs=runs,
                           **common)
    if health.get("local_path") not in (None, str(cfg.local_path)):
        # Another agent (another configuration) holds the port: its figures are not
        # this copy's, and a "Sync now" must not be sent to it.
        figures, runs = _local_figures(cfg)
        return AgentStatus(state=RUNNING, problem=OTHER_AGENT, health=health, local=figures,
                           runs=runs, **common)
    try:
        _, body = client.get(f"/api/v1/syncs?limit={RECENT_RUNS}", health_timeout)
        runs = tuple(r for r in body.get("runs", []) if isinstance(r, dict))
    except NoAnswer:
        runs = ()
    return AgentStatus(state=RUNNING, health=health, runs=runs, **common)
