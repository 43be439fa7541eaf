"""Checks of the files and directories a command is given, made before it does anything with them.

Each failure is a ``BadPath`` (a ValueError) whose message names the option and the path, so a command
refuses bad input with one line instead of failing halfway (after contacting a service, say) with the
system's error text.
"""

from __future__ import annotations

import os
from pathlib import Path


class BadPath(ValueError):
    """A path given to a command that cannot serve; the message names the option and the path."""


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return Path("/")


def input_file(path: Path, option: str) -> Path:
    """``path`` if it is a file this process can read."""
    if path.is_dir():
        raise BadPath(f"{option} {path}: is a directory, not a file")
    if not path.exists():
        raise BadPath(f"{option} {path}: no such file")
    if not os.access(path, os.R_OK):
        raise BadPath(f"{option} {path}: not readable")
    return path


def input_dir(path: Path, option: str) -> Path:
    """``path`` if it is a directory this process can read."""
    if not path.exists():
        raise BadPath(f"{option} {path}: no such directory")
    if not path.is_dir():
        raise BadPath(f"{option} {path}: not a directory")
    return path


def output_file(path: Path, option: str, *, make_dir: bool = False) -> Path:
    """``path`` if a file can be written there: not a directory, in a directory that exists (or, with
    ``make_dir``, is made)."""
    if path.is_dir():
        raise BadPath(f"{option} {path}: is a directory, not a file")
    parent = path.parent
    if make_dir:
        problem = _make_dir(parent)
        if problem is not None:
            raise BadPath(f"{option} {path}: its directory {parent}: {problem}")
    elif not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise BadPath(f"{option} {path}: its directory {parent} {what}")
    if not os.access(parent, os.W_OK):
        raise BadPath(f"{option} {path}: its directory {parent} is not writable")
    return path


def input_path(path: Path, option: str) -> Path:
    """``path`` if it is a file or a directory this process can read."""
    if not path.exists():
        raise BadPath(f"{option} {path}: no such file or directory")
    if not os.access(path, os.R_OK):
        raise BadPath(f"{option} {path}: not readable")
    return path


def _make_dir(path: Path) -> str | None:
    """Makes ``path`` (with its parents) if missing; what stands in the way, if anything."""
    if path.exists() and not path.is_dir():
        return "not a directory"
    existing = _nearest_existing(path)
    if not existing.is_dir():
        return f"{existing} is not a directory"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot be made: {exc.strerror}"
    return None


def output_dir(path: Path, option: str) -> Path:
    """``path`` as a directory, made (with its parents) if missing."""
    problem = _make_dir(path)
    if problem is not None:
        raise BadPath(f"{option} {path}: {problem}")
    return path


def store_file(path: Path, option: str) -> Path:
    """``path`` as a file to open for reading and writing (a database): not a directory, in a directory that
    is made if missing. Whether its content is a database is for the store to say."""
    output_file(path, option, make_dir=True)
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise BadPath(f"{option} {path}: not readable and writable")
    return path


def kubeconfig_file(path: Path, option: str = "--kubeconfig") -> Path:
    """``path`` if it is readable and looks like a kubeconfig (YAML with a clusters list)."""
    import yaml

    input_file(path, option)
    try:
        doc = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError):
        raise BadPath(f"{option} {path}: not a kubeconfig (not YAML)") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("clusters"), list):
        raise BadPath(f"{option} {path}: not a kubeconfig (no clusters list)")
    return path


def ca_file(path: Path, option: str) -> Path:
    """``path`` if it is readable and holds PEM certificates that TLS can trust."""
    import ssl

    input_file(path, option)
    try:
        ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, ValueError, UnicodeDecodeError):
        raise BadPath(f"{option} {path}: holds no PEM certificate") from None
    return path
