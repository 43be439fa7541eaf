"""Pure parts of the registry library: config, challenges, Retry-After, manifests, caches."""

from __future__ import annotations

import json

import pytest
import yaml

from vigil.devtools.oci import build_image, build_index, tar_layer
from vigil.registry import (
    ImageIndex,
    InvalidManifest,
    LRUCache,
    Platform,
    RegistryConfig,
    RegistryConfigError,
    Secret,
    TTLCache,
    env_key,
    parse_manifest,
    same_artifact,
)
from vigil.registry.auth import parse_challenges
from vigil.registry.transport import parse_retry_after


def test_config_file_and_environment(tmp_path):
    path = tmp_path / "registries.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "localhost:5000": {"plain_http": True},
                "artifactory.example.com": {"username": "ci", "password": "p@ss-Word-1", "ca_bundle": "/etc/ca.pem"},
                "ghcr.io": {"token": "ghp_secretvalue"},
            }
        )
    )
    env = {
        "VIGIL_REGISTRY_CONFIG": str(path),
        "VIGIL_REGISTRY_GHCR_IO_TOKEN": "from-env-token",
        "VIGIL_REGISTRY_QUAY_IO_USERNAME": "robot",
        "VIGIL_REGISTRY_QUAY_IO_PASSWORD": "robot-pass",
        "VIGIL_REGISTRY_10_0_0_1_5000_PLAIN_HTTP": "true",
    }
    config = RegistryConfig.load(environ=env)
    local = config.for_host("localhost:5000")
    assert (local.plain_http, local.scheme, local.base_url) == (True, "http", "http://localhost:5000")
    art = config.for_host("artifactory.example.com")
    assert (art.username, art.password.reveal(), str(art.ca_bundle)) == ("ci", "p@ss-Word-1", "/etc/ca.pem")
    assert config.for_host("ghcr.io").token.reveal() == "from-env-token"
    quay = config.for_host("quay.io")
    assert (quay.username, quay.password.reveal(), quay.scheme) == ("robot", "robot-pass", "https")
    assert config.for_host("10.0.0.1:5000").plain_http is True
    unknown = config.for_host("registry.example.org")
    assert (unknown.username, unknown.password, unknown.plain_http) == (None, None, False)
    # Docker Hub's API host differs from its reference name
    assert config.for_host("docker.io").base_url == "https://registry-1.docker.io"
    assert env_key("localhost:5000") == "VIGIL_REGISTRY_LOCALHOST_5000"
    for text in (repr(config), repr(art), str(art), repr(config.for_host("ghcr.io"))):
        assert "p@ss-Word-1" not in text and "from-env-token" not in text and "robot-pass" not in text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"r.io": {"username": "u"}}, "registry config: registry r.io: username and password must be given together"),
        ({"r.io": {"username": "u", "password": 123456}}, "registry config: registry r.io: password must be a string"),
        (
            {"r.io": {"passwd": "hunter2"}},
            "registry config: registry r.io: unknown field(s) passwd; "
            "allowed: username, password, token, plain_http, ca_bundle, auth_hosts",
        ),
        ({"r.io": {"plain_http": "maybe"}}, "registry config: registry r.io: plain_http must be true or false"),
        (
            {"r.io": {"username": "u", "password": "p", "token": "t"}},
            "registry config: registry r.io: give either username/password or token, not both",
        ),
        (["r.io"], "registry config: expected a mapping of registry host -> settings"),
    ],
)
def test_config_errors_name_host_and_field_not_value(data, message):
    with pytest.raises(RegistryConfigError) as caught:
        RegistryConfig.from_mapping(data)
    assert str(caught.value) == message
    assert "123456" not in str(caught.value) and "hunter2" not in str(caught.value)


def test_config_yaml_error_does_not_quote_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text('r.io:\n  password: "unterminated-s3cret\n  user: x\n')
    with pytest.raises(RegistryConfigError) as caught:
        RegistryConfig.from_file(path)
    assert "s3cret" not in str(caught.value)
    assert str(caught.value).startswith(f"registry config {path}: not valid YAML at line")


def test_secret_hides_itself():
    secret = Secret("hunter2")
    assert "hunter2" not in repr(secret) + str(secret) + f"{secret}" + repr([secret])
    assert secret.reveal() == "hunter2"
    with pytest.raises(TypeError):
        __import__("pickle").dumps(secret)


def test_parse_challenges():
    [bearer] = parse_challenges(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"'
    )
    assert bearer.scheme == "bearer"
    assert (bearer.realm, bearer.service, bearer.scope) == (
        "https://auth.docker.io/token",
        "registry.docker.io",
        "repository:library/nginx:pull",
    )
    [basic] = parse_challenges('Basic realm="vigil \\"test\\" registry"')
    assert (basic.scheme, basic.realm) == ("basic", 'vigil "test" registry')
    both = parse_challenges('Basic realm="a", Bearer realm="https://t/token",scope="repository:x/y:pull,push"')
    assert [c.scheme for c in both] == ["basic", "bearer"]
    assert both[1].scope == "repository:x/y:pull,push"
    assert parse_challenges("") == []


def test_parse_retry_after():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_parse_index_and_same_artifact():
    layer = tar_layer({"a": b"1"})
    amd = build_image([layer], platform="linux/amd64")
    arm = build_image([layer], platform="linux/arm64/v8")
    index = build_index([amd, arm])
    parsed = parse_manifest(index.manifest.data, index.digest, "application/octet-stream")
    assert isinstance(parsed, ImageIndex)
    assert parsed.artifact_digests == {index.digest, amd.digest, arm.digest}
    assert parsed.manifest_for(Platform.parse("linux/arm64")).digest == arm.digest
    assert parsed.manifest_for(Platform.parse("linux/arm64/v7")) is None
    assert same_artifact(amd.digest, amd.digest)
    assert same_artifact(arm.digest, index.digest, parsed)
    assert not same_artifact("sha256:" + "9" * 64, index.digest, parsed)
    # an index fetched for another digest proves nothing
    assert not same_artifact(arm.digest, "sha256:" + "8" * 64, parsed)
    single = parse_manifest(amd.manifest.data, amd.digest)
    assert not same_artifact(arm.digest, amd.digest, single)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json"}, "index has no 'manifests' list"),
        ({"schemaVersion": 1, "name": "x", "fsLayers": []}, "unsupported manifest media type ''"),
        (
            {"schemaVersion": 2, "config": {"digest": "sha256:xyz", "size": 1}, "layers": []},
            "config.digest 'sha256:xyz' is not a valid digest",
        ),
        (
            {"schemaVersion": 2, "manifests": [{"digest": "sha256:" + "a" * 64, "size": -1}]},
            "manifests[0].size -1 is not a non-negative integer",
        ),
    ],
)
def test_invalid_manifests(doc, message):
    with pytest.raises(InvalidManifest, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        parse_manifest(json.dumps(doc).encode(), "sha256:" + "0" * 64)


def test_lru_cache_bounds():
    cache: LRUCache[str] = LRUCache(max_entries=2, max_bytes=10)
    cache.put("a", "A", 4)
    cache.put("b", "B", 4)
    assert cache.get("a") == "A"  # a is now most recent
    cache.put("c", "C", 4)  # over 10 bytes: b (least recent) goes
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == ("A", None, "C")
    cache.put("huge", "H", 11)  # larger than the whole cache: not kept, nothing evicted
    assert (cache.get("huge"), len(cache), cache.size_bytes) == (None, 2, 8)


def test_ttl_cache_expiry():
    now = [0.0]
    cache: TTLCache[str] = TTLCache(ttl=5, clock=lambda: now[0])
    cache.put("k", "v")
    now[0] = 4.9
    assert cache.get("k") == "v"
    now[0] = 5.0
    assert cache.get("k") is None
    assert TTLCache(ttl=0).get("k") is None


def test_token_realm_rules():
    from vigil.registry.auth import realm_problem
    from vigil.registry.config import RegistrySettings

    tls = RegistrySettings("registry.example.com:5000", auth_hosts=("auth.example.com",))
    assert realm_problem(tls, "https://registry.example.com:5000/token") is None
    assert realm_problem(tls, "https://auth.example.com/token") is None
    assert realm_problem(tls, "https://auth.example.com:8443/token") == (
        "is on auth.example.com:8443, neither the registry's own host registry.example.com:5000 nor one of its "
        "auth_hosts (auth.example.com)"
    )
    assert realm_problem(tls, "http://registry.example.com:5000/token") == (
        "is plain HTTP and the registry is not configured plain_http"
    )
    assert realm_problem(tls, "/token") == "is not an absolute http(s) URL"
    assert realm_problem(RegistrySettings("docker.io"), "https://auth.docker.io/token") is None
    plain = RegistrySettings("127.0.0.1:5000", plain_http=True)
    assert realm_problem(plain, "http://127.0.0.1:5000/token") is None
    assert realm_problem(plain, "http://127.0.0.1:6000/token") == (
        "is plain HTTP on 127.0.0.1:6000, not on the registry's own host 127.0.0.1:5000"
    )
    assert RegistryConfig.from_mapping({"r.example": {"auth_hosts": ["Auth.Example:8443"]}}).for_host(
        "r.example"
    ).auth_hosts == ("auth.example:8443",)
    with pytest.raises(RegistryConfigError) as bad:
        RegistryConfig.from_mapping({"r.example": {"auth_hosts": ["https://auth.example"]}})
    assert str(bad.value) == (
        "registry config: registry r.example: auth_hosts: 'https://auth.example' is not a host[:port] "
        "(no scheme or path), e.g. auth.example.com:8443"
    )
