"""RPM packages from the sqlite rpmdb (RPM 4.16+: Fedora 33+, RHEL 9, ...)."""

from __future__ import annotations

import shutil
import sqlite3
import stat
import time

from vigil.catalog.catalogers.base import CatalogContext
from vigil.catalog.fsview import FileView
from vigil.catalog.limits import LimitExceeded
from vigil.catalog.model import Package
from vigil.catalog.osrelease import os_ecosystem, purl_distro
from vigil.catalog.purls import os_package_purl
from vigil.catalog.rpmheader import (
    TAG_ARCH,
    TAG_EPOCH,
    TAG_FILEMODES,
    TAG_LICENSE,
    TAG_NAME,
    TAG_RELEASE,
    TAG_SOURCERPM,
    TAG_VENDOR,
    TAG_VERSION,
    HeaderError,
    parse_header_blob,
    split_source_rpm,
)

RPMDB_PATHS = ("/var/lib/rpm/rpmdb.sqlite", "/usr/lib/sysimage/rpm/rpmdb.sqlite")
_SIDECARS = ("-wal", "-shm")


class RpmCataloger:
    name = "rpm"
    version = 1

    def keeps(self, path: str, mode: int, head: bytes) -> bool:
        return any(path == p or (path.startswith(p) and path[len(p) :] in _SIDECARS) for p in RPMDB_PATHS)

    def catalog(self, view: FileView, ctx: CatalogContext) -> list[Package]:
        out: list[Package] = []
        for n, db_path in enumerate(RPMDB_PATHS):
            if view.regular_file(db_path) != db_path:
                continue
            # Copy with the sidecars under their real names: committed rows may
            # still be in the -wal file, and sqlite finds it by name only.
            copy_dir = ctx.workdir / f"rpmdb-{n}"
            copy_dir.mkdir(exist_ok=True)
            try:
                shutil.copyfile(view.local_path(db_path), copy_dir / "rpmdb.sqlite")
                for suffix in _SIDECARS:
                    if view.regular_file(db_path + suffix) == db_path + suffix:
                        shutil.copyfile(view.local_path(db_path + suffix), copy_dir / f"rpmdb.sqlite{suffix}")
                out.extend(self._read_db(str(copy_dir / "rpmdb.sqlite"), db_path, ctx))
            except LimitExceeded as exc:
                ctx.warnings.warn_incomplete(db_path, None, f"rpm database not read to its end: {exc}")
            except (OSError, sqlite3.Error) as exc:
                ctx.warnings.warn_incomplete(db_path, None, f"rpm database not readable, skipped: {exc}")
        return out

    def _read_db(self, local: str, db_path: str, ctx: CatalogContext) -> list[Package]:
        out: list[Package] = []
        budget = ctx.budget
        row_limit = budget.limits.max_archive_entry_bytes
        interrupted = False

        def over_deadline() -> int:
            # A hostile database can make a query run forever (a view that recurses, a generated
            # column that computes): sqlite calls this every few thousand steps, and a non-zero
            # answer interrupts the query.
            nonlocal interrupted
            interrupted = time.monotonic() - budget.started > budget.limits.deadline_seconds
            return 1 if interrupted else 0

        conn = sqlite3.connect(local)
        # A 40 KB database can declare a column of gigabytes (a generated zeroblob): no value may
        # be larger than one archive entry, so a row is refused before it is made.
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, min(row_limit, 1_000_000_000))
        conn.set_progress_handler(over_deadline, 1_000)
        try:
            kind = conn.execute("SELECT type FROM sqlite_master WHERE name = 'Packages'").fetchone()
            if kind is None or kind[0] != "table":
                raise sqlite3.DatabaseError("Packages is not a table")
            # Row by row, never all at once: the rows' sizes add up to the database's.
            for hnum, blob in conn.execute("SELECT hnum, blob FROM Packages ORDER BY hnum"):
                budget.check_deadline()
                pkg = self._package(hnum, blob, db_path, ctx)
                if pkg is not None:
                    out.append(pkg)
        except sqlite3.DataError as exc:
            if "too big" not in str(exc):
                raise
            raise LimitExceeded("max_archive_entry_bytes", row_limit, "a Packages row larger than that") from None
        except sqlite3.OperationalError:
            if interrupted:
                budget.check_deadline()  # raises LimitExceeded, naming the deadline
            raise
        finally:
            conn.close()
        return out

    def _package(self, hnum: object, blob: object, db_path: str, ctx: CatalogContext) -> Package | None:
        os = ctx.os
        namespace = os.id if os is not None else "redhat"
        entry = f"Packages row {hnum}"
        if not isinstance(blob, bytes):
            ctx.warnings.warn(db_path, entry, f"corrupt header skipped: a {type(blob).__name__}, not a blob")
            return None
        try:
            h = parse_header_blob(blob)
            files = h.file_paths()
            modes = h.ints(TAG_FILEMODES)
            if len(modes) == len(files):  # owned files, as dpkg's: directories left out
                files = [f for f, m in zip(files, modes, strict=True) if not stat.S_ISDIR(m)]
        except HeaderError as exc:
            ctx.warnings.warn(db_path, entry, f"corrupt header skipped: {exc}")
            return None
        name, version, release = h.string(TAG_NAME), h.string(TAG_VERSION), h.string(TAG_RELEASE)
        if not name or not version or release is None:
            ctx.warnings.warn(db_path, entry, "header skipped: no name, version or release")
            return None
        epoch = h.int(TAG_EPOCH)
        evr = f"{version}-{release}" if epoch is None else f"{epoch}:{version}-{release}"
        arch = h.string(TAG_ARCH)
        source = split_source_rpm(h.string(TAG_SOURCERPM) or "")
        return Package(
            type="rpm",
            name=name,
            version=evr,
            purl=os_package_purl(
                "rpm",
                namespace,
                name,
                f"{version}-{release}",
                arch=arch,
                distro=purl_distro(os),
                epoch=str(epoch) if epoch is not None else None,
                upstream=h.string(TAG_SOURCERPM),
            ),
            ecosystem=os_ecosystem(os),
            cataloger="rpm",
            found_in=db_path,
            source_name=source[0] if source else None,
            source_version=source[1] if source else None,
            arch=arch,
            files=files,
            metadata={k: v for k, v in (("vendor", h.string(TAG_VENDOR)), ("license", h.string(TAG_LICENSE))) if v},
        )
