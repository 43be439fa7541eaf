"""Per-registry connection settings and credentials, from a YAML file and the environment.

File (``VIGIL_REGISTRY_CONFIG`` names it when no path is given), keyed by
registry host exactly as it appears in image references::

    localhost:5000:
      plain_http: true            # only this registry may be spoken to without TLS
    artifactory.example.com:
      username: ci-reader
      password: <API token>       # basic auth: Artifactory and Harbor users with tokens
      ca_bundle: /etc/ssl/corp-ca.pem
    registry.gitlab.com:
      auth_hosts: [gitlab.com]    # hosts its token service (WWW-Authenticate realm) may live on
    registry.example.org:
      token: <static bearer token> # sent as "Authorization: Bearer", never exchanged

Environment, overriding the file field by field, with HOST upper-cased and every
character other than A-Z and 0-9 replaced by ``_`` (``localhost:5000`` ->
``LOCALHOST_5000``)::

    VIGIL_REGISTRY_<HOST>_USERNAME, VIGIL_REGISTRY_<HOST>_PASSWORD,
    VIGIL_REGISTRY_<HOST>_TOKEN, VIGIL_REGISTRY_<HOST>_PLAIN_HTTP (true/false),
    VIGIL_REGISTRY_<HOST>_CA_BUNDLE, VIGIL_REGISTRY_<HOST>_AUTH_HOSTS (comma-separated host[:port])

A registry's token service (the realm of its ``Bearer`` challenge) is fetched only over HTTPS on
the registry's own host and port, or on one of its ``auth_hosts`` (``AUTH_HOSTS`` holds the
well-known pairs, e.g. Docker Hub's ``auth.docker.io``); over plain HTTP only for a
``plain_http`` registry whose realm is on its own host and port (``vigil.registry.auth.realm_problem``).

Secrets are held in ``Secret`` so no repr, log line or error message shows them.
Validation errors name the host and the field, never a value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

import yaml

from vigil.yaml_errors import yaml_error_message

CONFIG_ENV = "VIGIL_REGISTRY_CONFIG"
ENV_PREFIX = "VIGIL_REGISTRY_"
_FIELDS = ("username", "password", "token", "plain_http", "ca_bundle", "auth_hosts")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

# The Hub's API lives on another host than the name in references.
API_HOSTS = {"docker.io": "registry-1.docker.io"}
# Token services that live on another host than their registry's API, known without configuration.
AUTH_HOSTS: dict[str, tuple[str, ...]] = {"docker.io": ("auth.docker.io",)}
_AUTH_HOST_RE = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::[0-9]{1,5})?")


class RegistryConfigError(ValueError):
    """A registry configuration that breaks a rule; names the source, host and field."""


class Secret:
    """A credential value that never shows itself in str, repr or format."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> NoReturn:  # refuse pickling a secret into caches or spools by accident
        raise TypeError("Secret values cannot be pickled")


@dataclass(frozen=True, slots=True)
class RegistrySettings:
    host: str
    username: str | None = None
    password: Secret | None = None
    token: Secret | None = None
    plain_http: bool = False
    ca_bundle: Path | None = None
    auth_hosts: tuple[str, ...] = ()  # host[:port] (lowercase) its token service may live on besides its own

    @property
    def scheme(self) -> str:
        return "http" if self.plain_http else "https"

    @property
    def api_host(self) -> str:
        return API_HOSTS.get(self.host, self.host)

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.api_host}"

    @property
    def token_hosts(self) -> tuple[str, ...]:
        """Where a token service of this registry may live besides its own host: configured and well-known."""
        return tuple(dict.fromkeys(self.auth_hosts + AUTH_HOSTS.get(self.host, ())))

    @property
    def has_basic_credentials(self) -> bool:
        return self.username is not None and self.password is not None


@dataclass(frozen=True)
class RegistryConfig:
    """Settings per registry host; a host without an entry is anonymous over HTTPS."""

    registries: Mapping[str, RegistrySettings] = field(default_factory=dict)
    environ: Mapping[str, str] | None = field(default=None, repr=False)  # holds secrets

    def for_host(self, host: str) -> RegistrySettings:
        settings = self.registries.get(host, RegistrySettings(host))
        if self.environ is not None:
            settings = _apply_env(settings, self.environ)
        return settings

    @classmethod
    def from_mapping(
        cls, data: Any, *, source: str = "registry config", environ: Mapping[str, str] | None = None
    ) -> RegistryConfig:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise RegistryConfigError(f"{source}: expected a mapping of registry host -> settings")
        registries = {}
        for host, entry in data.items():
            if not isinstance(host, str) or not host:
                raise RegistryConfigError(f"{source}: registry hosts must be non-empty strings")
            registries[host] = _settings_from_mapping(host, entry or {}, source)
        return cls(registries, environ)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> RegistryConfig:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise RegistryConfigError(f"registry config {path}: cannot read: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise RegistryConfigError(f"registry config {path}: not UTF-8 text (byte {exc.start})") from None
        except yaml.YAMLError as exc:
            raise RegistryConfigError(yaml_error_message(f"registry config {path}", exc)) from None
        return cls.from_mapping(data, source=f"registry config {path}", environ=environ)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
    ) -> RegistryConfig:
        """The file at ``path`` (or ``$VIGIL_REGISTRY_CONFIG``), overridden by the environment."""
        environ = os.environ if environ is None else environ
        path = path or environ.get(CONFIG_ENV)
        if path:
            return cls.from_file(path, environ=environ)
        return cls({}, environ)


def env_key(host: str) -> str:
    """The environment variable stem for ``host``: ``localhost:5000`` -> ``VIGIL_REGISTRY_LOCALHOST_5000``."""
    return ENV_PREFIX + re.sub(r"[^A-Z0-9]", "_", host.upper())


def _parse_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise RegistryConfigError(f"{where} must be true or false")


def _settings_from_mapping(host: str, entry: Any, source: str) -> RegistrySettings:
    where = f"{source}: registry {host}"
    if not isinstance(entry, Mapping):
        raise RegistryConfigError(f"{where}: expected a mapping of settings")
    unknown = sorted(str(k) for k in entry if k not in _FIELDS)
    if unknown:
        raise RegistryConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(_FIELDS)}")
    for name in ("username", "password", "token", "ca_bundle"):
        if entry.get(name) is not None and not isinstance(entry[name], str):
            # never echo the value: it may be a password typed as a number
            raise RegistryConfigError(f"{where}: {name} must be a string")
    settings = RegistrySettings(
        host=host,
        username=entry.get("username"),
        password=Secret(entry["password"]) if entry.get("password") is not None else None,
        token=Secret(entry["token"]) if entry.get("token") is not None else None,
        plain_http=_parse_bool(entry.get("plain_http", False), f"{where}: plain_http"),
        ca_bundle=Path(entry["ca_bundle"]) if entry.get("ca_bundle") else None,
        auth_hosts=parse_auth_hosts(entry.get("auth_hosts"), f"{where}: auth_hosts"),
    )
    _check(settings, where)
    return settings


def parse_auth_hosts(value: Any, where: str) -> tuple[str, ...]:
    """``auth_hosts`` as a list or a comma-separated string of host[:port]; lowercased."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise RegistryConfigError(f"{where} must be a list of host[:port] strings")
    hosts = []
    for item in (i.strip().lower() for i in items):
        if not item:
            continue
        if not _AUTH_HOST_RE.fullmatch(item) or not 0 < int(item.rpartition(":")[2] if ":" in item else 443) < 65536:
            raise RegistryConfigError(
                f"{where}: {item!r} is not a host[:port] (no scheme or path), e.g. auth.example.com:8443"
            )
        hosts.append(item)
    return tuple(dict.fromkeys(hosts))


def _check(settings: RegistrySettings, where: str) -> None:
    if (settings.username is None) != (settings.password is None):
        raise RegistryConfigError(f"{where}: username and password must be given together")
    if settings.token is not None and settings.password is not None:
        raise RegistryConfigError(f"{where}: give either username/password or token, not both")
    if settings.ca_bundle is not None and settings.plain_http:
        raise RegistryConfigError(f"{where}: ca_bundle is meaningless with plain_http")


def _apply_env(settings: RegistrySettings, environ: Mapping[str, str]) -> RegistrySettings:
    stem = env_key(settings.host)
    changes: dict[str, Any] = {}
    if (value := environ.get(f"{stem}_USERNAME")) is not None:
        changes["username"] = value
    if (value := environ.get(f"{stem}_PASSWORD")) is not None:
        changes["password"] = Secret(value)
    if (value := environ.get(f"{stem}_TOKEN")) is not None:
        changes["token"] = Secret(value)
    if (value := environ.get(f"{stem}_PLAIN_HTTP")) is not None:
        changes["plain_http"] = _parse_bool(value, f"{stem}_PLAIN_HTTP")
    if (value := environ.get(f"{stem}_CA_BUNDLE")) is not None:
        changes["ca_bundle"] = Path(value) if value else None
    if (value := environ.get(f"{stem}_AUTH_HOSTS")) is not None:
        changes["auth_hosts"] = parse_auth_hosts(value, f"{stem}_AUTH_HOSTS")
    if not changes:
        return settings
    updated = replace(settings, **changes)
    _check(updated, f"environment {stem}_*")
    return updated
