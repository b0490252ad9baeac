"""Versioned schema migrations (Alembic) for the central and the local bookkeeping.

The revision scripts live inside this package, in ``migrations/central`` and
``migrations/local``, so a wheel or the plugin zip carries them wherever the agent goes.
SQLAlchemy and Alembic are imported here only, so they cost nothing elsewhere.
"""

from __future__ import annotations

import ast
import functools
import logging
import re
import sqlite3
from pathlib import Path
from typing import Optional

from terrafusion_agent.errors import CentralUnavailable, TerraFusionError

log = logging.getLogger("terrafusion.migrate")
VERSION_TABLE = "tf_schema_version"


def script_dir(kind: str) -> Path:
    """Folder of the ``kind`` ("central" or "local") revision scripts."""
    folder = Path(__file__).resolve().parent / "migrations" / kind
    if (folder / "env.py").is_file():
        return folder
    raise TerraFusionError(f"The {kind} migration scripts are missing from this installation.")


def heads(kind: str) -> set[str]:
    """The newest revision(s) of ``kind``, read from the scripts without Alembic (which
    costs half a second to import: too much for every CLI call)."""
    return set(_heads(kind))


@functools.cache
def _heads(kind: str) -> frozenset[str]:
    # the scripts are part of the installed code: read once per process, not at every
    # opening of the local copy (a running agent opens it a few times per sync)
    revisions, parents = set(), set()
    for path in (script_dir(kind) / "versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        rev = re.search(r"^revision\s*=\s*(.+)$", text, re.MULTILINE)
        down = re.search(r"^down_revision\s*=\s*(.+)$", text, re.MULTILINE)
        if rev:
            revisions.add(ast.literal_eval(rev.group(1).strip()))
        if down:
            value = ast.literal_eval(down.group(1).strip())
            parents.update([value] if isinstance(value, str) else (value or ()))
    return frozenset(revisions - parents)


def is_current(kind: str, conn: sqlite3.Connection) -> bool:
    """True when an SQLite database's bookkeeping is at the newest revision."""
    try:
        have = {r[0] for r in conn.execute(f"SELECT version_num FROM {VERSION_TABLE}")}
    except sqlite3.OperationalError:
        return False
    return have == heads(kind)


def _upgrade(kind: str, engine, setup: Optional[tuple[str, tuple]] = None) -> None:
    from alembic import command
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(script_dir(kind)))
    cfg.set_main_option("version_table", VERSION_TABLE)
    try:
        with engine.begin() as connection:
            if setup is not None:
                connection.exec_driver_sql(*setup)
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")
    finally:
        # also after a failure: a pooled connection would keep the file open, and a
        # failed init-central removes a central file it made
        engine.dispose()


def _silence_alembic() -> None:
    logging.getLogger("alembic").setLevel(logging.WARNING)


def upgrade_central(store) -> None:
    """Bring the central bookkeeping tables to the newest revision."""
    import sqlalchemy

    _silence_alembic()
    if store.kind == "postgis":
        import psycopg

        from terrafusion_agent.sql import quote_ident

        def creator():
            # no startup options and no server-side prepared statements: the same
            # connection works through a pooler in transaction mode (PgBouncer)
            return psycopg.connect(store.url, application_name="terrafusion-agent",
                                   prepare_threshold=None)

        engine = sqlalchemy.create_engine("postgresql+psycopg://", creator=creator)
        # the migrations run in one transaction: the schema is theirs until it commits
        setup: Optional[tuple[str, tuple]] = (
            "SELECT set_config('search_path', %s, true)",
            (f"{quote_ident(store.schema)}, public",))
    else:
        engine = sqlalchemy.create_engine(f"sqlite:///{store.path}")
        setup = None
    try:
        _upgrade("central", engine, setup)
    except sqlalchemy.exc.DBAPIError as exc:
        # Alembic works through SQLAlchemy, which wraps the driver's error
        reason = str(exc.orig or exc).strip().splitlines()[0].rstrip(".")
        raise CentralUnavailable(f"The bookkeeping of the central database "
                                 f"{store.describe()} cannot be created or upgraded: "
                                 f"{reason}.") from None


def upgrade_local(path: Path) -> None:
    """Bring the local bookkeeping tables to the newest revision."""
    import sqlalchemy

    _silence_alembic()
    _upgrade("local", sqlalchemy.create_engine(f"sqlite:///{path}"))
