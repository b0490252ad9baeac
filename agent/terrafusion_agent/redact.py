"""Keep secrets out of messages, logs and status bodies."""

from __future__ import annotations

import os
import re
import threading
from urllib.parse import urlsplit, urlunsplit

_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]*)@",
                           re.IGNORECASE)
_KV_PASSWORD = re.compile(r"(?P<key>\b(?:password|passwd|pwd)\s*=\s*)(?P<pw>'[^']*'|\S+)",
                          re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"(?P<key>[?&]password=)(?P<pw>[^&\s]*)", re.IGNORECASE)
# "Authorization: Bearer abc", "bearer abc": whatever token a client sent, right or wrong
_BEARER = re.compile(r"(?P<key>\bbearer\s+)(?P<tok>[A-Za-z0-9._~+/=-]+)", re.IGNORECASE)
MASK = "***"

# Secret values known at run time (the agent's API token): masked wherever they appear.
_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: str) -> None:
    """Mask ``value`` in every later :func:`redact` (too short a value is ignored)."""
    if value and len(value) >= 8:
        with _secrets_lock:
            _secrets.add(value)


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (user, host, database kept)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":" + MASK
        netloc = f"{userinfo}@{host}"
    return redact(urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)))


def redact(text: str) -> str:
    """Mask passwords in URLs and ``password=`` settings, bearer tokens, and known secrets."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _KV_PASSWORD.sub(lambda m: f"{m['key']}{MASK}", text)
    text = _QUERY_PASSWORD.sub(lambda m: f"{m['key']}{MASK}", text)
    text = _BEARER.sub(lambda m: f"{m['key']}{MASK}", text)
    secret = os.environ.get("PGPASSWORD")
    if secret and len(secret) >= 3:
        text = text.replace(secret, MASK)
    for value in tuple(_secrets):  # a snapshot: another thread may register meanwhile
        if value in text:
            text = text.replace(value, MASK)
    return text
