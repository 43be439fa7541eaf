"""Load Kubernetes objects from JSON/YAML files into the store (what ``--load DIR`` does)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from .store import ApiStore

log = logging.getLogger(__name__)
_SUFFIXES = {".json", ".yaml", ".yml"}


class LoadError(ValueError):
    pass


def documents(path: Path) -> Iterator[dict[str, Any]]:
    """The objects in one file: JSON, multi-document YAML, or a ``List`` of items."""
    text = path.read_text(encoding="utf-8")
    try:
        docs = [json.loads(text)] if path.suffix == ".json" else list(yaml.safe_load_all(text))
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise LoadError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
    for doc in docs:
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise LoadError(f"{path}: a document is a {type(doc).__name__}, not a Kubernetes object")
        if str(doc.get("kind", "")).endswith("List") and isinstance(doc.get("items"), list):
            yield from doc["items"]
        else:
            yield doc


def load_directory(store: ApiStore, folder: Path) -> int:
    """Create every object under ``folder`` (recursively, files in name order); returns the count.

    Namespaces named by objects are created first, as a cluster would have them.
    A file that cannot be parsed, or an object the server refuses, is an error naming the file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise LoadError(f"{folder}: not a directory")
    count = 0
    # Where each object was first defined: a second definition would be an update of the first, and the
    # store's answer (a UID precondition failure) would not say which files collide.
    defined: dict[tuple[str, str, str, str], Path] = {}
    for path in sorted(p for p in folder.rglob("*") if p.suffix in _SUFFIXES and p.is_file()):
        for obj in documents(path):
            meta = obj.get("metadata") or {}
            key = (str(obj.get("apiVersion", "")), str(obj.get("kind")), str(meta.get("namespace") or ""),
                   str(meta.get("name")))  # fmt: skip
            if key in defined:
                where = f"{key[2]}/{key[3]}" if key[2] else key[3]
                raise LoadError(f"{key[1]} {where} is defined twice: in {defined[key]} and in {path}")
            defined[key] = path
            try:
                store.apply(obj)
            except Exception as exc:
                raise LoadError(
                    f"{path}: {obj.get('kind')} {(obj.get('metadata') or {}).get('name')!r}: {exc}"
                ) from None
            count += 1
    return count
