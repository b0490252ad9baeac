"""``terrafusion-agent``: the agent's command line (also ``python -m terrafusion_agent``).

Errors reach the user as one sentence on stderr and a non-zero exit; ``--debug`` adds the
traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Optional, Sequence

from terrafusion_agent import __version__
from terrafusion_agent.errors import InvalidMerge, TerraFusionError
from terrafusion_agent.redact import redact
from terrafusion_agent.stores.keys import key_values

#: what init-central makes in the central database, and uninstall-central removes
CENTRAL_OBJECTS = """\
What it creates in the central database (in central.schema), and nothing else:
  tables    tf_agents, tf_change_log, tf_history, tf_history_tx, tf_key_blocks,
            tf_push_receipts, tf_settings, tf_schema_version (SpatiaLite also
            tf_history_values and tf_origin)
  view      tf_fleet (every role may read it)
  functions tf_track, tf_capture, tf_capture_layout, tf_capture_sql,
            tf_history_begin, tf_history_feature, tf_history_stamp,
            tf_history_tracked, tf_reserve_keys, and one tf_capture_<hash> per
            tracked table (PostgreSQL only)
  triggers  on every table of sync.tables: tf_capture, tf_capture_ins and
            tf_capture_del (SpatiaLite: tf_capture_ins_<table>,
            tf_capture_upd_<table>, tf_capture_updkey_<table>,
            tf_capture_del_<table>), recording each change in tf_change_log and
            tf_history
It adds no column to the county's tables and changes none of their rows."""


def _common_options() -> argparse.ArgumentParser:
    """--config and --debug, also accepted after the command (``sync --config x.toml``);
    there they default to nothing, so as not to undo what came before the command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                        help="TOML configuration file (default: $TERRAFUSION_CONFIG, then "
                             "the user config dir's terrafusion/agent.toml)")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks and debug logging")
    return common


class _Commands:
    """Adds commands that all read the same: a description, examples, --config, --debug."""

    def __init__(self, parent: argparse.ArgumentParser, dest: str, metavar: str,
                 common: argparse.ArgumentParser, prefix: str = ""):
        self.sub = parent.add_subparsers(dest=dest, metavar=metavar)
        self.sub.required = True
        self.common = common
        self.prefix = prefix

    def add(self, name: str, help: str, description: str, examples: Sequence[str],
            details: str = "") -> argparse.ArgumentParser:
        command = f"terrafusion-agent {self.prefix}{name}"
        text = textwrap.fill(description, 79)
        if details:
            text += "\n\n" + details
        epilog = "examples:\n" + "\n".join(f"  {command} {e}".rstrip() for e in examples)
        return self.sub.add_parser(
            name, help=help, description=text, epilog=epilog, parents=[self.common],
            formatter_class=argparse.RawDescriptionHelpFormatter)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="terrafusion-agent",
        description="Keep a local SpatiaLite copy in sync with the county's central "
                    "database. 'terrafusion-agent COMMAND --help' describes a command.",
        epilog="examples:\n"
               "  terrafusion-agent init-central --demo-parcels 10000\n"
               "  terrafusion-agent sync\n"
               "  terrafusion-agent --config /etc/terrafusion/agent.toml status",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="PATH", default=None,
                   help="TOML configuration file (default: $TERRAFUSION_CONFIG, then the "
                        "user config dir's terrafusion/agent.toml); also after the command")
    p.add_argument("--debug", action="store_true", default=False,
                   help="show tracebacks and debug logging; also after the command")
    p.add_argument("--version", action="version", version=f"terrafusion-agent {__version__}")
    common = _common_options()
    sub = _Commands(p, "command", "COMMAND", common)

    init = sub.add(
        "init-central", "create or upgrade the central bookkeeping and change tracking",
        "Create or upgrade TerraFusion's bookkeeping in the central database (the system "
        "of record) and install change tracking on every table of sync.tables. A table "
        "that is missing or has no primary key is refused by name before anything is "
        "written; a failed run leaves the database, and the files, as it found them. "
        "Safe to run again, also to upgrade after a new version of the agent. With "
        "--demo-parcels N it first creates and loads the synthetic demo county (tables "
        "parcels, districts and sales). 'uninstall-central' removes what it created.",
        ["--demo-parcels 10000", "", "--config /etc/terrafusion/agent.toml"],
        details=CENTRAL_OBJECTS)
    init.add_argument("--demo-parcels", type=_positive_int, metavar="N",
                      help="first create and load the synthetic demo county with N parcels")
    uninstall_central = sub.add(
        "uninstall-central", "remove what init-central created, leaving the county's data",
        "Remove from the central database everything init-central created: the capture "
        "triggers on the county's tables, and the bookkeeping's tables, view and "
        "functions, with the change log, the audit history and the agents' heartbeats. "
        "The county's tables keep every row and column. Without --yes it lists what it "
        "would remove, removes nothing and exits 2. Agents cannot sync until "
        "init-central runs again; their next sync then copies every table afresh.",
        ["", "--yes"], details=CENTRAL_OBJECTS.replace("What it creates", "What init-central "
                                                         "creates"))
    uninstall_central.add_argument("--yes", action="store_true",
                                   help="really remove it (all or nothing)")
    sub.add("sync", "pull and push once now; prints a JSON summary",
            "Pull what changed in the central database and push this copy's edits, once, "
            "now. When an agent serving this local copy runs, it is handed the sync and "
            "its run is followed to the end; else the sync runs here, under the copy's "
            "lock. Prints a JSON summary (rows pulled and pushed, conflicts, rows central "
            "refused); exit 0 also when it recorded conflicts or refused rows, 2 when "
            "sync.tables names a table central lacks (a sync run here), 1 when the sync "
            "failed.",
            ["", "--config ~/county.toml"])
    sub.add("run", "scheduler and HTTP API until SIGINT/SIGTERM; SIGHUP re-reads the "
                   "configuration",
            "Run the agent in the foreground: a sync every sync.interval_seconds and the "
            "HTTP API (health, metrics, the plugin's requests) on http.host:http.port, "
            "until SIGINT or SIGTERM, which end it gracefully. SIGHUP re-reads the "
            "configuration.",
            ["", "--debug"])
    sub.add("status", "JSON status (the body of GET /health)",
            "Print the agent's status as JSON, the body of GET /health: last and next "
            "sync, pending edits, open conflicts, whether central is reachable. A running "
            "agent is asked first; else it is read from the local copy.",
            [""])
    sub.add("verify", "compare counts and checksums of central and local",
            "Per synced table, compare row counts and content checksums of the central "
            "database and the local copy, and count the pending edits. Exit 0 when every "
            "table is equal, 1 otherwise.",
            [""])
    sub.add("recover", "rebuild a damaged local copy from central, re-applying the "
                       "pending edits still readable and keeping the damaged file",
            "Rebuild a damaged local copy from the central database, re-applying the "
            "pending edits that can still be read from it; the damaged file is kept "
            "beside the new one. Prints a JSON report.",
            [""])
    install = sub.add(
        "install-service", "start the agent at login (systemd user service)",
        "Write a systemd user unit that runs 'terrafusion-agent run' with this "
        "configuration file at login and restarts it after a failure (not after a "
        "configuration error), then enable and start it. Without --config it uses the "
        "file the agent reads by default ($TERRAFUSION_CONFIG, else the user config "
        "dir's terrafusion/agent.toml), which it creates (empty: all defaults) when it "
        "does not exist yet. Without systemd it prints the steps instead.",
        ["", "--no-start", "--config ~/county.toml"])
    install.add_argument("--no-start", action="store_true",
                         help="only enable it; it starts at the next login")
    sub.add("uninstall-service", "stop and remove the systemd user service",
            "Stop and disable the systemd user service of install-service and remove its "
            "unit. The configuration, the local copy and the logs stay.",
            [""])

    conflicts = sub.add(
        "conflicts", "inspect and resolve sync conflicts",
        "Conflicts are rows changed both here and centrally since the last sync, and "
        "rows central refused; 'list' shows them, 'resolve' settles one.",
        ["list", "resolve 12 --keep central"])
    csub = _Commands(conflicts, "conflicts_command", "ACTION", common, "conflicts ")
    clist = csub.add("list", "open conflicts as JSON",
                     "The open conflicts and refused rows as JSON (\"kind\": \"conflict\" "
                     "or \"rejected\"), with the base, local and central values.",
                     ["", "--all"])
    clist.add_argument("--all", action="store_true", help="include resolved conflicts")
    resolve = csub.add(
        "resolve", "resolve one conflict",
        "Keep one side of the conflict (--keep), or choose per column (--merge): each "
        "column \"local\", \"central\" or a value. Every column changed on both sides "
        "must be named. A resolution goes through the running agent, else is made here "
        "under the copy's lock.",
        ["12 --keep local",
         "12 --merge '{\"owner_name\": \"central\", \"land_value\": 123000}'"])
    resolve.add_argument("id", type=_positive_int)
    resolve.add_argument("--keep", choices=("local", "central"),
                         help="keep this side for the columns changed on both sides")
    resolve.add_argument("--merge", metavar="JSON",
                         help="a JSON object of column: \"local\", \"central\" or a value "
                              "(number, text, true/false, null; WKT for the geometry; "
                              "{\"value\": \"local\"} for that text)")

    pending = sub.add(
        "pending", "see and discard local edits not yet pushed to central",
        "The local edits not yet pushed to central: 'list' shows them, 'discard' puts "
        "rows back as they were last synced.",
        ["list", "discard parcels 1001"])
    psub = _Commands(pending, "pending_command", "ACTION", common, "pending ")
    plist = psub.add(
        "list", "the pending edits as JSON, with base and local values per changed column "
                "(also those waiting in a conflict or refused by central)",
        "The pending edits as JSON: table, key, operation, state (pending, conflict or "
        "rejected), when, and per changed column its value as last synced and its local "
        "value.",
        ["", "--limit 20"])
    plist.add_argument("--limit", type=_positive_int, metavar="N",
                       help="only the N oldest")
    discard = psub.add(
        "discard", "put rows back as they were last synced; nothing reaches central",
        "Put a row back as it was last synced and drop its pending edit: an update is "
        "reverted, a deleted row comes back, a row inserted here disappears. Nothing "
        "reaches central. An edit waiting in a conflict is resolved with 'conflicts "
        "resolve ID' instead; --all leaves those.",
        ["parcels 1001", "permits '[\"A-7\", 3]'", "--all"])
    discard.add_argument("table", nargs="?", metavar="TABLE")
    discard.add_argument("key", nargs="?", metavar="KEY", type=key_values,
                         help="the row's key as listed: 1001, or a JSON array for a key of "
                              "several columns, e.g. '[\"A-7\", 3]'")
    discard.add_argument("--all", action="store_true",
                         help="every pending edit, except those waiting in a conflict")

    history = sub.add(
        "history", "a feature's change history from central as JSON, newest first",
        "The changes central recorded for one feature: when, who, the operation and the "
        "old and new value of each column it changed, newest first. history_start says "
        "since when central keeps changes.",
        ["parcels 100004", "parcels 100004 --since 2026-12-01",
         "permits '[\"R-7\", 2]' --until 2026-12-01T14:30:00Z"])
    history.add_argument("table", metavar="TABLE", help="a synced table")
    history.add_argument("key", metavar="KEY",
                         help="the feature's key: 1001, or a JSON array such as "
                              "'[\"R-7\", 2]' for a key of several columns")
    history.add_argument("--since", metavar="T",
                         help="only changes at or after T (ISO 8601, UTC unless it says "
                              "otherwise: 2026-12-01 or 2026-12-01T14:30:00Z)")
    history.add_argument("--until", metavar="T", help="only changes at or before T")

    fleet = sub.add(
        "fleet", "every agent syncing with central: version, last success, failures, "
                 "backlog; stale ones flagged",
        "Every agent's heartbeat as central keeps it (the tf_fleet view): version, last "
        "seen, last success, failures in a row, pending edits, open conflicts and rows "
        "central refused. An agent is stale when it has not been seen, or has not synced "
        "successfully, for longer than three of its intervals plus five minutes. Needs "
        "only the right to read tf_fleet.",
        ["", "--json"])
    fleet.add_argument("--json", action="store_true",
                       help="the rows as JSON instead of a table")

    export = sub.add(
        "export", "export a table of the local copy to a file; prints a JSON summary",
        "Export a table of the local copy. With --preset, TABLE and --format come from "
        "the preset (--format may change it); --where and --fields can only narrow the "
        "preset's selection; if the preset names the file, --out is the folder to write "
        "into. With --as-of, the table as it stood at that time, rebuilt from central's "
        "history. Exit 2 for a bad argument (unknown table, field, format, preset or "
        "CRS, a bad filter, a file that exists), 1 when the export failed.",
        ["parcels --format gpkg --out parcels.gpkg",
         "parcels --format geojson --crs EPSG:4326 --where \"acres > 1\" "
         "--fields geo_id,situs_address --out big_lots.geojson",
         "--preset public_parcels --out /srv/web/data",
         "parcels --format shp --as-of 2026-01-01 --out parcels_2026.zip"])
    export.add_argument("table", nargs="?", metavar="TABLE",
                        help="table to export (optional with --preset)")
    export.add_argument("--format", metavar="F",
                        help="gpkg, geojson, shp (one .zip), kml, csv or fgb")
    export.add_argument("--out", metavar="PATH", required=True,
                        help="file to write (with a preset that names the file: its folder)")
    export.add_argument("--crs", metavar="EPSG:N", help="reproject to this CRS")
    export.add_argument("--where", metavar="EXPR",
                        help="SQL filter on the table's fields, e.g. \"acres > 1\"")
    export.add_argument("--fields", metavar="A,B", help="only these fields, in this order")
    export.add_argument("--preset", metavar="NAME", help="an [export.presets.NAME] of the config")
    export.add_argument("--overwrite", action="store_true",
                        help="replace the file if it exists")
    export.add_argument("--as-of", metavar="T", dest="as_of",
                        help="the table as it stood at time T (ISO 8601, UTC unless it names "
                             "its zone, e.g. 2026-01-01T00:00:00), rebuilt from central's "
                             "history instead of read from the local copy")
    return p


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What argparse cannot say by itself; exits 2 like its own errors."""
    if args.command == "pending" and args.pending_command == "discard":
        if args.all and args.table is not None:
            parser.error("pending discard: give either TABLE KEY or --all, not both")
        if not args.all and args.key is None:
            parser.error("pending discard: give TABLE KEY, or --all")


def _print_json(data) -> None:
    print(json.dumps(data, indent=2, default=str))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _check_arguments(parser, args)
    try:
        return _dispatch(args)
    except TerraFusionError as exc:
        if args.debug:
            raise
        print(f"terrafusion-agent: {redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("terrafusion-agent: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into head, less...
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 0


def _dispatch(args: argparse.Namespace) -> int:
    from terrafusion_agent import config as config_mod
    from terrafusion_agent import logs

    config = config_mod.load(args.config)
    level = "DEBUG" if args.debug else config.log_level
    made = _NewPaths(_files_of_init_central(config) if args.command == "init-central" else ())
    logs.setup(level, config.log_dir, console=args.command == "run" or args.debug,
               role="agent" if args.command == "run" else args.command, config=config)
    try:
        return COMMANDS[args.command](config, args)
    except BaseException as exc:
        # the work is done once it prints: output piped into head keeps what it made
        if made.paths and not isinstance(exc, BrokenPipeError):
            logs.setup(level, None, console=args.debug)  # closes the log file first
            made.remove()
        raise


def _files_of_init_central(config) -> list[Path]:
    """What init-central may create: its log file and an embedded central database, with
    the files SQLite keeps beside it."""
    from terrafusion_agent import logs
    from terrafusion_agent.stores import embedded_central_path

    files = logs.files_in(config.log_dir) if config.log_dir is not None else []
    central = embedded_central_path(config)
    if central is not None:
        files.append(central)
        files += [central.with_name(central.name + s) for s in ("-wal", "-shm", "-journal")]
    return files


class _NewPaths:
    """Of ``files`` and their folders, those that do not exist yet: a failed run removes
    what it made of them, and never anything that existed before it started."""

    def __init__(self, files: Iterable[Path]):
        self.paths: list[Path] = []
        for path in files:
            for part in (path, *path.parents):
                if part.exists() or part.is_symlink():
                    break
                self.paths.append(part)

    def remove(self) -> None:
        # deepest first: files, then their folders, each folder only once it is empty
        for path in sorted(set(self.paths), key=lambda p: len(p.parts), reverse=True):
            try:
                if path.is_dir() and not path.is_symlink():
                    path.rmdir()
                else:
                    path.unlink()
            except OSError:
                pass  # never made, or something else has put a file in that folder since


def cmd_init_central(config, args) -> int:
    from terrafusion_agent.central import init_central
    from terrafusion_agent.errors import MissingTable
    from terrafusion_agent.stores import open_central

    store = open_central(config, create=True)
    try:
        result = init_central(store, config.tables, args.demo_parcels)
    except MissingTable as exc:
        raise MissingTable(exc.table, exc.database, _missing_table_advice(
            config, exc, args.demo_parcels is not None)) from None
    finally:
        store.close()
    _print_json(result)
    return 0


def _missing_table_advice(config, exc, demo: bool) -> str:
    """The sentence for a table of sync.tables that central lacks: what to do about it,
    naming the file to edit (a fresh user's first init-central lands here)."""
    from terrafusion_agent.demo import county

    where = f"{config.file}" + ("" if config.file.exists() else " (a file to create)")
    start = (f"Table {exc.table} of sync.tables does not exist in the central database "
             f"{exc.database}")
    if not demo and set(config.tables) <= set(county.TABLES):
        return (f"{start}: run 'terrafusion-agent init-central --demo-parcels 10000' to "
                f"create a demo county there, or point central.url (and sync.tables) at "
                f"the county's database in {where}.")
    return (f"{start}: create it there, or list in sync.tables only tables central has, "
            f"in {where}.")


def cmd_uninstall_central(config, args) -> int:
    from terrafusion_agent.central import installed, uninstall_central
    from terrafusion_agent.stores import embedded_central_path, open_central

    embedded = embedded_central_path(config)
    if embedded is not None and not embedded.exists():
        print(f"terrafusion-agent: The central database {embedded} does not exist; there "
              "is nothing to remove.", file=sys.stderr)
        _print_json({"central": f"sqlite:///{embedded}", "removed": []})
        return 0
    store = open_central(config)
    try:
        objects = installed(store)
        if not objects:
            print(f"terrafusion-agent: The central database {store.describe()} holds "
                  "nothing of TerraFusion's; there is nothing to remove.", file=sys.stderr)
            _print_json({"central": store.describe(), "removed": []})
            return 0
        if not args.yes:
            print(f"uninstall-central would remove from the central database "
                  f"{store.describe()}:")
            for item in objects:
                print(f"  {item['kind']:<9} {item['name']}")
            print("with the change log, the audit history and the agents' heartbeats. The "
                  "county's tables keep every row and column.")
            print(f"terrafusion-agent: Nothing was removed; run 'terrafusion-agent "
                  f"uninstall-central --yes' to remove these {len(objects)} objects.",
                  file=sys.stderr)
            return 2
        result = uninstall_central(store)
    finally:
        store.close()
    _print_json(result)
    return 0


def cmd_sync(config, args) -> int:
    from terrafusion_agent import api

    progress = _TerminalProgress() if sys.stderr.isatty() else None
    try:
        # a running agent for this copy is asked to sync (it holds the copy's lock);
        # else the sync runs here, under that lock
        summary = api.sync_now(config, progress=progress, trigger="cli", in_child=False)
    except api.SyncFailed as exc:
        if exc.cancelled and not str(exc):
            raise KeyboardInterrupt from None
        failed = TerraFusionError(str(exc) or "The sync failed.")
        failed.exit_code = exc.exit_code  # 2 when the configuration is at fault
        raise failed from None
    finally:
        if progress:
            progress.done()
    _print_json(summary)
    return 0


def cmd_run(config, args) -> int:
    from terrafusion_agent import config as config_mod
    from terrafusion_agent.service.daemon import Agent

    # a reload (SIGHUP, POST /api/v1/config/reload) reads what this start read
    agent = Agent(config, load_config=lambda: config_mod.load(args.config))
    agent.install_signal_handlers()
    agent.start()
    print(f"TerraFusion agent {__version__} running; health: {agent.health_url}", flush=True)
    print(f"Local copy: {config.local_path}", flush=True)
    print("Press Ctrl+C to stop.", flush=True)
    try:
        agent.wait()
    finally:
        clean = agent.stop()
    print("TerraFusion agent stopped.", flush=True)
    if not clean:
        # The sync thread is stuck in a database call past the stop deadline: end the
        # process now; its death rolls the open transaction back (crash-safe by design).
        import logging

        logging.shutdown()
        sys.stderr.flush()
        os._exit(0)
    return 0


def cmd_status(config, args) -> int:
    from terrafusion_agent import health

    # A running agent knows more (next sync, a sync in progress): ask it first.
    _print_json(health.from_running_agent(config) or health.build(config))
    return 0


def cmd_install_service(config, args) -> int:
    from terrafusion_agent.service import systemd

    # the file this command read: --config, else the one the agent reads by default
    path = config.file
    if not path.exists():
        # the service names its file: one that does not exist would stop it at start
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(_NEW_CONFIG, encoding="utf-8")
        except OSError as exc:
            raise TerraFusionError(f"The configuration file {path} cannot be created: "
                                   f"{exc.strerror or exc}.") from None
        print(f"Wrote {path} (empty: every key at its default; "
              "docs/configuration.md lists them)")
    return systemd.install(path, start=not args.no_start)


_NEW_CONFIG = """\
# TerraFusion agent configuration (TOML). Empty means every key at its default: an
# embedded central.sqlite and the local copy in the user data folder. For the county's
# database set, for example:
#
# [central]
# url = "postgresql://gis@db.county.local/terrafusion"
"""


def cmd_uninstall_service(config, args) -> int:
    from terrafusion_agent.service import systemd

    return systemd.uninstall()


def cmd_verify(config, args) -> int:
    from terrafusion_agent.stores import open_central
    from terrafusion_agent.stores.local import LocalStore
    from terrafusion_agent.sync.verify import verify

    local = LocalStore.open_existing(config.local_path)
    central = open_central(config)
    try:
        report = verify(central, local, config.tables)
    finally:
        central.close()
        local.close()
    _print_json(report)
    return 0 if report["ok"] else 1


def cmd_recover(config, args) -> int:
    from terrafusion_agent.sync.recover import recover

    progress = _TerminalProgress() if sys.stderr.isatty() else None
    try:
        report = recover(config, progress=progress)
    finally:
        if progress:
            progress.done()
    _print_json(report)
    return 0


def cmd_conflicts(config, args) -> int:
    from terrafusion_agent import api

    if args.conflicts_command == "resolve":
        merge = _merge_argument(args.keep, args.merge)
        # through the running agent, else here under the copy's lock: never beside a sync
        done = api.resolve_conflicts(config, [args.id], args.keep, merge)
        if done.errors:
            raise (InvalidMerge if done.invalid else TerraFusionError)(done.errors[0])
        _print_json(done.results[0])
        return 0
    _print_json(api.conflicts(config, include_resolved=args.all))
    return 0


class _BadArguments(TerraFusionError):
    exit_code = 2


def cmd_pending(config, args) -> int:
    from terrafusion_agent import api
    from terrafusion_agent.errors import BadRequest

    if args.pending_command == "list":
        _print_json({"edits": api.pending_edits(config, limit=args.limit)})
        return 0
    edits = None if args.all else [(args.table, args.key)]
    try:
        # through the running agent, else here under the copy's lock: never beside a sync
        done = api.discard_pending(config, edits)
    except BadRequest as exc:  # a KEY that TABLE cannot have is a bad argument
        raise _BadArguments(str(exc)) from None
    _print_json(done)
    left = done.get("conflicts_left")
    if left:
        print(f"terrafusion-agent: {left} edit(s) waiting in a conflict were left; "
              "'terrafusion-agent conflicts list' shows them.", file=sys.stderr)
    return 0


def _merge_argument(keep: Optional[str], text: Optional[str]) -> Optional[dict]:
    """The --merge object; InvalidMerge (exit 2) for bad JSON or a clash with --keep."""
    if keep is not None and text is not None:
        raise InvalidMerge("Give --keep or --merge, not both.")
    if keep is None and text is None:
        raise InvalidMerge("conflicts resolve needs --keep local|central or --merge JSON.")
    if text is None:
        return None
    try:
        merge = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidMerge(f"--merge is not valid JSON ({exc.msg} at character "
                           f"{exc.pos + 1}).") from None
    except RecursionError:
        raise InvalidMerge("--merge is nested too deeply to be a merge.") from None
    if not isinstance(merge, dict):
        raise InvalidMerge("--merge must be a JSON object of column: \"local\", "
                           "\"central\" or a value.")
    return merge


def cmd_history(config, args) -> int:
    from terrafusion_agent import api

    _print_json(api.history_report(config, args.table, args.key, args.since, args.until))
    return 0


def cmd_fleet(config, args) -> int:
    from terrafusion_agent import api

    agents = api.fleet(config)
    if args.json:
        _print_json({"agents": agents})
    else:
        print(fleet_table(agents))
    return 0


_FLEET_HEADINGS = ("STATE", "HOST", "AGENT", "VERSION", "LAST SEEN", "LAST SUCCESS",
                   "RESULT", "FAILS", "PENDING", "CONFLICTS", "REJECTED")


def fleet_table(agents: list[dict], now: Optional[datetime] = None) -> str:
    """The fleet as a table for people: stale agents first, marked STALE, times as ages."""
    now = now or datetime.now(timezone.utc)
    if not agents:
        return "No agent has written its heartbeat to this central database yet."

    def figure(value) -> str:
        return "-" if value is None else str(value)

    rows = [("STALE" if a["stale"] else "ok", a["hostname"] or "-", a["agent_id"][:8],
             figure(a["version"]), _age(a["last_seen_at"], now),
             _age(a["last_success_at"], now), figure(a["last_result"]),
             figure(a["consecutive_failures"]), figure(a["pending"]),
             figure(a["open_conflicts"]), figure(a["rejected"])) for a in agents]
    widths = [max(len(r[i]) for r in (_FLEET_HEADINGS, *rows))
              for i in range(len(_FLEET_HEADINGS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
             for r in (_FLEET_HEADINGS, *rows)]
    stale = sum(1 for a in agents if a["stale"])
    lines.append("")
    lines.append(f"{len(agents)} agent(s), {stale} stale: not seen, or no successful sync, "
                 "for longer than three of its intervals plus five minutes.")
    return "\n".join(lines)


def _age(when: Optional[str], now: datetime) -> str:
    """How long ago ``when`` (ISO 8601) was, in the largest whole unit: 40 s, 5 min, 3 h,
    2 d ago; "never" for none."""
    if not when:
        return "never"
    seconds = (now - datetime.fromisoformat(when.replace("Z", "+00:00"))).total_seconds()
    if seconds < 0:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def cmd_export(config, args) -> int:
    from terrafusion_agent.export import ExportRequest, export_table
    from terrafusion_agent.export.request import split_fields

    request = ExportRequest(
        table=args.table, format=args.format, out=args.out, crs=args.crs, where=args.where,
        fields=split_fields(args.fields), preset=args.preset, overwrite=args.overwrite,
        as_of=args.as_of, trigger="cli")
    progress = _ExportProgress() if sys.stderr.isatty() else None
    try:
        result = export_table(config, request, progress=progress)
    finally:
        if progress:
            progress.done()
    _print_json(result.to_dict())
    return 0


class _ExportProgress:
    """Export progress on stderr: a bar when the size can be estimated, else a counter."""

    def __init__(self):
        self._shown = False

    def __call__(self, p) -> None:
        size = f"{p.bytes_written / 1e6:,.1f} MB"
        if p.fraction is not None:
            width = 30
            bar = "#" * int(width * p.fraction)
            line = f"{p.stage:<8} [{bar:<{width}}] {100 * p.fraction:3.0f}%  {size}"
        else:
            line = f"{p.stage:<8} {p.features:,} features  {size}"
        sys.stderr.write(f"\r{line}  {p.elapsed_seconds:5.1f} s ")
        sys.stderr.flush()
        self._shown = True

    def done(self) -> None:
        if self._shown:
            sys.stderr.write("\n")


class _TerminalProgress:
    """A one-line progress display on stderr for interactive syncs."""

    def __init__(self):
        self._last = ""

    def __call__(self, fraction: Optional[float], table: str) -> None:
        width = 30
        if fraction is None:
            line = f"\r{table:<16} [{'.' * width}] waiting"
        else:
            pct = int(100 * fraction)
            bar = "#" * (width * pct // 100)
            line = f"\r{table:<16} [{bar:<{width}}] {pct:3d}%"
        if line != self._last:
            sys.stderr.write(line)
            sys.stderr.flush()
            self._last = line

    def done(self) -> None:
        if self._last:
            sys.stderr.write("\n")


COMMANDS = {
    "init-central": cmd_init_central,
    "sync": cmd_sync,
    "run": cmd_run,
    "status": cmd_status,
    "verify": cmd_verify,
    "recover": cmd_recover,
    "conflicts": cmd_conflicts,
    "pending": cmd_pending,
    "uninstall-central": cmd_uninstall_central,
    "install-service": cmd_install_service,
    "uninstall-service": cmd_uninstall_service,
    "export": cmd_export,
    "history": cmd_history,
    "fleet": cmd_fleet,
}
