"""`vigil trust require|unrequire|list`: signature rules in the store, validated as the trust policy file is."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from vigil.cli import app as vigil_app
from vigil.devtools.signing import new_key, public_pem
from vigil.service.store.db import create_store_engine
from vigil.service.store.policy import load_policy
from vigil.signatures.keys import key_id, load_public_key

runner = CliRunner()
SLSA = "https://slsa.dev/provenance/v1"


def test_require_list_replace_and_unrequire(tmp_path) -> None:
    data = ["--data-dir", str(tmp_path / "d")]
    pem = public_pem(new_key())
    (tmp_path / "ci.pub").write_bytes(pem)
    args = ["trust", "require", "registry.example.com/team", "--key", str(tmp_path / "ci.pub")]
    args += ["--identity", "https://token.actions.githubusercontent.com=~https://github.com/acme/.*"]
    args += ["--attestation", SLSA, "--source-repository", "https://github.com/acme/app", "--namespace", "shop"]
    r = runner.invoke(vigil_app, [*args, *data])
    assert (r.exit_code, r.output.strip()) == (
        0,
        "added: signatures for registry.example.com/team (global, namespace shop)",
    )
    r = runner.invoke(vigil_app, [*args, *data])
    assert r.output.strip() == "replaced: signatures for registry.example.com/team (global, namespace shop)"

    engine = create_store_engine(f"sqlite:///{tmp_path / 'd' / 'vigil.db'}")
    with engine.connect() as conn:
        (rule,) = load_policy(conn).signatures
    engine.dispose()
    req = rule.requirement
    assert [(k.name, k.key_id) for k in req.keys] == [("ci", key_id(load_public_key(pem)))]
    assert [i.describe() for i in req.identities] == [
        "https://token.actions.githubusercontent.com=/https://github.com/acme/.*/"
    ]
    assert (req.attestations, req.source_repositories, rule.namespace) == (
        (SLSA,),
        ("https://github.com/acme/app",),
        "shop",
    )

    r = runner.invoke(vigil_app, ["trust", "list", "-o", "json", *data])
    rows = json.loads(r.output)
    assert [(x["kind"], x["pattern"], x["namespace"], x["requires"]) for x in rows] == [
        (
            "signatures",
            "registry.example.com/team",
            "shop",
            "key ci; identity https://token.actions.githubusercontent.com=/https://github.com/acme/.*/; "
            f"attestation {SLSA}; source https://github.com/acme/app",
        )
    ]
    r = runner.invoke(vigil_app, ["trust", "unrequire", "registry.example.com/team", *data])
    assert (r.exit_code, r.output.strip()) == (
        1,
        "error: no signature rule for registry.example.com/team (global) in the policy",
    )
    r = runner.invoke(vigil_app, ["trust", "unrequire", "registry.example.com/team", "--namespace", "shop", *data])
    assert (r.exit_code, r.output.strip()) == (
        0,
        "removed: signatures for registry.example.com/team (global, namespace shop)",
    )
    assert json.loads(runner.invoke(vigil_app, ["trust", "list", "-o", "json", *data]).output) == []


def test_bad_options_name_the_option_and_the_rule(tmp_path) -> None:
    data = ["--data-dir", str(tmp_path / "d")]
    (tmp_path / "private.pem").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    cases = [
        (
            ["--key", str(tmp_path / "private.pem")],
            f"error: --key {tmp_path / 'private.pem'}: a private key, not a public key",
        ),
        (["--identity", "nosubject"], "error: --identity 'nosubject': expected ISSUER=SUBJECT (SUBJECT may be ~REGEX)"),
        (
            ["--identity", "https://i=~("],
            "error: --identity 'https://i=~(': the pattern is not a regular expression "
            "(missing ), unterminated subpattern at position 0)",
        ),
        (
            ["--attestation", SLSA],
            "error: the options: name keys or identities: whose signatures count "
            "(attestations, source_repositories and builder_ids hold for attestations signed by them)",
        ),
    ]
    for extra, message in cases:
        r = runner.invoke(vigil_app, ["trust", "require", "registry.example.com", *extra, *data], terminal_width=300)
        assert (r.exit_code, r.output.strip()) == (2, message)
