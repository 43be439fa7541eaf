"""Schemathesis against the running service's own OpenAPI document, once per kind of principal.

Every operation the document lists gets generated requests (valid ones, and ones that break the
declared schema) sent over HTTP to a real service with data in it. An answer fails when it is a 5xx,
when its status code is not one the operation declares, when its content type is not declared, or
when its body does not match the declared schema. The run is bounded by examples per operation and
generation mode (``VIGIL_FUZZ_EXAMPLES``, a fixed seed) so CI stays short; raise it locally for a
longer hunt.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup

from vigil.devtools.inventory import synthetic_snapshot
from vigil.devtools.service import LiveService

from .helpers import post_batch

EXAMPLES = int(os.environ.get("VIGIL_FUZZ_EXAMPLES", "6"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# The findings stream never ends by design (it is its own test's subject); every other operation is fuzzed.
UNFUZZED = {("GET", "/api/v1/findings/stream")}
SESSION = requests.Session()
PRINCIPALS = ("admin", "viewer", "cluster")


@dataclass
class FuzzRun:
    operations: int = 0
    requests: int = 0
    failures: list[str] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set)

    def fail(self, key: str, message: str) -> None:
        # One entry per operation, mode and kind of failure: the first example shows it.
        if key not in self._seen:
            self._seen.add(key)
            self.failures.append(f"{key}: {message[:600]}")


@pytest.fixture(scope="module")
def populated_service(tmp_path_factory):
    svc = LiveService(tmp_path_factory.mktemp("fuzz") / "data").start()
    cluster_id, credential = svc.register("fuzz")
    resp = post_batch(svc, credential, synthetic_snapshot(cluster_id, nodes=3, pods=12))
    assert resp.status_code == 200, resp.text
    svc.fuzz_credential = credential
    yield svc
    svc.stop()


def _fuzz_operation(url: str, principals: dict[str, dict[str, str]], operation, mode, runs: dict[str, FuzzRun]):
    """Each generated request is sent once per principal, so generation (the slow part) is paid once."""

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def send(case) -> None:
        for principal, headers in principals.items():
            run = runs[principal]
            response = case.call(base_url=url, headers=headers, session=SESSION, timeout=30)
            run.requests += 1
            try:
                case.validate_response(response, checks=CHECKS, headers=headers)
            except FailureGroup as group:
                for failure in group.exceptions:
                    run.fail(f"{operation.label} [{mode.value}] {failure.title}", failure.message)

    try:
        send()
    except Unsatisfiable:
        # Nothing in the operation can be made invalid (no parameters, no body, no token needed).
        assert mode is GenerationMode.NEGATIVE, operation.label


@pytest.mark.timeout(max(300, EXAMPLES * 40))
def test_openapi_fuzz_finds_no_server_error_or_schema_violation(populated_service):
    svc = populated_service
    tokens = {
        "admin": svc.token("admin", "fuzz-admin"),
        "viewer": svc.token("viewer", "fuzz-viewer"),
        "cluster": svc.fuzz_credential,
    }
    principals = {p: {"Authorization": f"Bearer {t}"} for p, t in tokens.items()}
    runs = {p: FuzzRun() for p in PRINCIPALS}
    started = time.monotonic()
    schema = schemathesis.openapi.from_url(f"{svc.url}/api/openapi.json")
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in UNFUZZED:
            continue
        for run in runs.values():
            run.operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz_operation(svc.url, principals, operation, mode, runs)
    took = time.monotonic() - started
    for principal, run in runs.items():
        print(f"\nfuzz {principal}: {run.operations} operations, {run.requests} requests, {len(run.failures)} failures")
    print(f"fuzz took {took:.1f}s at {EXAMPLES} examples per operation and mode")
    for principal, token in tokens.items():
        # Each principal still works afterwards: its requests did not end in 401s from a revoked token.
        resp = httpx.get(f"{svc.url}/api/v1/clusters", headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == (403 if principal == "cluster" else 200), (principal, resp.text)
    assert runs["admin"].operations >= 50
    failures = [f"{p}: {f}" for p, run in runs.items() for f in run.failures]
    assert failures == [], "\n\n".join(failures)
