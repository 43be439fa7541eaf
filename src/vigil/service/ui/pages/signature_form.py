"""The console's signature rule form as a trust policy signature rule (pure: no store, no request).

The form is validated by the trust document's own model (vigil.policy.trust_doc.SignatureRuleDoc), the one
the API's PUT /api/v1/policy/trust and `vigil trust require` use, so a refusal names the same field and
the same rule (``keys[0].pem: not a PEM or DER public key ...``).
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import zip_longest

from pydantic import ValidationError
from starlette.datastructures import FormData

from vigil.policy.signature_rules import SignatureRule
from vigil.policy.trust_doc import SignatureRuleDoc, field_path

# The form's text fields, which a refused form shows again as the admin typed them.
TEXT_FIELDS = (
    "pattern",
    "cluster",
    "namespace",
    "key_name",
    "key_pem",
    "issuer",
    "subject",
    "subject_pattern",
    "attestations",
    "source_repositories",
    "builder_ids",
)
# How an error names a requirement that is about the whole rule rather than one field.
WHOLE_RULE = "signature rule"


class SignatureFormError(ValueError):
    """A signature rule form that breaks a rule; the message starts with the field's name."""


def _text(form: FormData, name: str) -> str:
    return str(form.get(name) or "").strip()


def _lines(text: str) -> list[str]:
    """One value a line (attestation types, source repositories, builder ids), blank lines left out."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def _keys(names: Iterable[object], pems: Iterable[object]) -> list[dict[str, str]]:
    out = []
    for name, pem in zip_longest(names, pems, fillvalue=""):
        # A browser sends a textarea's line breaks as CRLF; the key is stored as its PEM file has it.
        name_text, pem_text = str(name).strip(), str(pem).replace("\r\n", "\n").strip()
        if name_text or pem_text:
            out.append({"name": name_text, "pem": pem_text + "\n" if pem_text else ""})
    return out


def _identity(issuer: str, subject: str, subject_pattern: str) -> list[dict[str, str | None]]:
    if not (issuer or subject or subject_pattern):
        return []
    return [{"issuer": issuer or None, "subject": subject or None, "subject_pattern": subject_pattern or None}]


def rule_document(form: FormData) -> dict:
    """The posted form as a signature rule of the trust document (not yet validated)."""
    return {
        "pattern": _text(form, "pattern"),
        "namespace": _text(form, "namespace") or None,
        "keys": _keys(form.getlist("key_name"), form.getlist("key_pem")),
        "identities": _identity(_text(form, "issuer"), _text(form, "subject"), _text(form, "subject_pattern")),
        "attestations": _lines(_text(form, "attestations")),
        "source_repositories": _lines(_text(form, "source_repositories")),
        "builder_ids": _lines(_text(form, "builder_ids")),
    }


def rule_from_form(form: FormData, cluster: str | None) -> SignatureRule:
    """The signature rule the form describes for ``cluster``; SignatureFormError names the first bad field."""
    try:
        return SignatureRuleDoc.model_validate(rule_document(form)).to_rule(cluster)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = tuple(first["loc"])
        where = field_path(loc) if loc else WHOLE_RULE
        raise SignatureFormError(f"{where}: {first['msg'].removeprefix('Value error, ')}") from None


def form_values(form: FormData | None) -> dict[str, str]:
    """What the admin typed, put back into the form after a refusal (the first key's name and PEM)."""
    if form is None:
        return {}
    return {k: str(form.get(k) or "") for k in TEXT_FIELDS}
