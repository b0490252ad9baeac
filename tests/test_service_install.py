"""``install-service`` / ``uninstall-service``: the systemd user unit and what is run.

A stand-in ``systemctl`` on PATH records its arguments (this machine, like CI, has no
systemd user session); the unit itself is checked by ``systemd-analyze verify`` when
that tool is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FAKE_SYSTEMCTL = """#!/bin/sh
echo "$@" >> "{log}"
case "$*" in
  *daemon-reload*) exit {reload_status} ;;
esac
exit 0
"""


def _fake_systemctl(tmp_path: Path, reload_status: int = 0) -> tuple[Path, Path]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "systemctl.log"
    script = bindir / "systemctl"
    script.write_text(FAKE_SYSTEMCTL.format(log=log, reload_status=reload_status))
    script.chmod(0o755)
    return bindir, log


def _cli(agent, *args, path: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": path, "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
           "XDG_DATA_HOME": str(tmp_path / "xdg-data"), "HOME": str(tmp_path / "home")}
    return subprocess.run([sys.executable, "-m", "terrafusion_agent", "--config",
                           str(agent.config), *args],
                          capture_output=True, text=True, env=env, timeout=60)


def _unit(tmp_path: Path) -> Path:
    return tmp_path / "xdg-config" / "systemd" / "user" / "terrafusion-agent.service"


def test_install_writes_a_user_unit_and_enables_it_now(sqlite_agent, tmp_path):
    bindir, log = _fake_systemctl(tmp_path)
    proc = _cli(sqlite_agent, "install-service", path=f"{bindir}:/usr/bin:/bin",
                tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    unit = _unit(tmp_path).read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    python = Path(getattr(sys, "_base_executable", None) or sys.executable).absolute()
    assert exec_start == (f"ExecStart={python} -m terrafusion_agent "
                          f"--config {sqlite_agent.config.resolve()} run")
    lib = tmp_path / "xdg-data" / "terrafusion" / "agent" / "lib"
    assert f"Environment=PYTHONPATH={lib}" in unit.splitlines()
    assert "Restart=on-failure" in unit and "WantedBy=default.target" in unit
    assert "RestartPreventExitStatus=2" in unit
    assert "PGPASSWORD" not in unit and "password" not in unit.lower()
    assert log.read_text().splitlines() == [
        "--user daemon-reload", "--user enable --now terrafusion-agent.service"]
    assert "started" in proc.stdout


def test_install_without_a_user_manager_enables_for_the_next_login(sqlite_agent, tmp_path):
    bindir, log = _fake_systemctl(tmp_path, reload_status=1)
    proc = _cli(sqlite_agent, "install-service", path=f"{bindir}:/usr/bin:/bin",
                tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert log.read_text().splitlines() == [
        "--user daemon-reload", "--user enable terrafusion-agent.service"]
    assert "next login" in proc.stdout and "systemctl --user start" in proc.stdout


def test_install_without_systemd_prints_the_steps(sqlite_agent, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    proc = _cli(sqlite_agent, "install-service", path=str(empty), tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "systemd is not available" in proc.stdout
    assert f"--config \"{sqlite_agent.config.resolve()}\" run" in proc.stdout
    assert not _unit(tmp_path).exists()


def _cli_without_config(tmp_path: Path, path: str, env: dict | None = None
                        ) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != "TERRAFUSION_CONFIG"}
    full.update(PATH=path, XDG_CONFIG_HOME=str(tmp_path / "xdg-config"),
                HOME=str(tmp_path / "home"), **(env or {}))
    return subprocess.run([sys.executable, "-m", "terrafusion_agent", "install-service"],
                          capture_output=True, text=True, env=full, timeout=60, cwd=tmp_path)


def _exec_start(tmp_path: Path) -> str:
    return next(line for line in _unit(tmp_path).read_text().splitlines()
                if line.startswith("ExecStart="))


def test_install_without_config_uses_the_default_file_and_creates_it_empty(tmp_path):
    bindir, _ = _fake_systemctl(tmp_path)
    proc = _cli_without_config(tmp_path, f"{bindir}:/usr/bin:/bin")
    assert proc.returncode == 0, proc.stderr
    default = tmp_path / "xdg-config" / "terrafusion" / "agent.toml"
    assert f"--config {default} run" in _exec_start(tmp_path)
    assert f"Wrote {default}" in proc.stdout
    from terrafusion_agent import config

    # comments only: every key at its default, as the agent reads a missing default file
    assert config.load(default, environ={}).tables == config.DEFAULT_TABLES


def test_install_without_config_keeps_the_default_file_that_exists(tmp_path):
    bindir, _ = _fake_systemctl(tmp_path)
    default = tmp_path / "xdg-config" / "terrafusion" / "agent.toml"
    default.parent.mkdir(parents=True)
    default.write_text("[sync]\ninterval_seconds = 60\n")
    proc = _cli_without_config(tmp_path, f"{bindir}:/usr/bin:/bin")
    assert proc.returncode == 0, proc.stderr
    assert f"--config {default} run" in _exec_start(tmp_path)
    assert default.read_text() == "[sync]\ninterval_seconds = 60\n"
    assert f"Wrote {default}" not in proc.stdout


def test_install_takes_terrafusion_config_as_an_absolute_path(tmp_path):
    bindir, _ = _fake_systemctl(tmp_path)
    (tmp_path / "county").mkdir()
    (tmp_path / "county" / "agent.toml").write_text("")
    proc = _cli_without_config(tmp_path, f"{bindir}:/usr/bin:/bin",
                               env={"TERRAFUSION_CONFIG": "county/agent.toml"})
    assert proc.returncode == 0, proc.stderr
    assert f"--config {tmp_path / 'county' / 'agent.toml'} run" in _exec_start(tmp_path)


def test_uninstall_disables_and_removes_the_unit(sqlite_agent, tmp_path):
    bindir, log = _fake_systemctl(tmp_path)
    path = f"{bindir}:/usr/bin:/bin"
    assert _cli(sqlite_agent, "install-service", path=path, tmp_path=tmp_path).returncode == 0
    proc = _cli(sqlite_agent, "uninstall-service", path=path, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not _unit(tmp_path).exists()
    assert not (tmp_path / "xdg-data" / "terrafusion" / "agent").exists()
    assert log.read_text().splitlines()[-2:] == [
        "--user disable --now terrafusion-agent.service", "--user daemon-reload"]


def test_paths_with_spaces_are_quoted_for_systemd(tmp_path):
    from terrafusion_agent.service.systemd import unit_text

    unit = unit_text(tmp_path / "My Config" / "agent.toml", python="/opt/Q GIS/python3")
    line = next(x for x in unit.splitlines() if x.startswith("ExecStart="))
    assert line.startswith('ExecStart="/opt/Q GIS/python3" -m terrafusion_agent --config "')
    assert line.endswith('My Config/agent.toml" run')


def test_a_reload_of_the_unit_sends_the_agent_sighup(tmp_path):
    from terrafusion_agent.service.systemd import unit_text

    unit = unit_text(tmp_path / "agent.toml").splitlines()
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_the_unit_passes_systemd_analyze_verify(sqlite_agent, tmp_path):
    from terrafusion_agent.service.systemd import UNIT_NAME, unit_text

    unit = tmp_path / UNIT_NAME
    unit.write_text(unit_text(sqlite_agent.config))
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                          capture_output=True, text=True, timeout=60)
    problems = [line for line in (proc.stdout + proc.stderr).splitlines()
                if UNIT_NAME in line]
    assert proc.returncode == 0 and not problems, proc.stdout + proc.stderr


# --- what the unit runs, and its sandbox ---------------------------------------------------

REPO = Path(__file__).resolve().parents[1]


def _unit_setting(unit: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith(f"{key}=")]


def test_the_service_runs_a_copy_of_the_agent_outside_the_checkout(sqlite_agent, tmp_path):
    bindir, _ = _fake_systemctl(tmp_path)
    proc = _cli(sqlite_agent, "install-service", path=f"{bindir}:/usr/bin:/bin",
                tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    unit = _unit(tmp_path).read_text()
    python = _unit_setting(unit, "ExecStart")[0].split(" ")[0]
    pythonpath = next(e.split("=", 1)[1] for e in _unit_setting(unit, "Environment")
                      if e.startswith("PYTHONPATH="))
    for path in (python, pythonpath):
        assert not Path(path).resolve().is_relative_to(REPO), path
    # the unit's Python with the unit's path, nothing of this test's environment
    script = ("import terrafusion_agent, sqlalchemy, psycopg, waitress; "
              "from terrafusion_agent.service import daemon; "
              "print(terrafusion_agent.__file__); print(sqlalchemy.__file__)")
    ran = subprocess.run([python, "-c", script], capture_output=True, text=True, cwd="/",
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": pythonpath,
                              "PYTHONDONTWRITEBYTECODE": "1"}, timeout=60)
    assert ran.returncode == 0, ran.stderr
    agent_file, sqlalchemy_file = ran.stdout.split()
    assert Path(agent_file).is_relative_to(pythonpath)
    assert not Path(sqlalchemy_file).resolve().is_relative_to(REPO)
    assert "Copied the agent" in proc.stdout


def _exposure(unit_file: Path, tmp_path: Path) -> float:
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    proc = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--user",
                           str(unit_file)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)})
    found = [line for line in proc.stdout.splitlines() if "Overall exposure level" in line]
    if not found and "offline" in proc.stderr:
        pytest.skip(f"this systemd-analyze cannot rate a unit file: {proc.stderr.strip()}")
    assert found, proc.stdout + proc.stderr
    return float(found[0].split(":")[1].split()[0])


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_the_unit_is_sandboxed_to_an_exposure_of_at_most_5(sqlite_agent, tmp_path):
    from terrafusion_agent.service.systemd import UNIT_NAME, unit_text

    unit = tmp_path / UNIT_NAME
    unit.write_text(unit_text(sqlite_agent.config, lib=tmp_path / "lib"))
    assert _exposure(unit, tmp_path) <= 5.0
    text = unit.read_text()
    assert _unit_setting(text, "RestrictAddressFamilies") == ["AF_UNIX AF_INET AF_INET6"]
    assert _unit_setting(text, "NoNewPrivileges") == ["yes"]
    # the network and the user's own folders stay reachable
    assert not _unit_setting(text, "PrivateNetwork") and not _unit_setting(text, "ProtectHome")


def test_files_the_agent_creates_under_the_units_umask_are_private(tmp_path):
    from conftest import embedded_agent
    from terrafusion_agent.service.systemd import unit_text

    umask = int(_unit_setting(unit_text(tmp_path / "agent.toml"), "UMask")[0], 8)
    env = embedded_agent(tmp_path / "agent")
    home = tmp_path / "home"
    run_env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home / "data"),
               "XDG_STATE_HOME": str(home / "state"), "XDG_CACHE_HOME": str(home / "cache")}
    before = {p for p in tmp_path.rglob("*")}
    for args in (["init-central", "--demo-parcels", "30"], ["sync"]):
        proc = subprocess.run([sys.executable, "-m", "terrafusion_agent", "--config",
                               str(env.config), *args], capture_output=True, text=True,
                              env=run_env, timeout=120, preexec_fn=lambda: os.umask(umask))
        assert proc.returncode == 0, proc.stderr
    made = [p for p in tmp_path.rglob("*") if p not in before and p.is_file()]
    assert any(p.name == "local.sqlite" for p in made)
    assert any(p.suffix in (".log", ".jsonl") or "log" in p.name for p in made), made
    loose = {str(p.relative_to(tmp_path)): oct(p.stat().st_mode & 0o777) for p in made
             if p.stat().st_mode & 0o137}
    assert loose == {}  # every file 0600 or 0640
