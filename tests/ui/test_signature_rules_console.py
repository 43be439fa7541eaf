"""Signature rules of the trust policy on the console's settings page: an admin sets and removes one through
the form (stored as the API and `vigil trust require` store it), a refused form names the field and keeps
what was typed, a viewer sees the rules without the forms and cannot post them (browser against a seeded
service)."""

from __future__ import annotations

import httpx

from vigil.devtools.signing import new_key, public_pem
from vigil.policy.signature_rules import AcceptedKey
from vigil.signatures.keys import BadKey

from .test_console_data import SEEDED_DOC, api, cells, submit

FORM = "#add-signature-rule"
ISSUER = "https://token.actions.githubusercontent.com"
SUBJECTS = "https://github.com/acme/.*"
SLSA = "https://slsa.dev/provenance/v1"
BUILDER = "https://github.com/actions/runner/github-hosted"
BAD_PEM = "-----BEGIN PUBLIC KEY-----\nnot base64 at all\n-----END PUBLIC KEY-----"


def signature_rows(page) -> list[list[str]]:
    # scope, pattern, namespace, requires, added by (the time and the button left out)
    return [r[:5] for r in cells(page, "#signature-rules tbody tr")]


def bad_key_reason(pem: str) -> str:
    try:
        AcceptedKey("check", pem)
    except BadKey as exc:
        return str(exc)
    raise AssertionError("the key loaded")


def fill(page, **fields: str) -> None:
    for name, value in fields.items():
        page.fill(f"{FORM} [name={name}]", value)


def test_admin_requires_signatures_in_the_console_and_removes_the_rule(admin_page, console, output_dir):
    svc, _ = console
    page = admin_page
    page.goto(f"{svc.url}/settings")
    assert page.locator("#no-signature-rules").inner_text() == (
        "No signature rule: signatures and provenance are not required."
    )
    before = api(svc, "/api/v1/policy/trust")

    # A bad PEM: refused naming the field, the form shown again as typed, nothing stored.
    page.select_option(f"{FORM} select[name=cluster]", "prod")
    fill(page, pattern="registry.example.com/team0", namespace="payments", key_name="ci", key_pem=BAD_PEM)
    submit(page, f"{FORM} button[type=submit]")
    error = page.locator("#signature-error").inner_text()
    assert error == f"keys[0].pem: {bad_key_reason(BAD_PEM + chr(10))}"
    assert error.startswith("keys[0].pem: not a PEM or DER public key (")
    assert page.locator(f"{FORM} [name=pattern]").input_value() == "registry.example.com/team0"
    assert page.locator(f"{FORM} [name=namespace]").input_value() == "payments"
    assert page.locator(f"{FORM} [name=key_name]").input_value() == "ci"
    assert page.locator(f"{FORM} [name=key_pem]").input_value() == BAD_PEM
    assert page.locator(f"{FORM} select[name=cluster]").input_value() == "prod"
    page.screenshot(path=str(output_dir / "settings-signature-error.png"), full_page=True)
    assert api(svc, "/api/v1/policy/trust") == before

    # A keyless identity must name a subject or a subject pattern, not both.
    pem = public_pem(new_key()).decode()
    fill(page, key_pem=pem, issuer=ISSUER, subject="https://github.com/acme/app", subject_pattern=SUBJECTS)
    submit(page, f"{FORM} button[type=submit]")
    assert page.locator("#signature-error").inner_text() == (
        "identities[0]: name exactly one of subject and subject_pattern"
    )
    assert api(svc, "/api/v1/policy/trust") == before

    fill(
        page,
        subject="",
        attestations=f"{SLSA}\n\nhttps://spdx.dev/Document\n",
        source_repositories="https://github.com/acme/app",
        builder_ids=BUILDER,
    )
    submit(page, f"{FORM} button[type=submit]")
    assert page.url == f"{svc.url}/settings#signatures", page.locator("#signature-error").all_inner_texts()
    doc = api(svc, "/api/v1/policy/trust")
    assert doc["signatures"] == []
    assert doc["clusters"]["prod"]["signatures"] == [
        {
            "pattern": "registry.example.com/team0",
            "namespace": "payments",
            "keys": [{"name": "ci", "pem": pem}],
            "identities": [{"issuer": ISSUER, "issuer_pattern": None, "subject": None, "subject_pattern": SUBJECTS}],
            "attestations": [SLSA, "https://spdx.dev/Document"],
            "source_repositories": ["https://github.com/acme/app"],
            "builder_ids": [BUILDER],
        }
    ]
    assert page.locator("#trust-revision").inner_text() == doc["revision"] != before["revision"]
    assert signature_rows(page) == [
        [
            "cluster prod",
            "registry.example.com/team0",
            "payments",
            f"key ci; identity {ISSUER}=/{SUBJECTS}/; attestation {SLSA}; attestation https://spdx.dev/Document; "
            f"source https://github.com/acme/app; builder {BUILDER}",
            "console:test-admin",
        ]
    ]
    page.screenshot(path=str(output_dir / "settings-signature-rules.png"), full_page=True)

    # A second rule, global and key-only, so each row's button is seen to remove its own rule.
    page.select_option(f"{FORM} select[name=cluster]", "")
    fill(
        page,
        pattern="harbor.internal",
        namespace="",
        key_name="release",
        key_pem=pem,
        issuer="",
        subject_pattern="",
        attestations="",
        source_repositories="",
        builder_ids="",
    )
    submit(page, f"{FORM} button[type=submit]")
    assert page.url == f"{svc.url}/settings#signatures", page.locator("#signature-error").all_inner_texts()
    assert api(svc, "/api/v1/policy/trust")["signatures"] == [
        {
            "pattern": "harbor.internal",
            "namespace": None,
            "keys": [{"name": "release", "pem": pem}],
            "identities": [],
            "attestations": [],
            "source_repositories": [],
            "builder_ids": [],
        }
    ]

    submit(page, "#signature-rules tr[data-pattern='registry.example.com/team0'][data-namespace=payments] button")
    assert page.url == f"{svc.url}/settings#signatures", page.locator("#signature-error").all_inner_texts()
    assert signature_rows(page) == [
        ["global", "harbor.internal", "every namespace", "key release", "console:test-admin"]
    ]
    assert "prod" not in api(svc, "/api/v1/policy/trust")["clusters"]
    submit(page, "#signature-rules tr[data-pattern='harbor.internal'] button")
    assert page.locator("#no-signature-rules").count() == 1
    after = api(svc, "/api/v1/policy/trust")
    assert after["revision"] == before["revision"]
    assert {k: v for k, v in after.items() if k != "revision"} == SEEDED_DOC


def test_viewer_sees_signature_rules_without_the_forms_and_cannot_post_them(viewer_page, console):
    svc, _ = console
    pem = public_pem(new_key()).decode()
    rule = {"pattern": "registry.example.com/team0", "keys": [{"name": "ci", "pem": pem}]}
    headers = {"Authorization": f"Bearer {svc.admin_token}"}
    stored = {k: v for k, v in api(svc, "/api/v1/policy/trust").items() if k != "revision"}
    put = httpx.put(
        f"{svc.url}/api/v1/policy/trust", json={**stored, "signatures": [rule]}, headers=headers, timeout=60
    )
    assert put.status_code == 200, put.text
    try:
        page = viewer_page
        page.goto(f"{svc.url}/settings")
        assert signature_rows(page) == [
            ["global", "registry.example.com/team0", "every namespace", "key ci", "token:test-admin"]
        ]
        assert page.locator(FORM).count() == 0 and page.locator("#signature-rules button").count() == 0
        csrf = page.locator("header form input[name=csrf]").get_attribute("value")
        for path, form in (
            (
                "/settings/trust/signatures",
                {"csrf": csrf, "pattern": "evil.example.com", "key_name": "x", "key_pem": pem},
            ),
            (
                "/settings/trust/signatures/remove",
                {"csrf": csrf, "rule": '{"pattern": "registry.example.com/team0", "cluster": "", "namespace": ""}'},
            ),
        ):
            resp = page.request.post(f"{svc.url}{path}", form=form, max_redirects=0)
            assert resp.status == 403, path
            assert "this needs an admin token" in resp.text()
        got = api(svc, "/api/v1/policy/trust")
        assert [r["pattern"] for r in got["signatures"]] == ["registry.example.com/team0"]
    finally:
        restored = httpx.put(f"{svc.url}/api/v1/policy/trust", json=stored, headers=headers, timeout=60)
        assert restored.status_code == 200, restored.text
