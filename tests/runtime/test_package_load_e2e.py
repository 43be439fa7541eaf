"""Running vulnerabilities for interpreted code, on real parts: an image with two PyPI distributions (dist-info
with METADATA and RECORD, and their package files) pushed to a loopback docker-registry and scanned by the real
scanner, advisories for both matched by the service, a container run by containerd + runc, and the real
`vigil sensor` holding the node's runtime policy from the service's long poll, whose load watch lists both
packages' directories. Reading the first package's __init__.py makes its advisory a running_vulnerability;
the second stays a vulnerable_package, labelled not observed running after the watch period.

The image is busybox-based: busybox's ``cat`` stands in for the interpreter opening the module (no Python
interpreter in the image); what the sensor sees, an open for read of the package's file, is the same."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runtime_e2e import (
    analysis_idle,
    e2e_unavailable,
    exec_in,
    import_advisories,
    inventory_snapshot,
    new_container_ids,
    post_inventory,
    push_image,
    remove_container,
    run_container,
    runtime_findings,
    runtime_service,
    scan_and_match,
    start_sensor,
    wait_for,
    wait_for_cmdline,
    web_pod,
)

from vigil.service.store.prevention import compute_node_policy

_skip = e2e_unavailable()
pytestmark = pytest.mark.skipif(_skip is not None, reason=str(_skip))
NODE = "node-load-1"
DP = "/usr/lib/python3/dist-packages"
HIGH = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"  # 7.5 high
MEDIUM = "CVSS:3.1/AV:N/AC:H/PR:L/UI:N/S:U/C:L/I:L/A:N"


def dist(name: str, version: str, top: str) -> dict[str, bytes]:
    info = f"{DP}/{name}-{version}.dist-info"
    record = (
        f"{top}/__init__.py,,\n{top}/util.py,,\n{name}-{version}.dist-info/METADATA,,\n"
        f"{name}-{version}.dist-info/RECORD,,\n"
    )
    return {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/RECORD": record.encode(),
        f"{DP}/{top}/__init__.py": f"# {name} {version}\nfrom .util import *\n".encode(),
        f"{DP}/{top}/util.py": b"VALUE = 1\n",
    }


def load_watch(svc, cluster_id: str) -> list[list[str]]:
    with svc.engine.connect() as conn:
        return [w.paths for w in compute_node_policy(conn, cluster_id, NODE).load_watch]


def osv(id_: str, package: str, fixed: str, vector: str) -> dict:
    return {
        "schema_version": "1.6.0",
        "id": id_,
        "modified": "2026-01-01T00:00:00Z",
        "published": "2026-01-01T00:00:00Z",
        "aliases": [],
        "summary": f"test advisory for {package}",
        "severity": [{"type": "CVSS_V3", "score": vector}],
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": package},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}],
            }
        ],
    }


def debian_python3() -> dict[str, bytes]:
    """This machine's Debian python3.11 with the libraries it links and the files its start needs (the rest of
    its startup modules are frozen into the binary): a real interpreter for the image, about 13 MB."""
    files = {"/usr/bin/python3": Path("/usr/bin/python3.11").read_bytes()}
    for lib in ("libm.so.6", "libz.so.1", "libexpat.so.1", "libc.so.6"):
        files[f"/lib/x86_64-linux-gnu/{lib}"] = Path(f"/lib/x86_64-linux-gnu/{lib}").read_bytes()
    files["/lib64/ld-linux-x86-64.so.2"] = Path("/lib64/ld-linux-x86-64.so.2").read_bytes()
    stdlib = Path("/usr/lib/python3.11")
    for f in [stdlib / "os.py", *sorted((stdlib / "encodings").glob("*.py"))]:
        files[str(f)] = f.read_bytes()
    return files


def python_unavailable() -> str | None:
    needed = ["/usr/bin/python3.11", "/usr/lib/python3.11/encodings/__init__.py", "/lib64/ld-linux-x86-64.so.2"]
    missing = [p for p in needed if not Path(p).exists()]
    return f"this machine has no Debian python3.11 to put in the image: {', '.join(missing)}" if missing else None


# How the first package is read: busybox's cat standing in for an interpreter, and Debian's python3 importing it
# (its `from .util import *` loads the second module too).
READERS = {
    "cat": (["/bin/cat", f"{DP}/jinja2/__init__.py"], "/bin/cat", ["__init__.py"]),
    "python3": (["/usr/bin/python3", "-c", "import jinja2"], "/usr/bin/python3", ["__init__.py", "util.py"]),
}


# The same module opened again by this many processes of one executable (busybox's cat): counted in the kernel.
REPEATS = 200


@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_package_file_read_makes_its_advisory_running_the_other_stays(
    registry, containerd, tmp_path: Path, reader: str
) -> None:
    argv, exe, loaded = READERS[reader]
    extra = {**dist("Jinja2", "2.10", "jinja2"), **dist("PyYAML", "5.3", "yaml")}
    if reader == "python3":
        assert python_unavailable() is None, python_unavailable()
        extra.update(debian_python3())
    image = push_image(registry, tag=f"pyload-{reader}", extra=extra)
    containerd.ctr("images", "pull", "--plain-http", image.ref, timeout=120)
    svc = runtime_service(tmp_path / "data", registry, watch_period=2.0)
    try:
        import_advisories(
            svc,
            [osv("PYSEC-TEST-0001", "jinja2", "2.10.1", HIGH), osv("PYSEC-TEST-0002", "pyyaml", "5.4", MEDIUM)],
            tmp_path / "osv",
        )
        cluster_id, credential = svc.register("load-e2e")
        pod, cid = new_container_ids()
        post_inventory(svc, credential, inventory_snapshot(cluster_id, NODE, pods=[web_pod(pod, NODE, cid, image)]))
        scan_and_match(svc)
        packages = svc.list_all("/api/v1/findings", cluster=cluster_id, type="vulnerable_package")
        assert sorted(f["subject"].split(": ", 1)[1] for f in packages) == [
            "Jinja2 2.10 (PYSEC-TEST-0001)",
            "PyYAML 5.3 (PYSEC-TEST-0002)",
        ]
        sensor = start_sensor(svc, credential, cluster_id, NODE, tmp_path / "sensor")
        try:
            # The sensor holds the node's policy with its load watch once the service says it enforces it.
            nodes = lambda: svc.get("/api/v1/policy/runtime/nodes", cluster=cluster_id).json()["items"]  # noqa: E731
            wait_for("the sensor holding the node's policy", lambda: [n["state"] for n in nodes()] == ["enforcing"], 30)
            init = run_container(containerd, image, pod, cid)
            wait_for_cmdline(init, ["/bin/sleep", "300"])
            loaded_at = time.monotonic()
            exec_in(containerd, cid, "load", *argv)
            exec_in(containerd, cid, "other", "/bin/cat", "/app/run.sh")  # no package's file: not reported
            wait_for("running_vulnerability", lambda: runtime_findings(svc, cluster_id), 30, every=0.02)
            print(f"package read -> running_vulnerability in {time.monotonic() - loaded_at:.2f} s")
            if reader == "cat":
                # busybox find runs cat once per starting point, each a process of its own (no shell: a shell in
                # an exec session would be a finding of its own).
                exec_in(
                    containerd,
                    cid,
                    "repeat",
                    "/bin/busybox",
                    "find",
                    *[argv[1]] * REPEATS,
                    "-exec",
                    "/bin/cat",
                    "{}",
                    ";",
                )
            wait_for("the analysis to settle", lambda: analysis_idle(svc), 30)
            wait_for(
                "runtime labels",
                lambda: (
                    {
                        f["evidence"]["package"]["name"]: f["runtime"]["state"]
                        for f in svc.list_all("/api/v1/findings", cluster=cluster_id, type="vulnerable_package")
                    }
                    == {"Jinja2": "running", "PyYAML": "not_observed_running"}
                ),
                timeout=15,
            )
            assert load_watch(svc, cluster_id) == [[f"{DP}/jinja2/", f"{DP}/yaml/"]]
            # A finding that stops being open takes its package out of the load watch; the sensor holds the
            # new revision within the long poll's recheck.
            (yaml,) = [f for f in packages if f["evidence"]["package"]["name"] == "PyYAML"]
            before = nodes()[0]["current_revision"]
            changed = httpx.post(
                f"{svc.url}/api/v1/findings/{yaml['id']}/status",
                json={"status": "suppressed", "reason": "not imported by this service"},
                headers={"Authorization": f"Bearer {svc.admin_token}"},
            )
            assert changed.status_code == 200, changed.text
            t0 = time.monotonic()
            wait_for(
                "the sensor holding the revision without PyYAML",
                lambda: [(n["current_revision"] != before, n["state"]) for n in nodes()] == [(True, "enforcing")],
                10,
            )
            print(f"load watch change reached the sensor in {time.monotonic() - t0:.2f} s")
            assert load_watch(svc, cluster_id) == [[f"{DP}/jinja2/"]]
        finally:
            rc = sensor.stop()
            remove_container(containerd, cid, pod)
        assert rc == 0, sensor.log()[-3000:]
        svc.app.state.workers.runtime.run_pass()
        (running,) = runtime_findings(svc, cluster_id)
        assert (running["type"], running["severity"], running["subject"]) == (
            "running_vulnerability",
            "critical",
            "Jinja2 2.10 (PYSEC-TEST-0001) running",
        )
        ev = running["evidence"]
        assert ev["severity_raised_from"] == "high"
        assert ev["package"]["name"] == "Jinja2" and ev["package"]["version"] == "2.10"
        # The finding names the package's file of its latest observation: each loaded file is one activity.
        assert ev["file"]["path"] == ev["file"]["image_path"] in [f"{DP}/jinja2/{name}" for name in loaded]
        assert ev["file"]["kind"] == "package_load"
        proc = ev["process"]
        assert (proc["path"], proc["argv"]) == (exe, argv)
        assert proc["container"]["id"] == f"containerd://{cid}" and proc["container"]["pod"] == "web-7d4b9c-x2v8q"
        assert ev["workload"] == {"namespace": "shop", "kind": "Deployment", "name": "web"}
        assert ev["reason"].startswith(f"loaded by {exe} ({' '.join(argv)}) at 20")
        loads = svc.list_all("/api/v1/runtime/activities", cluster=cluster_id, kind="package_load")
        assert sorted(a["target"] for a in loads) == [f"{DP}/jinja2/{name}" for name in loaded]
        if reader == "cat":
            # Every open is counted once, whether it reached user space as an event or was counted in the kernel
            # (nearly all of the repeats: only the first of each 0.2 s batch window is queued).
            assert [a["count"] for a in loads] == [1 + REPEATS]
            line = next(x for x in sensor.log().splitlines() if x.startswith("vigil sensor: kernel counters "))
            assert json.loads(line.split("kernel counters ", 1)[1])["load_aggregated"] >= REPEATS * 3 // 4
    finally:
        svc.stop()


def node_runtime() -> dict[str, bytes]:
    """This machine's node (the nodejs package, NodeSource's build) with the libraries it links."""
    node = Path("/usr/bin/node")
    files = {
        "/usr/bin/node": node.read_bytes(),
        "/lib64/ld-linux-x86-64.so.2": Path("/lib64/ld-linux-x86-64.so.2").read_bytes(),
    }
    for lib in ("libdl.so.2", "libstdc++.so.6", "libm.so.6", "libgcc_s.so.1", "libpthread.so.0", "libc.so.6"):
        files[f"/lib/x86_64-linux-gnu/{lib}"] = Path(f"/lib/x86_64-linux-gnu/{lib}").read_bytes()
    return files


def npm_package(name: str, version: str) -> dict[str, bytes]:
    base = f"/app/node_modules/{name}"
    manifest = f'{{"name": "{name}", "version": "{version}", "main": "index.js"}}\n'
    return {f"{base}/package.json": manifest.encode(), f"{base}/index.js": b"module.exports = {};\n"}


def test_a_required_npm_package_is_running_the_other_is_not(registry, containerd, tmp_path: Path) -> None:
    assert Path("/usr/bin/node").exists(), "this machine has no node to put in the image"
    extra = {**npm_package("lodash", "4.17.20"), **npm_package("minimist", "1.2.5"), **node_runtime()}
    image = push_image(registry, tag="nodeload", extra=extra)
    containerd.ctr("images", "pull", "--plain-http", image.ref, timeout=300)
    svc = runtime_service(tmp_path / "data", registry, watch_period=2.0)
    try:
        records = [
            osv("GHSA-test-lodash", "lodash", "4.17.21", HIGH),
            osv("GHSA-test-minimist", "minimist", "1.2.6", MEDIUM),
        ]
        for r in records:
            r["affected"][0]["package"]["ecosystem"] = "npm"
        import_advisories(svc, records, tmp_path / "osv")
        cluster_id, credential = svc.register("node-load-e2e")
        pod, cid = new_container_ids()
        post_inventory(svc, credential, inventory_snapshot(cluster_id, NODE, pods=[web_pod(pod, NODE, cid, image)]))
        scan_and_match(svc)
        assert load_watch(svc, cluster_id) == [["/app/node_modules/lodash/", "/app/node_modules/minimist/"]]
        sensor = start_sensor(svc, credential, cluster_id, NODE, tmp_path / "sensor")
        try:
            nodes = lambda: svc.get("/api/v1/policy/runtime/nodes", cluster=cluster_id).json()["items"]  # noqa: E731
            wait_for("the sensor holding the node's policy", lambda: [n["state"] for n in nodes()] == ["enforcing"], 30)
            init = run_container(containerd, image, pod, cid)
            wait_for_cmdline(init, ["/bin/sleep", "300"])
            exec_in(containerd, cid, "require", "/usr/bin/node", "-e", "require('/app/node_modules/lodash')")
            wait_for("running_vulnerability", lambda: runtime_findings(svc, cluster_id), 30)
            wait_for("the analysis to settle", lambda: analysis_idle(svc), 30)
            wait_for(
                "runtime labels",
                lambda: (
                    {
                        f["evidence"]["package"]["name"]: f["runtime"]["state"]
                        for f in svc.list_all("/api/v1/findings", cluster=cluster_id, type="vulnerable_package")
                    }
                    == {"lodash": "running", "minimist": "not_observed_running"}
                ),
                timeout=15,
            )
        finally:
            rc = sensor.stop()
            remove_container(containerd, cid, pod)
        assert rc == 0, sensor.log()[-3000:]
        (running,) = runtime_findings(svc, cluster_id)
        assert (running["type"], running["severity"], running["subject"]) == (
            "running_vulnerability",
            "critical",
            "lodash 4.17.20 (GHSA-test-lodash) running",
        )
        proc = running["evidence"]["process"]
        assert (proc["path"], proc["argv"]) == (
            "/usr/bin/node",
            ["/usr/bin/node", "-e", "require('/app/node_modules/lodash')"],
        )
        loads = svc.list_all("/api/v1/runtime/activities", cluster=cluster_id, kind="package_load")
        assert sorted(a["target"] for a in loads) == [
            "/app/node_modules/lodash/index.js",
            "/app/node_modules/lodash/package.json",
        ]
    finally:
        svc.stop()


MAIN_JAVA = """public class Main {
    public static void main(String[] args) throws Exception {
        System.out.println(Class.forName("org.apache.commons.io.IOUtils").getName());
    }
}
"""
JARS = {"commons-io-2.11.0.jar": "commons-io-2.11.0.jar", "commons-cli-1.5.0.jar": "commons-cli.jar"}
JAVA_CP = "/app:/libs/commons-io-2.11.0.jar:/libs/commons-cli-1.5.0.jar"


@pytest.fixture(scope="module")
def java_files(tmp_path_factory) -> dict[str, bytes]:
    """A java.base runtime made by jlink from this machine's Debian OpenJDK 17 (about 34 MB), Main.class
    compiled by javac, and Debian's real commons-io and commons-cli jars."""
    jdk = Path("/usr/lib/jvm/java-17-openjdk-amd64/bin")
    share = Path("/usr/share/java")
    missing = [str(p) for p in (jdk / "jlink", jdk / "javac", *(share / j for j in JARS.values())) if not p.exists()]
    assert not missing, f"this machine lacks the JDK parts the Java test builds from: {', '.join(missing)}"
    d = tmp_path_factory.mktemp("java")
    jre = d / "jre"
    subprocess.run(
        [str(jdk / "jlink"), "--add-modules", "java.base", "--output", str(jre), "--strip-debug", "--no-man-pages"]
        + ["--no-header-files", "--compress=2"],
        check=True,
        capture_output=True,
    )
    (d / "Main.java").write_text(MAIN_JAVA)
    subprocess.run([str(jdk / "javac"), "--release", "17", "-d", str(d / "app"), str(d / "Main.java")], check=True)
    files = {
        f"/opt/jre/{p.relative_to(jre)}": p.read_bytes() for p in jre.rglob("*") if p.is_file() and not p.is_symlink()
    }
    files["/app/Main.class"] = (d / "app" / "Main.class").read_bytes()
    for name, source in JARS.items():
        files[f"/libs/{name}"] = (share / source).resolve().read_bytes()
    for lib in ("libc.so.6", "libgcc_s.so.1", "libm.so.6", "libstdc++.so.6", "libz.so.1"):
        files[f"/lib/x86_64-linux-gnu/{lib}"] = Path(f"/lib/x86_64-linux-gnu/{lib}").read_bytes()
    files["/lib64/ld-linux-x86-64.so.2"] = Path("/lib64/ld-linux-x86-64.so.2").read_bytes()
    return files


def test_a_jar_the_jvm_loads_is_running_the_other_on_the_class_path_is_not(
    registry, containerd, tmp_path: Path, java_files: dict[str, bytes]
) -> None:
    image = push_image(registry, tag="javaload", extra=java_files)
    containerd.ctr("images", "pull", "--plain-http", image.ref, timeout=300)
    svc = runtime_service(tmp_path / "data", registry, watch_period=2.0)
    try:
        records = [
            osv("GHSA-test-commons-io", "commons-io:commons-io", "2.14.0", HIGH),
            osv("GHSA-test-commons-cli", "commons-cli:commons-cli", "1.6.0", MEDIUM),
        ]
        for r in records:
            r["affected"][0]["package"]["ecosystem"] = "Maven"
        import_advisories(svc, records, tmp_path / "osv")
        cluster_id, credential = svc.register("java-load-e2e")
        pod, cid = new_container_ids()
        post_inventory(svc, credential, inventory_snapshot(cluster_id, NODE, pods=[web_pod(pod, NODE, cid, image)]))
        scan_and_match(svc)
        assert load_watch(svc, cluster_id) == [["/libs/commons-cli-1.5.0.jar", "/libs/commons-io-2.11.0.jar"]]
        sensor = start_sensor(svc, credential, cluster_id, NODE, tmp_path / "sensor")
        try:
            nodes = lambda: svc.get("/api/v1/policy/runtime/nodes", cluster=cluster_id).json()["items"]  # noqa: E731
            wait_for("the sensor holding the node's policy", lambda: [n["state"] for n in nodes()] == ["enforcing"], 30)
            init = run_container(containerd, image, pod, cid)
            wait_for_cmdline(init, ["/bin/sleep", "300"])
            exec_in(containerd, cid, "jvm", "/opt/jre/bin/java", "-Xshare:off", "-cp", JAVA_CP, "Main")
            wait_for("running_vulnerability", lambda: runtime_findings(svc, cluster_id), 30)
            wait_for("the analysis to settle", lambda: analysis_idle(svc), 30)
            wait_for(
                "runtime labels",
                lambda: (
                    {
                        f["evidence"]["package"]["name"]: f["runtime"]["state"]
                        for f in svc.list_all("/api/v1/findings", cluster=cluster_id, type="vulnerable_package")
                    }
                    == {"commons-io:commons-io": "running", "commons-cli:commons-cli": "not_observed_running"}
                ),
                timeout=15,
            )
        finally:
            rc = sensor.stop()
            remove_container(containerd, cid, pod)
        assert rc == 0, sensor.log()[-3000:]
        (running,) = runtime_findings(svc, cluster_id)
        assert (running["type"], running["severity"], running["subject"]) == (
            "running_vulnerability",
            "critical",
            "commons-io:commons-io 2.11.0 (GHSA-test-commons-io) running",
        )
        proc = running["evidence"]["process"]
        assert proc["path"] == "/opt/jre/bin/java" and proc["argv"][-1] == "Main"
        loads = svc.list_all("/api/v1/runtime/activities", cluster=cluster_id, kind="package_load")
        assert [a["target"] for a in loads] == ["/libs/commons-io-2.11.0.jar"]
    finally:
        svc.stop()


HELLO_JAVA = """public class Hello {
    public static void main(String[] args) {
        System.out.println("hello");
    }
}
"""


def test_a_jar_nested_in_the_archive_the_jvm_opens_runs_by_containment(
    registry, containerd, tmp_path: Path, java_files: dict[str, bytes]
) -> None:
    """An uber jar: /app/app.jar holds Hello.class and commons-io's jar under lib/. The JVM opens app.jar (its class
    path) and the kernel sees only that file; commons-io, nested in it, runs by containment; commons-cli's jar on
    disk is never opened."""
    subprocess.run(
        ["/usr/lib/jvm/java-17-openjdk-amd64/bin/javac", "--release", "17", "-d", str(tmp_path / "hello")]
        + [str(_write(tmp_path / "Hello.java", HELLO_JAVA))],
        check=True,
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\nMain-Class: Hello\r\n\r\n")
        z.writestr("Hello.class", (tmp_path / "hello" / "Hello.class").read_bytes())
        z.writestr("lib/commons-io-2.11.0.jar", java_files["/libs/commons-io-2.11.0.jar"])
    files = {k: v for k, v in java_files.items() if k not in ("/app/Main.class", "/libs/commons-io-2.11.0.jar")}
    files["/app/app.jar"] = buf.getvalue()
    image = push_image(registry, tag="javanested", extra=files)
    containerd.ctr("images", "pull", "--plain-http", image.ref, timeout=300)
    svc = runtime_service(tmp_path / "data", registry, watch_period=2.0)
    try:
        records = [
            osv("GHSA-test-commons-io", "commons-io:commons-io", "2.14.0", HIGH),
            osv("GHSA-test-commons-cli", "commons-cli:commons-cli", "1.6.0", MEDIUM),
        ]
        for r in records:
            r["affected"][0]["package"]["ecosystem"] = "Maven"
        import_advisories(svc, records, tmp_path / "osv")
        cluster_id, credential = svc.register("java-nested-e2e")
        pod, cid = new_container_ids()
        post_inventory(svc, credential, inventory_snapshot(cluster_id, NODE, pods=[web_pod(pod, NODE, cid, image)]))
        scan_and_match(svc)
        assert load_watch(svc, cluster_id) == [["/app/app.jar", "/libs/commons-cli-1.5.0.jar"]]
        sensor = start_sensor(svc, credential, cluster_id, NODE, tmp_path / "sensor")
        try:
            nodes = lambda: svc.get("/api/v1/policy/runtime/nodes", cluster=cluster_id).json()["items"]  # noqa: E731
            wait_for("the sensor holding the node's policy", lambda: [n["state"] for n in nodes()] == ["enforcing"], 30)
            init = run_container(containerd, image, pod, cid)
            wait_for_cmdline(init, ["/bin/sleep", "300"])
            exec_in(containerd, cid, "jvm", "/opt/jre/bin/java", "-Xshare:off", "-cp", "/app/app.jar", "Hello")
            wait_for("running_vulnerability", lambda: runtime_findings(svc, cluster_id), 30)
            wait_for("the analysis to settle", lambda: analysis_idle(svc), 30)
            wait_for(
                "runtime labels",
                lambda: (
                    {
                        f["evidence"]["package"]["name"]: f["runtime"]["state"]
                        for f in svc.list_all("/api/v1/findings", cluster=cluster_id, type="vulnerable_package")
                    }
                    == {"commons-io:commons-io": "running", "commons-cli:commons-cli": "not_observed_running"}
                ),
                timeout=15,
            )
        finally:
            rc = sensor.stop()
            remove_container(containerd, cid, pod)
        assert rc == 0, sensor.log()[-3000:]
        (running,) = runtime_findings(svc, cluster_id)
        assert running["subject"] == "commons-io:commons-io 2.11.0 (GHSA-test-commons-io) running"
        assert running["evidence"]["attribution"] == {
            "how": "containment",
            "archive": "/app/app.jar",
            "entry": "lib/commons-io-2.11.0.jar",
            "found_in": "/app/app.jar:lib/commons-io-2.11.0.jar",
        }
        assert running["evidence"]["reason"].endswith(
            "; commons-io:commons-io 2.11.0 is the jar lib/commons-io-2.11.0.jar inside /app/app.jar, which the process"
            " opened (the kernel sees only the outer archive)"
        )
        loads = svc.list_all("/api/v1/runtime/activities", cluster=cluster_id, kind="package_load")
        assert [a["target"] for a in loads] == ["/app/app.jar"]
    finally:
        svc.stop()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
