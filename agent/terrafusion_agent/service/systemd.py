"""``install-service`` / ``uninstall-service``: the agent as a systemd user service.

The unit starts the agent when the user logs in and restarts it after a failure, but not
after a configuration error (exit status 2), which a restart cannot fix. Where systemd is
absent (Windows, macOS, containers) the functions print the steps instead. No secret is
ever written into the unit: database passwords stay in ~/.pgpass or pg_service.conf.

The service does not run the agent from wherever this command found it (a source
checkout, a virtual environment in it, the plugin folder that an upgrade replaces):
``install`` copies the agent and the packages it needs into the user's data folder
(``~/.local/share/terrafusion/agent/lib``) and the unit runs that copy with the system's
Python. It is sandboxed (``systemd-analyze security --user`` rates it about 2): files
it creates are private to the user (``UMask=0077``), the system's folders are read-only,
the kernel, devices and other users' processes out of reach, only local and Internet
sockets allowed; the user's own folders stay writable, since an export goes wherever
the analyst asks.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Callable, Optional

UNIT_NAME = "terrafusion-agent.service"

#: runs ``systemctl --user ARGS``; returns (exit status, combined output)
Systemctl = Callable[[list[str]], tuple[int, str]]


def unit_dir() -> Path:
    """Where systemd looks for the user's own units."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


def unit_path() -> Path:
    return unit_dir() / UNIT_NAME


def _quote(arg: str) -> str:
    """One ExecStart argument in systemd's syntax (quotes, %-specifiers, $-expansion)."""
    arg = arg.replace("%", "%%").replace("$", "$$")
    if arg and not any(c in arg for c in ' \t"\'\\;'):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def agent_home() -> Path:
    """Where ``install`` keeps the copy of the agent that the service runs."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "terrafusion" / "agent"


def service_python() -> str:
    """The Python the service runs the copy with: the interpreter behind a virtual
    environment (which may live in a checkout that goes away), else this one."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    return str(Path(base).absolute())


#: the sandbox; each line costs the agent nothing it needs (see the module's docstring)
SANDBOX = """\
# files the agent creates (local copy, log, token, exports) are the user's alone: 0600
UMask=0077
NoNewPrivileges=yes
# /usr, /boot, /efi and /etc read-only; the home folder stays writable for the local copy,
# the log and exports wherever the analyst saves them
ProtectSystem=full
PrivateTmp=yes
PrivateDevices=yes
PrivateUsers=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
# the API and metrics listeners, PostgreSQL over TCP or its local socket
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
KeyringMode=private
CapabilityBoundingSet=
AmbientCapabilities=
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
# no MemoryDenyWriteExecute: psycopg calls libpq through ctypes, whose callbacks may need
# memory that is written and then executed, depending on how libffi was built
"""


def unit_text(config_path: Path, python: Optional[str] = None,
              lib: Optional[Path] = None) -> str:
    """The unit file running ``python -m terrafusion_agent --config CONFIG run`` with the
    agent's copy in ``lib`` (default: under :func:`agent_home`) on its path."""
    python = python or service_python()
    lib = Path(lib) if lib is not None else agent_home() / "lib"
    exec_start = " ".join(_quote(a) for a in (
        str(Path(python).absolute()), "-m", "terrafusion_agent",
        "--config", str(Path(config_path).resolve()), "run"))
    pythonpath = _quote(f"PYTHONPATH={lib.absolute()}")
    return f"""[Unit]
Description=TerraFusion sync agent (local copy of the county GIS data)
# status: the agent's GET / and /health on its configured port
# give up after 5 failed starts within 5 minutes instead of looping forever
StartLimitIntervalSec=300
StartLimitBurst=5

[Service]
Type=simple
ExecStart={exec_start}
Environment={pythonpath}
Environment=PYTHONUNBUFFERED=1
# the copy is never written to: no __pycache__ beside it
Environment=PYTHONDONTWRITEBYTECODE=1
Restart=on-failure
RestartSec=10
# exit status 2 is a configuration error: restarting cannot fix it
RestartPreventExitStatus=2
# systemctl --user reload: the agent re-reads its configuration file on SIGHUP
ExecReload=/bin/kill -HUP $MAINPID
# the agent stops within 10 s of SIGTERM (the running sync batch commits or rolls back)
KillSignal=SIGTERM
TimeoutStopSec=20
{SANDBOX}
[Install]
WantedBy=default.target
"""


# --- the copy the service runs ------------------------------------------------------------


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0].lower().replace(
        "_", "-")


def _needed(requirement: str) -> bool:
    """Whether ``requirement`` applies here (its environment marker), extras left out."""
    try:
        from packaging.requirements import Requirement
    except ImportError:  # pragma: no cover - pip's environment always has packaging
        return "extra ==" not in requirement and "extra==" not in requirement
    req = Requirement(requirement)
    return req.marker is None or req.marker.evaluate({"extra": ""})


def _distributions() -> list[metadata.Distribution]:
    """The installed distributions the agent needs, its requirements followed through."""
    try:
        wanted = [r for r in metadata.requires("terrafusion-agent") or [] if _needed(r)]
    except metadata.PackageNotFoundError:
        raise InstallError("The agent's package metadata was not found, so the packages "
                           "it needs cannot be copied; install it (pip install .) and run "
                           "install-service again.") from None
    found: dict[str, metadata.Distribution] = {}
    while wanted:
        name = _name(wanted.pop())
        if name in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise InstallError(f"The agent needs the package {name}, which this Python "
                               "does not have.") from None
        found[name] = dist
        wanted += [r for r in dist.requires or [] if _needed(r)]
    return list(found.values())


class InstallError(Exception):
    """The service could not be installed; the message is one sentence."""


def _seen_by_service_python(dist: metadata.Distribution) -> bool:
    """Whether ``dist`` is installed for the system's Python itself (Debian's packages, say),
    which the service's Python then finds without a copy."""
    where = Path(str(dist.locate_file(""))).resolve()
    return where.is_relative_to(Path(sys.base_prefix).resolve())


def _copy_distribution(dist: metadata.Distribution, lib: Path) -> None:
    files = dist.files
    if files is None:
        raise InstallError(f"The package {dist.metadata['Name']} lists none of its files, "
                           "so it cannot be copied for the service.")
    for file in files:
        # scripts in bin/ (beside site-packages: '..') and byte code are not needed
        if ".." in file.parts or "__pycache__" in file.parts or file.suffix == ".pyc":
            continue
        source = Path(str(dist.locate_file(file)))
        if source.is_file():
            target = lib / Path(*file.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def install_agent_copy(home: Optional[Path] = None) -> Path:
    """Copy the running agent and the packages it needs into ``home``/lib (default:
    :func:`agent_home`), replacing an older copy only once the new one is complete;
    returns the ``lib`` folder."""
    import terrafusion_agent

    home = home or agent_home()
    home.mkdir(parents=True, exist_ok=True)
    lib, fresh, old = home / "lib", home / "lib.new", home / "lib.old"
    for leftover in (fresh, old):
        shutil.rmtree(leftover, ignore_errors=True)
    package = Path(terrafusion_agent.__file__).resolve().parent
    shutil.copytree(package, fresh / "terrafusion_agent",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for dist in _distributions():
        if not _seen_by_service_python(dist):
            _copy_distribution(dist, fresh)
    if lib.exists():
        os.replace(lib, old)
    os.replace(fresh, lib)
    shutil.rmtree(old, ignore_errors=True)
    return lib


def _systemctl(args: list[str]) -> tuple[int, str]:
    # Bandit's B603 asks to check for untrusted input: the arguments are this module's own
    try:
        proc = subprocess.run([shutil.which("systemctl") or "systemctl", "--user", *args],
                              capture_output=True, text=True, timeout=60)  # nosec B603
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, str(exc)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def systemd_available() -> bool:
    return sys.platform.startswith("linux") and shutil.which("systemctl") is not None


def manual_steps(config_path: Path, python: Optional[str] = None) -> str:
    """What to do by hand where there is no systemd."""
    python = python or sys.executable
    command = f'"{python}" -m terrafusion_agent --config "{Path(config_path).resolve()}" run'
    return (
        "systemd is not available here. Start the agent at login with your system's "
        "service manager, running:\n"
        f"  {command}\n"
        "Windows: Task Scheduler, trigger 'At log on', action the command above.\n"
        "macOS: a LaunchAgent in ~/Library/LaunchAgents with RunAtLoad and KeepAlive.\n"
        "The agent exits 2 on a configuration error (do not restart it then) and stops "
        "cleanly on SIGTERM/Ctrl+C."
    )


def install(config_path: Path, *, start: bool = True,
            systemctl: Optional[Systemctl] = None,
            out: Callable[[str], None] = print) -> int:
    """Write the unit, enable it (and start it now, if ``start``); returns an exit status."""
    if systemctl is None and not systemd_available():
        out(manual_steps(config_path))
        return 0
    run = systemctl or _systemctl
    try:
        lib = install_agent_copy()
    except (InstallError, OSError) as exc:
        out(f"The agent could not be copied for the service: {exc}")
        return 1
    out(f"Copied the agent for the service to {lib}")
    path = unit_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(unit_text(config_path, lib=lib), encoding="utf-8")
    out(f"Wrote {path}")
    reload_status, reload_out = run(["daemon-reload"])
    if reload_status != 0:
        # No user manager in this session (ssh without lingering, a container): enabling
        # works offline and the agent then starts at the next login.
        status, output = run(["enable", UNIT_NAME])
        if status != 0:
            out(f"systemctl --user enable failed: {output or reload_out}")
            out(f"Enable it by hand: systemctl --user enable --now {UNIT_NAME}")
            return 1
        out(f"Enabled {UNIT_NAME}; it starts at your next login (no systemd user manager is "
            f"running now: {reload_out or 'daemon-reload failed'}).")
        out(f"To start it now in a login session: systemctl --user start {UNIT_NAME}")
        return 0
    status, output = run(["enable", "--now", UNIT_NAME] if start else ["enable", UNIT_NAME])
    if status != 0:
        out(f"systemctl --user enable failed: {output}")
        return 1
    out(f"Enabled {UNIT_NAME}" + (" and started it." if start else "; it starts at login."))
    out(f"Status: systemctl --user status {UNIT_NAME}; "
        f"logs: journalctl --user -u {UNIT_NAME}")
    return 0


def uninstall(*, systemctl: Optional[Systemctl] = None,
              out: Callable[[str], None] = print) -> int:
    """Stop and disable the service and remove its unit; returns an exit status."""
    path = unit_path()
    if systemctl is None and not systemd_available():
        if path.exists():
            path.unlink()
            out(f"Removed {path}")
        else:
            out("systemd is not available here; remove the login item you created for the "
                "agent by hand.")
        return 0
    run = systemctl or _systemctl
    if not path.exists():
        out(f"{UNIT_NAME} is not installed ({path} does not exist).")
        return 0
    status, output = run(["disable", "--now", UNIT_NAME])
    if status != 0:
        status, output = run(["disable", UNIT_NAME])  # offline: at least remove the links
    path.unlink()
    out(f"Removed {path}")
    run(["daemon-reload"])
    if agent_home().exists():
        shutil.rmtree(agent_home(), ignore_errors=True)
        out(f"Removed the service's copy of the agent, {agent_home()}")
    if status != 0:
        out(f"systemctl --user disable said: {output}")
    out(f"{UNIT_NAME} uninstalled.")
    return 0
