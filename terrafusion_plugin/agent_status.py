"""Ask the running agent how it is, over its local HTTP API (no Qt, no GUI).

Runs inside a ``QgsTask``; the dock only ever sees the resulting :class:`AgentStatus`.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

#: how long the GUI is willing to wait for the agent to answer at all
LIVE_TIMEOUT_SECONDS = 2.0
#: /health also probes the central database, which may take a little longer
HEALTH_TIMEOUT_SECONDS = 5.0

RUNNING = "running"
NOT_RUNNING = "not_running"
UNKNOWN = "unknown"

# problems of an agent that answers (the dock words them in the user's language)
SCHEDULER_STOPPED = "scheduler_stopped"
HEALTH_TIMEOUT = "health_timeout"


@dataclass(frozen=True)
class AgentStatus:
    """What the dock shows.

    ``state`` is RUNNING, NOT_RUNNING or UNKNOWN (the configuration cannot be read; then
    ``error`` is the agent's sentence saying why). ``problem`` is a code such as
    SCHEDULER_STOPPED for an agent that answers but is not well.
    """

    state: str
    address: Optional[str] = None
    health: Optional[dict] = None
    local_path: Optional[Path] = None
    local_exists: bool = False
    problem: Optional[str] = None
    error: Optional[str] = None

    @property
    def running(self) -> bool:
        return self.state == RUNNING


def base_url(host: str, port: int) -> str:
    """The URL of the agent's API for the configured listening address."""
    # An agent listening on every interface is still reached over the loopback.
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


# The agent is always local: a proxy configured for the internet (http_proxy and the
# like) must not see, or break, requests to 127.0.0.1.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class _NoAnswer(Exception):
    """Nothing (or nothing usable) answered at the address."""


def _get_json(url: str, timeout: float) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:  # 503 still carries a health body
        status, raw = exc.code, exc.read()
    except (OSError, socket.timeout, http.client.HTTPException) as exc:  # refused, timed out
        raise _NoAnswer(str(exc)) from None
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _NoAnswer("not a JSON answer") from None
    if not isinstance(body, dict):
        raise _NoAnswer("not a JSON object")
    return status, body


def check_agent(live_timeout: float = LIVE_TIMEOUT_SECONDS,
                health_timeout: float = HEALTH_TIMEOUT_SECONDS) -> AgentStatus:
    """Load the agent configuration and ask the agent it names for its health."""
    from terrafusion_agent import config as tf_config
    from terrafusion_agent.errors import TerraFusionError

    try:
        # None: the same lookup as the agent ($TERRAFUSION_CONFIG, then the user's file)
        cfg = tf_config.load(None)
    except TerraFusionError as exc:
        return AgentStatus(state=UNKNOWN, error=str(exc))

    url = base_url(cfg.http_host, cfg.http_port)
    address = url.split("//", 1)[1]
    local = {"local_path": cfg.local_path, "local_exists": cfg.local_path.exists()}
    try:
        live_code, live = _get_json(f"{url}/health/live", live_timeout)
    except _NoAnswer:
        return AgentStatus(state=NOT_RUNNING, address=address, **local)
    if live_code != 200 or live.get("status") != "pass":
        return AgentStatus(state=RUNNING, address=address, problem=SCHEDULER_STOPPED, **local)
    try:
        _, health = _get_json(f"{url}/health", health_timeout)
    except _NoAnswer:
        return AgentStatus(state=RUNNING, address=address, problem=HEALTH_TIMEOUT, **local)
    return AgentStatus(state=RUNNING, address=address, health=health, **local)
