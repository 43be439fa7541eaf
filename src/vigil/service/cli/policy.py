"""`vigil policy enforcement show|apply|history`, `vigil policy deny-list list|add|remove` and `vigil policy
decisions`: the enforcement policy, the runtime prevention deny list and the admission decisions, through a
running service's API.

`apply` reads and checks the file with the same code the service validates it with before sending
anything, so a bad file is one error line naming the file and the field, and the service is not asked.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from vigil.cli_output import Output, print_rows
from vigil.cli_paths import input_file
from vigil.policy.enforcement import EnforcementPolicyError, Outcome, load_enforcement_yaml, parse_enforcement
from vigil.policy.enforcement_text import enforcement_yaml
from vigil.wire.client import ServiceClient, ServiceError

policy_app = typer.Typer(
    help="The enforcement policy and the admission decisions of a running service.", no_args_is_help=True
)
enforcement_app = typer.Typer(
    help="The enforcement policy the admission webhooks apply (admin token).", no_args_is_help=True
)
policy_app.add_typer(enforcement_app, name="enforcement")
err = Console(stderr=True)

Url = typer.Option("http://127.0.0.1:8080", "--url", envvar="VIGIL_URL", help="The service's URL")
Token = typer.Option(None, "--token", envvar="VIGIL_TOKEN", help="An admin API token")
ENFORCEMENT = "/api/v1/policy/enforcement"
DECISIONS = "/api/v1/admission/decisions"
META = ("revision", "updated_at", "updated_by", "warnings")
MAX_FILE_BYTES = 256 * 1024
HISTORY_COLUMNS = ["revision", "updated_at", "updated_by", "policies"]
DECISION_COLUMNS = [
    "at",
    "cluster_id",
    "namespace",
    "object",
    "user",
    "outcome",
    "images",
    "rules",
    "break_glass",
]
OUTCOMES = tuple(o.value for o in Outcome)


def _fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def _service(url: str, token: str | None) -> Iterator[ServiceClient]:
    """A client of the service; an error the service answers with ends the command with exit code 1."""
    if not token:
        _fail("no API token: pass --token or set VIGIL_TOKEN")
    try:
        with ServiceClient(url, token) as client:
            yield client
    except ServiceError as exc:
        _fail(str(exc), 1)


def _policy_of(doc: dict[str, Any]) -> Any:
    """The policy in an answer of the service (its fields without the revision's)."""
    return parse_enforcement({k: v for k, v in doc.items() if k not in META}, "from the service")


def _stamp(doc: dict[str, Any]) -> str:
    if not doc.get("updated_at"):
        return f"revision {doc['revision']}: the default policy, never changed"
    return f"revision {doc['revision']}, updated {doc['updated_at']} by {doc.get('updated_by') or 'unknown'}"


def _names(policies: Any) -> str:
    return ", ".join(f"{p['name']} ({p.get('mode', 'enforce')})" for p in policies)


def read_policy_file(path: Path) -> Any:
    """The policy in the file, checked; EnforcementPolicyError names the file (and the field at fault)."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise EnforcementPolicyError(f"enforcement policy {path}: cannot read: {exc.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise EnforcementPolicyError(f"enforcement policy {path}: larger than {MAX_FILE_BYTES} bytes")
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        raise EnforcementPolicyError(f"enforcement policy {path}: not UTF-8 text (byte {exc.start})") from None
    return load_enforcement_yaml(text, str(path))


@enforcement_app.command("show")
def show(url: str = Url, token: str = Token) -> None:
    """Print the policy in force as YAML (what `apply -f` takes), after a comment line with its revision."""
    with _service(url, token) as client:
        doc = client.request("GET", ENFORCEMENT)
    try:
        policy = _policy_of(doc)
    except EnforcementPolicyError as exc:
        _fail(str(exc), 1)
    typer.echo(f"# {_stamp(doc)}")
    for warning in doc.get("warnings", []):
        typer.echo(f"# warning: {warning}")
    typer.echo(enforcement_yaml(policy), nl=False)


@enforcement_app.command("apply")
def apply(
    file: Path = typer.Option(..., "--file", "-f", help="The policy as YAML (or JSON)"),
    url: str = Url,
    token: str = Token,
) -> None:
    """Replace the policy in force with FILE's, as a new revision (the earlier ones stay as history)."""
    input_file(file, "--file")
    try:
        policy = read_policy_file(file)
    except EnforcementPolicyError as exc:
        _fail(str(exc))
    with _service(url, token) as client:
        doc = client.request("PUT", ENFORCEMENT, json=policy.model_dump(mode="json"))
    names = _names(policy.model_dump(mode="json")["policies"]) or "no policies: nothing enforced"
    typer.echo(f"applied {file}: {_stamp(doc)}; {names}")
    for warning in doc.get("warnings", []):
        err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)


@enforcement_app.command("history")
def history(
    output: Output = typer.Option(Output.table, "--output", "-o", help="table or json"),
    url: str = Url,
    token: str = Token,
) -> None:
    """The stored revisions of the policy, newest first."""
    with _service(url, token) as client:
        items = client.request("GET", f"{ENFORCEMENT}/history")["items"]
    if output is Output.table:
        items = [dict(i, policies=_names(i["policy"].get("policies", ())) or "-") for i in items]
    print_rows(items, HISTORY_COLUMNS, output, "Enforcement policy history")


def _decision_row(item: dict[str, Any]) -> dict[str, Any]:
    return dict(
        item,
        object=f"{item['kind']}/{item['name'] or '(generated name)'}",
        images=", ".join(item.get("images", ())),
        rules=", ".join(sorted({v["rule"] for v in item.get("violations", ())})) or None,
    )


@policy_app.command("decisions")
def decisions(
    cluster: str = typer.Option(None, "--cluster", help="Cluster id or name"),
    namespace: str = typer.Option(None, "--namespace", "-n"),
    outcome: str = typer.Option(None, "--outcome", help=f"One of {', '.join(OUTCOMES)}"),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000, help="At most this many, newest first"),
    output: Output = typer.Option(Output.table, "--output", "-o", help="table or json"),
    url: str = Url,
    token: str = typer.Option(None, "--token", envvar="VIGIL_TOKEN", help="An admin or viewer API token"),
) -> None:
    """The admission decisions the webhooks recorded (denials, warnings, audits, break-glass uses), newest first."""
    if outcome is not None and outcome not in OUTCOMES:
        _fail(f"--outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
    with _service(url, token) as client:
        items = client.list_all(DECISIONS, {"cluster": cluster, "namespace": namespace, "outcome": outcome}, limit)
    rows = items if output is Output.json else [_decision_row(i) for i in items]
    print_rows(rows, DECISION_COLUMNS, output, "Admission decisions")


deny_app = typer.Typer(
    help="The deny list: file sha256s whose exec the deny_listed runtime prevention rule stops "
    "(admins change it, viewers read it).",
    no_args_is_help=True,
)
policy_app.add_typer(deny_app, name="deny-list")
DENY_LIST = "/api/v1/policy/deny-list"
DENY_COLUMNS = ["sha256", "reason", "added_by", "added_at"]


def _sha256_argument(value: str) -> str:
    digest = value.strip().lower().removeprefix("sha256:")
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        _fail(f"SHA256 {value!r} is not a file sha256 (64 hex digits, optionally after 'sha256:')")
    return digest


@deny_app.command("list")
def deny_list(
    output: Output = typer.Option(Output.table, "--output", "-o", help="table or json"),
    url: str = Url,
    token: str = typer.Option(None, "--token", envvar="VIGIL_TOKEN", help="An admin or viewer API token"),
) -> None:
    """The sha256s on the deny list, newest first."""
    with _service(url, token) as client:
        items = client.request("GET", DENY_LIST)["items"]
    print_rows(items, DENY_COLUMNS, output, "Deny list")


@deny_app.command("add")
def deny_add(
    sha256: str = typer.Argument(..., help="The file's sha256 (64 hex digits)"),
    reason: str = typer.Option(..., "--reason", help="Why the file is denied (kept in the history)"),
    url: str = Url,
    token: str = Token,
) -> None:
    """Put SHA256 on the deny list; the sensors get it within seconds."""
    digest = _sha256_argument(sha256)
    if not reason.strip():
        _fail("--reason must say why the file is denied")
    with _service(url, token) as client:
        entry = client.request("POST", DENY_LIST, json={"sha256": digest, "reason": reason})
    typer.echo(f"denied {entry['sha256']}: {entry['reason']}")


@deny_app.command("remove")
def deny_remove(
    sha256: str = typer.Argument(..., help="The file's sha256 (64 hex digits)"),
    url: str = Url,
    token: str = Token,
) -> None:
    """Take SHA256 off the deny list."""
    digest = _sha256_argument(sha256)
    with _service(url, token) as client:
        client.request("DELETE", f"{DENY_LIST}/{digest}")
    typer.echo(f"removed {digest} from the deny list")
