"""Start the agent (``python -m terrafusion_agent run``) as a detached process.

The agent must outlive QGIS (it keeps syncing while QGIS is closed), so it
is started in its own session / process group with no console, and nothing of QGIS's
stdin/stdout is handed to it. It writes its own JSON log; only what it prints before
its logging is set up (a bad configuration) goes to a small start-up file, read back
when it dies at once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

#: a start that survives this long is taken as started (it then answers on its port)
SETTLE_SECONDS = 1.5


class LaunchError(Exception):
    """The agent could not be started; ``str()`` is one sentence for the user."""


@dataclass
class Launched:
    pid: int
    command: list
    process: subprocess.Popen


def _looks_like_python(path: str) -> bool:
    name = Path(path).name.lower()
    return name.startswith("python") or name.startswith("pythonw")


def _inside(path: str, *folders: str) -> bool:
    absolute = os.path.abspath(path)
    return any(folder and absolute.startswith(os.path.abspath(folder) + os.sep)
               for folder in folders)


def python_interpreter() -> Optional[str]:
    """The Python that runs QGIS's own Python code, as a program that can run a module.

    ``sys.executable`` is that Python on Linux (Debian's python3) and in a venv, but in
    QGIS's other builds (OSGeo4W, macOS, and qgis_process everywhere) Python is embedded,
    and ``sys.executable`` is either the QGIS binary or whatever "python3" comes first on
    the PATH (a pyenv or conda one, which may lack SQLite extensions). So it is trusted
    only inside this Python's own prefix; else the interpreter is looked up there.
    """
    exe = sys.executable
    if (exe and _looks_like_python(exe) and Path(exe).is_file()
            and _inside(exe, sys.prefix, sys.exec_prefix, sys.base_exec_prefix)):
        return exe
    prefix = Path(sys.base_exec_prefix or sys.exec_prefix)
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if os.name == "nt":
        # pythonw: no console window flashing up on the analyst's screen
        candidates = [prefix / "pythonw.exe", prefix / "python.exe",
                      prefix.parent.parent / "bin" / "python.exe"]
    else:
        candidates = [prefix / "bin" / f"python{version}", prefix / "bin" / "python3"]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    return shutil.which(f"python{version}")


def agent_pythonpath() -> list[str]:
    """Folders the agent's Python needs: the folder this agent package is in and the
    third-party packages bundled with it. In the QGIS plugin those are the plugin's
    ``agent/`` and ``ext/``, which the plugin appended to QGIS's path (so a bare Python
    does not see them); on a child's PYTHONPATH they come before its site-packages, so
    the child gets the bundled versions even where QGIS's Python has older ones."""
    import terrafusion_agent

    folders = [Path(terrafusion_agent.__file__).resolve().parent.parent]
    # the bundle beside this agent, else one a plugin of this process put on the path
    folders += [ext for ext in [folders[0].parent / "ext"] + [Path(p) for p in sys.path]
                if ext.name == "ext" and (ext.parent / "agent" / "terrafusion_agent").is_dir()
                and ext.is_dir()][:1]
    return [str(f) for f in dict.fromkeys(folders)]


def agent_command(config_path: Optional[Path], python: Optional[str] = None) -> list[str]:
    python = python or python_interpreter()
    if not python:
        raise LaunchError("No Python interpreter was found to run the TerraFusion agent.")
    command = [python, "-m", "terrafusion_agent"]
    if config_path is not None:
        command += ["--config", str(config_path)]
    return command + ["run"]


def child_environment() -> dict:
    """The environment of a child Python running the agent: the agent on its path, after
    what QGIS's environment puts there, as the plugin appends it to its own."""
    env = dict(os.environ)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p] + agent_pythonpath()
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    # QGIS's own Python settings (PYTHONHOME of a bundled build is right; a user's
    # PYTHONSTARTUP is not) mean nothing to the agent.
    env.pop("PYTHONSTARTUP", None)
    return env


def start_agent(config_path: Optional[Path], startup_log: Path,
                settle_seconds: float = SETTLE_SECONDS) -> Launched:
    """Start the agent detached; raises LaunchError if it cannot start or dies at once."""
    command = agent_command(config_path)
    kwargs: dict = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL,
                    "close_fds": True, "env": child_environment(), "cwd": str(Path.home())}
    if os.name == "nt":
        kwargs["creationflags"] = (subprocess.CREATE_NEW_PROCESS_GROUP
                                   | subprocess.DETACHED_PROCESS
                                   | subprocess.CREATE_NO_WINDOW)
    else:
        kwargs["start_new_session"] = True  # no SIGHUP/SIGINT when QGIS's session ends
    startup_log.parent.mkdir(parents=True, exist_ok=True)
    with open(startup_log, "wb") as err:
        try:
            process = subprocess.Popen(command, stderr=err, **kwargs)  # noqa: S603
        except OSError as exc:
            raise LaunchError(f"The TerraFusion agent could not be started with "
                              f"{command[0]}: {exc.strerror or exc}.") from None
    deadline = time.monotonic() + settle_seconds
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            raise LaunchError(_early_exit_sentence(startup_log, code))
        time.sleep(0.05)
    return Launched(pid=process.pid, command=command, process=process)


def _early_exit_sentence(startup_log: Path, code: int) -> str:
    try:
        lines = [ln.strip() for ln in startup_log.read_text(encoding="utf-8",
                                                            errors="replace").splitlines()]
    except OSError:
        lines = []
    lines = [ln for ln in lines if ln]
    if lines:
        # the agent's own error is one sentence, last on stderr
        return lines[-1].removeprefix("terrafusion-agent: ").strip()
    return f"The TerraFusion agent stopped at once (exit code {code})."
