"""Keep secrets out of messages, logs and status bodies."""

from __future__ import annotations

import os
import re
import threading
from urllib.parse import unquote, urlsplit, urlunsplit

_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]*)@",
                           re.IGNORECASE)
# libpq's "host=db password=x" settings; a URL's "?password=x&..." is the next pattern's,
# which keeps the parameters after it readable
_KV_PASSWORD = re.compile(
    r"(?P<key>(?<![?&])\b(?:password|passwd|pwd)\s*=\s*)(?P<pw>'[^']*'|\S+)", re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"(?P<key>[?&]password=)(?P<pw>[^&\s]*)", re.IGNORECASE)
# "Authorization: Bearer abc", "bearer abc": whatever token a client sent, right or wrong
_BEARER = re.compile(r"(?P<key>\bbearer\s+)(?P<tok>[A-Za-z0-9._~+/=-]+)", re.IGNORECASE)
MASK = "***"

# Secret values known at run time (the agent's API token): masked wherever they appear.
_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: str, min_length: int = 8) -> None:
    """Mask ``value`` in every later :func:`redact` (a value shorter than ``min_length``
    is ignored: masking every "abc" would garble messages more than it protects)."""
    if value and len(value) >= min_length:
        with _secrets_lock:
            _secrets.add(value)


def register_url_password(url: str) -> None:
    """Mask the password of ``url`` also where it appears without the URL around it.

    libpq quotes a password alone in some errors (``invalid percent-encoded token:
    "..."`` for a raw ``%`` in it), where no URL pattern can recognise it.
    """
    try:
        password = urlsplit(url).password
    except ValueError:
        return
    if password:
        for value in {password, unquote(password)}:
            register_secret(value, min_length=3)  # as short as PGPASSWORD's masking allows


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
