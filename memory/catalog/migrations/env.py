"""Alembic environment for the MARC catalog.

MARC runs migrations itself (``Catalog.open`` upgrades to head), passing its connection in
``config.attributes["connection"]``. Developers can run
``alembic -c memory/catalog/alembic.ini revision --autogenerate`` (it reads ``MARC_DATABASE_URL``).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from marc.memory.catalog.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        from marc.memory.core.settings import Settings

        engine = create_engine(Settings().catalog_url)
        with engine.begin() as conn:
            _run(conn)
        return
    _run(connection)


def _run(connection) -> None:
    # render_as_batch: SQLite cannot ALTER most things; batch mode recreates tables instead.
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
