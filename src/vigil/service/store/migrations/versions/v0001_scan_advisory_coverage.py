"""image_scans: the advisory coverage of the last match

Revision ID: v0001
Revises: s0001

Per ecosystem the digest's packages needed: whether advisories were loaded, how many, as of when. A scan
matched against no advisories for an ecosystem is incomplete, not clean. NULL until the next match, which
every done scan without coverage gets.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "v0001"
down_revision = "s0001"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("image_scans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("coverage", Json, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("image_scans", schema=None) as batch_op:
        batch_op.drop_column("coverage")
