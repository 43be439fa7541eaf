"""The client against a real docker-registry (distribution 2.8) with images pushed by the tests."""

from __future__ import annotations

import json
import random
import tarfile

import pytest
from registry_helpers import json_answer, make_client

from vigil.devtools.oci import LayerFile, build_image, build_index, delete_manifest, push, tar_layer
from vigil.registry import (
    ImageIndex,
    ImageManifest,
    NotFound,
    NotFoundKind,
    Platform,
    Unreachable,
)
from vigil.registry import media_types as mt

LABELS = {
    "org.opencontainers.image.source": "https://git.example.com/team/app",
    "org.opencontainers.image.revision": "3f2a9c1d",
    "org.opencontainers.image.created": "2024-05-01T12:00:00Z",
    "org.opencontainers.image.authors": "Team App <app@example.com>",
    "org.opencontainers.image.version": "1.4.2",
    "com.example.unrelated": "x",
}


def one_layer(text: str):
    return tar_layer({"app/VERSION": text.encode(), "bin/run": LayerFile(b"#!/bin/sh\necho run\n", mode=0o755)})


def test_single_platform_push_resolve_and_fetch(registry, client):
    image = build_image([one_layer("1")], labels=LABELS)
    ref = f"{registry.host}/team/app:1.0"
    assert push(client, ref, image) == image.digest

    resolved = client.resolve(ref)
    assert resolved.digest == image.digest
    assert resolved.media_type == mt.OCI_MANIFEST
    assert resolved.size == image.manifest.size
    assert client.resolve_tag(ref) == image.digest

    manifest = client.get_manifest(f"{registry.host}/team/app@{image.digest}")
    assert isinstance(manifest, ImageManifest)
    assert manifest.digest == image.digest
    assert manifest.config.digest == image.config.digest
    assert [layer.digest for layer in manifest.layers] == [image.layers[0].blob.digest]
    body, media_type, digest = client.get_manifest_bytes(ref, image.digest)
    assert (body, media_type, digest) == (image.manifest.data, mt.OCI_MANIFEST, image.digest)


def test_provenance_from_config_labels(registry, client):
    image = build_image([one_layer("prov")], labels=LABELS)
    ref = f"{registry.host}/team/prov:1.4.2"
    push(client, ref, image)
    provenance = client.provenance(ref)
    assert provenance.source == "https://git.example.com/team/app"
    assert provenance.revision == "3f2a9c1d"
    assert provenance.created == "2024-05-01T12:00:00Z"
    assert provenance.authors == "Team App <app@example.com>"
    assert provenance.version == "1.4.2"
    assert provenance.labels == LABELS
    config = client.get_config(ref, client.get_manifest(ref))
    assert (config.os, config.architecture) == ("linux", "amd64")
    assert config.diff_ids == (image.layers[0].diff_id,)


def test_two_platform_index(registry, client):
    layer = one_layer("multi")
    amd64 = build_image([layer], platform="linux/amd64", labels={"org.opencontainers.image.version": "amd"})
    arm64 = build_image([layer], platform="linux/arm64/v8", labels={"org.opencontainers.image.version": "arm"})
    index = build_index([amd64, arm64])
    ref = f"{registry.host}/team/multi:2.0"
    assert push(client, ref, index) == index.digest

    resolved = client.resolve(ref)
    assert (resolved.digest, resolved.media_type, resolved.is_index) == (index.digest, mt.OCI_INDEX, True)
    manifest = client.get_manifest(ref)
    assert isinstance(manifest, ImageIndex)
    assert manifest.platforms == (Platform("linux", "amd64"), Platform("linux", "arm64", "v8"))
    assert client.platform_manifest(ref, platform=Platform.parse("linux/arm64")).digest == arm64.digest
    assert client.platform_manifest(ref).digest == amd64.digest
    assert client.provenance(ref, platform=Platform.parse("linux/arm64/v8")).version == "arm"
    with pytest.raises(NotFound) as missing:
        client.platform_manifest(ref, platform=Platform.parse("linux/s390x"))
    assert str(missing.value) == (
        f"registry {registry.host}, repository team/multi, reference 2.0: manifest_unknown: "
        f"index {index.digest} has no manifest for linux/s390x (has: linux/amd64, linux/arm64/v8)"
    )

    # the index digest and each platform manifest digest are the same artifact; others are not
    assert client.same_artifact(ref, index.digest)
    assert client.same_artifact(ref, amd64.digest)
    assert client.same_artifact(ref, arm64.digest)
    other = build_image([one_layer("other")])
    push(client, f"{registry.host}/team/multi:other", other)
    assert not client.same_artifact(ref, other.digest)


def test_docker_v2_manifest_list(registry, client):
    layer = one_layer("docker")
    images = [build_image([layer], platform=p, docker_media_types=True) for p in ("linux/amd64", "linux/arm/v7")]
    index = build_index(images)
    ref = f"{registry.host}/team/dockerish:1"
    push(client, ref, index)
    resolved = client.resolve(ref)
    assert (resolved.digest, resolved.media_type) == (index.digest, mt.DOCKER_MANIFEST_LIST)
    arm = client.platform_manifest(ref, platform=Platform.parse("linux/arm/v7"))
    assert (arm.digest, arm.media_type) == (images[1].digest, mt.DOCKER_MANIFEST)


def test_tags_list(registry, client):
    image = build_image([one_layer("tags")])
    tags = ["v1", "v10", "v2", "v3", "v4"]
    for tag in tags:
        push(client, f"{registry.host}/team/tagged:{tag}", image)
    # distribution 2.8 ignores n/last and answers in storage order: all tags, one page
    assert sorted(client.list_tags(f"{registry.host}/team/tagged", page_size=2)) == sorted(tags)


def test_tag_pagination_follows_link(registry, client, proxy):
    """Pages as distribution 3, Harbor and GHCR serve them (n, last, Link rel=next), over the real tag list."""
    tags = [f"t{i:02d}" for i in range(7)]
    image = build_image([one_layer("pages")])
    for tag in tags:
        push(client, f"{registry.host}/team/paged:{tag}", image)

    def paginate(seen):
        if not seen.path.startswith("/v2/team/paged/tags/list"):
            return None
        query = dict(p.split("=", 1) for p in seen.path.partition("?")[2].split("&") if "=" in p)
        everything = sorted(json.loads(proxy.forward(seen, b"")[2])["tags"])
        after = [t for t in everything if t > query.get("last", "")]
        page = after[: int(query.get("n", "100"))]
        headers = {}
        if len(after) > len(page):
            headers["Link"] = f'</v2/team/paged/tags/list?n={query.get("n", "100")}&last={page[-1]}>; rel="next"'
        return json_answer(200, {"name": "team/paged", "tags": page}, headers)

    proxy.hook = paginate
    with make_client(proxy.host) as via_proxy:
        assert via_proxy.list_tags(f"{proxy.host}/team/paged", page_size=3) == tags
        assert via_proxy.stats.by_kind["tags"] == 3  # 3 + 3 + 1
    assert [s.path for s in proxy.seen] == [
        "/v2/team/paged/tags/list?n=3",
        "/v2/team/paged/tags/list?n=3&last=t02",
        "/v2/team/paged/tags/list?n=3&last=t05",
    ]


def test_blob_streaming_verified(registry, client):
    payload = random.Random(4).randbytes(1 << 20)  # 1 MiB that gzip cannot shrink: several chunks
    layer = tar_layer({"data/blob.bin": payload})
    image = build_image([layer])
    ref = f"{registry.host}/team/blobs:1"
    push(client, ref, image)
    blob = layer.blob

    with client.open_blob(ref, blob.digest, blob.size) as reader:
        chunks = list(reader.iter_chunks())
        assert reader.verified
    assert len(chunks) > 1
    assert b"".join(chunks) == blob.data

    # as a file object: stream the gzip tar straight into tarfile
    with client.open_blob(ref, blob.digest, blob.size) as reader:
        with tarfile.open(fileobj=reader, mode="r|gz") as tar:
            members = {m.name: tar.extractfile(m).read() if m.isfile() else None for m in tar}
        reader.read()  # drain the gzip trailer so the end is reached and checked
        assert reader.verified
    assert members["data/blob.bin"] == payload

    with pytest.raises(NotFound) as missing:
        client.fetch_blob(ref, "sha256:" + "1" * 64)
    assert missing.value.kind is NotFoundKind.BLOB_UNKNOWN


def test_deleted_manifest_is_not_found(registry, client):
    image = build_image([one_layer("doomed")])
    ref = f"{registry.host}/team/doomed:1"
    digest = push(client, ref, image)
    assert client.resolve(ref).digest == digest
    delete_manifest(client, ref, digest)

    with pytest.raises(NotFound) as by_tag:
        client.resolve(ref)
    assert by_tag.value.kind is NotFoundKind.TAG_UNKNOWN
    assert str(by_tag.value) == (
        f"registry {registry.host}, repository team/doomed, reference 1: tag_unknown: "
        "registry answered 404 MANIFEST_UNKNOWN: manifest unknown"
    )
    with pytest.raises(NotFound) as by_digest:
        client.get_manifest(f"{registry.host}/team/doomed@{digest}")
    assert by_digest.value.kind is NotFoundKind.MANIFEST_UNKNOWN
    assert by_digest.value.reference == digest

    with pytest.raises(NotFound) as no_repo:
        client.resolve(f"{registry.host}/never/pushed:1")
    assert no_repo.value.kind is NotFoundKind.NAME_UNKNOWN
    assert no_repo.value.repository == "never/pushed"


def test_caches_tag_ttl_and_content_forever(registry):
    now = [1000.0]
    with make_client(registry.host, tag_ttl=30, clock=lambda: now[0]) as client:
        image = build_image([one_layer("cache")])
        ref = f"{registry.host}/team/cached:1"
        push(client, ref, image)

        client.stats.reset()
        client.resolve(ref)
        assert client.stats.requests == 1
        client.resolve(ref)
        client.resolve_tag(ref)
        assert client.stats.requests == 1  # within the TTL: no request
        now[0] += 31
        client.resolve(ref)
        assert client.stats.requests == 2  # TTL passed: asked again

        by_digest = f"{registry.host}/team/cached@{image.digest}"
        client.get_manifest(by_digest)
        assert client.stats.requests == 3
        now[0] += 10_000
        client.get_manifest(by_digest)
        client.get_manifest(ref, image.digest)
        assert client.stats.requests == 3  # content by digest: never fetched again
        assert client.stats.snapshot()["cache_hits"] == {"tag": 2, "content": 2}


def test_tag_moved_is_seen_after_ttl(registry):
    now = [0.0]
    with make_client(registry.host, tag_ttl=5, clock=lambda: now[0]) as reader, make_client(registry.host) as writer:
        ref = f"{registry.host}/team/moving:stable"
        first = push(writer, ref, build_image([one_layer("first")]))
        assert reader.resolve_tag(ref) == first
        second = push(writer, ref, build_image([one_layer("second")]))
        assert reader.resolve_tag(ref) == first  # cached
        now[0] += 6
        assert reader.resolve_tag(ref) == second


def test_registry_stopped_is_unreachable_then_recovers(tmp_path):
    from vigil.devtools.registry_server import RegistryServer

    with RegistryServer.for_pytest(tmp_path / "r") as server:
        with make_client(server.host, tag_ttl=0) as client:
            ref = f"{server.host}/team/app:1"
            digest = push(client, ref, build_image([one_layer("restart")]))
            server.stop()
            with pytest.raises(Unreachable) as caught:
                client.resolve(ref)
            message = str(caught.value)
            assert message.startswith(
                f"registry {server.host}, repository team/app, reference 1: "
                f"HEAD http://{server.host}/v2/team/app/manifests/1 connection failed"
            )
            assert message.endswith("(after 3 attempts)")
            assert client.stats.retries == 2
            server.start()
            assert client.resolve_tag(ref) == digest  # storage survives a restart
