"""Prometheus metrics of the agent (names are a contract: docs/contract.md).

Everything lives on the agent's own :class:`CollectorRegistry`, never on the process-wide
default one: the plugin may run an agent inside QGIS next to other code using
prometheus_client, and tests start several agents in one process.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from terrafusion_agent import __version__

#: Content-Type of ``GET /metrics``
CONTENT_TYPE = CONTENT_TYPE_LATEST

SYNC_RESULTS = ("success", "failed", "cancelled")
EXPORT_RESULTS = ("completed", "failed", "cancelled")
EXPORT_FORMATS = ("gpkg", "geojson", "shp", "kml", "csv", "fgb")
DIRECTIONS = ("pull", "push")
OPS = ("insert", "update", "delete")

# A sync is a few hundred milliseconds when nothing changed and minutes for a first copy
# of a large county: buckets cover both ends.
SYNC_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
EXPORT_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class AgentMetrics:
    """The agent's metrics and the few calls that move them."""

    def __init__(self, *, open_conflicts: Optional[Callable[[], float]] = None,
                 pending_changes: Optional[Callable[[], float]] = None,
                 rejected_rows: Optional[Callable[[], float]] = None,
                 sync_interval: Optional[Callable[[], float]] = None):
        """``open_conflicts``, ``pending_changes``, ``rejected_rows`` and ``sync_interval``
        (the configured seconds between syncs, which a reload may change) are read at
        scrape time."""
        # No *_created series: one more series per counter and histogram that no rule or
        # panel reads (the switch is prometheus_client's, for the whole process).
        disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.info = Info("terrafusion_agent", "The running TerraFusion agent.", registry=r)
        self.info.info({"version": __version__})
        self.sync_runs = Counter(
            "terrafusion_sync_runs", "Sync runs by result.", ["result"], registry=r)
        self.sync_duration = Histogram(
            "terrafusion_sync_duration_seconds", "Duration of sync runs.",
            buckets=SYNC_BUCKETS, registry=r)
        self.sync_rows = Counter(
            "terrafusion_sync_rows", "Rows applied by sync, by direction and operation.",
            ["direction", "op"], registry=r)
        self.sync_conflicts = Counter(
            "terrafusion_sync_conflicts", "Conflicts detected by sync runs.", registry=r)
        self.open_conflicts = Gauge(
            "terrafusion_sync_open_conflicts", "Conflicts waiting for a decision.", registry=r)
        self.rejected_rows = Gauge(
            "terrafusion_sync_rejected_rows",
            "Local edits the central database refused, waiting for a fix or a decision.",
            registry=r)
        self.pending_changes = Gauge(
            "terrafusion_sync_pending_changes", "Local edits not yet pushed to central.",
            registry=r)
        self.last_success = Gauge(
            "terrafusion_sync_last_success_timestamp_seconds",
            "Unix time at which the last successful sync finished.", registry=r)
        self.sync_interval = Gauge(
            "terrafusion_sync_interval_seconds",
            "Configured seconds between scheduled syncs (sync.interval_seconds).", registry=r)
        self.consecutive_failures = Gauge(
            "terrafusion_sync_consecutive_failures",
            "Failed sync runs since the last successful one.", registry=r)
        self.export_jobs = Counter(
            "terrafusion_export_jobs", "Export jobs by format and result.",
            ["format", "result"], registry=r)
        self.export_duration = Histogram(
            "terrafusion_export_duration_seconds", "Duration of export jobs.",
            buckets=EXPORT_BUCKETS, registry=r)
        self.export_features = Counter(
            "terrafusion_export_features", "Features written by exports, by format.",
            ["format"], registry=r)

        # Every label combination exists from the start, so rate() and absent() in alert
        # rules see a zero rather than no series at all.
        for result in SYNC_RESULTS:
            self.sync_runs.labels(result)
        for direction in DIRECTIONS:
            for op in OPS:
                self.sync_rows.labels(direction, op)
        for fmt in EXPORT_FORMATS:
            self.export_features.labels(fmt)
            for result in EXPORT_RESULTS:
                self.export_jobs.labels(fmt, result)
        if open_conflicts is not None:
            self.open_conflicts.set_function(open_conflicts)
        if pending_changes is not None:
            self.pending_changes.set_function(pending_changes)
        if rejected_rows is not None:
            self.rejected_rows.set_function(rejected_rows)
        if sync_interval is not None:
            self.sync_interval.set_function(sync_interval)

    # --- sync ---------------------------------------------------------------------------

    def sync_succeeded(self, summary: dict) -> None:
        """Count one successful run from ``run_sync``'s summary."""
        self.sync_runs.labels("success").inc()
        self.sync_duration.observe(float(summary.get("duration_seconds") or 0.0))
        rows = summary.get("rows") or {}
        for direction in DIRECTIONS:
            for op in OPS:
                n = _count(rows.get(direction, {}).get(op))
                if n:
                    self.sync_rows.labels(direction, op).inc(n)
        conflicts = _count(summary.get("conflicts"))
        if conflicts:
            self.sync_conflicts.inc(conflicts)
        self.last_success.set(time.time())
        self.consecutive_failures.set(0)

    def sync_ended_badly(self, result: str, duration_seconds: float, failures: int) -> None:
        """Count one failed or cancelled run."""
        self.sync_runs.labels(result if result in SYNC_RESULTS else "failed").inc()
        self.sync_duration.observe(max(0.0, duration_seconds))
        self.consecutive_failures.set(failures)

    # --- export -------------------------------------------------------------------------

    def export_finished(self, result: dict) -> None:
        """Listener for the export engine: one finished job (format, result, features,
        duration_seconds)."""
        fmt = str(result.get("format") or "unknown")
        outcome = str(result.get("result") or result.get("status") or "failed")
        self.export_jobs.labels(fmt, outcome).inc()
        duration = result.get("duration_seconds")
        if isinstance(duration, (int, float)) and duration >= 0:
            self.export_duration.observe(duration)
        features = _count(result.get("features"))
        if features:
            self.export_features.labels(fmt).inc(features)

    # --- exposition ---------------------------------------------------------------------

    def render(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)


def _count(value) -> int:
    """A non-negative int out of a summary figure (missing or odd values count as 0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    return max(0, int(value))
