""".NET dependencies: ``*.deps.json``, which the .NET SDK writes beside every application and the
host reads to load its assemblies. Its ``libraries`` of type ``package`` are NuGet packages, and
those of type ``runtimepack`` the runtime a self-contained application carries (NuGet packages
too: ``Microsoft.NETCore.App.Runtime.linux-x64``). The application's own ``project`` and
``referenceassembly`` entries are not packages of a registry and are not listed."""

from __future__ import annotations

from vigil.catalog.catalogers.base import CatalogContext, reading
from vigil.catalog.fsview import FileView
from vigil.catalog.jsoninput import JsonInputError, load_json
from vigil.catalog.model import Package
from vigil.catalog.purls import nuget_purl

MAX_DEPS_JSON_BYTES = 32 << 20  # an ASP.NET application's is a few hundred KiB
_REGISTRY_TYPES = {"package": "", "runtimepack": "runtimepack."}


class DotnetDepsCataloger:
    name = "dotnet-deps"
    version = 1

    def keeps(self, path: str, mode: int, head: bytes) -> bool:
        return path.endswith(".deps.json")

    def catalog(self, view: FileView, ctx: CatalogContext) -> list[Package]:
        out: list[Package] = []
        for path, _entry in sorted(view.iter_files()):
            if path.endswith(".deps.json"):
                with reading(ctx, path, "deps.json"):
                    out.extend(self._deps(view, path, ctx))
        return out

    def _deps(self, view: FileView, path: str, ctx: CatalogContext) -> list[Package]:
        try:
            doc = load_json(view.read_bytes(path, limit=MAX_DEPS_JSON_BYTES))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            reason = exc if isinstance(exc, JsonInputError) else f"not read ({exc})"
            ctx.warnings.unreadable(path, f"deps.json skipped: {reason}")
            return []
        libraries = doc.get("libraries") if isinstance(doc, dict) else None
        if not isinstance(libraries, dict):
            ctx.warnings.warn(path, None, "deps.json skipped: no 'libraries' object")
            return []
        out = []
        for key, library in libraries.items():
            kind = library.get("type") if isinstance(library, dict) else None
            prefix = _REGISTRY_TYPES.get(kind) if isinstance(kind, str) else None
            if prefix is None:
                continue
            name, sep, version = key.partition("/")
            if not sep or not name or not version:
                ctx.warnings.warn(path, key, "library skipped: its key is not 'name/version'")
                continue
            name = name.removeprefix(prefix)
            sha512 = library.get("sha512")
            out.append(
                Package(
                    type="nuget",
                    name=name,
                    version=version,
                    purl=nuget_purl(name, version),
                    ecosystem="NuGet",
                    cataloger=self.name,
                    found_in=path,
                    files=[path],
                    metadata={"library_type": kind, "sha512": sha512 if isinstance(sha512, str) else None},
                )
            )
        return out
