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
# Passwords written into a configured connection URL, as written and percent-decoded.
# A driver may quote one back in its own words, where no pattern finds it (libpq:
# 'invalid percent-encoded token: "pa%ss"'), so each is masked as a known value, however
# short; one shorter than this only where it stands apart, not inside a longer word.
_passwords: set[str] = set()
PASSWORD_ANYWHERE_LENGTH = 6
_AUTHORITY = re.compile(r"^[a-z][a-z0-9+.-]*://(?P<authority>[^/]*)", re.IGNORECASE)
_QUERY_PASSWORD_VALUE = re.compile(r"[?&]password=(?P<pw>[^&#]*)", re.IGNORECASE)


def register_secret(value: str, min_length: int = 8) -> None:
    """Mask ``value`` in every later :func:`redact` (a value shorter than ``min_length``
    is ignored: masking every "abc" would garble messages more than it protects)."""
    if value and len(value) >= min_length:
        with _secrets_lock:
            _secrets.add(value)


def register_url_password(url: str) -> None:
    """Mask the password of a connection URL in every later :func:`redact`: the
    configuration calls this as it is read, before anything may quote the password."""
    found = url_passwords(url)
    if found:
        with _secrets_lock:
            _passwords.update(found)


#: a webhook URL's query values, and path parts, at least this long are taken for tokens
#: (a path holds words such as "services" or "webhooks" too, so its tokens must be longer)
WEBHOOK_QUERY_TOKEN_LENGTH = 8
WEBHOOK_PATH_TOKEN_LENGTH = 16


def register_webhook_url(url: str) -> None:
    """Mask a webhook URL's secrets in every later :func:`redact`: its password, its
    query values and path parts long enough to be tokens (a chat service's hook carries
    its token in the path), and the URL whole. Short parts (``/hooks``, ``?v=1``) stay
    readable: masking them everywhere would garble every message."""
    if not url:
        return
    register_url_password(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        register_secret(url)
        return
    for value in {url, urlunsplit(parts._replace(netloc=parts.hostname or ""))}:
        register_secret(value)
    pieces = [(p, WEBHOOK_PATH_TOKEN_LENGTH) for p in parts.path.split("/") if p]
    pieces += [(v, WEBHOOK_QUERY_TOKEN_LENGTH)
               for _, _, v in (q.partition("=") for q in parts.query.split("&"))]
    for piece, length in pieces:
        for value in (piece, unquote(piece)):
            register_secret(value, length)


def webhook_display(url: str) -> str:
    """A webhook URL as status, logs and errors show it: scheme, host and port only."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return MASK
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}/{MASK}"


def url_passwords(url: str) -> set[str]:
    """The password of ``url`` (user info or ``password=`` parameter), as written and
    percent-decoded; a raw ``@`` in it may end the user info at either ``@``."""
    raw: set[str] = set()
    m = _AUTHORITY.match(url or "")
    if m and "@" in m["authority"]:
        authority = m["authority"]
        for userinfo in (authority.split("@", 1)[0], authority.rsplit("@", 1)[0]):
            if ":" in userinfo:
                raw.add(userinfo.split(":", 1)[1])
    raw.update(q["pw"] for q in _QUERY_PASSWORD_VALUE.finditer(url or ""))
    return {v for value in raw for v in (value, unquote(value)) if v}


def _mask_password(text: str, value: str) -> str:
    if len(value) >= PASSWORD_ANYWHERE_LENGTH:
        return text.replace(value, MASK)
    return re.sub(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])", MASK, text)


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
    # longest first: a password containing a shorter one is masked whole
    for value in sorted(tuple(_passwords), key=len, reverse=True):
        if value in text:
            text = _mask_password(text, value)
    return text
