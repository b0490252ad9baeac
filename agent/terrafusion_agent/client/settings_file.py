"""Read and write the agent's TOML configuration for the Settings dialog (no Qt).

The file never holds a password (docs/contract.md, "Configuration"): the central database is
named by a libpq service (``postgresql:///?service=NAME``), by a URL without password
(``postgresql://user@host:port/db``, the password then comes from libpq's password file,
which :func:`store_pgpass` can fill from the QGIS authentication manager) or by a
SpatiaLite file. The file is edited in place with ``tomlkit``: comments, the order of
keys and tables, and what the dialog does not edit (export presets, logging, unknown
future keys) stay as the user wrote them. A new file is validated by the agent's own
``config.load`` before it replaces the old one, so a bad value never reaches the agent.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qs, quote, unquote, urlsplit

SERVICE = "service"
SERVER = "server"
SPATIALITE = "spatialite"

HEADER = (
    "# TerraFusion agent configuration, written by the QGIS plugin's Settings dialog.\n"
    "# Passwords never live here: libpq's password file (~/.pgpass), pg_service.conf or\n"
    "# PGPASSWORD provide them.\n"
)


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
#
# The file is edited with tomlkit, never rewritten from plain data: what the person who
# keeps it wrote (comments, the order of keys and tables, blank lines, keys the dialog does
# not show) stays as it was, and only the values the dialog changed are touched.


def new_document():
    """An empty configuration document that starts with :data:`HEADER`."""
    import tomlkit

    return tomlkit.parse(HEADER + "\n")


def read_document(path: Path):
    """The file as an editable ``tomlkit`` document (a dict to read; a new one with
    :data:`HEADER` when the file does not exist yet)."""
    import tomlkit
    from tomlkit.exceptions import ParseError

    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return new_document()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise SettingsError(f"The configuration file {path} cannot be read: "
                            f"{reason}.") from None
    try:
        return tomlkit.parse(text)
    except ParseError as exc:
        raise SettingsError(f"The configuration file {path} is not valid TOML: {exc}.") from None


def dumps(document) -> str:
    """``document`` as TOML text, exactly as it reads (comments and layout included)."""
    import tomlkit

    return tomlkit.dumps(document)


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
    #: the PostgreSQL schema of the synced tables (``central.schema``); "" for the default
    central_schema: str = ""


_MISSING = object()


def _plain(value: Any) -> Any:
    return value.unwrap() if hasattr(value, "unwrap") else value


def _edit_list(current, new: list) -> bool:
    """Turn the array ``current`` into ``new`` in place when ``new`` only drops some of its
    entries and appends others (what the dialog's table list does), so that the comments
    beside the entries that stay are kept; False when the order changed."""
    old = list(_plain(current))
    if len(set(old)) != len(old):
        return False
    kept = [v for v in old if v in new]
    if kept + [v for v in new if v not in old] != list(new):
        return False
    for value in old:
        if value not in new:
            current.remove(value)
    for value in new:
        if value not in old:
            current.append(value)
    return True


def _set(table, name: str, value: Any, default: Any = _MISSING) -> None:
    """Put ``value`` under ``name`` in ``table`` unless the file already says it, or leaves
    it out and the default is that value: what the user did not change keeps its spelling
    and place."""
    current = table.get(name, _MISSING)
    if current is _MISSING:
        if value != default:
            table[name] = value
        return
    if _plain(current) == value:
        return
    if isinstance(value, list) and isinstance(_plain(current), list) \
            and hasattr(current, "append") and _edit_list(current, value):
        return
    table[name] = value  # tomlkit keeps the line's place and its comment


def _table(document, name: str, create: bool):
    """The table ``name`` of ``document``; a new one at the end when ``create``."""
    import tomlkit

    found = document.get(name)
    if found is None and create:
        document.add(name, tomlkit.table())
        found = document[name]
    return found


def _default(name: str) -> Any:
    from terrafusion_agent import config as tf_config

    default = tf_config.key(name).default
    return list(default) if isinstance(default, tuple) else default


def apply(document, settings: Settings):
    """A copy of ``document`` with the dialog's values in; everything else stays as it was.

    A value the file already holds is left alone, so is a key the file leaves to its
    default when the dialog shows that default.
    """
    import tomlkit

    doc = tomlkit.parse(dumps(document))

    central = _table(doc, "central", create=True)
    _set(central, "url", settings.central.url())
    if settings.central.kind != SPATIALITE:
        # a SpatiaLite central has no schemas: what the file says stays for a later server
        schema = settings.central_schema.strip() or _default("central.schema")
        _set(central, "schema", schema, _default("central.schema"))

    local = _table(doc, "local", create=bool(settings.local_path.strip()))
    if settings.local_path.strip():
        _set(local, "path", settings.local_path.strip())
    elif local is not None and "path" in local:
        del local["path"]

    wanted = {
        "tables": list(settings.tables),
        "interval_seconds": int(settings.interval_seconds),
        "conflict_policy": settings.conflict_policy,
    }
    policies = {t: p for t, p in settings.table_policy.items() if p}
    sync = _table(doc, "sync", create=False)
    if sync is None and (policies or any(
            v != _default(f"sync.{k}") for k, v in wanted.items())):
        sync = _table(doc, "sync", create=True)
    if sync is not None:
        for name, value in wanted.items():
            _set(sync, name, value, _default(f"sync.{name}"))
        _apply_policies(sync, policies)

    port = int(settings.http_port)
    http = _table(doc, "http", create=port != _default("http.port"))
    if http is not None:
        _set(http, "port", port, _default("http.port"))
    return doc


def _apply_policies(sync, policies: dict) -> None:
    import tomlkit

    current = sync.get("table_policy")
    if not policies:
        if current is not None:
            del sync["table_policy"]
        return
    if current is None:
        table = tomlkit.table()
        for name, policy in policies.items():
            table[name] = policy
        table.add(tomlkit.nl())
        sync["table_policy"] = table
        return
    for name in [n for n in current if n not in policies]:
        del current[name]
    for name, policy in policies.items():
        _set(current, name, policy)


def _refuse_password(document) -> None:
    from terrafusion_agent.redact import url_passwords

    url = (document.get("central") or {}).get("url")
    if isinstance(url, str) and url_passwords(url):
        raise SettingsError("A password cannot be written into the configuration file: "
                            "keep it in libpq's password file or a PostgreSQL service.")


def _loaded(temp: str, path: Path):
    """``temp`` read by the agent's own loader, its sentences naming ``path``."""
    from terrafusion_agent import config as tf_config
    from terrafusion_agent.errors import ConfigError

    try:
        # Overrides from the environment are not the file's business.
        return tf_config.load(temp, environ={})
    except ConfigError as exc:
        raise SettingsError(str(exc).replace(temp, str(path))) from None


def _write_beside(path: Path, document) -> str:
    """``document`` in a new temporary file beside ``path``, on the disk; its name.

    Beside it, so that relative paths in the file mean the same as in ``path``.
    """
    _refuse_password(document)
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
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        os.unlink(temp)
        raise SettingsError(f"The configuration cannot be written to {path}: "
                            f"{exc.strerror or exc}.") from None
    return temp


def check(path: Path, document):
    """The ``Config`` the agent would load from ``document`` saved as ``path``, without
    saving it; raises SettingsError with the agent's sentence when it is not valid."""
    path = Path(path)
    temp = _write_beside(path, document)
    try:
        return _loaded(temp, path)
    finally:
        os.unlink(temp)


def save(path: Path, document):
    """Validate ``document`` with the agent's own loader, then put it in place of ``path``
    in one step (a reader sees the old file or the new one, never half of one).

    Returns the loaded ``Config``; raises SettingsError with the agent's sentence (which
    names the bad key) and leaves the old file untouched when it is not valid.
    """
    path = Path(path)
    temp = _write_beside(path, document)
    try:
        _loaded(temp, path)
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        os.chmod(temp, mode)
        os.replace(temp, path)
    except OSError as exc:
        raise SettingsError(f"The configuration cannot be written to {path}: "
                            f"{exc.strerror or exc}.") from None
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return _loaded(str(path), path)
