"""Rekor transparency log proofs: the signed entry timestamp (inclusion promise), the RFC 9162 inclusion
proof and its signed checkpoint (a signed note)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from vigil.signatures.keys import PublicKey, signature_ok


def set_message(body_b64: str, integrated_time: int, log_id: bytes, log_index: int) -> bytes:
    """The canonical JSON Rekor signs as the signed entry timestamp."""
    doc = {"body": body_b64, "integratedTime": integrated_time, "logID": log_id.hex(), "logIndex": log_index}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def set_ok(key: PublicKey, set_b64: str, body_b64: str, integrated_time: int, log_id: bytes, log_index: int) -> bool:
    try:
        sig = base64.b64decode(set_b64, validate=True)
    except (binascii.Error, ValueError):
        return False
    return signature_ok(key, sig, set_message(body_b64, integrated_time, log_id, log_index))


def leaf_hash(body: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + body).digest()


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes | None:
    """RFC 9162 section 2.1.3.2; None when the proof's shape does not fit the tree."""
    if index < 0 or index >= size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def checkpoint(envelope: str, key: PublicKey) -> tuple[int, bytes] | str:
    """The (tree size, root hash) of a checkpoint signed by `key`, or why it is not one."""
    text, sep, sigs = envelope.partition("\n\n")
    if not sep:
        return "the checkpoint is not a signed note"
    lines = text.split("\n")
    if len(lines) < 3:
        return "the checkpoint has no tree size and root hash"
    try:
        size = int(lines[1])
        root = base64.b64decode(lines[2], validate=True)
    except (ValueError, binascii.Error):
        return "the checkpoint's tree size or root hash is malformed"
    message = (text + "\n").encode()
    for line in sigs.split("\n"):
        if not line.startswith("\u2014 "):
            continue
        parts = line.split(" ")
        if len(parts) != 3:
            continue
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except (binascii.Error, ValueError):
            continue
        if len(raw) > 4 and signature_ok(key, raw[4:], message):
            return size, root
    return "the checkpoint's signature does not verify with the log's key"
