"""Images the service's feed does not cover yet: the webhook asks the real trusted registry, within its budget."""

from __future__ import annotations

import socket
import time

import pytest
from starlette.testclient import TestClient
from tests.integrity.integrity_helpers import image

from vigil.admission.registry import ColdResolver
from vigil.admission.server import Webhook, build_app
from vigil.devtools.oci import push
from vigil.devtools.registry_server import RegistryServer
from vigil.registry import RegistryClient, RegistryConfig, RetryPolicy

from .reviews import NEVER_PUSHED, knowledge, pod, review
from .test_decisions import Recorder, _patch, answer


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    with RegistryServer.for_pytest(tmp_path_factory.mktemp("registry")) as server:
        yield server


def _client(host: str) -> RegistryClient:
    config = RegistryConfig.from_mapping({host: {"plain_http": True}})
    return RegistryClient(config, retry=RetryPolicy(max_attempts=1, backoff_base=0.01, backoff_max=0.01), timeout=2.0)


@pytest.fixture
def webhook(registry):
    pushed = push(_client(registry.host), f"{registry.host}/team/app:1.0", image("cold"))
    k = knowledge(
        {"policies": [{"name": "prod", "scope": {"namespaces": ["shop"]}, "rules": {"unscanned": "warn"}}]},
        trusted=[f"{registry.host}/team"],
    )
    resolver = ColdResolver(_client(registry.host))
    hook = Webhook("prod-eu", k, Recorder(), resolver, cold_budget=0.8)
    yield TestClient(build_app(hook)), pushed, registry.host
    resolver.close()


def test_an_unknown_tag_is_pinned_to_the_digest_the_registry_holds(webhook):
    http, pushed, host = webhook
    started = time.monotonic()
    response = answer(http, review(pod(f"{host}/team/app:1.0")), "/mutate")
    assert time.monotonic() - started < 1.0
    assert _patch(response) == [
        {"op": "replace", "path": "/spec/containers/0/image", "value": f"{host}/team/app:1.0@{pushed}"}
    ]


def test_a_digest_the_registry_never_had_is_denied_with_both_digests(webhook):
    http, pushed, host = webhook
    response = answer(http, review(pod(f"{host}/team/app:1.0@{NEVER_PUSHED}")))
    assert response["allowed"] is False
    assert response["status"]["message"] == (
        f'policy "prod" rule integrity: image {host}/team/app:1.0@{NEVER_PUSHED}: digest_mismatch: digest '
        f"{NEVER_PUSHED} is not in the trusted registry {host}/team/app, whose tag 1.0 is {pushed}"
    )
    assert response["warnings"] == [
        f'policy "prod" rule unscanned: image {host}/team/app:1.0@{NEVER_PUSHED}: not scanned by Vigil yet'
    ]


def test_a_tag_the_registry_never_had_is_denied(webhook):
    http, _, host = webhook
    message = answer(http, review(pod(f"{host}/team/app:9.9")))["status"]["message"]
    assert message.startswith(
        f'policy "prod" rule integrity: image {host}/team/app:9.9: artifact_missing: the trusted registry '
        f"{host}/team/app has no such tag"
    )


@pytest.fixture
def black_hole():
    """A registry address that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


def test_a_registry_that_does_not_answer_costs_the_budget_not_the_client_timeout(black_hole):
    policy = {"policies": [{"name": "prod", "scope": {"namespaces": ["shop"]}, "rules": {"unscanned": "warn"}}]}
    resolver = ColdResolver(_client(black_hole))  # a 2 s client timeout
    http = TestClient(
        build_app(Webhook("prod-eu", knowledge(policy, trusted=[black_hole]), Recorder(), resolver, cold_budget=0.3))
    )
    started = time.monotonic()
    response = answer(http, review(pod(f"{black_hole}/team/app:2.0")))
    elapsed = time.monotonic() - started
    resolver.close()
    assert elapsed < 1.5  # the budget (0.3 s) ended the wait, not the client's 2 s timeout
    assert response["allowed"] is True
    assert response["warnings"] == [
        f'policy "prod" rule unscanned: image {black_hole}/team/app:2.0: not scanned by Vigil yet'
    ]
