"""Pure logic: trust patterns, mirrors, policy documents, and the integrity verdict table."""

from __future__ import annotations

import pytest

from vigil.model.image import parse_image_ref
from vigil.policy.integrity import Status, judge, worst
from vigil.policy.trust import (
    InvalidPattern,
    MirrorRule,
    Pattern,
    TrustPolicy,
    TrustRule,
)
from vigil.policy.trust_doc import PolicyDoc, PolicyFileError
from vigil.registry.probe import RegistryAnswer
from vigil.service.jobs.trust_file import load_policy_file

R = "sha256:" + "a" * 64
T = "sha256:" + "b" * 64
P = "sha256:" + "c" * 64


@pytest.mark.parametrize(
    "text, host, prefix",
    [
        ("registry.example.com", "registry.example.com", ""),
        ("Registry.Example.com:5000/team/", "registry.example.com:5000", "team"),
        ("index.docker.io/library", "docker.io", "library"),
        ("127.0.0.1:5000/a/b-c/d_e", "127.0.0.1:5000", "a/b-c/d_e"),
        ("[::1]:5000", "[::1]:5000", ""),
        ("localhost", "localhost", ""),
    ],
)
def test_pattern_parse(text, host, prefix):
    assert Pattern.parse(text) == Pattern(host, prefix)


@pytest.mark.parametrize(
    "text, rule",
    [
        ("", "must not be empty"),
        ("https://registry.example.com", "has a scheme"),
        ("registry.example.com/app@sha256:" + "a" * 64, "has a digest"),
        ("registry.example.com/app:1.0", "has a tag"),
        ("registry.example.com/Team", "path component 'Team' must be lowercase"),
        ("registry.example.com//team", "path component '' must be lowercase"),
        ("reg_istry.com", "'reg_istry.com' is not a valid host[:port]"),
        ("registry.example.com:0", "port 0 is out of range 1-65535"),
    ],
)
def test_pattern_rejects(text, rule):
    with pytest.raises(InvalidPattern) as info:
        Pattern.parse(text)
    assert rule in str(info.value)
    assert repr(text) in str(info.value)


def test_pattern_matches_on_path_boundaries():
    p = Pattern.parse("registry.example.com/team")
    assert p.matches("registry.example.com", "team")
    assert p.matches("REGISTRY.example.com", "team/app")
    assert not p.matches("registry.example.com", "teamster/app")
    assert not p.matches("registry.example.com:443", "team/app")
    assert Pattern.parse("docker.io").matches("docker.io", "library/nginx")


def test_policy_scopes_and_mirrors():
    policy = TrustPolicy(
        trusted=(
            TrustRule(Pattern.parse("artifactory.example.com/docker-remote")),
            TrustRule(Pattern.parse("ghcr.io/acme"), "prod"),
        ),
        mirrors=(
            MirrorRule(Pattern.parse("docker.io"), Pattern.parse("artifactory.example.com/docker-remote")),
            MirrorRule(Pattern.parse("docker.io/library"), Pattern.parse("artifactory.example.com/official"), "eu"),
        ),
    )
    nginx = parse_image_ref("nginx:1.25")
    d = policy.decide(nginx, ("c-1", "dev"))
    assert (d.trusted, str(d.effective)) == (True, "artifactory.example.com/docker-remote/library/nginx:1.25")
    assert d.rule.describe() == "trusted artifactory.example.com/docker-remote (global)"
    assert d.mirror.describe() == "mirror docker.io -> artifactory.example.com/docker-remote (global)"
    # a cluster's mirror wins over the global one; its target is not trusted
    d = policy.decide(nginx, ("c-2", "eu"))
    assert (d.trusted, str(d.effective)) == (False, "artifactory.example.com/official/nginx:1.25")
    assert d.consulted == ("trusted artifactory.example.com/docker-remote (global)",)
    # a cluster's trusted rule adds to the global ones, for that cluster only
    acme = parse_image_ref("ghcr.io/acme/api:2")
    assert policy.decide(acme, ("id-9", "prod")).trusted is True
    assert policy.decide(acme, ("id-9", "prod")).rule.describe() == "trusted ghcr.io/acme (cluster prod)"
    assert policy.decide(acme, ("id-8", "staging")).trusted is False
    # no trusted rule at all: trust is not checked
    assert TrustPolicy().decide(acme).trusted is None


def test_policy_revision_ignores_order():
    a = TrustPolicy((TrustRule(Pattern.parse("a.io")), TrustRule(Pattern.parse("b.io"))))
    b = TrustPolicy((TrustRule(Pattern.parse("b.io")), TrustRule(Pattern.parse("a.io"))))
    assert a.revision == b.revision != TrustPolicy().revision


def test_policy_document_round_trip(tmp_path):
    doc = {
        "trusted": ["registry.example.com/team"],
        "mirrors": [{"source": "docker.io", "mirror": "artifactory.example.com/docker-remote"}],
        "signatures": [],
        "clusters": {"prod": {"trusted": ["ghcr.io/acme"], "mirrors": [], "signatures": []}},
    }
    policy = PolicyDoc.model_validate(doc).to_policy()
    assert PolicyDoc.from_policy(policy).model_dump() == doc
    path = tmp_path / "trust.yaml"
    path.write_text("trusted:\n  - registry.example.com/team\nmirrors:\n  - {source: docker.io, mirror: 'http://x'}\n")
    with pytest.raises(PolicyFileError) as info:
        load_policy_file(path)
    assert str(info.value) == (
        f"trust policy file {path}: mirrors[0].mirror: pattern 'http://x': has a scheme; it must be "
        "host[:port][/path-prefix], e.g. registry.example.com:5000/team (no scheme, tag or digest)"
    )
    path.write_text("trusted: [a.io]\nextra: 1\n")
    with pytest.raises(PolicyFileError, match="extra: Extra inputs are not permitted"):
        load_policy_file(path)


TRUSTED = TrustPolicy((TrustRule(Pattern.parse("reg.example.com")),))


def _decide(ref: str):
    return TRUSTED.decide(parse_image_ref(ref))


@pytest.mark.parametrize(
    "answer, status, types",
    [
        (RegistryAnswer(tag_digest=R, tag_artifacts=frozenset({R})), Status.VERIFIED, []),
        (RegistryAnswer(tag_digest=T, tag_artifacts=frozenset({T, R})), Status.VERIFIED, []),
        (RegistryAnswer(tag_digest=T, digest_present=True), Status.VIOLATION, ["tag_moved"]),
        (
            RegistryAnswer(tag_digest=T, digest_present=False, digest_missing="404"),
            Status.VIOLATION,
            ["digest_mismatch"],
        ),
        (RegistryAnswer(tag_missing="tag_unknown", digest_present=True), Status.VIOLATION, ["artifact_missing"]),
        (RegistryAnswer(error="refused", error_kind="auth"), Status.UNKNOWN, []),
    ],
)
def test_judge_table(answer, status, types):
    v = judge(R, _decide(f"reg.example.com/app:1@{R}"), answer, tag_moved_since="2024-01-01T00:00:00+00:00")
    assert v.status is status
    assert [f.type for f in v.findings] == types
    assert v.definite is (status is not Status.UNKNOWN)


def test_judge_severities_and_evidence():
    v = judge(
        R,
        _decide(f"reg.example.com/app:1@{R}"),
        RegistryAnswer(tag_digest=T, digest_present=False, digest_missing="gone"),
    )
    [f] = v.findings
    assert f.severity == "critical"
    assert (f.evidence["runtime_digest"], f.evidence["registry_digest"], f.evidence["repository"]) == (
        R,
        T,
        "reg.example.com/app",
    )
    assert f.evidence["registry_answer"] == "gone"
    v = judge(R, _decide(f"other.example.com/app:1@{R}"), None)
    assert (v.status, v.findings[0].type, v.findings[0].severity) == (Status.UNTRUSTED, "untrusted_registry", "high")
    # pinned by digest only
    pinned = _decide(f"reg.example.com/app@{R}")
    assert judge(R, pinned, RegistryAnswer(digest_present=True)).status is Status.VERIFIED
    v = judge(R, pinned, RegistryAnswer(digest_present=False, digest_missing="manifest_unknown"))
    assert (v.findings[0].type, v.findings[0].evidence["missing"]) == ("artifact_missing", "digest")
    # no digest reported yet
    assert judge(None, _decide("reg.example.com/app:1"), None).status is Status.PENDING


def test_worst_status():
    assert worst(["verified", "unknown", "violation"]) == "violation"
    assert worst(["verified", "pending"]) == "pending"
    assert worst([]) is None
