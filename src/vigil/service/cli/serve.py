"""`vigil up`, `vigil service`, `vigil token`, `vigil cluster`: commands that run or administer the service."""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape

from vigil.cli_output import Output
from vigil.cli_paths import BadPath, input_file, output_dir
from vigil.clock import iso
from vigil.loopback import is_loopback_host
from vigil.service.settings import ContentsSettings, IntegritySettings, Settings, default_data_dir
from vigil.service.store.db import StoreError, create_store_engine, migrate
from vigil.service.store.sessions import end_token_sessions
from vigil.service.store.tokens import has_admin, issue_token, list_tokens, revoke_token

if TYPE_CHECKING:
    import uvicorn
    from sqlalchemy import Engine

    from vigil.service.client_ca import ClientCA

console = Console()
err = Console(stderr=True)

DataDir = typer.Option(
    None,
    "--data-dir",
    envvar="VIGIL_DATA_DIR",
    help="Where the SQLite store and state live [default: ~/.local/share/vigil]",
)
DatabaseUrl = typer.Option(
    None, "--database-url", envvar="VIGIL_DATABASE_URL", help="postgresql://... to use PostgreSQL instead of SQLite"
)


def _settings(data_dir: Path | None, database_url: str | None, **kw) -> Settings:
    try:
        if data_dir is not None:
            output_dir(data_dir, "--data-dir")
        return Settings(data_dir=data_dir or default_data_dir(), database_url=database_url, **kw)
    except ValueError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None


def _hold_store(settings: Settings) -> None:
    """Refuse a second service on one SQLite file before it touches the store."""
    from vigil.service.store.single_process import hold_sqlite_store

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        hold_sqlite_store(settings.store_url)
    except StoreError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None


def _prepare(settings: Settings):
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.data_dir, 0o700)
    try:
        engine = create_store_engine(settings.store_url)
        migrate(engine)
    except StoreError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    return engine


ADMIN_TOKEN_FILE = "admin-token"


def _first_admin(engine) -> str | None:
    with engine.begin() as conn:
        if has_admin(conn):
            return None
        return issue_token(conn, role="admin", name="initial-admin").secret


def _hand_over_first_admin(settings: Settings, token: str) -> None:
    """Give the first admin token to whoever started the service, and to no log.

    The token goes to a 0600 file in the data dir (0700); stdout shows it only when it is a terminal,
    because under systemd, a container runtime or CI stdout is a log that other people read.
    """
    path = settings.data_dir / ADMIN_TOKEN_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)  # an existing file keeps its mode through O_CREAT
        f.write(token + "\n")
    console.print(
        f"First start: admin token written to {path} (mode 0600); store it elsewhere, then delete the file.",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )
    if sys.stdout.isatty():
        console.print("Admin token (shown once):", highlight=False)
        console.print(token, soft_wrap=True, highlight=False)


def serve(settings: Settings, tls_cert: Path | None, tls_key: Path | None, insecure_http: bool) -> None:
    import uvicorn

    config, _ = service_config(settings, tls_cert, tls_key, insecure_http)
    uvicorn.Server(config).run()


def _check_tls_pair(tls_cert: Path | None, tls_key: Path | None) -> None:
    """Both or neither, readable, and a certificate with its key: found before serving, not by the server
    thread that would fail on them after the store was prepared."""
    import ssl

    if (tls_cert is None) != (tls_key is None):
        err.print("[red]error:[/] --tls-cert and --tls-key go together: give both (or neither)")
        raise typer.Exit(2)
    if tls_cert is None or tls_key is None:
        return
    try:
        input_file(tls_cert, "--tls-cert")
        input_file(tls_key, "--tls-key")
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(tls_cert, tls_key)
    except BadPath as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None
    except ssl.SSLError as exc:
        err.print(
            f"[red]error:[/] --tls-cert {escape(str(tls_cert))} --tls-key {escape(str(tls_key))}: not a PEM "
            f"certificate and its private key ({escape(exc.reason or str(exc))})",
            soft_wrap=True,
            highlight=False,
        )
        raise typer.Exit(2) from None


def service_config(
    settings: Settings, tls_cert: Path | None, tls_key: Path | None, insecure_http: bool
) -> tuple[uvicorn.Config, Engine]:
    """The service ready to serve (store migrated, first admin token printed) and its store's engine."""
    import uvicorn

    from vigil.service.app import create_app
    from vigil.service.logs import configure_logging

    if not is_loopback_host(settings.host) and not (tls_cert and tls_key) and not insecure_http:
        err.print(
            f"[red]error:[/] --host {settings.host} is not a loopback address: serving plain HTTP there would expose "
            "tokens on the network. Give --tls-cert and --tls-key, or --insecure-http if TLS ends in front of Vigil."
        )
        raise typer.Exit(2)
    if settings.client_certs != "off" and not (tls_cert and tls_key):
        err.print(
            f"[red]error:[/] --client-certs {settings.client_certs} needs --tls-cert and --tls-key: client "
            "certificates are checked in this service's own TLS handshake, which a proxy ending TLS in front "
            "would take away."
        )
        raise typer.Exit(2)
    _check_tls_pair(tls_cert, tls_key)
    _hold_store(settings)
    engine = _prepare(settings)
    token = _first_admin(engine)
    scheme = "https" if tls_cert else "http"
    console.print(f"Vigil service on [bold]{scheme}://{settings.host}:{settings.port}[/]  (data: {settings.data_dir})")
    if token:
        _hand_over_first_admin(settings, token)
    configure_logging(settings.log_level)
    try:
        app = create_app(settings, engine=engine, run_migrations=False)
    except ValueError as exc:  # an unreadable client CA in the data dir
        err.print(f"[red]error:[/] {exc}", markup=False)
        raise typer.Exit(2) from None
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
        **_client_certificate_options(settings, tls_cert, tls_key, app.state.client_ca),
    )
    return config, engine


def _client_certificate_options(
    settings: Settings, tls_cert: Path | None, tls_key: Path | None, ca: ClientCA | None
) -> dict:
    """uvicorn options that verify client certificates in the handshake and pass them to the app."""
    if settings.client_certs == "off" or ca is None or tls_cert is None or tls_key is None:
        return {}
    from vigil.service.cli.tls import ClientCertificateProtocol
    from vigil.service.client_ca import server_context

    context = server_context(tls_cert, tls_key, settings.client_certs, ca)
    console.print(
        f"Client certificates {settings.client_certs}: the client CA is {ca.cert_path}",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )
    return {"ssl_context_factory": lambda _config, _default: context, "http": ClientCertificateProtocol}


Host = typer.Option("127.0.0.1", "--host", envvar="VIGIL_HOST", help="Address to listen on")
Port = typer.Option(8080, "--port", envvar="VIGIL_PORT", min=1, max=65535, help="Port to listen on")
TlsCert = typer.Option(None, "--tls-cert", help="PEM certificate to serve HTTPS")
TlsKey = typer.Option(None, "--tls-key", help="PEM private key for --tls-cert")
Insecure = typer.Option(False, "--insecure-http", help="Allow plain HTTP on a non-loopback address")
ClientCerts = typer.Option(
    "off",
    "--client-certs",
    envvar="VIGIL_CLIENT_CERTS",
    help="Mutual TLS for controllers and sensors: off, optional (a presented certificate must be the service "
    "CA's and bound to the credential) or required (cluster and sensor credentials need one); needs --tls-cert",
)
ExternalUrl = typer.Option(
    None,
    "--external-url",
    envvar="VIGIL_EXTERNAL_URL",
    help="The URL people reach the service at (an https URL behind a TLS proxy keeps the console cookie Secure)",
)
LogLevel = typer.Option("info", "--log-level", envvar="VIGIL_LOG_LEVEL")
ReverifyInterval = typer.Option(
    300.0,
    "--reverify-interval",
    envvar="VIGIL_REVERIFY_INTERVAL",
    min=1.0,
    help="Seconds between re-checks of each running image's tag",
)
RegistryConcurrency = typer.Option(
    8,
    "--registry-concurrency",
    envvar="VIGIL_REGISTRY_CONCURRENCY",
    min=1,
    max=64,
    help="Requests at a time to any one registry during an integrity pass",
)
TrustFile = typer.Option(
    None,
    "--trust-file",
    envvar="VIGIL_TRUST_FILE",
    help="YAML trust policy loaded into the store at start (replaces the stored one)",
)
SigstoreTrustedRoot = typer.Option(
    None,
    "--sigstore-trusted-root",
    envvar="VIGIL_SIGSTORE_TRUSTED_ROOT",
    help="Sigstore trusted root (JSON) for keyless signatures [default: the public-good root, offline]",
)
RegistryConfigFile = typer.Option(
    None,
    "--registry-config",
    envvar="VIGIL_REGISTRY_CONFIG",
    help="YAML of per-registry credentials, CA bundles, plain_http",
)


def _integrity(
    reverify_interval: float,
    trust_file: Path | None,
    registry_config: Path | None,
    sigstore_trusted_root: Path | None = None,
    registry_concurrency: int = 8,
) -> IntegritySettings:
    from vigil.policy.trust_doc import PolicyFileError
    from vigil.registry import RegistryConfig, RegistryConfigError
    from vigil.service.jobs.trust_file import load_policy_file
    from vigil.signatures.trustroot import MAX_TRUSTED_ROOT_BYTES, BadTrustedRoot, parse_trusted_root

    try:  # refuse a bad file before starting, naming the file and the field
        if trust_file is not None:
            load_policy_file(trust_file)
        RegistryConfig.load(registry_config)
        if sigstore_trusted_root is not None:
            data = input_file(sigstore_trusted_root, "--sigstore-trusted-root").read_bytes()
            try:
                parse_trusted_root(data[: MAX_TRUSTED_ROOT_BYTES + 1])
            except BadTrustedRoot as exc:
                raise PolicyFileError(f"--sigstore-trusted-root {sigstore_trusted_root}: {exc}") from None
    except (PolicyFileError, RegistryConfigError) as exc:
        from rich.markup import escape

        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    return IntegritySettings(
        reverify_interval=reverify_interval,
        trust_file=trust_file,
        sigstore_trusted_root=sigstore_trusted_root,
        registry_concurrency=registry_concurrency,
    )


NoScanner = typer.Option(
    False,
    "--no-scanner",
    envvar="VIGIL_NO_SCANNER",
    help="Do not pull and catalog images in this process (run `vigil scanner` workers instead)",
)
ScanAttempts = typer.Option(
    3,
    "--scan-attempts",
    envvar="VIGIL_SCAN_ATTEMPTS",
    min=1,
    help="Attempts of one image's scan (a scanner that died counts as one) before it stays failed",
)
IntelSyncInterval = typer.Option(
    21600.0,
    "--intel-sync-interval",
    envvar="VIGIL_INTEL_SYNC_INTERVAL",
    min=0.0,
    help="Seconds between advisory feed syncs (0: never; import with `vigil intel import|sync` yourself)",
)
IntelFeed = typer.Option(
    None,
    "--intel-feed",
    envvar="VIGIL_INTEL_FEEDS",
    help="An advisory feed to sync (URL, directory or file; repeatable) [default: OSV exports]",
)


def _contents(
    no_scanner: bool, intel_sync_interval: float, intel_feeds: list[str] | None, scan_attempts: int = 3
) -> ContentsSettings:
    return ContentsSettings(
        scanner_inprocess=not no_scanner,
        scan_attempts=scan_attempts,
        intel_sync_interval=intel_sync_interval,
        intel_feeds=list(intel_feeds) if intel_feeds else None,
    )


@dataclass(frozen=True)
class ServeRequest:
    """What the options of `vigil up` and `vigil service` ask for: the settings and how to listen."""

    settings: Settings
    tls_cert: Path | None
    tls_key: Path | None
    insecure_http: bool


def _serve_request(
    host: str = Host,
    port: int = Port,
    data_dir: Path = DataDir,
    database_url: str = DatabaseUrl,
    tls_cert: Path = TlsCert,
    tls_key: Path = TlsKey,
    insecure_http: bool = Insecure,
    client_certs: str = ClientCerts,
    external_url: str = ExternalUrl,
    log_level: str = LogLevel,
    reverify_interval: float = ReverifyInterval,
    registry_concurrency: int = RegistryConcurrency,
    trust_file: Path = TrustFile,
    registry_config: Path = RegistryConfigFile,
    sigstore_trusted_root: Path = SigstoreTrustedRoot,
    no_scanner: bool = NoScanner,
    scan_attempts: int = ScanAttempts,
    intel_sync_interval: float = IntelSyncInterval,
    intel_feed: list[str] = IntelFeed,
) -> ServeRequest:
    integrity = _integrity(reverify_interval, trust_file, registry_config, sigstore_trusted_root, registry_concurrency)
    contents = _contents(no_scanner, intel_sync_interval, intel_feed, scan_attempts)
    settings = _settings(
        data_dir,
        database_url,
        host=host,
        port=port,
        external_url=external_url,
        client_certs=client_certs,
        log_level=log_level,
        registry_config=registry_config,
        integrity=integrity,
        contents=contents,
    ).all_in_background()
    return ServeRequest(settings, tls_cert, tls_key, insecure_http)


def _with_serve_options(command: Callable[..., None]) -> Callable[..., None]:
    """``command`` with the options of ``_serve_request`` after its own parameters; it is called with
    their ``ServeRequest`` as ``request``, so `vigil up` and `vigil service` take the same options."""
    shared = inspect.signature(_serve_request, eval_str=True).parameters
    own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "request"]

    @functools.wraps(command)
    def run(*args, **kwargs) -> None:
        request = _serve_request(**{name: kwargs.pop(name) for name in shared})
        command(*args, request=request, **kwargs)

    signature = inspect.Signature([*own, *shared.values()], return_annotation=None)
    # typer reads the parameters through inspect.signature, which honours __signature__ (typeshed has no such
    # attribute on functions).
    run.__signature__ = signature  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
    return run


@_with_serve_options
def up(
    request: ServeRequest,
    no_sensor: bool = typer.Option(False, "--no-sensor", help="Do not start a sensor for this host"),
    include_host: bool = typer.Option(
        False, "--include-host", help="The sensor also reports processes that are in no container"
    ),
    sensor_cluster: str = typer.Option(
        None, "--sensor-cluster", help="Cluster this host's sensor reports into [default: this host's name]"
    ),
    kubeconfig: str = typer.Option(
        None, "--kubeconfig", envvar="KUBECONFIG", help="Start a controller for this kubeconfig's current context"
    ),
    cluster_name: str = typer.Option(
        None, "--cluster-name", help="Name the controller's cluster registers under [default: the context's name]"
    ),
) -> None:
    """Run everything on this machine: the service (SQLite at 127.0.0.1:8080) with its scanner; as root with
    kernel BTF, a sensor for this host; with a reachable kubeconfig, a controller for that cluster."""
    from vigil.service.cli.up import LocalParts, run_here

    parts = LocalParts(not no_sensor, include_host, sensor_cluster, kubeconfig, cluster_name)
    config, engine = service_config(request.settings, request.tls_cert, request.tls_key, request.insecure_http)
    status = run_here(config, engine, request.settings, parts, _say)
    if status:
        raise typer.Exit(status)


def _say(line: str) -> None:
    console.print(line, markup=False, highlight=False, soft_wrap=True)


service_app = typer.Typer(
    help="Run or prepare the Runtime Service.", invoke_without_command=True, no_args_is_help=False
)


@service_app.callback()
@_with_serve_options
def service(ctx: typer.Context, request: ServeRequest) -> None:
    """Run the Runtime Service (with no subcommand)."""
    ctx.obj = request.settings
    if ctx.invoked_subcommand is None:
        serve(request.settings, request.tls_cert, request.tls_key, request.insecure_http)


@service_app.command("init")
def service_init(data_dir: Path = DataDir, database_url: str = DatabaseUrl) -> None:
    """Create the store, apply migrations, and write the first admin token to a file if there is none yet."""
    settings = _settings(data_dir, database_url)
    engine = _prepare(settings)
    token = _first_admin(engine)
    if token:
        _hand_over_first_admin(settings, token)
    else:
        console.print("Store is ready; an admin token already exists (create more with `vigil token create`).")


token_app = typer.Typer(help="Users' API tokens (works on the store directly).", no_args_is_help=True)


@token_app.command("create")
def token_create(
    role: str = typer.Option(..., "--role", help="admin or viewer (users), or metrics (reads /metrics only)"),
    name: str = typer.Option(..., "--name", help="Who or what the token is for"),
    data_dir: Path = DataDir,
    database_url: str = DatabaseUrl,
) -> None:
    """Create a token and print it once."""
    if role not in ("admin", "viewer", "metrics"):
        err.print(f"[red]error:[/] --role {role!r} must be admin or viewer (users) or metrics (a scraper)")
        raise typer.Exit(2)
    engine = _prepare(_settings(data_dir, database_url))
    with engine.begin() as conn:
        tok = issue_token(conn, role=role, name=name)
    err.print(f"created {tok.role} token {tok.id} ({tok.name}); the secret is shown once:")
    console.print(tok.secret, soft_wrap=True, highlight=False)


@token_app.command("list")
def token_list(
    output: Output = typer.Option(Output.table, "--output", "-o", help="table or json"),
    data_dir: Path = DataDir,
    database_url: str = DatabaseUrl,
) -> None:
    """List tokens (never their secrets)."""
    from vigil.cli_output import print_rows

    engine = _prepare(_settings(data_dir, database_url))
    with engine.connect() as conn:
        rows = list_tokens(conn)
    print_rows(rows, ["id", "name", "role", "cluster_id", "created_at", "expires_at", "revoked_at"], output, "Tokens")


@token_app.command("revoke")
def token_revoke(token_id: str, data_dir: Path = DataDir, database_url: str = DatabaseUrl) -> None:
    """Revoke a token by id."""
    engine = _prepare(_settings(data_dir, database_url))
    with engine.begin() as conn:
        if not revoke_token(conn, token_id):
            err.print(f"[red]error:[/] token {token_id!r} does not exist or is already revoked")
            raise typer.Exit(1)
        end_token_sessions(conn, token_id)
    console.print(f"revoked {token_id}")


cluster_app = typer.Typer(help="Cluster registration.", no_args_is_help=True)


def _duration(text: str) -> timedelta:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        raise typer.BadParameter(f"{text!r} is not a duration like 30m, 24h or 7d")
    return timedelta(seconds=int(text[:-1]) * units[text[-1]])


@cluster_app.command("token")
def cluster_token(
    ttl: str = typer.Option("24h", "--ttl", help="Lifetime, e.g. 30m, 24h, 7d"),
    max_uses: int = typer.Option(
        None, "--max-uses", min=1, help="How many registrations it allows [default: unlimited]"
    ),
    name: str = typer.Option("registration", "--name"),
    data_dir: Path = DataDir,
    database_url: str = DatabaseUrl,
) -> None:
    """Create a registration token for `vigil controller --registration-token`."""
    life = _duration(ttl)
    engine = _prepare(_settings(data_dir, database_url))
    with engine.begin() as conn:
        tok = issue_token(conn, role="registration", name=name, ttl=life, max_uses=max_uses)
    err.print(f"registration token {tok.id}, expires {iso(tok.expires_at)}; the secret is shown once:")
    console.print(tok.secret, soft_wrap=True, highlight=False)


@cluster_app.command("install")
def cluster_install(
    name: str = typer.Option(..., "--name", help="The cluster's name: what its controller registers as"),
    ttl: str = typer.Option("24h", "--ttl", help="The registration token's lifetime, e.g. 30m, 24h, 7d"),
    max_uses: int = typer.Option(None, "--max-uses", min=1, help="Registrations it allows [default: unlimited]"),
    service_url: str = typer.Option(
        None, "--service-url", help="The URL the cluster reaches the service at [default: --url]"
    ),
    token_file: Path = typer.Option(
        None, "--token-file", help="Where the token is written, mode 0600 [default: ./vigil-registration-NAME.token]"
    ),
    service_ca: Path = typer.Option(None, "--service-ca", help="PEM CA of the service's certificate, for the chart"),
    manifest: bool = typer.Option(
        False, "--manifest", help="Print a manifest (a Secret with the token) for deploy/manifests instead"
    ),
    url: str = typer.Option("http://127.0.0.1:8080", "--url", envvar="VIGIL_URL", help="The service's URL"),
    token: str = typer.Option(None, "--token", envvar="VIGIL_TOKEN", help="An admin API token"),
) -> None:
    """Connect a cluster: make it (pending until its controller reports), write a registration token bound
    to it to a private file, and print the `helm upgrade --install` command that reads it."""
    from vigil.service.cli.connect import connect_cluster

    connect_cluster(url, token, name, _duration(ttl), max_uses, service_url, token_file, service_ca, manifest)


ServiceUrl = typer.Option("http://127.0.0.1:8080", "--url", envvar="VIGIL_URL", help="The service's URL")
AdminToken = typer.Option(None, "--token", envvar="VIGIL_TOKEN", help="An admin API token")
ClusterArg = typer.Argument(..., metavar="CLUSTER", help="The cluster's id or name")


@cluster_app.command("credentials")
def cluster_credentials(
    cluster_id: str = ClusterArg,
    output: Output = typer.Option(Output.table, "-o", "--output", help="table or json"),
    url: str = ServiceUrl,
    token: str = AdminToken,
) -> None:
    """List a cluster's credentials (never their secrets) and whether each still works."""
    from vigil.service.cli.credentials import show_credentials

    show_credentials(url, token, cluster_id, output)


@cluster_app.command("rotate")
def cluster_rotate(
    cluster_id: str = ClusterArg,
    overlap: str = typer.Option("10m", "--overlap", help="How long the earlier credentials keep working, e.g. 10m"),
    url: str = ServiceUrl,
    token: str = AdminToken,
) -> None:
    """Issue a new credential for a cluster; the earlier ones are refused after the overlap."""
    from vigil.service.cli.credentials import rotate

    rotate(url, token, cluster_id, int(_duration(overlap).total_seconds()))


@cluster_app.command("revoke")
def cluster_revoke(
    cluster_id: str = ClusterArg,
    credential_id: str = typer.Argument(...),
    url: str = ServiceUrl,
    token: str = AdminToken,
) -> None:
    """Revoke one of a cluster's credentials now."""
    from vigil.service.cli.credentials import revoke

    revoke(url, token, cluster_id, credential_id)
