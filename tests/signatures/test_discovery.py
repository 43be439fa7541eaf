"""Discovery against a real loopback docker-registry (cosign's tag scheme; Debian's distribution has no
referrers API) and the referrers API against a read-only server that serves files as they are."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from tests.signatures.shared import ANY_IDENTITY, CONNAISSEUR, GO, TESTIMAGE, key, public_good, root

from vigil.devtools.oci import build_image, build_index, push, sha256, tar_layer
from vigil.devtools.registry_server import RegistryServer
from vigil.devtools.signing import SIMPLE_SIGNING, new_key, payload, public_pem, sign, signature_manifest
from vigil.model.image import parse_image_ref
from vigil.registry import RegistryClient, RegistryConfig, RetryPolicy
from vigil.registry.signatures import discover
from vigil.service.cli.signature_check import check_signatures
from vigil.signatures.certs import IdentityRule
from vigil.signatures.keys import TrustedKey, load_public_key
from vigil.signatures.outcome import Absent, Invalid, Unknown, Verified

OCI = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
FAST_RETRY = RetryPolicy(max_attempts=2, backoff_base=0.01, backoff_max=0.02)


def client_for(host: str) -> RegistryClient:
    return RegistryClient(RegistryConfig.from_mapping({host: {"plain_http": True}}), retry=FAST_RETRY, timeout=5.0)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with RegistryServer.for_pytest(tmp_path_factory.mktemp("registry")) as server:
        yield server


KEY = new_key()
OTHER = new_key()
ACCEPTED = (TrustedKey("ci", load_public_key(public_pem(KEY))),)


def pushed(client: RegistryClient, host: str, name: str) -> tuple[str, str]:
    ref = f"{host}/sig/{name}:v1"
    digest = push(client, ref, build_image([tar_layer({"app/NAME": name.encode()})]))
    return ref, digest


def test_debian_docker_registry_has_no_referrers_api(registry: RegistryServer) -> None:
    with client_for(registry.host) as client:
        ref, digest = pushed(client, registry.host, "probe")
        found = discover(client, ref, [digest])
    assert (found.referrers_api, found.artifacts) == (False, ())


def test_a_signature_under_the_cosign_tag_verifies(registry: RegistryServer) -> None:
    with client_for(registry.host) as client:
        ref, digest = pushed(client, registry.host, "signed")
        sig_digest = sign(client, ref, digest, KEY)
        found = discover(client, ref, [digest])
        assert [(a.source, a.subject, a.manifest_digest, a.artifact_type) for a in found.artifacts] == [
            ("tag", digest, sig_digest, ".sig")
        ]
        outcome = check_signatures(client, parse_image_ref(ref), [digest], keys=ACCEPTED)
    assert outcome == Verified(by="ci", docker_reference=f"{registry.host}/sig/signed")


def test_a_key_that_did_not_sign_is_invalid(registry: RegistryServer) -> None:
    with client_for(registry.host) as client:
        ref, digest = pushed(client, registry.host, "other-key")
        sign(client, ref, digest, OTHER)
        outcome = check_signatures(client, parse_image_ref(ref), [digest], keys=ACCEPTED)
    assert outcome == Invalid("the signature does not verify with the accepted keys")


def test_a_corrupted_signature_is_invalid(registry: RegistryServer) -> None:
    with client_for(registry.host) as client:
        ref, digest = pushed(client, registry.host, "corrupt")
        sign(client, ref, digest, KEY, corrupt=True)
        outcome = check_signatures(client, parse_image_ref(ref), [digest], keys=ACCEPTED)
    assert outcome == Invalid("the signature does not verify with the accepted keys")


def test_no_signature_is_absent(registry: RegistryServer) -> None:
    with client_for(registry.host) as client:
        ref, digest = pushed(client, registry.host, "unsigned")
        assert check_signatures(client, parse_image_ref(ref), [digest], keys=ACCEPTED) == Absent()


def test_an_index_is_checked_for_the_index_and_the_platform_manifest(registry: RegistryServer) -> None:
    with client_for(registry.host) as client:
        amd = build_image([tar_layer({"a": b"amd64"})], platform="linux/amd64")
        arm = build_image([tar_layer({"a": b"arm64"})], platform="linux/arm64")
        ref = f"{registry.host}/sig/multi:v1"
        index_digest = push(client, ref, build_index([amd, arm]))
        sign(client, ref, amd.digest, KEY)
        outcome = check_signatures(client, parse_image_ref(ref), [index_digest, amd.digest], keys=ACCEPTED)
        assert outcome == Verified(by="ci", docker_reference=f"{registry.host}/sig/multi")
        assert check_signatures(client, parse_image_ref(ref), [index_digest], keys=ACCEPTED) == Absent()


def test_a_stopped_registry_is_unknown(tmp_path_factory: pytest.TempPathFactory) -> None:
    with RegistryServer.for_pytest(tmp_path_factory.mktemp("stopped")) as server:
        with client_for(server.host) as client:
            ref, digest = pushed(client, server.host, "gone")
            server.stop()
            outcome = check_signatures(client, parse_image_ref(ref), [digest], keys=ACCEPTED)
    assert isinstance(outcome, Unknown)
    assert outcome.why.startswith("signatures could not be fetched: ")


class Files:
    """A read-only registry: fixed answers by path, 404 otherwise."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[str, bytes]] = {}
        self.requests: list[str] = []


@pytest.fixture
def files() -> Iterator[tuple[Files, str]]:
    state = Files()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _answer(self, body: bool) -> None:
            state.requests.append(self.path)
            path = self.path.split("?", 1)[0]
            found = state.files.get(path)
            if found is None:
                data = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}'
                self.send_response(404)
                self.send_header("Content-Type", "application/json")
            else:
                media_type, data = found
                self.send_response(200)
                self.send_header("Content-Type", media_type)
                if "/manifests/" in path:
                    self.send_header("Docker-Content-Digest", sha256(data))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer(True)

        def do_HEAD(self) -> None:
            self._answer(False)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def referrers_index(manifest: bytes, artifact_type: str) -> bytes:
    """The referrers API's answer listing one referrer manifest."""
    descriptor = {"mediaType": OCI, "digest": sha256(manifest), "size": len(manifest), "artifactType": artifact_type}
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor]}).encode()


def test_an_oci_referrer_verifies(files: tuple[Files, str]) -> None:
    state, host = files
    image = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}'
    digest = sha256(image)
    body = payload(digest, f"{host}/sig/ref")
    manifest, config = signature_manifest(body, KEY.sign(body, ec.ECDSA(hashes.SHA256())), subject=(digest, len(image)))
    oci = "application/vnd.oci.image.manifest.v1+json"
    state.files = {
        f"/v2/sig/ref/manifests/{digest}": (oci, image),
        f"/v2/sig/ref/referrers/{digest}": (OCI_INDEX, referrers_index(manifest, SIMPLE_SIGNING)),
        f"/v2/sig/ref/manifests/{sha256(manifest)}": (oci, manifest),
        f"/v2/sig/ref/blobs/{sha256(body)}": ("application/octet-stream", body),
        f"/v2/sig/ref/blobs/{sha256(config)}": ("application/octet-stream", config),
    }
    with client_for(host) as client:
        found = discover(client, f"{host}/sig/ref@{digest}", [digest], artifact_types=[SIMPLE_SIGNING])
        assert [(a.source, a.manifest_digest, a.artifact_type) for a in found.artifacts] == [
            ("referrer", sha256(manifest), SIMPLE_SIGNING)
        ]
        assert found.referrers_api is True
        outcome = check_signatures(client, parse_image_ref(f"{host}/sig/ref@{digest}"), [digest], keys=ACCEPTED)
    assert outcome == Verified(by="ci", docker_reference=f"{host}/sig/ref")
    assert (
        f"/v2/sig/ref/referrers/{digest}?artifactType=application%2Fvnd.dev.cosign.simplesigning.v1%2Bjson"
        in state.requests
    )


def test_a_sigstore_bundle_referrer_verifies_by_identity(files: tuple[Files, str]) -> None:
    # cosign's own OCI 1.1 referrer bundle (shared data), served as a referrer of the digest it attests.
    state, host = files
    data = (GO.parent / "sigstore+cosign/pkg/cosign/testdata/oci-attestation.sigstore.json").read_bytes()
    trusted = root(GO.parent / "sigstore+cosign/pkg/cosign/testdata/trusted_root_pgi.json")
    digest = "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"
    bundle_type = "application/vnd.dev.sigstore.bundle.v0.3+json"
    config = b"{}"
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": bundle_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(config), "size": 2},
            "layers": [{"mediaType": bundle_type, "digest": sha256(data), "size": len(data)}],
            "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": 1},
        }
    ).encode()
    oci = "application/vnd.oci.image.manifest.v1+json"
    state.files = {
        f"/v2/repo/referrers/{digest}": (OCI_INDEX, referrers_index(manifest, bundle_type)),
        f"/v2/repo/manifests/{sha256(manifest)}": (oci, manifest),
        f"/v2/repo/blobs/{sha256(data)}": ("application/octet-stream", data),
    }
    image = parse_image_ref(f"{host}/repo@{digest}")
    cody = IdentityRule(issuer="https://github.com/login/oauth", subject="cody@soyland.com")
    with client_for(host) as client:
        outcome = check_signatures(client, image, [digest], identities=(cody,), root=trusted)
        assert isinstance(outcome, Verified)
        assert (outcome.by, outcome.predicate_type) == (
            "https://github.com/login/oauth=cody@soyland.com",
            "https://cosign.sigstore.dev/attestation/v1",
        )
        other = IdentityRule(issuer="https://github.com/login/oauth", subject_pattern="alice@.*")
        assert check_signatures(client, image, [digest], identities=(other,), root=trusted) == Invalid(
            "signed by https://github.com/login/oauth=cody@soyland.com, which no accepted identity matches"
        )
        # The same bundle as a referrer of another digest: its statement does not name that digest.
        other_digest = "sha256:" + "0" * 64
        state.files[f"/v2/repo/referrers/{other_digest}"] = state.files.pop(f"/v2/repo/referrers/{digest}")
        assert check_signatures(
            client, parse_image_ref(f"{host}/repo@{other_digest}"), [other_digest], identities=(cody,), root=trusted
        ) == Invalid(f"no subject of the in-toto statement has the digest {other_digest}")


def test_the_connaisseur_tree_through_the_registry_client(files: tuple[Files, str]) -> None:
    # The shared tree lacks its images' blobs, so a real registry refuses its manifests: served as it is.
    state, host = files
    oci = "application/vnd.oci.image.manifest.v1+json"
    repo = "/v2/securesystemsengineering/testimage"
    for path in (TESTIMAGE / "manifests").glob("sha256-*.sig.json"):
        state.files[f"{repo}/manifests/{path.name.removesuffix('.json')}"] = (oci, path.read_bytes())
    for path in (TESTIMAGE / "blobs").iterdir():
        state.files[f"{repo}/blobs/{path.name.removesuffix('.json')}"] = ("application/octet-stream", path.read_bytes())
    keys = tuple(key(n, CONNAISSEUR / f"{n}.key") for n in ("alice", "bob", "charlie"))
    image = parse_image_ref(f"{host}/securesystemsengineering/testimage:x")
    three = "sha256:bfec161fecb0a887df7cb85e4da327c65986ccda7060cf3cd92171c6c90d7533"
    keyless = "sha256:31dc72a13a0c34b40eb95419d2b2fd67320c856baf3b72da518023ee8d370aee"
    unsigned = sha256((TESTIMAGE / "manifests/co-unsigned.json").read_bytes())
    with client_for(host) as client:
        found = discover(client, image, [three])
        assert (found.referrers_api, [a.source for a in found.artifacts]) == (False, ["tag"])
        assert check_signatures(client, image, [three], keys=keys) == Verified(
            by="alice, bob, charlie", docker_reference="index.docker.io/securesystemsengineering/testimage"
        )
        assert check_signatures(client, image, [three], keys=keys[2:]) == Verified(
            by="charlie", docker_reference="index.docker.io/securesystemsengineering/testimage"
        )
        outcome = check_signatures(client, image, [keyless], identities=ANY_IDENTITY, root=public_good())
        assert isinstance(outcome, Verified)
        assert outcome.by == "https://github.com/login/oauth=philipp.belitz@securesystems.de"
        assert check_signatures(client, image, [unsigned], keys=keys) == Absent()
