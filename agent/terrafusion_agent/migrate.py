"""Versioned schema migrations (Alembic) for the central and the local bookkeeping.

The revision scripts live in ``migrations/central`` and ``migrations/local`` at the top
of the repository; the plugin zip and wheels carry a copy inside this package.
SQLAlchemy and Alembic are imported here only, so they cost nothing elsewhere.
"""

from __future__ import annotations

import logging
from pathlib import Path

from terrafusion_agent.errors import TerraFusionError

log = logging.getLogger("terrafusion.migrate")
VERSION_TABLE = "tf_schema_version"


def script_dir(kind: str) -> Path:
    """Folder of the ``kind`` ("central" or "local") revision scripts."""
    here = Path(__file__).resolve().parent
    for base in (here / "migrations", here.parents[1] / "migrations"):
        if (base / kind / "env.py").exists():
            return base / kind
    raise TerraFusionError(f"The {kind} migration scripts are missing from this installation.")


def _upgrade(kind: str, engine) -> None:
    from alembic import command
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(script_dir(kind)))
    cfg.set_main_option("version_table", VERSION_TABLE)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")
    engine.dispose()


def _silence_alembic() -> None:
    logging.getLogger("alembic").setLevel(logging.WARNING)


def upgrade_central(store) -> None:
    """Bring the central bookkeeping tables to the newest revision."""
    import sqlalchemy

    _silence_alembic()
    if store.kind == "postgis":
        import psycopg

        def creator():
            return psycopg.connect(store.url, options=f"-c search_path={store.schema},public")

        engine = sqlalchemy.create_engine("postgresql+psycopg://", creator=creator)
    else:
        engine = sqlalchemy.create_engine(f"sqlite:///{store.path}")
    _upgrade("central", engine)


def upgrade_local(path: Path) -> None:
    """Bring the local bookkeeping tables to the newest revision."""
    import sqlalchemy

    _silence_alembic()
    _upgrade("local", sqlalchemy.create_engine(f"sqlite:///{path}"))
