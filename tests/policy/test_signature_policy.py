"""Signature rules of the trust policy: the document's validation (errors name the field), which rule applies,
and the pure verdict of a digest's checks under a requirement, on signatures made with real keys and on the
shared cosign attestation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from vigil.devtools.oci import sha256
from vigil.devtools.signing import new_key, payload, public_pem, signature_manifest, slsa_v1_statement
from vigil.model.image import parse_image_ref
from vigil.policy.signature_checks import (
    NOT_BY_AN_ACCEPTED_KEY,
    DigestSignatures,
    SignatureCheck,
    check_discovered,
)
from vigil.policy.signature_rules import material, normalize_source, rule_for
from vigil.policy.signature_verdict import SignatureStatus, evaluate
from vigil.policy.trust_doc import PolicyDoc, PolicyFileError, parse_policy_text
from vigil.registry.signatures import Discovery, SignatureArtifact
from vigil.signatures.outcome import Unknown, Verified

EXTRACTED = Path(__file__).resolve().parents[3] / "shared" / "data" / "sigstore" / "extracted"
CI, OTHER = new_key(), new_key()
CI_PEM = public_pem(CI).decode()
DIGEST = "sha256:" + "ab" * 32
HOST = "registry.example.com"


def policy(signatures: list[dict], clusters: dict | None = None):
    doc = {"trusted": [HOST], "signatures": signatures, "clusters": clusters or {}}
    return parse_policy_text(yaml.safe_dump(doc), "trust.yaml")


def error(doc: dict) -> str:
    with pytest.raises(PolicyFileError) as e:
        parse_policy_text(yaml.safe_dump(doc), "trust.yaml")
    return str(e.value)


def signed_artifact(key: ec.EllipticCurvePrivateKey, digest: str = DIGEST, *, signs: str | None = None):
    body = payload(signs or digest, f"{HOST}/team/app")
    manifest, _ = signature_manifest(body, key.sign(body, ec.ECDSA(hashes.SHA256())))
    return SignatureArtifact("tag", digest, sha256(manifest), manifest, ".sig", {sha256(body): body})


def checks_of(*artifacts: SignatureArtifact, pol=None, digest: str = DIGEST) -> DigestSignatures:
    mat = material((pol or policy([{"pattern": HOST, "keys": [{"name": "ci", "pem": CI_PEM}]}])).signatures)
    return check_discovered(Discovery(tuple(artifacts), False), digest, mat.keys, None)


def verdict(sigs, pol=None, namespace: str | None = "shop"):
    pol = pol or policy([{"pattern": HOST, "keys": [{"name": "ci", "pem": CI_PEM}]}])
    rule = rule_for(pol.signatures, parse_image_ref(f"{HOST}/team/app"), ("c1", "prod"), namespace)
    return evaluate(sigs, rule, image=f"{HOST}/team/app@{DIGEST}", digest=DIGEST)


# -- the document -----------------------------------------------------------------------------------


def test_errors_name_the_field_and_the_rule() -> None:
    assert error({"signatures": [{"pattern": HOST, "keys": [{"name": "ci", "pem": "x"}]}]}).startswith(
        "trust policy file trust.yaml: signatures[0].keys[0].pem: not a PEM or DER public key"
    )
    assert error({"signatures": [{"pattern": HOST}]}) == (
        "trust policy file trust.yaml: signatures[0]: name keys or identities: whose signatures count "
        "(attestations, source_repositories and builder_ids hold for attestations signed by them)"
    )
    bad_identity = {"clusters": {"prod": {"signatures": [{"pattern": HOST, "identities": [{"issuer": "i"}]}]}}}
    assert error(bad_identity) == (
        "trust policy file trust.yaml: clusters.prod.signatures[0].identities[0]: "
        "name exactly one of subject and subject_pattern"
    )
    bad_pattern = {"signatures": [{"pattern": HOST, "identities": [{"issuer": "i", "subject_pattern": "("}]}]}
    assert error(bad_pattern) == (
        "trust policy file trust.yaml: signatures[0].identities[0]: the pattern is not a regular expression "
        "(missing ), unterminated subpattern at position 0)"
    )
    assert error({"signatures": [{"pattern": "https://x", "keys": [{"name": "ci", "pem": CI_PEM}]}]}).startswith(
        "trust policy file trust.yaml: signatures[0].pattern: pattern 'https://x': has a scheme"
    )
    twice = [{"pattern": HOST, "keys": [{"name": "ci", "pem": CI_PEM}]}] * 2
    assert error({"signatures": twice}) == (
        "trust policy file trust.yaml: signatures: one rule per pattern and namespace: "
        "registry.example.com appear more than once"
    )
    assert error({"signatures": [{"pattern": HOST, "keys": [{"name": "ci", "pem": CI_PEM}], "colour": 1}]}) == (
        "trust policy file trust.yaml: signatures[0].colour: Extra inputs are not permitted"
    )


def test_the_document_round_trips_and_the_revision_follows_the_rules() -> None:
    rules = [
        {
            "pattern": f"{HOST}/team",
            "namespace": "payments",
            "keys": [{"name": "ci", "pem": CI_PEM}],
            "identities": [
                {
                    "issuer": "https://token.actions.githubusercontent.com",
                    "subject_pattern": "https://github.com/acme/.*",
                }
            ],
            "attestations": ["https://slsa.dev/provenance/v1"],
            "source_repositories": ["https://github.com/acme/app"],
            "builder_ids": ["https://github.com/actions/runner/github-hosted"],
        }
    ]
    pol = policy(rules)
    doc = PolicyDoc.from_policy(pol).model_dump(exclude_none=True)
    assert doc["signatures"] == rules
    assert PolicyDoc.model_validate(doc).to_policy().revision == pol.revision
    assert policy([]).revision != pol.revision
    assert [r.describe() for r in pol.signatures] == [f"signatures for {HOST}/team (global, namespace payments)"]


def test_the_most_specific_rule_applies() -> None:
    pol = policy(
        [
            {"pattern": HOST, "keys": [{"name": "global", "pem": CI_PEM}]},
            {"pattern": f"{HOST}/team", "keys": [{"name": "team", "pem": CI_PEM}]},
            {"pattern": HOST, "namespace": "shop", "keys": [{"name": "shop", "pem": CI_PEM}]},
        ],
        {"prod": {"signatures": [{"pattern": HOST, "keys": [{"name": "prod", "pem": CI_PEM}]}]}},
    )
    app, other = parse_image_ref(f"{HOST}/team/app"), parse_image_ref("elsewhere.example.com/app")

    def name(ref, clusters, namespace):
        rule = rule_for(pol.signatures, ref, clusters, namespace)
        return rule.requirement.keys[0].name if rule else None

    assert name(app, ("c1", "prod"), "shop") == "prod"  # a cluster's rule, then the namespace's
    assert name(app, ("c2", "dev"), "shop") == "shop"
    assert name(app, ("c2", "dev"), "web") == "team"  # then the longest prefix
    assert name(parse_image_ref(f"{HOST}/x"), ("c2",), "web") == "global"
    assert name(other, ("c1", "prod"), "shop") is None


def test_source_repositories_compare_as_provenance_writes_them() -> None:
    assert normalize_source("git+https://github.com/acme/app@refs/heads/main") == "https://github.com/acme/app"
    assert normalize_source("https://github.com/acme/app.git") == "https://github.com/acme/app"


# -- verdicts -------------------------------------------------------------------------------------


def test_signed_by_an_accepted_key_verifies_and_names_it() -> None:
    sigs = checks_of(signed_artifact(CI))
    key_id = material(policy([{"pattern": HOST, "keys": [{"name": "ci", "pem": CI_PEM}]}]).signatures).keys[0].name
    assert [c.outcome for c in sigs.checks] == [Verified(by=key_id, docker_reference=f"{HOST}/team/app")]
    v = verdict(sigs)
    assert v.status is SignatureStatus.VERIFIED and v.findings == ()
    assert v.evidence["signed_by"] == [f"key ci ({key_id})"]
    assert v.evidence["rule"] == f"signatures for {HOST} (global)"
    # The checks survive the store's JSON.
    assert DigestSignatures.from_doc(json.loads(json.dumps(sigs.to_doc()))) == sigs


def test_unsigned_and_signed_by_another_key_are_unsigned_image() -> None:
    foreign = signed_artifact(OTHER)
    for sigs, present in [
        (checks_of(), []),
        (checks_of(foreign), [f"signature {foreign.manifest_digest}: invalid: {NOT_BY_AN_ACCEPTED_KEY}"]),
    ]:
        v = verdict(sigs)
        assert v.status is SignatureStatus.VIOLATION
        assert [(f.type, f.severity) for f in v.findings] == [("unsigned_image", "high")]
        ev = v.findings[0].evidence
        assert ev["failing_check"] == "no signature by an accepted key or identity"
        assert ev["signatures"] == present
        assert ev["accepted_signers"][0].startswith("key ci (sha256:")
        assert ev["image"] == f"{HOST}/team/app@{DIGEST}"


def test_a_signature_of_another_digest_or_a_tampered_blob_is_signature_invalid() -> None:
    other_digest = "sha256:" + "cd" * 32
    artifact = signed_artifact(CI, signs=other_digest)
    v = verdict(checks_of(artifact))
    assert [(f.type, f.severity) for f in v.findings] == [("signature_invalid", "critical")]
    assert v.findings[0].evidence["failing_check"] == (
        f"signature {artifact.manifest_digest}: invalid: the payload signs {other_digest}, not {DIGEST}"
    )
    good = signed_artifact(CI)
    blob = next(iter(good.blobs))
    tampered = SignatureArtifact("tag", DIGEST, good.manifest_digest, good.manifest, ".sig", {}, (), (blob,))
    v = verdict(checks_of(tampered))
    assert v.findings[0].evidence["failing_check"] == (
        f"signature {good.manifest_digest}: invalid: "
        f"the blob {blob} the registry serves is not the content of its digest"
    )
    # A valid signature beside the broken one verifies the digest.
    assert verdict(checks_of(tampered, signed_artifact(CI))).status is SignatureStatus.VERIFIED


def test_unknown_and_pending_are_never_violations_and_no_rule_requires_nothing() -> None:
    assert verdict(DigestSignatures(DIGEST, (), "signatures could not be fetched: refused")).status is (
        SignatureStatus.UNKNOWN
    )
    assert verdict(None).status is SignatureStatus.PENDING
    unknown_check = SignatureCheck("sha256:" + "00" * 32, "tag", "signature", Unknown("over the size limit"))
    assert verdict(DigestSignatures(DIGEST, (unknown_check,))).findings[0].type == "unsigned_image"
    elsewhere = evaluate(checks_of(), None, image="x")
    assert (elsewhere.status, elsewhere.findings) == (SignatureStatus.NOT_REQUIRED, ())


def test_keyless_identities_are_matched_from_the_stored_check() -> None:
    check = SignatureCheck(
        "sha256:" + "11" * 32,
        "referrer",
        "signature",
        Verified(
            by="x",
            issuer="https://token.actions.githubusercontent.com",
            identity="https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main",
        ),
    )
    rule = {
        "pattern": HOST,
        "identities": [
            {"issuer": "https://token.actions.githubusercontent.com", "subject_pattern": "https://github.com/acme/.*"}
        ],
    }
    v = verdict(DigestSignatures(DIGEST, (check,)), policy([rule]))
    assert v.status is SignatureStatus.VERIFIED
    assert v.evidence["signed_by"] == [
        "identity https://token.actions.githubusercontent.com=https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
    ]
    rule["identities"][0]["subject_pattern"] = "https://github.com/other/.*"
    v = verdict(DigestSignatures(DIGEST, (check,)), policy([rule]))
    assert [f.type for f in v.findings] == ["unsigned_image"]
    assert v.findings[0].evidence["signatures"] == [
        f"signature {check.artifact}: signed by identity https://token.actions.githubusercontent.com="
        "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main, which the rule does not accept"
    ]


def _attestation_artifact(envelope: bytes, digest: str) -> SignatureArtifact:
    manifest = json.dumps(
        {
            "layers": [
                {
                    "mediaType": "application/vnd.dsse.envelope.v1+json",
                    "digest": sha256(envelope),
                    "size": len(envelope),
                }
            ]
        }
    ).encode()
    return SignatureArtifact("tag", digest, sha256(manifest), manifest, ".att", {sha256(envelope): envelope})


def test_the_shared_cosign_slsa_attestation_gives_provenance_facts_and_mismatches() -> None:
    folder = EXTRACTED / "cosign-attest-blob"
    envelope = (folder / "blobSLSAProvenanceSignature.dsse.json").read_bytes()
    digest = sha256((folder / "blob").read_bytes())
    pem = (folder / "cosign.pub").read_text()
    base = {
        "pattern": HOST,
        "keys": [{"name": "cosign-test", "pem": pem}],
        "attestations": ["https://slsa.dev/provenance/v0.2"],
    }
    artifact = _attestation_artifact(envelope, digest)

    def judged(rule: dict):
        pol = policy([rule])
        sigs = checks_of(artifact, pol=pol, digest=digest)
        r = rule_for(pol.signatures, parse_image_ref(f"{HOST}/team/app"), (), None)
        return evaluate(sigs, r, image="i", digest=digest)

    # The rule wants a signature too: the attestation alone does not sign the image.
    v = judged({**base, "builder_ids": ["2"]})
    assert [f.type for f in v.findings] == ["unsigned_image"]
    assert v.evidence["provenance"] == [
        {
            "predicate_type": "https://slsa.dev/provenance/v0.2",
            "builder_id": "2",
            "source_repository": None,
            "source_revision": None,
            "build_trigger": None,
        }
    ]
    v = judged({**base, "builder_ids": ["https://github.com/actions/runner"]})
    assert [(f.type, f.evidence["failing_checks"]) for f in v.findings] == [
        ("provenance_mismatch", ["builder 2 is not one of https://github.com/actions/runner"]),
        ("unsigned_image", ["no signature by an accepted key or identity"]),
    ]
    # By a key the rule does not name: the attestation does not count.
    other = {**base, "keys": [{"name": "ci", "pem": CI_PEM}]}
    v = judged(other)
    assert [(f.type, f.evidence["failing_checks"]) for f in v.findings] == [
        (
            "unsigned_image",
            [
                "no signature by an accepted key or identity",
                "no attestation of type https://slsa.dev/provenance/v0.2 by an accepted signer",
            ],
        ),
    ]


def test_a_slsa_v1_provenance_from_another_repository_is_provenance_mismatch() -> None:
    statement = slsa_v1_statement(
        DIGEST,
        f"{HOST}/team/app",
        builder_id="https://github.com/actions/runner/github-hosted",
        repository="https://github.com/evil/app",
        commit="deadbeef",
    )
    from vigil.devtools.signing import IN_TOTO

    pae = b"DSSEv1 %d %s %d %s" % (len(IN_TOTO), IN_TOTO.encode(), len(statement), statement)
    import base64

    envelope = json.dumps(
        {
            "payloadType": IN_TOTO,
            "payload": base64.b64encode(statement).decode(),
            "signatures": [{"sig": base64.b64encode(CI.sign(pae, ec.ECDSA(hashes.SHA256()))).decode()}],
        }
    ).encode()
    rule = {
        "pattern": HOST,
        "keys": [{"name": "ci", "pem": CI_PEM}],
        "source_repositories": ["https://github.com/acme/app"],
    }
    pol = policy([rule])
    v = verdict(checks_of(signed_artifact(CI), _attestation_artifact(envelope, DIGEST), pol=pol), pol)
    assert [(f.type, f.severity, f.evidence["failing_check"]) for f in v.findings] == [
        (
            "provenance_mismatch",
            "high",
            "source repository https://github.com/evil/app is not one of https://github.com/acme/app",
        )
    ]
    assert v.evidence["provenance"][0]["source_revision"] == "deadbeef"
    rule["source_repositories"] = ["https://github.com/evil/app"]
    pol = policy([rule])
    assert verdict(checks_of(signed_artifact(CI), _attestation_artifact(envelope, DIGEST), pol=pol), pol).status is (
        SignatureStatus.VERIFIED
    )


# -- admission --------------------------------------------------------------------------------------


def test_an_enforcing_admission_policy_refuses_the_unsigned_image_with_the_same_verdict() -> None:
    from vigil.policy.enforcement import AdmissionSubject, ImageFacts, Outcome, parse_enforcement
    from vigil.policy.enforcement import evaluate as admit

    trust = policy([{"pattern": HOST, "keys": [{"name": "ci", "pem": CI_PEM}]}])
    ref = f"{HOST}/team/app@{DIGEST}"
    doc = {"policies": [{"name": "signed", "mode": "enforce", "rules": {"signatures": True}}]}
    enforcing = parse_enforcement(doc, "test")
    subject = AdmissionSubject(cluster="c1", namespace="shop", name="web")
    foreign = signed_artifact(OTHER)

    def decide(sigs, policy_doc=enforcing):
        return admit(policy_doc, trust, subject, [ImageFacts(ref, parse_image_ref(ref), signatures=sigs)])

    unsigned = decide(checks_of(foreign))
    assert unsigned.outcome is Outcome.DENIED
    assert unsigned.message == (
        f'policy "signed" rule signatures: image {ref}: unsigned_image: no signature by an accepted key or identity '
        f"(signatures for {HOST} (global))"
    )
    assert unsigned.violations[0].evidence["signatures"] == [
        f"signature {foreign.manifest_digest}: invalid: {NOT_BY_AN_ACCEPTED_KEY}"
    ]
    assert decide(checks_of(signed_artifact(CI))).outcome is Outcome.ALLOWED
    # Not checked yet, or the registry could not say: admitted (never a violation), as with integrity.
    assert decide(None).outcome is Outcome.ALLOWED
    assert decide(DigestSignatures(DIGEST, (), "unreachable")).outcome is Outcome.ALLOWED
    # The rule is opt-in: a policy that does not ask for signatures admits, and keeps its revision.
    plain = parse_enforcement({"policies": [{"name": "signed", "mode": "enforce"}]}, "test")
    assert decide(checks_of(foreign), plain).outcome is Outcome.ALLOWED
    assert "signatures" not in plain.model_dump()["policies"][0]["rules"]
    assert enforcing.model_dump()["policies"][0]["rules"]["signatures"] is True
    assert parse_enforcement(enforcing.model_dump(mode="json"), "again") == enforcing
    audit = parse_enforcement({"policies": [{"name": "signed", "mode": "audit", "rules": {"signatures": True}}]}, "t")
    assert decide(checks_of(), audit).outcome is Outcome.AUDITED
