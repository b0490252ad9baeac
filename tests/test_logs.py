"""The log file every agent process of a user shares: several processes append to it and
rotate it at once without losing or tearing a line, and each line names its writer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)

LINES = 3000
MAX_BYTES = 120_000

#: a process that waits for ``go``, then writes LINES numbered lines through logs.setup
WRITER = textwrap.dedent("""
    import logging, os, sys, time
    from pathlib import Path
    from terrafusion_agent import logs

    folder, role = Path(sys.argv[1]), sys.argv[2]
    lines, logs.MAX_BYTES, logs.BACKUPS = int(sys.argv[3]), int(sys.argv[4]), 50
    logs.setup("INFO", folder, role=role)
    log = logging.getLogger("terrafusion.test")
    (folder / f"ready-{role}").touch()
    while not (folder / "go").exists():
        time.sleep(0.005)
    for n in range(lines):
        log.info("line %d of %s", n, role, extra={"n": n, "padding": "x" * (n % 40)})
""")


def _start(folder: Path, role: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-c", WRITER, str(folder), role, str(LINES),
                             str(MAX_BYTES)], env=env, stderr=subprocess.PIPE, text=True)


def test_two_processes_rotating_one_file_lose_no_line(tmp_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    writers = [_start(folder, role) for role in ("agent", "sync")]
    for role in ("agent", "sync"):
        while not (folder / f"ready-{role}").exists():
            assert all(w.poll() is None for w in writers), [w.stderr.read() for w in writers]
            os.sched_yield()
    (folder / "go").touch()
    for writer in writers:
        assert writer.wait(timeout=240) == 0, writer.stderr.read()

    files = sorted(folder.glob("agent.jsonl*"))
    logs = [f for f in files if not f.name.endswith(".lock")]
    seen: dict[tuple[str, int], int] = {}
    pids = {}
    for path in logs:
        assert path.stat().st_size <= MAX_BYTES, path  # each rotated in time
        for text in path.read_text(encoding="utf-8").splitlines():
            line = json.loads(text)  # whole lines only: none torn or interleaved
            key = (line["role"], line["n"])
            seen[key] = seen.get(key, 0) + 1
            pids.setdefault(line["role"], set()).add(line["pid"])
    assert len(logs) > 3  # the file was rotated, several times, by both
    missing = [(r, n) for r in ("agent", "sync") for n in range(LINES) if (r, n) not in seen]
    assert missing == []
    assert [k for k, count in seen.items() if count != 1] == []
    assert {role: len(p) for role, p in pids.items()} == {"agent": 1, "sync": 1}
    assert pids["agent"] != pids["sync"]


def test_each_line_names_its_process_config_and_local_copy(tmp_path, monkeypatch):
    import logging

    from terrafusion_agent import config as config_mod
    from terrafusion_agent import logs

    monkeypatch.chdir(tmp_path)
    (tmp_path / "agent.toml").write_text('[local]\npath = "copy.sqlite"\n', encoding="utf-8")
    config = config_mod.load("agent.toml", environ={})
    logs.setup("INFO", tmp_path / "logs", role="sync", config=config)
    try:
        logging.getLogger("terrafusion.test").info("hello")
    finally:
        logs.setup("INFO", None)
    [line] = [json.loads(t) for t in
              (tmp_path / "logs" / "agent.jsonl").read_text(encoding="utf-8").splitlines()]
    assert line["pid"] == os.getpid() and line["role"] == "sync"
    # absolute, so that the lines of processes started in other folders compare
    assert line["config"] == str(tmp_path / "agent.toml")
    assert line["local_copy"] == str(tmp_path / "copy.sqlite")
    assert line["message"] == "hello"


def test_a_sync_the_plugin_runs_writes_its_line_to_the_shared_log(tmp_path):
    from conftest import synced_county

    env = synced_county(tmp_path, 30)
    proc = subprocess.run(
        [sys.executable, "-m", "terrafusion_agent.client.sync_worker", "--config",
         str(env.config), "--trigger", "plugin"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.returncode == 0, proc.stderr
    done = json.loads(proc.stdout.splitlines()[-1])
    lines = [json.loads(t) for t in
             (tmp_path / "logs" / "agent.jsonl").read_text(encoding="utf-8").splitlines()]
    [line] = [entry for entry in lines if entry.get("trigger") == "plugin"]
    assert line["role"] == "plugin-sync" and line["event"] == "sync"
    assert line["run_id"] == done["summary"]["id"]
    assert line["duration_seconds"] == done["summary"]["duration_seconds"]
    assert line["local_copy"] == str(env.local_path.resolve())
