"""A running agent re-reads its configuration (``POST /api/v1/config/reload``, SIGHUP).

Most settings are read afresh by each sync, export or health check, and so apply from the
next one on. A few are bound when the agent starts: the address it listens on, the local
copy it locks, the token it checks, the folder it logs to. Those keep their old value
until a restart, and the answer says which of them changed in the file.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from terrafusion_agent.config import Config

#: each Config field under the name the configuration file gives it
KEYS: dict[str, str] = {
    "central_url": "central.url",
    "central_schema": "central.schema",
    "connect_timeout_seconds": "central.connect_timeout_seconds",
    "statement_timeout_seconds": "central.statement_timeout_seconds",
    "retention_days": "central.retention_days",
    "local_path": "local.path",
    "local_busy_timeout_seconds": "local.busy_timeout_seconds",
    "tables": "sync.tables",
    "interval_seconds": "sync.interval_seconds",
    "conflict_policy": "sync.conflict_policy",
    "table_policy": "sync.table_policy",
    "http_host": "http.host",
    "http_port": "http.port",
    "token_file": "http.token_file",
    "presets": "export.presets",
    "log_level": "logging.level",
    "log_dir": "logging.dir",
}
#: settings the agent binds at start (fields not in KEYS are counted among them too)
RESTART_REQUIRED = frozenset({"local.path", "http.host", "http.port", "http.token_file",
                              "logging.dir"})
#: not a setting: which file the configuration came from
_NOT_SETTINGS = frozenset({"source"})


@dataclass(frozen=True)
class Reload:
    """What a re-read configuration changes for a running agent."""

    #: the configuration to run with: the new one, less what needs a restart
    config: Config
    #: keys that changed and apply now
    changed: list[str]
    #: keys that changed in the file but keep their running value until a restart
    restart_required: list[str]


def compare(running: Config, loaded: Config) -> Reload:
    """How ``loaded`` (just read) differs from ``running``, by configuration key."""
    changed, restart, kept = [], [], {}
    for f in fields(Config):
        if f.name in _NOT_SETTINGS or getattr(running, f.name) == getattr(loaded, f.name):
            continue
        key = KEYS.get(f.name, f.name)
        if key in RESTART_REQUIRED or f.name not in KEYS:
            restart.append(key)
            kept[f.name] = getattr(running, f.name)
        else:
            changed.append(key)
    return Reload(replace(loaded, **kept), sorted(changed), sorted(restart))
