"""JSON answers and errors of the local HTTP API, shared by the plumbing and the routes.

:mod:`~terrafusion_agent.service.http` (routing, token, limits) and
:mod:`~terrafusion_agent.service.routes` (what each route does) both import this module;
it imports neither, so the two never import each other.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from werkzeug.wrappers import Request, Response

from terrafusion_agent import errors
from terrafusion_agent.redact import redact


class ApiError(Exception):
    """Ends a request with a JSON error: ``status``, a short ``code`` and a sentence.

    ``extra`` adds fields to the error body (a 409 names the run it ran into).
    """

    def __init__(self, status: int, code: str, message: str,
                 headers: Optional[dict[str, str]] = None,
                 extra: Optional[dict[str, Any]] = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra or {}


# TerraFusionError subclasses -> (status, code); the first match wins, so subclasses first.
_ERROR_STATUS: tuple[tuple[type, int, str], ...] = (
    (errors.NotFound, 404, "not_found"),
    (errors.SyncInProgress, 409, "sync_in_progress"),
    (errors.AgentBusy, 409, "busy"),
    (errors.BadRequest, 422, "invalid_request"),
    (errors.ConfigError, 422, "invalid_request"),
    (errors.TableError, 422, "invalid_request"),
    (errors.CentralUnavailable, 503, "central_unavailable"),
    (errors.LocalDamaged, 503, "local_damaged"),
    (errors.LocalUnavailable, 503, "local_unavailable"),
    (errors.ExportError, 503, "export_failed"),
)


def api_error(exc: errors.TerraFusionError, default: int = 409,
              default_code: str = "conflict") -> ApiError:
    """The HTTP answer for an agent error; ``default`` for kinds the table does not name.

    An error class may also name its own answer with ``http_status`` and ``http_code``.
    """
    status = getattr(exc, "http_status", None)
    if isinstance(status, int):
        return ApiError(status, str(getattr(exc, "http_code", "error")), redact(str(exc)))
    for kind, status, code in _ERROR_STATUS:
        if isinstance(exc, kind):
            return ApiError(status, code, redact(str(exc)))
    return ApiError(default, default_code, redact(str(exc)))


def json_response(body: Any, status: int = 200, mimetype: str = "application/json",
                  headers: Optional[dict[str, str]] = None) -> Response:
    response = Response(json.dumps(body, default=str), status=status, mimetype=mimetype)
    response.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def error_response(status: int, code: str, message: str,
                   headers: Optional[dict[str, str]] = None,
                   extra: Optional[dict[str, Any]] = None) -> Response:
    body = {"error": redact(message), "code": code, "status": status, **(extra or {})}
    return json_response(body, status=status, headers=headers)


def json_body(request: Request, *, required: bool) -> Any:
    """The request's JSON body (None when empty and not required); 400 if unparseable.

    The Content-Type is not insisted on: a curl user who forgets ``-H`` still gets
    served, and anything that is not JSON fails parsing with a clear 400 anyway.
    """
    raw = request.get_data(cache=True)
    if not raw.strip():
        if required:
            raise ApiError(400, "invalid_json", "The request needs a JSON body.")
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # also UnicodeDecodeError, too-deep nesting
        raise ApiError(400, "invalid_json", "The request body is not valid JSON.") from None


def json_object(request: Request, allowed: Optional[set[str]], *,
                required: bool = True) -> dict:
    """A JSON object body with no keys outside ``allowed`` (422 otherwise; None: any)."""
    if not required and not request.get_data(cache=True).strip():
        return {}
    body = json_body(request, required=True)
    if not isinstance(body, dict):  # null included: an empty body is the way to send nothing
        raise ApiError(422, "invalid_request", "The request body must be a JSON object.")
    if allowed is None:
        return body
    unknown = sorted(k for k in body if k not in allowed)
    if unknown:
        raise ApiError(422, "invalid_request",
                       f"Unknown field {unknown[0]!r} in the request body"
                       + (f"; allowed: {', '.join(sorted(allowed))}." if allowed else "."))
    return body
