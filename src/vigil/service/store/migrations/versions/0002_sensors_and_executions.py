"""sensors and executions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 08:59:20.519074
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "executions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("cluster_id", sa.String(length=64), nullable=False),
        sa.Column("node_name", sa.String(length=253), nullable=False),
        sa.Column("container_id", sa.String(length=160), nullable=False),
        sa.Column("pod_uid", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column(
            "samples", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["cluster_id"], ["clusters.id"], name=op.f("fk_executions_cluster_id_clusters"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_executions")),
        sa.UniqueConstraint("cluster_id", "container_id", "kind", "sha256", "path", name="uq_executions_key"),
    )
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.create_index("ix_executions_container", ["cluster_id", "container_id"], unique=False)
        batch_op.create_index("ix_executions_sha256", ["sha256"], unique=False)

    op.create_table(
        "sensors",
        sa.Column("cluster_id", sa.String(length=64), nullable=False),
        sa.Column("node_name", sa.String(length=253), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("kernel", sa.String(length=256), nullable=False),
        sa.Column("btf", sa.Boolean(), nullable=False),
        sa.Column("events_seen", sa.BigInteger(), nullable=False),
        sa.Column("events_lost", sa.BigInteger(), nullable=False),
        sa.Column("events_filtered", sa.BigInteger(), nullable=False),
        sa.Column("batches_spooled", sa.BigInteger(), nullable=False),
        sa.Column("batches_dropped", sa.BigInteger(), nullable=False),
        sa.Column("records_dropped", sa.BigInteger(), nullable=False),
        sa.Column("interval_s", sa.Integer(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"], ["clusters.id"], name=op.f("fk_sensors_cluster_id_clusters"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("cluster_id", "node_name", name=op.f("pk_sensors")),
    )


def downgrade() -> None:
    op.drop_table("sensors")
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_index("ix_executions_sha256")
        batch_op.drop_index("ix_executions_container")

    op.drop_table("executions")
