"""findings: structured key columns (family, scope, subject key) beside the dedup key

Revision ID: f0001
Revises: r0001

Rows stored before this revision carry their key only inside ``dedup_key``. It is taken apart
here, once; from now on the analyses write the columns and nothing reads a key string back.
The vocabulary is copied, not imported, so this revision means the same whatever the code
becomes.
"""

import sqlalchemy as sa
from alembic import op

revision = "f0001"
down_revision = "r0001"
branch_labels = None
depends_on = None

FAMILY = {
    "untrusted_registry": "integrity",
    "digest_mismatch": "integrity",
    "tag_moved": "integrity",
    "artifact_missing": "integrity",
    "vulnerable_package": "contents",
    "malicious_package": "contents",
    "running_vulnerability": "runtime",
    "runtime_drift": "runtime",
    "tampered_binary": "runtime",
    "suspicious_exec": "runtime",
}
_BATCH = 500


def scope(cluster_id, namespace, workload_kind, workload_name, image_pk) -> str:
    image = "" if image_pk is None else str(image_pk)
    return f"{cluster_id or ''}/{namespace or ''}/{workload_kind or ''}/{workload_name or ''}@{image}"


def subject_key(dedup_key: str, finding_type: str) -> str:
    """What the finding is about inside its scope, from a key of the grammar its analysis used.

    - ``integrity:<cluster>:<image>:<namespace>:<kind>/<name>:<type>``: nothing beyond the type;
    - ``content:<cluster>:<image>:<namespace>:<kind>/<name>:<type>:<package hash>:<advisory id>``:
      the package hash and advisory id (an advisory id may hold ':', so the key is cut after the
      type, never from the right);
    - ``rt|<type>|<cluster>|<namespace>|<kind>|<name>|<image>|<detection>``: the detection; a key
      too long for the column was stored as ``rt|<type>|sha256:<hash>``, which keeps only the hash.

    Any other key (written by hand or by tests) is its own subject.
    """
    if dedup_key.startswith("integrity:") and dedup_key.endswith(f":{finding_type}"):
        return ""
    marker = f":{finding_type}:"
    if dedup_key.startswith("content:") and marker in dedup_key:
        return dedup_key.split(marker, 1)[1]
    if dedup_key.startswith(f"rt|{finding_type}|sha256:"):
        return dedup_key[len(f"rt|{finding_type}|") :]
    if dedup_key.startswith(f"rt|{finding_type}|"):
        parts = dedup_key.split("|", 7)
        if len(parts) == 8:
            return parts[7]
    return dedup_key


def upgrade() -> None:
    # Added in place, never by copying the table: on SQLite a copy drops the old table, and with
    # foreign keys on that deletes every finding's history (finding_events cascades).
    op.add_column("findings", sa.Column("family", sa.String(length=16), nullable=False, server_default=""))
    op.add_column("findings", sa.Column("scope", sa.String(length=512), nullable=False, server_default=""))
    op.add_column("findings", sa.Column("subject_key", sa.Text(), nullable=False, server_default=""))
    conn = op.get_bind()
    findings = sa.table(
        "findings",
        sa.column("id", sa.Integer),
        sa.column("dedup_key", sa.String),
        sa.column("type", sa.String),
        sa.column("cluster_id", sa.String),
        sa.column("namespace", sa.String),
        sa.column("workload_kind", sa.String),
        sa.column("workload_name", sa.String),
        sa.column("image_pk", sa.Integer),
        sa.column("family", sa.String),
        sa.column("scope", sa.String),
        sa.column("subject_key", sa.Text),
    )
    rows = conn.execute(
        sa.select(
            findings.c.id,
            findings.c.dedup_key,
            findings.c.type,
            findings.c.cluster_id,
            findings.c.namespace,
            findings.c.workload_kind,
            findings.c.workload_name,
            findings.c.image_pk,
        ).order_by(findings.c.id)
    ).all()
    update = (
        sa.update(findings)
        .where(findings.c.id == sa.bindparam("row_id"))
        .values(
            family=sa.bindparam("new_family"),
            scope=sa.bindparam("new_scope"),
            subject_key=sa.bindparam("new_subject_key"),
        )
    )
    values = [
        {
            "row_id": r.id,
            "new_family": FAMILY[r.type],  # every stored type was checked against this list
            "new_scope": scope(r.cluster_id, r.namespace, r.workload_kind, r.workload_name, r.image_pk),
            "new_subject_key": subject_key(r.dedup_key, r.type),
        }
        for r in rows
    ]
    for start in range(0, len(values), _BATCH):
        conn.execute(update, values[start : start + _BATCH])
    op.create_index("ix_findings_family", "findings", ["family", "status", "scope"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_findings_family", table_name="findings")
    op.drop_column("findings", "subject_key")
    op.drop_column("findings", "scope")
    op.drop_column("findings", "family")
