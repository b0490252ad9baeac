"""Agent configuration: TOML file, environment overrides, platform defaults, validation.

Lookup: ``--config PATH``, else ``$TERRAFUSION_CONFIG``, else the platformdirs user config
dir (``terrafusion/agent.toml``). A missing default file means "all defaults"; a file
named explicitly must exist. Every key can be overridden with
``TERRAFUSION_<SECTION>__<KEY>`` (nested tables add more ``__<KEY>`` parts). Unknown keys
and bad values are rejected with the key's name in the message.
"""

from __future__ import annotations

import ipaddress
import os
import string
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - QGIS builds with an older Python
    import tomli as tomllib

import platformdirs

from terrafusion_agent.errors import ConfigError
from terrafusion_agent.redact import register_url_password

APP_NAME = "terrafusion"
ENV_CONFIG = "TERRAFUSION_CONFIG"
ENV_PREFIX = "TERRAFUSION_"
POLICIES = ("manual", "central_wins", "local_wins")
EXPORT_FORMATS = ("gpkg", "geojson", "shp", "kml", "csv", "fgb")
#: placeholders an export preset's ``filename`` template may use
FILENAME_PLACEHOLDERS = ("table", "preset", "format", "date", "time", "datetime")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEFAULT_TABLES = ("parcels", "districts", "sales")


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "agent.toml"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_log_dir() -> Path:
    return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))


@dataclass(frozen=True)
class ExportPreset:
    name: str
    table: str
    format: str
    crs: Optional[str] = None
    fields: Optional[tuple[str, ...]] = None
    renames: dict[str, str] = field(default_factory=dict)
    where: Optional[str] = None
    max_features: Optional[int] = None
    filename: Optional[str] = None


@dataclass(frozen=True)
class Config:
    """The validated configuration; ``source`` is the file it came from (or None)."""

    central_url: str
    central_schema: str
    connect_timeout_seconds: int
    statement_timeout_seconds: int
    retention_days: int
    local_path: Path
    #: how long a write to the local copy waits for another program's write lock (QGIS
    #: saving an edit session) before the sync gives up and says the copy is busy
    local_busy_timeout_seconds: int
    tables: tuple[str, ...]
    interval_seconds: int
    conflict_policy: str
    table_policy: dict[str, str]
    http_host: str
    http_port: int
    token_file: Path
    presets: dict[str, ExportPreset]
    log_level: str
    log_dir: Path
    source: Optional[Path] = None

    def policy_for(self, table: str) -> str:
        return self.table_policy.get(table, self.conflict_policy)

    @property
    def health_url(self) -> str:
        return f"{api_base_url(self.http_host, self.http_port)}/health"


def api_base_url(host: str, port: int) -> str:
    """The URL a local client uses to reach an agent bound to ``host``: an agent listening
    on every address (the unspecified address) is reached through loopback."""
    try:
        addr = ipaddress.ip_address(host.strip("[]"))
        if addr.is_unspecified:
            host = "::1" if addr.version == 6 else "127.0.0.1"
    except ValueError:
        pass  # a host name
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


# --- value checkers: each returns the clean value or raises ValueError(reason) -------


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value.strip()


def _int_range(lo: int, hi: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("must be a whole number")
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo} and {hi}")
        return value

    return check


def _choice(options: tuple[str, ...], upper: bool = False) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"must be one of {', '.join(options)}")
        v = value.upper() if upper else value
        if v not in options:
            raise ValueError(f"must be one of {', '.join(options)}, not {value!r}")
        return v

    return check


def _str_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):  # "a,b" from an environment override
        value = [v for v in (p.strip() for p in value.split(",")) if v]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError("must be a list of names")
    if len(set(value)) != len(value):
        raise ValueError("must not name the same entry twice")
    return tuple(value)


def _filename_template(value: Any) -> str:
    """An export preset's file name: known ``{placeholders}``, and no way out of the folder."""
    template = _str(value)
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"is not a valid file-name template ({exc})") from None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in FILENAME_PLACEHOLDERS or spec or conversion:
            raise ValueError(f"uses {{{name}}}, but only "
                             f"{', '.join('{' + p + '}' for p in FILENAME_PLACEHOLDERS)} "
                             "may appear")
    # A file name, never a path: the output folder is the caller's choice, not the preset's.
    if any(c in template for c in "/\\:\0") or not template.strip(". "):
        raise ValueError("must be a file name inside the output folder, not a path")
    return template


def _central_url(value: Any) -> str:
    url = _str(value)
    if not url.startswith(("postgresql://", "postgres://", "sqlite:///")):
        raise ValueError("must start with postgresql:// or sqlite:///")
    return url


# schema: section -> key -> checker. Nested tables are handled separately below.
_SCHEMA: dict[str, dict[str, Callable[[Any], Any]]] = {
    "central": {
        "url": _central_url,
        "schema": _str,
        "connect_timeout_seconds": _int_range(1, 600),
        "statement_timeout_seconds": _int_range(1, 86400),
        "retention_days": _int_range(1, 3650),
    },
    "local": {"path": _str, "busy_timeout_seconds": _int_range(1, 3600)},
    "sync": {
        "tables": _str_list,
        "interval_seconds": _int_range(5, 7 * 86400),
        "conflict_policy": _choice(POLICIES),
    },
    "http": {"host": _str, "port": _int_range(0, 65535), "token_file": _str},
    "logging": {"level": _choice(LOG_LEVELS, upper=True), "dir": _str},
}
_PRESET_SCHEMA: dict[str, Callable[[Any], Any]] = {
    "table": _str,
    "format": _choice(EXPORT_FORMATS),
    "crs": _str,
    "fields": _str_list,
    "where": _str,
    "max_features": _int_range(1, 2**31),
    "filename": _filename_template,
}


def resolve_path(
    explicit: Optional[str | os.PathLike] = None, environ: Optional[dict[str, str]] = None
) -> tuple[Path, bool]:
    """Which config file to read, and whether the user named it (then it must exist)."""
    environ = os.environ if environ is None else environ
    named = explicit or environ.get(ENV_CONFIG)
    if named:
        return Path(named).expanduser(), True
    return default_config_path(), False


def _read_file(path: Path, required: bool) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise ConfigError(f"Configuration file {path} does not exist.") from None
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc.__class__.__name__
        raise ConfigError(f"Configuration file {path} cannot be read: {reason}.") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Configuration file {path} is not valid TOML: {exc}.") from None


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


#: TERRAFUSION_ variables that are not settings: the config path, the fault points
_NOT_SETTINGS = (ENV_CONFIG, "TERRAFUSION_FAULT", "TERRAFUSION_FAULT_PAUSE")


def _apply_env(data: dict, environ: dict[str, str]) -> None:
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in _NOT_SETTINGS:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX):].split("__")]
        if len(parts) < 2 or not all(parts):
            raise ConfigError(
                f"Environment variable {name} is not a TERRAFUSION_<SECTION>__<KEY> override."
            )
        target = data
        for part in parts[:-1]:
            nxt = target.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"Environment variable {name} does not name a setting.")
            target = nxt
        target[parts[-1]] = _parse_env_value(raw)


def _check(key: str, checker: Callable[[Any], Any], value: Any) -> Any:
    try:
        return checker(value)
    except ValueError as exc:
        raise ConfigError(f"Configuration key {key} {exc}.") from None


def _check_section(data: dict, section: str) -> dict[str, Any]:
    raw = data.get(section, {})
    if not isinstance(raw, dict):
        raise ConfigError(f"Configuration key {section} must be a table.")
    schema = _SCHEMA[section]
    nested = {"sync": {"table_policy"}, "export": {"presets"}}.get(section, set())
    out = {}
    for key, value in raw.items():
        if key in nested:
            continue
        if key not in schema:
            raise ConfigError(f"Unknown configuration key {section}.{key}.")
        out[key] = _check(f"{section}.{key}", schema[key], value)
    return out


def _check_presets(data: dict) -> dict[str, ExportPreset]:
    export = data.get("export", {})
    if not isinstance(export, dict):
        raise ConfigError("Configuration key export must be a table.")
    for key in export:
        if key != "presets":
            raise ConfigError(f"Unknown configuration key export.{key}.")
    presets = {}
    for name, raw in export.get("presets", {}).items():
        where = f"export.presets.{name}"
        if not isinstance(raw, dict):
            raise ConfigError(f"Configuration key {where} must be a table.")
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key == "renames":
                if not isinstance(value, dict) or not all(
                    isinstance(v, str) and v for v in value.values()
                ):
                    raise ConfigError(
                        f"Configuration key {where}.renames must map field names to new names."
                    )
                values["renames"] = dict(value)
            elif key in _PRESET_SCHEMA:
                values[key] = _check(f"{where}.{key}", _PRESET_SCHEMA[key], value)
            else:
                raise ConfigError(f"Unknown configuration key {where}.{key}.")
        for required in ("table", "format"):
            if required not in values:
                raise ConfigError(f"Configuration key {where}.{required} is missing.")
        presets[name] = ExportPreset(name=name, **values)
    return presets


def _path(value: str, base: Path) -> Path:
    p = Path(os.path.expandvars(value)).expanduser()
    return p if p.is_absolute() else (base / p)


def load(
    path: Optional[str | os.PathLike] = None, environ: Optional[dict[str, str]] = None
) -> Config:
    """Read, merge and validate the configuration; raises ConfigError naming the bad key."""
    environ = dict(os.environ if environ is None else environ)
    cfg_path, required = resolve_path(path, environ)
    data = _read_file(cfg_path, required)
    _apply_env(data, environ)

    for section in data:
        if section not in _SCHEMA and section != "export":
            raise ConfigError(f"Unknown configuration section [{section}].")
    central = _check_section(data, "central")
    if "url" in central:
        register_url_password(central["url"])  # a secret from this moment on
    local = _check_section(data, "local")
    sync = _check_section(data, "sync")
    http = _check_section(data, "http")
    logging_ = _check_section(data, "logging")

    table_policy_raw = data.get("sync", {}).get("table_policy", {})
    if not isinstance(table_policy_raw, dict):
        raise ConfigError("Configuration key sync.table_policy must be a table.")
    table_policy = {
        t: _check(f"sync.table_policy.{t}", _choice(POLICIES), p)
        for t, p in table_policy_raw.items()
    }
    presets = _check_presets(data)

    base = cfg_path.parent
    data_dir = default_data_dir()
    return Config(
        central_url=central.get("url", f"sqlite:///{data_dir / 'central.sqlite'}"),
        central_schema=central.get("schema", "public"),
        connect_timeout_seconds=central.get("connect_timeout_seconds", 10),
        statement_timeout_seconds=central.get("statement_timeout_seconds", 600),
        retention_days=central.get("retention_days", 30),
        local_path=_path(local["path"], base) if "path" in local else data_dir / "local.sqlite",
        local_busy_timeout_seconds=local.get("busy_timeout_seconds", 30),
        tables=sync.get("tables", DEFAULT_TABLES),
        interval_seconds=sync.get("interval_seconds", 300),
        conflict_policy=sync.get("conflict_policy", "manual"),
        table_policy=table_policy,
        http_host=http.get("host", "127.0.0.1"),
        http_port=http.get("port", 8765),
        token_file=_path(http["token_file"], base) if "token_file" in http else base / "token",
        presets=presets,
        log_level=logging_.get("level", "INFO"),
        log_dir=_path(logging_["dir"], base) if "dir" in logging_ else default_log_dir(),
        source=cfg_path if cfg_path.exists() else None,
    )
