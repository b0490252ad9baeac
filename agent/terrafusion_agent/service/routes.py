"""The routes of the local HTTP API (docs/contract.md, "Local HTTP API").

Each handler turns a request into one call on the running :class:`Agent` and its answer
into JSON; the agent does the work. ``openapi.py`` describes the same routes for clients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, TypeVar

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from terrafusion_agent import health
from terrafusion_agent.errors import (
    AgentBusy,
    ConfigError,
    NotFound,
    TerraFusionError,
)
from terrafusion_agent.service.responses import (
    ApiError,
    api_error,
    json_object,
    json_response,
)

#: runs returned by GET /api/v1/syncs without ``limit``, and the most it returns
DEFAULT_RUNS = 20
MAX_RUNS = 1000
#: ids are SQLite integers
MAX_ID = 2**63 - 1
#: the most edits GET /api/v1/pending?limit=N returns at once
MAX_PENDING = 1_000_000

T = TypeVar("T")


@dataclass(frozen=True)
class Route:
    rule: Rule
    handler: Callable[..., Response]
    auth: bool = False

    @property
    def endpoint(self) -> str:
        return str(self.rule.endpoint)


# --- health and metrics -------------------------------------------------------------------


def live(agent, request: Request) -> Response:
    """GET /health/live: the process answers and its scheduler runs."""
    if agent.scheduler.alive():
        return json_response({"status": "pass"}, mimetype=health.MEDIA_TYPE)
    return json_response({"status": "fail", "output": "The scheduler is not running."},
                         status=503, mimetype=health.MEDIA_TYPE)


def ready(agent, request: Request) -> Response:
    """GET /health/ready: 200 or 503 naming the failing checks."""
    ok, body = agent.monitor.ready()
    return json_response(body, status=200 if ok else 503, mimetype=health.MEDIA_TYPE)


def health_body(agent, request: Request) -> Response:
    """GET /health: the full body, always 200 (its ``status`` tells)."""
    return json_response(agent.monitor.body(), mimetype=health.MEDIA_TYPE)


def metrics(agent, request: Request) -> Response:
    """GET /metrics: Prometheus text format."""
    if agent.metrics is None:
        raise ApiError(503, "metrics_unavailable",
                       "Metrics need the prometheus_client package, which is not installed.")
    from terrafusion_agent.metrics import CONTENT_TYPE

    response = Response(agent.metrics.render(), status=200)
    response.headers["Content-Type"] = CONTENT_TYPE
    response.headers["Cache-Control"] = "no-store"
    return response


def openapi(agent, request: Request) -> Response:
    """GET /openapi.json, with this agent's own address as the server."""
    from terrafusion_agent.service.openapi import document

    return json_response(document(server_url=request.host_url.rstrip("/")))


def status_page(agent, request: Request) -> Response:
    """GET /: the human status page."""
    from terrafusion_agent.service.statuspage import render

    html = render(agent.monitor.body(), agent.recent_runs(30), agent.table_figures())
    response = Response(html, status=200, mimetype="text/html")
    # everything is inline: no script, no fetch, no font, no image from elsewhere
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:")
    response.headers["Cache-Control"] = "no-store"
    return response


# --- syncs --------------------------------------------------------------------------------


def list_syncs(agent, request: Request) -> Response:
    """GET /api/v1/syncs?limit=N: recent runs, newest first."""
    limit = _int_arg(request, "limit", DEFAULT_RUNS, 1, MAX_RUNS)
    return json_response({"runs": agent.recent_runs(limit)})


def start_sync(agent, request: Request) -> Response:
    """POST /api/v1/syncs: 202 with the new run's id; 409 with the running one's."""
    json_object(request, set(), required=False)
    try:
        started = agent.request_sync()
    except AgentBusy as exc:
        # the id of the run in the way, to follow it; null while a resolution holds the lock
        e = api_error(exc)
        raise ApiError(e.status, e.code, e.message,
                       extra={"id": getattr(exc, "run_id", None)}) from None
    except TerraFusionError as exc:
        raise api_error(exc, default=503, default_code="unavailable") from None
    return _accepted(started, "/api/v1/syncs")


def get_sync(agent, request: Request, run_id: int) -> Response:
    """GET /api/v1/syncs/{id}: that run, with its progress while it runs."""
    return json_response(_ask(agent.sync_run, run_id, errors=NotFound))


# --- conflicts ----------------------------------------------------------------------------


def list_conflicts(agent, request: Request) -> Response:
    """GET /api/v1/conflicts[?all=true]."""
    include_resolved = _bool_arg(request, "all", False)
    return json_response({"conflicts": agent.conflicts(include_resolved)})


def resolve_conflict(agent, request: Request, conflict_id: int) -> Response:
    """POST /api/v1/conflicts/{id}/resolve with {"keep": "local" | "central"} or
    {"merge": {column: "local" | "central" | a value}}."""
    body = json_object(request, {"keep", "merge"})
    if ("keep" in body) == ("merge" in body):
        raise ApiError(422, "invalid_request",
                       "The body needs either 'keep' or 'merge', not both or neither.")
    if "keep" in body:
        keep = body["keep"]
        if keep not in ("local", "central"):
            raise ApiError(422, "invalid_request",
                           "Field 'keep' must be \"local\" or \"central\".")
        return json_response(_ask(agent.resolve_conflict, conflict_id, keep))
    merge = body["merge"]
    if not isinstance(merge, dict) or not merge:
        raise ApiError(422, "invalid_request",
                       "Field 'merge' must be an object of column: \"local\", \"central\" "
                       "or a value.")
    return json_response(_ask(agent.resolve_conflict, conflict_id, None, merge))


# --- pending local edits ------------------------------------------------------------------


def list_pending(agent, request: Request) -> Response:
    """GET /api/v1/pending[?limit=N]: the local edits not yet pushed, oldest first."""
    limit = _int_arg(request, "limit", 0, 1, MAX_PENDING) or None
    return json_response({"edits": agent.pending_edits(limit)})


def discard_pending(agent, request: Request) -> Response:
    """POST /api/v1/pending/discard with {"edits": [{"table", "key"}, ...]} or {"all": true}."""
    body = json_object(request, {"edits", "all"})
    edits = _edits(body)
    return json_response(_ask(agent.discard_pending, edits))


def _edits(body: dict) -> Optional[list[tuple[str, list]]]:
    """The rows a discard names, or None for all of them; 422 in one sentence otherwise."""
    if ("edits" in body) == ("all" in body):
        raise ApiError(422, "invalid_request",
                       "The request needs either 'edits' (a list of {\"table\", \"key\"}) "
                       "or \"all\": true, not both.")
    if "all" in body:
        if body["all"] is not True:
            raise ApiError(422, "invalid_request",
                           "Field 'all' must be true; to discard some edits, name them in "
                           "'edits'.")
        return None
    items = body["edits"]
    if not isinstance(items, list) or not items:
        raise ApiError(422, "invalid_request",
                       "Field 'edits' must be a list naming at least one edit.")
    edits = []
    for n, item in enumerate(items, 1):
        if not isinstance(item, dict) or set(item) != {"table", "key"}:
            raise ApiError(422, "invalid_request",
                           f"Edit {n} must be an object with exactly 'table' and 'key'.")
        table, key = item["table"], item["key"]
        if not isinstance(table, str) or not table:
            raise ApiError(422, "invalid_request", f"The table of edit {n} must be a name.")
        if (not isinstance(key, list) or not key
                or any(isinstance(v, bool) or not isinstance(v, (str, int, float))
                       for v in key)):
            raise ApiError(422, "invalid_request",
                           f"The key of edit {n} must be a list of its key columns' values "
                           "(numbers or text).")
        edits.append((table, key))
    return edits


# --- a feature's history ------------------------------------------------------------------


def feature_history(agent, request: Request, table: str, key: str) -> Response:
    """GET /api/v1/history/{table}/{key}[?since=T&until=T]: the feature's changes, newest
    first; the key as typed (URL-encoded; a JSON array for a key of several columns)."""
    since, until = request.args.get("since"), request.args.get("until")
    return json_response(_ask(agent.feature_history, table, key, since, until,
                              default=503, default_code="unavailable"))


# --- configuration ------------------------------------------------------------------------


def reload_config(agent, request: Request) -> Response:
    """POST /api/v1/config/reload: re-read the configuration file; 422 keeps the old one."""
    json_object(request, set(), required=False)
    try:
        return json_response(agent.reload_config())
    except ConfigError as exc:
        raise ApiError(422, "invalid_config", str(exc)) from None


# --- exports ------------------------------------------------------------------------------


def submit_export(agent, request: Request) -> Response:
    """POST /api/v1/exports: 202 with the queued job."""
    body = json_object(request, None)  # the export request names unknown keys itself
    job = _ask(agent.submit_export, body, default=503, default_code="unavailable")
    return _accepted(job, "/api/v1/exports")


def get_export(agent, request: Request, job_id: int) -> Response:
    """GET /api/v1/exports/{id}: the job's state."""
    return json_response(_ask(agent.export_job, job_id, default=404, default_code="not_found"))


def cancel_export(agent, request: Request, job_id: int) -> Response:
    """POST /api/v1/exports/{id}/cancel: 202 with the job while it stops (it ends
    ``cancelled``, its partial file removed), 200 with a job that had already finished."""
    json_object(request, set(), required=False)
    job, stopping = _ask(agent.cancel_export, job_id)  # 409: it runs in another process
    if stopping:
        return _accepted(job, "/api/v1/exports")
    return json_response(job)


# --- answer helpers -----------------------------------------------------------------------


def _ask(call: Callable[..., T], *args: Any, errors: type[TerraFusionError] = TerraFusionError,
         default: int = 409, default_code: str = "conflict") -> T:
    """``call(*args)``; an agent error of kind ``errors`` becomes its API answer
    (``default`` and ``default_code`` for kinds the error table does not name)."""
    try:
        return call(*args)
    except errors as exc:
        raise api_error(exc, default=default, default_code=default_code) from None


def _accepted(item: dict, collection: str) -> Response:
    """202 with the queued ``item``, and where to follow it."""
    return json_response(item, status=202,
                         headers={"Location": f"{collection}/{item['id']}"})


# --- query helpers ------------------------------------------------------------------------


def _int_arg(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ApiError(400, "invalid_query",
                       f"Query parameter {name} must be a whole number.") from None
    if not lo <= value <= hi:
        raise ApiError(400, "invalid_query",
                       f"Query parameter {name} must be between {lo} and {hi}.")
    return value


def _bool_arg(request: Request, name: str, default: bool) -> bool:
    raw = request.args.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise ApiError(400, "invalid_query", f"Query parameter {name} must be true or false.")


ROUTES: list[Route] = [
    Route(Rule("/", endpoint="status_page", methods=["GET"]), status_page),
    Route(Rule("/health/live", endpoint="live", methods=["GET"]), live),
    Route(Rule("/health/ready", endpoint="ready", methods=["GET"]), ready),
    Route(Rule("/health", endpoint="health", methods=["GET"]), health_body),
    Route(Rule("/metrics", endpoint="metrics", methods=["GET"]), metrics),
    Route(Rule("/openapi.json", endpoint="openapi", methods=["GET"]), openapi),
    Route(Rule("/api/v1/syncs", endpoint="list_syncs", methods=["GET"]), list_syncs),
    Route(Rule("/api/v1/syncs", endpoint="start_sync", methods=["POST"]), start_sync,
          auth=True),
    Route(Rule(f"/api/v1/syncs/<int(min=1, max={MAX_ID}):run_id>", endpoint="get_sync",
               methods=["GET"]), get_sync),
    Route(Rule("/api/v1/conflicts", endpoint="list_conflicts", methods=["GET"]),
          list_conflicts),
    Route(Rule(f"/api/v1/conflicts/<int(min=1, max={MAX_ID}):conflict_id>/resolve",
               endpoint="resolve_conflict", methods=["POST"]), resolve_conflict, auth=True),
    Route(Rule("/api/v1/pending", endpoint="list_pending", methods=["GET"]), list_pending),
    Route(Rule("/api/v1/pending/discard", endpoint="discard_pending", methods=["POST"]),
          discard_pending, auth=True),
    Route(Rule("/api/v1/history/<table>/<path:key>", endpoint="feature_history",
               methods=["GET"]), feature_history),
    Route(Rule("/api/v1/config/reload", endpoint="reload_config", methods=["POST"]),
          reload_config, auth=True),
    Route(Rule("/api/v1/exports", endpoint="submit_export", methods=["POST"]), submit_export,
          auth=True),
    Route(Rule(f"/api/v1/exports/<int(min=1, max={MAX_ID}):job_id>", endpoint="get_export",
               methods=["GET"]), get_export),
    Route(Rule(f"/api/v1/exports/<int(min=1, max={MAX_ID}):job_id>/cancel",
               endpoint="cancel_export", methods=["POST"]), cancel_export, auth=True),
]

#: what the metrics-only listener (``http.metrics_host``) serves: nothing that names an
#: owner, a path or a row
METRICS_ROUTES = [r for r in ROUTES if r.endpoint in ("metrics", "live")]
