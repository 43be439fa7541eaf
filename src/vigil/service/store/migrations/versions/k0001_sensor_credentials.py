"""sensor credentials: a token may be bound to one node of its cluster

Revision ID: k0001
Revises: u0001
"""

import sqlalchemy as sa
from alembic import op

revision = "k0001"
down_revision = "u0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Roles are plain strings, so the new kinds (enrolment, sensor) need no schema change of their own.
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("node_name", sa.String(length=253), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("node_name")
