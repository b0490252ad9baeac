"""``GET /openapi.json``: the OpenAPI 3 description of the local HTTP API.

Kept by hand next to :mod:`routes`: a test checks that both name the same routes and that
the document is valid, and the API is fuzzed from it, so it cannot drift unnoticed.
"""

from __future__ import annotations

import copy
from typing import Any, Optional

from terrafusion_agent import __version__

_JSON = "application/json"
_HEALTH = "application/health+json"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> dict:
    return {"description": description, "content": {_JSON: {"schema": _ref("Error")}}}


def _json(description: str, schema: str, media: str = _JSON, **extra: Any) -> dict:
    return {"description": description, "content": {media: {"schema": _ref(schema)}}, **extra}


_UNAUTHORIZED = _error("No valid `Authorization: Bearer <token>` header.")
_BAD_JSON = _error("The body is not JSON.")
_INVALID = _error("The body is JSON but not a valid request.")
_TOO_LARGE = _error("The body is larger than 1 MiB.")

_CHECK = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": ["pass", "warn", "fail"]},
            "output": {"type": "string", "nullable": True},
            "observedValue": {},
        },
    },
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "code", "status"],
        "properties": {
            "error": {"type": "string", "description": "One sentence for a person."},
            "code": {"type": "string", "description": "A stable code for programs."},
            "status": {"type": "integer"},
        },
    },
    "Live": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string", "enum": ["pass", "fail"]},
                       "output": {"type": "string"}},
    },
    "Ready": {
        "type": "object",
        "required": ["status", "checks"],
        "properties": {
            "status": {"type": "string", "enum": ["pass", "fail"]},
            "checks": {"type": "object", "additionalProperties": _CHECK},
            "failing": {"type": "array", "items": {"type": "string"}},
        },
    },
    "SyncRun": {
        "type": "object",
        "required": ["id", "started_at", "result", "trigger"],
        "properties": {
            "id": {"type": "integer"},
            "started_at": {"type": "string", "format": "date-time"},
            "finished_at": {"type": "string", "format": "date-time", "nullable": True},
            "result": {"type": "string",
                       "enum": ["running", "success", "failed", "cancelled"],
                       "description": "running, success, failed or cancelled (a stop was "
                                      "asked for: the agent stopping, Cancel in the plugin, "
                                      "Ctrl+C or SIGTERM of terrafusion-agent sync; not a "
                                      "failure)"},
            "trigger": {"type": "string",
                        "description": "schedule, api, cli, plugin, recover or manual"},
            "pulled": {"type": "integer", "nullable": True},
            "pushed": {"type": "integer", "nullable": True},
            "conflicts": {"type": "integer", "nullable": True},
            "error": {"type": "string", "nullable": True},
            "duration_seconds": {"type": "number", "nullable": True,
                                 "description": "finished_at minus started_at as recorded, "
                                                "to the millisecond: the figure the sync "
                                                "summary, the log line and the status page "
                                                "give too"},
            "rejected": {"type": "integer",
                         "description": "GET /api/v1/syncs/{id} of a recent run this agent "
                                        "made also carries the rest of its summary: "
                                        "rejected, tables, rows, pending, open_conflicts, "
                                        "open_rejected."},
            "progress": {
                "type": "object",
                "description": "Only while the run is running.",
                "required": ["fraction", "table"],
                "properties": {
                    "fraction": {"type": "number", "minimum": 0, "maximum": 1,
                                 "nullable": True,
                                 "description": "The whole run's share done; null when "
                                                "the run is not this agent's (a process "
                                                "that ended left it running: the next "
                                                "sync closes it)."},
                    "table": {"type": "string",
                              "description": "The table being synced, or empty."},
                },
            },
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "version", "checks", "central_reachable"],
        "properties": {
            "status": {"type": "string", "enum": ["pass", "warn", "fail"]},
            "version": {"type": "string"},
            "description": {"type": "string"},
            "time": {"type": "string", "format": "date-time"},
            "local_path": {"type": "string"},
            "central": {"type": "string", "description": "The central URL, password masked."},
            "central_reachable": {"type": "boolean"},
            "interval_seconds": {"type": "integer"},
            "next_sync": {"type": "string", "format": "date-time", "nullable": True},
            "last_sync": {"allOf": [_ref("SyncRun")], "nullable": True},
            "last_success": {"type": "string", "format": "date-time", "nullable": True},
            "pending_local_edits": {"type": "integer", "nullable": True},
            "open_conflicts": {"type": "integer", "nullable": True},
            "rejected_rows": {"type": "integer", "nullable": True,
                              "description": "Local edits the central database refused."},
            "sync_running": {
                "type": "object", "nullable": True,
                "properties": {"id": {"type": "integer", "nullable": True},
                               "trigger": {"type": "string"},
                               "started_at": {"type": "string", "format": "date-time"}},
            },
            "consecutive_failures": {"type": "integer"},
            "last_error": {"type": "string", "nullable": True},
            "checks": {"type": "object", "additionalProperties": _CHECK},
        },
    },
    "SyncRuns": {
        "type": "object",
        "required": ["runs"],
        "properties": {"runs": {"type": "array", "items": _ref("SyncRun")}},
    },
    "SyncStarted": {
        "type": "object",
        "required": ["id", "status"],
        "properties": {
            "id": {"type": "integer",
                   "description": "The run, recorded before its work started: follow it "
                                  "with GET /api/v1/syncs/{id}."},
            "status": {"type": "string", "enum": ["running"]},
        },
    },
    "SyncBusy": {
        "type": "object",
        "required": ["error", "code", "status", "id"],
        "properties": {
            "error": {"type": "string", "description": "One sentence for a person."},
            "code": {"type": "string", "enum": ["sync_in_progress", "busy"]},
            "status": {"type": "integer"},
            "id": {"type": "integer", "nullable": True,
                   "description": "The running sync's id, to follow it instead; null "
                                  "while a conflict resolution or a discard of pending "
                                  "edits holds the agent (code busy) or when that run "
                                  "could not be recorded."},
        },
    },
    "EmptyRequest": {
        "type": "object", "additionalProperties": False, "properties": {},
        "description": "No options; an empty body is fine too.",
    },
    "Reloaded": {
        "type": "object",
        "required": ["reloaded", "changed", "restart_required"],
        "properties": {
            "reloaded": {"type": "boolean", "enum": [True]},
            "changed": {"type": "array", "items": {"type": "string"},
                        "description": "Keys (like sync.interval_seconds) that changed "
                                       "and apply from now on."},
            "restart_required": {"type": "array", "items": {"type": "string"},
                                 "description": "Keys that changed in the file but keep "
                                                "their running value until a restart."},
        },
    },
    "Conflict": {
        "type": "object",
        "required": ["id", "table", "pk"],
        "properties": {
            "id": {"type": "integer"},
            "kind": {"type": "string", "enum": ["conflict", "rejected"]},
            "message": {"type": "string", "nullable": True,
                        "description": "Why central refused the row (rejected only)."},
            "table": {"type": "string"},
            "pk": {},
            "columns": {},
            "base": {"nullable": True},
            "local": {"nullable": True},
            "central": {"nullable": True},
            "detected_at": {"type": "string", "nullable": True},
            "resolved_at": {"type": "string", "nullable": True},
            "resolution": {"type": "string", "nullable": True},
        },
    },
    "Conflicts": {
        "type": "object",
        "required": ["conflicts"],
        "properties": {"conflicts": {"type": "array", "items": _ref("Conflict")}},
    },
    "PendingEdit": {
        "type": "object",
        "required": ["id", "table", "key", "op", "state", "changed_at", "changes"],
        "properties": {
            "id": {"type": "integer"},
            "table": {"type": "string"},
            "key": {"type": "array", "items": {},
                    "description": "The row's key values, in key column order."},
            "op": {"type": "string", "enum": ["insert", "update", "delete"]},
            "state": {"type": "string", "enum": ["pending", "conflict", "rejected"],
                      "description": "pending: waits for the next sync; conflict: waits in "
                                     "a conflict (resolve it instead); rejected: refused "
                                     "by central."},
            "changed_at": {"type": "string", "format": "date-time",
                           "description": "When the row was last edited."},
            "version": {"type": "integer"},
            "changes": {
                "type": "array",
                "description": "The changed columns (an insert: every column, a delete: "
                               "every column), with the value as last synced and the "
                               "local one; geometries as WKT.",
                "items": {"type": "object", "required": ["column", "base", "local"],
                          "properties": {"column": {"type": "string"},
                                         "base": {"nullable": True},
                                         "local": {"nullable": True}}},
            },
            "conflict_id": {"type": "integer",
                            "description": "The row's open conflict or refusal."},
            "message": {"type": "string", "nullable": True,
                        "description": "Why central refused the row (rejected only)."},
        },
    },
    "PendingEdits": {
        "type": "object",
        "required": ["edits"],
        "properties": {"edits": {"type": "array", "items": _ref("PendingEdit")}},
    },
    "DiscardRequest": {
        "type": "object",
        "description": "The edits to discard, or all of them (those waiting in a conflict "
                       "are left: a conflict is resolved instead).",
        "additionalProperties": False,
        "oneOf": [{"required": ["edits"]}, {"required": ["all"]}],
        "properties": {
            "edits": {
                "type": "array", "minItems": 1,
                "items": {
                    "type": "object", "required": ["table", "key"],
                    "additionalProperties": False,
                    "properties": {
                        "table": {"type": "string", "minLength": 1},
                        "key": {"type": "array", "minItems": 1,
                                "items": {"oneOf": [{"type": "string"},
                                                    {"type": "number"}]},
                                "description": "The key values in key column order, as "
                                               "GET /api/v1/pending lists them."},
                    },
                },
            },
            "all": {"type": "boolean", "enum": [True]},
        },
    },
    "Discarded": {
        "type": "object",
        "required": ["discarded"],
        "properties": {
            "discarded": {"type": "array", "items": _ref("PendingEdit"),
                          "description": "Each edit as it was just before."},
            "conflicts_left": {"type": "integer",
                               "description": "With all: the edits left waiting in a "
                                              "conflict."},
        },
    },
    "ResolveRequest": {
        "type": "object",
        "description": "Keep one side for the columns changed on both sides, or merge the "
                       "two rows column by column; exactly one of the two.",
        "additionalProperties": False,
        "oneOf": [{"required": ["keep"]}, {"required": ["merge"]}],
        "properties": {
            "keep": {"type": "string", "enum": ["local", "central"]},
            "merge": {
                "type": "object", "minProperties": 1,
                "description": "Column: \"local\" (the local row as it is now), "
                               "\"central\" (central's row as the conflict recorded it) or "
                               "a value (number, text, boolean, null; WKT for the geometry "
                               "column; {\"value\": ...} for a text that reads as a side). "
                               "Every column changed on both sides must be named; another "
                               "column may be, and becomes part of the local edit. Not for "
                               "a row deleted on one side or refused by central (422).",
                "additionalProperties": {
                    "description": "\"local\", \"central\", a number, a text, a "
                                   "boolean, null, or {\"value\": any of those}.",
                },
            },
        },
    },
    "Resolution": {"type": "object", "additionalProperties": True},
    "HistoryEntry": {
        "type": "object",
        "required": ["id", "table", "key", "op", "committed_at", "columns"],
        "properties": {
            "id": {"type": "integer", "description": "The entry's number; a version to "
                                                     "restore is named by it."},
            "table": {"type": "string"},
            "key": {"type": "array", "items": {}},
            "op": {"type": "string", "enum": ["insert", "update", "delete"]},
            "committed_at": {"type": "string", "format": "date-time",
                             "description": "When central committed the change (UTC)."},
            "role": {"type": "string", "nullable": True,
                     "description": "The database role that made it."},
            "application": {"type": "string", "nullable": True,
                            "description": "The client's application name."},
            "agent": {
                "type": "object", "nullable": True,
                "description": "The agent that pushed the change; null for any other "
                               "writer.",
                "properties": {"id": {"type": "string"},
                               "os_user": {"type": "string", "nullable": True},
                               "host": {"type": "string", "nullable": True}},
            },
            "columns": {"type": "array", "items": {"type": "string"},
                        "description": "The columns the change set."},
            "old": {"type": "object", "nullable": True,
                    "description": "Their values before (not for an insert); geometry "
                                   "as WKT."},
            "new": {"type": "object", "nullable": True,
                    "description": "Their values after (not for a delete); geometry as "
                                   "WKT."},
        },
    },
    "FeatureHistory": {
        "type": "object",
        "required": ["table", "key", "history_start", "entries"],
        "properties": {
            "table": {"type": "string"},
            "key": {"type": "array", "items": {},
                    "description": "The key's values, typed by the key columns."},
            "history_start": {"type": "string", "format": "date-time", "nullable": True,
                              "description": "The oldest change central still keeps "
                                           "for the table; older ones were purged."},
            "entries": {"type": "array", "items": _ref("HistoryEntry"),
                        "description": "Newest first."},
        },
    },
    "ExportRequest": {
        "type": "object",
        "description": "What to export from the local copy: a table (or a configured "
                       "preset) to a file. Everything is checked before the job is queued.",
        "additionalProperties": False,
        "required": ["out"],
        "anyOf": [{"required": ["table"]}, {"required": ["preset"]}],
        "properties": {
            "table": {"type": "string", "minLength": 1},
            "preset": {"type": "string", "minLength": 1,
                       "description": "A name from [export.presets] in the configuration."},
            "format": {"type": "string",
                       "enum": ["gpkg", "geojson", "shp", "kml", "csv", "fgb"]},
            "out": {"type": "string", "minLength": 1,
                    "description": "Absolute path of the file to write (a folder for a "
                                   "preset with a filename template)."},
            "crs": {"type": "string", "minLength": 1, "description": "For example EPSG:4326."},
            "where": {"type": "string", "minLength": 1,
                      "description": "An SQL expression on the table's columns."},
            "fields": {"type": "array", "minItems": 1,
                       "items": {"type": "string", "minLength": 1}},
            "overwrite": {"type": "boolean", "default": False},
            "as_of": {"type": "string", "minLength": 1,
                      "description": "Export the table as it stood at this time, rebuilt "
                                     "from central's history: ISO 8601, UTC unless it "
                                     "names its zone (2026-01-01T00:00:00, "
                                     "2026-01-01T00:00:00-08:00). It must have passed and "
                                     "lie within the history (422 otherwise); central is "
                                     "asked before the job is queued (503 when it cannot "
                                     "be reached)."},
        },
    },
    "ExportJob": {
        "type": "object",
        "required": ["id", "status"],
        "properties": {
            "id": {"type": "integer"},
            "status": {"type": "string",
                       "enum": ["pending", "running", "completed", "failed", "cancelled"]},
            "table": {"type": "string", "nullable": True},
            "format": {"type": "string", "nullable": True},
            "out": {"type": "string", "nullable": True},
            "preset": {"type": "string", "nullable": True},
            "trigger": {"type": "string", "nullable": True},
            "request": {"type": "object"},
            "features": {"type": "integer", "nullable": True},
            "bytes": {"type": "integer", "nullable": True},
            "duration_seconds": {"type": "number", "nullable": True},
            "error": {"type": "string", "nullable": True},
            "created_at": {"type": "string", "nullable": True},
            "started_at": {"type": "string", "nullable": True},
            "finished_at": {"type": "string", "nullable": True},
            "progress": {"type": "object"},
        },
    },
}

_PATHS: dict[str, Any] = {
    "/": {"get": {
        "operationId": "statusPage", "tags": ["status"],
        "summary": "A small human status page (HTML, no external assets).",
        "responses": {"200": {"description": "The page.",
                              "content": {"text/html": {"schema": {"type": "string"}}}}},
    }},
    "/health/live": {"get": {
        "operationId": "live", "tags": ["health"],
        "summary": "The process and its scheduler are alive.",
        "responses": {"200": _json("Alive.", "Live", _HEALTH),
                      "503": _json("The scheduler has stopped.", "Live", _HEALTH)},
    }},
    "/health/ready": {"get": {
        "operationId": "ready", "tags": ["health"],
        "summary": "Local and central reachable and the last successful sync not overdue "
                   "(older than twice the interval).",
        "responses": {"200": _json("Ready.", "Ready", _HEALTH),
                      "503": _json("Not ready; `failing` names the checks.", "Ready", _HEALTH)},
    }},
    "/health": {"get": {
        "operationId": "health", "tags": ["health"],
        "summary": "The full health body (also printed by `terrafusion-agent status`).",
        "responses": {"200": _json("Always 200; `status` says pass, warn or fail.",
                                   "Health", _HEALTH)},
    }},
    "/metrics": {"get": {
        "operationId": "metrics", "tags": ["health"],
        "summary": "Prometheus metrics (text exposition format).",
        "responses": {"200": {"description": "Metrics.",
                              "content": {"text/plain": {"schema": {"type": "string"}}}},
                      "503": _error("prometheus_client is not installed.")},
    }},
    "/openapi.json": {"get": {
        "operationId": "openapi", "tags": ["meta"], "summary": "This document.",
        "responses": {"200": {"description": "OpenAPI 3 document.",
                              "content": {_JSON: {"schema": {"type": "object"}}}}},
    }},
    "/api/v1/syncs": {
        "get": {
            "operationId": "listSyncs", "tags": ["sync"], "summary": "Recent sync runs.",
            "parameters": [{
                "name": "limit", "in": "query", "required": False,
                "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 20},
            }],
            "responses": {"200": _json("Newest first.", "SyncRuns"),
                          "400": _error("Bad `limit`.")},
        },
        "post": {
            "operationId": "startSync", "tags": ["sync"], "summary": "Start a sync now.",
            "security": [{"bearer": []}],
            "requestBody": {"required": False,
                            "content": {_JSON: {"schema": _ref("EmptyRequest")}}},
            "responses": {
                "202": _json("Started; `Location` is the run's address.", "SyncStarted",
                             headers={"Location": {"schema": {"type": "string"}}}),
                "400": _BAD_JSON, "401": _UNAUTHORIZED,
                "409": _json("A sync is already running (`id` names it), or a conflict "
                             "resolution holds the agent for a moment.", "SyncBusy"),
                "413": _TOO_LARGE, "422": _INVALID,
                "503": _error("The agent is stopping, or its local copy cannot record "
                              "the run (busy, full or damaged)."),
            },
        },
    },
    "/api/v1/syncs/{id}": {"get": {
        "operationId": "getSync", "tags": ["sync"],
        "summary": "One sync run, as listed by GET /api/v1/syncs; with `progress` while it "
                   "runs.",
        "parameters": [{"name": "id", "in": "path", "required": True,
                        "schema": {"type": "integer", "minimum": 1,
                                   "maximum": 9223372036854775807}}],
        "responses": {"200": _json("The run.", "SyncRun"),
                      "404": _error("No such run.")},
    }},
    "/api/v1/config/reload": {"post": {
        "operationId": "reloadConfig", "tags": ["config"],
        "summary": "Read the configuration file again (as SIGHUP does) and apply what can "
                   "change while the agent runs.",
        "security": [{"bearer": []}],
        "requestBody": {"required": False,
                        "content": {_JSON: {"schema": _ref("EmptyRequest")}}},
        "responses": {
            "200": _json("Reloaded.", "Reloaded"),
            "400": _BAD_JSON, "401": _UNAUTHORIZED, "413": _TOO_LARGE,
            "422": _error("The body is not an empty object, or the configuration is "
                          "invalid (code `invalid_config`, with the sentence the agent "
                          "gives at start): the running configuration stays."),
        },
    }},
    "/api/v1/conflicts": {"get": {
        "operationId": "listConflicts", "tags": ["conflicts"],
        "summary": "Open conflicts (all of them with `all=true`).",
        "parameters": [{"name": "all", "in": "query", "required": False,
                        "schema": {"type": "boolean", "default": False}}],
        "responses": {"200": _json("Oldest first.", "Conflicts"),
                      "400": _error("Bad `all`.")},
    }},
    "/api/v1/conflicts/{id}/resolve": {"post": {
        "operationId": "resolveConflict", "tags": ["conflicts"],
        "summary": "Resolve a conflict by keeping the local or the central version, or by "
                   "a merge column by column.",
        "security": [{"bearer": []}],
        "parameters": [{"name": "id", "in": "path", "required": True,
                        "schema": {"type": "integer", "minimum": 1,
                                   "maximum": 9223372036854775807}}],
        "requestBody": {"required": True,
                        "content": {_JSON: {"schema": _ref("ResolveRequest")}}},
        "responses": {
            "200": _json("Resolved.", "Resolution"),
            "400": _BAD_JSON, "401": _UNAUTHORIZED,
            "404": _error("No such conflict."),
            "409": _error("Already resolved, or a sync still running after 60 s (a "
                          "resolution sent during a sync waits that long for it)."),
            "413": _TOO_LARGE, "422": _INVALID,
        },
    }},
    "/api/v1/pending": {"get": {
        "operationId": "listPending", "tags": ["pending"],
        "summary": "The local edits not yet pushed to central (also those waiting in a "
                   "conflict or refused by central), with base and local values.",
        "parameters": [{
            "name": "limit", "in": "query", "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": 1000000},
        }],
        "responses": {"200": _json("Oldest first.", "PendingEdits"),
                      "400": _error("Bad `limit`."),
                      "503": _error("The local copy cannot be read.")},
    }},
    "/api/v1/pending/discard": {"post": {
        "operationId": "discardPending", "tags": ["pending"],
        "summary": "Put rows back as they were last synced and drop their edits; nothing "
                   "reaches central.",
        "security": [{"bearer": []}],
        "requestBody": {"required": True,
                        "content": {_JSON: {"schema": _ref("DiscardRequest")}}},
        "responses": {
            "200": _json("Discarded, in one transaction.", "Discarded"),
            "400": _BAD_JSON, "401": _UNAUTHORIZED,
            "404": _error("A table that is not synced, or a row without a pending edit: "
                          "nothing was discarded."),
            "409": _error("An edit waits in a conflict (resolve it instead), or a sync "
                          "still running after 60 s: nothing was discarded."),
            "413": _TOO_LARGE,
            "422": _error("The body is JSON but not a valid request, or a key its table "
                          "cannot have: nothing was discarded."),
            "503": _error("The local copy cannot be written (busy, full or damaged)."),
        },
    }},
    "/api/v1/history/{table}/{key}": {"get": {
        "operationId": "featureHistory", "tags": ["history"],
        "summary": "The changes central recorded for one feature of a synced table, "
                   "newest first (also printed by `terrafusion-agent history`).",
        "parameters": [
            {"name": "table", "in": "path", "required": True,
             "schema": {"type": "string", "minLength": 1},
             "description": "A table of sync.tables, URL-encoded."},
            {"name": "key", "in": "path", "required": True,
             "schema": {"type": "string", "minLength": 1},
             "description": "The feature's key, URL-encoded: the value itself "
                            "(`1001`), or a JSON array of the values in key column "
                            "order for a key of several columns (`%5B%22R-7%22%2C2%5D` "
                            "for `[\"R-7\",2]`)."},
            {"name": "since", "in": "query", "required": False,
             "schema": {"type": "string"},
             "description": "Only changes at or after this time (ISO 8601; UTC unless "
                            "it names an offset)."},
            {"name": "until", "in": "query", "required": False,
             "schema": {"type": "string"},
             "description": "Only changes at or before this time."},
        ],
        "responses": {
            "200": _json("The feature's history.", "FeatureHistory"),
            "400": _error("The key does not fit the table's key columns, or a time is "
                          "not ISO 8601 (code `invalid_argument`)."),
            "404": _error("The table is not synced."),
            "422": _error("The table is synced but central cannot describe it."),
            "503": _error("The central database cannot be reached."),
        },
    }},
    "/api/v1/exports": {"post": {
        "operationId": "submitExport", "tags": ["export"],
        "summary": "Queue an export of the local copy.",
        "security": [{"bearer": []}],
        "requestBody": {"required": True,
                        "content": {_JSON: {"schema": _ref("ExportRequest")}}},
        "responses": {
            "202": _json("Queued.", "ExportJob",
                         headers={"Location": {"schema": {"type": "string"}}}),
            "400": _BAD_JSON, "401": _UNAUTHORIZED, "413": _TOO_LARGE, "422": _INVALID,
            "503": _error("The export engine is unavailable in this installation, or "
                          "central cannot be reached for an export as of a past time."),
        },
    }},
    "/api/v1/exports/{id}": {"get": {
        "operationId": "getExport", "tags": ["export"], "summary": "An export job's state.",
        "parameters": [{"name": "id", "in": "path", "required": True,
                        "schema": {"type": "integer", "minimum": 1,
                                   "maximum": 9223372036854775807}}],
        "responses": {
            "200": _json("The job.", "ExportJob"),
            "404": _error("No such job."),
            "503": _error("The export engine is unavailable in this installation."),
        },
    }},
    "/api/v1/exports/{id}/cancel": {"post": {
        "operationId": "cancelExport", "tags": ["export"],
        "summary": "Cancel an export job: a pending job never runs, a running one stops and "
                   "its partial file is removed; either ends `cancelled`. A finished job is "
                   "left as it is.",
        "security": [{"bearer": []}],
        "parameters": [{"name": "id", "in": "path", "required": True,
                        "schema": {"type": "integer", "minimum": 1,
                                   "maximum": 9223372036854775807}}],
        "responses": {
            "200": _json("The job had already finished (completed, failed or cancelled); "
                         "it is unchanged.", "ExportJob"),
            "202": _json("The job is stopping; follow it at Location until its status is "
                         "`cancelled`.", "ExportJob",
                         headers={"Location": {"schema": {"type": "string"}}}),
            "400": _BAD_JSON, "401": _UNAUTHORIZED, "413": _TOO_LARGE,
            "404": _error("No such job."),
            "409": _error("The job runs in another process on this copy (a command-line "
                          "export); cancel it there."),
            "422": _INVALID,
            "503": _error("The export engine is unavailable in this installation."),
        },
    }},
}


def document(server_url: Optional[str] = None) -> dict[str, Any]:
    """The OpenAPI document; ``server_url`` is where this agent answers."""
    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {
            "title": "TerraFusion agent local API",
            "version": __version__,
            "description": "The sync agent's API on the workstation's loopback interface. "
                           "Every POST needs the bearer token from the agent's token file "
                           "(http.token_file). Errors are JSON objects with `error` (a "
                           "sentence) and `code`.",
        },
        "servers": [{"url": server_url or "http://127.0.0.1:8765"}],
        "paths": copy.deepcopy(_PATHS),
        "components": {
            "schemas": copy.deepcopy(_SCHEMAS),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
    return doc
