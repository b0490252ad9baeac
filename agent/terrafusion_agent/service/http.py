"""The agent's local HTTP API: a WSGI application on werkzeug, served by waitress.

This module is the plumbing every route shares: routing, the bearer token, size limits,
the Host check. The routes themselves are in :mod:`terrafusion_agent.service.routes`;
the JSON answers, errors and body parsing both use are in
:mod:`terrafusion_agent.service.responses`.

Whatever a client sends, the answer is JSON with a 4xx status naming what is wrong; a 5xx
only ever means the agent itself is unwell (``/health/ready``, an export engine that
cannot load), never a bad request.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, RequestRedirect
from werkzeug.wrappers import Request, Response

from terrafusion_agent import errors
from terrafusion_agent.service import routes as routes_mod
from terrafusion_agent.service import token as token_mod
from terrafusion_agent.service.responses import ApiError, api_error, error_response

log = logging.getLogger("terrafusion.http")

#: largest request body accepted (export requests are small JSON objects)
MAX_BODY_BYTES = 1 << 20
_LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1", "[::1]"}
#: connections held open by clients: at most this many, and never more than half the
#: file descriptors the process may open (the rest are for databases, GDAL and logs)
MAX_CONNECTIONS = 1000
MIN_CONNECTIONS = 100
#: an idle connection is closed after this long (waitress: 120 s), looked for this often
IDLE_TIMEOUT_SECONDS = 15
CLEANUP_INTERVAL_SECONDS = 5


def server_options() -> dict[str, Any]:
    """The waitress settings of the agent's server.

    waitress's defaults stop accepting at 100 open connections and close an idle one only
    after 120 s: a hundred idle or slow sockets (a stuck client, a port scan, a browser's
    pre-opened connections) would keep every client out, ``/health`` included, for two
    minutes. A connection costs waitress a file descriptor and a small buffer, not a
    thread (its event loop reads requests and hands only complete ones to the workers),
    so the limit follows the descriptors this process may open; ``poll()`` lets the loop
    watch more than the 1024 that ``select()`` can.
    """
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        budget = MAX_CONNECTIONS if soft == resource.RLIM_INFINITY else soft // 2
    except (ImportError, OSError, ValueError):  # Windows: select() watches up to 512
        budget = 400
    return {
        "connection_limit": max(MIN_CONNECTIONS, min(MAX_CONNECTIONS, budget)),
        "channel_timeout": IDLE_TIMEOUT_SECONDS,
        "cleanup_interval": CLEANUP_INTERVAL_SECONDS,
        "asyncore_use_poll": True,
    }


class ApiRequest(Request):
    """A werkzeug request that refuses oversized bodies (413) before reading them."""

    max_content_length = MAX_BODY_BYTES
    max_form_memory_size = MAX_BODY_BYTES


class Api:
    """The WSGI application. ``agent`` is the running daemon; ``token`` the bearer secret."""

    def __init__(self, agent, routes: Optional[list] = None, host: Optional[str] = None):
        """``routes`` (default: all) and the ``host`` it listens on (default:
        ``http.host``) make the metrics-only listener out of the same plumbing."""
        self.agent = agent
        self.routes = routes if routes is not None else routes_mod.ROUTES
        # empty(): an unbound copy of each rule, so several agents can live in one process
        self.url_map = Map([r.rule.empty() for r in self.routes], strict_slashes=False,
                           merge_slashes=False)
        self.handlers: dict[str, Callable] = {r.endpoint: r for r in self.routes}
        self.host = agent.config.http_host if host is None else host
        self._check_host = self.host in _LOOPBACK_NAMES or self.host.startswith("127.")

    def authorize(self, request: Request) -> None:
        """401 unless the request carries the agent's bearer token."""
        if not token_mod.matches(self.agent.token, request.headers.get("Authorization")):
            raise ApiError(
                401, "unauthorized",
                "This request needs 'Authorization: Bearer <token>' with the token from "
                f"the agent's token file ({self.agent.config.token_file}).",
                {"WWW-Authenticate": 'Bearer realm="terrafusion-agent"'})

    def _host_allowed(self, request: Request) -> bool:
        # A web page the user visits must not reach the API through DNS rebinding: a
        # loopback-bound agent answers only requests addressed to a loopback name.
        if not self._check_host:
            return True
        try:
            host = request.host.lower()
            name = host[: host.index("]") + 1] if host.startswith("[") else host.split(":")[0]
        except (ValueError, HTTPException):
            return False
        return name in _LOOPBACK_NAMES or name == self.host

    def dispatch(self, request: Request) -> Response:
        if not self._host_allowed(request):
            raise ApiError(421, "misdirected_request",
                           "The agent answers only requests addressed to the loopback "
                           "interface (127.0.0.1 or localhost).")
        adapter = self.url_map.bind_to_environ(request.environ)
        if request.method == "OPTIONS":
            try:
                allowed = adapter.allowed_methods()
            except HTTPException:
                allowed = []
            if not allowed:
                raise ApiError(404, "not_found", "There is no such resource.")
            return Response(status=204, headers={"Allow": ", ".join(sorted(allowed))})
        try:
            endpoint, args = adapter.match()
        except RequestRedirect as exc:
            return error_response(308, "redirect", f"See {exc.new_url}.",
                                  {"Location": exc.new_url})
        except MethodNotAllowed as exc:
            allow = ", ".join(sorted(exc.valid_methods or []))
            raise ApiError(405, "method_not_allowed",
                           f"{request.method} is not allowed here; allowed: {allow}.",
                           {"Allow": allow}) from None
        except NotFound:
            raise ApiError(404, "not_found", "There is no such resource.") from None
        route = self.handlers[endpoint]
        if route.auth:
            self.authorize(request)
        return route.handler(self.agent, request, **args)

    def __call__(self, environ: dict, start_response: Callable):
        request = ApiRequest(environ)
        try:
            response = self.dispatch(request)
        except ApiError as exc:
            response = error_response(exc.status, exc.code, exc.message, exc.headers,
                                      exc.extra)
        except errors.TerraFusionError as exc:
            e = api_error(exc)
            response = error_response(e.status, e.code, e.message)
        except HTTPException as exc:  # 413 from the body limit, and the like
            code = exc.code or 400
            response = error_response(code, exc.name.lower().replace(" ", "_"),
                                      exc.description or exc.name)
        except Exception:  # noqa: BLE001 - a request must never take the agent down
            log.exception("request %s %s failed", request.method, request.path)
            response = error_response(500, "internal_error",
                                      "The agent failed to answer; see its log.")
        return response(environ, start_response)
