"""Global search over the API, on SQLite and PostgreSQL: every kind's exact matches against a small
world, LIKE wildcards in the text matching themselves, and the text's length limit."""

from __future__ import annotations

import hashlib

import pytest

from vigil.devtools.service import LiveService
from vigil.model.scan import ScanResult
from vigil.policy.trust import Pattern
from vigil.service.store import contents, policy
from vigil.service.store.findings import Observation, observe
from vigil.service.store.schema import images
from vigil.wire.inventory import InventorySnapshot

from .helpers import post_batch


def digest_of(ref: str) -> str:
    return "sha256:" + hashlib.sha256(ref.encode()).hexdigest()


def pinned(ref: str) -> str:
    """The reference as the service shows it: with the digest the container ran."""
    return f"{ref}@{digest_of(ref)}"


PAYMENTS = "registry.example.com/shop/payments:2.1"
LEDGER = "registry.example.com/shop/ledger:v1_2"
REDIS = "docker.io/library/redis:7.2"


def _container(name: str, ref: str) -> dict:
    return {
        "name": name,
        "kind": "regular",
        "image": ref,
        "image_id": f"{ref.rsplit(':', 1)[0]}@{digest_of(ref)}",
        "image_digest": digest_of(ref),
        "container_id": "containerd://" + hashlib.sha256(f"{name}/{ref}".encode()).hexdigest(),
        "state": "running",
        "restart_count": 0,
    }


def _pod(uid: str, ns: str, name: str, kind: str, workload: str, *refs: str) -> dict:
    return {
        "uid": uid,
        "namespace": ns,
        "name": name,
        "node_name": "node-a",
        "phase": "Running",
        "service_account": "default",
        "workload": {"kind": kind, "name": workload},
        "labels": {"app": workload},
        "security": {},
        "containers": [_container(f"c{i}", r) for i, r in enumerate(refs)],
    }


def world_snapshot(cluster_id: str) -> InventorySnapshot:
    return InventorySnapshot.model_validate(
        {
            "kind": "snapshot",
            "batch_id": "search-1",
            "cluster_id": cluster_id,
            "nodes": [
                {
                    "name": "node-a",
                    "labels": {},
                    "kernel_version": "6.1.0",
                    "os_image": "Debian GNU/Linux 12 (bookworm)",
                    "container_runtime": "containerd://1.6.20",
                    "architecture": "amd64",
                    "kubelet_version": "v1.29.2",
                    "conditions": [],
                }
            ],
            "workloads": [
                {"namespace": "shop", "kind": "Deployment", "name": "payments-api", "owner_chain": [], "labels": {}},
                {"namespace": "shop", "kind": "StatefulSet", "name": "ledger", "owner_chain": [], "labels": {}},
                {"namespace": "cache", "kind": "StatefulSet", "name": "redis", "owner_chain": [], "labels": {}},
            ],
            "pods": [
                _pod("u-pay-1", "shop", "payments-api-7d4b9c-x1", "Deployment", "payments-api", PAYMENTS),
                _pod("u-pay-2", "shop", "payments-api-7d4b9c-x2", "Deployment", "payments-api", PAYMENTS),
                _pod("u-ledger", "shop", "ledger-0", "StatefulSet", "ledger", LEDGER, REDIS),
                _pod("u-redis", "cache", "redis-0", "StatefulSet", "redis", REDIS),
            ],
        }
    )


def _package(type_: str, name: str, version: str) -> dict:
    return dict(
        type=type_,
        name=name,
        version=version,
        purl=f"pkg:{type_}/{name}@{version}",
        ecosystem={"deb": "Debian:12", "pypi": "PyPI"}[type_],
        cataloger={"deb": "dpkg", "pypi": "python"}[type_],
        found_in="/var/lib/dpkg/status",
        source_name=None,
        source_version=None,
        arch=None,
        files=[],
        details={},
    )


def _vulnerability(package_id: int, vuln_id: str, advisories: list[str], aliases: list[str]) -> dict:
    return dict(
        package_id=package_id,
        vuln_id=vuln_id,
        key_id=vuln_id,
        advisory_ids=advisories,
        aliases=aliases,
        severity="high",
        score=None,
        severity_source=None,
        fixed_versions=["3.0.7"],
        malicious=False,
        summary=f"{vuln_id} summary",
        links=[],
    )


def seed_search_world(svc: LiveService) -> dict:
    cid, cred = svc.register("shop-prod")
    assert post_batch(svc, cred, world_snapshot(cid)).status_code == 200
    with svc.engine.begin() as conn:
        policy.add_trusted(conn, Pattern.parse("registry.example.com"), None, "test")
        pks = {f"{r.registry}/{r.repository}:{r.tag}": r.id for r in conn.execute(images.select())}
        payments = digest_of(PAYMENTS)
        contents.enqueue(conn, {payments: "linux/amd64"})
        job = contents.claim(conn, "search-test")
        assert job is not None and job.digest == payments
        packages = [
            _package("deb", "openssl", "3.0.2"),
            _package("deb", "libssl3", "3.0.2"),
            _package("pypi", "typing_extensions", "4.7.1"),
        ]
        result = ScanResult(payments, "registry.example.com/shop/payments", "linux/amd64", None, [], packages, [])
        assert contents.record_result(conn, job, result)
        ids = {r.name: r.id for r in contents.stored_packages(conn, payments)}
        contents.replace_vulnerabilities(
            conn,
            payments,
            [
                _vulnerability(ids["openssl"], "CVE-2022-3602", ["CVE-2022-3602", "DSA-5275-1"], ["GHSA-Abcd-1234"]),
                _vulnerability(ids["libssl3"], "CVE-2022-3602", ["CVE-2022-3602"], []),
            ],
            "search-revision",
            [],
        )
        finding, _ = observe(
            conn,
            Observation(
                dedup_key="search:vuln",
                type="vulnerable_package",
                severity="high",
                subject="shop/Deployment/payments-api: openssl 3.0.2 (CVE-2022-3602)",
                evidence={"package": {"type": "deb", "name": "openssl", "version": "3.0.2"}},
                cluster_id=cid,
                namespace="shop",
                workload_kind="Deployment",
                workload_name="payments-api",
                image_pk=pks[PAYMENTS],
            ),
        )
    return {"cluster": cid, "image": pks, "finding": finding}


def _search(svc: LiveService, q: str, **params) -> dict:
    r = svc.get("/api/v1/search", q=q, **params)
    assert r.status_code == 200, r.text
    return r.json()


def _empty() -> dict:
    return {"items": [], "total": 0, "more": 0}


def test_search_finds_each_kind_exactly(service_on: LiveService):
    svc = service_on
    w = seed_search_world(svc)
    cid, pk = w["cluster"], w["image"]
    payments = {
        "id": pk[PAYMENTS],
        "ref": pinned(PAYMENTS),
        "digest": digest_of(PAYMENTS),
        "url": f"/images/{pk[PAYMENTS]}",
    }

    # An image by part of its reference, in either case.
    body = _search(svc, "SHOP/Pay")
    assert body["images"] == {"items": [payments], "total": 1, "more": 0}
    assert body["query"] == "SHOP/Pay" and body["total"] == 1

    # A digest prefix, with or without its algorithm; six hex digits at least.
    hex12 = digest_of(REDIS).removeprefix("sha256:")[:12]
    for q in (hex12, "sha256:" + hex12):
        assert [i["ref"] for i in _search(svc, q)["images"]["items"]] == [pinned(REDIS)]
    assert _search(svc, hex12[:5])["images"] == _empty()

    # Workloads and pods by part of their names; a pod links to its workload's page.
    body = _search(svc, "payments-api")
    assert body["workloads"]["items"] == [
        {
            "cluster_id": cid,
            "cluster_name": "shop-prod",
            "namespace": "shop",
            "kind": "Deployment",
            "name": "payments-api",
            "url": f"/workloads/{cid}/shop/Deployment/payments-api",
        }
    ]
    assert [p["name"] for p in body["pods"]["items"]] == ["payments-api-7d4b9c-x1", "payments-api-7d4b9c-x2"]
    assert body["pods"]["items"][0] == {
        "cluster_id": cid,
        "cluster_name": "shop-prod",
        "namespace": "shop",
        "name": "payments-api-7d4b9c-x1",
        "uid": "u-pay-1",
        "phase": "Running",
        "workload": {"kind": "Deployment", "name": "payments-api"},
        "url": f"/workloads/{cid}/shop/Deployment/payments-api",
    }
    assert body["findings"]["items"] == [
        {
            "id": w["finding"],
            "type": "vulnerable_package",
            "severity": "high",
            "status": "open",
            "subject": "shop/Deployment/payments-api: openssl 3.0.2 (CVE-2022-3602)",
            "cluster_id": cid,
            "cluster_name": "shop-prod",
            "url": f"/findings/{w['finding']}",
        }
    ]
    assert body["images"] == body["packages"] == body["advisories"] == _empty()

    # Packages by part of their name, each with the image holding it.
    body = _search(svc, "ssl")
    assert body["packages"]["items"] == [
        {
            "package": {"type": "deb", "name": "libssl3", "version": "3.0.2"},
            "image": payments,
            "url": payments["url"],
        },
        {
            "package": {"type": "deb", "name": "openssl", "version": "3.0.2"},
            "image": payments,
            "url": payments["url"],
        },
    ]

    # An advisory by its id, another of its advisory ids, or an alias (whole, any case): the
    # images and packages it affects; the findings naming it.
    body = _search(svc, "cve-2022-3602")
    assert [(a["advisory"], a["package"]["name"], a["image"]["ref"]) for a in body["advisories"]["items"]] == [
        ("CVE-2022-3602", "libssl3", pinned(PAYMENTS)),
        ("CVE-2022-3602", "openssl", pinned(PAYMENTS)),
    ]
    assert body["advisories"]["items"][1]["severity"] == "high"
    assert [f["id"] for f in body["findings"]["items"]] == [w["finding"]]
    for q in ("DSA-5275-1", "ghsa-abcd-1234"):
        assert [a["package"]["name"] for a in _search(svc, q)["advisories"]["items"]] == ["openssl"]
    assert _search(svc, "CVE-2022-360")["advisories"] == _empty()

    # Capped per kind: the first ones listed, the rest counted.
    body = _search(svc, "shop", limit=1)
    assert body["images"] == {
        "items": [
            {"id": pk[LEDGER], "ref": pinned(LEDGER), "digest": digest_of(LEDGER), "url": f"/images/{pk[LEDGER]}"}
        ],
        "total": 2,
        "more": 1,
    }
    assert body["total"] == 2 + 1  # and the finding whose subject names the namespace
    pods = _search(svc, "payments-api", limit=1)["pods"]
    assert [p["name"] for p in pods["items"]] == ["payments-api-7d4b9c-x1"]
    assert (pods["total"], pods["more"]) == (2, 1)


def test_like_wildcards_in_the_text_match_themselves(service_on: LiveService):
    svc = service_on
    seed_search_world(svc)
    # "_" is any one character to LIKE: unescaped, "v1_2" would also match "v1x2", and "%" everything.
    assert _search(svc, "%")["total"] == 0
    assert [i["ref"] for i in _search(svc, "v1_2")["images"]["items"]] == [pinned(LEDGER)]
    assert _search(svc, "ledger:v1%")["images"] == _empty()
    body = _search(svc, "g_e")
    assert [p["package"]["name"] for p in body["packages"]["items"]] == ["typing_extensions"]
    assert body["total"] == 1
    assert _search(svc, "payments_api")["total"] == 0
    assert _search(svc, "\\")["total"] == 0


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"q": "x" * 201}, "query.q: String should have at most 200 characters"),
        ({"q": "   "}, "query.q: give some text to search for"),
        ({"q": "redis", "limit": 101}, "query.limit: Input should be less than or equal to 100"),
    ],
)
def test_search_refuses_text_beyond_its_limits(live_service: LiveService, params, detail):
    r = live_service.get("/api/v1/search", **params)
    assert r.status_code == 422
    assert r.json()["detail"] == detail


def test_search_needs_a_reader_token(live_service: LiveService):
    r = live_service.get("/api/v1/search", token=live_service.token("metrics", "m"), q="redis")
    assert r.status_code == 403
    assert r.json()["error"] == "forbidden"
