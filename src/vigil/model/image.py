"""Image references, parsed and normalized the way container runtimes do it.

The grammar is the one of the distribution project's `reference` package, which
containerd, CRI-O and Docker all use: ``[domain/]path[:tag][@digest]``. A first
path component is a domain only when it contains ``.`` or ``:``, is
``localhost``, or has uppercase letters (so ``Foo/bar`` fails on the domain, not
silently on the path). Docker Hub names are completed: ``nginx`` becomes
``docker.io/library/nginx:latest``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"
_DOCKER_HUB_ALIASES = {"index.docker.io", "registry-1.docker.io", "docker.io"}

_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|{_IPV6})(?::[0-9]+)?\Z"
)
_TAG = re.compile(r"[\w][\w.-]{0,127}\Z")
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}\Z")
_SHA256 = re.compile(r"sha256:[a-f0-9]{64}\Z")
_NAME_MAX = 255


class InvalidReference(ValueError):
    """A string that is not a valid image reference; the message names the rule."""

    def __init__(self, reference: str, rule: str) -> None:
        super().__init__(f"invalid image reference {reference!r}: {rule}")
        self.reference = reference
        self.rule = rule


def is_sha256_digest(value: str) -> bool:
    return bool(_SHA256.match(value))


def validate_digest(reference: str, digest: str) -> str:
    if not _DIGEST.match(digest):
        raise InvalidReference(reference, f"digest {digest!r} is not algorithm:hex")
    if digest.startswith("sha256:") and not _SHA256.match(digest):
        raise InvalidReference(reference, "a sha256 digest is 64 lowercase hex characters")
    return digest


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A normalized image reference.

    ``tag`` is None when the reference names only a digest; an input with
    neither gets ``latest``, as a runtime would pull it.
    """

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        out = self.name
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out

    @classmethod
    def parse(cls, reference: str) -> "ImageRef":
        return parse_image_ref(reference)


def _split_domain(reference: str, name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        if not _DOMAIN.match(first):
            raise InvalidReference(reference, f"registry host {first!r} is not a valid host[:port]")
        domain = first
        path = rest
    else:
        domain = DEFAULT_REGISTRY
        path = name
    if domain in _DOCKER_HUB_ALIASES:
        domain = DEFAULT_REGISTRY
        if "/" not in path:
            path = f"library/{path}"
    return domain, path


def parse_image_ref(reference: str) -> ImageRef:
    """Parse and normalize ``reference``; raise InvalidReference naming the broken rule."""
    if not isinstance(reference, str) or not reference:
        raise InvalidReference(str(reference), "an image reference cannot be empty")
    if reference != reference.strip():
        raise InvalidReference(reference, "an image reference cannot contain whitespace")

    remainder, at, digest = reference.partition("@")
    digest_value: str | None = None
    if at:
        if not digest:
            raise InvalidReference(reference, "'@' must be followed by a digest")
        digest_value = validate_digest(reference, digest)

    # A ':' after the last '/' separates the tag; one before it belongs to a port.
    tag: str | None = None
    slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > slash:
        remainder, tag = remainder[:colon], remainder[colon + 1 :]
        if not _TAG.match(tag):
            raise InvalidReference(
                reference, f"tag {tag!r} must be 1-128 of [A-Za-z0-9_.-], not starting with '.' or '-'"
            )
    if not remainder:
        raise InvalidReference(reference, "the repository name is missing")
    if len(remainder) > _NAME_MAX:
        raise InvalidReference(reference, f"the repository name is longer than {_NAME_MAX} characters")

    domain, path = _split_domain(reference, remainder)
    if not path:
        raise InvalidReference(reference, "the repository path is missing")
    for component in path.split("/"):
        if not _PATH_COMPONENT.match(component):
            rule = (
                "repository names must be lowercase"
                if component.lower() != component
                else f"path component {component!r} must be lowercase letters and digits separated by '.', '_', '__' or '-'"
            )
            raise InvalidReference(reference, rule)

    if tag is None and digest_value is None:
        tag = DEFAULT_TAG
    return ImageRef(registry=domain, repository=path, tag=tag, digest=digest_value)


def digest_from_image_id(image_id: str | None) -> str | None:
    """The manifest digest in a container status ``imageID``, if it carries one.

    Forms seen in real clusters: ``docker-pullable://repo@sha256:...``,
    ``docker://sha256:...`` (an image id, not a manifest digest), ``repo@sha256:...``,
    a bare ``sha256:...`` (containerd reports the repo digest this way for images
    pulled by digest only), and the empty string while the image is pulling.
    """
    if not image_id:
        return None
    value = image_id
    for prefix in ("docker-pullable://", "docker://", "containerd://", "cri-o://"):
        if value.startswith(prefix):
            value = value[len(prefix) :]
            break
    _, at, digest = value.rpartition("@")
    candidate = digest if at else value
    return candidate if is_sha256_digest(candidate) else None
