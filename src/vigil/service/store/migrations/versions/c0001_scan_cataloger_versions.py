"""image_scans: the cataloger versions each scan ran

Revision ID: c0001
Revises: 0004

Scans stored before this revision have NULL here: nothing says which catalogers read them, so a
scanner counts them stale and catalogues each running image once more.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "c0001"
down_revision = "0004"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("image_scans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("catalogers", Json, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("image_scans", schema=None) as batch_op:
        batch_op.drop_column("catalogers")
