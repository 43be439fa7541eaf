"""RPM packages from the rpm database in whichever of its three formats is present: sqlite
``rpmdb.sqlite`` (RPM 4.16+: Fedora 33+, RHEL 9, ...), SUSE's ndb ``Packages.db`` (SLES 15,
openSUSE) and Berkeley DB hash ``Packages`` (RHEL/CentOS up to 8, Amazon Linux 2, ...). All three
store the same rpm headers (``rpmheader``)."""

from __future__ import annotations

import mmap
import shutil
import sqlite3
import stat
import time
from collections.abc import Iterator

from vigil.catalog.berkeleydb import BerkeleyDBError, UnsupportedBerkeleyDB, read_hash_records
from vigil.catalog.catalogers.base import CatalogContext, reading
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
from vigil.catalog.rpmndb import NdbError, read_ndb_blobs

RPMDB_DIRS = ("/var/lib/rpm", "/usr/lib/sysimage/rpm")
SQLITE, NDB, BDB = "sqlite", "ndb", "Berkeley DB"
# The files of each format, in the order rpm's own backend detection prefers them: a directory
# converted to a newer format may keep the older file, and rpm then reads the newer one.
FORMAT_FILES = (("rpmdb.sqlite", SQLITE), ("Packages.db", NDB), ("Packages", BDB))
RPMDB_PATHS = tuple(f"{d}/{f}" for d in RPMDB_DIRS for f, _fmt in FORMAT_FILES)
_SIDECARS = ("-wal", "-shm")
_BDB_INSTANCE_COUNTER = b"\0\0\0\0"  # the key of the record holding the next instance number

# One package header from a database: where in the file (for warnings) and its bytes.
HeaderBlobs = Iterator[tuple[str, object]]


class RpmCataloger:
    name = "rpmdb"
    version = 1

    def keeps(self, path: str, mode: int, head: bytes) -> bool:
        return any(path == p or (path.startswith(p) and path[len(p) :] in _SIDECARS) for p in RPMDB_PATHS)

    def catalog(self, view: FileView, ctx: CatalogContext) -> list[Package]:
        out: list[Package] = []
        for n, directory in enumerate(RPMDB_DIRS):
            present = [(f"{directory}/{f}", fmt) for f, fmt in FORMAT_FILES]
            present = [(path, fmt) for path, fmt in present if view.regular_file(path) == path]
            if not present:
                continue
            db_path, fmt = present[0]
            for other, other_fmt in present[1:]:
                ctx.warnings.warn(
                    other, None, f"rpm database in {other_fmt} format not read: {db_path} ({fmt}) is the one rpm reads"
                )
            with reading(ctx, db_path, f"rpm database in {fmt} format"):
                try:
                    if fmt == SQLITE:
                        out.extend(self._read_sqlite(view, db_path, ctx, n))
                    else:
                        out.extend(self._read_paged(view, db_path, fmt, ctx))
                except LimitExceeded as exc:
                    ctx.warnings.warn_incomplete(db_path, None, f"rpm database not read to its end: {exc}")
                except sqlite3.Error as exc:
                    ctx.warnings.unreadable(db_path, f"rpm database not readable, skipped: {exc}")
        return out

    def _read_sqlite(self, view: FileView, db_path: str, ctx: CatalogContext, n: int) -> list[Package]:
        # Copy with the sidecars under their real names: committed rows may
        # still be in the -wal file, and sqlite finds it by name only.
        copy_dir = ctx.workdir / f"rpmdb-{n}"
        copy_dir.mkdir(exist_ok=True)
        shutil.copyfile(view.local_path(db_path), copy_dir / "rpmdb.sqlite")
        for suffix in _SIDECARS:
            if view.regular_file(db_path + suffix) == db_path + suffix:
                shutil.copyfile(view.local_path(db_path + suffix), copy_dir / f"rpmdb.sqlite{suffix}")
        return self._read_db(str(copy_dir / "rpmdb.sqlite"), db_path, ctx)

    def _read_paged(self, view: FileView, db_path: str, fmt: str, ctx: CatalogContext) -> list[Package]:
        """An ndb or Berkeley DB file, mapped read-only: the readers check every offset against it."""
        out: list[Package] = []
        limit = ctx.budget.limits.max_archive_entry_bytes
        with view.open(db_path) as f:
            size = f.seek(0, 2)
            if size == 0:
                ctx.warnings.unreadable(db_path, f"rpm database in {fmt} format not read: the file is empty")
                return out
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                try:
                    blobs = self._ndb_blobs(data, limit) if fmt == NDB else self._bdb_blobs(data, limit)
                    for entry, blob in blobs:
                        ctx.budget.check_deadline()
                        pkg = self._package(entry, blob, db_path, ctx)
                        if pkg is not None:
                            out.append(pkg)
                except UnsupportedBerkeleyDB as exc:
                    ctx.warnings.unreadable(db_path, f"rpm database in {fmt} format not read: {exc}")
                except (BerkeleyDBError, NdbError) as exc:
                    how = "read only in part" if out else "not read"
                    ctx.warnings.unreadable(db_path, f"rpm database in {fmt} format {how}, corrupt: {exc}")
        return out

    @staticmethod
    def _bdb_blobs(data: mmap.mmap, limit: int) -> HeaderBlobs:
        for record in read_hash_records(data, limit):
            if record.key == _BDB_INSTANCE_COUNTER:
                continue
            entry = f"Packages record on page {record.page}"
            yield entry, record.value if record.error is None else HeaderError(record.error)

    @staticmethod
    def _ndb_blobs(data: mmap.mmap, limit: int) -> HeaderBlobs:
        for blob in read_ndb_blobs(data, limit):
            entry = f"package {blob.package_index}"
            yield entry, blob.value if blob.error is None else HeaderError(blob.error)

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
                pkg = self._package(f"Packages row {hnum}", blob, db_path, ctx)
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

    def _package(self, entry: str, blob: object, db_path: str, ctx: CatalogContext) -> Package | None:
        os = ctx.os
        namespace = os.id if os is not None else "redhat"
        if isinstance(blob, HeaderError):
            ctx.warnings.warn(db_path, entry, f"corrupt header skipped: {blob}")
            return None
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
            cataloger=self.name,
            found_in=db_path,
            source_name=source[0] if source else None,
            source_version=source[1] if source else None,
            arch=arch,
            files=files,
            metadata={k: v for k, v in (("vendor", h.string(TAG_VENDOR)), ("license", h.string(TAG_LICENSE))) if v},
        )
