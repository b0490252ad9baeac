"""The agent's one face: every operation a front end asks of TerraFusion.

The CLI, the HTTP routes, the QGIS plugin's tasks and its Processing algorithms all call
this module and nothing deeper (the plugin may also import :mod:`terrafusion_agent.errors`;
``tests/test_boundaries.py`` enforces it).

**Who does the work** is decided here once, by the same rule for every operation that
writes to the local copy (sync, conflict resolution, discarding pending edits): when an
agent serving the configured local copy answers on its port, it is asked over its HTTP
API, since it holds the copy's lock and two processes must never write one copy at once;
when none answers, the work is done in this process under that same lock
(:class:`~terrafusion_agent.lock.LocalLock`), which refuses with one sentence when an
agent that cannot be reached holds it. Reading (status, conflicts, pending edits,
history, layers) never disturbs a running agent: SQLite readers do not block its writer.
Restoring a feature's version is not the agent's work but the analyst's edit, written
as QGIS writes one (SQLite's write lock orders it with a sync), so it needs neither.

Every function here blocks. A GUI calls them from a background task, never from its main
thread. Bad input and failures arrive as :class:`~terrafusion_agent.errors.TerraFusionError`
(one sentence), or as the dedicated exceptions named in each docstring.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

# settings_file reads and writes the configuration file for a settings editor (never a
# password in it), with the connection helpers it needs
from terrafusion_agent.client import settings_file
from terrafusion_agent.client.conflicts import Resolution, TableShape
from terrafusion_agent.client.http import AgentClient, ApiError, NoAnswer, error_sentence
from terrafusion_agent.client.launcher import Launched, LaunchError
from terrafusion_agent.client.status import (
    HEALTH_TIMEOUT,
    NOT_RUNNING,
    OTHER_AGENT,
    RUNNING,
    SCHEDULER_STOPPED,
    UNKNOWN,
    AgentStatus,
)
from terrafusion_agent.client.sync_runner import VIA_AGENT, Progress, SyncFailed
from terrafusion_agent.config import Config
from terrafusion_agent.config import Key as ConfigKey

__all__ = [
    "AgentStatus", "ApiError", "Config", "ConfigKey", "Launched", "LaunchError", "NoAnswer",
    "Progress", "Resolution", "SyncFailed", "TableShape", "HEALTH_TIMEOUT", "NOT_RUNNING",
    "OTHER_AGENT", "RUNNING", "SCHEDULER_STOPPED", "UNKNOWN", "VIA_AGENT",
    "load_config", "config_path", "config_key", "running_agent", "agent_status",
    "start_agent", "sync_now", "open_conflicts", "conflicts", "resolve_conflicts",
    "typed_merge_value",
    "pending_edits", "discard_pending", "sync_history", "feature_history", "history_report",
    "parse_key", "restore_version",
    "synced_layers", "synced_tables", "local_name", "export_formats", "export_request",
    "history_start",
    "split_fields", "export_table", "cancel_export", "keys_filter", "table_key", "resolve_preset",
    "refuse_own_file", "layer_options", "output_field_names", "layer_export",
    "check_writer_messages", "check_central", "settings_file", "fleet",
    "reload_agent_config", "redact",
]


# --- configuration -------------------------------------------------------------------------

def load_config(path: Optional[str | Path] = None,
                environ: Optional[dict] = None) -> Config:
    """The agent's configuration: ``path``, else ``$TERRAFUSION_CONFIG``, else the user's
    file; ``environ`` (default: this process's) gives the TERRAFUSION_* overrides. Raises
    ConfigError (one sentence naming the key or the file) when it is bad."""
    from terrafusion_agent import config as tf_config

    return tf_config.load(str(path) if path is not None else None, environ=environ)


def config_path(path: Optional[str | Path] = None) -> tuple[Path, bool]:
    """The configuration file the agent reads, and whether it was named (by ``path`` or
    ``$TERRAFUSION_CONFIG``) rather than the user's default file."""
    from terrafusion_agent import config as tf_config

    return tf_config.resolve_path(str(path) if path is not None else None)


def config_key(name: str) -> ConfigKey:
    """The declaration of the configuration key ``name`` (``sync.interval_seconds``): its
    ``help``, ``default``, ``minimum`` and ``maximum`` or ``choices``, and whether a running
    agent applies a new value ``live``. A settings form takes its limits from here instead
    of repeating them. KeyError for a key that does not exist."""
    from terrafusion_agent import config as tf_config

    return tf_config.key(name)


def reload_agent_config(cfg: Config) -> Optional[dict]:
    """Ask the agent serving ``cfg``'s local copy to re-read its configuration file.

    Returns its answer (``changed``, ``restart_required``), or None when no agent answers
    (the next one to start reads the file anyway). Raises ApiError with the agent's
    sentence when it refuses the file.
    """
    client = running_agent(cfg)
    if client is None:
        return None
    try:
        status, body = client.post("/api/v1/config/reload")
    except NoAnswer:
        return None
    return client.checked(status, body, 200)


def check_central(cfg: Config) -> tuple[bool, Optional[str]]:
    """Try the configured central database once: (reachable, the reason when not)."""
    from terrafusion_agent import health

    return health.check_central(cfg)


# --- the running agent ---------------------------------------------------------------------


def running_agent(cfg: Config, timeout: float = 2.0) -> Optional[AgentClient]:
    """A client for the agent that serves ``cfg``'s local copy, or None if none answers."""
    from terrafusion_agent.client.http import agent_for

    return agent_for(cfg, timeout)


def agent_status(config_path: Optional[str] = None) -> AgentStatus:
    """How the agent named by the configuration is: running or not, its health, the local
    copy's own figures when it is not running. Never raises for a bad configuration: the
    status then says UNKNOWN with the sentence in ``error``."""
    from terrafusion_agent.client.status import check_agent

    return check_agent(config_path=config_path)


def start_agent(cfg: Config, startup_log: Optional[Path] = None) -> Launched:
    """Start ``terrafusion-agent run`` for ``cfg`` as a detached process that outlives the
    caller; what it prints before its own log is set up goes to ``startup_log`` (default:
    ``agent-start.log`` in its log folder). Raises LaunchError (one sentence) when it
    cannot start or dies at once."""
    from terrafusion_agent.client.launcher import start_agent as launch

    return launch(cfg.source, startup_log or cfg.log_dir / "agent-start.log")


# --- sync ----------------------------------------------------------------------------------


def sync_now(cfg: Config, progress: Optional[Progress] = None,
             cancelled: Optional[Callable[[], bool]] = None, trigger: str = "plugin",
             in_child: bool = True) -> dict:
    """One pull and push now; the summary, with ``via`` saying who ran it (``"agent"``,
    else ``trigger``).

    ``progress(fraction or None, table)`` follows the run. Asked of the running agent when
    one serves the copy (its run is followed until it ends; a cancel stops waiting, the
    agent finishes on its own); else run here under the copy's lock, in a child Python
    when ``in_child`` (a GUI's process stays responsive) or in this process. Raises
    SyncFailed with one sentence when the sync fails or is cancelled.
    """
    from terrafusion_agent.client.sync_runner import sync_now as run

    return run(cfg, progress=progress, cancelled=cancelled, trigger=trigger,
               in_child=in_child)


# --- conflicts -----------------------------------------------------------------------------


def conflicts(cfg: Config, include_resolved: bool = False) -> list[dict]:
    """The conflicts and refused rows of the local copy, oldest first."""
    from terrafusion_agent.stores.local import LocalStore

    with LocalStore.open_existing(cfg.local_path) as local:
        return local.conflicts(include_resolved=include_resolved)


def open_conflicts(cfg: Config) -> tuple[list[dict], dict[str, TableShape]]:
    """The open conflicts and the shape (columns, key, geometry) of each of their tables."""
    from terrafusion_agent.client.conflicts import load_conflicts

    return load_conflicts(cfg)


def resolve_conflicts(cfg: Config, ids: list[int], keep: Optional[str] = None,
                      merge: Optional[dict] = None) -> Resolution:
    """Resolve each conflict in ``ids`` keeping ``keep`` ("local" or "central"), or resolve
    the one conflict in ``ids`` with ``merge``, {column: "local", "central" or a value}
    (a JSON number, string, boolean or null; WKT for the geometry column; ``{"value":
    "local"}`` for the text "local"). Exactly one of ``keep`` and ``merge``.

    Every column changed on both sides must be in the merge; another column may be too,
    and becomes part of the local edit. The local row takes the chosen values now, and
    the next sync sends central exactly the columns where they differ from central's row
    at detection (a column central changed again since is a new conflict, never an
    overwrite). A row deleted on one side or refused by central has nothing to merge.

    Through the running agent when one serves the copy (it makes the resolution wait for
    a sync it is running), else here under the copy's lock. One sentence per id that could
    not be resolved lands in ``Resolution.errors``; the others are resolved all the same.
    An id whose request was refused as invalid (a bad merge: unknown or key column, a
    value the column cannot hold) is also listed in ``Resolution.invalid``. BadRequest
    for a call that gives both ``keep`` and ``merge``, neither, or a merge for several ids.
    """
    from terrafusion_agent.client import conflicts as conflict_client
    from terrafusion_agent.errors import BadRequest, InvalidMerge

    if (keep is None) == (merge is None):
        raise BadRequest("Resolve by keeping a side or by a merge, not both or neither.")
    if keep is not None and keep not in ("local", "central"):
        raise BadRequest(f'keep must be "local" or "central", not {keep!r}.')
    if merge is not None:
        if not isinstance(merge, dict):
            raise InvalidMerge("A merge is an object of column: \"local\", \"central\" or "
                               "a value.")
        if len(ids) != 1:
            raise InvalidMerge(f"A merge resolves one conflict at a time, not {len(ids)}.")
    client = running_agent(cfg)
    if client is not None:
        try:
            return conflict_client.resolve_via_agent(client, ids, keep, merge)
        except NoAnswer:
            pass  # the agent went away meanwhile: resolve here, under the lock
    return conflict_client.resolve_here(cfg, ids, keep, merge)


def typed_merge_value(shape: TableShape, column: str, text: str) -> Any:
    """What a person typed for ``column`` of a table of ``shape`` (from
    :func:`open_conflicts`), as the value :func:`resolve_conflicts` takes in a merge:
    empty text is NULL, numbers may be grouped as shown (``64,800.0``). BadRequest with
    one sentence when the text is no value of the column's kind."""
    from terrafusion_agent.client.conflicts import typed_value

    kinds = dict(zip(shape.columns, shape.kinds))
    return typed_value(kinds.get(column, "text"), column, text)


# --- what changed: pending edits and history ------------------------------------------------


def pending_edits(cfg: Config, limit: Optional[int] = None,
                  with_geometry: bool = False) -> list[dict]:
    """The local edits not yet pushed to central, oldest first (the first ``limit``).

    Each has ``id``, ``table``, ``key``, ``op`` (insert, update or delete), ``state``
    (``pending``; ``conflict`` while it waits in a conflict, ``rejected`` when central
    refused it, with ``conflict_id`` and the server's ``message``), ``changed_at``,
    ``version`` and ``changes``: per changed column its ``base`` (as last synced) and
    ``local`` value, geometries as WKT (an insert lists every local value, a delete every
    base value). ``with_geometry`` adds ``geometry``: the row's WKT as it is now (as last
    synced for a delete), for a map.
    """
    from terrafusion_agent.stores.local import LocalStore
    from terrafusion_agent.sync.pending import listed

    with LocalStore.open_existing(cfg.local_path) as local:
        return listed(local, limit=limit, with_geometry=with_geometry)


def discard_pending(cfg: Config, edits: Optional[list[tuple[str, tuple]]]) -> dict:
    """Take back local edits before they reach central: each row in ``edits`` ((table,
    key) pairs; None: every edit not waiting in a conflict) goes back to how it was last
    synced, in one transaction, and its edit is dropped.

    Returns ``discarded`` (each edit as :func:`pending_edits` showed it just before),
    ``via`` (``"agent"`` or ``"here"``) and, for all, ``conflicts_left``. Through the
    running agent when one serves the copy (it waits for a sync it is running), else
    here under the copy's lock. Raises NotFound (no such table, or no edit of that row),
    BadRequest (a key its table cannot have) or TerraFusionError (an edit in conflict,
    which ``conflicts resolve ID --keep central`` settles); then nothing is discarded.
    """
    from terrafusion_agent.client import pending as pending_client

    if edits is not None:
        edits = [(table, tuple(key)) for table, key in edits]
    client = running_agent(cfg)
    if client is not None:
        try:
            return pending_client.discard_via_agent(client, edits)
        except NoAnswer:
            pass  # the agent went away meanwhile: discard here, under the lock
    return pending_client.discard_here(cfg, edits)


def sync_history(cfg: Config, limit: int = 20) -> list[dict]:
    """The most recent sync runs of the local copy, newest first."""
    from terrafusion_agent.stores.local import LocalStore

    with LocalStore.open_existing(cfg.local_path) as local:
        return local.recent_runs(limit)


def feature_history(cfg: Config, table: str, key: Any, since: Any = None,
                    until: Any = None) -> list[dict]:
    """The changes central recorded for one feature of a synced table, newest first.

    Each entry: ``id``, ``table``, ``key``, ``op`` (insert, update, delete),
    ``committed_at``, ``role``, ``application``, ``agent`` (``id``, ``os_user``,
    ``host``; None for a change not pushed by an agent), ``columns`` (those it changed)
    and their ``old`` and ``new`` values (geometry as WKT). ``key``: the values of the
    key columns in order (a bare value for a one-column key) or the text a person typed
    (see :func:`parse_key`); ``since`` and ``until`` (ISO 8601 text or datetimes, UTC
    unless they say otherwise) bound the entries' times. Reads central only. A table
    that is not synced raises UnknownTable, a key or time that does not fit
    InvalidArgument, each with one sentence naming it.
    """
    return history_report(cfg, table, key, since, until)["entries"]


def history_report(cfg: Config, table: str, key: Any, since: Any = None,
                   until: Any = None) -> dict:
    """:func:`feature_history` as the CLI prints it and ``GET /api/v1/history/{table}/{key}``
    answers: ``{"table", "key", "history_start", "entries"}``, ``history_start`` being
    the oldest change central still keeps for the table (older ones were purged)."""
    from terrafusion_agent.feature_history import report

    return report(cfg, table, key, since, until)


def parse_key(cfg: Config, table: str, text: str) -> tuple:
    """A feature's key as a person types it (``1001``, or a JSON array such as
    ``["R-7", 2]`` for a key of several columns), typed by the key columns' kinds as
    central describes the synced ``table``. InvalidArgument names what does not fit."""
    from terrafusion_agent.feature_history import synced
    from terrafusion_agent.stores import open_central
    from terrafusion_agent.stores.keys import parse_key as parse

    synced(cfg, table)
    central = open_central(cfg)
    try:
        info = central.table_info(table)
    finally:
        central.close()
    return parse(info, text)


def restore_version(cfg: Config, table: str, key: Any, entry_id: int) -> dict:
    """Make the feature in the local copy what it was right after history entry
    ``entry_id``: a row deleted since comes back.

    The change is the analyst's own edit, made in one local transaction as QGIS makes
    one (so no agent and no lock is needed): the local triggers capture it, and the next
    sync pushes it and reconciles it with central like any edit (a column central
    changed meanwhile is a conflict, never an overwrite). Returns what it changed:
    ``{"table", "key", "entry_id", "op", "columns"}`` (``op`` None when the row was that
    version already). A delete entry is refused (BadRequest: restore the version before
    it); an entry about another feature raises NotFound.
    """
    from terrafusion_agent.feature_history import restore

    return restore(cfg, table, key, entry_id)


# --- the fleet -----------------------------------------------------------------------------


def fleet(cfg: Config) -> list[dict]:
    """Every agent's heartbeat as central's ``tf_fleet`` view shows it, stale ones first:
    ``agent_id``, ``hostname``, ``version``, ``registered_at``, ``last_seen_at``,
    ``interval_seconds``, ``last_success_at``, ``last_result``, ``consecutive_failures``,
    ``pending``, ``open_conflicts``, ``rejected``, ``stale_after_seconds`` and ``stale``
    (not seen, or no success, for longer than ``stale_after_seconds``). Figures an agent
    of an earlier version does not report are None. Only reads that view (any role
    allowed to read it may ask); a central without it raises TerraFusionError saying to
    run init-central, an unreachable one CentralUnavailable."""
    from terrafusion_agent.stores import open_central

    central = open_central(cfg)
    try:
        return central.fleet()
    finally:
        central.close()


# --- layers --------------------------------------------------------------------------------


def synced_layers(cfg: Config) -> list[dict]:
    """One entry per synced table for a map: name, geometry column, SRID, type, rows, path.
    Raises LocalUnavailable when the local copy does not exist yet."""
    from terrafusion_agent.layers import synced_layers as layers

    return layers(cfg)


def synced_tables(cfg: Config) -> list:
    """The synced tables' descriptions (``TableInfo``), as the local copy holds them."""
    from terrafusion_agent.stores.local import LocalStore

    with LocalStore.open_existing(cfg.local_path) as local:
        return local.tables()


def local_name(table: str) -> str:
    """The name a central table (maybe schema-qualified) has in the local copy."""
    from terrafusion_agent.stores.local import local_name as name

    return name(table)


# --- export --------------------------------------------------------------------------------


def export_formats() -> dict:
    """The export formats by name (``FormatSpec``: label, driver, extension, limits)."""
    from terrafusion_agent.export import FORMATS

    return FORMATS


def export_request(**fields: Any):
    """An ``ExportRequest`` (table or preset, format, out, crs, where, fields, ...);
    ``as_of`` (ISO 8601, UTC unless it names its zone) exports the table as it stood
    then, rebuilt from central's history."""
    from terrafusion_agent.export import ExportRequest

    return ExportRequest(**fields)


def history_start(cfg: Config, table: str) -> Optional[str]:
    """When central's history of a synced table starts (ISO 8601, UTC), the earliest
    moment an export as of a past time can show; None when it keeps none. Asks central:
    CentralUnavailable (one sentence) when it cannot be reached."""
    from terrafusion_agent.stores import open_central

    central = open_central(cfg)
    try:
        return central.history_start(table)
    finally:
        central.close()


def split_fields(text: Optional[str]) -> Optional[tuple[str, ...]]:
    """A comma-separated field list as typed by a user, as a list (None for none)."""
    from terrafusion_agent.export.request import split_fields as split

    return split(text)


def cancel_export(cfg: Config, job_id: int) -> dict:
    """Cancel export job ``job_id``: through the agent serving ``cfg``'s local copy when one
    answers (its jobs live there), else among this process's own jobs. Returns the job's
    state: a job still pending or running stops (its partial file removed) and ends
    ``cancelled``; a finished job is left as it is. NotFound for an unknown id; ApiError
    with the agent's sentence when it refuses."""
    client = running_agent(cfg)
    if client is not None:
        try:
            status, body = client.post(f"/api/v1/exports/{int(job_id)}/cancel")
        except NoAnswer:
            pass  # it stopped meanwhile, and its jobs with it
        else:
            if status == 404:
                from terrafusion_agent.errors import NotFound

                raise NotFound(error_sentence(body, status))
            return client.checked(status, body, 200, 202)
    from terrafusion_agent.export import jobs

    return jobs.cancel(cfg, job_id)


def export_table(cfg: Config, request, progress=None, cancel=None):
    """Export one synced table to one file (``ExportResult``); atomic, never half a file.

    Raises InvalidExport for a bad request, ExportCancelled when ``cancel()`` turned true,
    ExportError with one sentence when writing failed; an export ``as_of`` a past time
    also CentralUnavailable when central cannot be read.
    """
    from terrafusion_agent.export import export_table as run

    return run(cfg, request, progress=progress, cancel=cancel)


def keys_filter(cfg: Config, table: str, keys: list[tuple]) -> str:
    """A filter for :func:`export_table` matching exactly the rows whose primary key is
    one of ``keys`` (tuples in key column order)."""
    from terrafusion_agent.stores.local import LocalStore
    from terrafusion_agent.stores.selection import keys_filter as build

    with LocalStore.open_existing(cfg.local_path) as local:
        info = local.table_info(table)
    return build(info, keys)


def table_key(cfg: Config, table: str) -> tuple[str, ...]:
    """The primary key columns of a synced table (or of the table a preset names)."""
    from terrafusion_agent.stores.local import LocalStore

    with LocalStore.open_existing(cfg.local_path) as local:
        return local.table_info(table).pk


def resolve_preset(cfg: Config, request):
    """The request with its preset applied (the table, format and fields it names)."""
    from terrafusion_agent.export.presets import resolve

    return resolve(cfg, request)


def refuse_own_file(cfg: Config, out: Path) -> None:
    """Raise ExportError when ``out`` is one of the agent's own files (the local copy,
    its configuration, its token...), which no export may overwrite."""
    from terrafusion_agent.export.protected import refuse_own_file as refuse

    refuse(cfg, out)


def layer_options(fmt: str, geometry_type: Optional[str], target_epsg: Optional[int]) -> list:
    """GDAL layer creation options of format ``fmt``, as the engine's own exports use."""
    from terrafusion_agent.export.formats import layer_options as options

    return options(export_formats()[fmt], geometry_type=geometry_type,
                   target_epsg=target_epsg)


def output_field_names(fmt: str, names: list[str]) -> dict[str, str]:
    """Each field's name in a file of format ``fmt`` (shortened, unique, where the format
    limits names), as the engine's own exports name them."""
    from terrafusion_agent.export.formats import shorten_names

    spec = export_formats()[fmt]
    return shorten_names(names, spec.max_field_name) if spec.max_field_name \
        else {n: n for n in names}


def layer_export(cfg: Config, out: Path, fmt: str, *, layer: Optional[str] = None,
                 overwrite: bool = True):
    """A context manager for a writer outside the engine (the plugin's export of a project
    layer): it yields an output whose ``path`` the writer writes; when the block ends
    normally the file is checked (the caller calls ``output.verify(features)``) and
    published atomically (``output.bytes`` is then its size); when the block raises,
    nothing is left behind. The agent's own files are refused (InvalidExport), and any
    system error becomes one ExportError sentence (the disk-full one when it is)."""
    from terrafusion_agent.export.publish import atomic_output

    return atomic_output(Path(out), export_formats()[fmt], overwrite, layer=layer,
                         config=cfg)


def check_writer_messages(out: Path, messages: list[str]) -> None:
    """Raise ExportError when GDAL reported failures while another writer wrote ``out``
    (such a writer may not hear them itself): the disk-full sentence when they say so."""
    from terrafusion_agent.errors import ExportError
    from terrafusion_agent.export import diskfull

    if not messages:
        return
    if diskfull.said_full(messages) or diskfull.nearly_full(Path(out).parent):
        raise diskfull.error(Path(out))
    raise ExportError(f"GDAL could not write {Path(out).name}: "
                      f"{str(messages[0]).rstrip('.')}.")


# --- logging -------------------------------------------------------------------------------


def redact(text: str) -> str:
    """``text`` with passwords, tokens and connection secrets masked."""
    from terrafusion_agent.redact import redact as mask

    return mask(text)
