"""`vigil image check --key/--identity` against a real registry: the signature line and exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vigil.cli import app as vigil_app
from vigil.devtools.oci import build_image, push, tar_layer
from vigil.devtools.registry_server import RegistryServer
from vigil.devtools.signing import new_key, public_pem, sign
from vigil.registry import RegistryClient, RegistryConfig
from vigil.signatures.keys import key_id, load_public_key

KEY = new_key()
OTHER = new_key()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with RegistryServer.for_pytest(tmp_path_factory.mktemp("registry")) as server:
        yield server


@pytest.fixture(scope="module")
def images(registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    host = registry.host
    out: dict[str, str] = {}
    with RegistryClient(RegistryConfig.from_mapping({host: {"plain_http": True}})) as client:
        for name in ("signed", "unsigned", "other", "corrupt"):
            ref = f"{host}/check/{name}:v1"
            digest = push(client, ref, build_image([tar_layer({"NAME": name.encode()})]))
            out[name] = f"{ref}@{digest}"
            if name != "unsigned":
                sign(client, ref, digest, OTHER if name == "other" else KEY, corrupt=name == "corrupt")
    keys = tmp_path_factory.mktemp("keys")
    (keys / "ci.pub").write_bytes(public_pem(KEY))
    out["key"] = str(keys / "ci.pub")
    return out


def run(registry: RegistryServer, *args: str) -> tuple[int, list[str]]:
    r = CliRunner().invoke(
        vigil_app, ["image", "check", *args, "--trusted", registry.host, "--plain-http", registry.host]
    )
    return r.exit_code, r.output.splitlines()


def test_a_signature_by_the_key_verifies(registry: RegistryServer, images: dict[str, str]) -> None:
    code, lines = run(registry, images["signed"], "--key", images["key"])
    assert (code, lines[-1]) == (0, f"signature: verified by {images['key']}")


def test_a_signature_by_another_key_exits_1(registry: RegistryServer, images: dict[str, str]) -> None:
    code, lines = run(registry, images["other"], "--key", images["key"])
    assert (code, lines[-1]) == (1, "signature: invalid: the signature does not verify with the accepted keys")


def test_a_corrupted_signature_exits_1(registry: RegistryServer, images: dict[str, str]) -> None:
    code, lines = run(registry, images["corrupt"], "--key", images["key"])
    assert (code, lines[-1]) == (1, "signature: invalid: the signature does not verify with the accepted keys")


def test_no_signature_exits_1(registry: RegistryServer, images: dict[str, str]) -> None:
    code, lines = run(registry, images["unsigned"], "--key", images["key"])
    assert (code, lines[-1]) == (1, "signature: absent")


def test_without_key_no_signature_is_required(registry: RegistryServer, images: dict[str, str]) -> None:
    code, lines = run(registry, images["unsigned"])
    assert code == 0
    assert not any(line.startswith("signature:") for line in lines)


def test_json_names_the_outcome(registry: RegistryServer, images: dict[str, str]) -> None:
    code, lines = run(registry, images["signed"], "--key", images["key"], "-o", "json")
    assert code == 0
    assert json.loads("\n".join(lines))["signature"] == {"outcome": "verified", "line": f"verified by {images['key']}"}


def test_a_keyless_identity_that_did_not_sign_exits_1(registry: RegistryServer, images: dict[str, str]) -> None:
    # The image is signed by a key only: the keyless requirement finds no keyless signature that verifies.
    code, lines = run(
        registry,
        images["signed"],
        "--identity",
        "https://token.actions.githubusercontent.com=~https://github.com/acme/.*",
    )
    assert (code, lines[-1]) == (1, "signature: invalid: a keyed signature, and no key is accepted")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--identity", "no-equals"), "error: --identity 'no-equals': expected ISSUER=SUBJECT (SUBJECT may be ~REGEX)"),
        (
            ("--identity", "a=~("),
            "error: --identity 'a=~(': the subject pattern is not a regular expression "
            "(missing ), unterminated subpattern at position 0)",
        ),
        (("--trusted-root", "x.json"), "error: --trusted-root is read with --identity only"),
    ],
)
def test_bad_requirements_exit_2(
    registry: RegistryServer, images: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    r = CliRunner().invoke(vigil_app, ["image", "check", images["signed"], *args])
    assert (r.exit_code, r.output.strip().splitlines()[-1]) == (2, message)


def test_a_bad_key_file_exits_2(tmp_path: Path, images: dict[str, str]) -> None:
    bad = tmp_path / "bad.pub"
    bad.write_bytes(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    r = CliRunner().invoke(vigil_app, ["image", "check", images["signed"], "--key", str(bad)])
    assert r.exit_code == 2
    assert r.output.strip().splitlines()[-1].startswith(f"error: --key {bad}: not a PEM or DER public key")


def test_a_stopped_registry_exits_3(tmp_path_factory: pytest.TempPathFactory, images: dict[str, str]) -> None:
    with RegistryServer.for_pytest(tmp_path_factory.mktemp("gone")) as server:
        host = server.host
        with RegistryClient(RegistryConfig.from_mapping({host: {"plain_http": True}})) as client:
            digest = push(client, f"{host}/check/gone:v1", build_image([tar_layer({"N": b"gone"})]))
        server.stop()
        r = CliRunner().invoke(
            vigil_app,
            [
                "image",
                "check",
                f"{host}/check/gone:v1@{digest}",
                "--key",
                images["key"],
                "--trusted",
                host,
                "--plain-http",
                host,
            ],
        )
    assert r.exit_code == 3
    assert r.output.splitlines()[-1].startswith("signature: unknown: signatures could not be fetched: ")


def test_the_trust_policy_file_s_signature_rule_is_checked_with_the_service_s_code(
    registry: RegistryServer, images: dict[str, str], tmp_path: Path
) -> None:
    import yaml

    host = registry.host
    policy = tmp_path / "trust.yaml"
    rule = {"pattern": f"{host}/check", "keys": [{"name": "ci", "pem": public_pem(KEY).decode()}]}
    policy.write_text(yaml.safe_dump({"trusted": [host], "signatures": [rule]}))
    enforcement = tmp_path / "enforcement.yaml"
    enforcement.write_text(yaml.safe_dump({"policies": [{"name": "signed", "rules": {"signatures": True}}]}))
    where = f"signatures for {host}/check (global)"

    code, lines = run(registry, images["signed"], "--policy", str(policy))
    assert code == 0
    ci = key_id(load_public_key(public_pem(KEY)))
    assert lines[-1] == f"signatures: verified (signed by key ci ({ci}); {where})"
    code, lines = run(registry, images["unsigned"], "--policy", str(policy))
    assert (code, lines[-1]) == (
        1,
        f"signatures: unsigned_image: no signature by an accepted key or identity ({where})",
    )
    code, lines = run(registry, images["other"], "--policy", str(policy), "-o", "json")
    doc = json.loads("\n".join(lines))
    assert (code, doc["signatures"]["status"], doc["signatures"]["findings"]) == (1, "violation", ["unsigned_image"])
    # Admission, with the webhook's code: the unsigned image is denied under an enforcing policy.
    code, lines = run(registry, images["unsigned"], "--policy", str(policy), "--enforcement", str(enforcement))
    assert code == 1
    assert f'violation  policy "signed" rule signatures: image {images["unsigned"]}: unsigned_image: ' in "\n".join(
        lines
    )
    code, _ = run(registry, images["signed"], "--policy", str(policy), "--enforcement", str(enforcement))
    assert code == 0
