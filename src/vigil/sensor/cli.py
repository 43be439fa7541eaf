"""`vigil sensor`: trace what executes on this node and ship it, or print it as JSON lines."""

from __future__ import annotations

import json
import logging
import signal
import ssl
import sys
import threading
from pathlib import Path

import typer

from vigil.cli_paths import output_dir
from vigil.loopback import is_loopback_url
from vigil.sensor.agent import (
    AgentSettings,
    SensorAgent,
    default_node_name,
    spool_default,
)
from vigil.sensor.attribution import Attribution
from vigil.sensor.cgroups import CgroupResolver
from vigil.sensor.enforcer import Enforcer
from vigil.sensor.enrolment import EnrolmentError, enrol
from vigil.sensor.hashing import FileHasher
from vigil.sensor.load_identities import LoadIdentities
from vigil.sensor.load_watch import LoadWatch
from vigil.sensor.loader import ProcessTracer, SensorLoadError
from vigil.sensor.pipeline import EventPipeline
from vigil.sensor.policy_source import PolicyError, PolicyFile, PolicyPoller, parse_policy
from vigil.sensor.selfcheck import enforce_test as run_enforce_test
from vigil.sensor.shipper import Shipper, read_credential
from vigil.sensor.spool import Spool
from vigil.wire.client_certificate import ClientCertificateError, client_identity, tls_context
from vigil.wire.prevention import NodeRuntimePolicy

app = typer.Typer(help="eBPF sensor: what really executes in every container on this node.", add_completion=False)


@app.callback(invoke_without_command=True)
def sensor(
    service: str | None = typer.Option(
        None,
        # VIGIL_SERVICE is the old name, still read (deprecated; docs/settings.md).
        envvar=["VIGIL_SERVICE_URL", "VIGIL_SERVICE"],
        help="Service base URL, e.g. https://vigil:8443",
    ),
    credential_file: Path | None = typer.Option(
        None,
        envvar="VIGIL_CREDENTIAL_FILE",
        help="File holding the cluster credential (bearer token); prefer --enrolment-credential-file, "
        "which gives this node a credential of its own",
    ),
    enrolment_credential_file: Path | None = typer.Option(
        None,
        envvar="VIGIL_ENROLMENT_CREDENTIAL_FILE",
        help="File holding the cluster's enrolment credential: enrols this node once and keeps its own "
        "sensor credential (0600) in the spool directory",
    ),
    service_ca: Path | None = typer.Option(
        None, envvar="VIGIL_SERVICE_CA", help="CA bundle for the service's TLS certificate [default: system CAs]"
    ),
    client_cert: Path | None = typer.Option(
        None,
        "--client-cert",
        envvar="VIGIL_CLIENT_CERT",
        help="Client certificate for mutual TLS (from `vigil credential certificate`)",
    ),
    client_key: Path | None = typer.Option(
        None, "--client-key", envvar="VIGIL_CLIENT_KEY", help="The private key of --client-cert"
    ),
    cluster_id: str = typer.Option("local", envvar="VIGIL_CLUSTER_ID", help="Cluster id issued at registration"),
    node_name: str = typer.Option(None, envvar="NODE_NAME", help="This node's Kubernetes name [default: hostname]"),
    spool_dir: Path = typer.Option(
        None, envvar="VIGIL_SPOOL_DIR", help="Spool directory [default: /var/lib/vigil/sensor-spool]"
    ),
    spool_max_batches: int = typer.Option(1000, help="Spool bound in batches; the oldest are dropped past it"),
    include_host: bool = typer.Option(False, help="Also trace processes that are in no container"),
    activity_tracing: bool = typer.Option(
        True,
        "--activity-tracing/--no-activity-tracing",
        help="Trace file accesses and kernel operations (file_*, package_load, ...); off: execs and mappings only",
    ),
    output: str | None = typer.Option(
        None,
        "--output",
        "-o",
        help="'json': print attributed exec events, file accesses and kernel operations as JSON lines to stdout",
    ),
    duration: float | None = typer.Option(None, help="Stop after this many seconds"),
    batch_interval: float = typer.Option(5.0, help="Seconds per aggregated batch"),
    heartbeat_interval: float = typer.Option(15.0, help="Seconds between heartbeats to the service"),
    default_runtime: str = typer.Option("containerd", help="Runtime of bare container ids in kubelet cgroupfs paths"),
    runtime_policy: Path | None = typer.Option(
        None,
        "--runtime-policy",
        help="Enforce this NodeRuntimePolicy JSON file (loaded again when it changes) instead of the service's",
    ),
    enforce_test: bool = typer.Option(
        False,
        "--enforce-test",
        help="Check that the in-kernel kill works on this node (a throwaway cgroup execs a dropped binary) "
        "and exit: 0 it works, 1 it does not",
    ),
) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if enforce_test:
        result = run_enforce_test()
        typer.echo(f"vigil sensor --enforce-test: {'ok' if result.works else 'FAILED'}: {result.message}")
        raise typer.Exit(0 if result.works else 1)
    if batch_interval <= 0 or heartbeat_interval <= 0:
        raise typer.BadParameter(
            f"--batch-interval {batch_interval} and --heartbeat-interval {heartbeat_interval} must be positive seconds"
        )
    if output not in (None, "json"):
        raise typer.BadParameter(f"--output {output!r}: only 'json' is supported")
    if service is None and output is None:
        raise typer.BadParameter(
            "give --service URL (with --enrolment-credential-file) to ship, or --output json to print"
        )
    node = node_name or default_node_name()
    if runtime_policy is not None:
        _check_policy_file(runtime_policy, node)
    stop = threading.Event()
    shipper = spool = None
    poller: PolicyPoller | None = None
    if service is not None:
        if (credential_file is None) == (enrolment_credential_file is None):
            raise typer.BadParameter("--service needs --enrolment-credential-file or --credential-file (one of them)")
        if service.startswith("http://") and not is_loopback_url(service):
            raise typer.BadParameter(f"--service {service}: plain HTTP is allowed only on loopback; use https://")
        source = enrolment_credential_file or credential_file
        assert source is not None
        try:
            given = read_credential(source)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
        spool = Spool(output_dir(spool_dir or spool_default(), "--spool-dir"), max_batches=spool_max_batches)
        verify = _trust(service_ca, client_cert, client_key)
        credential = given
        if enrolment_credential_file is not None:
            _stop_on_signals(stop)  # enrolment retries while the service is unreachable
            try:
                credential = enrol(service, given, cluster_id, node, spool.dir, verify=verify, stop=stop).credential
            except EnrolmentError as exc:
                typer.echo(f"vigil sensor: cannot start: {exc}", err=True)
                raise typer.Exit(1) from exc
        shipper = Shipper(service, credential, spool, verify=verify)
        if runtime_policy is None:
            poller = PolicyPoller(service, credential, node, lambda p: None, lambda e: None, verify=verify)
    try:
        # Exits are only printed (--output json); shipping needs execs alone.
        # Printing shows every exec; shipping counts repeats in the kernel (exact counts, one decode).
        tracer = ProcessTracer(
            include_host=include_host,
            exec_only=output != "json",
            activities=activity_tracing,
            exec_aggregation=shipper is not None,
        )
    except SensorLoadError as exc:
        typer.echo(f"vigil sensor: cannot start: {exc}", err=True)
        raise typer.Exit(1) from exc
    _stop_on_signals(stop)
    with tracer:
        resolver = CgroupResolver(default_runtime=default_runtime)
        hasher = FileHasher()
        enforcer = Enforcer(tracer, resolver.root, known_files=hasher.known, default_runtime=default_runtime)
        identities = LoadIdentities(tracer, resolver.root, default_runtime=default_runtime)
        load_watch = LoadWatch(tracer, identities=identities)

        def note_container(cgroup_id: int, attribution: Attribution) -> None:
            enforcer.note_container(cgroup_id, attribution)
            load_watch.note_container(cgroup_id, attribution)

        pipeline = EventPipeline(
            resolver,
            hasher,
            include_host=include_host,
            skip_cgroup=tracer.skip_cgroup,
            with_exits=output == "json",
            on_container=note_container,
            policy_revision=lambda: enforcer.revision,
            load_watch=load_watch,
        )

        def apply(policy: NodeRuntimePolicy) -> None:
            load_watch.apply(policy)
            enforcer.apply(policy)

        if runtime_policy is not None:
            policy_file = PolicyFile(runtime_policy, node, apply, enforcer.fail)
            try:
                policy = policy_file.load()
            except PolicyError as exc:
                typer.echo(f"vigil sensor: cannot start: {exc}", err=True)
                raise typer.Exit(1) from exc
            typer.echo(f"vigil sensor: enforcing runtime policy {policy.revision} from {runtime_policy}", err=True)
            policy_file.start(stop)
        elif poller is not None:
            poller.apply, poller.fail = apply, enforcer.fail
            poller.start(stop)
        emit = (lambda line: print(line, flush=True)) if output == "json" else None
        agent = SensorAgent(
            AgentSettings(
                cluster_id=cluster_id,
                node_name=node,
                batch_interval_s=batch_interval,
                heartbeat_interval_s=heartbeat_interval,
            ),
            tracer,
            pipeline,
            spool=spool,
            shipper=shipper,
            emit=emit,
            enforcer=enforcer,
        )
        if tracer.missing_syscalls:
            typer.echo(
                "vigil sensor: this kernel has no syscall tracepoints for "
                f"{', '.join(tracer.missing_syscalls)}: those operations are not traced",
                err=True,
            )
        agent.run(stop, duration)
        identities.close()
        # The last word on what was seen and lost, for whoever reads the log (and the benchmark).
        typer.echo(f"vigil sensor: final counters {agent.heartbeat().model_dump_json()}", err=True)
        typer.echo(f"vigil sensor: kernel counters {json.dumps(tracer.counters())}", err=True)
    if shipper is not None:
        shipper.close()
    if poller is not None:
        poller.close()
    if agent.stop_reason:
        typer.echo(f"vigil sensor: stopped: {agent.stop_reason}", err=True)


def _check_policy_file(path: Path, node: str) -> None:
    """Read and check --runtime-policy before the kernel programs load: a bad file is an input error like any
    other option's, not a sensor that starts and then stops."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise typer.BadParameter(f"--runtime-policy {path}: cannot read it: {exc.strerror}") from None
    try:
        parse_policy(raw, str(path), node)
    except PolicyError as exc:
        raise typer.BadParameter(f"--runtime-policy: {exc}") from None


def _stop_on_signals(stop: threading.Event) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())


def _trust(
    service_ca: Path | None, client_cert: Path | None = None, client_key: Path | None = None
) -> ssl.SSLContext | bool:
    """The service's CA bundle as a TLS context (presenting the client certificate, if given); with
    neither, the system's CAs (True)."""
    try:
        identity = client_identity(client_cert, client_key)
        if service_ca is None and identity is None:
            return True
        return tls_context(service_ca, identity)
    except ClientCertificateError as exc:
        raise typer.BadParameter(str(exc)) from None
