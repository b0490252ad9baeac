"""Alembic environment: the agent hands over an open connection (see terrafusion_agent.migrate)."""

from alembic import context

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise SystemExit(
        "Run these migrations through terrafusion-agent (init-central, sync), "
        "which opens the database."
    )
context.configure(
    connection=connection,
    target_metadata=None,
    version_table=config.get_main_option("version_table") or "tf_schema_version",
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
