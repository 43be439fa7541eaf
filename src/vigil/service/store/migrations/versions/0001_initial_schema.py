"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-27 08:43:29.264470
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "clusters",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("controller_heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("controller_interval_s", sa.Integer(), nullable=True),
        sa.Column("controller_version", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clusters")),
        sa.UniqueConstraint("name", name=op.f("uq_clusters_name")),
    )
    op.create_table(
        "images",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("registry", sa.String(length=255), nullable=False),
        sa.Column("repository", sa.String(length=255), nullable=False),
        sa.Column("tag", sa.String(length=128), nullable=False),
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
        sa.UniqueConstraint(
            "registry", "repository", "tag", "digest", name=op.f("uq_images_registry_repository_tag_digest")
        ),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("cluster_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("max_uses", sa.Integer(), nullable=True),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"], ["clusters.id"], name=op.f("fk_api_tokens_cluster_id_clusters"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "containers",
        sa.Column("cluster_id", sa.String(length=64), nullable=False),
        sa.Column("pod_uid", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("container_id", sa.String(length=160), nullable=True),
        sa.Column("image", sa.String(length=1024), nullable=False),
        sa.Column("image_id", sa.String(length=1024), nullable=False),
        sa.Column("image_digest", sa.String(length=80), nullable=True),
        sa.Column("image_pk", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("restart_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["image_pk"], ["images.id"], name=op.f("fk_containers_image_pk_images")),
        sa.PrimaryKeyConstraint("cluster_id", "pod_uid", "kind", "name", name=op.f("pk_containers")),
    )
    with op.batch_alter_table("containers", schema=None) as batch_op:
        batch_op.create_index("ix_containers_container_id", ["container_id"], unique=False)
        batch_op.create_index("ix_containers_image_pk", ["image_pk"], unique=False)

    op.create_table(
        "findings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dedup_key", sa.String(length=512), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=1024), nullable=False),
        sa.Column("cluster_id", sa.String(length=64), nullable=True),
        sa.Column("namespace", sa.String(length=63), nullable=True),
        sa.Column("workload_kind", sa.String(length=63), nullable=True),
        sa.Column("workload_name", sa.String(length=253), nullable=True),
        sa.Column("image_pk", sa.Integer(), nullable=True),
        sa.Column(
            "evidence", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"], ["clusters.id"], name=op.f("fk_findings_cluster_id_clusters"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["image_pk"], ["images.id"], name=op.f("fk_findings_image_pk_images")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_findings")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_findings_dedup_key")),
    )
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.create_index("ix_findings_cluster", ["cluster_id", "namespace"], unique=False)
        batch_op.create_index("ix_findings_filter", ["status", "severity", "type"], unique=False)

    op.create_table(
        "ingest_batches",
        sa.Column("cluster_id", sa.String(length=64), nullable=False),
        sa.Column("batch_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"], ["clusters.id"], name=op.f("fk_ingest_batches_cluster_id_clusters"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("cluster_id", "batch_id", name=op.f("pk_ingest_batches")),
    )
    op.create_table(
        "nodes",
        sa.Column("cluster_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column(
            "labels", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("kernel_version", sa.String(length=256), nullable=False),
        sa.Column("os_image", sa.String(length=256), nullable=False),
        sa.Column("container_runtime", sa.String(length=256), nullable=False),
        sa.Column("architecture", sa.String(length=64), nullable=False),
        sa.Column("kubelet_version", sa.String(length=64), nullable=False),
        sa.Column(
            "conditions", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("sensor_disabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"], ["clusters.id"], name=op.f("fk_nodes_cluster_id_clusters"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("cluster_id", "name", name=op.f("pk_nodes")),
    )
    op.create_table(
        "pods",
        sa.Column("cluster_id", sa.String(length=64), nullable=False),
        sa.Column("uid", sa.String(length=64), nullable=False),
        sa.Column("namespace", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("node_name", sa.String(length=253), nullable=True),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("service_account", sa.String(length=253), nullable=False),
        sa.Column("workload_kind", sa.String(length=63), nullable=False),
        sa.Column("workload_name", sa.String(length=253), nullable=False),
        sa.Column(
            "labels", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("privileged", sa.Boolean(), nullable=False),
        sa.Column("host_pid", sa.Boolean(), nullable=False),
        sa.Column("host_network", sa.Boolean(), nullable=False),
        sa.Column("host_ipc", sa.Boolean(), nullable=False),
        sa.Column("run_as_non_root", sa.Boolean(), nullable=True),
        sa.Column("run_as_user", sa.Integer(), nullable=True),
        sa.Column(
            "added_capabilities",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"], ["clusters.id"], name=op.f("fk_pods_cluster_id_clusters"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("cluster_id", "uid", name=op.f("pk_pods")),
    )
    with op.batch_alter_table("pods", schema=None) as batch_op:
        batch_op.create_index("ix_pods_listing", ["cluster_id", "namespace", "name", "uid"], unique=False)
        batch_op.create_index(
            "ix_pods_workload", ["cluster_id", "namespace", "workload_kind", "workload_name"], unique=False
        )

    op.create_table(
        "workloads",
        sa.Column("cluster_id", sa.String(length=64), nullable=False),
        sa.Column("namespace", sa.String(length=63), nullable=False),
        sa.Column("kind", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column(
            "owner_chain", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column(
            "labels", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"], ["clusters.id"], name=op.f("fk_workloads_cluster_id_clusters"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("cluster_id", "namespace", "kind", "name", name=op.f("pk_workloads")),
    )
    op.create_table(
        "finding_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("finding_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["finding_id"], ["findings.id"], name=op.f("fk_finding_events_finding_id_findings"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_finding_events")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("finding_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_finding_events_finding_id"), ["finding_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("finding_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_finding_events_finding_id"))

    op.drop_table("finding_events")
    op.drop_table("workloads")
    with op.batch_alter_table("pods", schema=None) as batch_op:
        batch_op.drop_index("ix_pods_workload")
        batch_op.drop_index("ix_pods_listing")

    op.drop_table("pods")
    op.drop_table("nodes")
    op.drop_table("ingest_batches")
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.drop_index("ix_findings_filter")
        batch_op.drop_index("ix_findings_cluster")

    op.drop_table("findings")
    with op.batch_alter_table("containers", schema=None) as batch_op:
        batch_op.drop_index("ix_containers_image_pk")
        batch_op.drop_index("ix_containers_container_id")

    op.drop_table("containers")
    op.drop_table("api_tokens")
    op.drop_table("images")
    op.drop_table("clusters")
