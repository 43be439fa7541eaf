"""trust policy and image integrity

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 09:02:45.406822
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "image_provenance",
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("revision", sa.String(length=256), nullable=True),
        sa.Column("created", sa.String(length=64), nullable=True),
        sa.Column("authors", sa.Text(), nullable=True),
        sa.Column("version", sa.String(length=256), nullable=True),
        sa.Column(
            "labels", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_image_provenance")),
    )
    op.create_table(
        "trust_rules",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("pattern", sa.String(length=512), nullable=False),
        sa.Column("mirror", sa.String(length=512), nullable=False),
        sa.Column("cluster", sa.String(length=253), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trust_rules")),
        sa.UniqueConstraint(
            "kind", "pattern", "mirror", "cluster", name=op.f("uq_trust_rules_kind_pattern_mirror_cluster")
        ),
    )
    op.create_table(
        "image_integrity",
        sa.Column("image_pk", sa.Integer(), nullable=False),
        sa.Column("cluster_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("verdict", sa.String(length=128), nullable=False),
        sa.Column(
            "evidence", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("registry_digest", sa.String(length=80), nullable=True),
        sa.Column("registry_digest_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("policy_revision", sa.String(length=32), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"], ["clusters.id"], name=op.f("fk_image_integrity_cluster_id_clusters"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["image_pk"], ["images.id"], name=op.f("fk_image_integrity_image_pk_images"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("image_pk", "cluster_id", name=op.f("pk_image_integrity")),
    )
    with op.batch_alter_table("image_integrity", schema=None) as batch_op:
        batch_op.create_index("ix_image_integrity_next_check", ["next_check_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("image_integrity", schema=None) as batch_op:
        batch_op.drop_index("ix_image_integrity_next_check")

    op.drop_table("image_integrity")
    op.drop_table("trust_rules")
    op.drop_table("image_provenance")
