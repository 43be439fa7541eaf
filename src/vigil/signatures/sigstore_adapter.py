"""Bundles with RFC 3161 timestamps or Rekor v2 entries, verified by PyPI's `sigstore` package
offline: its `Verifier` built on a `TrustedRoot` from the supplied document's bytes (no TUF, no
network). The identity is then checked here, as for every other bundle."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cryptography import x509
from sigstore.errors import Error as SigstoreError
from sigstore.hashes import Hashed
from sigstore.models import Bundle
from sigstore.models import TrustedRoot as SigstoreTrustedRoot
from sigstore.verify import Verifier
from sigstore_models.common.v1 import HashAlgorithm
from sigstore_models.trustroot import v1 as trustroot_v1

from vigil.signatures import dsse
from vigil.signatures.certs import IdentityRule
from vigil.signatures.outcome import Invalid, Outcome, Provenance, Unknown
from vigil.signatures.trustroot import TrustedRoot


class _AfterwardsPolicy:
    """sigstore's policy hook: the identity is matched by `bundle.identity_outcome` afterwards, so the
    same rules and messages apply to every bundle."""

    def verify(self, cert: x509.Certificate) -> None:
        return None


def verify(
    data: bytes,
    root: TrustedRoot,
    doc: dict[str, Any],
    digest: str | None,
    identities: Sequence[IdentityRule],
    subject_digest: str | None,
) -> Outcome:
    from vigil.signatures.bundle import identity_outcome

    try:
        trusted = SigstoreTrustedRoot(trustroot_v1.TrustedRoot.from_json(root.raw))
    except (SigstoreError, ValueError):
        return Unknown("the sigstore package cannot read this trusted root, which this bundle's timestamps need")
    try:
        bundle = Bundle.from_json(data)
        verifier = Verifier(trusted_root=trusted)
        predicate_type: str | None = None
        provenance: Provenance | None = None
        if "dsseEnvelope" in doc:
            payload_type, payload = verifier.verify_dsse(bundle, _AfterwardsPolicy())
            statement = dsse.check_statement(dsse.Envelope(payload_type, payload, ()), subject_digest)
            if isinstance(statement, str):
                return Invalid(statement)
            predicate_type, provenance = statement
        else:
            if digest is None or not digest.startswith("sha256:"):
                return Invalid("no artifact digest to check the message signature against")
            hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=bytes.fromhex(digest.removeprefix("sha256:")))
            verifier.verify_artifact(hashed, bundle, _AfterwardsPolicy())
    except (SigstoreError, ValueError) as e:
        return Invalid(f"sigstore: {e}")
    return identity_outcome(bundle.signing_certificate, identities, None, predicate_type, provenance)
