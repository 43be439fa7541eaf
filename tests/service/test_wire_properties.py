"""Property tests of the ingest wire models: valid documents round-trip through JSON unchanged, and
documents broken in the ways a hostile or buggy sender breaks them get a 4xx from the real
service on each store, never a 5xx."""

from __future__ import annotations

import copy
import json
import os
from datetime import UTC

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.wire.inventory import InventoryDelta, InventorySnapshot
from vigil.wire.runtime import RuntimeBatch, SensorHeartbeat

EXAMPLES = int(os.environ.get("VIGIL_FUZZ_EXAMPLES", "6")) * 10
PROPERTY = settings(
    max_examples=EXAMPLES, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)

label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
# Valid text: no NUL (the service refuses it, PostgreSQL cannot store it) and no lone surrogates.
text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
int64 = st.integers(min_value=0, max_value=2**63 - 1)
times = st.datetimes(timezones=st.just(UTC)).map(lambda t: t.isoformat())


@st.composite
def snapshots(draw) -> dict:
    ns, wl = draw(label), draw(label)
    pods = []
    for i in range(draw(st.integers(0, 3))):
        pods.append(
            {
                "uid": f"uid-{i}",
                "namespace": ns,
                "name": draw(label),
                "workload": {"kind": "Deployment", "name": wl},
                "labels": draw(st.dictionaries(label, text, max_size=3)),
                "security": {"run_as_user": draw(st.none() | st.integers(0, 2**31 - 1))},
                "containers": [{"name": "c", "image": draw(label), "restart_count": draw(st.integers(0, 2**31 - 1))}],
            }
        )
    return {
        "kind": "snapshot",
        "batch_id": draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,30}", fullmatch=True)),
        "cluster_id": "CLUSTER",
        "nodes": [{"name": n, "kernel_version": draw(text)} for n in draw(st.sets(label, max_size=3))],
        "workloads": [{"namespace": ns, "kind": "Deployment", "name": wl}],
        "pods": pods,
    }


@st.composite
def runtime_batches(draw) -> dict:
    start = "2026-01-01T00:00:00+00:00"
    records = [
        {
            "container_id": None,
            "path": f"/bin/{i}{draw(label)}",
            "sha256": None,
            "first_seen": start,
            "last_seen": start,
            "count": draw(st.integers(1, 2**63 - 1)),
            "samples": [{"time": draw(times), "pid": 1, "ppid": 0, "uid": draw(int64), "gid": 0, "filename": "/x"}],
        }
        for i in range(draw(st.integers(0, 3)))
    ]
    return {
        "batch_id": draw(st.from_regex(r"[A-Za-z0-9]{1,20}", fullmatch=True)),
        "cluster_id": "CLUSTER",
        "node_name": "node-1",
        "sensor_id": "s1",
        "seq": draw(int64),
        "window_start": start,
        "window_end": start,
        "records": records,
    }


@PROPERTY
@given(doc=snapshots())
def test_valid_inventory_round_trips(doc):
    batch = InventorySnapshot.model_validate_json(json.dumps(doc))
    again = InventorySnapshot.model_validate_json(batch.model_dump_json())
    assert again == batch
    assert InventoryDelta.model_validate({**doc, "kind": "delta"}).pods == batch.pods


@PROPERTY
@given(doc=runtime_batches())
def test_valid_runtime_batch_round_trips(doc):
    batch = RuntimeBatch.model_validate_json(json.dumps(doc))
    assert RuntimeBatch.model_validate_json(batch.model_dump_json()) == batch


def _paths(node, prefix=()):
    """Every (path, value) in a document, containers and leaves."""
    yield prefix, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


HOSTILE = st.sampled_from([2**63, -(2**63) - 1, 2**64, "x" * 5000, "a\u0000b", None, [], {}, True, 1.5, "DELETE"])


@st.composite
def mutations(draw, base) -> tuple[dict, str]:
    doc = copy.deepcopy(draw(base))
    paths = [p for p, _ in _paths(doc) if p]
    path = draw(st.sampled_from(paths))
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    how = draw(st.sampled_from(["replace", "drop", "extra"]))
    if how == "drop" and isinstance(parent, dict):
        del parent[path[-1]]
    elif how == "extra" and isinstance(parent, dict):
        parent["unexpected_field"] = 1
    else:
        parent[path[-1]] = draw(HOSTILE)
    return doc, f"{how} {'.'.join(map(str, path))}"


def _fill(doc: dict, cluster_id: str) -> bytes:
    return json.dumps(doc).replace('"CLUSTER"', json.dumps(cluster_id)).encode()


def _post(svc, credential, path, body: bytes) -> httpx.Response:
    headers = {"Authorization": f"Bearer {credential}", "Content-Type": "application/json"}
    return httpx.post(f"{svc.url}{path}", content=body, headers=headers, timeout=30)


def _check_mutations(svc, credential, cluster_id, name, path, base, seen, statuses) -> None:
    @PROPERTY
    @given(valid=base, mutated=mutations(base))
    def check(valid, mutated):
        resp = _post(svc, credential, path, _fill(valid, cluster_id))
        assert resp.status_code == 200, (valid, resp.text)
        doc, how = mutated
        resp = _post(svc, credential, path, _fill(doc, cluster_id))
        statuses.add(resp.status_code)
        seen[name] += 1
        assert resp.status_code < 500, (how, resp.status_code, resp.text)
        if resp.status_code != 200:
            assert 400 <= resp.status_code < 500 and resp.json()["error"], (how, resp.text)

    check()


def test_mutated_ingest_documents_get_4xx_never_5xx(service_on):
    svc = service_on
    cluster_id, credential = svc.register("props")
    seen = {"inventory": 0, "runtime": 0, "heartbeat": 0}
    statuses: set[int] = set()
    heartbeat = st.fixed_dictionaries(
        {"cluster_id": st.just("CLUSTER"), "node_name": st.just("node-1"), "events_seen": int64, "error": text}
    )
    cases = [
        ("inventory", "/api/v1/ingest/inventory", snapshots()),
        ("runtime", "/api/v1/ingest/runtime", runtime_batches()),
        ("heartbeat", "/api/v1/ingest/sensor-heartbeat", heartbeat),
    ]
    for name, path, base in cases:
        _check_mutations(svc, credential, cluster_id, name, path, base, seen, statuses)
    print(f"\nwire properties: {seen} mutated documents, statuses {sorted(statuses)}")
    assert all(n >= EXAMPLES for n in seen.values())
    assert 422 in statuses


def test_large_integers_and_nul_are_refused_with_422(service_on):
    svc = service_on
    cluster_id, credential = svc.register("bounds")
    beat = {"cluster_id": cluster_id, "node_name": "node-1", "events_seen": 2**63}
    resp = _post(svc, credential, "/api/v1/ingest/sensor-heartbeat", json.dumps(beat).encode())
    assert resp.status_code == 422
    assert resp.json()["errors"] == [
        {"field": "body.events_seen", "message": "Input should be less than or equal to 9223372036854775807"}
    ]
    beat = {"cluster_id": cluster_id, "node_name": "node-1", "error": "stopped\u0000"}
    resp = _post(svc, credential, "/api/v1/ingest/sensor-heartbeat", json.dumps(beat).encode())
    assert resp.status_code == 422
    assert resp.json()["detail"] == "body: a string holds a NUL character (\\u0000), which no field may"
    # A backslash followed by the letters u0000 is ordinary text.
    beat["error"] = "stopped\\u0000"
    resp = _post(svc, credential, "/api/v1/ingest/sensor-heartbeat", json.dumps(beat).encode())
    assert resp.status_code == 200, resp.text
    assert SensorHeartbeat.model_validate(beat).error == "stopped\\u0000"
