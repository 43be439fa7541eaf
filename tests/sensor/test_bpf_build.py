"""The committed BPF object is what scripts/build-bpf makes from the committed source."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BPF_DIR = REPO / "src" / "vigil" / "sensor" / "bpf"


def _manifest() -> dict[str, str]:
    out = {}
    for line in (BPF_DIR / "vigil.bpf.manifest").read_text().splitlines():
        if line.startswith(("source:", "object:")):
            _, digest, name = line.split()
            out[name] = digest
    return out


def test_manifest_matches_committed_sources_and_object() -> None:
    recorded = _manifest()
    assert set(recorded) == {"vigil.bpf.c", "vigil_kernel.h", "vigil.bpf.o"}
    for name, digest in recorded.items():
        actual = hashlib.sha256((BPF_DIR / name).read_bytes()).hexdigest()
        assert actual == digest, f"{name} changed since the object was built: run scripts/build-bpf"


@pytest.mark.skipif(
    shutil.which("clang") is None or shutil.which("llvm-strip") is None,
    reason="clang/llvm missing (apt-get install clang llvm)",
)
@pytest.mark.skipif(
    not Path("/usr/include/bpf/bpf_helpers.h").exists(),
    reason="libbpf-dev headers missing (apt-get install libbpf-dev)",
)
def test_rebuild_is_byte_identical(tmp_path: Path) -> None:
    subprocess.run([str(REPO / "scripts" / "build-bpf"), "--out", str(tmp_path)], check=True, capture_output=True)
    assert (tmp_path / "vigil.bpf.o").read_bytes() == (BPF_DIR / "vigil.bpf.o").read_bytes(), (
        "committed vigil.bpf.o is stale: run scripts/build-bpf"
    )
    assert (tmp_path / "vigil.bpf.manifest").read_text() == (BPF_DIR / "vigil.bpf.manifest").read_text()
    assert (
        b"/work" not in (tmp_path / "vigil.bpf.o").read_bytes()
        and str(tmp_path).encode() not in (tmp_path / "vigil.bpf.o").read_bytes()
    )


def test_build_script_refuses_unknown_arguments() -> None:
    r = subprocess.run([str(REPO / "scripts" / "build-bpf"), "--bogus"], capture_output=True, text=True)
    assert r.returncode == 2
    assert "build-bpf: unknown argument '--bogus' (expected --out DIR)" in r.stderr
