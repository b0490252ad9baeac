"""The agent's exception hierarchy.

Every error meant for a user carries one clear sentence in ``str(exc)``; the CLI, the
HTTP API and the plugin turn it into a message, a status code or a message bar.
"""

from __future__ import annotations

from typing import Optional


class TerraFusionError(Exception):
    """Base class: the message is a complete sentence for a user."""

    #: exit code of the CLI for this kind of error
    exit_code = 1
    #: on an error ending a sync: the recorded run's id and figures, None when the
    #: attempt could not be recorded (yet)
    sync_run: Optional[dict] = None


class ConfigError(TerraFusionError):
    """The configuration file or an override is unreadable or invalid."""

    exit_code = 2


class CentralUnavailable(TerraFusionError):
    """The central database cannot be reached or opened."""


class ReplicaUnusable(CentralUnavailable):
    """The read replica (``central.read_url``) cannot serve this pull: it is down, not a
    copy of the central database, or behind what this copy already holds. The pull then
    reads the primary."""


class LocalUnavailable(TerraFusionError):
    """The local SpatiaLite copy cannot be opened, read or written (full disk, read-only
    folder...)."""


class LocalDamaged(LocalUnavailable):
    """SQLite found the local copy's file damaged; ``terrafusion-agent recover`` rebuilds it."""


class LocalBusy(LocalUnavailable):
    """Another program (QGIS saving edits) held the local copy's write lock too long."""


class TableError(TerraFusionError):
    """A table cannot be synced: missing, no primary key, unsupported layout."""


class MissingTable(TableError):
    """A table named in ``sync.tables`` does not exist in the central database: the
    configuration and the database disagree, so the CLI exits 2 as for a bad setting."""

    exit_code = 2

    def __init__(self, table: str, database: str, message: Optional[str] = None):
        super().__init__(message or f"Table {table} does not exist in the central database "
                                    f"{database}.")
        self.table = table
        self.database = database


class AgentBusy(TerraFusionError):
    """Another agent process holds the local database."""


class SyncCancelled(TerraFusionError):
    """A stop was requested; the sync ended at a transaction boundary."""


class NotFound(TerraFusionError):
    """A named object (conflict, export job, preset) does not exist."""


class SyncInProgress(AgentBusy):
    """A sync is already running in this agent; a second one would overlap it."""


class BadRequest(TerraFusionError):
    """A request to the agent's API (or CLI) is malformed or has invalid values."""


class InvalidMerge(BadRequest):
    """A per-column merge of a conflict names something it cannot hold (an unknown or key
    column, a value of the wrong kind, a conflict without two rows to merge): a bad
    argument, so the CLI exits 2 and the API answers 422; nothing is changed."""

    exit_code = 2


class ExportError(TerraFusionError):
    """An export could not be written although the request was valid (GDAL, disk...)."""


class InvalidExport(BadRequest):
    """An export request names something unknown or unsafe: a bad argument, so the CLI
    exits 2; the API answers 4xx."""

    exit_code = 2


class ExportNotPossible(InvalidExport):
    """A sound export request that this machine cannot serve now: no local copy yet, a
    full disk, a folder it may not write. The API answers 4xx as for any refused request;
    the CLI exits 1, as for a failure, since no other argument would do better."""

    exit_code = 1


class ExportCancelled(ExportError):
    """A cancel was requested; the export stopped and left no file behind."""


class InvalidArgument(BadRequest):
    """A value a person typed (a feature's key, a time) does not fit what it names: the
    CLI exits 2 as for any bad argument, the HTTP API answers 400."""

    exit_code = 2
    http_status = 400
    http_code = "invalid_argument"


class UnknownTable(NotFound):
    """A table named by a person is not one of the synced tables (``sync.tables``)."""

    exit_code = 2
