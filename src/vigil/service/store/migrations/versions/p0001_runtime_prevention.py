"""runtime prevention: the deny list of file sha256s with its history, what sensors prevented per container,
the policy revision each sensor enforces, and when each cluster's inventory last changed

Revision ID: p0001
Revises: t0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "p0001"
down_revision = "t0001"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "deny_list",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("added_by", sa.String(length=128), nullable=False),
        sa.Column("added_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_deny_list")),
    )
    op.create_table(
        "deny_list_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("change", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", Timestamp, nullable=False),
        sa.Column("by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deny_list_changes")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "preventions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("cluster_id", sa.String(length=64), nullable=False),
        sa.Column("node_name", sa.String(length=253), nullable=False),
        sa.Column("container_id", sa.String(length=160), nullable=False),
        sa.Column("pod_uid", sa.String(length=64), nullable=True),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("operation", sa.String(length=32), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("killed", sa.Boolean(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("upper_layer", sa.Boolean(), nullable=True),
        sa.Column("policy_revision", sa.String(length=64), nullable=False),
        sa.Column("first_seen_at", Timestamp, nullable=False),
        sa.Column("last_seen_at", Timestamp, nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("samples", Json, nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"], ["clusters.id"], name=op.f("fk_preventions_cluster_id_clusters"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_preventions")),
        sa.UniqueConstraint(
            "cluster_id", "container_id", "rule", "mode", "operation", "path", name="uq_preventions_key"
        ),
    )
    op.create_index("ix_preventions_container", "preventions", ["cluster_id", "container_id"])
    with op.batch_alter_table("sensors") as batch:
        batch.add_column(sa.Column("policy_revision", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("enforcement_error", sa.Text(), nullable=True))
    with op.batch_alter_table("clusters") as batch:
        batch.add_column(sa.Column("inventory_changed_at", Timestamp, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clusters") as batch:
        batch.drop_column("inventory_changed_at")
    with op.batch_alter_table("sensors") as batch:
        batch.drop_column("enforcement_error")
        batch.drop_column("policy_revision")
    op.drop_index("ix_preventions_container", table_name="preventions")
    op.drop_table("preventions")
    op.drop_table("deny_list_changes")
    op.drop_table("deny_list")
