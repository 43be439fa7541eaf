"""The store's read views: the API and the console read the same listing, with the same cursors."""

from __future__ import annotations

from vigil.devtools.inventory import synthetic_snapshot
from vigil.service.store import risk as risk_store
from vigil.service.store.findings import Observation, observe
from vigil.service.store.pagination import encode_cursor
from vigil.service.store.views import clusters as cluster_views
from vigil.service.store.views import findings as finding_views
from vigil.service.store.views import pods as pod_views

from .helpers import post_batch


def _seed(svc) -> tuple[str, list[int]]:
    cid, cred = svc.register("views")
    post_batch(svc, cred, synthetic_snapshot(cid, nodes=2, pods=6, images=2))
    ids = []
    with svc.engine.begin() as conn:
        for i, severity in enumerate(("high", "low", "critical")):
            obs = Observation(
                dedup_key=f"views:{i}",
                type="tag_moved",
                severity=severity,
                subject=f"image {i}",
                evidence={"i": i},
                cluster_id=cid,
                subject_key=f"image-{i}",
            )
            ids.append(observe(conn, obs)[0])
    return cid, ids


def test_findings_listing_is_the_apis_and_the_consoles(live_service):
    svc = live_service
    cid, ids = _seed(svc)
    api = svc.get("/api/v1/findings", cluster=cid, limit=2).json()
    with svc.engine.connect() as conn:
        f = finding_views.FindingFilter(cluster_id=cid)
        by_id = finding_views.list_findings(conn, f, finding_views.finding_sort("id", False), None, 2)
        console = finding_views.list_findings(
            conn, f, finding_views.finding_sort("severity", False), None, 10, names=True
        )
    # The API's page is the listing by id; its cursor is the last id.
    assert api["items"] == by_id.items and [i["id"] for i in api["items"]] == ids[:2]
    assert api["next"] == by_id.next == encode_cursor([ids[1]])
    assert by_id.total == 3
    # The console's sort, with the names it shows; same rows and risk.
    assert [i["severity"] for i in console.items] == ["critical", "high", "low"]
    assert {i["cluster_name"] for i in console.items} == {"views"} and {i["image_ref"] for i in console.items} == {None}
    assert all(i["risk"]["score"] > 0 for i in console.items) and console.next is None


def test_cluster_listing_takes_risk_from_a_scored_pass_or_scores_its_page(live_service):
    svc = live_service
    cid, _ = _seed(svc)
    with svc.engine.connect() as conn:
        own = cluster_views.list_clusters(conn, None, 10)
        shared = cluster_views.list_clusters(conn, None, 10, risk_store.open_risk(conn))
    assert own.items == shared.items
    assert [(c["id"], c["nodes"], c["pods"], c["risk"]["parts"]["open_findings"]) for c in own.items] == [
        (cid, 2, 6, 3)
    ]


def test_pods_page_by_key_with_the_apis_cursor(live_service):
    svc = live_service
    cid, _ = _seed(svc)
    seen, after = [], None
    with svc.engine.connect() as conn:
        while True:
            page = pod_views.list_pods(conn, pod_views.PodFilter(cluster_id=cid), after, 4)
            api = svc.get("/api/v1/pods", cluster=cid, limit=4, **({"after": after} if after else {})).json()
            assert api == {"items": page.items, "next": page.next}
            seen += [(p["namespace"], p["name"], p["uid"]) for p in page.items]
            after = page.next
            if after is None:
                break
    assert len(seen) == 6 and seen == sorted(seen)
