"""Read and write the agent's TOML configuration for the Settings dialog (no Qt).

The file never holds a password (docs/contract.md, "Configuration"): the central database is
named by a libpq service (``postgresql:///?service=NAME``), by a URL without password
(``postgresql://user@host:port/db``, the password then comes from libpq's password file,
which :func:`store_pgpass` can fill from the QGIS authentication manager) or by a
SpatiaLite file. What the dialog does not edit (export presets, logging, unknown
future keys) is carried over unchanged. A new file is validated by the agent's own
``config.load`` before it replaces the old one, so a bad value never reaches the agent.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qs, quote, unquote, urlsplit

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - QGIS builds with an older Python
    import tomli as tomllib

SERVICE = "service"
SERVER = "server"
SPATIALITE = "spatialite"

HEADER = (
    "# TerraFusion agent configuration, written by the QGIS plugin's Settings dialog.\n"
    "# Passwords never live here: libpq's password file (~/.pgpass), pg_service.conf or\n"
    "# PGPASSWORD provide them.\n"
)
#: sections in the order a person reads them; others follow alphabetically
SECTION_ORDER = ("central", "local", "sync", "http", "export", "logging")


class SettingsError(Exception):
    """A setting cannot be written; ``str()`` is one sentence for the user."""


# --- the central connection ---------------------------------------------------------------


@dataclass(frozen=True)
class Central:
    """How the agent reaches the central database, as the dialog shows it."""

    kind: str  # SERVICE, SERVER or SPATIALITE
    service: str = ""
    host: str = ""
    port: Optional[int] = None
    database: str = ""
    user: str = ""
    path: str = ""

    def url(self, password: Optional[str] = None) -> str:
        """The ``central.url`` value, which never carries a password.

        ``password`` is only for a connection test made in memory, never for the file.
        """
        if self.kind == SERVICE:
            if not self.service.strip():
                raise SettingsError("Name the PostgreSQL service of the central database.")
            return f"postgresql:///?service={quote(self.service.strip(), safe='')}"
        if self.kind == SPATIALITE:
            if not self.path.strip():
                raise SettingsError("Choose the SpatiaLite file of the central database.")
            return f"sqlite:///{Path(self.path.strip()).expanduser()}"
        if not self.host.strip() or not self.database.strip():
            raise SettingsError("Give the host and the database of the central PostgreSQL "
                                "server.")
        host = self.host.strip()
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        user = quote(self.user.strip(), safe="")
        if user and password:
            user += ":" + quote(password, safe="")
        user = f"{user}@" if user else ""
        port = f":{int(self.port)}" if self.port else ""
        return f"postgresql://{user}{host}{port}/{quote(self.database.strip(), safe='')}"


def parse_central(url: Optional[str]) -> Central:
    """The dialog's view of a ``central.url`` (a password in it is ignored, never shown)."""
    if not url:
        return Central(kind=SPATIALITE)
    if url.startswith("sqlite:///"):
        return Central(kind=SPATIALITE, path=url[len("sqlite:///"):])
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    service = (query.get("service") or [""])[0]
    if service and not parts.hostname:
        return Central(kind=SERVICE, service=service)
    try:
        port = parts.port
    except ValueError:
        port = None
    return Central(kind=SERVER, host=parts.hostname or "", port=port,
                   database=unquote(parts.path.lstrip("/")),
                   user=unquote(parts.username or ""))


def service_files() -> list[Path]:
    """libpq's service files, in the order libpq reads them."""
    files = []
    if os.environ.get("PGSERVICEFILE"):
        files.append(Path(os.environ["PGSERVICEFILE"]))
    elif os.name == "nt":
        files.append(Path(os.environ.get("APPDATA", "")) / "postgresql" / ".pg_service.conf")
    else:
        files.append(Path.home() / ".pg_service.conf")
    default_sysconf = "" if os.name == "nt" else "/etc/postgresql-common"
    sysconf = os.environ.get("PGSYSCONFDIR") or default_sysconf
    if sysconf:
        files.append(Path(sysconf) / "pg_service.conf")
    return files


def pg_services() -> list[str]:
    """Names of the services defined in libpq's service files (for the dialog's list)."""
    names: list[str] = []
    for path in service_files():
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for match in re.finditer(r"^\s*\[([^\]]+)\]\s*$", text, re.MULTILINE):
            if match.group(1).strip() not in names:
                names.append(match.group(1).strip())
    return sorted(names, key=str.lower)


# --- libpq's password file ------------------------------------------------------------------


def pgpass_path() -> Path:
    """Where libpq looks for passwords (``PGPASSFILE``, else the platform's default)."""
    if os.environ.get("PGPASSFILE"):
        return Path(os.environ["PGPASSFILE"])
    if os.name == "nt":
        return Path(os.environ.get("APPDATA", Path.home())) / "postgresql" / "pgpass.conf"
    return Path.home() / ".pgpass"


def _pgpass_field(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def store_pgpass(central: Central, password: str, path: Optional[Path] = None) -> Path:
    """Put the server's password in libpq's password file (mode 0600), replacing an older
    entry for the same host, port, database and user; returns the file.

    This is where libpq, and so the agent, looks for it when QGIS is not running.
    """
    if central.kind != SERVER or not central.user.strip():
        raise SettingsError("A password can only be kept for a server connection with a "
                            "user name.")
    path = pgpass_path() if path is None else path
    key = ":".join(_pgpass_field(v) for v in (
        central.host.strip(), str(central.port or 5432), central.database.strip(),
        central.user.strip()))
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = []
    except OSError as exc:
        raise SettingsError(f"The password file {path} cannot be read: "
                            f"{exc.strerror or exc}.") from None
    kept = [ln for ln in lines if not ln.startswith(key + ":")]
    kept.append(f"{key}:{_pgpass_field(password)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # created 0600 (libpq ignores a password file others can read), written whole
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("\n".join(kept) + "\n")
        if os.name == "posix":
            os.chmod(path, 0o600)
    except OSError as exc:
        raise SettingsError(f"The password file {path} cannot be written: "
                            f"{exc.strerror or exc}.") from None
    return path


# --- the TOML file ----------------------------------------------------------------------------


def read_document(path: Path) -> dict:
    """The file's content as plain data ({} when it does not exist yet)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise SettingsError(f"The configuration file {path} cannot be read: "
                            f"{exc.strerror or exc}.") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"The configuration file {path} is not valid TOML: {exc}.") from None


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(name: str) -> str:
    return name if _BARE_KEY.match(name) else _string(name)


def _string(value: str) -> str:
    escaped = (value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\t", "\\t").replace("\r", "\\r"))
    # TOML allows no raw control character in a basic string
    escaped = "".join(c if " " <= c != "\x7f" else f"\\u{ord(c):04x}" for c in escaped)
    return f'"{escaped}"'


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table inside an array is never needed here
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise SettingsError(f"A configuration value of type {type(value).__name__} cannot be "
                        "written.")


def _table(out: list[str], name: str, table: dict) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    if scalars or not tables:
        out.append(f"[{name}]")
        out.extend(f"{_key(k)} = {_value(v)}" for k, v in scalars.items())
        out.append("")
    for key, sub in tables.items():
        _table(out, f"{name}.{_key(key)}", sub)


def dumps(document: dict) -> str:
    """``document`` as TOML text (the shapes the agent's configuration uses)."""
    out = [HEADER]
    ordered = [s for s in SECTION_ORDER if s in document]
    ordered += sorted(s for s in document if s not in SECTION_ORDER)
    for section in ordered:
        value = document[section]
        if isinstance(value, dict):
            _table(out, _key(section), value)
        else:  # the agent has no top-level keys; keep one faithfully all the same
            out.insert(1, f"{_key(section)} = {_value(value)}")
    return "\n".join(out).rstrip() + "\n"


@dataclass(frozen=True)
class Settings:
    """What the Settings dialog edits."""

    central: Central
    local_path: str
    tables: tuple
    interval_seconds: int
    conflict_policy: str
    table_policy: dict
    http_port: int


def apply(document: dict, settings: Settings) -> dict:
    """A copy of ``document`` with the dialog's values in; other keys stay as they were."""
    doc = {k: (dict(v) if isinstance(v, dict) else v) for k, v in document.items()}
    central = doc.setdefault("central", {})
    central["url"] = settings.central.url()
    local = doc.setdefault("local", {})
    if settings.local_path.strip():
        local["path"] = settings.local_path.strip()
    else:
        local.pop("path", None)
    if not local:
        doc.pop("local")
    sync = doc.setdefault("sync", {})
    sync["tables"] = list(settings.tables)
    sync["interval_seconds"] = int(settings.interval_seconds)
    sync["conflict_policy"] = settings.conflict_policy
    policies = {t: p for t, p in settings.table_policy.items() if p}
    if policies:
        sync["table_policy"] = dict(policies)
    else:
        sync.pop("table_policy", None)
    http = doc.setdefault("http", {})
    http["port"] = int(settings.http_port)
    return doc


def save(path: Path, document: dict):
    """Validate ``document`` with the agent's own loader, then write it to ``path``.

    Returns the loaded ``Config``; raises SettingsError with the agent's sentence (which
    names the bad key) and leaves the old file untouched when it is not valid.
    """
    from terrafusion_agent import config as tf_config
    from terrafusion_agent.errors import ConfigError

    path = Path(path)
    text = dumps(document)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise SettingsError(f"The configuration cannot be written to {path.parent}: "
                            f"{exc.strerror or exc}.") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        # Relative paths in the file resolve against its folder: the temp file sits in
        # the same one. Overrides from the environment are not the file's business.
        try:
            loaded = tf_config.load(temp, environ={})
        except ConfigError as exc:
            raise SettingsError(str(exc).replace(temp, str(path))) from None
        if path.exists():
            os.chmod(temp, path.stat().st_mode & 0o777)
        else:
            os.chmod(temp, 0o644)
        os.replace(temp, path)
        loaded = tf_config.load(path, environ={})
    except OSError as exc:
        raise SettingsError(f"The configuration cannot be written to {path}: "
                            f"{exc.strerror or exc}.") from None
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return loaded
