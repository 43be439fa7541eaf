"""Failure kinds: tampered content, retries with Retry-After, auth (htpasswd, bearer), secrets kept out of logs, TLS."""

from __future__ import annotations

import base64
import logging
import shutil
import subprocess
import time
import traceback

import pytest
from registry_helpers import USERS, basic, json_answer, make_client

from vigil.devtools.oci import build_image, push, tar_layer
from vigil.devtools.registry_server import RegistryServer
from vigil.registry import (
    AuthError,
    DigestMismatch,
    NotFound,
    NotFoundKind,
    RegistryClient,
    RegistryConfig,
    RetryPolicy,
    Unreachable,
)


@pytest.fixture(scope="module")
def pushed(registry):
    """An image in the real registry: (image, tag reference path)."""
    image = build_image([tar_layer({"etc/motd": b"hello\n" * 1000})])
    with make_client(registry.host) as client:
        push(client, f"{registry.host}/team/app:1", image)
    return image


# -- digest verification --------------------------------------------------------------------------


def test_tampered_manifest_by_tag_is_refused(proxy, pushed):
    proxy.rewrite = lambda seen, answer: (
        (answer[0], answer[1], answer[2] + b" ") if "/manifests/" in seen.path else answer
    )
    with make_client(proxy.host) as client:
        with pytest.raises(DigestMismatch) as caught:
            client.get_manifest(f"{proxy.host}/team/app:1")
    tampered = "sha256:" + __import__("hashlib").sha256(pushed.manifest.data + b" ").hexdigest()
    assert str(caught.value) == (
        f"registry {proxy.host}, repository team/app, reference 1: "
        f"content digest is {tampered}, expected {pushed.digest}"
    )
    assert (caught.value.expected, caught.value.actual) == (pushed.digest, tampered)


def test_tampered_manifest_by_digest_is_refused_even_without_header(proxy, pushed):
    def strip_and_tamper(seen, answer):
        status, headers, body = answer
        headers = {k: v for k, v in headers.items() if k.lower() != "docker-content-digest"}
        return status, headers, body.replace(b'"schemaVersion":2', b'"schemaVersion":2 ')

    proxy.rewrite = strip_and_tamper
    with make_client(proxy.host) as client:
        with pytest.raises(DigestMismatch) as caught:
            client.get_manifest(f"{proxy.host}/team/app@{pushed.digest}")
        assert caught.value.expected == pushed.digest
        assert len(client.content_cache) == 0  # nothing unverified was cached


def test_tampered_blob_fails_at_end_of_stream(proxy, pushed):
    layer = pushed.layers[0].blob

    def flip_last_byte(seen, answer):
        status, headers, body = answer
        if "/blobs/" in seen.path and body:
            body = body[:-1] + bytes([body[-1] ^ 1])
        return status, headers, body

    proxy.rewrite = flip_last_byte
    with make_client(proxy.host) as client:
        reader = client.open_blob(f"{proxy.host}/team/app", layer.digest, layer.size)
        received = b""
        with pytest.raises(DigestMismatch) as caught:
            for chunk in reader:
                received += chunk
        assert len(received) == layer.size  # every byte was handed out, then refused at the end
        assert not reader.verified
        assert caught.value.expected == layer.digest
        # a blob longer than its descriptor says is refused as soon as it overflows
        proxy.rewrite = lambda seen, answer: answer
        with pytest.raises(DigestMismatch, match="blob is longer than the expected 10 bytes"):
            client.fetch_blob(f"{proxy.host}/team/app", layer.digest, 10)


# -- retries -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(proxy, pushed, status):
    failures = {"left": 2}

    def flaky(seen):
        if "/manifests/" in seen.path and failures["left"]:
            failures["left"] -= 1
            return json_answer(
                status, {"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down"}]}, {"Retry-After": "2"}
            )
        return None

    proxy.hook = flaky
    slept: list[float] = []
    with make_client(proxy.host, retry=RetryPolicy(max_attempts=4), sleep=slept.append) as client:
        assert client.resolve_tag(f"{proxy.host}/team/app:1") == pushed.digest
        assert slept == [2.0, 2.0]
        assert client.stats.retries == 2
        assert client.stats.by_kind["manifest_head"] == 3


def test_retry_after_real_wait(proxy, pushed):
    answered = {"n": 0}

    def once(seen):
        answered["n"] += 1
        if answered["n"] == 1:
            return json_answer(503, {}, {"Retry-After": "1"})
        return None

    proxy.hook = once
    with make_client(proxy.host) as client:
        started = time.monotonic()
        assert client.resolve_tag(f"{proxy.host}/team/app:1") == pushed.digest
        assert time.monotonic() - started >= 1.0


def test_retries_exhausted_is_unreachable(proxy, pushed):
    proxy.hook = lambda seen: json_answer(503, {"errors": [{"code": "UNAVAILABLE", "message": "down"}]})
    slept: list[float] = []
    with make_client(
        proxy.host, retry=RetryPolicy(max_attempts=3, backoff_base=0.5, backoff_max=1.0), sleep=slept.append
    ) as client:
        with pytest.raises(Unreachable) as caught:
            client.resolve(f"{proxy.host}/team/app:1")
    assert str(caught.value) == (
        f"registry {proxy.host}, repository team/app, reference 1: "
        f"HEAD http://{proxy.host}/v2/team/app/manifests/1 answered 503 Service Unavailable (after 3 attempts)"
    )
    assert len(slept) == 2 and all(0 <= s <= 1.0 for s in slept)  # backoff with jitter, capped


def test_retry_after_beyond_limit_gives_up_at_once(proxy, pushed):
    proxy.hook = lambda seen: json_answer(429, {}, {"Retry-After": "3600"})
    slept: list[float] = []
    with make_client(proxy.host, sleep=slept.append) as client:
        with pytest.raises(
            Unreachable,
            match=r"answered 429 Too Many Requests with Retry-After 3600s \(over the 30s limit\) \(after 1 attempt\)",
        ):
            client.resolve(f"{proxy.host}/team/app:1")
    assert slept == []


# -- basic auth against the real registry (htpasswd) ---------------------------------------------


def test_basic_auth_success(auth_registry):
    user, password = next(iter(USERS.items()))
    with make_client(auth_registry.host, username=user, password=password) as client:
        image = build_image([tar_layer({"x": b"auth"})])
        ref = f"{auth_registry.host}/secure/app:1"
        push(client, ref, image)
        client.stats.reset()
        client.tag_cache.clear()
        assert client.resolve_tag(ref) == image.digest
        # the scheme is known by now: credentials go up front, no 401 round trip
        assert client.stats.requests == 1


def test_missing_credentials(auth_registry):
    with make_client(auth_registry.host) as client:
        with pytest.raises(AuthError) as caught:
            client.resolve(f"{auth_registry.host}/secure/app:1")
    assert str(caught.value) == (
        f"registry {auth_registry.host}, repository secure/app, reference 1: "
        "authentication required and no credentials are configured for this registry"
    )


def test_wrong_credentials_never_show_the_password(auth_registry, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "N0t-the-Right-0ne!"
    config = RegistryConfig.from_mapping(
        {auth_registry.host: {"username": "alice", "password": wrong, "plain_http": True}}
    )
    with RegistryClient(config, retry=RetryPolicy(max_attempts=1)) as client:
        with pytest.raises(AuthError) as caught:
            client.resolve(f"{auth_registry.host}/secure/app:1")
        texts = [
            str(caught.value),
            repr(caught.value),
            "".join(traceback.format_exception(caught.value)),
            caplog.text,
            repr(client),
            repr(config),
            repr(config.for_host(auth_registry.host)),
            str(config.for_host(auth_registry.host).password),
            repr(client.transport._auth),
        ]
    assert str(caught.value) == (
        f"registry {auth_registry.host}, repository secure/app, reference 1: "
        "credentials for user 'alice' were refused (401)"
    )
    encoded = base64.b64encode(f"alice:{wrong}".encode()).decode()
    for text in texts:
        assert wrong not in text
        assert encoded not in text
    assert caplog.records, "debug logging was captured"


# -- bearer token flow ---------------------------------------------------------------------------


def test_bearer_token_flow(proxy, pushed):
    """A token service in front of the real registry: challenge, scoped tokens, cache until expiry."""
    user, password = "bob", "b0b-Pa55word"
    issued: list[str] = []
    realm = f"http://{proxy.host}/token"

    def token_service(seen):
        path, _, query = seen.path.partition("?")
        if path == "/token":
            params = dict(p.split("=", 1) for p in query.split("&"))
            if seen.headers.get("Authorization") != basic(user, password):
                return json_answer(401, {"details": "bad credentials"})
            scope = params["scope"].replace("%3A", ":").replace("%2C", ",").replace("%2F", "/")
            token = f"tok-{len(issued)}-{scope}"
            issued.append(scope)
            return json_answer(200, {"token": token, "expires_in": 60})
        repository = path.split("/")[2] + "/" + path.split("/")[3]
        scope = f"repository:{repository}:pull"
        authorization = seen.headers.get("Authorization", "")
        if not authorization.startswith("Bearer tok-") or not authorization.endswith(scope):
            challenge = f'Bearer realm="{realm}",service="test-registry",scope="{scope}"'
            return json_answer(401, {"errors": [{"code": "UNAUTHORIZED"}]}, {"WWW-Authenticate": challenge})
        return None  # authorized: forward to the real registry

    proxy.hook = token_service
    now = [0.0]
    with make_client(proxy.host, username=user, password=password, clock=lambda: now[0], tag_ttl=0) as client:
        ref = f"{proxy.host}/team/app:1"
        assert client.resolve_tag(ref) == pushed.digest
        assert issued == ["repository:team/app:pull"]
        assert [s.path.split("?")[0] for s in proxy.seen] == [
            "/v2/team/app/manifests/1",
            "/token",
            "/v2/team/app/manifests/1",
        ]
        assert client.stats.by_kind["token"] == 1

        # cached per scope: no new token, no 401
        proxy.seen.clear()
        assert client.resolve_tag(ref) == pushed.digest
        assert [s.path.split("?")[0] for s in proxy.seen] == ["/v2/team/app/manifests/1"]

        # another repository is another scope: a token fetched up front, no 401 first
        proxy.seen.clear()
        with pytest.raises(NotFound) as missing:
            client.resolve(f"{proxy.host}/other/repo:1")
        assert missing.value.kind is NotFoundKind.NAME_UNKNOWN
        assert issued[-1] == "repository:other/repo:pull"
        assert [s.path.split("?")[0] for s in proxy.seen][:2] == ["/token", "/v2/other/repo/manifests/1"]

        # expiry (60 s less a 10 s margin): a fresh token
        now[0] += 51
        before = len(issued)
        assert client.resolve_tag(ref) == pushed.digest
        assert len(issued) == before + 1


def test_bearer_token_refused(proxy, pushed):
    def refuse(seen):
        if seen.path.startswith("/token"):
            return json_answer(401, {})
        challenge = f'Bearer realm="http://{proxy.host}/token",service="svc",scope="repository:team/app:pull"'
        return json_answer(401, {}, {"WWW-Authenticate": challenge})

    proxy.hook = refuse
    with make_client(proxy.host, username="bob", password="Sup3r-secret") as client:
        with pytest.raises(AuthError) as caught:
            client.resolve(f"{proxy.host}/team/app:1")
    assert str(caught.value) == (
        f"registry {proxy.host}, repository team/app, reference 1: token service http://{proxy.host}/token "
        "refused user 'bob' for scope 'repository:team/app:pull' (401)"
    )
    assert "Sup3r-secret" not in repr(caught.value)


# -- TLS with a private CA -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl command missing (Debian package openssl) to make a test CA")
    d = tmp_path_factory.mktemp("tls")

    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=vigil test CA",
    )
    run(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    )
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    )
    return d


def test_tls_with_custom_ca_bundle(tmp_path, tls_files):
    with RegistryServer.for_pytest(
        tmp_path / "r", tls_cert=tls_files / "server.pem", tls_key=tls_files / "server.key"
    ) as server:
        assert server.url.startswith("https://")
        trusted = RegistryConfig.from_mapping({server.host: {"ca_bundle": str(tls_files / "ca.pem")}})
        with RegistryClient(trusted) as client:
            image = build_image([tar_layer({"x": b"tls"})])
            push(client, f"{server.host}/tls/app:1", image)
            assert client.resolve_tag(f"{server.host}/tls/app:1") == image.digest

        # without the CA: refused at once (no retries on a certificate), as unreachable
        with RegistryClient(RegistryConfig()) as untrusting:
            with pytest.raises(Unreachable, match="TLS failure") as caught:
                untrusting.resolve(f"{server.host}/tls/app:1")
            assert "(after 1 attempt)" in str(caught.value)
        # and plain HTTP is never used unless configured
        assert untrusting.transport.settings(server.host).scheme == "https"
