"""No command ends in a traceback on bad input: file, directory and output options of the commands (found by
walking the command tree, as test_help does) are given a missing file, an unwritable output and a malformed
value, and each answer is a non-zero exit with one `error:` line naming what was given."""

from __future__ import annotations

import pathlib
import typing
from dataclasses import dataclass

import pytest
import typer
from typer.testing import CliRunner

from vigil.cli import build_app

runner = CliRunner()

# What an option holds, which decides the bad values it gets:
#   input:  a file the command reads (missing: absent; "unwritable": a directory; malformed: garbage bytes)
#   indir:  a directory the command reads (missing: absent; "unwritable": under a file; malformed: a file)
#   output: a file the command writes (missing: its directory absent; unwritable: in /proc; malformed: a dir)
#   made:   a file the command writes, made with its directory (missing: under a file; unwritable: in /proc;
#           malformed: a dir)
#   dir:    a directory the command makes or writes into (missing: under a file; unwritable: in /proc;
#           malformed: a regular file)
#   source: a file or a directory the command reads (missing: absent; "unwritable": under a file;
#           malformed: garbage bytes)
#   store:  a database file the command reads and writes, made with its directory (missing: under a file;
#           unwritable: in /proc; malformed: garbage bytes; directory: a directory)
#   format: an --output that names a format, not a path (malformed: an unknown format)
Role = typing.Literal["input", "indir", "output", "made", "dir", "source", "store", "format"]


@dataclass(frozen=True)
class Case:
    role: Role
    args: tuple[str, ...] = ()  # what else the command needs to get as far as the option


SERVICE = ("--url", "http://127.0.0.1:9", "--token", "vgl_u_x")
CONTROLLER = ("--service", "http://127.0.0.1:9", "--registration-token", "vgl_r_x", "--cluster-name", "demo")
SENSOR = ("--service", "http://127.0.0.1:9", "--duration", "1")
CERT = (
    "--service",
    "https://127.0.0.1:9",
    "--credential-file",
    "{cred}",
    "--client-cert",
    "{tmp}/c.pem",
    "--client-key",
    "{tmp}/c.key",
)
IMAGE = "registry.example.com/x:1"
ADMISSION = ("--service", "http://127.0.0.1:9", "--cluster-id", "c1", "--listen", "127.0.0.1:9")
ADMISSION_TLS = ("--tls-cert", "{pem}", "--tls-key", "{pem}")
ADMISSION_CA = ("--tls-ca-cert", "{ca_cert}", "--tls-ca-key", "{ca_key}")
ADMISSION_CRED = ("--credential-file", "{cred}")


def _but(args: tuple[str, ...], option: str) -> tuple[str, ...]:
    """``args`` without ``option`` and its value (the case gives the option its bad value)."""
    at = args.index(option)
    return args[:at] + args[at + 2 :]


CASES: dict[tuple[str, str], Case] = {
    ("get", "--output"): Case("format", ("findings",) + SERVICE),
    ("scan", "--output"): Case("format", ("{tmp}",)),
    ("scan", "--db"): Case("input", ("{tmp}",)),
    # An image on a port nothing listens on: the output is refused before any pull.
    ("sbom", "--output"): Case("output", ("127.0.0.1:9/x:1", "--plain-http", "127.0.0.1:9")),
    ("up", "--data-dir"): Case("dir", ("--no-sensor",)),
    ("up", "--tls-cert"): Case("input", ("--tls-key", "{pem}", "--no-sensor", "--data-dir", "{tmp}/d")),
    ("up", "--tls-key"): Case("input", ("--tls-cert", "{pem}", "--no-sensor", "--data-dir", "{tmp}/d")),
    ("service", "--tls-cert"): Case("input", ("--tls-key", "{pem}", "--data-dir", "{tmp}/d")),
    ("service", "--tls-key"): Case("input", ("--tls-cert", "{pem}", "--data-dir", "{tmp}/d")),
    ("service", "--data-dir"): Case("dir"),
    ("up", "--trust-file"): Case("input", ("--no-sensor", "--data-dir", "{tmp}/d")),
    ("up", "--registry-config"): Case("input", ("--no-sensor", "--data-dir", "{tmp}/d")),
    ("service", "--trust-file"): Case("input", ("--data-dir", "{tmp}/d")),
    ("service", "--registry-config"): Case("input", ("--data-dir", "{tmp}/d")),
    ("service", "--sigstore-trusted-root"): Case("input", ("--data-dir", "{tmp}/d")),
    ("up", "--sigstore-trusted-root"): Case("input", ("--no-sensor", "--data-dir", "{tmp}/d")),
    ("image check", "--policy"): Case("input", ("registry.example.com/x:1",)),
    ("image check", "--registry-config"): Case(
        "input", ("registry.example.com/x:1", "--trusted", "registry.example.com")
    ),
    ("service init", "--data-dir"): Case("dir"),
    ("token create", "--data-dir"): Case("dir", ("--role", "viewer", "--name", "x")),
    ("token list", "--data-dir"): Case("dir"),
    ("token revoke", "--data-dir"): Case("dir", ("tok_x",)),
    ("cluster token", "--data-dir"): Case("dir"),
    ("trust add", "--data-dir"): Case("dir", ("registry.example.com",)),
    ("trust remove", "--data-dir"): Case("dir", ("registry.example.com",)),
    ("trust list", "--data-dir"): Case("dir"),
    ("trust require", "--key"): Case("input", ("registry.example.com",)),
    ("trust require", "--data-dir"): Case("dir", ("registry.example.com", "--identity", "https://issuer=subject")),
    ("trust unrequire", "--data-dir"): Case("dir", ("registry.example.com",)),
    ("token list", "--output"): Case("format", ("--data-dir", "{tmp}/d")),
    ("cluster install", "--token-file"): Case("output", ("--name", "demo") + SERVICE),
    ("cluster install", "--service-ca"): Case("input", ("--name", "demo") + SERVICE),
    ("cluster credentials", "--output"): Case("format", ("demo",) + SERVICE),
    ("controller", "--credential-file"): Case("output", CONTROLLER),
    ("controller", "--kubeconfig"): Case("input", CONTROLLER + ("--credential-file", "{tmp}/c.json")),
    ("controller", "--service-ca"): Case("input", CONTROLLER + ("--credential-file", "{tmp}/c.json")),
    ("controller", "--client-cert"): Case("input", CONTROLLER + ("--client-key", "{pem}")),
    ("controller", "--client-key"): Case("input", CONTROLLER + ("--client-cert", "{pem}")),
    ("sensor", "--service-ca"): Case("input", SENSOR + ("--credential-file", "{cred}")),
    ("sensor", "--client-cert"): Case("input", SENSOR + ("--credential-file", "{cred}", "--client-key", "{pem}")),
    ("sensor", "--client-key"): Case("input", SENSOR + ("--credential-file", "{cred}", "--client-cert", "{pem}")),
    ("sensor", "--output"): Case("format", ("--duration", "1")),
    ("sensor", "--runtime-policy"): Case("input", ("--output", "json", "--duration", "1", "--node-name", "node-1")),
    ("catalog", "PATH"): Case("indir"),
    ("catalog", "--output"): Case("format", ("{rootfs}",)),
    ("intel query", "--db"): Case("input", ("--ecosystem", "PyPI", "--package", "jinja2", "--version", "2.0")),
    ("intel query", "--output"): Case(
        "format", ("--ecosystem", "PyPI", "--package", "jinja2", "--version", "2.0", "--db", "{db}")
    ),
    ("trust list", "--output"): Case("format", ("--data-dir", "{tmp}/d")),
    ("image check", "--output"): Case("format", ("registry.example.com/x:1",)),
    ("image check", "--enforcement"): Case("input", (IMAGE,)),
    ("image check", "--key"): Case("input", (IMAGE,)),
    ("image check", "--trusted-root"): Case("input", (IMAGE, "--identity", "https://issuer=subject")),
    ("image check", "--scan-report"): Case("input", (IMAGE, "--enforcement", "{enforcement}")),
    ("alerts list", "--output"): Case("format", SERVICE),
    ("alerts dead-letters", "--output"): Case("format", SERVICE),
    ("dev kube-api", "--load"): Case("indir", ("--port", "0")),
    ("dev kube-api", "--write-kubeconfig"): Case("output", ("--port", "0")),
    ("intel import", "PATHS"): Case("source", ("--db", "{db}")),
    ("intel import", "--db"): Case("store", ("{osv}",)),
    ("intel sync", "--db"): Case("store", ("{osv}",)),
    ("intel sync", "--cache-dir"): Case("dir", ("{osv}", "--db", "{db}")),
    ("credential certificate", "--credential-file"): Case("input", _but(CERT, "--credential-file")),
    ("credential certificate", "--client-cert"): Case("made", _but(CERT, "--client-cert")),
    ("credential certificate", "--client-key"): Case("made", _but(CERT, "--client-key")),
    ("credential certificate", "--service-ca"): Case("input", CERT),
    ("demo", "--work-dir"): Case("dir", ("--port", "1")),
    ("demo", "--output"): Case("format", ("--work-dir", "{tmp}/d", "--port", "1")),
    ("sensor", "--credential-file"): Case("input", SENSOR),
    ("sensor", "--enrolment-credential-file"): Case("input", SENSOR),
    ("sensor", "--spool-dir"): Case("dir", SENSOR + ("--credential-file", "{cred}")),
    ("scanner", "--data-dir"): Case("indir", ("--once",)),
    ("scanner", "--registry-config"): Case("input", ("--once", "--data-dir", "{tmp}/d")),
    ("scan", "--registry-config"): Case("input", (IMAGE, "--db", "{db}")),
    ("sbom", "--registry-config"): Case("input", (IMAGE,)),
    ("policy enforcement apply", "--file"): Case("input", SERVICE),
    ("policy enforcement history", "--output"): Case("format", SERVICE),
    ("policy decisions", "--output"): Case("format", SERVICE),
    ("policy deny-list list", "--output"): Case("format", SERVICE),
    ("admission", "--credential-file"): Case("input", ADMISSION + ADMISSION_TLS),
    ("admission", "--service-ca"): Case("input", ADMISSION + ADMISSION_CRED + ADMISSION_TLS),
    ("admission", "--kubeconfig"): Case("input", ADMISSION + ADMISSION_CRED + ADMISSION_TLS),
    ("admission", "--registry-config"): Case("input", ADMISSION + ADMISSION_CRED + ADMISSION_TLS),
    ("admission", "--tls-cert"): Case("input", ADMISSION + ADMISSION_CRED + _but(ADMISSION_TLS, "--tls-cert")),
    ("admission", "--tls-key"): Case("input", ADMISSION + ADMISSION_CRED + _but(ADMISSION_TLS, "--tls-key")),
    ("admission", "--tls-ca-cert"): Case("input", ADMISSION + ADMISSION_CRED + _but(ADMISSION_CA, "--tls-ca-cert")),
    ("admission", "--tls-ca-key"): Case("input", ADMISSION + ADMISSION_CRED + _but(ADMISSION_CA, "--tls-ca-key")),
}


def _is_path(annotation: object) -> bool:
    return annotation is pathlib.Path or any(_is_path(a) for a in typing.get_args(annotation))


def _path_options() -> set[tuple[str, str]]:
    """(command, option) for every option or argument that names a file or directory, or the output."""
    found: set[tuple[str, str]] = set()

    def walk(command, prefix: tuple[str, ...]) -> None:
        for param in command.params if prefix else ():
            name = max(param.opts, key=len) if param.opts and param.opts[0].startswith("-") else param.name.upper()
            if _is_path(param.type_descriptor.annotation) or "--output" in param.opts:
                found.add((" ".join(prefix), name))
        for sub_name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*prefix, sub_name))

    walk(typer.main.get_command(build_app()), ())
    return found


def test_the_cases_cover_every_path_option():
    # A new path option without a case here fails, as does a case naming an option that went away.
    found = _path_options()
    assert sorted(found - set(CASES)) == [], "path options without a case in CASES"
    assert sorted(set(CASES) - found) == [], "cases naming no path option of the CLI"


@pytest.fixture
def files(tmp_path) -> dict[str, str]:
    (tmp_path / "afile").write_text("a regular file\n")
    (tmp_path / "adir").mkdir()
    (tmp_path / "garbage").write_bytes(b"\x00\xff\xfe: [unclosed\n-----BEGIN nonsense\n{{{")
    (tmp_path / "rootfs" / "etc").mkdir(parents=True)
    (tmp_path / "osv").mkdir()
    (tmp_path / "cred").write_text("vgl_c_notarealone\n")
    pem = tmp_path / "pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    _write_ca(tmp_path / "ca.pem", tmp_path / "ca.key")
    (tmp_path / "enforcement.yaml").write_text("policies: []\n")
    return {
        "tmp": str(tmp_path),
        "rootfs": str(tmp_path / "rootfs"),
        "osv": str(tmp_path / "osv"),
        "cred": str(tmp_path / "cred"),
        "pem": str(pem),
        "db": str(tmp_path / "intel.db"),
        "ca_cert": str(tmp_path / "ca.pem"),
        "ca_key": str(tmp_path / "ca.key"),
        "enforcement": str(tmp_path / "enforcement.yaml"),
    }


def _write_ca(cert_path: pathlib.Path, key_path: pathlib.Path) -> None:
    """A real CA certificate and key (an option checked after them needs them to pass)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def _bad_values(role: Role, tmp: str) -> dict[str, str]:
    """The value each kind of bad input gives an option of this role."""
    # /proc takes no new files, not even from root (which the tests may run as).
    missing, unmakeable, under_a_file = f"{tmp}/missing/x.yaml", "/proc/vigil-test/x.json", f"{tmp}/afile/x"
    if role == "input":
        return {"missing": missing, "unwritable": f"{tmp}/adir", "malformed": f"{tmp}/garbage"}
    if role == "indir":
        return {"missing": missing, "unwritable": under_a_file, "malformed": f"{tmp}/afile"}
    if role == "output":
        return {"missing": f"{tmp}/missing/x.json", "unwritable": unmakeable, "malformed": f"{tmp}/adir"}
    if role == "made":
        return {"missing": under_a_file, "unwritable": unmakeable, "malformed": f"{tmp}/adir"}
    if role == "dir":
        return {"missing": under_a_file, "unwritable": unmakeable, "malformed": f"{tmp}/afile"}
    if role == "source":
        return {"missing": missing, "unwritable": under_a_file, "malformed": f"{tmp}/garbage"}
    if role == "store":
        return {
            "missing": under_a_file,
            "unwritable": unmakeable,
            "malformed": f"{tmp}/garbage",
            "directory": f"{tmp}/adir",
        }
    return {"malformed": "yaml"}


def _runs() -> list[tuple[tuple[str, str], str]]:
    return [(w, k) for w in sorted(CASES) for k in _bad_values(CASES[w].role, "")]


@pytest.mark.timeout(20)
@pytest.mark.parametrize(("where", "kind"), _runs(), ids=lambda v: " ".join(v) if isinstance(v, tuple) else v)
def test_bad_input_is_one_error_line_naming_it(where, kind, files):
    command, option = where
    case = CASES[where]
    value = _bad_values(case.role, files["tmp"])[kind]
    args = [a.format(**files) for a in case.args]
    given = [value] if option.isupper() else [option, value]
    result = runner.invoke(build_app(), [*command.split(), *given, *args], terminal_width=200)
    text = result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}\n{text}"
    )
    assert result.exit_code != 0, text
    assert "Traceback" not in text
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, text
    assert value in errors[0], text
    if case.role == "format":
        assert option in errors[0], text
