"""Ruby gems installed by RubyGems or Bundler: ``specifications/*.gemspec`` (and
``specifications/default/*.gemspec``, the gems that ship with Ruby), the stub specs RubyGems
writes for every installed gem. They are Ruby code; only the literal assignments RubyGems writes
are read (``s.name = "rake".freeze``, ``s.name = %q{rake}``, ``s.version = "13.0.6"``, ``s.platform = "x86_64-linux"``),
never evaluated."""

from __future__ import annotations

import re

from vigil.catalog.catalogers.base import CatalogContext, reading
from vigil.catalog.fsview import FileView
from vigil.catalog.model import Package
from vigil.catalog.purls import gem_purl

_GEMSPEC = re.compile(r"/specifications/(?:default/)?[^/]+\.gemspec$")
# RubyGems writes "value" (with .freeze since 2.x); older versions wrote %q{value}.
_FIELD = re.compile(
    r"""^\s*\w+\.(name|version|platform)\s*=\s*(?:Gem::Version\.new\(\s*)?(?:(["'])([^"'\n]+)\2|%q\{([^}\n]+)\})""",
    re.M,
)
_STUB = re.compile(r"^# stub: (\S+) (\S+)(?: (\S+))?", re.M)
MAX_GEMSPEC_BYTES = 1 << 20  # a stub spec is a few KiB; its files list the most of it


class RubyGemCataloger:
    name = "ruby-gemspec"
    version = 1

    def keeps(self, path: str, mode: int, head: bytes) -> bool:
        return bool(_GEMSPEC.search(path))

    def catalog(self, view: FileView, ctx: CatalogContext) -> list[Package]:
        out: list[Package] = []
        for path, _entry in sorted(view.iter_files()):
            if not _GEMSPEC.search(path):
                continue
            with reading(ctx, path, "gemspec"):
                pkg = self._gem(view, path, ctx)
                if pkg is not None:
                    out.append(pkg)
        return out

    def _gem(self, view: FileView, path: str, ctx: CatalogContext) -> Package | None:
        try:
            text = view.read_bytes(path, limit=MAX_GEMSPEC_BYTES).decode("utf-8", "replace")
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            ctx.warnings.unreadable(path, f"gemspec skipped: {exc}")
            return None
        fields: dict[str, str] = {}
        for m in _FIELD.finditer(text):
            fields.setdefault(m.group(1), m.group(3) or m.group(4))
        stub = _STUB.search(text)
        if stub and not (fields.get("name") and fields.get("version")):
            fields = {"name": stub.group(1), "version": stub.group(2), "platform": stub.group(3) or "ruby"}
        name, version = fields.get("name"), fields.get("version")
        if not name or not version:
            ctx.warnings.warn(path, None, "gemspec skipped: no literal name and version assignment")
            return None
        platform = fields.get("platform")
        platform = None if platform in (None, "ruby") else platform
        return Package(
            type="gem",
            name=name,
            version=version,
            purl=gem_purl(name, version, platform),
            ecosystem="RubyGems",
            cataloger=self.name,
            found_in=path,
            files=[path],
            metadata={"platform": platform, "default_gem": "/specifications/default/" in path},
        )
