"""signature requirements of the trust policy, and what each running digest's signatures prove

Revision ID: g0001
Revises: t0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "g0001"
down_revision = "t0001"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "signature_rules",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pattern", sa.String(length=512), nullable=False),
        sa.Column("cluster", sa.String(length=253), nullable=False),
        sa.Column("namespace", sa.String(length=253), nullable=False),
        sa.Column("requirement", Json, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signature_rules")),
        sa.UniqueConstraint("pattern", "cluster", "namespace", name="uq_signature_rules_place"),
    )
    op.create_table(
        "image_signatures",
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("material_revision", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("checks", Json, nullable=False),
        sa.Column("checked_at", Timestamp, nullable=False),
        sa.Column("next_check_at", Timestamp, nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_image_signatures")),
    )


def downgrade() -> None:
    op.drop_table("image_signatures")
    op.drop_table("signature_rules")
