"""PHP packages Composer installed: ``vendor/composer/installed.json``, Composer 2's object
(``{"packages": [...], "dev-package-names": [...]}``) or Composer 1's list of packages. Each
package is one with its ``name`` (``vendor/project``) and ``version`` as Composer wrote them."""

from __future__ import annotations

import re

from vigil.catalog.catalogers.base import CatalogContext, reading
from vigil.catalog.fsview import FileView
from vigil.catalog.jsoninput import JsonInputError, load_json
from vigil.catalog.model import Package
from vigil.catalog.purls import composer_purl

_INSTALLED = re.compile(r"/vendor/composer/installed\.json$")
MAX_INSTALLED_JSON_BYTES = 64 << 20  # a few hundred packages take a few MiB


class ComposerCataloger:
    name = "php-composer"
    version = 1

    def keeps(self, path: str, mode: int, head: bytes) -> bool:
        return bool(_INSTALLED.search(path))

    def catalog(self, view: FileView, ctx: CatalogContext) -> list[Package]:
        out: list[Package] = []
        for path, _entry in sorted(view.iter_files()):
            if _INSTALLED.search(path):
                with reading(ctx, path, "installed.json"):
                    out.extend(self._installed(view, path, ctx))
        return out

    def _installed(self, view: FileView, path: str, ctx: CatalogContext) -> list[Package]:
        try:
            doc = load_json(view.read_bytes(path, limit=MAX_INSTALLED_JSON_BYTES))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            reason = exc if isinstance(exc, JsonInputError) else f"not read ({exc})"
            ctx.warnings.unreadable(path, f"installed.json skipped: {reason}")
            return []
        dev: set[str] = set()
        if isinstance(doc, dict):
            names = doc.get("dev-package-names")
            dev = {n for n in names if isinstance(n, str)} if isinstance(names, list) else set()
            doc = doc.get("packages")
        if not isinstance(doc, list):
            ctx.warnings.warn(path, None, "installed.json skipped: no list of packages")
            return []
        out = []
        for i, item in enumerate(doc):
            name = item.get("name") if isinstance(item, dict) else None
            version = item.get("version") if isinstance(item, dict) else None
            if not isinstance(name, str) or not name or not isinstance(version, str) or not version:
                ctx.warnings.warn(path, f"packages[{i}]", "package skipped: no string 'name' and 'version'")
                continue
            out.append(
                Package(
                    type="composer",
                    name=name,
                    version=version,
                    purl=composer_purl(name, version),
                    ecosystem="Packagist",
                    cataloger=self.name,
                    found_in=path,
                    files=[path],
                    metadata={"dev": name in dev},
                )
            )
        return out
