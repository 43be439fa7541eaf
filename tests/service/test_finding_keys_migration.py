"""Revision f0001 on both store backends: findings stored with only a dedup key (revision r0001)
get their family, scope and subject key from it, and keep their history."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from vigil.service.store.db import MIGRATIONS, create_store_engine, migrate

CLUSTER = "3f1c2a9e-0000-4000-8000-000000000001"
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

TS = sa.DateTime(timezone=True)
findings = sa.table(
    "findings",
    *(
        sa.column(c)
        for c in (
            "id",
            "dedup_key",
            "type",
            "severity",
            "subject",
            "cluster_id",
            "namespace",
            "workload_kind",
            "workload_name",
            "image_pk",
            "status",
        )
    ),
    sa.column("evidence", sa.JSON),
    *(sa.column(c, TS) for c in ("first_seen_at", "last_seen_at", "status_changed_at")),
)
finding_events = sa.table(
    "finding_events", *(sa.column(c) for c in ("finding_id", "to_status", "severity", "actor")), sa.column("at", TS)
)
clusters = sa.table("clusters", sa.column("id"), sa.column("name"), sa.column("created_at", TS))
images = sa.table(
    "images", *(sa.column(c) for c in ("id", "registry", "repository", "tag", "digest")), sa.column("first_seen_at", TS)
)

WEB = dict(cluster_id=CLUSTER, namespace="shop", workload_kind="Deployment", workload_name="web")
HASH = "sha256:" + "ab" * 32
OLD_ROWS = [
    # (dedup key, type, scope columns, expected subject key)
    (f"integrity:{CLUSTER}:1:shop:Deployment/web:tag_moved", "tag_moved", WEB, ""),
    (
        f"content:{CLUSTER}:1:shop:Deployment/web:vulnerable_package:0123456789abcdef:RHSA-2024:1234",
        "vulnerable_package",
        WEB,
        "0123456789abcdef:RHSA-2024:1234",
    ),
    (
        f"content:{CLUSTER}:1:shop:{'e' * 24}:malicious_package:fedcba9876543210:MAL-2025-0001",
        "malicious_package",
        WEB,
        "fedcba9876543210:MAL-2025-0001",
    ),
    (
        f"rt|runtime_drift|{CLUSTER}|shop|Deployment|web|1|/tmp/x|{'cd' * 32}",
        "runtime_drift",
        WEB,
        f"/tmp/x|{'cd' * 32}",
    ),
    (f"rt|suspicious_exec|{HASH}", "suspicious_exec", WEB, HASH),
    ("untrusted/x", "untrusted_registry", dict(cluster_id=CLUSTER, namespace="edge"), "untrusted/x"),
]


def _config(engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def test_old_finding_keys_become_columns(database_url):
    engine = create_store_engine(database_url)
    try:
        command.upgrade(_config(engine), "r0001")
        with engine.begin() as conn:
            conn.execute(clusters.insert().values(id=CLUSTER, name="prod", created_at=T0))
            conn.execute(
                images.insert().values(
                    id=1,
                    registry="registry.example.com",
                    repository="shop/web",
                    tag="1.0",
                    digest="sha256:" + "1" * 64,
                    first_seen_at=T0,
                )
            )
            for i, (key, type_, where, _) in enumerate(OLD_ROWS, start=1):
                conn.execute(
                    findings.insert().values(
                        id=i,
                        dedup_key=key,
                        type=type_,
                        severity="high",
                        subject=f"finding {i}",
                        image_pk=1 if where is WEB else None,
                        evidence={},
                        status="open",
                        first_seen_at=T0,
                        last_seen_at=T0,
                        status_changed_at=T0,
                        **where,
                    )
                )
                conn.execute(
                    finding_events.insert().values(finding_id=i, at=T0, to_status="open", severity="high", actor="test")
                )
        migrate(engine)  # every head, as the service does at start
        with engine.connect() as conn:
            got = conn.execute(sa.text("SELECT id, family, scope, subject_key FROM findings ORDER BY id")).all()
            events = conn.execute(sa.text("SELECT finding_id FROM finding_events ORDER BY finding_id")).scalars().all()
            indexes = {ix["name"] for ix in sa.inspect(conn).get_indexes("findings")}
    finally:
        engine.dispose()
    web = f"{CLUSTER}/shop/Deployment/web@1"
    assert [tuple(r) for r in got] == [
        (1, "integrity", web, ""),
        (2, "contents", web, "0123456789abcdef:RHSA-2024:1234"),
        (3, "contents", web, "fedcba9876543210:MAL-2025-0001"),
        (4, "runtime", web, f"/tmp/x|{'cd' * 32}"),
        (5, "runtime", web, HASH),
        (6, "integrity", f"{CLUSTER}/edge//@", "untrusted/x"),
    ]
    assert [expected for *_, expected in OLD_ROWS] == [r.subject_key for r in got]
    assert events == [1, 2, 3, 4, 5, 6]  # the history of every finding is still there
    assert "ix_findings_family" in indexes
