"""The fleet view: each agent's heartbeat says how its syncs go, and ``tf_fleet`` shows
every agent with a flag for those that are stale.

Revision ID: c0005
Revises: c0004
Create Date: 2026-12-08

``tf_agents`` gains what an agent reports in its heartbeat besides who and where it is:
its sync interval, when its last sync succeeded, how its last sync ended, how many
failed in a row since, and its pending edits, open conflicts and rows central refused
(figures of its local copy when the heartbeat was written). Every new column is
nullable: an agent of an earlier version keeps writing only the columns it knows.

``tf_fleet`` shows one row per agent with those figures (timestamps as timestamps on
PostgreSQL) and ``stale``: true when the agent has not written its heartbeat, or has not
finished a sync successfully, for longer than ``stale_after_seconds``, which is three of
its own intervals plus the heartbeat's period (the heartbeat is written at most every
300 s, so an agent syncing every minute is seen only every five). An agent of an earlier
version reports no interval: it counts as syncing every 300 s (the default), and only
its heartbeat's age can make it stale, since it reports no success. An agent that never
succeeded counts from when it registered.

The view carries no owner names, no data and no paths (``local_path`` can name an
analyst's home folder): on PostgreSQL every role may read it (``GRANT SELECT ... TO
PUBLIC``), so ``terrafusion-agent fleet`` and Grafana's data source need only a login
(and USAGE on the schema, which ``public`` grants everyone). The view reads ``tf_agents``
with its owner's rights: a reader needs no privilege on the table.
"""

from alembic import op

revision = "c0005"
down_revision = "c0004"
branch_labels = None
depends_on = None

#: how many of its own intervals an agent may miss before it counts as stale
STALE_INTERVALS = 3
#: the longest the agent waits between two heartbeats, seconds
HEARTBEAT_SECONDS = 300
#: the interval of an agent that does not report one (the default interval)
DEFAULT_INTERVAL = 300

_COLUMNS = (("interval_seconds", "integer", "INTEGER"),
            ("last_success_at", "text", "TEXT"),
            ("last_result", "text", "TEXT"),
            ("consecutive_failures", "integer", "INTEGER"),
            ("pending", "bigint", "INTEGER"),
            ("open_conflicts", "bigint", "INTEGER"),
            ("rejected", "bigint", "INTEGER"))

_ALLOWED = f"{STALE_INTERVALS} * coalesce(interval_seconds, {DEFAULT_INTERVAL}) " \
           f"+ {HEARTBEAT_SECONDS}"

_POSTGRESQL_VIEW = f"""
    CREATE VIEW tf_fleet AS
    SELECT agent_id, hostname, version,
           registered_at::timestamptz AS registered_at,
           last_seen_at::timestamptz AS last_seen_at,
           interval_seconds,
           last_success_at::timestamptz AS last_success_at,
           last_result, consecutive_failures, pending, open_conflicts, rejected,
           {_ALLOWED} AS stale_after_seconds,
           (now() - last_seen_at::timestamptz > make_interval(secs => {_ALLOWED})
            OR (interval_seconds IS NOT NULL
                AND now() - coalesce(last_success_at, registered_at)::timestamptz
                    > make_interval(secs => {_ALLOWED}))) AS stale
    FROM tf_agents"""

# julianday() reads the agent's ISO 8601 text, its 'Z' and its milliseconds included
_SQLITE_VIEW = f"""
    CREATE VIEW tf_fleet AS
    SELECT agent_id, hostname, version, registered_at, last_seen_at, interval_seconds,
           last_success_at, last_result, consecutive_failures, pending, open_conflicts,
           rejected,
           {_ALLOWED} AS stale_after_seconds,
           ((julianday('now') - julianday(last_seen_at)) * 86400.0 > {_ALLOWED}
            OR (interval_seconds IS NOT NULL
                AND (julianday('now') - julianday(coalesce(last_success_at, registered_at)))
                    * 86400.0 > {_ALLOWED})) AS stale
    FROM tf_agents"""


def upgrade() -> None:
    bind = op.get_bind()
    raw = bind.connection.driver_connection
    if bind.dialect.name == "postgresql":
        raw.execute("ALTER TABLE tf_agents " + ", ".join(
            f"ADD COLUMN {name} {pg_type}" for name, pg_type, _ in _COLUMNS))
        raw.execute(_POSTGRESQL_VIEW)
        raw.execute("GRANT SELECT ON tf_fleet TO PUBLIC")
    else:
        for name, _, sqlite_type in _COLUMNS:
            raw.execute(f"ALTER TABLE tf_agents ADD COLUMN {name} {sqlite_type}")
        raw.execute(_SQLITE_VIEW)


def downgrade() -> None:
    bind = op.get_bind()
    raw = bind.connection.driver_connection
    raw.execute("DROP VIEW tf_fleet")
    if bind.dialect.name == "postgresql":
        raw.execute("ALTER TABLE tf_agents " + ", ".join(
            f"DROP COLUMN {name}" for name, _, _ in _COLUMNS))
    else:
        for name, _, _ in _COLUMNS:
            raw.execute(f"ALTER TABLE tf_agents DROP COLUMN {name}")
