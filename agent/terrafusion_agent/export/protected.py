"""The agent's own files, which no export may replace.

An export with overwrite replaces its target. Aimed at the local copy it would drop every
pending edit; at one of SQLite's files beside it (``-wal``, ``-shm``, ``-journal``) it
would corrupt the copy the next time SQLite opened it; at the configuration, the token
or a log file it would break the agent. The target is compared by what it resolves to,
so a symbolic link, ``..`` or a folder reached another way leads to the same refusal; a
name that differs only in case is refused too, since on Windows and macOS it is the same
file (and beside the agent's own files it is never a name worth the doubt).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from terrafusion_agent.config import Config, default_config_path
from terrafusion_agent.errors import InvalidExport
from terrafusion_agent.lock import LocalLock

#: the files SQLite keeps beside a database, and what each is
_SQLITE_SIDE_FILES = (("-wal", "write-ahead log"), ("-shm", "shared-memory index"),
                      ("-journal", "rollback journal"))


def own_files(config: Config) -> Iterator[tuple[Path, str]]:
    """(path, what it is) for every file of the agent an export must leave alone."""
    local = Path(config.local_path)
    yield local, "the agent's local copy"
    for suffix, what in _SQLITE_SIDE_FILES:
        yield Path(f"{local}{suffix}"), f"the {what} of the agent's local copy"
    yield LocalLock(local).path, "the lock file of the agent's local copy"
    if config.central_url.startswith("sqlite:///"):
        central = Path(config.central_url[len("sqlite:///"):])
        yield central, "the agent's embedded central database"
        for suffix, what in _SQLITE_SIDE_FILES:
            yield Path(f"{central}{suffix}"), f"the {what} of the embedded central database"
    # a missing default file is still where the next start looks for one
    yield Path(config.source or default_config_path()), "the agent's configuration file"
    yield Path(config.token_file), "the agent's API token file"


def refuse_own_file(config: Config, target: Path) -> None:
    """Raise :class:`InvalidExport` if ``target`` is one of the agent's own files or lies
    in its log folder."""
    real = _real(target)
    for path, what in own_files(config):
        if _same_file(real, _real(path)):
            raise InvalidExport(f"{target} is {what}; choose another file.")
    logs = _real(Path(config.log_dir))
    if any(_same_folder(folder, logs) for folder in real.parents):
        raise InvalidExport(f"{target} is in the agent's log folder; choose another "
                            "folder.")


def _real(path: Path) -> Path:
    """``path`` absolute, with ``..`` and every symbolic link resolved (the part that
    exists; the rest as written)."""
    return Path(os.path.realpath(os.path.abspath(os.path.expanduser(path))))


def _same_file(a: Path, b: Path) -> bool:
    if os.path.normcase(a) == os.path.normcase(b):
        return True
    if a.name.casefold() != b.name.casefold():
        return False
    # the same name but for case, in the same folder (however that folder is reached)
    return _same_folder(a.parent, b.parent)


def _same_folder(a: Path, b: Path) -> bool:
    if os.path.normcase(a) == os.path.normcase(b):
        return True
    try:  # bind mounts, hard-linked names, a folder spelled in another case
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False
