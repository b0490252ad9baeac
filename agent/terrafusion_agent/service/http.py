"""The agent's local HTTP API (WSGI on werkzeug, served by waitress)."""

from __future__ import annotations

import json
import logging
from typing import Callable

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from terrafusion_agent import health

log = logging.getLogger("terrafusion.http")


def json_response(body, status: int = 200, mimetype: str = "application/json") -> Response:
    return Response(json.dumps(body, default=str), status=status, mimetype=mimetype)


class Api:
    """Routes of DESIGN.md; ``agent`` is the running daemon (scheduler and config)."""

    def __init__(self, agent):
        self.agent = agent
        self.url_map = Map([
            Rule("/health/live", endpoint="live", methods=["GET"]),
            Rule("/health", endpoint="health", methods=["GET"]),
        ])

    def live(self, request: Request) -> Response:
        if self.agent.scheduler_alive():
            return json_response({"status": "pass"}, mimetype=health.MEDIA_TYPE)
        return json_response({"status": "fail", "output": "The scheduler is not running."},
                             status=503, mimetype=health.MEDIA_TYPE)

    def health(self, request: Request) -> Response:
        body = self.agent.health_body()
        return json_response(body, mimetype=health.MEDIA_TYPE)

    def __call__(self, environ: dict, start_response: Callable):
        request = Request(environ)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            endpoint, args = adapter.match()
            response = getattr(self, endpoint)(request, **args)
        except (NotFound, MethodNotAllowed) as exc:
            response = json_response({"error": exc.description}, status=exc.code)
            if isinstance(exc, MethodNotAllowed):
                response.headers["Allow"] = ", ".join(exc.valid_methods or [])
        except HTTPException as exc:
            response = json_response({"error": exc.description}, status=exc.code or 400)
        except Exception:  # noqa: BLE001 - a request must never take the agent down
            log.exception("request %s %s failed", request.method, request.path)
            response = json_response({"error": "internal error"}, status=500)
        return response(environ, start_response)
