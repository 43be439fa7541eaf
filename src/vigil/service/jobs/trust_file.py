"""The trust policy file an operator points the service at (``--trust-file``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from vigil.policy.trust import TrustPolicy
from vigil.policy.trust_doc import PolicyFileError, parse_policy_text

if TYPE_CHECKING:
    from sqlalchemy import Engine


def load_policy_file(path: str | Path) -> TrustPolicy:
    """Read and parse the file; PolicyFileError names the file and the field at fault."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise PolicyFileError(f"trust policy file {path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise PolicyFileError(f"trust policy file {path}: not UTF-8 text (byte {exc.start})") from None
    return parse_policy_text(text, str(path))


def apply_policy_file(path: Path, engine: Engine) -> None:
    """Replace the stored trust policy with the file's, recording the file as the actor."""
    # Imported here: `vigil image check --policy` reads the same file and has no store.
    from vigil.service.store.policy import replace_policy

    policy = load_policy_file(path)
    with engine.begin() as conn:
        replace_policy(conn, policy, actor=f"file:{path}")
