"""Alembic environment of the pgvector tables: runs on the connection zhiku passes in."""

from __future__ import annotations

from alembic import context

VERSION_TABLE = "zhiku_vectors_alembic_version"
"""Not Alembic's default ``alembic_version``: the metadata schema may live in the same database."""


def run() -> None:
    """Run the migrations on ``config.attributes["connection"]``."""
    connection = context.config.attributes["connection"]
    context.configure(connection=connection, target_metadata=None, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()


run()
