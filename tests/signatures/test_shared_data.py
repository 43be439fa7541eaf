"""Every signature, bundle and attestation of the shared data: the valid ones verify with exact
signers, the ones the README says must be rejected are, and a tampered copy of each valid one is."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from tests.signatures.shared import (
    ANY_IDENTITY,
    CONNAISSEUR,
    EXTRACTED,
    GO,
    IN_TOTO,
    PY_ASSETS,
    TESTIMAGE,
    key,
    public_good,
    root,
    staging,
    tsa_root,
)

from vigil.signatures import bundle, cosign, dsse
from vigil.signatures.certs import IdentityRule
from vigil.signatures.outcome import Invalid, Provenance, Unknown, Verified
from vigil.signatures.trustroot import TrustedRoot

KEYS = tuple(key(n, CONNAISSEUR / f"{n}.key") for n in ("alice", "bob", "charlie", "default"))
BLOBS = {p.name.removesuffix(".json"): p.read_bytes() for p in (TESTIMAGE / "blobs").iterdir()}
ALICE_BOB_CHARLIE = "sha256:bfec161fecb0a887df7cb85e4da327c65986ccda7060cf3cd92171c6c90d7533"
ALICE = "sha256:071bf7a986f1ca9cb2a1f0bc8392822a7777f90d58f2d2c6f271913e08de7c81"
KEYLESS = "sha256:31dc72a13a0c34b40eb95419d2b2fd67320c856baf3b72da518023ee8d370aee"


def sig_manifest(digest: str) -> bytes:
    return (TESTIMAGE / "manifests" / f"sha256-{digest.removeprefix('sha256:')}.sig.json").read_bytes()


def test_the_manifests_are_named_by_their_digest() -> None:
    for name, digest in (
        ("multi-cosigned-alice-bob-charlie", ALICE_BOB_CHARLIE),
        ("multi-cosigned-alice", ALICE),
        ("keyless", KEYLESS),
    ):
        data = (TESTIMAGE / "manifests" / f"{name}.json").read_bytes()
        assert "sha256:" + hashlib.sha256(data).hexdigest() == digest


def test_three_keys_sign_one_image() -> None:
    outcome, parts = cosign.verify_signature_manifest(
        sig_manifest(ALICE_BOB_CHARLIE), BLOBS, ALICE_BOB_CHARLIE, keys=KEYS
    )
    ref = "index.docker.io/securesystemsengineering/testimage"
    assert outcome == Verified(by="alice, bob, charlie", docker_reference=ref)
    assert parts == tuple(Verified(by=n, docker_reference=ref) for n in ("alice", "bob", "charlie"))


def test_one_key_signs_the_other_image() -> None:
    outcome, _ = cosign.verify_signature_manifest(sig_manifest(ALICE), BLOBS, ALICE, keys=KEYS)
    assert outcome == Verified(by="alice", docker_reference="index.docker.io/securesystemsengineering/testimage")


def test_a_key_that_did_not_sign_rejects() -> None:
    outcome, _ = cosign.verify_signature_manifest(sig_manifest(ALICE), BLOBS, ALICE, keys=KEYS[1:])
    assert outcome == Invalid("the signature does not verify with the accepted keys")


def test_a_signature_of_another_image_rejects() -> None:
    outcome, _ = cosign.verify_signature_manifest(sig_manifest(ALICE), BLOBS, ALICE_BOB_CHARLIE, keys=KEYS)
    assert outcome == Invalid(f"the payload signs {ALICE}, not {ALICE_BOB_CHARLIE}")


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def test_a_tampered_payload_rejects() -> None:
    layer = json.loads(sig_manifest(ALICE))["layers"][0]
    blobs = {layer["digest"]: flip(BLOBS[layer["digest"]], 20)}
    outcome, _ = cosign.verify_signature_manifest(sig_manifest(ALICE), blobs, ALICE, keys=KEYS)
    assert outcome == Invalid("the signature does not verify with the accepted keys")


def test_a_tampered_signature_rejects() -> None:
    doc = json.loads(sig_manifest(ALICE))
    ann = doc["layers"][0]["annotations"]
    ann["dev.cosignproject.cosign/signature"] = base64.b64encode(
        flip(base64.b64decode(ann["dev.cosignproject.cosign/signature"]), 40)
    ).decode()
    outcome, _ = cosign.verify_signature_manifest(json.dumps(doc).encode(), BLOBS, ALICE, keys=KEYS)
    assert outcome == Invalid("the signature does not verify with the accepted keys")


PHILIPP = "https://github.com/login/oauth=philipp.belitz@securesystems.de"


def test_the_keyless_cosign_signature_verifies_by_identity() -> None:
    outcome, _ = cosign.verify_signature_manifest(
        sig_manifest(KEYLESS),
        BLOBS,
        KEYLESS,
        root=public_good(),
        identities=(IdentityRule(issuer_pattern=".*github.*", subject_pattern="philipp.*"),),
    )
    assert isinstance(outcome, Verified)
    assert (outcome.by, outcome.docker_reference, outcome.signed_at and outcome.signed_at.isoformat()) == (
        PHILIPP,
        "index.docker.io/phbelitz/rekor-test",
        "2024-05-30T15:18:17+00:00",
    )


def test_the_keyless_cosign_signature_rejects_another_identity() -> None:
    outcome, _ = cosign.verify_signature_manifest(
        sig_manifest(KEYLESS),
        BLOBS,
        KEYLESS,
        root=public_good(),
        identities=(IdentityRule(issuer_pattern=".*google.*", subject="bob@gmail.com"),),
    )
    assert outcome == Invalid(f"signed by {PHILIPP}, which no accepted identity matches")


def test_a_tampered_keyless_signature_rejects() -> None:
    doc = json.loads(sig_manifest(KEYLESS))
    ann = doc["layers"][0]["annotations"]
    ann["dev.cosignproject.cosign/signature"] = base64.b64encode(
        flip(base64.b64decode(ann["dev.cosignproject.cosign/signature"]), 40)
    ).decode()
    outcome, _ = cosign.verify_signature_manifest(
        json.dumps(doc).encode(), BLOBS, KEYLESS, root=public_good(), identities=ANY_IDENTITY
    )
    assert outcome == Invalid("the signature does not verify with the certificate's key")


def gh(subject: str) -> str:
    return f"https://token.actions.githubusercontent.com={subject}"


SJS = gh("https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main")

# (bundle, trusted root, artifact file or None for DSSE, signer, signed time or None, predicate type, provenance)
VALID_BUNDLES: list[tuple[Path, object, Path | None, str, str | None, str | None, Provenance | None]] = [
    (
        PY_ASSETS / "bundle_v3_github.whl.sigstore",
        public_good,
        PY_ASSETS / "bundle_v3_github.whl",
        gh("https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"),
        "2024-03-19T22:41:16+00:00",
        None,
        None,
    ),
    (
        PY_ASSETS / "bundle.txt.sigstore",
        staging,
        PY_ASSETS / "bundle.txt",
        "https://github.com/login/oauth=a@tny.town",
        "2023-04-26T00:21:09+00:00",
        None,
        None,
    ),
    (
        PY_ASSETS / "bundle_v3.txt.sigstore",
        staging,
        PY_ASSETS / "bundle_v3.txt",
        "https://github.com/login/oauth=william@yossarian.net",
        "2024-04-02T19:19:09+00:00",
        None,
        None,
    ),
    (
        PY_ASSETS / "bundle_v3_alt.txt.sigstore",
        staging,
        PY_ASSETS / "bundle_v3_alt.txt",
        "https://github.com/login/oauth=william@yossarian.net",
        "2024-04-02T19:20:16+00:00",
        None,
        None,
    ),
    (
        PY_ASSETS / "staging-rekor-v2.txt.sigstore.json",
        staging,
        PY_ASSETS / "staging-rekor-v2.txt",
        "https://github.com/login/oauth=jku@goto.fi",
        None,
        None,
        None,
    ),
    (
        PY_ASSETS / "a.dsse.staging-rekor-v2.txt.sigstore.json",
        staging,
        None,
        gh(
            "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
        ),
        None,
        "https://slsa.dev/provenance/v1",
        Provenance(builder_id="https://github.com/sigstore-conformance/rekor2-dsse-hashedrekord-regen"),
    ),
    (
        PY_ASSETS / "tsa/bundle.txt.sigstore",
        tsa_root,
        PY_ASSETS / "tsa/bundle.txt",
        "https://accounts.google.com=alexis.challande@trailofbits.com",
        None,
        None,
        None,
    ),
    (
        GO / "examples/bundle-provenance.json",
        lambda: root(GO / "examples/trusted-root-public-good.json"),
        None,
        SJS,
        "2023-04-18T17:45:12+00:00",
        "https://slsa.dev/provenance/v0.2",
        Provenance(
            "https://github.com/actions/runner",
            "git+https://github.com/sigstore/sigstore-js@refs/heads/main",
            "dae8bd8eb433a4147b4655c00fe73e0f22bc0fb1",
            None,
        ),
    ),
    (
        GO / "pkg/testing/data/bundles/dsse.sigstore.json",
        lambda: root(GO / "pkg/testing/data/trusted-roots/public-good.json"),
        None,
        "https://github.com/login/oauth=brian@dehamer.com",
        "2022-11-09T23:00:36+00:00",
        "https://slsa.dev/provenance/v0.2",
        Provenance(
            "https://github.com/npm/slsa-provenance@0.0.1",
            "git+https://github.com/github/slsa-provenance@refs/heads/demo",
            "29cff3dd65f780c3601bd457acb6fe4e5931c825",
            None,
        ),
    ),
    (
        GO / "pkg/testing/data/bundles/sigstore.js@2.0.0-provenance.sigstore.json",
        lambda: root(GO / "pkg/testing/data/trusted-roots/public-good.json"),
        None,
        SJS,
        "2023-08-18T16:05:35+00:00",
        "https://slsa.dev/provenance/v1",
        Provenance(
            "https://github.com/actions/runner/github-hosted",
            "https://github.com/sigstore/sigstore-js",
            "f0b49a04e5a62250e0f60fb128004a73110fe311",
            "push",
        ),
    ),
    (
        GO.parent / "sigstore+cosign/pkg/cosign/testdata/oci-attestation.sigstore.json",
        lambda: root(GO.parent / "sigstore+cosign/pkg/cosign/testdata/trusted_root_pgi.json"),
        None,
        "https://github.com/login/oauth=cody@soyland.com",
        "2025-02-28T19:18:11+00:00",
        "https://cosign.sigstore.dev/attestation/v1",
        None,
    ),
]


def _message_digest(doc: dict[str, object]) -> str:
    ms = doc["messageSignature"]
    assert isinstance(ms, dict)
    return "sha256:" + base64.b64decode(ms["messageDigest"]["digest"]).hex()


@pytest.mark.parametrize("case", VALID_BUNDLES, ids=lambda c: c[0].name)
def test_valid_bundles_verify(
    case: tuple[Path, object, Path | None, str, str | None, str | None, Provenance | None],
) -> None:
    path, make_root, artifact, signer, at, predicate, provenance = case
    trusted: TrustedRoot = make_root()  # type: ignore[operator]
    outcome = bundle.verify_bundle(
        path.read_bytes(), trusted, artifact=artifact.read_bytes() if artifact else None, identities=ANY_IDENTITY
    )
    assert isinstance(outcome, Verified), outcome
    assert (
        outcome.by,
        outcome.signed_at and outcome.signed_at.isoformat(),
        outcome.predicate_type,
        outcome.provenance,
    ) == (
        signer,
        at,
        predicate,
        provenance,
    )


CERT_KEY = "the signature does not verify with the certificate's key"
DSSE_CERT_KEY = "signature 1 of the DSSE envelope does not verify with the certificate's key"
# The reason a tampered copy is rejected with: (another artifact, a flipped signature or payload byte).
# Bundles with RFC 3161 timestamps or Rekor v2 entries are the sigstore package's, with its reasons.
TAMPERED = {
    "bundle_v3_github.whl.sigstore": ("ours", CERT_KEY),
    "bundle.txt.sigstore": ("ours", CERT_KEY),
    "bundle_v3.txt.sigstore": ("ours", CERT_KEY),
    "bundle_v3_alt.txt.sigstore": ("ours", CERT_KEY),
    "staging-rekor-v2.txt.sigstore.json": (
        "sigstore: Bundle message digest mismatch",
        "sigstore: not enough sources of verified time",
    ),
    "a.dsse.staging-rekor-v2.txt.sigstore.json": (None, "sigstore: DSSE: invalid signature"),
    "tsa/bundle.txt.sigstore": ("sigstore: Bundle message digest mismatch", "sigstore: Signature is invalid for input"),
    "bundle-provenance.json": (None, DSSE_CERT_KEY),
    "dsse.sigstore.json": (None, DSSE_CERT_KEY),
    "sigstore.js@2.0.0-provenance.sigstore.json": (None, DSSE_CERT_KEY),
    "oci-attestation.sigstore.json": (None, DSSE_CERT_KEY),
}


def _tampered_key(path: Path) -> str:
    return f"tsa/{path.name}" if path.parent.name == "tsa" else path.name


def test_every_valid_bundle_has_a_tampered_case() -> None:
    assert sorted(_tampered_key(c[0]) for c in VALID_BUNDLES) == sorted(TAMPERED)


@pytest.mark.parametrize("case", VALID_BUNDLES, ids=lambda c: c[0].name)
def test_tampered_bundles_reject(
    case: tuple[Path, object, Path | None, str, str | None, str | None, Provenance | None],
) -> None:
    path, make_root, artifact, *_ = case
    other_artifact, flipped = TAMPERED[_tampered_key(path)]
    trusted: TrustedRoot = make_root()  # type: ignore[operator]
    doc = json.loads(path.read_bytes())
    if artifact is not None:
        data = artifact.read_bytes()
        wrong = flip(data, 0)
        if other_artifact == "ours":
            other_artifact = (
                f"the bundle signs another artifact (sha256:{hashlib.sha256(data).hexdigest()}, "
                f"expected sha256:{hashlib.sha256(wrong).hexdigest()})"
            )
        outcome = bundle.verify_bundle(path.read_bytes(), trusted, artifact=wrong, identities=ANY_IDENTITY)
        assert outcome == Invalid(str(other_artifact))
        ms = doc["messageSignature"]
        ms["signature"] = base64.b64encode(flip(base64.b64decode(ms["signature"]), 30)).decode()
        outcome = bundle.verify_bundle(json.dumps(doc).encode(), trusted, artifact=data, identities=ANY_IDENTITY)
    else:
        env = doc["dsseEnvelope"]
        env["payload"] = base64.b64encode(flip(base64.b64decode(env["payload"]), 30)).decode()
        outcome = bundle.verify_bundle(json.dumps(doc).encode(), trusted, identities=ANY_IDENTITY)
    assert outcome == Invalid(flipped)


def test_a_bundle_with_the_log_entry_of_another_signing_rejects() -> None:
    outcome = bundle.verify_bundle(
        (PY_ASSETS / "bundle_cve_2022_36056.txt.sigstore").read_bytes(),
        staging(),
        artifact=(PY_ASSETS / "bundle_cve_2022_36056.txt").read_bytes(),
        identities=ANY_IDENTITY,
    )
    assert outcome == Invalid("the log entry records another signature")


def test_a_bundle_without_certificate_rejects() -> None:
    outcome = bundle.verify_bundle(
        (PY_ASSETS / "bundle_no_cert_v1.txt.sigstore").read_bytes(),
        staging(),
        artifact=(PY_ASSETS / "bundle_no_cert_v1.txt").read_bytes(),
        identities=ANY_IDENTITY,
    )
    assert outcome == Invalid("the bundle has no certificate and no public key")


def test_a_bundle_without_signed_time_rejects() -> None:
    outcome = bundle.verify_bundle(
        (PY_ASSETS / "bundle_v3_no_signed_time.txt.sigstore.json").read_bytes(),
        public_good(),
        artifact=(PY_ASSETS / "bundle_v3_no_signed_time.txt").read_bytes(),
        identities=ANY_IDENTITY,
    )
    assert outcome == Invalid(
        "the bundle has no signed time (no signed entry timestamp or timestamp) to check the certificate at"
    )


def test_an_inclusion_proof_without_checkpoint_rejects() -> None:
    data = (PY_ASSETS / "integration/Python-3.12.5.tgz.sigstore").read_bytes()
    outcome = bundle.verify_bundle(
        data, public_good(), digest=_message_digest(json.loads(data)), identities=ANY_IDENTITY
    )
    assert outcome == Invalid("the inclusion proof has no checkpoint")


def test_a_dsse_bundle_with_an_invalid_second_signature_rejects() -> None:
    outcome = bundle.verify_bundle(
        (GO / "pkg/testing/data/bundles/dsse-2sigs.sigstore.json").read_bytes(),
        root(GO / "pkg/testing/data/trusted-roots/public-good.json"),
        identities=ANY_IDENTITY,
    )
    assert outcome == Invalid("signature 2 of the DSSE envelope does not verify with the certificate's key")


def test_an_othername_identity_verifies() -> None:
    path = GO / "pkg/testing/data/bundles/othername.sigstore.json"
    trusted = root(GO / "pkg/testing/data/trusted-roots/scaffolding.json")
    digest = _message_digest(json.loads(path.read_bytes()))
    rule = IdentityRule(issuer="http://oidc.local:8080", subject="foo!oidc.local")
    outcome = bundle.verify_bundle(path.read_bytes(), trusted, digest=digest, identities=(rule,))
    assert isinstance(outcome, Verified)
    assert (outcome.by, outcome.signed_at and outcome.signed_at.isoformat()) == (
        "http://oidc.local:8080=foo!oidc.local",
        "2024-07-12T19:06:29+00:00",
    )
    other = IdentityRule(issuer="http://oidc.local:8080", subject_pattern="bar.*")
    assert bundle.verify_bundle(path.read_bytes(), trusted, digest=digest, identities=(other,)) == Invalid(
        "signed by http://oidc.local:8080=foo!oidc.local, which no accepted identity matches"
    )


def test_a_keyless_bundle_needs_an_accepted_identity() -> None:
    outcome = bundle.verify_bundle(
        (PY_ASSETS / "bundle_v3.txt.sigstore").read_bytes(),
        staging(),
        artifact=(PY_ASSETS / "bundle_v3.txt").read_bytes(),
    )
    assert outcome == Unknown(
        "signed by https://github.com/login/oauth=william@yossarian.net, and no identity is accepted"
    )


NPM = key("npm", GO / "examples/publish_key.pub")


def test_the_keyed_npm_bundle_verifies_by_key() -> None:
    data = (GO / "examples/bundle-publish.json").read_bytes()
    outcome = bundle.verify_bundle(data, root(GO / "examples/trusted-root-public-good.json"), keys=(NPM,))
    assert isinstance(outcome, Verified)
    assert (outcome.by, outcome.signed_at and outcome.signed_at.isoformat(), outcome.predicate_type) == (
        "npm",
        "2023-04-18T17:45:16+00:00",
        "https://github.com/npm/attestation/tree/main/specs/publish/v0.1",
    )
    doc = json.loads(data)
    doc["dsseEnvelope"]["payload"] = base64.b64encode(
        flip(base64.b64decode(doc["dsseEnvelope"]["payload"]), 30)
    ).decode()
    tampered = bundle.verify_bundle(
        json.dumps(doc).encode(), root(GO / "examples/trusted-root-public-good.json"), keys=(NPM,)
    )
    assert tampered == Invalid("signature 1 of the DSSE envelope does not verify with the accepted keys")
    other = key("alice", CONNAISSEUR / "alice.key")
    assert bundle.verify_bundle(data, root(GO / "examples/trusted-root-public-good.json"), keys=(other,)) == Invalid(
        "signature 1 of the DSSE envelope does not verify with the accepted keys"
    )


def test_a_keyed_bundle_with_timestamps_is_unknown() -> None:
    outcome = bundle.verify_bundle(
        (GO / "pkg/testing/data/bundles/public-key-validity.sigstore.json").read_bytes(),
        root(GO / "pkg/testing/data/trusted-roots/public-key-validity.json"),
        keys=(key("pkv", GO / "pkg/testing/data/public-keys/public-key-validity.pem"),),
    )
    assert outcome == Unknown("keyed bundles with RFC 3161 timestamps or Rekor v2 entries are not supported")


BLOB_KEY = key("cosign-attest-blob", EXTRACTED / "cosign-attest-blob/cosign.pub")
BLOB_DIGEST = "sha256:" + hashlib.sha256((EXTRACTED / "cosign-attest-blob/blob").read_bytes()).hexdigest()
V02 = "https://slsa.dev/provenance/v0.2"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "blobSLSAProvenanceSignature",
            Verified(by="cosign-attest-blob", predicate_type=V02, provenance=Provenance(builder_id="2")),
        ),
        (
            "dssePredicateMultipleSubjects",
            Verified(by="cosign-attest-blob", predicate_type=V02, provenance=Provenance(builder_id="2")),
        ),
        ("dssePredicateEmptySubject", Invalid("the in-toto statement has no subject")),
        ("dssePredicateMissingSha256", Invalid(f"no subject of the in-toto statement has the digest {BLOB_DIGEST}")),
        (
            "dssePredicateMultipleSubjectsInvalid",
            Invalid(f"no subject of the in-toto statement has the digest {BLOB_DIGEST}"),
        ),
    ],
)
def test_cosign_attest_blob_envelopes(name: str, expected: object) -> None:
    data = (EXTRACTED / f"cosign-attest-blob/{name}.dsse.json").read_bytes()
    assert dsse.verify_attestation(data, (BLOB_KEY,), BLOB_DIGEST) == expected


PAUSE2 = "sha256:b31bfb4d0213f254d361e0079deaaebefa4f82ba7aa76ef82e90b4935ad5b105"
KYVERNO = key("kyverno", EXTRACTED / "kyverno-attest/cosign.pub")


@pytest.mark.parametrize(
    ("n", "predicate"),
    [
        (0, "https://example.com/CodeReview/v1"),
        (1, "cosign.sigstore.dev/attestation/v1"),
        (2, "https://example.com/CodeReview/v1"),
    ],
)
def test_kyverno_attestations_with_the_predicate_type_as_payload_type(n: int, predicate: str) -> None:
    data = (EXTRACTED / f"kyverno-attest/attestationPayloads_{n}.dsse.json").read_bytes()
    assert dsse.verify_attestation(data, (KYVERNO,), PAUSE2) == Verified(by="kyverno", predicate_type=predicate)
    assert dsse.verify_attestation(data, (KYVERNO,), PAUSE2, predicate_types=(V02,)) == Invalid(
        f"the predicate type {predicate} is not one of {V02}"
    )


ENVELOPES = [
    EXTRACTED / "cosign-attest-blob/blobSLSAProvenanceSignature.dsse.json",
    EXTRACTED / "cosign-attest-blob/dssePredicateMultipleSubjects.dsse.json",
    *(EXTRACTED / f"kyverno-attest/attestationPayloads_{n}.dsse.json" for n in range(3)),
]


@pytest.mark.parametrize("path", ENVELOPES, ids=lambda p: p.name)
def test_tampered_envelopes_reject(path: Path) -> None:
    doc = json.loads(path.read_bytes())
    doc["payload"] = base64.b64encode(flip(base64.b64decode(doc["payload"]), 30)).decode()
    assert dsse.verify_attestation(json.dumps(doc).encode(), (BLOB_KEY, KYVERNO), None) == Invalid(
        "signature 1 of the DSSE envelope does not verify with the accepted keys"
    )


IN_TOTO_KEYS = tuple(key(n, IN_TOTO / f"demo_files/{n}.pub") for n in ("alice", "bob", "carl"))


@pytest.mark.parametrize(("link", "signer"), [("package.2f89b927.link", "carl"), ("write-code.776a00e2.link", "bob")])
def test_in_toto_links_verify_rsa_pss(link: str, signer: str) -> None:
    data = (IN_TOTO / "demo_dsse_files" / link).read_bytes()
    outcome, envelope = dsse.verify_envelope(data, IN_TOTO_KEYS)
    assert outcome == Verified(by=signer)
    assert envelope is not None
    if link.startswith("package"):
        products = json.loads(envelope.payload)["products"]
        assert (
            products["foo.tar.gz"]["sha256"]
            == hashlib.sha256((IN_TOTO / "demo_files/foo.tar.gz").read_bytes()).hexdigest()
        )
    doc = json.loads(data)
    doc["payload"] = base64.b64encode(flip(base64.b64decode(doc["payload"]), 30)).decode()
    assert dsse.verify_envelope(json.dumps(doc).encode(), IN_TOTO_KEYS)[0] == Invalid(
        "no signature of the DSSE envelope verifies with the accepted keys"
    )
