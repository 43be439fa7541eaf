"""client certificates: which certificates the service's CA issued to which credential

Revision ID: m0001
Revises: u0001
"""

import sqlalchemy as sa
from alembic import op

revision = "m0001"
down_revision = "u0001"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "client_certificates",
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("token_id", sa.String(length=32), nullable=False),
        sa.Column("serial", sa.String(length=40), nullable=False),
        sa.Column("issued_at", Timestamp, nullable=False),
        sa.Column("not_after", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["token_id"],
            ["api_tokens.id"],
            name=op.f("fk_client_certificates_token_id_api_tokens"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("fingerprint", name=op.f("pk_client_certificates")),
    )
    op.create_index(op.f("ix_client_certificates_token_id"), "client_certificates", ["token_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_client_certificates_token_id"), table_name="client_certificates")
    op.drop_table("client_certificates")
