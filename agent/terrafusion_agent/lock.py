"""One agent per local database: an OS file lock next to the local copy.

The lock is an ``flock`` held by the process, so it disappears with the process even
after kill -9; a stale lock file never blocks the next start.
"""

from __future__ import annotations

from pathlib import Path

from filelock import FileLock, Timeout

from terrafusion_agent.errors import AgentBusy, LocalUnavailable


class LocalLock:
    def __init__(self, local_path: Path):
        self.path = Path(str(local_path) + ".lock")
        self.local_path = local_path
        self._lock = FileLock(str(self.path), timeout=0)

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock.acquire()
        except Timeout:  # an OSError too: first
            raise AgentBusy(
                f"Another TerraFusion agent is already using the local copy {self.local_path} "
                "and does not answer at the configured API address (http.host, http.port); "
                "stop it, or point http.port at the port it listens on."
            ) from None
        except OSError as exc:  # a read-only or full disk, a folder without permission
            raise LocalUnavailable(
                f"The local copy {self.local_path} cannot be used: its lock file cannot be "
                f"created ({exc.strerror or exc}); check that you may write to its "
                "folder.") from None

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> LocalLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
