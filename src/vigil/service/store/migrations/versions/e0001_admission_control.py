"""admission control: the enforcement policy with its history, and the webhooks' decisions

Revision ID: e0001
Revises: v0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "e0001"
down_revision = "v0001"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "enforcement_policy_revisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("revision", sa.String(length=64), nullable=False),
        sa.Column("document", Json, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enforcement_policy_revisions")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "admission_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("cluster_id", sa.String(length=64), nullable=False),
        sa.Column("uid", sa.String(length=128), nullable=False),
        sa.Column("at", Timestamp, nullable=False),
        sa.Column("operation", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=63), nullable=False),
        sa.Column("namespace", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("user", sa.String(length=253), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("record", Json, nullable=False),
        sa.Column("received_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"],
            ["clusters.id"],
            name=op.f("fk_admission_decisions_cluster_id_clusters"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admission_decisions")),
        sa.UniqueConstraint("cluster_id", "uid", name=op.f("uq_admission_decisions_cluster_id_uid")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_admission_decisions_filter", "admission_decisions", ["cluster_id", "namespace", "outcome"])


def downgrade() -> None:
    op.drop_index("ix_admission_decisions_filter", table_name="admission_decisions")
    op.drop_table("admission_decisions")
    op.drop_table("enforcement_policy_revisions")
