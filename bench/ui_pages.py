"""Console list pages: server time per page with 10,000 findings and 2,000 images (SQLite).

Workload: one cluster whose inventory references 2,000 distinct images (1,000 pods x 2
containers plus unused-image rows), 10,000 open/resolved findings across every type and
severity spread over those images and workloads. Each page is requested through the real
HTTP stack (uvicorn on loopback, signed-in session cookie); the figure is the median and
max wall time of N requests per page kind: first page, a middle page reached by cursor,
and a filtered page. Prints one JSON line per page kind; aim: under 200 ms per page.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from vigil.devtools.inventory import synthetic_snapshot
from vigil.devtools.service import LiveService
from vigil.service.store.findings import FINDING_TYPES, SEVERITIES
from vigil.service.store.schema import finding_events, findings, images
from vigil.service.store.tokens import utcnow

N_FINDINGS, N_IMAGES, REPEAT = 10_000, 2_000, 7


def seed(svc: LiveService) -> None:
    cid, cred = svc.register("bench")
    snap = synthetic_snapshot(cid, nodes=50, pods=1000, images=N_IMAGES, containers_per_pod=2)
    r = httpx.post(
        f"{svc.url}/api/v1/ingest/inventory",
        json=snap.model_dump(mode="json"),
        headers={"Authorization": f"Bearer {cred}"},
        timeout=120,
    )
    r.raise_for_status()
    now = utcnow()
    with svc.engine.begin() as conn:
        existing = {(r.registry, r.repository, r.tag) for r in conn.execute(images.select())}
        extra = []
        i = 0
        while len(existing) + len(extra) < N_IMAGES:
            key = ("registry.example.com", f"extra/img{i}", "1.0")
            i += 1
            if key not in existing:
                extra.append(dict(registry=key[0], repository=key[1], tag=key[2], digest="", first_seen_at=now))
        if extra:
            conn.execute(images.insert(), extra)
        pks = [r.id for r in conn.execute(images.select().with_only_columns(images.c.id))]
        wls = [(w.namespace, w.kind, w.name) for w in snap.workloads]
        rows = []
        for n in range(N_FINDINGS):
            ns, kind, name = wls[n % len(wls)]
            rows.append(
                dict(
                    dedup_key=f"bench:{n}",
                    type=FINDING_TYPES[n % len(FINDING_TYPES)],
                    severity=SEVERITIES[n % 4],
                    subject=f"subject {n}",
                    cluster_id=cid,
                    namespace=ns,
                    workload_kind=kind,
                    workload_name=name,
                    image_pk=pks[n % len(pks)],
                    evidence={"n": n},
                    status="open" if n % 5 else "resolved",
                    status_reason=None,
                    first_seen_at=now,
                    last_seen_at=now,
                    status_changed_at=now,
                )
            )
        conn.execute(findings.insert(), rows)
        conn.execute(
            finding_events.insert(),
            [
                dict(
                    finding_id=k + 1,
                    at=now,
                    from_status=None,
                    to_status="open",
                    severity=SEVERITIES[k % 4],
                    reason="observed",
                    actor="bench",
                )
                for k in range(N_FINDINGS)
            ],
        )


def sign_in(svc: LiveService) -> httpx.Client:
    c = httpx.Client(base_url=svc.url, timeout=60)
    csrf = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)
    r = c.post("/login", data={"csrf": csrf, "token": svc.admin_token, "next": "/"})
    assert r.status_code == 303, r.text
    return c


def timed(c: httpx.Client, url: str) -> tuple[float, str]:
    t = time.perf_counter()
    r = c.get(url)
    elapsed = (time.perf_counter() - t) * 1000
    assert r.status_code == 200, (url, r.status_code, r.text[:300])
    return elapsed, r.text


def middle_cursor(c: httpx.Client, url: str, hops: int) -> str:
    for _ in range(hops):
        _, text = timed(c, url)
        m = re.search(r'class="next" href="([^"]+)"', text)
        if not m:
            break
        url = m.group(1).replace("&amp;", "&")
    return url


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        svc = LiveService(Path(d) / "data").start()
        try:
            t = time.perf_counter()
            seed(svc)
            print(
                json.dumps(
                    {
                        "bench": "ui_pages",
                        "phase": "seed",
                        "findings": N_FINDINGS,
                        "images": N_IMAGES,
                        "seconds": round(time.perf_counter() - t, 2),
                    }
                )
            )
            c = sign_in(svc)
            pages = {
                "findings first": "/findings?status=any&limit=50",
                "findings middle (cursor)": middle_cursor(c, "/findings?status=any&limit=50&sort=-last_seen", 100),
                "findings filtered": (
                    "/findings?type=digest_mismatch,tag_moved,artifact_missing&severity=critical&limit=50"
                ),
                "findings sorted by severity, middle": middle_cursor(c, "/findings?status=any&limit=50", 60),
                "images first": "/images?limit=50",
                "images middle (cursor)": middle_cursor(c, "/images?limit=50", 20),
                "images by blast radius": "/images?sort=-workloads&limit=50",
                "images filtered": "/images?finding=untrusted_registry&limit=50",
                "workloads first": "/workloads?sort=-findings&limit=50",
                "overview": "/",
            }
            worst = 0.0
            for name, url in pages.items():
                times = [timed(c, url)[0] for _ in range(REPEAT)]
                worst = max(worst, statistics.median(times))
                print(
                    json.dumps(
                        {
                            "bench": "ui_pages",
                            "page": name,
                            "url": url[:120],
                            "median_ms": round(statistics.median(times), 1),
                            "max_ms": round(max(times), 1),
                            "runs": REPEAT,
                            "target_ms": 200,
                        }
                    )
                )
            print(json.dumps({"bench": "ui_pages", "worst_median_ms": round(worst, 1), "within_target": worst < 200}))
        finally:
            svc.stop()


if __name__ == "__main__":
    sys.exit(main())
