"""Start-time sources renamed (container|name|folder+name|mtime); partial recordings.

``videos.recorded_at_source`` said ``metadata`` or ``filename``: those rows now say
``container`` and ``name`` (``mtime`` stays). ``videos.declared_duration_s`` is the container's
duration of a recording that decoded only in part (``NULL`` for a whole one).

Revision ID: 0003
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None

_RENAMED = {"metadata": "container", "filename": "name"}


def upgrade() -> None:
    with op.batch_alter_table("videos") as batch:
        batch.add_column(sa.Column("declared_duration_s", sa.Float(), nullable=True))
    videos = sa.table("videos", sa.column("recorded_at_source", sa.String(16)))
    for old, new in _RENAMED.items():
        op.execute(
            videos.update().where(videos.c.recorded_at_source == old).values(recorded_at_source=new)
        )


def downgrade() -> None:
    videos = sa.table("videos", sa.column("recorded_at_source", sa.String(16)))
    for old, new in _RENAMED.items():
        op.execute(
            videos.update().where(videos.c.recorded_at_source == new).values(recorded_at_source=old)
        )
    op.execute(
        videos.update()
        .where(videos.c.recorded_at_source == "folder+name")
        .values(recorded_at_source="filename")
    )
    with op.batch_alter_table("videos") as batch:
        batch.drop_column("declared_duration_s")
