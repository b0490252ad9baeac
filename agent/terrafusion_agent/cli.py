"""``terrafusion-agent``: the agent's command line (also ``python -m terrafusion_agent``).

Errors reach the user as one sentence on stderr and a non-zero exit; ``--debug`` adds the
traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Optional, Sequence

from terrafusion_agent import __version__
from terrafusion_agent.errors import InvalidMerge, TerraFusionError
from terrafusion_agent.redact import redact
from terrafusion_agent.stores.keys import key_values


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="terrafusion-agent",
        description="Keep a local SpatiaLite copy in sync with the county's central database.",
    )
    p.add_argument("--config", metavar="PATH",
                   help="TOML configuration file (default: $TERRAFUSION_CONFIG, then the "
                        "user config dir's terrafusion/agent.toml)")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    p.add_argument("--version", action="version", version=f"terrafusion-agent {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    init = sub.add_parser("init-central", help="create or upgrade the central bookkeeping")
    init.add_argument("--demo-parcels", type=_positive_int, metavar="N",
                      help="first create and load the synthetic demo county with N parcels")
    sub.add_parser("sync", help="pull and push once now; prints a JSON summary")
    sub.add_parser("run", help="scheduler and HTTP API until SIGINT/SIGTERM; SIGHUP "
                              "re-reads the configuration")
    sub.add_parser("status", help="JSON status (the body of GET /health)")
    sub.add_parser("verify", help="compare counts and checksums of central and local")
    sub.add_parser("recover",
                   help="rebuild a damaged local copy from central, re-applying the "
                        "pending edits still readable and keeping the damaged file")
    install = sub.add_parser("install-service",
                             help="start the agent at login (systemd user service)")
    install.add_argument("--no-start", action="store_true",
                         help="only enable it; it starts at the next login")
    sub.add_parser("uninstall-service", help="stop and remove the systemd user service")

    conflicts = sub.add_parser("conflicts", help="inspect and resolve sync conflicts")
    csub = conflicts.add_subparsers(dest="conflicts_command", metavar="ACTION")
    csub.required = True
    clist = csub.add_parser("list", help="open conflicts as JSON")
    clist.add_argument("--all", action="store_true", help="include resolved conflicts")
    resolve = csub.add_parser(
        "resolve", help="resolve one conflict",
        description="Keep one side of the conflict (--keep), or choose per column "
                    "(--merge): each column \"local\", \"central\" or a value, for "
                    "example --merge '{\"owner_name\": \"central\", \"land_value\": "
                    "123000}'. Every column changed on both sides must be named.")
    resolve.add_argument("id", type=_positive_int)
    resolve.add_argument("--keep", choices=("local", "central"),
                         help="keep this side for the columns changed on both sides")
    resolve.add_argument("--merge", metavar="JSON",
                         help="a JSON object of column: \"local\", \"central\" or a value "
                              "(number, text, true/false, null; WKT for the geometry; "
                              "{\"value\": \"local\"} for that text)")

    pending = sub.add_parser(
        "pending", help="see and discard local edits not yet pushed to central")
    psub = pending.add_subparsers(dest="pending_command", metavar="ACTION")
    psub.required = True
    plist = psub.add_parser(
        "list", help="the pending edits as JSON, with base and local values per changed "
                     "column (also those waiting in a conflict or refused by central)")
    plist.add_argument("--limit", type=_positive_int, metavar="N",
                       help="only the N oldest")
    discard = psub.add_parser(
        "discard", help="put rows back as they were last synced; nothing reaches central",
        description="Put a row back as it was last synced and drop its pending edit: an "
                    "update is reverted, a deleted row comes back, a row inserted here "
                    "disappears. Nothing reaches central. An edit waiting in a conflict is "
                    "resolved with 'conflicts resolve ID' instead; --all leaves those.")
    discard.add_argument("table", nargs="?", metavar="TABLE")
    discard.add_argument("key", nargs="?", metavar="KEY", type=key_values,
                         help="the row's key as listed: 1001, or a JSON array for a key of "
                              "several columns, e.g. '[\"A-7\", 3]'")
    discard.add_argument("--all", action="store_true",
                         help="every pending edit, except those waiting in a conflict")

    history = sub.add_parser(
        "history", help="a feature's change history from central as JSON, newest first",
        description="The changes central recorded for one feature: when, who, the "
                    "operation and the old and new value of each column it changed, "
                    "newest first. history_start says since when central keeps changes.")
    history.add_argument("table", metavar="TABLE", help="a synced table")
    history.add_argument("key", metavar="KEY",
                         help="the feature's key: 1001, or a JSON array such as "
                              "'[\"R-7\", 2]' for a key of several columns")
    history.add_argument("--since", metavar="T",
                         help="only changes at or after T (ISO 8601, UTC unless it says "
                              "otherwise: 2026-12-01 or 2026-12-01T14:30:00Z)")
    history.add_argument("--until", metavar="T", help="only changes at or before T")

    fleet = sub.add_parser(
        "fleet", help="every agent syncing with central: version, last success, failures, "
                      "backlog; stale ones flagged",
        description="Every agent's heartbeat as central keeps it (the tf_fleet view): "
                    "version, last seen, last success, failures in a row, pending edits, "
                    "open conflicts and rows central refused. An agent is stale when it "
                    "has not been seen, or has not synced successfully, for longer than "
                    "three of its intervals plus five minutes. Needs only the right to "
                    "read tf_fleet.")
    fleet.add_argument("--json", action="store_true",
                       help="the rows as JSON instead of a table")

    export = sub.add_parser(
        "export", help="export a table of the local copy to a file; prints a JSON summary",
        description="Export a table of the local copy. With --preset, TABLE and --format "
                    "come from the preset (--format may change it); --where and --fields "
                    "can only narrow the preset's selection; if the preset names the file, "
                    "--out is the folder to write into. With --as-of, the table as it "
                    "stood at that time, rebuilt from central's history.")
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
    except BaseException:
        if made.paths:
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
    from terrafusion_agent.stores import open_central

    store = open_central(config, create=True)
    try:
        result = init_central(store, config.tables, args.demo_parcels)
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
        raise TerraFusionError(str(exc) or "The sync failed.") from None
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

    if config.source is None:
        raise TerraFusionError(
            "install-service needs a configuration file; write one (an empty file means "
            "all defaults) and pass it with --config PATH.")
    return systemd.install(config.source, start=not args.no_start)


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
    "install-service": cmd_install_service,
    "uninstall-service": cmd_uninstall_service,
    "export": cmd_export,
    "history": cmd_history,
    "fleet": cmd_fleet,
}
