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
