"""Registry requests of an integrity pass: at most ``registry_concurrency`` at a time per registry, and the
verdicts committed before provenance is fetched, after the pass (a real docker-registry and service)."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from vigil.devtools.oci import push
from vigil.registry import RegistryClient
from vigil.service.jobs.integrity import IntegrityEvaluator

from .integrity_helpers import (
    FAST_RETRY,
    client_for,
    evaluator_for,
    image,
    post,
    put_policy,
    registry_config,
    snapshot,
)


class InFlight:
    """Counts the registry requests in flight through a real transport; each is held 50 ms so that a
    pass with more images than its bound reaches the bound."""

    def __init__(self, evaluator: IntegrityEvaluator) -> None:
        self.now = self.most = 0
        self.lock = threading.Lock()
        transport = evaluator.client.transport
        send = transport.request

        def request(*args, **kwargs):
            with self.lock:
                self.now += 1
                self.most = max(self.most, self.now)
            try:
                time.sleep(0.05)
                return send(*args, **kwargs)
            finally:
                with self.lock:
                    self.now -= 1

        transport.request = request  # type: ignore[method-assign]


@pytest.mark.parametrize("bound", [1, 3])
def test_a_pass_asks_one_registry_at_most_its_bound_at_a_time(registry, service, bound):
    config = registry_config(registry.host)
    assert put_policy(service, {"trusted": [registry.host]}).status_code == 200
    imgs = [image(f"bound-{bound}-{i}") for i in range(8)]
    with client_for(config) as pusher:
        for i, img in enumerate(imgs):
            push(pusher, f"{registry.host}/bound/app:{i}", img)
    cid, cred = service.register(f"bound-{bound}")
    post(
        service,
        cred,
        snapshot(cid, [(f"w{i}", f"{registry.host}/bound/app:{i}", img.digest) for i, img in enumerate(imgs)]),
    )
    evaluator = evaluator_for(service, config, registry_concurrency=bound)
    flight = InFlight(evaluator)

    report = evaluator.run_pass()

    assert (report.evaluated, dict(report.statuses), report.provenance_due) == (8, {"verified": 8}, 8)
    assert report.requests == 8  # a manifest GET each; the pass ends before any config is asked
    assert evaluator.provenance.stats.recorded == 0  # the recorder's first blob takes 50 ms: it had none yet
    assert evaluator.provenance.wait(30)
    assert (evaluator.provenance.stats.requests, evaluator.provenance.stats.recorded) == (8, 8)  # the configs
    assert flight.most == bound  # the recorder's requests keep the bound too


def test_a_registry_concurrency_below_one_is_refused_naming_the_setting(service):
    with pytest.raises(ValueError, match=r"^registry concurrency 0 must be at least 1 request at a time$"):
        IntegrityEvaluator(service.engine, client_for(registry_config("127.0.0.1:1")), registry_concurrency=0)


def test_a_manifest_over_the_size_limit_still_gets_its_verdict_by_a_head(registry, service, caplog):
    # The GET that would keep the manifest for provenance is refused past max_manifest_bytes; the
    # verdict needs only the digest, so the tag is asked again with a HEAD, and provenance is not recorded.
    config = registry_config(registry.host)
    assert put_policy(service, {"trusted": [registry.host]}).status_code == 200
    img = image("over-limit")
    with client_for(config) as pusher:
        push(pusher, f"{registry.host}/limit/app:1", img)
    cid, cred = service.register("limit")
    post(service, cred, snapshot(cid, [("w", f"{registry.host}/limit/app:1", img.digest)]))
    client = RegistryClient(config, retry=FAST_RETRY, timeout=5.0, max_manifest_bytes=64)
    evaluator = IntegrityEvaluator(service.engine, client, registry_concurrency=2)
    try:
        with caplog.at_level(logging.WARNING):
            report = evaluator.run_pass()
            assert (dict(report.statuses), report.provenance_due) == ({"verified": 1}, 1)
            assert client.stats.snapshot()["by_kind"] == {"manifest_get": 1, "manifest_head": 1}
            assert evaluator.provenance.wait(30)
        assert (evaluator.provenance.stats.recorded, evaluator.provenance.stats.failed) == (0, 1)
        [warning] = [r for r in caplog.records if r.getMessage() == "provenance not recorded"]
        assert "manifest larger than the limit max_manifest_bytes (VIGIL_SCAN_MAX_MANIFEST_BYTES=64)" in warning.error
    finally:
        evaluator.stop()
        client.close()
