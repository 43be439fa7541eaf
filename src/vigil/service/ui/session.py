"""The console's session: a signed cookie naming a server-side session and the token behind it.

The cookie carries a random session id, the token's id and role and a per-session CSRF secret,
never the token itself. Every request looks the session row up (``store/sessions.py``) and the
token behind it, so signing out, revoking the token or the row's expiry ends the session even
for a copy of the cookie kept elsewhere.
The signing key lives in the data directory (mode 0600) so sessions survive restarts
and every replica sharing the directory accepts them; without a writable data
directory a key is drawn per start.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer

log = logging.getLogger(__name__)

COOKIE = "vigil_session"
KEY_FILE = "ui-session.key"
MAX_AGE_S = 12 * 3600


def load_or_create_key(data_dir: Path | None) -> bytes:
    if data_dir is None:
        return secrets.token_bytes(32)
    path = Path(data_dir) / KEY_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            mode = path.stat().st_mode & 0o777
            if mode & 0o077:
                log.warning(
                    "console session key is readable by others; tightening to 0600",
                    extra={"path": str(path), "mode": oct(mode)},
                )
                path.chmod(0o600)
            key = path.read_bytes()
            if len(key) < 32:
                raise ValueError(f"{path} holds {len(key)} bytes; a session key needs at least 32") from None
            return key
        key = secrets.token_bytes(32)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
        return key
    except OSError as exc:
        log.warning(
            "cannot keep the console session key in the data directory; sessions end on restart",
            extra={"path": str(path), "error": str(exc)},
        )
        return secrets.token_bytes(32)


@dataclass(frozen=True)
class Session:
    csrf: str
    token_id: str | None = None
    role: str | None = None
    # The server-side session's id; None before sign-in.
    session_id: str | None = None

    @property
    def signed_in(self) -> bool:
        return self.token_id is not None and self.session_id is not None


def new_session(token_id: str | None = None, role: str | None = None, session_id: str | None = None) -> Session:
    # A fresh CSRF secret at every sign-in, so a secret seen before sign-in is useless after it.
    return Session(csrf=secrets.token_urlsafe(32), token_id=token_id, role=role, session_id=session_id)


class SessionCodec:
    def __init__(self, key: bytes, max_age_s: int = MAX_AGE_S) -> None:
        self._serializer = URLSafeTimedSerializer(key, salt="vigil-console-session")
        self.max_age_s = max_age_s

    def dumps(self, session: Session) -> str:
        return self._serializer.dumps(
            {
                "c": session.csrf,
                "t": session.token_id,
                "r": session.role,
                "s": session.session_id,
                "i": int(time.time()),
            }
        )

    def loads(self, value: str | None) -> Session | None:
        if not value:
            return None
        try:
            data = self._serializer.loads(value, max_age=self.max_age_s)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        tid, role, sid = data.get("t"), data.get("r"), data.get("s")
        if (tid is not None and not isinstance(tid, str)) or (sid is not None and not isinstance(sid, str)):
            return None
        return Session(csrf=data["c"], token_id=tid, role=role if isinstance(role, str) else None, session_id=sid)
