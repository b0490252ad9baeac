"""A throwaway PostgreSQL + PostGIS cluster for tests and benchmarks.

PostgreSQL refuses to run as root, so when we are root the server runs as the
``postgres`` system user (created by the Debian package). It listens on a Unix socket in
a private temporary folder only, with trust authentication and fsync off: fast and
invisible to anything else on the machine.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote


def _bindir() -> Path:
    for version in ("17", "16", "15", "14", "13"):
        d = Path(f"/usr/lib/postgresql/{version}/bin")
        if (d / "initdb").exists():
            return d
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise RuntimeError("PostgreSQL server binaries (initdb) are not installed.")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    def __init__(self, extra_options: str = ""):
        #: more ``-c name=value`` server settings (a test's own cluster)
        self.extra_options = extra_options
        self.bindir = _bindir()
        self.root = Path(tempfile.mkdtemp(prefix="tf-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_postgres = os.geteuid() == 0
        self.user = "postgres" if self.as_postgres else os.environ.get("USER", "postgres")

    def _run(self, *args: str, **kw) -> subprocess.CompletedProcess:
        cmd = list(args)
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)

    def start(self) -> PgCluster:
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        os.chmod(self.root, 0o755)
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust",
                  "-U", self.user, "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        self._pg_ctl_start()
        self.psql("postgres", "CREATE DATABASE tf_template")
        self.psql("tf_template", "CREATE EXTENSION postgis")
        return self

    def _pg_ctl_start(self) -> None:
        # fast and unsafe on purpose: a test's data never has to survive the machine
        opts = (f"-k {self.root} -p {self.port} -c listen_addresses='' -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100 "
                f"-c shared_buffers=256MB -c max_wal_size=4GB {self.extra_options}")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", opts, "-w",
                  "-l", str(self.root / "server.log"), "start")

    def crash(self) -> None:
        """Stop the server at once, as a power cut would for its processes (no
        checkpoint, no flush of WAL still in memory)."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                  "-w", "stop")

    def restart(self) -> None:
        """Start the server again after :meth:`crash` (it recovers from its WAL)."""
        self._pg_ctl_start()

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                      "-w", "stop")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, dbname: str) -> str:
        return (f"postgresql://{quote(self.user)}@/{quote(dbname)}"
                f"?host={quote(str(self.root))}&port={self.port}")

    def psql(self, dbname: str, sql: str) -> str:
        return subprocess.run(
            [str(self.bindir / "psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
             "-h", str(self.root), "-p", str(self.port), "-U", self.user, "-d", dbname,
             "-c", sql],
            check=True, capture_output=True, text=True).stdout.strip()

    def create_db(self, dbname: str, postgis: bool = True) -> str:
        template = "tf_template" if postgis else "template0"
        self.psql("postgres", f'CREATE DATABASE "{dbname}" TEMPLATE {template}')
        return self.url(dbname)

    def drop_db(self, dbname: str) -> None:
        self.psql("postgres", f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


class PgStandby:
    """A streaming hot standby of a running :class:`PgCluster`, made with
    ``pg_basebackup -R``: read-only, on its own port and socket folder, replaying the
    primary's WAL as it streams in. Replay can be paused and resumed, so a test builds a
    replica that lags by exactly the transactions it chooses."""

    def __init__(self, primary: PgCluster, extra_options: str = ""):
        self.primary = primary
        self.extra_options = extra_options
        self.bindir = primary.bindir
        self.as_postgres = primary.as_postgres
        self.user = primary.user
        self.root = Path(tempfile.mkdtemp(prefix="tf-pg-standby-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.running = False

    _run = PgCluster._run

    def start(self) -> PgStandby:
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        os.chmod(self.root, 0o755)
        # initdb -A trust lets local connections replicate: no password, no pg_hba edit
        self._run(str(self.bindir / "pg_basebackup"), "-h", str(self.primary.root),
                  "-p", str(self.primary.port), "-U", self.user, "-D", str(self.data),
                  "-R", "-X", "stream", "-c", "fast", "--no-sync")
        self.resume()  # the only way replay can be paused at start: not at all
        return self

    def resume(self) -> None:
        """Start the server when stopped, and let replay run."""
        if not self.running:
            opts = (f"-k {self.root} -p {self.port} -c listen_addresses='' -c fsync=off "
                    "-c hot_standby=on -c max_connections=100 -c shared_buffers=64MB "
                    f"{self.extra_options}")
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", opts, "-w",
                      "-l", str(self.root / "server.log"), "start")
            self.running = True
            self.wait_for("SELECT pg_is_in_recovery()", "t")
        self.psql("SELECT pg_wal_replay_resume()")

    def pause(self) -> None:
        """Stop replaying WAL (it still streams in) until :meth:`resume`; returns once
        replay has really stopped, so what the standby shows no longer moves."""
        self.psql("SELECT pg_wal_replay_pause()")
        self.wait_for("SELECT pg_get_wal_replay_pause_state()", "paused")

    def set_apply_delay(self, delay: str) -> None:
        """Apply each commit only ``delay`` (say '1h', or '0') after the primary made it:
        ``recovery_min_apply_delay``, taken at once by a running server. A standby
        started with a long delay comes up where it stopped, and stays there."""
        with open(self.data / "postgresql.auto.conf", "a", encoding="utf-8") as f:
            f.write(f"recovery_min_apply_delay = '{delay}'\n")
        if self.running:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "reload")
            self.wait_for("SHOW recovery_min_apply_delay", delay if delay != "0" else "0")

    def catch_up(self) -> None:
        """Return once every commit the primary has made so far is replayed here."""
        lsn = self.primary.psql("postgres", "SELECT pg_current_wal_insert_lsn()")
        self.wait_for(f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn", "t")

    def wait_for(self, sql: str, expected: str, seconds: float = 60) -> None:
        """Poll ``sql`` until it answers ``expected``; fail after ``seconds``."""
        deadline = time.monotonic() + seconds
        while True:
            got = self.psql(sql)
            if got == expected:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the standby answered {got!r} to {sql!r} for "
                                     f"{seconds} s, not {expected!r}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server at once (a replica that went down); :meth:`resume` restarts it."""
        if self.running:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                      "-w", "stop")
            self.running = False

    def remove(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, dbname: str) -> str:
        return (f"postgresql://{quote(self.user)}@/{quote(dbname)}"
                f"?host={quote(str(self.root))}&port={self.port}")

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        return subprocess.run(
            [str(self.bindir / "psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
             "-h", str(self.root), "-p", str(self.port), "-U", self.user, "-d", dbname,
             "-c", sql],
            check=True, capture_output=True, text=True).stdout.strip()
