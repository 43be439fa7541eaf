"""runtime activities: file accesses and kernel operations per container, their analysis queue, rule
severities set by admins and the history of rule changes

Revision ID: t0001
Revises: e0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "t0001"
down_revision = "e0001"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "runtime_activities",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("cluster_id", sa.String(length=64), nullable=False),
        sa.Column("node_name", sa.String(length=253), nullable=False),
        sa.Column("container_id", sa.String(length=160), nullable=False),
        sa.Column("pod_uid", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("upper_layer", sa.Boolean(), nullable=True),
        sa.Column("detail", Json, nullable=False),
        sa.Column("first_seen_at", Timestamp, nullable=False),
        sa.Column("last_seen_at", Timestamp, nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("samples", Json, nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"], ["clusters.id"], name=op.f("fk_runtime_activities_cluster_id_clusters"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runtime_activities")),
        sa.UniqueConstraint("cluster_id", "container_id", "kind", "target", name="uq_runtime_activities_key"),
    )
    op.create_index("ix_runtime_activities_container", "runtime_activities", ["cluster_id", "container_id"])
    op.create_table(
        "runtime_activity_pending",
        sa.Column("activity_id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("queued_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["activity_id"],
            ["runtime_activities.id"],
            name=op.f("fk_runtime_activity_pending_activity_id_runtime_activities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("activity_id", name=op.f("pk_runtime_activity_pending")),
    )
    op.create_table(
        "runtime_rule_settings",
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("rule", name=op.f("pk_runtime_rule_settings")),
    )
    op.create_table(
        "runtime_rule_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("change", sa.Text(), nullable=False),
        sa.Column("at", Timestamp, nullable=False),
        sa.Column("by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runtime_rule_changes")),
    )
    op.create_index("ix_runtime_rule_changes_rule", "runtime_rule_changes", ["rule"])


def downgrade() -> None:
    op.drop_index("ix_runtime_rule_changes_rule", table_name="runtime_rule_changes")
    op.drop_table("runtime_rule_changes")
    op.drop_table("runtime_rule_settings")
    op.drop_table("runtime_activity_pending")
    op.drop_index("ix_runtime_activities_container", table_name="runtime_activities")
    op.drop_table("runtime_activities")
