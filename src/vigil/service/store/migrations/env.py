"""Alembic environment: the engine comes from vigil.service.store.db, never from a config file."""

from alembic import context

from vigil.service.store.schema import metadata

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    context.run_migrations()
