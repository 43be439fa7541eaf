"""Paths and loaders for the shared Sigstore data (../shared/data/sigstore, see its README)."""

from __future__ import annotations

import json
from pathlib import Path

from vigil.signatures.certs import IdentityRule
from vigil.signatures.keys import TrustedKey, load_public_key
from vigil.signatures.trustroot import TrustedRoot, parse_trusted_root

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "sigstore"
CONNAISSEUR = DATA / "sse-secure-systems+connaisseur/test/testdata/cosign"
TESTIMAGE = CONNAISSEUR / "securesystemsengineering/testimage"
PY_ASSETS = DATA / "sigstore+sigstore-python/test/assets"
GO = DATA / "sigstore+sigstore-go"
EXTRACTED = DATA / "extracted"
IN_TOTO = DATA / "in-toto+in-toto/tests"
ANY_IDENTITY = (IdentityRule(issuer_pattern=".*", subject_pattern=".*"),)


def key(name: str, path: Path) -> TrustedKey:
    return TrustedKey(name, load_public_key(path.read_bytes()))


def root(path: Path) -> TrustedRoot:
    return parse_trusted_root(path.read_bytes())


def public_good() -> TrustedRoot:
    return root(
        DATA / "sigstore+sigstore-python/sigstore/_store/https%3A%2F%2Ftuf-repo-cdn.sigstore.dev/trusted_root.json"
    )


def staging() -> TrustedRoot:
    return root(
        DATA / "sigstore+sigstore-python/sigstore/_store/https%3A%2F%2Ftuf-repo-cdn.sigstage.dev/trusted_root.json"
    )


def tsa_root() -> TrustedRoot:
    doc = json.loads((PY_ASSETS / "tsa/trust_config.json").read_bytes())
    return parse_trusted_root(json.dumps(doc["trustedRoot"]).encode())
