"""job leases (which replica runs each background job) and the indexes retention deletes by

Revision ID: l0001
Revises: t0001
"""

import sqlalchemy as sa
from alembic import op

revision = "l0001"
down_revision = "t0001"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)

# (index, table, columns): retention finds what is past its period by these, batch after batch.
RETENTION_INDEXES = [
    ("ix_executions_last_seen_at", "executions", ["last_seen_at"]),
    ("ix_runtime_activities_last_seen_at", "runtime_activities", ["last_seen_at"]),
    ("ix_admission_decisions_received_at", "admission_decisions", ["received_at"]),
    ("ix_ingest_batches_received_at", "ingest_batches", ["received_at"]),
    ("ix_findings_status_status_changed_at", "findings", ["status", "status_changed_at"]),
]


def upgrade() -> None:
    op.create_table(
        "job_leases",
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("acquired_at", Timestamp, nullable=False),
        sa.Column("expires_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("job", name=op.f("pk_job_leases")),
    )
    for name, table, columns in RETENTION_INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(RETENTION_INDEXES):
        op.drop_index(name, table_name=table)
    op.drop_table("job_leases")
