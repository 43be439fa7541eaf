"""Rust binaries built with cargo-auditable: the crates compiled in, from the ``.dep-v0`` ELF
section the tool embeds (zlib-compressed JSON: ``{"packages": [{"name", "version", "source",
"kind", "dependencies", "root"}]}``, rust-secure-code/cargo-auditable, ``PARSING.md``).

Listed: the crates from crates.io (``"source": "crates.io"``) of kind ``runtime`` (the default),
the ones linked into the binary. Build-time crates (``"kind": "build"``: build scripts and proc
macros) never run in the image, and crates from a path, git or another registry are not in the
crates.io advisory database; they are not listed."""

from __future__ import annotations

import mmap
import zlib

from vigil.catalog.catalogers.base import CatalogContext, reading
from vigil.catalog.elfsections import ELF_MAGIC, ElfError, section
from vigil.catalog.fsview import FileView
from vigil.catalog.jsoninput import JsonInputError, load_json
from vigil.catalog.model import Package
from vigil.catalog.purls import cargo_purl

SECTION = ".dep-v0"
MAX_SECTION_BYTES = 8 << 20  # compressed; a binary of a thousand crates has a few dozen KiB
MAX_INFLATED_BYTES = 64 << 20
_ANY_EXEC = 0o111


def inflate(data: bytes, limit: int) -> bytes:
    d = zlib.decompressobj()
    out = d.decompress(data, limit + 1)
    if len(out) > limit or d.unconsumed_tail:
        raise ValueError(f"inflates past {limit} bytes")
    return out


class CargoAuditableCataloger:
    name = "rust-cargo-auditable"
    version = 1

    def keeps(self, path: str, mode: int, head: bytes) -> bool:
        return bool(mode & _ANY_EXEC) and head.startswith(ELF_MAGIC)

    def catalog(self, view: FileView, ctx: CatalogContext) -> list[Package]:
        out: list[Package] = []
        for path, entry in sorted(view.iter_files()):
            if entry.mode & _ANY_EXEC and entry.size >= 64:
                with reading(ctx, path, "cargo-auditable dependencies"):
                    out.extend(self._binary(view, path, ctx))
        return out

    def _binary(self, view: FileView, path: str, ctx: CatalogContext) -> list[Package]:
        try:
            with view.open(path) as f:
                if f.read(4) != ELF_MAGIC:
                    return []
                with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                    raw = section(data, SECTION)
            if raw is None:
                return []
            if len(raw) > MAX_SECTION_BYTES:
                raise ValueError(f"section of {len(raw)} bytes, more than {MAX_SECTION_BYTES}")
            doc = load_json(inflate(raw, MAX_INFLATED_BYTES))
        except (FileNotFoundError, ElfError):
            # An executable whose section table is cut off or malformed is broken for every
            # reader; the Go cataloger reads the same files and says so where it matters.
            return []
        except (OSError, ValueError, zlib.error) as exc:
            reason = exc if isinstance(exc, JsonInputError) else f"not read ({exc})"
            ctx.warnings.unreadable(path, f"cargo-auditable dependencies skipped: {reason}", SECTION)
            return []
        return self._packages(doc, path, ctx)

    def _packages(self, doc: object, path: str, ctx: CatalogContext) -> list[Package]:
        crates = doc.get("packages") if isinstance(doc, dict) else None
        if not isinstance(crates, list):
            ctx.warnings.warn(path, SECTION, "cargo-auditable dependencies skipped: no 'packages' list")
            return []
        out = []
        for i, crate in enumerate(crates):
            if not isinstance(crate, dict):
                ctx.warnings.warn(path, f"{SECTION} packages[{i}]", "crate skipped: not an object")
                continue
            name, version = crate.get("name"), crate.get("version")
            if not isinstance(name, str) or not name or not isinstance(version, str) or not version:
                ctx.warnings.warn(path, f"{SECTION} packages[{i}]", "crate skipped: no string 'name' and 'version'")
                continue
            if crate.get("source") != "crates.io" or crate.get("kind", "runtime") != "runtime":
                continue
            out.append(
                Package(
                    type="cargo",
                    name=name,
                    version=version,
                    purl=cargo_purl(name, version),
                    ecosystem="crates.io",
                    cataloger=self.name,
                    found_in=path,
                    files=[path],
                    metadata={"root": bool(crate.get("root"))},
                )
            )
        return out
