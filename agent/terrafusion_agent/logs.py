"""Logging: JSON lines to a rotated file in the platformdirs log dir, secrets redacted."""

from __future__ import annotations

import json
import logging
import logging.handlers
from pathlib import Path
from typing import Any, Optional

from terrafusion_agent.redact import redact

_STD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        body = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
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


class _LogFile(logging.handlers.RotatingFileHandler):
    """The log file. A line it cannot write (the disk is full, say) is dropped: logging's
    own report would be a traceback on the user's terminal, about the log rather than
    the problem the user is being told of in one sentence."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def setup(level: str, log_dir: Optional[Path], console: bool = False) -> None:
    """Configure the ``terrafusion`` logger; safe to call more than once."""
    root = logging.getLogger("terrafusion")
    root.setLevel(level)
    for h in list(root.handlers):
        if getattr(h, "_terrafusion", False):
            root.removeHandler(h)
            h.close()
    if log_dir is not None:
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            fh = _LogFile(log_dir / "agent.jsonl", maxBytes=5_000_000, backupCount=5,
                          encoding="utf-8")
        except OSError:
            fh = None  # an unwritable log dir must not stop the agent
        if fh is not None:
            fh.setFormatter(JsonFormatter())
            fh._terrafusion = True
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
