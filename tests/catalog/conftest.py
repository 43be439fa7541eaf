"""Real parts for the catalog tests: a debootstrap'ed Debian rootfs, PyPI
wheels installed with pip, Go binaries from Debian and from the Go toolchain,
a Java archive from a Debian package. Each is built once and cached in
``$VIGIL_TEST_CACHE`` (default ``~/.cache/vigil-test``); a missing tool or
mirror makes the tests that need it skip, naming what is missing."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
PKGDB = SHARED_DATA / "pkgdb"
PIP_REQUIREMENTS = ("urllib3==1.26.4", "Jinja2==2.10", "idna==2.8")


def cache_dir() -> Path:
    d = Path(os.environ.get("VIGIL_TEST_CACHE") or Path.home() / ".cache" / "vigil-test")
    d.mkdir(parents=True, exist_ok=True)
    return d


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (deb822 or one-line sources)."""
    candidates = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in candidates:
        if not path.is_file() or not (path.suffix in (".list", ".sources") or path.name == "sources.list"):
            continue
        text = path.read_text(errors="replace")
        for m in re.finditer(r"^URIs:\s*(\S+)", text, re.M):
            if "security" not in m.group(1) and "debian" in m.group(1):
                return m.group(1)
        for m in re.finditer(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", text, re.M):
            if "security" not in m.group(1) and "debian" in m.group(1):
                return m.group(1)
    return "http://deb.debian.org/debian"


@pytest.fixture(scope="session")
def debian_rootfs() -> Path:
    target = cache_dir() / "debian-rootfs"
    if (target / "var" / "lib" / "dpkg" / "status").is_file():
        return target
    if shutil.which("debootstrap") is None:
        pytest.skip("debootstrap is not installed (apt-get install debootstrap)")
    if os.geteuid() != 0:
        pytest.skip("debootstrap needs root to build the cached Debian rootfs")
    work = cache_dir() / "debian-rootfs.partial"
    shutil.rmtree(work, ignore_errors=True)
    mirror = debian_mirror()
    proc = subprocess.run(
        ["debootstrap", "--variant=minbase", "bookworm", str(work), mirror], capture_output=True, text=True, timeout=900
    )
    if proc.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        pytest.skip(f"debootstrap could not build bookworm from {mirror}: {proc.stderr.strip()[-300:]}")
    work.rename(target)
    return target


@pytest.fixture(scope="session")
def python_site() -> Path:
    """A dist-packages dir with PyPI wheels at old versions (and their deps)."""
    target = cache_dir() / ("pip-" + "-".join(r.replace("==", "_") for r in PIP_REQUIREMENTS)) / "dist-packages"
    if target.is_dir() and any(target.glob("*.dist-info")):
        return target
    tmp = target.parent / "partial"
    shutil.rmtree(tmp, ignore_errors=True)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-compile",
            "--only-binary=:all:",
            "--target",
            str(tmp),
            *PIP_REQUIREMENTS,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        pytest.skip(f"pip could not install {PIP_REQUIREMENTS} from PyPI: {proc.stderr.strip()[-300:]}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(target)
    return target


def go_tool() -> str:
    go = shutil.which("go")
    if go is None:
        pytest.skip("the Go toolchain is not installed (apt-get install golang-go)")
    return go


@pytest.fixture(scope="session")
def debian_go_binary() -> Path:
    """A Go binary shipped by a Debian package: gofmt from golang-1.19-go."""
    go = go_tool()
    goroot = subprocess.run([go, "env", "GOROOT"], capture_output=True, text=True, check=True).stdout.strip()
    gofmt = Path(goroot) / "bin" / "gofmt"
    if not gofmt.is_file():
        pytest.skip(f"{gofmt} is missing from the Go toolchain package")
    return gofmt


ERRORS_SRC = Path("/usr/share/gocode/src/github.com/pkg/errors")


@pytest.fixture(scope="session")
def go_module_binary(tmp_path_factory) -> Path:
    """A module-mode Go program with one dependency, vendored from Debian's
    golang-github-pkg-errors-dev (no module proxy is reachable)."""
    go = go_tool()
    if not (ERRORS_SRC / "errors.go").is_file():
        pytest.skip("golang-github-pkg-errors-dev is not installed (source of the vendored dependency)")
    src = tmp_path_factory.mktemp("gomod")
    (src / "go.mod").write_text("module example.com/vigil/hello\n\ngo 1.19\n\nrequire github.com/pkg/errors v0.9.1\n")
    (src / "main.go").write_text(
        'package main\n\nimport (\n\t"fmt"\n\n\t"github.com/pkg/errors"\n)\n\n'
        'func main() { fmt.Println(errors.New("hello")) }\n'
    )
    vendored = src / "vendor" / "github.com" / "pkg" / "errors"
    vendored.mkdir(parents=True)
    for f in ERRORS_SRC.glob("*.go"):
        if not f.name.endswith("_test.go"):
            shutil.copy(f, vendored / f.name)
    (src / "vendor" / "modules.txt").write_text("# github.com/pkg/errors v0.9.1\n## explicit\ngithub.com/pkg/errors\n")
    out = src / "hello"
    env = dict(os.environ, GOFLAGS="-mod=vendor", GOPROXY="off", GOCACHE=str(src / ".cache"), CGO_ENABLED="0")
    proc = subprocess.run(
        [go, "build", "-o", str(out), "."], cwd=src, env=env, capture_output=True, text=True, timeout=240
    )
    if proc.returncode != 0:
        pytest.fail(f"go build failed: {proc.stderr}")
    return out


def go_version_m(binary: Path) -> tuple[str, list[list[str]]]:
    """``go version -m``: (Go version, tab-split info lines)."""
    out = subprocess.run([go_tool(), "version", "-m", str(binary)], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    version = lines[0].split(": ", 1)[1].strip()
    return version, [line.strip().split("\t") for line in lines[1:]]


@pytest.fixture(scope="session")
def commons_lang3_jar() -> Path:
    jar = Path("/usr/share/java/commons-lang3.jar")
    if not jar.exists():
        pytest.skip("libcommons-lang3-java is not installed (apt-get install libcommons-lang3-java)")
    return jar.resolve()


_GO_RECIPE = (
    "go build -o, buildvcs by checkout, GOARCH=amd64 CGO_ENABLED=0"  # in the cache key: change it with the recipe
)


def build_go_program(
    name: str, main_go: str, *, ldflags: str = "", goos: str = "linux", git_commit_time: str | None = None
) -> Path:
    """A one-file module-mode Go program built with the installed toolchain, cached in the test
    cache by the hash of its source and build options (a rebuild takes a minute on this machine).
    With ``git_commit_time``, it is built from a git checkout committed at that time, so the
    toolchain stamps vcs.revision and vcs.time into its build info."""
    go = go_tool()
    key = hashlib.sha256(
        "\0".join((_GO_RECIPE, name, main_go, ldflags, goos, git_commit_time or "", go_toolchain_version(go))).encode()
    ).hexdigest()[:16]
    target = cache_dir() / f"go-{name}-{key}" / name
    if target.is_file():
        return target
    src = target.parent.with_name(target.parent.name + ".partial")
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    (src / "go.mod").write_text(f"module example.com/vigil/{name}\n\ngo 1.19\n")
    (src / "main.go").write_text(main_go)
    # The build cache and the output stay outside the checkout: untracked files would stamp it modified.
    out = src.with_name(src.name + ".out")
    env = dict(os.environ, GOPROXY="off", GOCACHE=str(cache_dir() / "gocache"), CGO_ENABLED="0", GOOS=goos)
    env["GOARCH"] = "amd64"
    args = [go, "build", "-o", str(out)]  # no -trimpath: with it the toolchain leaves -ldflags out
    if git_commit_time is not None:
        git_env = dict(
            env,
            GIT_AUTHOR_DATE=git_commit_time,
            GIT_COMMITTER_DATE=git_commit_time,
            GIT_AUTHOR_NAME="vigil",
            GIT_AUTHOR_EMAIL="vigil@example.com",
            GIT_COMMITTER_NAME="vigil",
            GIT_COMMITTER_EMAIL="vigil@example.com",
        )
        for git_args in (["init", "-q"], ["add", "go.mod", "main.go"], ["commit", "-q", "-m", "source"]):
            subprocess.run(["git", *git_args], cwd=src, env=git_env, check=True, capture_output=True)
        args.append("-buildvcs=true")
    else:
        args.append("-buildvcs=false")
    if ldflags:
        args.append(f"-ldflags={ldflags}")
    proc = subprocess.run([*args, "."], cwd=src, env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.fail(f"go build of {name} failed: {proc.stderr}")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(out), target)
    shutil.rmtree(src, ignore_errors=True)
    return target


def go_toolchain_version(go: str) -> str:
    return subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=True).stdout.strip()
