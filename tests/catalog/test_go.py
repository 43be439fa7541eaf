"""Go binaries against ``go version -m``."""

from __future__ import annotations

import mmap
import shutil

import pytest

from vigil.catalog import catalog_rootfs
from vigil.catalog.gobuildinfo import find_header, parse_build_info

from .conftest import build_go_program, go_version_m


def expected_packages(binary):
    """(name, version) pairs as go version -m reports them: the main module
    (or the main package path in GOPATH mode), deps after replacement, and
    the toolchain as "stdlib"."""
    version, lines = go_version_m(binary)
    out = []
    mod = [line for line in lines if line[0] == "mod"]
    if mod:
        out.append((mod[0][1], mod[0][2]))
    else:
        out.extend((line[1], "") for line in lines if line[0] == "path")
    for i, line in enumerate(lines):
        if line[0] == "dep":
            nxt = lines[i + 1] if i + 1 < len(lines) else []
            out.append((nxt[1], nxt[2]) if nxt and nxt[0] == "=>" else (line[1], line[2]))
    out.append(("stdlib", version.removeprefix("go")))
    return sorted(out), version


def place(binary, tmp_path, image_path):
    root = tmp_path / "root"
    target = root / image_path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(binary, target)
    return root


def test_debian_packaged_go_binary(debian_go_binary, tmp_path):
    result = catalog_rootfs(place(debian_go_binary, tmp_path, "/usr/bin/gofmt"))
    expected, go_version = expected_packages(debian_go_binary)
    assert sorted((p.name, p.version) for p in result.packages) == expected
    assert result.warnings == []
    main = next(p for p in result.packages if p.metadata["role"] == "main")
    assert (main.name, main.found_in, main.files, main.ecosystem) == (
        "cmd/gofmt",
        "/usr/bin/gofmt",
        ["/usr/bin/gofmt"],
        "Go",
    )
    stdlib = next(p for p in result.packages if p.name == "stdlib")
    assert stdlib.metadata["go_version"] == go_version
    assert stdlib.purl == f"pkg:golang/stdlib@{go_version.removeprefix('go')}"


def test_module_binary_with_dependency(go_module_binary, tmp_path):
    result = catalog_rootfs(place(go_module_binary, tmp_path, "/usr/local/bin/hello"))
    expected, _ = expected_packages(go_module_binary)
    assert sorted((p.name, p.version) for p in result.packages) == expected
    assert ("github.com/pkg/errors", "v0.9.1") in expected  # the vendored dependency is in the build info
    dep = next(p for p in result.packages if p.name == "github.com/pkg/errors")
    assert dep.purl == "pkg:golang/github.com/pkg/errors@v0.9.1"
    assert dep.metadata["role"] == "dependency"
    main = next(p for p in result.packages if p.metadata["role"] == "main")
    assert (main.name, main.version) == ("example.com/vigil/hello", "(devel)")


def test_non_executable_elf_and_non_go_elf_are_not_go(debian_rootfs, tmp_path):
    bash = debian_rootfs / "usr/bin/bash"
    with bash.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        assert find_header(data) == -1
        assert parse_build_info(data) is None


def test_truncated_go_binary_is_a_warning(debian_go_binary, tmp_path):
    data = debian_go_binary.read_bytes()
    pos = find_header(data)
    assert pos > 0
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    cut = root / "bin/cut-short"
    cut.write_bytes(data[: pos + 34])  # header, then a varint length pointing past the end
    cut.chmod(0o755)
    result = catalog_rootfs(root)
    assert result.packages == []
    assert [str(w) for w in result.warnings] == [
        "/bin/cut-short: Go build info not readable, binary skipped: "
        "inline build info string runs past the end of the file"
    ]


@pytest.mark.parametrize("size", [0, 10])
def test_tiny_executables_are_ignored(tmp_path, size):
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "bin/x").write_bytes(b"\x7fELF"[:size] + b"\0" * max(0, size - 4))
    (root / "bin/x").chmod(0o755)
    assert catalog_rootfs(root).packages == []


HELLO = 'package main\n\nimport "fmt"\n\nvar version = "dev"\n\nfunc main() { fmt.Println(version) }\n'


def build_setting(binary, key: str) -> str:
    _, lines = go_version_m(binary)
    return next(line[1].partition("=")[2] for line in lines if line[0] == "build" and line[1].startswith(key + "="))


def test_main_module_version_from_a_linker_set_version_variable(tmp_path):
    binary = build_go_program("ldver", HELLO, ldflags="-X main.version=1.4.2 -s")
    # The referee: the linker flag as the toolchain recorded it, the module itself "(devel)".
    _, lines = go_version_m(binary)
    assert ["mod", "example.com/vigil/ldver", "(devel)"] == [line[:3] for line in lines if line[0] == "mod"][0]
    assert build_setting(binary, "-ldflags") == '"-X main.version=1.4.2 -s"'
    result = catalog_rootfs(place(binary, tmp_path, "/usr/local/bin/ldver"))
    assert result.warnings == []
    main = next(p for p in result.packages if p.metadata["role"] == "main")
    assert (main.name, main.version, main.purl, main.metadata["version_from"]) == (
        "example.com/vigil/ldver",
        "v1.4.2",
        "pkg:golang/example.com/vigil/ldver@v1.4.2",
        "ldflags",
    )


def test_main_module_version_from_vcs_build_settings(tmp_path):
    binary = build_go_program("vcsver", HELLO, git_commit_time="2023-01-02T15:04:05Z")
    revision, when = build_setting(binary, "vcs.revision"), build_setting(binary, "vcs.time")
    assert when == "2023-01-02T15:04:05Z" and len(revision) == 40
    assert build_setting(binary, "vcs.modified") == "false"
    result = catalog_rootfs(place(binary, tmp_path, "/usr/local/bin/vcsver"))
    main = next(p for p in result.packages if p.metadata["role"] == "main")
    assert (main.version, main.metadata["version_from"]) == (f"v0.0.0-20230102150405-{revision[:12]}", "vcs")


def test_a_version_variable_that_is_no_version_leaves_devel(tmp_path):
    binary = build_go_program("notver", HELLO, ldflags="-X main.version=snapshot")
    result = catalog_rootfs(place(binary, tmp_path, "/usr/local/bin/notver"))
    main = next(p for p in result.packages if p.metadata["role"] == "main")
    assert main.version == "(devel)" and "version_from" not in main.metadata


@pytest.mark.parametrize(
    ("goos", "image_path", "fmt"), [("darwin", "/opt/tool", "Mach-O"), ("windows", "/opt/tool.exe", "PE")]
)
def test_go_binaries_of_other_formats_are_named_not_skipped_silently(tmp_path, goos, image_path, fmt):
    binary = build_go_program("other", HELLO, goos=goos)
    go_version_m(binary)  # the referee reads it: it is a Go binary
    root = place(binary, tmp_path, image_path)
    (root / image_path.lstrip("/")).chmod(0o755 if goos == "darwin" else 0o644)
    result = catalog_rootfs(root)
    assert result.packages == []
    assert [str(w) for w in result.warnings] == [
        f"{image_path}: Go binary in {fmt} format not read: build info is read from ELF binaries only"
    ]
    assert result.unread == [image_path]
