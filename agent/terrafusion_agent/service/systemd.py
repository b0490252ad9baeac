"""``install-service`` / ``uninstall-service``: the agent as a systemd user service.

The unit starts the agent when the user logs in and restarts it after a failure, but not
after a configuration error (exit status 2), which a restart cannot fix. Where systemd is
absent (Windows, macOS, containers) the functions print the steps instead. No secret is
ever written into the unit: database passwords stay in ~/.pgpass or pg_service.conf.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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


def unit_text(config_path: Path, python: Optional[str] = None) -> str:
    """The unit file running ``python -m terrafusion_agent --config CONFIG run``."""
    import terrafusion_agent

    python = python or sys.executable
    package_root = Path(terrafusion_agent.__file__).resolve().parent.parent
    exec_start = " ".join(_quote(a) for a in (
        str(Path(python).absolute()), "-m", "terrafusion_agent",
        "--config", str(Path(config_path).resolve()), "run"))
    pythonpath = _quote(f"PYTHONPATH={package_root}")
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
Restart=on-failure
RestartSec=10
# exit status 2 is a configuration error: restarting cannot fix it
RestartPreventExitStatus=2
# systemctl --user reload: the agent re-reads its configuration file on SIGHUP
ExecReload=/bin/kill -HUP $MAINPID
# the agent stops within 10 s of SIGTERM (the running sync batch commits or rolls back)
KillSignal=SIGTERM
TimeoutStopSec=20

[Install]
WantedBy=default.target
"""


def _systemctl(args: list[str]) -> tuple[int, str]:
    try:
        proc = subprocess.run(["systemctl", "--user", *args], capture_output=True, text=True,
                              timeout=60)
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
    path = unit_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(unit_text(config_path), encoding="utf-8")
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
    if status != 0:
        out(f"systemctl --user disable said: {output}")
    out(f"{UNIT_NAME} uninstalled.")
    return 0
