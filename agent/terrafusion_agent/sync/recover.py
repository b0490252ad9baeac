"""``terrafusion-agent recover``: a damaged local copy rebuilt from central, with every
pending edit it can still read applied again.

Nothing is thrown away, and nothing is moved until the new copy is complete:

1. the local lock is taken (no agent may sync this copy meanwhile) and the damaged file
   must not be in the middle of a write (QGIS saving an edit session);
2. a new copy is built beside it, under a hidden name, by a normal first sync; a central
   that cannot be reached ends the recovery here, with the damaged copy still in place;
3. the damaged copy's pending edits are read entry by entry, and each edited row by its
   key, so a damaged page loses only the edits it holds; each readable one becomes a
   pending edit of the new copy again, with the local row as it was and the base the
   damaged copy recorded, so the next sync pushes it and detects conflicts exactly;
4. the damaged file (with its -wal and -shm) is renamed ``<name>.damaged-<UTC time>``
   and the new copy takes its place.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from terrafusion_agent.config import Config
from terrafusion_agent.errors import AgentBusy, LocalUnavailable
from terrafusion_agent.lock import LocalLock
from terrafusion_agent.stores.local import LocalStore
from terrafusion_agent.stores.salvage import DamagedCopy, Edit, Unreadable, restore_edit
from terrafusion_agent.sync.engine import Progress, run_sync

log = logging.getLogger("terrafusion.sync")
#: SQLite's companion files, moved together with their database (WAL first: a database
#: must never meet another file's write-ahead log under its own name)
_COMPANIONS = ("-wal", "-shm", "")


def recover(config: Config, progress: Optional[Progress] = None) -> dict[str, Any]:
    """Rebuild the local copy from central, re-applying its readable pending edits, and
    return the report: where the damaged file went, the edits saved and those lost.
    ``progress`` follows the first sync that builds the new copy."""
    path = Path(config.local_path)
    if not path.exists():
        raise LocalUnavailable(f"There is no local copy at {path} to recover; a sync "
                               "creates it.")
    lock = LocalLock(path)
    try:
        lock.acquire()
    except AgentBusy:
        raise AgentBusy(f"A TerraFusion agent is using the local copy {path}; stop it "
                        "before 'terrafusion-agent recover'.") from None
    try:
        return _recover(config, path, progress)
    finally:
        lock.release()


def _recover(config: Config, path: Path, progress: Optional[Progress]) -> dict[str, Any]:
    damaged = DamagedCopy(path)
    try:
        damaged.check_no_writer(config.local_busy_timeout_seconds)
        work = path.with_name(f".{path.name}.recovering")
        _remove(work)  # left by a recovery that was interrupted
        try:
            summary = run_sync(dataclasses.replace(config, local_path=work),
                               trigger="recover", progress=progress)
            saved, lost = _reapply(damaged, work, config)
        except BaseException:
            _remove(work)
            raise
    finally:
        damaged.close()
    aside = _set_aside(path)
    _move(work, path)
    for edit in lost:
        log.warning("recover: the %s of %s %s is lost: %s", edit["op"], edit["table"],
                    edit["key"], edit["reason"])
    log.info("recovered the local copy %s: %d pending edits saved, %d lost; the damaged "
             "copy is %s", path, saved, len(lost), aside)
    return {
        "local_copy": str(path),
        "damaged_copy": str(aside),
        "pulled": summary["pulled"],
        "edits_saved": saved,
        "edits_lost": len(lost),
        "lost": lost,
        "problems": damaged.problems,
    }


def _reapply(damaged: DamagedCopy, work: Path, config: Config) -> tuple[int, list[dict]]:
    """Put the damaged copy's readable pending edits into the new copy at ``work``."""
    layouts = damaged.table_infos()
    local = LocalStore.open(work, busy_timeout=config.local_busy_timeout_seconds)
    saved, lost = 0, []
    try:
        synced = {info.name: info for info in local.tables()}
        with local.writing():
            for edit in damaged.edits():
                info = synced.get(edit.table)

                def lose(reason: str, edit: Edit = edit) -> None:
                    lost.append({"table": edit.table, "key": list(edit.key), "op": edit.op,
                                 "reason": reason})

                if info is None:
                    lose(f"table {edit.table} is no longer synced")
                    continue
                row = None
                if edit.op != "delete":
                    try:
                        row = damaged.row(layouts.get(edit.table, info), edit.key)
                    except Unreadable as exc:
                        lose(f"its row cannot be read ({exc})")
                        continue
                    if row is None:
                        lose("its row is missing from the damaged copy")
                        continue
                restore_edit(local, info, edit, row)
                saved += 1
    finally:
        local.close()
    return saved, lost


def _set_aside(path: Path) -> Path:
    """Rename the damaged file and its companions; returns its new name."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while any(Path(f"{aside}{s}").exists() for s in _COMPANIONS):
        n += 1
        aside = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    _move(path, aside)
    return aside


def _move(source: Path, target: Path) -> None:
    for suffix in _COMPANIONS:
        src = Path(f"{source}{suffix}")
        if src.exists():
            os.replace(src, Path(f"{target}{suffix}"))


def _remove(path: Path) -> None:
    for suffix in _COMPANIONS:
        Path(f"{path}{suffix}").unlink(missing_ok=True)
