"""image_scans: the files the scan's catalogers could not read

Revision ID: y0001
Revises: v0001

A package database in a format Vigil does not read, or a file its parser failed on, is a warning and
a path in this list: the image's packages from it are missing. NULL for scans stored before.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "y0001"
down_revision = "v0001"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("image_scans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("unread_files", Json, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("image_scans", schema=None) as batch_op:
        batch_op.drop_column("unread_files")
