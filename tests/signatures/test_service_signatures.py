"""End to end: a real loopback docker-registry, images the test builds and pushes, signed by the test with
keys it generates (cosign's simple-signing payload under the `sha256-<hex>.sig` tag, SLSA v1 provenance
under `.att`), an inventory posted to a real service, verification through POST /api/v1/signatures/verify,
findings and per-image signatures read back through the API.

Debian's docker-registry has no referrers API (GET /v2/<name>/referrers/<digest> answers 404), so what a
real registry shows here is the tag scheme; the referrers path is tested against a read-only server in
test_discovery.py."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest
from tests.admission.reviews import pod, review
from tests.integrity.integrity_helpers import client_for, image, image_pk, post, put_policy, registry_config, snapshot
from tests.signatures.shared import GO
from tests.signatures.test_discovery import OCI_INDEX, files, referrers_index  # noqa: F401 (files: a fixture)

from vigil.devtools.admission import WebhookProcess
from vigil.devtools.oci import push, sha256
from vigil.devtools.registry_server import RegistryServer
from vigil.devtools.service import LiveService
from vigil.devtools.signing import attest, new_key, public_pem, sign, slsa_v1_statement
from vigil.service.jobs.signatures import SignatureVerifier
from vigil.signatures.keys import key_id, load_public_key

SIGNATURE_TYPES = "unsigned_image,signature_invalid,provenance_mismatch"
BUILDER = "https://github.com/actions/runner/github-hosted"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    with RegistryServer.for_pytest(tmp_path_factory.mktemp("registry")) as server:
        yield server


@pytest.fixture
def service(tmp_path):
    svc = LiveService(tmp_path / "data").start()
    yield svc
    svc.stop()


def corrupt_blob(registry: RegistryServer, digest: str) -> None:
    """Flip one byte of a blob where docker-registry stores it (same size: only the digest tells)."""
    hexd = digest.removeprefix("sha256:")
    path = Path(registry.storage_dir) / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def verify(svc, *, all: bool = False) -> dict:
    r = httpx.post(
        f"{svc.url}/api/v1/signatures/verify",
        params={"all": str(all).lower()},
        headers={"Authorization": f"Bearer {svc.admin_token}"},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    return r.json()


def console_page(svc, path: str) -> str:
    """A console page as a signed-in admin sees it (sign-in through the login form, as a browser does)."""
    cookie = "vigil_session"
    with httpx.Client(base_url=svc.url, timeout=30) as client:
        login = client.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', login.text)
        assert csrf
        signed_in = client.post(
            "/login",
            data={"token": svc.admin_token, "csrf": csrf.group(1), "next": "/"},
            headers={"Cookie": f"{cookie}={login.cookies[cookie]}"},
        )
        assert signed_in.status_code == 303
        page = client.get(path, headers={"Cookie": f"{cookie}={signed_in.cookies[cookie]}"})
        assert page.status_code == 200, page.text
        return page.text


def signature_findings(svc, **params) -> list[dict]:
    found = svc.list_all("/api/v1/findings", type=SIGNATURE_TYPES, **params)
    return sorted(found, key=lambda f: (f["workload"]["name"], f["type"]))


def signatures_of(svc, pk: int) -> dict:
    r = svc.get(f"/api/v1/images/{pk}/signatures")
    assert r.status_code == 200, r.text
    return r.json()


def test_signatures_verified_unsigned_invalid_and_provenance_in_the_inventory(registry, service) -> None:
    svc, host = service, registry.host
    config = registry_config(host)
    verifier = SignatureVerifier(svc.engine, client_for(config), reverify_interval=1.0, workers=2)
    svc.app.state.workers.signatures = verifier
    ci, other = new_key(), new_key()
    ci_id = key_id(load_public_key(public_pem(ci)))
    with client_for(config) as pusher:
        repo = f"{host}/sig/app"
        pushed = {}
        for name in ("signed", "unsigned", "foreign", "corrupt", "acme", "evil"):
            img = image(f"sig-{name}")
            push(pusher, f"{repo}:{name}", img)
            pushed[name] = img.digest
        sign(pusher, repo, pushed["signed"], ci)
        sign(pusher, repo, pushed["foreign"], other)
        corrupt_sig = sign(pusher, repo, pushed["corrupt"], ci)
        for name, source in (("acme", "https://github.com/acme/app"), ("evil", "https://github.com/evil/app")):
            sign(pusher, repo, pushed[name], ci)
            statement = slsa_v1_statement(pushed[name], repo, builder_id=BUILDER, repository=source, commit="c0ffee")
            attest(pusher, repo, pushed[name], ci, statement)
        # The payload blob of the corrupt image's signature, flipped where the registry stores it.
        manifest = pusher.get_manifest_bytes(repo, corrupt_sig)[0]
        payload_digest = json.loads(manifest)["layers"][0]["digest"]
    corrupt_blob(registry, payload_digest)

    ci_pem = public_pem(ci).decode()
    doc = {
        "trusted": [host],
        "signatures": [
            {"pattern": f"{host}/sig", "keys": [{"name": "ci", "pem": ci_pem}]},
            {
                "pattern": f"{host}/sig",
                "namespace": "payments",
                "keys": [{"name": "ci", "pem": ci_pem}],
                "attestations": ["https://slsa.dev/provenance/v1"],
                "source_repositories": ["https://github.com/acme/app"],
                "builder_ids": [BUILDER],
            },
        ],
    }
    assert put_policy(svc, doc).status_code == 200
    cid, cred = svc.register("c1")
    shop = [(n, f"{repo}:{n}", pushed[n]) for n in ("signed", "unsigned", "foreign", "corrupt")]
    post(svc, cred, snapshot(cid, shop))
    report = verify(svc)
    assert (report["due"], report["checked"], report["statuses"]) == (4, 4, {"verified": 1, "absent": 1, "invalid": 2})
    assert report["requests"] > 0

    found = signature_findings(svc, status="open")
    assert [(f["type"], f["severity"], f["workload"]["name"], f["namespace"]) for f in found] == [
        ("signature_invalid", "critical", "corrupt", "shop"),
        ("unsigned_image", "high", "foreign", "shop"),
        ("unsigned_image", "high", "unsigned", "shop"),
    ]
    rule = f"signatures for {host}/sig (global)"
    invalid, foreign, unsigned = found
    assert invalid["evidence"]["failing_check"] == (
        f"signature {corrupt_sig}: invalid: the blob {payload_digest} the registry serves is not the content of "
        "its digest"
    )
    assert invalid["evidence"]["rule"] == rule
    assert invalid["evidence"]["accepted_signers"] == [f"key ci ({ci_id})"]
    assert invalid["evidence"]["image"] == f"{repo}:corrupt@{pushed['corrupt']}"
    assert foreign["evidence"]["failing_check"] == "no signature by an accepted key or identity"
    assert foreign["evidence"]["signatures"] == [
        f"signature {sha256(pusher_manifest(host, repo, pushed['foreign']))}: invalid: the signature does not "
        "verify with any accepted key (another key made it, or it was altered)"
    ]
    assert unsigned["evidence"]["signatures"] == []

    signed = signatures_of(svc, image_pk(svc, cid, "signed"))
    assert (signed["digest"], signed["status"], signed["referrers_api"]) == (pushed["signed"], "verified", False)
    assert [
        (c["source"], c["kind"], c["result"], c["signer"], c["key_id"], c["docker_reference"]) for c in signed["checks"]
    ] == [("tag", "signature", "verified", f"key ci ({ci_id})", ci_id, repo)]
    assert signed["next_check_at"] is None  # verified: never asked again
    assert [(w["workload_name"], w["status"], w["rule"], w["signed_by"]) for w in signed["workloads"]] == [
        ("signed", "verified", rule, [f"key ci ({ci_id})"])
    ]

    # No registry request for what is verified; the others are asked again once the interval is over.
    time.sleep(1.1)
    again = verify(svc)
    assert (again["due"], again["statuses"]) == (3, {"absent": 1, "invalid": 2})
    assert signatures_of(svc, image_pk(svc, cid, "signed"))["checked_at"] == signed["checked_at"]

    # A valid signature appears: the finding resolves, with who signed.
    with client_for(config) as pusher:
        sign(pusher, repo, pushed["unsigned"], ci)
    time.sleep(1.1)
    verify(svc)
    assert [(f["type"], f["workload"]["name"]) for f in signature_findings(svc, status="open")] == [
        ("signature_invalid", "corrupt"),
        ("unsigned_image", "foreign"),
    ]
    resolved = signature_findings(svc, status="resolved")
    assert [f["workload"]["name"] for f in resolved] == ["unsigned"]
    history = svc.get(f"/api/v1/findings/{resolved[0]['id']}").json()["history"]
    assert [(h["to_status"], h["reason"]) for h in history] == [
        ("open", "observed"),
        ("resolved", f"condition ended: signed by key ci ({ci_id})"),
    ]

    # Provenance: in namespace payments the rule wants SLSA v1 provenance from acme's repository.
    post(
        svc,
        cred,
        snapshot(cid, [(n, f"{repo}:{n}", pushed[n]) for n in ("acme", "evil")], namespace="payments"),
    )
    verify(svc)
    found = signature_findings(svc, status="open", namespace="payments")
    assert [(f["type"], f["severity"], f["workload"]["name"]) for f in found] == [
        ("provenance_mismatch", "high", "evil")
    ]
    assert found[0]["evidence"]["failing_check"] == (
        "source repository https://github.com/evil/app is not one of https://github.com/acme/app"
    )
    assert found[0]["evidence"]["signed_by"] == [f"key ci ({ci_id})"]
    acme = signatures_of(svc, image_pk(svc, cid, "acme"))
    attestation = [c for c in acme["checks"] if c["kind"] == "attestation"]
    assert [(c["result"], c["predicate_type"], c["provenance"]) for c in attestation] == [
        (
            "verified",
            "https://slsa.dev/provenance/v1",
            {
                "builder_id": BUILDER,
                "source_repository": "https://github.com/acme/app",
                "source_revision": "c0ffee",
                "build_trigger": "push",
            },
        )
    ]
    assert [(w["workload_name"], w["status"]) for w in acme["workloads"]] == [("acme", "verified")]

    # The console's image page shows the same: who signed, the provenance facts, each workload's verdict.
    html = console_page(svc, f"/images/{image_pk(svc, cid, 'evil')}")
    section = html[html.index('<section class="panel" id="signatures">') :]
    section = section[: section.index("</section>")]
    assert f'<td class="mono signer">key ci ({ci_id})</td>' in section
    assert '<dd class="mono" data-field="source_repository">https://github.com/evil/app</dd>' in section
    assert '<dd class="mono" data-field="builder_id">' + BUILDER + "</dd>" in section
    assert (
        '<tr data-workload="payments/Deployment/evil"><td>payments/Deployment/evil</td>'
        '<td><span class="tag status-violation">violation</span></td>'
        f"<td>signatures for {host}/sig (global, namespace payments)</td>"
        "<td>source repository https://github.com/evil/app is not one of https://github.com/acme/app</td></tr>"
    ) in section
    assert ">provenance_mismatch</a>" in section
    assert "the registry has no referrers API, cosign's tags were read" in section


def pusher_manifest(host: str, repo: str, digest: str) -> bytes:
    with client_for(registry_config(host)) as client:
        return client.get_manifest_bytes(repo, digest.replace(":", "-", 1) + ".sig")[0]


def test_the_webhook_refuses_the_unsigned_image_under_an_enforcing_policy(registry, service, tmp_path) -> None:
    """The real `vigil admission` process, fed by the service: the checks the service stored for each digest
    reach the webhook, which judges them with the same code."""
    svc, host = service, registry.host
    config = registry_config(host)
    svc.app.state.workers.signatures = SignatureVerifier(svc.engine, client_for(config), workers=2)
    ci = new_key()
    repo = f"{host}/hook/app"
    with client_for(config) as pusher:
        signed, unsigned = image("hook-signed"), image("hook-unsigned")
        push(pusher, f"{repo}:signed", signed)
        push(pusher, f"{repo}:unsigned", unsigned)
        sign(pusher, repo, signed.digest, ci)
    rule = {"pattern": f"{host}/hook", "keys": [{"name": "ci", "pem": public_pem(ci).decode()}]}
    assert put_policy(svc, {"trusted": [host], "signatures": [rule]}).status_code == 200
    enforcement = {"policies": [{"name": "signed", "mode": "enforce", "rules": {"signatures": True}}]}
    admin = {"Authorization": f"Bearer {svc.admin_token}"}
    httpx.put(f"{svc.url}/api/v1/policy/enforcement", json=enforcement, headers=admin, timeout=30).raise_for_status()
    cid, cred = svc.register("hook")
    running = [("signed", f"{repo}:signed", signed.digest), ("unsigned", f"{repo}:unsigned", unsigned.digest)]
    post(svc, cred, snapshot(cid, running))
    assert verify(svc)["statuses"] == {"verified": 1, "absent": 1}
    issued = httpx.post(
        f"{svc.url}/api/v1/clusters/{cid}/admission-credential",
        json={},
        headers={"Authorization": f"Bearer {cred}"},
        timeout=30,
    )
    issued.raise_for_status()
    (tmp_path / "registries.yaml").write_text(f"{host}:\n  plain_http: true\n")
    with WebhookProcess(
        tmp_path / "webhook",
        svc.url,
        cid,
        issued.json()["credential"],
        registry_config=tmp_path / "registries.yaml",
    ) as webhook:
        with httpx.Client(base_url=webhook.url, verify=webhook.ssl_context(), timeout=10) as hook:

            def answer(ref: str) -> dict:
                return hook.post("/validate", json=review(pod(ref, namespace="shop"))).json()["response"]

            refused = answer(f"{repo}@{unsigned.digest}")
            assert refused["allowed"] is False
            assert refused["status"]["message"] == (
                f'policy "signed" rule signatures: image {repo}@{unsigned.digest}: unsigned_image: no signature by '
                f"an accepted key or identity (signatures for {host}/hook (global))"
            )
            assert answer(f"{repo}@{signed.digest}")["allowed"] is True


def test_the_trust_api_keeps_signature_rules_and_names_a_bad_field(service) -> None:
    pem = public_pem(new_key()).decode()
    rule = {
        "pattern": "registry.example.com/team",
        "namespace": "payments",
        "keys": [{"name": "ci", "pem": pem}],
        "identities": [
            {"issuer": "https://token.actions.githubusercontent.com", "subject_pattern": "https://github.com/acme/.*"}
        ],
        "attestations": ["https://slsa.dev/provenance/v1"],
        "source_repositories": ["https://github.com/acme/app"],
        "builder_ids": [],
    }
    doc = {"trusted": ["registry.example.com"], "clusters": {"prod": {"signatures": [rule]}}}
    put = put_policy(service, doc)
    assert put.status_code == 200, put.text
    got = service.get("/api/v1/policy/trust").json()
    assert got["signatures"] == []
    assert got["clusters"]["prod"]["signatures"] == [
        {**rule, "identities": [{**rule["identities"][0], "issuer_pattern": None, "subject": None}]}
    ]
    html = console_page(service, "/settings")
    table = html[html.index('<table id="signature-rules">') :]
    table = table[: table.index("</table>")]
    assert (
        '<tr data-pattern="registry.example.com/team" data-cluster="prod" data-namespace="payments">'
        '<td>cluster prod</td><td class="mono">registry.example.com/team</td><td>payments</td>'
        '<td class="mono">key ci; identity https://token.actions.githubusercontent.com=/https://github.com/acme/.*/; '
        "attestation https://slsa.dev/provenance/v1; source https://github.com/acme/app</td>"
    ) in table
    bad = {"trusted": [], "signatures": [{"pattern": "registry.example.com", "keys": [{"name": "ci", "pem": "x"}]}]}
    r = put_policy(service, bad)
    assert r.status_code == 422
    assert r.json()["detail"].startswith("body.signatures[0].keys[0].pem: not a PEM or DER public key")
    assert service.get("/api/v1/policy/trust").json()["revision"] == got["revision"]


def test_a_keyless_sigstore_bundle_referrer_through_the_service(files, service) -> None:  # noqa: F811 (fixture)
    """cosign's OCI 1.1 referrer bundle (shared data) served by a read-only registry with the referrers API:
    verified by its keyless identity against the supplied trusted root, judged against the rule's identities;
    a changed rule is judged again from the stored checks, with no registry request."""
    state, host = files
    data = (GO.parent / "sigstore+cosign/pkg/cosign/testdata/oci-attestation.sigstore.json").read_bytes()
    trusted_root = (GO.parent / "sigstore+cosign/pkg/cosign/testdata/trusted_root_pgi.json").read_bytes()
    digest = "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"
    bundle_type = "application/vnd.dev.sigstore.bundle.v0.3+json"
    oci = "application/vnd.oci.image.manifest.v1+json"
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": oci,
            "artifactType": bundle_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(b"{}"), "size": 2},
            "layers": [{"mediaType": bundle_type, "digest": sha256(data), "size": len(data)}],
            "subject": {"mediaType": oci, "digest": digest, "size": 1},
        }
    ).encode()
    state.files = {
        f"/v2/repo/referrers/{digest}": (OCI_INDEX, referrers_index(manifest, bundle_type)),
        f"/v2/repo/manifests/{sha256(manifest)}": (oci, manifest),
        f"/v2/repo/blobs/{sha256(data)}": ("application/octet-stream", data),
    }
    svc = service
    verifier = SignatureVerifier(svc.engine, client_for(registry_config(host)), trusted_root=trusted_root)
    svc.app.state.workers.signatures = verifier
    attestation = "https://cosign.sigstore.dev/attestation/v1"

    def require(subject: dict) -> None:
        rule = {"pattern": host, "identities": [{"issuer": "https://github.com/login/oauth", **subject}]}
        rule["attestations"] = [attestation]
        assert put_policy(svc, {"trusted": [host], "signatures": [rule]}).status_code == 200

    require({"subject": "cody@soyland.com"})
    cid, cred = svc.register("keyless")
    post(svc, cred, snapshot(cid, [("app", f"{host}/repo:1", digest)]))
    report = verify(svc)
    assert report["statuses"] == {"verified": 1}
    pk = image_pk(svc, cid, "app")
    seen = signatures_of(svc, pk)
    cody = "identity https://github.com/login/oauth=cody@soyland.com"
    assert (seen["status"], seen["referrers_api"]) == ("verified", True)
    assert [(c["source"], c["kind"], c["result"], c["signer"], c["predicate_type"]) for c in seen["checks"]] == [
        ("referrer", "attestation", "verified", cody, attestation)
    ]
    assert seen["checks"][0]["signed_at"] is not None
    # The rule also asks for an image signature by that identity: the attestation is not one.
    assert [(w["status"], w["findings"], w["failing_checks"]) for w in seen["workloads"]] == [
        ("violation", ["unsigned_image"], ["no signature by an accepted key or identity"])
    ]
    # Another identity: judged again from the stored checks, no registry request.
    require({"subject_pattern": "alice@.*"})
    again = verify(svc)
    assert (again["due"], again["requests"], again["judged"]) == (0, 0, 1)
    (finding,) = signature_findings(svc, status="open")
    assert finding["evidence"]["failing_checks"] == [
        "no signature by an accepted key or identity",
        f"no attestation of type {attestation} by an accepted signer",
    ]
    assert finding["evidence"]["signatures"] == [
        f"attestation {sha256(manifest)}: signed by {cody}, which the rule does not accept"
    ]


def test_the_service_checks_keyless_signatures_against_its_configured_trusted_root(tmp_path) -> None:
    from typer.testing import CliRunner

    from vigil.cli import app as vigil_app
    from vigil.service.jobs.workers import make_signatures
    from vigil.service.settings import IntegritySettings, Settings
    from vigil.service.store.db import create_store_engine

    pgi = GO.parent / "sigstore+cosign/pkg/cosign/testdata/trusted_root_pgi.json"
    settings = Settings(data_dir=tmp_path, integrity=IntegritySettings(sigstore_trusted_root=pgi))
    engine = create_store_engine(f"sqlite:///{tmp_path / 'vigil.db'}")
    verifier = make_signatures(settings, engine)
    try:
        assert verifier.root().raw == pgi.read_bytes()
    finally:
        verifier.client.close()
        engine.dispose()
    default = make_signatures(Settings(data_dir=tmp_path), create_store_engine(f"sqlite:///{tmp_path / 'b.db'}"))
    assert len(default.root().certificate_authorities) > 0  # the public-good root the sigstore package ships
    default.client.close()
    # A file that is no trusted root stops the service before it starts, naming the option and the file.
    bad = tmp_path / "root.json"
    bad.write_text("{}")
    r = CliRunner().invoke(
        vigil_app, ["service", "--sigstore-trusted-root", str(bad), "--data-dir", str(tmp_path / "d")]
    )
    assert r.exit_code == 2
    assert r.output.strip() == f"error: --sigstore-trusted-root {bad}: mediaType: not a Sigstore trusted root"
