"""image_scans: whether part of the image could not be read

Revision ID: s0001
Revises: f0001

A scan that stopped reading a layer early (a corrupt tar header) lists less than the image holds;
its warnings say where. Scans stored before this revision are taken as complete.
"""

import sqlalchemy as sa
from alembic import op

revision = "s0001"
down_revision = "f0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("image_scans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("incomplete", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("image_scans", schema=None) as batch_op:
        batch_op.drop_column("incomplete")
