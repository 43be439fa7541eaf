"""runtime analysis: pending records, digest state, suspicious-exec allow-list, vulnerability runtime state

Revision ID: r0001
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "r0001"
down_revision = "0004"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "runtime_pending",
        sa.Column("execution_id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("queued_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["executions.id"],
            name=op.f("fk_runtime_pending_execution_id_executions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("execution_id", name=op.f("pk_runtime_pending")),
    )
    op.create_table(
        "runtime_digest_state",
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("scan_finished_at", Timestamp, nullable=True),
        sa.Column("matched_revision", sa.String(length=64), nullable=True),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_runtime_digest_state")),
    )
    op.create_table(
        "runtime_allow",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("cluster", sa.String(length=253), nullable=False),
        sa.Column("namespace", sa.String(length=63), nullable=False),
        sa.Column("workload", sa.String(length=253), nullable=False),
        sa.Column("labels", Json, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runtime_allow")),
    )
    op.create_table(
        "vulnerability_runtime",
        sa.Column("finding_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("watched_since", Timestamp, nullable=True),
        sa.Column("running_finding_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["finding_id"],
            ["findings.id"],
            name=op.f("fk_vulnerability_runtime_finding_id_findings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("finding_id", name=op.f("pk_vulnerability_runtime")),
    )
    op.create_index("ix_vulnerability_runtime_state", "vulnerability_runtime", ["state"], unique=False)
    op.create_index("ix_finding_events_at", "finding_events", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_finding_events_at", table_name="finding_events")
    op.drop_index("ix_vulnerability_runtime_state", table_name="vulnerability_runtime")
    op.drop_table("vulnerability_runtime")
    op.drop_table("runtime_allow")
    op.drop_table("runtime_digest_state")
    op.drop_table("runtime_pending")
