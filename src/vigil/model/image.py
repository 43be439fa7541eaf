"""Image references, parsed and normalized the way container runtimes do it.

The grammar and the normalization are those of the distribution project's
``reference`` package (``ParseNormalizedNamed``), which containerd, CRI-O and
Docker all use: ``[domain/]path[:tag][@digest]``.

- The first path component is a registry host only when there is a ``/`` after
  it and it contains ``.`` or ``:``, is ``localhost``, or has uppercase letters
  (runtimes then take ``Foo/bar`` as host ``Foo``, never as an uppercase path).
- Docker Hub names are completed: ``nginx`` -> ``docker.io/library/nginx:latest``;
  ``index.docker.io`` is the legacy Hub name and becomes ``docker.io``. Other
  hosts (``registry-1.docker.io`` included) are kept as written, as runtimes do.
- A digest must be of an algorithm runtimes support (sha256, sha384, sha512) in
  lowercase hex of that algorithm's length.
- The repository path (after completion, so ``library/`` counts) is at most
  255 characters; a tag is 1-128 of ``[A-Za-z0-9_.-]`` not starting with ``.``/``-``.
- A bare 64-hex string is an image id, not a name, and is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_REGISTRY = "docker.io"
LEGACY_DEFAULT_REGISTRY = "index.docker.io"
OFFICIAL_NAMESPACE = "library"
DEFAULT_TAG = "latest"
REPOSITORY_PATH_MAX = 255

# Character classes are spelled out (no \w): Python's \w is Unicode-aware, the
# runtimes' grammar is ASCII only.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_PATH = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[[a-fA-F0-9:]+\]"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|{_IPV6})(?::[0-9]+)?"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_REFERENCE_RE = re.compile(rf"(?:({_DOMAIN})/)?({_PATH})(?::({_TAG}))?(?:@({_DIGEST}))?")
_PATH_COMPONENT_RE = re.compile(_PATH_COMPONENT)
_DOMAIN_RE = re.compile(_DOMAIN)
_TAG_RE = re.compile(_TAG)
_DIGEST_RE = re.compile(_DIGEST)
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}")
_SHA256_RE = re.compile(r"sha256:[a-f0-9]{64}")

# Algorithms a runtime can verify, with the length of their hex encoding.
SUPPORTED_DIGEST_ALGORITHMS = {"sha256": 64, "sha384": 96, "sha512": 128}

_TAG_RULE = "must be 1-128 of [A-Za-z0-9_.-], not starting with '.' or '-'"
_COMPONENT_RULE = "must be lowercase letters and digits, separated by one '.', one or two '_', or '-'s"


class InvalidReference(ValueError):
    """A string that is not a valid image reference; the message names the rule."""

    def __init__(self, reference: str, rule: str) -> None:
        super().__init__(f"invalid image reference {reference!r}: {rule}")
        self.reference = reference
        self.rule = rule


def is_sha256_digest(value: object) -> bool:
    """True for ``sha256:`` followed by 64 lowercase hex characters."""
    return isinstance(value, str) and _SHA256_RE.fullmatch(value) is not None


def digest_error(digest: str) -> str | None:
    """Why ``digest`` is not a digest a runtime accepts, or None when it is."""
    if not _DIGEST_RE.fullmatch(digest):
        return f"digest {digest!r} is not algorithm:hex with at least 32 hex characters"
    algorithm, _, encoded = digest.partition(":")
    length = SUPPORTED_DIGEST_ALGORITHMS.get(algorithm)
    if length is None:
        supported = ", ".join(SUPPORTED_DIGEST_ALGORITHMS)
        return f"unsupported digest algorithm {algorithm!r} (supported: {supported})"
    if len(encoded) != length:
        return f"invalid checksum digest length: {algorithm} is {length} hex characters, got {len(encoded)}"
    if encoded != encoded.lower():
        return "invalid checksum digest format: hex must be lowercase"
    return None


def validate_digest(reference: str, digest: str) -> str:
    """Return ``digest`` or raise InvalidReference naming ``reference`` and the rule."""
    problem = digest_error(digest)
    if problem:
        raise InvalidReference(reference, problem)
    return digest


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A normalized image reference.

    ``tag`` is None when the reference names only a digest; an input with
    neither gets ``latest``, as a runtime would pull it. With both, the runtime
    pulls by digest (see ``pull_reference``) and the tag is kept as the name
    the user asked for.
    """

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        # The store keeps "" for the registry of a reference it could not parse.
        return f"{self.registry}/{self.repository}" if self.registry else self.repository

    @property
    def pull_reference(self) -> str:
        """The manifest reference a runtime fetches: the digest if any, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_digest(self, digest: str) -> ImageRef:
        return ImageRef(self.registry, self.repository, self.tag, validate_digest(str(self), digest))

    def __str__(self) -> str:
        out = self.name
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out

    @classmethod
    def parse(cls, reference: str) -> ImageRef:
        return parse_image_ref(reference)


def image_text(registry: str | None, repository: str, tag: str | None = None, digest: str | None = None) -> str:
    """``registry/repository[:tag][@digest]`` from stored columns, where an absent part is ""."""
    return str(ImageRef(registry or "", repository, tag or None, digest or None))


def _split_registry(name: str) -> tuple[str, str]:
    """Split ``name`` (which may still carry ``:tag@digest``) into registry and remainder."""
    first, slash, rest = name.partition("/")
    if not slash:
        # A single element is always a Hub official image, even "localhost" or
        # "example.com:5000" (the part after ':' is then a tag).
        return DEFAULT_REGISTRY, f"{OFFICIAL_NAMESPACE}/{name}"
    if first == LEGACY_DEFAULT_REGISTRY:
        registry, remainder = DEFAULT_REGISTRY, rest
    elif first == "localhost" or "." in first or ":" in first or first.lower() != first:
        registry, remainder = first, rest
    else:
        registry, remainder = DEFAULT_REGISTRY, name
    if registry == DEFAULT_REGISTRY and "/" not in remainder:
        remainder = f"{OFFICIAL_NAMESPACE}/{remainder}"
    return registry, remainder


def _diagnose(reference: str, registry: str, remainder: str) -> str:
    """The specific rule a reference broke, once the full grammar has refused it."""
    name_and_tag, at, digest = remainder.partition("@")
    if at:
        problem = digest_error(digest)
        if problem:
            return problem
    path, colon, tag = name_and_tag.partition(":")
    if colon and not _TAG_RE.fullmatch(tag):
        return f"tag {tag!r} {_TAG_RULE}"
    if not _DOMAIN_RE.fullmatch(registry):
        return f"registry host {registry!r} is not a valid host[:port] (DNS name, IPv4, or [IPv6])"
    for component in path.split("/"):
        if not component:
            return "the repository path has an empty component"
        if not _PATH_COMPONENT_RE.fullmatch(component):
            return f"path component {component!r} {_COMPONENT_RULE}"
    return "invalid reference format"


def parse_image_ref(reference: str) -> ImageRef:
    """Parse and normalize ``reference``; raise InvalidReference naming the broken rule."""
    if not isinstance(reference, str) or not reference:
        raise InvalidReference(str(reference), "an image reference cannot be empty")
    if _IDENTIFIER_RE.fullmatch(reference):
        raise InvalidReference(reference, "a 64-character hexadecimal string is an image id, not a repository name")

    registry, remainder = _split_registry(reference)
    # As runtimes do: the repository part is what precedes the first ':' of the
    # remainder, and an uppercase letter there is named as such, not as a
    # generic format error.
    repository_part = remainder.partition(":")[0]
    if repository_part.lower() != repository_part:
        raise InvalidReference(
            reference, f"invalid reference format: repository name ({repository_part}) must be lowercase"
        )

    match = _REFERENCE_RE.fullmatch(f"{registry}/{remainder}")
    if match is None:
        raise InvalidReference(reference, _diagnose(reference, registry, remainder))
    domain, path, tag, digest = match.groups()
    if domain != registry:
        # The grammar then read the host as a path component ("foo_bar.com/x"
        # has no valid host); a runtime would have no registry to pull from.
        raise InvalidReference(
            reference, f"registry host {registry!r} is not a valid host[:port] (DNS name, IPv4, or [IPv6])"
        )
    if len(path) > REPOSITORY_PATH_MAX:
        raise InvalidReference(reference, f"repository name must not be more than {REPOSITORY_PATH_MAX} characters")
    if digest is not None:
        validate_digest(reference, digest)
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return ImageRef(registry=registry, repository=path, tag=tag, digest=digest)


_IMAGE_ID_PREFIXES = ("docker-pullable://", "docker://", "containerd://", "cri-o://")


def digest_from_image_id(image_id: str | None) -> str | None:
    """The manifest digest in a container status ``imageID``, if it carries one.

    Only the ``name@sha256:...`` forms carry a manifest (repo) digest:
    ``docker-pullable://repo@sha256:...``, ``docker.io/library/nginx@sha256:...``
    (containerd, CRI-O). A bare ``sha256:...`` (containerd and CRI-O for an
    image without a repo digest, e.g. imported locally) or ``docker://sha256:...``
    is the image id, i.e. the digest of the image *config*, which a registry
    never serves as a manifest: comparing it with a tag's digest would raise a
    false digest_mismatch, so it yields None. So does "" (image still pulling).
    """
    if not image_id:
        return None
    value = image_id
    for prefix in _IMAGE_ID_PREFIXES:
        if value.startswith(prefix):
            value = value[len(prefix) :]
            break
    name, at, digest = value.rpartition("@")
    if not at or not name:
        return None
    return digest if is_sha256_digest(digest) else None


def image_id_digest(image_id: str | None) -> str | None:
    """The config digest when ``imageID`` is a bare image id (``[docker://]sha256:...``)."""
    if not image_id:
        return None
    value = image_id.removeprefix("docker://")
    return value if is_sha256_digest(value) else None
