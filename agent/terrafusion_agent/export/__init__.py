"""Export a table of the local copy to gpkg, geojson, shp (.zip), kml, csv or fgb.

One code path for the CLI (``terrafusion-agent export``), the HTTP API's export jobs, the
plugin's dialog and the Processing algorithm. GDAL is imported only when a file is
written, so importing this package is cheap.

Synchronous (the caller's thread; the plugin calls it from a ``QgsTask``)::

    from terrafusion_agent.export import ExportRequest, export_table, CancelToken

    result = export_table(config, ExportRequest(table="parcels", format="geojson",
                                                out="/data/parcels.geojson"),
                          progress=callback,        # callback(ExportProgress), optional
                          cancel=token)             # CancelToken or callable -> bool
    result.to_dict()  # table, format, path, features, bytes, duration_seconds, crs, ...

Jobs in a background thread, recorded in the local table ``tf_export_jobs`` (the API's
``POST /api/v1/exports`` and ``GET /api/v1/exports/{id}``)::

    from terrafusion_agent.export import jobs

    job_id = jobs.submit(config, body)   # body: API dict or ExportRequest -> int
    jobs.get(config, job_id)             # -> dict (NotFound for an unknown id)
    jobs.list_jobs(config, limit=20)     # -> [dict], newest first
    jobs.cancel(config, job_id)          # -> dict; idempotent
    jobs.wait(config, job_id, timeout)   # -> dict once finished (tests, scripts)

Errors: :class:`~terrafusion_agent.errors.InvalidExport` (a ``BadRequest``: 4xx, nothing
written), :class:`~terrafusion_agent.errors.ExportError` (writing failed, nothing left
behind), :class:`~terrafusion_agent.errors.ExportCancelled`. Metrics:
:func:`add_listener` gets one event per finished export.

A writer of its own (the plugin writes a project layer through QGIS) publishes its file
the way the engine does, hidden beside the target until complete, with
:func:`terrafusion_agent.export.publish.atomic_output`.
"""

from terrafusion_agent.export.engine import (
    CancelToken,
    ExportProgress,
    ExportResult,
    add_listener,
    export_table,
    remove_listener,
)
from terrafusion_agent.export.formats import FORMATS, FormatSpec
from terrafusion_agent.export.plan import ExportPlan, parse_crs, plan_export
from terrafusion_agent.export.request import ExportRequest, request_from_body

__all__ = [
    "FORMATS",
    "CancelToken",
    "ExportPlan",
    "ExportProgress",
    "ExportRequest",
    "ExportResult",
    "FormatSpec",
    "add_listener",
    "export_table",
    "parse_crs",
    "plan_export",
    "remove_listener",
    "request_from_body",
]
