"""The API's bearer token: a random secret in a file only the user can read.

The file is created with mode 0600 on the agent's first start; clients on the same
machine (the plugin, an admin's script) read it to authorise their POST requests. The
token is registered with :mod:`terrafusion_agent.redact` so no log line or error message
can carry it.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import stat
from pathlib import Path
from typing import Optional

from terrafusion_agent.errors import ConfigError
from terrafusion_agent.redact import register_secret

log = logging.getLogger("terrafusion.agent")
#: characters of entropy source: token_urlsafe(32) gives 43 URL-safe characters
TOKEN_BYTES = 32


def load_or_create(path: Path) -> str:
    """The token stored at ``path``; a new one is written there (0600) if it is missing."""
    path = Path(path)
    try:
        token = _read(path)
    except FileNotFoundError:
        token = _create(path)
    if len(token) < 16:
        raise ConfigError(
            f"The API token file {path} (http.token_file) holds too short a token; "
            "delete it and restart the agent to get a new one.")
    register_secret(token)
    _warn_if_readable_by_others(path)
    return token


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc.__class__.__name__
        raise ConfigError(
            f"The API token file {path} (http.token_file) cannot be read: {reason}.") from None


def _create(path: Path) -> str:
    token = secrets.token_urlsafe(TOKEN_BYTES)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two agents starting at once never overwrite each other's token, and the
        # mode is set at creation, so the secret is never readable by others, even briefly.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(path)
    except OSError as exc:
        raise ConfigError(
            f"The API token file {path} (http.token_file) cannot be created: "
            f"{exc.strerror or exc}.") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(token + "\n")
    log.info("created the API token file %s", path)
    return token


def _warn_if_readable_by_others(path: Path) -> None:
    if os.name != "posix":
        return
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("the API token file %s can be read by other users; "
                    "run 'chmod 600 %s'", path, path)


def matches(expected: str, authorization: Optional[str]) -> bool:
    """Whether an ``Authorization`` header carries the expected bearer token.

    Constant-time comparison, so the token cannot be guessed from response timings.
    """
    if not authorization:
        return False
    scheme, _, given = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"),
                               expected.encode("utf-8"))
