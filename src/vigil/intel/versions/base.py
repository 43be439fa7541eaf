"""What every version scheme provides, and the errors they raise."""

from __future__ import annotations

from abc import ABC, abstractmethod
from functools import lru_cache
from typing import Any


class UnknownEcosystemError(ValueError):
    """An ecosystem name for which no version scheme is registered."""

    def __init__(self, ecosystem: str, known: list[str]) -> None:
        self.ecosystem = ecosystem
        super().__init__(
            f"unknown ecosystem {ecosystem!r}: no version scheme is registered for "
            f"{ecosystem.split(':', 1)[0]!r} (known: {', '.join(sorted(known))})"
        )


class InvalidVersionError(ValueError):
    """A version string that a scheme refuses, with the rule it broke."""

    def __init__(self, scheme: str, version: str, rule: str) -> None:
        self.scheme = scheme
        self.version = version
        self.rule = rule
        super().__init__(f"invalid {scheme} version {version!r}: {rule}")


class EcosystemVersionError(InvalidVersionError):
    """An installed version that its ecosystem's scheme refuses: names both."""

    def __init__(self, ecosystem: str, error: InvalidVersionError) -> None:
        ValueError.__init__(
            self,
            f"version {error.version!r} is not a valid {error.scheme} version "
            f"(the version scheme of ecosystem {ecosystem}): {error.rule}",
        )
        self.scheme = error.scheme
        self.version = error.version
        self.rule = error.rule
        self.ecosystem = ecosystem


def sign(n: int) -> int:
    return (n > 0) - (n < 0)


class VersionScheme(ABC):
    """One ordering of version strings (dpkg, apk, rpm, PEP 440, SemVer, Maven).

    A scheme parses a string once into a comparable form (cached, because the
    same advisory bounds are compared against many installed versions) and
    compares two parsed forms.
    """

    name: str

    def __init__(self) -> None:
        self._parse_cached = lru_cache(maxsize=65536)(self._checked_parse)
        self._key_cached = lru_cache(maxsize=65536)(self._make_key)

    def sort_key(self, parsed: Any) -> Any:
        """A value whose natural order (<, ==) is this scheme's order.

        Schemes whose order maps onto plain tuples override this, so matching
        compares in C instead of calling compare_parsed; the default wraps
        compare_parsed."""
        return _CompareKey(self, parsed)

    def _make_key(self, version: str) -> Any:
        return self.sort_key(self.parsed(version))

    def key(self, version: str) -> Any:
        """sort_key of a version string (cached); raises InvalidVersionError."""
        return self._key_cached(version)

    def _checked_parse(self, version: str) -> Any:
        if not isinstance(version, str):
            raise InvalidVersionError(self.name, repr(version), "a version must be a string")
        if version == "" or version.strip() != version:
            raise InvalidVersionError(
                self.name,
                version,
                "a version must be non-empty without surrounding whitespace",
            )
        return self.parse(version)

    @abstractmethod
    def parse(self, version: str) -> Any:
        """Parse a version; raise InvalidVersionError naming the rule it breaks."""

    @abstractmethod
    def compare_parsed(self, a: Any, b: Any) -> int:
        """-1, 0 or 1 for two values returned by parse()."""

    def parsed(self, version: str) -> Any:
        return self._parse_cached(version)

    def compare(self, a: str, b: str) -> int:
        return self.compare_parsed(self.parsed(a), self.parsed(b))

    def validate(self, version: str) -> None:
        self.parsed(version)

    def validate_installed(self, version: str) -> None:
        """Refuse a version no release of a package could have (stricter than
        ordering, which also has to place odd bounds written in advisories)."""
        self.validate(version)

    def canonical(self, version: str) -> str:
        """A spelling shared by versions this scheme treats as the same release
        where the ecosystem writes one release several ways (PyPI ``1.0.0`` and
        ``1.0``, Go ``v1.2.3`` and ``1.2.3``); by default the version itself."""
        return version


class _CompareKey:
    __slots__ = ("parsed", "scheme")

    def __init__(self, scheme: VersionScheme, parsed: Any) -> None:
        self.scheme = scheme
        self.parsed = parsed

    def __lt__(self, other: _CompareKey) -> bool:
        return self.scheme.compare_parsed(self.parsed, other.parsed) < 0

    def __le__(self, other: _CompareKey) -> bool:
        return self.scheme.compare_parsed(self.parsed, other.parsed) <= 0

    def __gt__(self, other: _CompareKey) -> bool:
        return self.scheme.compare_parsed(self.parsed, other.parsed) > 0

    def __ge__(self, other: _CompareKey) -> bool:
        return self.scheme.compare_parsed(self.parsed, other.parsed) >= 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _CompareKey) and self.scheme.compare_parsed(self.parsed, other.parsed) == 0

    __hash__ = None  # type: ignore[assignment]
