"""A throwaway PgBouncer in transaction pooling mode, in front of a :class:`PgCluster`.

Like the cluster it has a temporary folder of its own and a free port; it runs as the
``postgres`` system user when we are root (PgBouncer refuses to run as root). Its pool
is small on purpose: the clients of a test share two server connections, so each
transaction may land on another one, as on a busy central.
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

from pgcluster import PgCluster, _free_port

#: server connections per database and user
POOL_SIZE = 2


class PgBouncer:
    def __init__(self, cluster: PgCluster, pool_size: int = POOL_SIZE):
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not Path(binary).exists():
            raise RuntimeError("pgbouncer is not installed (make deps installs it).")
        self.binary = binary
        self.cluster = cluster
        self.pool_size = pool_size
        self.root = Path(tempfile.mkdtemp(prefix="tf-pgb-"))
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> PgBouncer:
        user = self.cluster.user
        (self.root / "users.txt").write_text(f'"{user}" ""\n', encoding="utf-8")
        (self.root / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={self.cluster.root} port={self.cluster.port} user={user}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.root / 'users.txt'}\n"
            f"pool_mode = transaction\ndefault_pool_size = {self.pool_size}\n"
            "max_client_conn = 500\nserver_reset_query =\n"
            f"admin_users = {user}\nlogfile = {self.root / 'pgbouncer.log'}\n",
            encoding="utf-8")
        cmd = [self.binary, str(self.root / "pgbouncer.ini")]
        as_user: dict = {}
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            for f in self.root.iterdir():
                shutil.chown(f, "postgres", "postgres")
            # not through runuser: it waits 2 s after forwarding SIGTERM before it exits
            as_user = {"user": "postgres", "group": "postgres", "extra_groups": []}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     **as_user)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    self.stop()
                    raise RuntimeError(f"pgbouncer did not start: {err}") from None
                time.sleep(0.05)

    def url(self, dbname: str) -> str:
        return f"postgresql://{quote(self.cluster.user)}@127.0.0.1:{self.port}/{quote(dbname)}"

    def transactions(self, dbname: str) -> int:
        """How many transactions the pooler has run on ``dbname``'s server connections
        (its admin console's SHOW STATS), so a test proves its traffic went through it."""
        out = subprocess.run(
            [str(self.cluster.bindir / "psql"), "-X", "-A", "-F", "\t", "-h", "127.0.0.1",
             "-p", str(self.port), "-U", self.cluster.user, "-d", "pgbouncer",
             "-c", "SHOW STATS"],
            check=True, capture_output=True, text=True, timeout=30).stdout.splitlines()
        header = out[0].split("\t")
        for line in out[1:]:
            row = dict(zip(header, line.split("\t")))
            if row.get("database") == dbname:
                return int(row["total_xact_count"])
        return 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)
