"""Image reference parsing: the normalization container runtimes apply, and its edge cases."""

from __future__ import annotations

import pytest

from vigil.model.image import (
    ImageRef,
    InvalidReference,
    digest_from_image_id,
    image_id_digest,
    is_sha256_digest,
    parse_image_ref,
)

D256 = "sha256:" + "0123456789abcdef" * 4
D512 = "sha512:" + "0123456789abcdef" * 8


@pytest.mark.parametrize(
    ("reference", "registry", "repository", "tag", "digest"),
    [
        # Docker Hub completion
        ("nginx", "docker.io", "library/nginx", "latest", None),
        ("nginx:1.25", "docker.io", "library/nginx", "1.25", None),
        ("library/nginx", "docker.io", "library/nginx", "latest", None),
        ("bitnami/redis:7", "docker.io", "bitnami/redis", "7", None),
        ("docker.io/nginx", "docker.io", "library/nginx", "latest", None),
        ("docker.io/library/nginx", "docker.io", "library/nginx", "latest", None),
        ("index.docker.io/nginx", "docker.io", "library/nginx", "latest", None),
        ("index.docker.io/bitnami/redis", "docker.io", "bitnami/redis", "latest", None),
        # registry-1.docker.io is not an alias for runtimes: it stays as written
        ("registry-1.docker.io/nginx", "registry-1.docker.io", "nginx", "latest", None),
        # a path component with '_' or '-' but no '.'/':' is not a host
        ("my_org/app", "docker.io", "my_org/app", "latest", None),
        ("my-org/app", "docker.io", "my-org/app", "latest", None),
        # hosts
        ("localhost/app", "localhost", "app", "latest", None),
        ("localhost:5000/app:v1", "localhost:5000", "app", "v1", None),
        ("127.0.0.1:5000/team/app", "127.0.0.1:5000", "team/app", "latest", None),
        ("ghcr.io/org/sub/app:v2", "ghcr.io", "org/sub/app", "v2", None),
        ("registry.example.com:443/a/b", "registry.example.com:443", "a/b", "latest", None),
        ("[::1]:5000/app:v1", "[::1]:5000", "app", "v1", None),
        ("[2001:db8::1]/app", "[2001:db8::1]", "app", "latest", None),
        ("example:5000/app", "example:5000", "app", "latest", None),
        # an uppercase first component is read as a host, as runtimes do
        ("Foo/bar", "Foo", "bar", "latest", None),
        ("Registry.Example.com/app", "Registry.Example.com", "app", "latest", None),
        # a single element is a Hub official image, even if it looks like a host
        ("localhost", "docker.io", "library/localhost", "latest", None),
        ("localhost:5000", "docker.io", "library/localhost", "5000", None),
        ("example.com", "docker.io", "library/example.com", "latest", None),
        # separators
        ("a__b/c.d/e---f", "docker.io", "a__b/c.d/e---f", "latest", None),
        # tags
        ("nginx:Latest_1.2-x", "docker.io", "library/nginx", "Latest_1.2-x", None),
        ("nginx:_private", "docker.io", "library/nginx", "_private", None),
        ("nginx:" + "t" * 128, "docker.io", "library/nginx", "t" * 128, None),
        # digests, with and without tag
        (f"nginx@{D256}", "docker.io", "library/nginx", None, D256),
        (f"nginx:1.25@{D256}", "docker.io", "library/nginx", "1.25", D256),
        (f"localhost:5000/app:v1@{D256}", "localhost:5000", "app", "v1", D256),
        (f"quay.io/a/b@{D512}", "quay.io", "a/b", None, D512),
        # length: 255 characters of path, counting the completed "library/"
        ("a" * 247, "docker.io", "library/" + "a" * 247, "latest", None),
        ("x.io/" + "a" * 255, "x.io", "a" * 255, "latest", None),
    ],
)
def test_valid_references_normalize(reference, registry, repository, tag, digest):
    ref = parse_image_ref(reference)
    assert ref == ImageRef(registry, repository, tag, digest)
    # the normalized form parses to itself
    assert parse_image_ref(str(ref)) == ref


def test_string_forms():
    assert str(parse_image_ref("nginx")) == "docker.io/library/nginx:latest"
    ref = parse_image_ref(f"nginx:1.25@{D256}")
    assert str(ref) == f"docker.io/library/nginx:1.25@{D256}"
    assert ref.name == "docker.io/library/nginx"
    # with a tag and a digest a runtime pulls the digest
    assert ref.pull_reference == D256
    assert parse_image_ref("nginx:1.25").pull_reference == "1.25"
    assert ImageRef.parse("busybox").tag == "latest"
    assert parse_image_ref("nginx").with_digest(D256).digest == D256


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("", "invalid image reference '': an image reference cannot be empty"),
        (
            "0123456789abcdef" * 4,
            f"invalid image reference '{'0123456789abcdef' * 4}': "
            "a 64-character hexadecimal string is an image id, not a repository name",
        ),
        # uppercase in the repository path
        (
            "Nginx",
            "invalid image reference 'Nginx': "
            "invalid reference format: repository name (library/Nginx) must be lowercase",
        ),
        (
            "docker.io/Library/nginx:Tag",
            "invalid image reference 'docker.io/Library/nginx:Tag': "
            "invalid reference format: repository name (Library/nginx) must be lowercase",
        ),
        (
            "localhost:5000/App",
            "invalid image reference 'localhost:5000/App': "
            "invalid reference format: repository name (App) must be lowercase",
        ),
        # tags
        (
            "nginx:",
            "invalid image reference 'nginx:': tag '' must be 1-128 of [A-Za-z0-9_.-], not starting with '.' or '-'",
        ),
        (
            "nginx:.hidden",
            "invalid image reference 'nginx:.hidden': "
            "tag '.hidden' must be 1-128 of [A-Za-z0-9_.-], not starting with '.' or '-'",
        ),
        (
            "nginx:-x",
            "invalid image reference 'nginx:-x': "
            "tag '-x' must be 1-128 of [A-Za-z0-9_.-], not starting with '.' or '-'",
        ),
        (
            "nginx:a+b",
            "invalid image reference 'nginx:a+b': "
            "tag 'a+b' must be 1-128 of [A-Za-z0-9_.-], not starting with '.' or '-'",
        ),
        (
            "nginx:é",
            "invalid image reference 'nginx:é': tag 'é' must be 1-128 of [A-Za-z0-9_.-], not starting with '.' or '-'",
        ),
        (
            "nginx:" + "t" * 129,
            f"invalid image reference 'nginx:{'t' * 129}': "
            f"tag '{'t' * 129}' must be 1-128 of [A-Za-z0-9_.-], not starting with '.' or '-'",
        ),
        # digests
        ("nginx@", "invalid image reference 'nginx@': digest '' is not algorithm:hex with at least 32 hex characters"),
        (
            "nginx@sha256:" + "a" * 63,
            f"invalid image reference 'nginx@sha256:{'a' * 63}': "
            "invalid checksum digest length: sha256 is 64 hex characters, got 63",
        ),
        (
            "nginx@sha256:" + "A" * 64,
            f"invalid image reference 'nginx@sha256:{'A' * 64}': invalid checksum digest format: hex must be lowercase",
        ),
        (
            "nginx@md5:" + "a" * 32,
            f"invalid image reference 'nginx@md5:{'a' * 32}': "
            "unsupported digest algorithm 'md5' (supported: sha256, sha384, sha512)",
        ),
        (
            "nginx@sha256:xyz",
            "invalid image reference 'nginx@sha256:xyz': "
            "digest 'sha256:xyz' is not algorithm:hex with at least 32 hex characters",
        ),
        # path components
        ("a//b", "invalid image reference 'a//b': the repository path has an empty component"),
        ("nginx/", "invalid image reference 'nginx/': the repository path has an empty component"),
        (
            "a___b",
            "invalid image reference 'a___b': "
            "path component 'a___b' must be lowercase letters and digits, separated by one '.', one or two '_', "
            "or '-'s",
        ),
        (
            "a..b",
            "invalid image reference 'a..b': "
            "path component 'a..b' must be lowercase letters and digits, separated by one '.', one or two '_', or '-'s",
        ),
        (
            "-a/b",
            "invalid image reference '-a/b': "
            "path component '-a' must be lowercase letters and digits, separated by one '.', one or two '_', or '-'s",
        ),
        (
            "a/b-",
            "invalid image reference 'a/b-': "
            "path component 'b-' must be lowercase letters and digits, separated by one '.', one or two '_', or '-'s",
        ),
        (
            " nginx",
            "invalid image reference ' nginx': "
            "path component ' nginx' must be lowercase letters and digits, separated by one '.', one or two '_', "
            "or '-'s",
        ),
        # hosts
        (
            "foo.com:port/app",
            "invalid image reference 'foo.com:port/app': "
            "registry host 'foo.com:port' is not a valid host[:port] (DNS name, IPv4, or [IPv6])",
        ),
        (
            "-bad.example.com/app",
            "invalid image reference '-bad.example.com/app': "
            "registry host '-bad.example.com' is not a valid host[:port] (DNS name, IPv4, or [IPv6])",
        ),
        (
            "foo_bar.com/app",
            "invalid image reference 'foo_bar.com/app': "
            "registry host 'foo_bar.com' is not a valid host[:port] (DNS name, IPv4, or [IPv6])",
        ),
        (
            "[fe80::1%eth0]:5000/app",
            "invalid image reference '[fe80::1%eth0]:5000/app': "
            "registry host '[fe80::1%eth0]:5000' is not a valid host[:port] (DNS name, IPv4, or [IPv6])",
        ),
        # length: "library/" is part of the path once completed
        ("a" * 248, f"invalid image reference '{'a' * 248}': repository name must not be more than 255 characters"),
        (
            "x.io/" + "a" * 256,
            f"invalid image reference 'x.io/{'a' * 256}': repository name must not be more than 255 characters",
        ),
    ],
)
def test_invalid_references_name_the_rule(reference, message):
    with pytest.raises(InvalidReference) as caught:
        parse_image_ref(reference)
    assert str(caught.value) == message
    assert caught.value.reference == reference


def test_invalid_reference_is_a_value_error():
    with pytest.raises(ValueError):
        parse_image_ref("UPPER")


def test_is_sha256_digest():
    assert is_sha256_digest(D256)
    assert not is_sha256_digest(D256.upper())
    assert not is_sha256_digest(D256[:-1])
    assert not is_sha256_digest(D512)
    assert not is_sha256_digest(None)


@pytest.mark.parametrize(
    ("image_id", "expected"),
    [
        (f"docker-pullable://nginx@{D256}", D256),
        (f"docker.io/library/nginx@{D256}", D256),
        (f"localhost:5000/app@{D256}", D256),
        # image ids (config digests) are not manifest digests
        (f"docker://{D256}", None),
        (D256, None),
        ("", None),
        (None, None),
        ("docker.io/library/nginx@sha256:short", None),
    ],
)
def test_digest_from_image_id(image_id, expected):
    assert digest_from_image_id(image_id) == expected


def test_image_id_digest():
    assert image_id_digest(f"docker://{D256}") == D256
    assert image_id_digest(D256) == D256
    assert image_id_digest(f"nginx@{D256}") is None
