"""alert outputs, their cursors in the finding history, and dead letters

Revision ID: a0001
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "a0001"
down_revision = "0003"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "alert_outputs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("threshold", sa.String(length=16), nullable=False),
        sa.Column("events", Json, nullable=False),
        sa.Column("config", Json, nullable=False),
        sa.Column("secrets", Json, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_outputs")),
        sa.UniqueConstraint("name", name=op.f("uq_alert_outputs_name")),
    )
    op.create_table(
        "alert_cursors",
        sa.Column("output_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("done", Json, nullable=False),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["output_id"],
            ["alert_outputs.id"],
            name=op.f("fk_alert_cursors_output_id_alert_outputs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("output_id", name=op.f("pk_alert_cursors")),
    )
    op.create_table(
        "alert_dead_letters",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("output_id", sa.Integer(), nullable=True),
        sa.Column("output_name", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("finding_id", sa.Integer(), nullable=True),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("payload", Json, nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["output_id"],
            ["alert_outputs.id"],
            name=op.f("fk_alert_dead_letters_output_id_alert_outputs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_dead_letters")),
    )
    with op.batch_alter_table("alert_dead_letters", schema=None) as batch_op:
        batch_op.create_index("ix_alert_dead_letters_output", ["output_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("alert_dead_letters", schema=None) as batch_op:
        batch_op.drop_index("ix_alert_dead_letters_output")
    op.drop_table("alert_dead_letters")
    op.drop_table("alert_cursors")
    op.drop_table("alert_outputs")
