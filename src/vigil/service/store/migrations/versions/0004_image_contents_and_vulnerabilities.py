"""image contents (scan queue, files, packages) and vulnerabilities

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "image_scans",
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("platform", sa.String(length=64), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=128), nullable=True),
        sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("manifest_digest", sa.String(length=80), nullable=True),
        sa.Column("source", sa.String(length=1024), nullable=True),
        sa.Column("os", Json, nullable=True),
        sa.Column("file_count", sa.Integer(), nullable=True),
        sa.Column("package_count", sa.Integer(), nullable=True),
        sa.Column("warnings", Json, nullable=False),
        sa.Column("matched_revision", sa.String(length=64), nullable=True),
        sa.Column("matched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("match_warnings", Json, nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_image_scans")),
    )
    with op.batch_alter_table("image_scans", schema=None) as batch_op:
        batch_op.create_index("ix_image_scans_status", ["status", "enqueued_at"], unique=False)

    op.create_table(
        "image_files",
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("path", sa.String(length=2048), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("mode", sa.Integer(), nullable=True),
        sa.Column("target", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["digest"], ["image_scans.digest"], name=op.f("fk_image_files_digest_image_scans"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("digest", "path", name=op.f("pk_image_files")),
    )
    with op.batch_alter_table("image_files", schema=None) as batch_op:
        batch_op.create_index("ix_image_files_sha256", ["sha256"], unique=False)

    op.create_table(
        "image_packages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("version", sa.String(length=256), nullable=False),
        sa.Column("purl", sa.Text(), nullable=False),
        sa.Column("ecosystem", sa.String(length=64), nullable=True),
        sa.Column("cataloger", sa.String(length=32), nullable=False),
        sa.Column("found_in", sa.Text(), nullable=False),
        sa.Column("source_name", sa.String(length=512), nullable=True),
        sa.Column("source_version", sa.String(length=256), nullable=True),
        sa.Column("arch", sa.String(length=32), nullable=True),
        sa.Column("files", Json, nullable=False),
        sa.Column("details", Json, nullable=False),
        sa.ForeignKeyConstraint(
            ["digest"], ["image_scans.digest"], name=op.f("fk_image_packages_digest_image_scans"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image_packages")),
    )
    with op.batch_alter_table("image_packages", schema=None) as batch_op:
        batch_op.create_index("ix_image_packages_digest", ["digest", "type", "name"], unique=False)

    op.create_table(
        "image_vulnerabilities",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("package_id", sa.Integer(), nullable=False),
        sa.Column("vuln_id", sa.String(length=128), nullable=False),
        sa.Column("key_id", sa.String(length=128), nullable=False),
        sa.Column("advisory_ids", Json, nullable=False),
        sa.Column("aliases", Json, nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("severity_source", sa.String(length=32), nullable=True),
        sa.Column("fixed_versions", Json, nullable=False),
        sa.Column("malicious", sa.Boolean(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("links", Json, nullable=False),
        sa.ForeignKeyConstraint(
            ["digest"],
            ["image_scans.digest"],
            name=op.f("fk_image_vulnerabilities_digest_image_scans"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["package_id"],
            ["image_packages.id"],
            name=op.f("fk_image_vulnerabilities_package_id_image_packages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image_vulnerabilities")),
    )
    with op.batch_alter_table("image_vulnerabilities", schema=None) as batch_op:
        batch_op.create_index("ix_image_vulnerabilities_digest", ["digest", "package_id"], unique=False)


def downgrade() -> None:
    op.drop_table("image_vulnerabilities")
    op.drop_table("image_packages")
    op.drop_table("image_files")
    op.drop_table("image_scans")
