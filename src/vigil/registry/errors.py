"""Typed registry failures. Each message names the registry, the repository and the reference.

Callers map kinds to verdicts: NotFound is an answer from the registry (the
artifact is absent), while AuthError, Unreachable and a plain RegistryError mean
the registry could not tell us, so the verdict is ``unknown``, never a violation.
"""

from __future__ import annotations

from enum import Enum


class RegistryError(Exception):
    """A registry request failed; base of every error this package raises."""

    def __init__(self, registry: str, repository: str | None, reference: str | None, detail: str) -> None:
        self.registry = registry
        self.repository = repository
        self.reference = reference
        self.detail = detail
        super().__init__(self._message())

    def _subject(self) -> str:
        subject = f"registry {self.registry}"
        if self.repository:
            subject += f", repository {self.repository}"
        if self.reference:
            subject += f", reference {self.reference}"
        return subject

    def _message(self) -> str:
        return f"{self._subject()}: {self.detail}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class AuthError(RegistryError):
    """Credentials missing, refused, or the token service failed."""


class NotFoundKind(str, Enum):
    # The registry error codes of the distribution spec, plus the case of a
    # tag absent from an existing repository (distribution answers that with
    # MANIFEST_UNKNOWN; we tell it apart because for a tag it means "never
    # pushed or deleted", for a digest "this content is not here").
    MANIFEST_UNKNOWN = "manifest_unknown"
    TAG_UNKNOWN = "tag_unknown"
    NAME_UNKNOWN = "name_unknown"
    BLOB_UNKNOWN = "blob_unknown"


class NotFound(RegistryError):
    """The registry answered that the repository, tag, manifest or blob does not exist."""

    def __init__(
        self, registry: str, repository: str | None, reference: str | None, detail: str, kind: NotFoundKind
    ) -> None:
        self.kind = kind
        super().__init__(registry, repository, reference, detail)

    def _message(self) -> str:
        return f"{self._subject()}: {self.kind.value}: {self.detail}"


class Unreachable(RegistryError):
    """No answer: connection refused, DNS, TLS verification, timeouts, or retries exhausted."""


class DigestMismatch(RegistryError):
    """Content whose sha256 is not the digest it was asked for or announced with."""

    def __init__(
        self,
        registry: str,
        repository: str | None,
        reference: str | None,
        expected: str,
        actual: str | None,
        detail: str | None = None,
    ) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(registry, repository, reference, detail or f"content digest is {actual}, expected {expected}")
