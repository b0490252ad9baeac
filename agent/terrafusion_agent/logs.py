"""Logging: JSON lines to a rotated file in the platformdirs log dir, secrets redacted.

Every agent process of the user writes the same file (``agent.jsonl``): the running
agent, a one-off ``terrafusion-agent sync`` and the syncs the plugin starts. Each line
says which process wrote it (``pid``, ``role``) and which configuration and local copy
it works on, and the file is rotated under a lock that all of them take (see
:class:`SharedLogFile`), so no line is lost when two of them rotate it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from filelock import FileLock, Timeout

from terrafusion_agent.redact import redact

if TYPE_CHECKING:
    from terrafusion_agent.config import Config

#: the log file's name in the log folder, and its rotation
FILE_NAME = "agent.jsonl"
MAX_BYTES = 5_000_000
BACKUPS = 5
#: how long a line waits for another process that holds the file's lock (rotating it)
LOCK_WAIT_SECONDS = 2.0

_STD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, the writing process (``pid``,
    ``role``, and the ``config`` file and ``local_copy`` it works on), message and any
    ``extra`` fields."""

    def __init__(self, process: Optional[dict[str, Any]] = None):
        super().__init__()
        self.process = dict(process or {})

    def format(self, record: logging.LogRecord) -> str:
        body = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            **self.process,
            "message": redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STD and not key.startswith("_"):
                body[key] = _redacted(value)
        if record.exc_info:
            body["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(body, default=lambda v: redact(str(v)))


def _redacted(value: Any) -> Any:
    """``value`` with every string in it redacted (extra fields may carry error text)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(v) for v in value]
    return value


JsonFormatter.converter = __import__("time").gmtime


class RedactingFormatter(logging.Formatter):
    """Plain text for the console, secrets redacted (exception text included)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


DRIVER_LOGGERS = ("psycopg",)


class SharedLogFile(logging.Handler):
    """A size-rotated log file that several processes append to at once.

    Python's RotatingFileHandler assumes one writer: with two, each keeps its own handle,
    so a line written by one after the other rotated lands in a renamed backup, and
    both rotating at once lose lines. Here each line is appended under an exclusive
    lock on ``<file>.lock`` that every writer takes, rotating first when the line would
    overfill the file, and the file is opened for that line only: no process holds a
    handle to a file another one renames (which Windows would refuse, too). The agent
    writes a few lines a minute, so opening the file per line costs nothing worth saving.
    """

    def __init__(self, path: Path, max_bytes: int = MAX_BYTES, backups: int = BACKUPS):
        super().__init__()
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = max(1, backups)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file_lock = FileLock(str(self.path) + ".lock", timeout=LOCK_WAIT_SECONDS,
                                   mode=0o640)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = (self.format(record) + "\n").encode("utf-8")
            try:
                with self._file_lock:
                    self._rotate_if_full(len(line))
                    self._append(line)
            except Timeout:
                # a writer stuck holding the lock: the line still goes in (one appended
                # write lands whole), only this rotation waits for the next line
                self._append(line)
        except Exception:  # noqa: BLE001 - see handleError
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:
        """A line the file cannot take (the disk is full, say) is dropped: logging's own
        report would be a traceback on the user's terminal, about the log rather than
        the problem the user is being told of in one sentence."""

    def _append(self, line: bytes) -> None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)
        fd = os.open(self.path, flags, 0o640)
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)

    def _rotate_if_full(self, adding: int) -> None:
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            return
        if size == 0 or size + adding <= self.max_bytes:
            return
        for n in range(self.backups - 1, 0, -1):
            older = self._backup(n)
            if os.path.exists(older):
                os.replace(older, self._backup(n + 1))
        try:
            os.replace(self.path, self._backup(1))
        except OSError:
            pass  # e.g. held open by a reader on Windows: rotated with a later line

    def _backup(self, n: int) -> str:
        return f"{self.path}.{n}"


def process_fields(role: Optional[str], config: Optional[Config] = None) -> dict[str, Any]:
    """What every line of this process says about it besides its pid: its ``role`` (the
    command, ``agent`` for ``run``, ``plugin-sync`` for the plugin's syncs) and the
    ``config`` file and ``local_copy`` it works on."""
    fields: dict[str, Any] = {}
    if role:
        fields["role"] = role
    if config is not None:
        # absolute: the lines of processes started from other folders must compare
        fields["config"] = (os.path.abspath(config.source) if config.source is not None
                            else None)
        fields["local_copy"] = os.path.abspath(config.local_path)
    return fields


def files_in(log_dir: Path) -> list[Path]:
    """The files logging makes in ``log_dir`` for its first line."""
    return [log_dir / FILE_NAME, log_dir / (FILE_NAME + ".lock")]


def setup(level: str, log_dir: Optional[Path], console: bool = False, *,
          role: Optional[str] = None, config: Optional[Config] = None) -> None:
    """Configure the ``terrafusion`` logger; safe to call more than once. ``role`` and
    ``config`` name this process in each line (see :func:`process_fields`)."""
    root = logging.getLogger("terrafusion")
    root.setLevel(level)
    for h in list(root.handlers):
        if getattr(h, "_terrafusion", False):
            root.removeHandler(h)
            h.close()
    if log_dir is not None:
        fh: Optional[SharedLogFile]
        try:
            fh = SharedLogFile(log_dir / FILE_NAME, MAX_BYTES, BACKUPS)
        except OSError:
            fh = None  # an unwritable log dir must not stop the agent
        if fh is not None:
            fh.setFormatter(JsonFormatter(process_fields(role, config)))
            fh._terrafusion = True  # type: ignore[attr-defined]
            root.addHandler(fh)
    if console:
        ch = logging.StreamHandler()
        ch.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(message)s"))
        ch._terrafusion = True
        root.addHandler(ch)
    # The database driver's own warnings (e.g. "connection is lost" while the agent is
    # already reporting the failure) go to the same places, never raw to stderr.
    for name in DRIVER_LOGGERS:
        driver = logging.getLogger(name)
        for h in list(driver.handlers):
            if getattr(h, "_terrafusion", False):
                driver.removeHandler(h)
        handlers = [h for h in root.handlers if getattr(h, "_terrafusion", False)]
        if not handlers:
            null = logging.NullHandler()
            null._terrafusion = True
            handlers = [null]
        for h in handlers:
            driver.addHandler(h)
        driver.propagate = False
