"""Agent configuration: TOML file, environment overrides, platform defaults, validation.

Lookup: ``--config PATH``, else ``$TERRAFUSION_CONFIG``, else the platformdirs user config
dir (``terrafusion/agent.toml``). A missing default file means "all defaults"; a file
named explicitly must exist. Every key can be overridden with
``TERRAFUSION_<SECTION>__<KEY>`` (nested tables add more ``__<KEY>`` parts). Unknown keys
and bad values are rejected with the key's name in the message.

Every key is declared once, in :data:`KEYS`: its type and check, its default, its help and
whether a running agent can take a new value without a restart. The loader, the reference
in ``docs/configuration.md`` (``scripts/config_docs.py``) and the plugin's Settings dialog
all read that declaration.
"""

from __future__ import annotations

import difflib
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

from urllib.parse import urlsplit

import platformdirs

from terrafusion_agent.errors import ConfigError
from terrafusion_agent.redact import register_url_password, register_webhook_url

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
    history_retention_days: int
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
    #: the address of the metrics-only listener ("" for none) and its port
    metrics_host: str
    metrics_port: int
    token_file: Path
    presets: dict[str, ExportPreset]
    log_level: str
    log_dir: Path
    #: where the agent POSTs its alerts ("" for nowhere)
    alert_webhook_url: str
    alert_failures_threshold: int
    #: a hot standby of central_url that pulls read; "" for none
    central_read_url: str = ""
    #: the file it came from, None when that file does not exist (all defaults)
    source: Optional[Path] = None
    #: the file it is read from, absolute, also when it does not exist (yet): the one to
    #: name when telling the user which file to edit
    file: Optional[Path] = None

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


# --- value checks: each returns the clean value or raises ValueError(reason) ---------------
#
# Checks are small objects rather than closures so that a form can read their limits (a
# spin box's range, a combo box's choices) and the reference can describe them.


class Text:
    """A non-empty string (surrounding blanks dropped)."""

    kind = "text"

    def __call__(self, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("must be a non-empty string")
        return value.strip()

    def describe(self) -> str:
        return self.kind


class FilePath(Text):
    """A file or folder; a relative one is relative to the configuration file's folder."""

    kind = "path"


class OptionalText:
    """A string that may be empty, which means "none" (surrounding blanks dropped)."""

    kind = "text, may be empty"

    def __call__(self, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("must be a string (empty for none)")
        return value.strip()

    def describe(self) -> str:
        return self.kind


class WebhookUrl(OptionalText):
    """An http(s) URL to POST to, or empty for none. It may carry a secret (a password
    in its user info, a token in its path or query): the whole URL is one from the moment
    it is read."""

    kind = "URL, may be empty"

    def __call__(self, value: Any) -> str:
        url = super().__call__(value)
        if url and not url.lower().startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https:// (or be empty)")
        if url and not urlsplit(url).hostname:
            raise ValueError("must name a host")
        return url

    @staticmethod
    def register_secret(url: str) -> None:
        register_webhook_url(url)


class CentralUrl(Text):
    """A PostgreSQL URL, or ``sqlite:///PATH`` for an embedded central (a relative PATH is
    relative to the configuration file's folder, like every path of the file)."""

    kind = "URL"

    def __call__(self, value: Any) -> str:
        url = super().__call__(value)
        if not url.startswith(("postgresql://", "postgres://", "sqlite:///")):
            raise ValueError("must start with postgresql:// or sqlite:///")
        if url.startswith("sqlite:///") and not url[len("sqlite:///"):].strip():
            raise ValueError("must name the SpatiaLite file after sqlite:///")
        return url


class ReplicaUrl(CentralUrl):
    """A PostgreSQL URL, or an empty string for none."""

    def __call__(self, value: Any) -> str:
        if isinstance(value, str) and not value.strip():
            return ""
        url = super().__call__(value)
        if not url.startswith(("postgresql://", "postgres://")):
            raise ValueError("must start with postgresql:// (a read replica is a PostgreSQL "
                             "hot standby), or be empty")
        return url


class FileNameTemplate(Text):
    """An export preset's file name: known ``{placeholders}``, and no way out of the folder."""

    kind = "file name"

    def __call__(self, value: Any) -> str:
        template = super().__call__(value)
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
        # A file name, never a path: the output folder is the caller's choice, not the
        # preset's.
        if any(c in template for c in "/\\:\0") or not template.strip(". "):
            raise ValueError("must be a file name inside the output folder, not a path")
        return template


@dataclass(frozen=True)
class Whole:
    """A whole number from ``minimum`` to ``maximum``."""

    minimum: int
    maximum: int

    def __call__(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("must be a whole number")
        if not self.minimum <= value <= self.maximum:
            raise ValueError(f"must be between {self.minimum} and {self.maximum}")
        return value

    def describe(self) -> str:
        return f"whole number, {self.minimum} to {self.maximum}"


@dataclass(frozen=True)
class Choice:
    """One of ``choices`` (compared in upper case when ``upper``)."""

    choices: tuple[str, ...]
    upper: bool = False

    def __call__(self, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"must be one of {', '.join(self.choices)}")
        v = value.upper() if self.upper else value
        if v not in self.choices:
            raise ValueError(f"must be one of {', '.join(self.choices)}, not {value!r}")
        return v

    def describe(self) -> str:
        return "one of " + ", ".join(f"`{c}`" for c in self.choices)


@dataclass(frozen=True)
class Names:
    """A list of distinct names, at least one; ``"a,b"`` (how an environment override
    writes one) too. ``what`` is what each name names, for the refusal of an empty list."""

    what: str = "name"

    def __call__(self, value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [v for v in (p.strip() for p in value.split(",")) if v]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ValueError("must be a list of names")
        if not value:
            raise ValueError(f"must name at least one {self.what}")
        if len(set(value)) != len(value):
            raise ValueError("must not name the same entry twice")
        return tuple(value)

    def describe(self) -> str:
        return "list of names"


class Renames:
    """A table mapping field names to new names."""

    def __call__(self, value: Any) -> dict[str, str]:
        if not isinstance(value, dict) or not all(
                isinstance(v, str) and v for v in value.values()):
            raise ValueError("must map field names to new names")
        return dict(value)

    def describe(self) -> str:
        return "table of names"


# --- the declaration ----------------------------------------------------------------------


@dataclass(frozen=True)
class Computed:
    """A default that depends on the platform or on where the configuration file is."""

    make: Callable[[Path], Any]  # gets the configuration file's folder
    text: str  # how the reference describes it


def _is_placeholder(part: str) -> bool:
    """Whether ``part`` of a key (``<table>``) stands for any name the user chooses."""
    return part.startswith("<") and part.endswith(">")


@dataclass(frozen=True)
class Key:
    """One configuration key.

    ``name`` is the dotted key as the file spells it (``sync.interval_seconds``); a part
    in angle brackets (``sync.table_policy.<table>``) stands for a name of the user's.
    ``field`` is the :class:`Config` attribute it fills (for a preset's keys: the
    :class:`ExportPreset` attribute). ``live`` says whether a running agent applies a new
    value when it re-reads the file; the others need a restart.
    """

    name: str
    check: Callable[[Any], Any]
    default: Any
    help: str
    live: bool
    field: str
    required: bool = False
    #: may carry a password: known as a secret from the moment it is read
    secret: bool = False

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self.name.split("."))

    @property
    def section(self) -> str:
        return self.parts[0]

    @property
    def minimum(self) -> Optional[int]:
        return getattr(self.check, "minimum", None)

    @property
    def maximum(self) -> Optional[int]:
        return getattr(self.check, "maximum", None)

    @property
    def choices(self) -> tuple[str, ...]:
        return getattr(self.check, "choices", ())

    def default_for(self, base: Path) -> Any:
        """The value when the file and the environment leave the key out."""
        return self.default.make(base) if isinstance(self.default, Computed) else self.default

    def matches(self, dotted: str) -> bool:
        """Whether ``dotted`` (``sync.table_policy.parcels``) is this key."""
        pattern, parts = self.parts, tuple(dotted.split("."))
        holes = [i for i, p in enumerate(pattern) if _is_placeholder(p)]
        if not holes:
            return parts == pattern
        # a user's name may itself hold dots: match the fixed parts at both ends
        i = holes[0]
        tail = pattern[i + 1:]
        return (len(parts) >= len(pattern) and parts[:i] == pattern[:i]
                and parts[len(parts) - len(tail):] == tail)


def _data_file(name: str) -> Computed:
    return Computed(lambda _base: default_data_dir() / name,
                    f"`{name}` in the user data folder (`~/.local/share/terrafusion` on Linux)")


_PRESET = "export.presets.<name>"

KEYS: tuple[Key, ...] = (
    Key("central.url", CentralUrl(), Computed(
            lambda _base: f"sqlite:///{default_data_dir() / 'central.sqlite'}",
            "an embedded SpatiaLite `central.sqlite` in the user data folder"),
        "The central database: postgresql://user@host/database, a PostgreSQL service "
        "(postgresql:///?service=NAME) or a SpatiaLite file (sqlite:///PATH, a relative "
        "PATH being relative to this file's folder). Never a password: libpq finds it in "
        "its password file or the service.",
        live=True, field="central_url", secret=True),
    Key("central.read_url", ReplicaUrl(), "",
        "An optional streaming hot standby of the central database that pulls read from, "
        "as postgresql://user@host/database; pushes always go to central.url. A replica "
        "that is down or behind this copy is passed over for central.url. Only with a "
        "PostgreSQL central.",
        live=True, field="central_read_url", secret=True),
    Key("central.schema", Text(), "public",
        "The PostgreSQL schema of the synced tables and of the agent's bookkeeping.",
        live=True, field="central_schema"),
    Key("central.connect_timeout_seconds", Whole(1, 600), 10,
        "How long a connection to the central database may take before it counts as "
        "unreachable.",
        live=True, field="connect_timeout_seconds"),
    Key("central.statement_timeout_seconds", Whole(1, 86400), 600,
        "How long one statement on the central database may run before it is cancelled.",
        live=True, field="statement_timeout_seconds"),
    Key("central.retention_days", Whole(1, 3650), 30,
        "Change-log entries older than this many days are purged from the central "
        "database.",
        live=True, field="retention_days"),
    Key("central.history_retention_days", Whole(1, 36500), 3650,
        "The audit history (who changed which row when, and its values before and after) "
        "older than this many days is purged from the central database.",
        live=True, field="history_retention_days"),
    Key("local.path", FilePath(), _data_file("local.sqlite"),
        "The local SpatiaLite copy that QGIS edits.",
        live=False, field="local_path"),
    Key("local.busy_timeout_seconds", Whole(1, 3600), 30,
        "How long a write to the local copy waits while another program (QGIS saving an "
        "edit session) writes to it.",
        live=True, field="local_busy_timeout_seconds"),
    Key("sync.tables", Names("table"), DEFAULT_TABLES,
        "The tables kept in sync, by name; at least one.",
        live=True, field="tables"),
    Key("sync.interval_seconds", Whole(5, 7 * 86400), 300,
        "Seconds from one scheduled sync to the next.",
        live=True, field="interval_seconds"),
    Key("sync.conflict_policy", Choice(POLICIES), "manual",
        "What happens to a row changed on both sides: manual records a conflict for you "
        "to resolve, central_wins and local_wins keep that side's values.",
        live=True, field="conflict_policy"),
    Key("sync.table_policy.<table>", Choice(POLICIES), None,
        "The conflict policy of one table of sync.tables, instead of the general one.",
        live=True, field="table_policy"),
    Key("http.host", Text(), "127.0.0.1",
        "The address the agent's HTTP API listens on; keep 127.0.0.1 unless another "
        "machine must reach it.",
        live=False, field="http_host"),
    Key("http.port", Whole(0, 65535), 8765,
        "The port of the agent's HTTP API (health, metrics, the plugin's requests); 0 "
        "takes any free port.",
        live=False, field="http_port"),
    Key("http.metrics_host", OptionalText(), "",
        "An address for a second listener that serves only /metrics and /health/live, "
        "for a Prometheus on the network (0.0.0.0 for every address); empty: none. The "
        "API, which shows owner names, stays on http.host.",
        live=False, field="metrics_host"),
    Key("http.metrics_port", Whole(0, 65535), 9765,
        "The port of the metrics-only listener; 0 takes any free port.",
        live=False, field="metrics_port"),
    Key("http.token_file", FilePath(), Computed(
            lambda base: base / "token", "`token` beside the configuration file"),
        "The file holding the token every POST to the API must present; created on the "
        "first run.",
        live=False, field="token_file"),
    Key("logging.level", Choice(LOG_LEVELS, upper=True), "INFO",
        "The least important messages the log keeps: DEBUG, INFO, WARNING or ERROR.",
        live=True, field="log_level"),
    Key("logging.dir", FilePath(), Computed(
            lambda _base: default_log_dir(),
            "the user log folder (`~/.local/state/terrafusion/log` on Linux)"),
        "The folder of the agent's log, JSON lines, rotated.",
        live=False, field="log_dir"),
    Key("alerts.webhook_url", WebhookUrl(), "",
        "Where the agent POSTs a small JSON message when syncs fail several times in a "
        "row, when they work again after that, and when a sync finds new conflicts or "
        "rows central refused; empty: no alerts. It may carry a secret (user:password@, "
        "a token): it is masked like a password wherever it is shown.",
        live=True, field="alert_webhook_url", secret=True),
    Key("alerts.failures_threshold", Whole(1, 1000), 3,
        "How many syncs in a row must fail before the failure alert is sent (once per "
        "run of failures).",
        live=True, field="alert_failures_threshold"),
    Key(f"{_PRESET}.table", Text(), None,
        "The table the preset exports.",
        live=True, field="table", required=True),
    Key(f"{_PRESET}.format", Choice(EXPORT_FORMATS), None,
        "The file format: gpkg, geojson, shp, kml, csv or fgb.",
        live=True, field="format", required=True),
    Key(f"{_PRESET}.crs", Text(), None,
        "The coordinate reference system of the file, such as EPSG:4326; without it the "
        "table's (GeoJSON and KML: EPSG:4326).",
        live=True, field="crs"),
    Key(f"{_PRESET}.fields", Names("field"), None,
        "The fields the file holds, in this order; without it every field.",
        live=True, field="fields"),
    Key(f"{_PRESET}.renames", Renames(), None,
        "New names of fields in the file (field = \"new name\").",
        live=True, field="renames"),
    Key(f"{_PRESET}.where", Text(), None,
        "An SQLite filter on the table's fields: only the rows it keeps leave.",
        live=True, field="where"),
    Key(f"{_PRESET}.max_features", Whole(1, 2**31), None,
        "The most rows one export may hold; more is refused before anything is written.",
        live=True, field="max_features"),
    Key(f"{_PRESET}.filename", FileNameTemplate(), None,
        "The file's name, with {table}, {preset}, {format}, {date}, {time} or {datetime} "
        "in it; the export's output is then a folder.",
        live=True, field="filename"),
)

#: the keys a running agent cannot take from a re-read file: they need a restart
RESTART_KEYS = frozenset(k.name for k in KEYS if not k.live)

_BY_NAME = {k.name: k for k in KEYS}


def key(name: str) -> Key:
    """The declaration of ``name``: a key as declared (``sync.table_policy.<table>``) or
    as a file spells it (``sync.table_policy.parcels``). KeyError for an unknown key."""
    if name in _BY_NAME:
        return _BY_NAME[name]
    for k in KEYS:
        if k.matches(name):
            return k
    raise KeyError(name)


def needs_restart(name: str) -> bool:
    """Whether a running agent needs a restart to apply a new value of ``name`` (a
    dotted key as :func:`changed_keys` names it; a whole preset counts as live)."""
    if name.startswith("export.presets.") and not any(k.matches(name) for k in KEYS):
        # a whole preset, added or removed: as live as its keys
        return any(not k.live for k in KEYS if k.name.startswith(_PRESET + "."))
    return not key(name).live


def _tree() -> dict:
    """The keys as nested sections: {"sync": {"interval_seconds": Key, ...}, ...}."""
    root: dict = {}
    for k in KEYS:
        node = root
        for part in k.parts[:-1]:
            node = node.setdefault(part, {})
        node[k.parts[-1]] = k
    return root


_TREE = _tree()


# --- reading ---------------------------------------------------------------------------------


def _absolute(path: Path) -> Path:
    """``path`` made absolute against the current folder, ``..`` folded, links kept: a
    service started elsewhere, and every message, name the same file."""
    return Path(os.path.abspath(path))


def resolve_path(
    explicit: Optional[str | os.PathLike] = None, environ: Optional[dict[str, str]] = None
) -> tuple[Path, bool]:
    """Which config file to read (an absolute path), and whether the user named it (then
    it must exist)."""
    environ = os.environ if environ is None else environ
    named = explicit or environ.get(ENV_CONFIG)
    if named:
        return _absolute(Path(named).expanduser()), True
    return _absolute(default_config_path()), False


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


def env_name(dotted: str) -> str:
    """The environment variable that overrides the key ``dotted`` (``sync.tables``:
    ``TERRAFUSION_SYNC__TABLES``)."""
    return ENV_PREFIX + "__".join(p.upper() for p in dotted.split("."))


def _near(name: str, candidates: list[str]) -> Optional[str]:
    """The candidate ``name`` was most likely meant to be (a typo, a word left out)."""
    found = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return found[0] if found else None


def _fixed_keys() -> list[str]:
    return [k.name for k in KEYS if not any(_is_placeholder(p) for p in k.parts)]


def _env_suggestion(name: str) -> str:
    """`` (did you mean TERRAFUSION_...?)`` for an override that names no key, or ''."""
    by_suffix = {env_name(k.name)[len(ENV_PREFIX):]: env_name(k.name) for k in KEYS}
    near = _near(name[len(ENV_PREFIX):].upper(), list(by_suffix))
    return f" (did you mean {by_suffix[near]}?)" if near else ""


def _declared(parts: tuple[str, ...]) -> bool:
    """Whether ``parts`` name a key of the declaration (a placeholder takes any name)."""
    node: Any = _TREE
    for part in parts:
        if not isinstance(node, dict):
            return False
        if part in node and not _is_placeholder(part):
            node = node[part]
            continue
        hole = next((n for n in node if _is_placeholder(n)), None)
        if hole is None:
            return False
        node = node[hole]
    return isinstance(node, Key)


def _apply_env(data: dict, environ: dict[str, str]) -> dict[tuple[str, ...], str]:
    """Put the TERRAFUSION_* overrides into ``data``; answers which variable set which
    key, so that a refusal names the variable the user has to change."""
    origins: dict[tuple[str, ...], str] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in _NOT_SETTINGS:
            continue
        parts = tuple(p.lower() for p in name[len(ENV_PREFIX):].split("__"))
        if len(parts) < 2 or not all(parts):
            raise ConfigError(
                f"Environment variable {name} is not a TERRAFUSION_<SECTION>__<KEY> "
                f"override{_env_suggestion(name)}.")
        if not _declared(parts):
            raise ConfigError(f"Environment variable {name} names no configuration key"
                              f"{_env_suggestion(name)}.")
        target = data
        for part in parts[:-1]:
            nxt = target.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"Environment variable {name} does not name a setting.")
            target = nxt
        target[parts[-1]] = _parse_env_value(raw)
        origins[parts] = name
    return origins


@dataclass
class _Reading:
    """Where the values being checked come from: the file, and the overrides by key."""

    file: Path
    origins: dict[tuple[str, ...], str]

    def subject(self, path: tuple[str, ...]) -> str:
        """How a refusal names the culprit: the variable that set it, else the key."""
        dotted = ".".join(path)
        if path in self.origins:
            return f"Environment variable {self.origins[path]} ({dotted})"
        return f"Configuration key {dotted}"

    def unknown(self, where: tuple[str, ...], name: str, node: dict) -> ConfigError:
        """The refusal of ``name``, which the file has in ``where`` but the declaration
        does not: the file named, and the key most likely meant."""
        # a key put in the wrong section (the same name elsewhere), else a typo
        meant = next((k for k in _fixed_keys() if k.rsplit(".", 1)[-1] == name), None)
        if meant is None:
            near = _near(name, [n for n in node if not _is_placeholder(n)])
            meant = (".".join(where + (near,)) if near is not None
                     else _near(".".join(where + (name,)), _fixed_keys()))
        if meant is not None and "." not in meant:
            hint = f" (did you mean [{meant}]?)"
        else:
            hint = f" (did you mean {meant}?)" if meant else ""
        if not where:
            return ConfigError(f"Unknown configuration section [{name}] in {self.file}{hint}.")
        return ConfigError(f"Unknown configuration key {'.'.join(where + (name,))} in "
                           f"{self.file}{hint}.")


def _check(k: Key, path: tuple[str, ...], value: Any, reading: _Reading) -> Any:
    try:
        clean = k.check(value)
    except ValueError as exc:
        raise ConfigError(f"{reading.subject(path)} {exc}.") from None
    if k.secret:  # a secret from this moment on
        getattr(k.check, "register_secret", register_url_password)(clean)
    return clean


def _walk(data: dict, node: dict, where: tuple[str, ...], out: dict,
          reading: _Reading) -> None:
    """Check ``data`` against the declared ``node``; clean values go to ``out`` by path.

    Unknown names are refused before any value is checked, and values are checked in the
    declaration's order (central first: its URL may hold a password to mask from then on).
    """
    named = [n for n in node if not _is_placeholder(n)]
    hole = next((n for n in node if _is_placeholder(n)), None)
    for name in data:
        if name not in named and hole is None:
            raise reading.unknown(where, name, node)
    for declared in node:
        names = ([n for n in data if n not in named] if declared == hole
                 else [declared] if declared in data else [])
        for name in names:
            child, path, value = node[declared], where + (name,), data[name]
            if isinstance(child, Key):
                out[path] = _check(child, path, value, reading)
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"Configuration key {'.'.join(path)} must be a table.")
            _walk(value, child, path, out, reading)
            for part, sub in child.items():
                if isinstance(sub, Key) and sub.required and part not in value:
                    raise ConfigError(f"Configuration key {'.'.join(path + (part,))} "
                                      "is missing.")


def _path(value: str, base: Path) -> Path:
    p = Path(os.path.expandvars(value)).expanduser()
    return _absolute(p if p.is_absolute() else (base / p))


def _central_url(url: str, base: Path) -> str:
    """``url`` with the file of an embedded central made absolute: ``sqlite:///data/c.sqlite``
    is relative to the configuration file's folder, like every path of the file."""
    if not url.startswith("sqlite:///"):
        return url
    return f"sqlite:///{_path(url[len('sqlite:///'):], base)}"


def _build(values: dict[tuple[str, ...], Any], base: Path, source: Optional[Path],
           file: Path) -> Config:
    """The :class:`Config` of checked ``values``, defaults filling what they leave out."""
    kwargs: dict[str, Any] = {"table_policy": {}, "presets": {}}
    presets: dict[str, dict[str, Any]] = {}
    for path, value in values.items():
        if path[:2] == ("sync", "table_policy"):
            kwargs["table_policy"][path[2]] = value
        elif path[:2] == ("export", "presets"):
            presets.setdefault(path[2], {})[key(".".join(path)).field] = value
    for k in KEYS:
        if any(_is_placeholder(p) for p in k.parts):
            continue
        if k.parts in values:
            value = values[k.parts]
            kwargs[k.field] = _path(value, base) if isinstance(k.check, FilePath) else value
        else:
            kwargs[k.field] = k.default_for(base)
    kwargs["central_url"] = _central_url(kwargs["central_url"], base)
    kwargs["presets"] = {name: ExportPreset(name=name, **v) for name, v in presets.items()}
    if kwargs["central_read_url"] and kwargs["central_url"].startswith("sqlite:"):
        raise ConfigError("Configuration key central.read_url needs a PostgreSQL central.url: "
                          "an embedded SQLite central has no read replica.")
    return Config(**kwargs, source=source, file=file)


def load(
    path: Optional[str | os.PathLike] = None, environ: Optional[dict[str, str]] = None
) -> Config:
    """Read, merge and validate the configuration; raises ConfigError naming the bad key
    (or the environment variable that set it). Every path in it is absolute: a relative
    one in the file, or in an override, is relative to the file's folder."""
    environ = dict(os.environ if environ is None else environ)
    cfg_path, required = resolve_path(path, environ)
    data = _read_file(cfg_path, required)
    reading = _Reading(cfg_path, _apply_env(data, environ))
    values: dict[tuple[str, ...], Any] = {}
    _walk(data, _TREE, (), values, reading)
    config = _build(values, cfg_path.parent, cfg_path if cfg_path.exists() else None, cfg_path)
    _check_table_policies(config, reading)
    _check_listeners(config)
    return config


def _check_table_policies(config: Config, reading: _Reading) -> None:
    """A policy for a table that is not synced is a typo or a leftover: it would leave the
    table it was meant for on the general policy without a word."""
    for table in config.table_policy:
        if table in config.tables:
            continue
        near = _near(table, list(config.tables))
        hint = (f"did you mean {near}?" if near
                else f"it lists {', '.join(config.tables)}")
        raise ConfigError(f"{reading.subject(('sync', 'table_policy', table))} sets the "
                          f"policy of table {table}, which is not in sync.tables ({hint}).")


def _check_listeners(config: Config) -> None:
    """The metrics listener cannot share the API's address and port: one of the two
    would not start, or the API's routes would be where only metrics should be."""
    if (config.metrics_host and config.metrics_port and config.metrics_port == config.http_port
            and config.metrics_host == config.http_host):
        raise ConfigError(
            f"Configuration key http.metrics_port is {config.metrics_port}, the API's own "
            f"port on the same host {config.http_host}; give the metrics listener "
            "another port or another host.")


# --- comparing ---------------------------------------------------------------------------------


def changed_keys(old: Config, new: Config) -> list[str]:
    """The dotted keys whose values differ between ``old`` and ``new``, in the declaration's
    order; a table policy or a preset that only one side has is named whole
    (``sync.table_policy.parcels``, ``export.presets.public``)."""
    changed = []
    for k in KEYS:
        if k.field == "table_policy":
            for table in _union(old.table_policy, new.table_policy):
                if old.table_policy.get(table) != new.table_policy.get(table):
                    changed.append(f"sync.table_policy.{table}")
        elif k.section == "export":
            continue  # below, preset by preset
        elif getattr(old, k.field) != getattr(new, k.field):
            changed.append(k.name)
    preset_keys = [k for k in KEYS if k.section == "export"]
    for name in _union(old.presets, new.presets):
        before, after = old.presets.get(name), new.presets.get(name)
        if before is None or after is None:
            changed.append(f"export.presets.{name}")
            continue
        changed += [f"export.presets.{name}.{k.field}" for k in preset_keys
                    if getattr(before, k.field) != getattr(after, k.field)]
    return changed


def _union(a: dict, b: dict) -> list:
    return list(a) + [x for x in b if x not in a]

