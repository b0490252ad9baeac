"""Named fault points: deterministic crashes at the sync's commit boundaries, for tests.

``TERRAFUSION_FAULT=NAME`` ends the process at once, as ``kill -9`` would (no cleanup,
no ``finally``, no flush), the first time the point ``NAME`` is reached;
``TERRAFUSION_FAULT=NAME:N`` the N-th time. With ``TERRAFUSION_FAULT_PAUSE=PATH`` set as
well, the process instead creates ``PATH.reached`` at the point and waits until
``PATH.go`` exists before going on: a test uses that to stop the central server at
exactly that boundary.

Unset, a point costs one comparison with ``None``. The names are part of the documented
contract (docs/guarantees.md); :data:`POINTS` lists them all and a test checks that each
one is reached.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Optional

#: every point, in the order a sync meets them, with where it sits
POINTS: dict[str, str] = {
    "settle.before_local_commit":
        "replaying an unacknowledged push from central's receipt, before the local commit",
    "pull.after_snapshot": "the pull's central snapshot is open, nothing written locally",
    "pull.mid_bulk_copy": "a first copy has written part of a table locally, uncommitted",
    "pull.before_local_commit": "every pulled change is written locally, not committed",
    "pull.after_local_commit": "the pull is committed locally, the push has not begun",
    "keys.during_allocation": "a block of offline keys is reserved centrally, uncommitted",
    "keys.after_allocation": "the key block is committed centrally, not yet recorded locally",
    "push.before_central_commit": "a push batch is written centrally, not committed",
    "push.after_central_commit": "a push batch is committed centrally, not settled locally",
    "push.before_local_commit": "a push batch's local settle is written, not committed",
    "push.after_local_commit": "a push batch is settled locally, its receipt not yet cleared",
    "schema.mid_rebuild": "a table whose columns changed centrally is half rebuilt locally",
    "purge.before_commit": "old change-log entries are deleted centrally, not committed",
    "resolve.before_local_commit": "a conflict resolution is written locally, not committed",
    "discard.before_local_commit":
        "discarded local edits are restored locally, not committed",
}

#: points outside the sync (no sync reaches them)
EXPORT_POINTS: dict[str, str] = {
    "export.before_rows":
        "an export job's temporary file is created, its rows not yet written",
}

_ENV, _PAUSE_ENV = "TERRAFUSION_FAULT", "TERRAFUSION_FAULT_PAUSE"


def _parse(value: Optional[str]) -> Optional[tuple[str, int]]:
    if not value:
        return None
    name, _, nth = value.partition(":")
    if name not in POINTS and name not in EXPORT_POINTS:
        raise SystemExit(f"{_ENV}={value}: there is no fault point {name!r}; the points are "
                         f"{', '.join([*POINTS, *EXPORT_POINTS])}.")
    try:
        n = int(nth) if nth else 1
    except ValueError:
        raise SystemExit(f"{_ENV}={value}: the count after ':' must be a number.") from None
    return name, max(n, 1)


_armed = _parse(os.environ.get(_ENV))
_seen: dict[str, int] = {}


def point(name: str) -> None:
    """Crash (or pause) here when ``TERRAFUSION_FAULT`` names this point."""
    if _armed is None or _armed[0] != name:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] != _armed[1]:
        return
    pause = os.environ.get(_PAUSE_ENV)
    if pause:
        _pause(Path(pause))
        return
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)  # SIGKILL is not deliverable late, but never run on past the point


def _pause(path: Path) -> None:
    go = path.with_name(path.name + ".go")
    path.with_name(path.name + ".reached").write_text(str(os.getpid()), encoding="utf-8")
    deadline = time.monotonic() + 600
    while not go.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"{_PAUSE_ENV}: nobody created {go} within 10 minutes.")
        time.sleep(0.01)

