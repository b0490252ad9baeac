"""A small client for the running agent's local HTTP API, on the standard library.

Every call blocks: a GUI makes it from a background task, never on its main thread.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

#: how long the GUI is willing to wait for the agent to answer at all
LIVE_TIMEOUT_SECONDS = 2.0
#: a POST that starts work answers at once; a conflict resolution may wait on SQLite
POST_TIMEOUT_SECONDS = 30.0

_opener = None


def _open(request, timeout: float):
    # urllib is imported on the first request (in a task), not when QGIS loads the plugin:
    # it costs a tenth of a second that initGui should not pay.
    global _opener
    import urllib.request

    if _opener is None:
        # The agent is always local: a proxy configured for the internet (http_proxy and
        # the like) must not see, or break, requests to 127.0.0.1.
        _opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return _opener.open(request, timeout=timeout)


class NoAnswer(Exception):
    """Nothing (or nothing usable) answered at the address."""


class ApiError(Exception):
    """The agent answered with an error; ``str()`` is its one sentence."""

    def __init__(self, status: int, message: str, code: Optional[str] = None):
        super().__init__(message)
        self.status = status
        self.code = code


class AgentClient:
    """GET and POST on one agent's API; the bearer token is read only for a POST."""

    def __init__(self, url: str, token_file: Optional[Path] = None):
        self.url = url.rstrip("/")
        self.token_file = token_file

    def _token(self) -> str:
        if self.token_file is None:
            raise ApiError(401, "The agent's API token file is not configured.")
        try:
            token = Path(self.token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ApiError(401, f"The agent's API token file {self.token_file} cannot be "
                                f"read: {exc.strerror or exc}.") from None
        if not token:
            raise ApiError(401, f"The agent's API token file {self.token_file} is empty.")
        return token

    def _send(self, request, timeout: float) -> tuple[int, dict]:
        import http.client
        import socket
        import urllib.error

        try:
            with _open(request, timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:  # 4xx/5xx still carry a JSON body
            status, raw = exc.code, exc.read()
        except (OSError, socket.timeout, http.client.HTTPException) as exc:  # refused, timeout
            raise NoAnswer(str(exc)) from None
        try:
            body = json.loads(raw.decode("utf-8")) if raw else {}
        except (UnicodeDecodeError, ValueError):
            raise NoAnswer("not a JSON answer") from None
        if not isinstance(body, dict):
            raise NoAnswer("not a JSON object")
        return status, body

    def get(self, path: str, timeout: float = LIVE_TIMEOUT_SECONDS) -> tuple[int, dict]:
        """(status, JSON object); raises NoAnswer when nothing usable answers."""
        import urllib.request

        request = urllib.request.Request(f"{self.url}{path}",
                                         headers={"Accept": "application/json"})
        return self._send(request, timeout)

    def post(self, path: str, body: Optional[dict] = None,
             timeout: float = POST_TIMEOUT_SECONDS) -> tuple[int, dict]:
        """(status, JSON object) of an authorised POST; raises NoAnswer or ApiError (401)."""
        import urllib.request

        data = json.dumps(body or {}).encode("utf-8")
        request = urllib.request.Request(
            f"{self.url}{path}", data=data, method="POST",
            headers={"Accept": "application/json", "Content-Type": "application/json",
                     "Authorization": f"Bearer {self._token()}"})
        return self._send(request, timeout)

    def checked(self, status: int, body: dict, *ok: int) -> dict:
        """``body`` when ``status`` is one of ``ok``; else ApiError with the agent's words."""
        if status in ok:
            return body
        raise ApiError(status, error_sentence(body, status), _code(body))


def _code(body: dict) -> Optional[str]:
    error = body.get("error")
    return error.get("code") if isinstance(error, dict) else body.get("code")


def error_sentence(body: Any, status: int) -> str:
    """The agent's own sentence from an error body (its shapes vary by route)."""
    if isinstance(body, dict):
        error = body.get("error")
        for candidate in (error.get("message") if isinstance(error, dict) else error,
                          body.get("message"), body.get("detail"), body.get("output")):
            if isinstance(candidate, str) and candidate.strip():
                return candidate.strip()
    return f"The agent answered with HTTP status {status}."


def agent_for(cfg, timeout: float = LIVE_TIMEOUT_SECONDS) -> Optional[AgentClient]:
    """A client for the agent that serves ``cfg``'s local copy, or None if none answers."""
    if not cfg.http_port:
        return None  # port 0: the agent picked a port nobody can know
    from terrafusion_agent.config import api_base_url

    client = AgentClient(api_base_url(cfg.http_host, cfg.http_port), cfg.token_file)
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
