"""A running agent re-reads its configuration (``POST /api/v1/config/reload``, SIGHUP).

Most settings are read afresh by each sync, export or health check, and so apply from the
next one on. A few are bound when the agent starts: the address it listens on, the local
copy it locks, the token it checks, the folder it logs to. Those keep their old value
until a restart, and the answer says which of them changed in the file.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from terrafusion_agent import config as config_mod
from terrafusion_agent.config import Config


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
    """How ``loaded`` (just read) differs from ``running``, by configuration key; which
    keys apply live is declared with each key in :mod:`terrafusion_agent.config`."""
    changed, restart, kept = [], [], {}
    for name in config_mod.changed_keys(running, loaded):
        if config_mod.needs_restart(name):
            restart.append(name)
            field = config_mod.key(name).field
            kept[field] = getattr(running, field)
        else:
            changed.append(name)
    return Reload(replace(loaded, **kept), sorted(changed), sorted(restart))
