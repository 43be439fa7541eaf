"""Runtime prevention in real containers (containerd + runc, an image pulled from a loopback
docker-registry) by the real sensor (`vigil sensor` as a process) under --runtime-policy files.

Every forbidden exec runs a static helper that would write a marker file: in enforce mode the
kernel kills it by SIGKILL before its first instruction, so the marker never appears and the shell
that ran it sees status 137; in audit mode it runs and the record says so. The records are what
the sensor ships (its batches at a loopback ingest stand-in).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_server import IngestServer
from sensor_e2e import SensorProcess, pull, push_image, wait_for
from test_activity_containers import _static_helper

from conftest import e2e_unavailable
from vigil.devtools.containerd import kubelet_cgroup, put_file, remove_container, start_containerd
from vigil.devtools.registry_server import RegistryServer
from vigil.wire.prevention import ContainerPrevention, NodeRuntimePolicy, PreventionRule

_skip = e2e_unavailable()
pytestmark = pytest.mark.skipif(_skip is not None, reason=str(_skip))
TOKEN = "prevention-cred-1"
NODE = "node-prevent"

# Writes "ran" to the file named by its argument: proof that it executed.
MARKER_HELPER = r"""
#include <fcntl.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int fd = open(argv[1], O_CREAT | O_WRONLY | O_TRUNC, 0644);
    if (fd < 0) return 2;
    write(fd, "ran\n", 4);
    close(fd);
    return 0;
}
"""
# The same program with other bytes: the image's own copy, whose sha256 alone is deny-listed.
IMAGE_TOOL_HELPER = MARKER_HELPER + '__attribute__((used)) static const char tag[] = "vigil image tool";\n'
# Copies argv[1] into a memfd and executes it from there with the remaining arguments.
MEMFD_RUN_HELPER = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int src = open(argv[1], O_RDONLY);
    struct stat st;
    if (src < 0 || fstat(src, &st) != 0) { perror("open"); return 1; }
    int fd = memfd_create("payload", 0);
    if (fd < 0 || sendfile(fd, src, 0, st.st_size) != st.st_size) { perror("memfd"); return 1; }
    char *env[] = {0};
    fexecve(fd, argv + 1, env);
    perror("fexecve");
    return 1;
}
"""
# Writes argv[1] to argv[2], opens it read-only, unlinks it and executes it through the descriptor.
DELETED_RUN_HELPER = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int src = open(argv[1], O_RDONLY);
    struct stat st;
    if (src < 0 || fstat(src, &st) != 0) { perror("open"); return 1; }
    int out = open(argv[2], O_CREAT | O_WRONLY | O_TRUNC, 0755);
    if (out < 0 || sendfile(out, src, 0, st.st_size) != st.st_size) { perror("copy"); return 1; }
    close(out);
    int fd = open(argv[2], O_RDONLY);
    if (fd < 0 || unlink(argv[2]) != 0) { perror("unlink"); return 1; }
    char *env[] = {0};
    fexecve(fd, argv + 3, env);
    perror("fexecve");
    return 1;
}
"""
# Names itself as runc's init stages do (any process may), then unshares a mount namespace and says
# "escaped" if it lives on: argv[1] "self" does it itself; "child" in a forked child, which runs no
# program of its own, reporting how the child ended; "wait" does it once the file argv[2] exists
# (so that it can start before the sensor does).
DISGUISE_HELPER = r"""
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
static int escape(void) {
    prctl(PR_SET_NAME, "runc:[2:INIT]");
    unshare(CLONE_NEWNS);
    write(1, "escaped\n", 8);
    return 0;
}
int main(int argc, char **argv) {
    if (!strcmp(argv[1], "child")) {
        int status;
        pid_t pid = fork();
        if (pid == 0) _exit(escape());
        waitpid(pid, &status, 0);
        if (WIFSIGNALED(status)) printf("child killed by signal %d\n", WTERMSIG(status));
        else printf("child exited %d\n", WEXITSTATUS(status));
        return 0;
    }
    if (!strcmp(argv[1], "wait")) {
        struct stat st;
        while (stat(argv[2], &st) != 0) usleep(20000);
    }
    return escape();
}
"""
EXEC_RULES = {
    PreventionRule.DRIFT,
    PreventionRule.MEMFD_EXEC,
    PreventionRule.DELETED_EXEC,
    PreventionRule.TMP_EXEC,
    PreventionRule.DENY_LISTED,
}
IMAGE_TOOL = "/opt/tools/marker"  # the marker helper as a file of the image (not drift)


@pytest.fixture(scope="module")
def helpers(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("prevent-helpers")
    for name, source in (
        ("marker", MARKER_HELPER),
        ("imagetool", IMAGE_TOOL_HELPER),
        ("memfdrun", MEMFD_RUN_HELPER),
        ("deletedrun", DELETED_RUN_HELPER),
        ("disguise", DISGUISE_HELPER),
    ):
        (d / name).write_bytes(_static_helper(name, source).read_bytes())
        (d / name).chmod(0o755)
    return d


@pytest.fixture(scope="module")
def world(tmp_path_factory, helpers: Path):
    """A registry holding an image with the marker helper in it, and a containerd that pulled it."""
    registry = RegistryServer(workdir=tmp_path_factory.mktemp("prevent-registry")).start()
    ctd = None
    try:
        image = push_image(registry, tag="prevention", extra={IMAGE_TOOL: (helpers / "imagetool").read_bytes()})
        ctd = start_containerd(tmp_path_factory.mktemp("prevent-ctd") / "c")
        pull(ctd, image)
        yield ctd, image
    finally:
        if ctd is not None:
            ctd.stop()
        registry.close()


class Container:
    def __init__(self, ctd, image, helpers: Path) -> None:
        self.ctd = ctd
        self.pod = str(uuid.uuid4())
        self.cid = uuid.uuid4().hex + uuid.uuid4().hex
        self.ref = f"containerd://{self.cid}"
        self._n = 0
        ctd.ctr(
            "run",
            "-d",
            "--cgroup",
            kubelet_cgroup(self.pod, self.cid),
            "--mount",
            f"type=bind,src={helpers},dst=/helpers,options=rbind:ro",
            # /dev/shm without noexec (the OCI default has it, which would refuse the exec itself).
            "--mount",
            "type=tmpfs,src=shm,dst=/dev/shm,options=rw:nosuid:nodev:mode=1777",
            image.ref,
            self.cid,
            "/bin/sleep",
            "300",
        )
        self.init_pid = next(
            int(line.split()[1]) for line in ctd.ctr("task", "ls").stdout.splitlines() if line.startswith(self.cid)
        )
        # Dropped after the start: on the overlay's upper layer, and on the /dev/shm tmpfs.
        put_file(self.init_pid, "/usr/local/bin/dropped", (helpers / "marker").read_bytes())
        put_file(self.init_pid, "/dev/shm/dropped", (helpers / "marker").read_bytes())

    def sh(self, script: str) -> str:
        """Run a shell in the container (a `ctr task exec` session); returns its stdout."""
        self._n += 1
        r = self.ctd.ctr("task", "exec", "--exec-id", f"x{self._n}", self.cid, "/bin/sh", "-c", script, check=False)
        return r.stdout

    def run(self, argv: str, marker: str) -> tuple[str, bool]:
        """Run argv (writing marker) from a shell: (the shell's report of its status, marker exists)."""
        out = self.sh(f"{argv}; echo rc=$?")
        return out.strip().splitlines()[-1], self.has(marker)

    def has(self, path: str) -> bool:
        return Path(f"/proc/{self.init_pid}/root{path}").exists()

    def remove(self) -> None:
        remove_container(self.ctd, self.cid, self.pod)


def write_policy(
    path: Path,
    revision: str,
    containers: list[Container],
    mode: str,
    deny: list[str],
    rules: set[PreventionRule] = EXEC_RULES,
    drift: dict[str, list[str]] | None = None,
) -> None:
    policy = NodeRuntimePolicy(
        revision=revision,
        node_name=NODE,
        generated_at=datetime.now(UTC),
        containers=[
            ContainerPrevention(
                container_id=c.ref,
                pod_uid=c.pod,
                namespace="shop",
                rules={rule: mode for rule in rules},  # type: ignore[misc]
                policies={rule: "runtime-test" for rule in rules},
                drift_sha256=(drift or {}).get(c.ref, []),
            )
            for c in containers
        ],
        deny_sha256=deny,
    )
    tmp = path.with_suffix(".tmp")
    tmp.write_text(policy.model_dump_json())
    tmp.replace(path)


def start_sensor(server: IngestServer, policy: Path, workdir: Path) -> SensorProcess:
    sensor = SensorProcess.start(
        server.url,
        TOKEN,
        "c1",
        NODE,
        workdir,
        "--runtime-policy",
        str(policy),
        "--batch-interval",
        "60",
        "--heartbeat-interval",
        "60",
    )
    wait_for("the sensor to load its policy", lambda: "enforcing runtime policy" in sensor.log(), timeout=30)
    return sensor


def preventions(server: IngestServer, container: Container) -> dict[tuple[str, str], dict]:
    out: dict[tuple[str, str], dict] = {}
    for b in server.batches:
        for p in b.get("preventions", []):
            if p["container_id"] == container.ref:
                key = (p["rule"], p["path"])
                if key in out:
                    out[key] = {**p, "count": out[key]["count"] + p["count"]}
                else:
                    out[key] = p
    return out


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wait_hashed(sensor: SensorProcess, digest: str) -> None:
    wait_for(
        "the sensor to deny-list the hashed image file",
        lambda: f"deny-listed file {digest}" in sensor.log(),
        timeout=15,
    )


def test_enforce_kills_drift_memfd_tmp_and_deny_listed_execs_and_spares_the_rest(
    world, helpers: Path, tmp_path: Path
) -> None:
    ctd, image = world
    marker_sha, tool_sha = sha(helpers / "marker"), sha(helpers / "imagetool")
    assert marker_sha != tool_sha
    server = IngestServer(token=TOKEN)
    inside, outside = Container(ctd, image, helpers), Container(ctd, image, helpers)
    policy = tmp_path / "policy.json"
    write_policy(policy, "rev-enforce", [inside], "enforce", [tool_sha])
    sensor = start_sensor(server, policy, tmp_path / "sensor")
    try:
        # (1) a binary copied into the container after it started (drift)
        assert inside.run("/usr/local/bin/dropped /m-drift", "/m-drift") == ("rc=137", False)
        # (2) the same program run from a memfd, and from /dev/shm
        assert inside.run("/helpers/memfdrun /helpers/marker /m-memfd", "/m-memfd") == ("rc=137", False)
        assert inside.run("/dev/shm/dropped /m-shm", "/m-shm") == ("rc=137", False)
        # (3) a deny-listed file of the image: it runs until the sensor has hashed it, then is killed
        assert inside.run(f"{IMAGE_TOOL} /m-deny-1", "/m-deny-1") == ("rc=0", True)
        wait_hashed(sensor, tool_sha)
        assert inside.run(f"{IMAGE_TOOL} /m-deny-2", "/m-deny-2") == ("rc=137", False)
        # (4) the image's own binaries keep running
        assert inside.sh("/bin/echo image > /m-image; /bin/cat /m-image") == "image\n"
        # (6) a container the policy does not list is never touched
        assert outside.run("/usr/local/bin/dropped /m-drift", "/m-drift") == ("rc=0", True)
        assert outside.run("/dev/shm/dropped /m-shm", "/m-shm") == ("rc=0", True)
        assert outside.run("/helpers/memfdrun /helpers/marker /m-memfd", "/m-memfd") == ("rc=0", True)
        assert outside.run(f"{IMAGE_TOOL} /m-deny", "/m-deny") == ("rc=0", True)
        got = wait_for("the four preventions to be shipped", lambda: len(preventions(server, inside)) == 4 or None)
        assert got
    finally:
        rc = sensor.stop()
        inside.remove()
        outside.remove()
        server.stop()
    assert rc == 0, sensor.log()[-3000:]
    assert "Traceback" not in sensor.log()
    recs = preventions(server, inside)
    assert sorted(recs) == [
        ("deny_listed", IMAGE_TOOL),
        ("drift", "/usr/local/bin/dropped"),
        ("memfd_exec", "/memfd:payload (deleted)"),
        ("tmp_exec", "/dev/shm/dropped"),
    ]
    for rec in recs.values():
        assert (rec["mode"], rec["killed"], rec["count"], rec["operation"]) == ("enforce", True, 1, "exec")
        assert rec["policy_revision"] == "rev-enforce" and rec["pod_uid"] == inside.pod
        assert rec["samples"][0]["comm"] and rec["samples"][0]["parents"] == ["sh"]
    drift = recs[("drift", "/usr/local/bin/dropped")]
    assert drift["sha256"] == marker_sha and drift["upper_layer"] is True
    assert drift["samples"][0]["argv"] == ["/usr/local/bin/dropped", "/m-drift"]
    assert recs[("tmp_exec", "/dev/shm/dropped")]["sha256"] == marker_sha
    assert recs[("tmp_exec", "/dev/shm/dropped")]["upper_layer"] is None  # tmpfs, not the overlay
    deny = recs[("deny_listed", IMAGE_TOOL)]
    assert deny["sha256"] == tool_sha and deny["upper_layer"] is False
    assert deny["samples"][0]["argv"] == [IMAGE_TOOL, "/m-deny-2"]
    memfd = recs[("memfd_exec", "/memfd:payload (deleted)")]
    # The memfd lived only in the killed process: hashed if it was still readable, never wrongly.
    assert memfd["sha256"] in (None, marker_sha)
    assert memfd["samples"][0]["argv"] == ["/helpers/marker", "/m-memfd"]
    assert preventions(server, outside) == {}
    beats = [(h["policy_revision"], h["enforcement_error"]) for h in server.heartbeats if h["node_name"] == NODE]
    # Beating while enforcing; the last beat, sent as it stops, says prevention is off from then on.
    assert beats[0] == ("rev-enforce", None)
    assert beats[-1] == (
        "rev-enforce",
        "the sensor stopped: runtime prevention is off on this node until it runs again",
    )


def wait_drift(sensor: SensorProcess, digest: str, container: Container) -> None:
    wait_for(
        "the sensor to enter the hashed file as drift",
        lambda: f"is drift in container {container.ref}" in sensor.log() and digest in sensor.log(),
        timeout=15,
    )


def test_enforce_kills_a_known_non_image_sha256_from_its_second_exec_in_that_container_only(
    world, helpers: Path, tmp_path: Path
) -> None:
    ctd, image = world
    tool_sha = sha(helpers / "imagetool")
    server = IngestServer(token=TOKEN)
    tampered, bystander = Container(ctd, image, helpers), Container(ctd, image, helpers)
    policy = tmp_path / "policy.json"
    # As the service lists it after a tampered_binary finding of the first container only; the other is
    # under the drift rule too, with nothing known against it.
    write_policy(
        policy, "rev-drift", [tampered, bystander], "enforce", [], {PreventionRule.DRIFT}, {tampered.ref: [tool_sha]}
    )
    sensor = start_sensor(server, policy, tmp_path / "sensor")
    drift_lines = f"is drift in container {tampered.ref}"
    try:
        # Not on the upper layer: the first exec runs and is hashed, the next is killed.
        assert tampered.run(f"{IMAGE_TOOL} /m-1", "/m-1") == ("rc=0", True)
        wait_drift(sensor, tool_sha, tampered)
        assert tampered.run(f"{IMAGE_TOOL} /m-2", "/m-2") == ("rc=137", False)
        assert bystander.run(f"{IMAGE_TOOL} /m-3", "/m-3") == ("rc=0", True)
        assert bystander.run(f"{IMAGE_TOOL} /m-4", "/m-4") == ("rc=0", True)
        # The same bytes on a volume both containers mount: one file identity. The other container runs it
        # freely (it is hashed there and entered for the first container's cgroup only) ...
        assert bystander.run("/helpers/imagetool /m-5", "/m-5") == ("rc=0", True)
        shared = f"file {tool_sha} (inode {os.stat(helpers / 'imagetool').st_ino}) {drift_lines}"
        wait_for("the shared file entered for the first container", lambda: shared in sensor.log())
        assert bystander.run("/helpers/imagetool /m-6", "/m-6") == ("rc=0", True)
        # ... and in the first one its very first exec is stopped: it was hashed already.
        assert tampered.run("/helpers/imagetool /m-7", "/m-7") == ("rc=137", False)
        assert tampered.sh("/bin/echo image > /m-image; /bin/cat /m-image") == "image\n"
        wait_for("the preventions to be shipped", lambda: len(preventions(server, tampered)) == 2 or None)
    finally:
        rc = sensor.stop()
        tampered.remove()
        bystander.remove()
        server.stop()
    assert rc == 0, sensor.log()[-3000:]
    assert "Traceback" not in sensor.log()
    recs = preventions(server, tampered)
    assert sorted(recs) == [("drift", "/helpers/imagetool"), ("drift", IMAGE_TOOL)]
    # The image's file is known to be on the lower layer; the volume is no overlay at all.
    for path, upper, argv in (
        (IMAGE_TOOL, False, [IMAGE_TOOL, "/m-2"]),
        ("/helpers/imagetool", None, ["/helpers/imagetool", "/m-7"]),
    ):
        rec = recs[("drift", path)]
        assert (rec["mode"], rec["killed"], rec["count"], rec["sha256"], rec["upper_layer"]) == (
            "enforce",
            True,
            1,
            tool_sha,
            upper,
        )
        assert rec["policy_revision"] == "rev-drift" and rec["samples"][0]["argv"] == argv
    assert preventions(server, bystander) == {}


def test_audit_mode_reports_a_known_non_image_sha256_hashed_before_the_policy_listed_it(
    world, helpers: Path, tmp_path: Path
) -> None:
    ctd, image = world
    tool_sha = sha(helpers / "imagetool")
    server = IngestServer(token=TOKEN)
    c = Container(ctd, image, helpers)
    policy = tmp_path / "policy.json"
    write_policy(policy, "rev-1", [c], "audit", [], {PreventionRule.DRIFT})
    sensor = start_sensor(server, policy, tmp_path / "sensor")
    try:
        assert c.run(f"{IMAGE_TOOL} /m-1", "/m-1") == ("rc=0", True)  # hashed under rev-1: not drift yet
        time.sleep(1.0)  # the drain thread hashes an exec within milliseconds of it
        write_policy(policy, "rev-2", [c], "audit", [], {PreventionRule.DRIFT}, {c.ref: [tool_sha]})
        wait_drift(sensor, tool_sha, c)
        # Entered while the policy was applied, from the files hashed before it listed the sha256.
        assert (
            "runtime policy rev-2 in the kernel: 1 containers listed, 1 cgroups under rules, 0 files deny-listed, "
            "1 file identities drift in a container"
        ) in sensor.log()
        assert c.run(f"{IMAGE_TOOL} /m-2", "/m-2") == ("rc=0", True)
        assert c.run(f"{IMAGE_TOOL} /m-3", "/m-3") == ("rc=0", True)
        wait_for("the preventions to be shipped", lambda: preventions(server, c) or None)
    finally:
        rc = sensor.stop()
        c.remove()
        server.stop()
    assert rc == 0, sensor.log()[-3000:]
    recs = preventions(server, c)
    assert sorted(recs) == [("drift", IMAGE_TOOL)]
    rec = recs[("drift", IMAGE_TOOL)]
    assert (rec["mode"], rec["killed"], rec["count"], rec["sha256"], rec["policy_revision"]) == (
        "audit",
        False,
        2,
        tool_sha,
        "rev-2",
    )


def test_audit_mode_lets_everything_run_and_says_it_would_have_killed(world, helpers: Path, tmp_path: Path) -> None:
    ctd, image = world
    marker_sha, tool_sha = sha(helpers / "marker"), sha(helpers / "imagetool")
    server = IngestServer(token=TOKEN)
    c = Container(ctd, image, helpers)
    policy = tmp_path / "policy.json"
    # Enforced first, then the file is changed to audit: the sensor reloads it.
    write_policy(policy, "rev-1", [c], "enforce", [])
    sensor = start_sensor(server, policy, tmp_path / "sensor")
    try:
        assert c.run("/usr/local/bin/dropped /m-before", "/m-before") == ("rc=137", False)
        write_policy(policy, "rev-audit", [c], "audit", [tool_sha])
        wait_for(
            "the heartbeat of the reloaded policy",
            lambda: any(h["policy_revision"] == "rev-audit" for h in server.heartbeats),
            timeout=10,
        )
        assert c.run("/usr/local/bin/dropped /m-drift", "/m-drift") == ("rc=0", True)
        assert c.run("/helpers/memfdrun /helpers/marker /m-memfd", "/m-memfd") == ("rc=0", True)
        assert c.run("/dev/shm/dropped /m-shm", "/m-shm") == ("rc=0", True)
        assert c.run(f"{IMAGE_TOOL} /m-deny-1", "/m-deny-1") == ("rc=0", True)
        wait_hashed(sensor, tool_sha)
        assert c.run(f"{IMAGE_TOOL} /m-deny-2", "/m-deny-2") == ("rc=0", True)
        assert c.sh("/bin/echo image") == "image\n"
        wait_for("four preventions to be shipped", lambda: len(preventions(server, c)) == 4 or None)
    finally:
        rc = sensor.stop()
        c.remove()
        server.stop()
    assert rc == 0, sensor.log()[-3000:]
    # The kill under rev-1 was shipped at once (a prevention closes the window early), apart from
    # the audited run under rev-audit.
    drift = [
        (p["mode"], p["killed"], p["policy_revision"], p["count"], p["samples"][0]["argv"][1])
        for b in server.batches
        for p in b["preventions"]
        if p["container_id"] == c.ref and p["rule"] == "drift"
    ]
    assert drift == [("enforce", True, "rev-1", 1, "/m-before"), ("audit", False, "rev-audit", 1, "/m-drift")]
    recs = preventions(server, c)
    assert sorted(recs) == [
        ("deny_listed", IMAGE_TOOL),
        ("drift", "/usr/local/bin/dropped"),
        ("memfd_exec", "/memfd:payload (deleted)"),
        ("tmp_exec", "/dev/shm/dropped"),
    ]
    del recs[("drift", "/usr/local/bin/dropped")]
    for rec in recs.values():
        assert (rec["mode"], rec["killed"], rec["count"]) == ("audit", False, 1)
        assert rec["policy_revision"] == "rev-audit"
    assert recs[("deny_listed", IMAGE_TOOL)]["samples"][0]["argv"] == [IMAGE_TOOL, "/m-deny-2"]
    # The memfd lives only as long as the process that ran it: hashed if still readable, never wrongly.
    assert recs[("memfd_exec", "/memfd:payload (deleted)")]["sha256"] in (None, marker_sha)


def test_the_kill_needs_no_user_space_the_sensor_is_stopped(world, helpers: Path, tmp_path: Path) -> None:
    ctd, image = world
    server = IngestServer(token=TOKEN)
    c = Container(ctd, image, helpers)
    policy = tmp_path / "policy.json"
    write_policy(policy, "rev-stopped", [c], "enforce", [])
    sensor = start_sensor(server, policy, tmp_path / "sensor")
    try:
        os.kill(sensor.proc.pid, signal.SIGSTOP)
        try:
            wait_for(
                "the sensor to be stopped",
                lambda: Path(f"/proc/{sensor.proc.pid}/stat").read_text().rsplit(") ", 1)[1][0] == "T",
                timeout=5,
            )
            assert c.run("/usr/local/bin/dropped /m-drift", "/m-drift") == ("rc=137", False)
            assert c.run("/dev/shm/dropped /m-shm", "/m-shm") == ("rc=137", False)
        finally:
            os.kill(sensor.proc.pid, signal.SIGCONT)
        # Once running again, user space reports what the kernel did while it was stopped.
        wait_for("the preventions to be shipped", lambda: len(preventions(server, c)) == 2 or None)
    finally:
        rc = sensor.stop()
        c.remove()
        server.stop()
    assert rc == 0, sensor.log()[-3000:]
    recs = preventions(server, c)
    assert {k: (v["mode"], v["killed"]) for k, v in recs.items()} == {
        ("drift", "/usr/local/bin/dropped"): ("enforce", True),
        ("tmp_exec", "/dev/shm/dropped"): ("enforce", True),
    }


def test_sensor_output_json_prints_prevention_events(world, helpers: Path, tmp_path: Path) -> None:
    import subprocess

    from sensor_e2e import VIGIL

    ctd, image = world
    c = Container(ctd, image, helpers)
    policy = tmp_path / "policy.json"
    write_policy(policy, "rev-json", [c], "enforce", [])
    out, err = tmp_path / "out", tmp_path / "err"
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen(
            [str(VIGIL), "sensor", "--output", "json", "--node-name", NODE, "--runtime-policy", str(policy)],
            stdout=o,
            stderr=e,
        )
    try:
        wait_for("the sensor to load its policy", lambda: "enforcing runtime policy" in err.read_text(), timeout=30)
        assert c.run("/usr/local/bin/dropped /m-drift", "/m-drift") == ("rc=137", False)

        def printed() -> dict | None:
            lines = [json.loads(x) for x in out.read_text().splitlines()]
            return next((d for d in lines if d["event"] == "prevented"), None)

        doc = wait_for("the prevention to be printed", printed, timeout=15)
    finally:
        proc.terminate()
        proc.wait(30)
        c.remove()
    assert {k: doc[k] for k in ("rule", "mode", "killed", "operation", "path", "container_id", "argv")} == {
        "rule": "drift",
        "mode": "enforce",
        "killed": True,
        "operation": "exec",
        "path": "/usr/local/bin/dropped",
        "container_id": c.ref,
        "argv": ["/usr/local/bin/dropped", "/m-drift"],
    }
    assert doc["sha256"] == sha(helpers / "marker") and doc["policy_revision"] == "rev-json"


def test_a_policy_for_another_node_is_refused_at_start(tmp_path: Path) -> None:
    import subprocess

    from sensor_e2e import VIGIL

    policy = tmp_path / "policy.json"
    policy.write_text(
        NodeRuntimePolicy(revision="r1", node_name="other-node", generated_at=datetime.now(UTC)).model_dump_json()
    )
    r = subprocess.run(
        [str(VIGIL), "sensor", "--output", "json", "--node-name", NODE, "--runtime-policy", str(policy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Checked before the kernel programs load, like any other option.
    assert r.returncode == 2
    assert r.stderr.splitlines()[0] == (
        f"error: Invalid value: --runtime-policy: runtime policy {policy} is for node other-node, "
        f"and this sensor is node {NODE}"
    )


def test_escape_syscalls_complete_and_then_the_process_is_killed(world, helpers: Path, tmp_path: Path) -> None:
    ctd, image = world
    server = IngestServer(token=TOKEN)
    c = Container(ctd, image, helpers)
    policy = tmp_path / "policy.json"
    write_policy(policy, "rev-escape", [c], "enforce", [], rules={PreventionRule.ESCAPE})
    sensor = start_sensor(server, policy, tmp_path / "sensor")
    try:
        # unshare(2) returns (the tracepoint cannot refuse it), then the process dies before its next step.
        assert c.sh("/bin/busybox unshare -m /bin/echo escaped; echo rc=$?") == "rc=137\n"
        # The core_pattern write is refused by the kernel anyway; the attempt alone is killed.
        assert c.sh("/bin/sh -c 'echo x > /proc/sys/kernel/core_pattern'; echo rc=$?") == "rc=137\n"
        # Exec rules are off: a dropped binary runs.
        assert c.run("/usr/local/bin/dropped /m-drift", "/m-drift") == ("rc=0", True)
        wait_for("the escape preventions to be shipped", lambda: len(preventions(server, c)) == 2 or None)
    finally:
        rc = sensor.stop()
        c.remove()
        server.stop()
    assert rc == 0, sensor.log()[-3000:]
    recs = preventions(server, c)
    assert {k: (v["operation"], v["mode"], v["killed"], v["sha256"]) for k, v in recs.items()} == {
        ("escape", "CLONE_NEWNS"): ("unshare", "enforce", True, None),
        ("escape", "/proc/sys/kernel/core_pattern"): ("file_write", "enforce", True, None),
    }
    assert recs[("escape", "CLONE_NEWNS")]["samples"][0]["comm"] == "busybox"


def test_a_process_that_names_itself_as_runcs_init_is_killed_for_an_escape_all_the_same(
    world, helpers: Path, tmp_path: Path
) -> None:
    ctd, image = world
    server = IngestServer(token=TOKEN)
    c = Container(ctd, image, helpers)
    policy = tmp_path / "policy.json"
    write_policy(policy, "rev-disguise", [c], "enforce", [], rules={PreventionRule.ESCAPE})
    # Started before the sensor: the sensor learns it from /proc, not from its exec.
    c.sh("/helpers/disguise wait /tmp/go > /tmp/early.out 2>&1 &")
    sensor = start_sensor(server, policy, tmp_path / "sensor")
    try:
        assert c.sh("/helpers/disguise self; echo rc=$?") == "rc=137\n"
        assert c.sh("/helpers/disguise child") == "child killed by signal 9\n"
        c.sh("touch /tmp/go")
        wait_for(
            "the three escape preventions to be shipped",
            lambda: preventions(server, c).get(("escape", "CLONE_NEWNS"), {}).get("count") == 3 or None,
        )
        assert c.sh("cat /tmp/early.out; echo end") == "end\n"  # killed before it could say "escaped"
        # runc's own setns, mounts and pivot_root for every `ctr task exec` above were spared: the
        # shells ran.
    finally:
        rc = sensor.stop()
        c.remove()
        server.stop()
    assert rc == 0, sensor.log()[-3000:]
    rec = preventions(server, c)[("escape", "CLONE_NEWNS")]
    assert (rec["operation"], rec["mode"], rec["killed"]) == ("unshare", "enforce", True)
    assert {s["comm"] for s in rec["samples"]} == {"runc:[2:INIT]"}
    # Reported as the workload's activity too, not dropped as the runtime's.
    unshares = [
        a
        for b in server.batches
        for a in b.get("activities", [])
        if a["container_id"] == c.ref and a["kind"] == "unshare"
    ]
    assert sum(a["count"] for a in unshares) == 3
    assert {s["comm"] for a in unshares for s in a["samples"]} == {"runc:[2:INIT]"}


def test_enforce_test_reports_that_the_kill_works_on_this_kernel() -> None:
    import subprocess

    from sensor_e2e import VIGIL

    r = subprocess.run([str(VIGIL), "sensor", "--enforce-test"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == (
        "vigil sensor --enforce-test: ok: enforcement works on this kernel: a dropped binary exec'd in a test "
        "cgroup under an enforced rule was killed by SIGKILL from the exec tracepoint before its first "
        "instruction (no marker written), and the kernel reported the prevention\n"
    )
    from vigil.sensor.cgroups import unified_mount

    root = unified_mount(Path("/proc/self/mountinfo").read_text())
    assert root is not None and not [d for d in root.iterdir() if d.name.startswith("vigil-enforce-test-")]


def _node_state(svc, cluster_id: str) -> dict | None:
    resp = svc.get("/api/v1/policy/runtime/nodes", cluster=cluster_id)
    assert resp.status_code == 200, resp.text
    return next((n for n in resp.json()["items"] if n["node_name"] == NODE), None)


def _put_policy(svc, mode: str) -> None:
    import httpx

    doc = {
        "policies": [
            {"name": "shop-runtime", "mode": mode, "scope": {"namespaces": ["shop"]}, "runtime": {"drift": "enforce"}}
        ]
    }
    resp = httpx.put(
        f"{svc.url}/api/v1/policy/enforcement",
        json=doc,
        headers={"Authorization": f"Bearer {svc.admin_token}"},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text


def test_with_the_service_a_policy_flip_to_enforce_kills_within_2s_and_a_stopped_sensor_is_enforcement_off(
    live_service, world, helpers: Path, tmp_path: Path
) -> None:
    import time

    from sensor_e2e import inventory_snapshot, post_inventory, web_pod

    ctd, image = world
    cluster_id, credential = live_service.register("prevent-e2e")
    c = Container(ctd, image, helpers)
    post_inventory(
        live_service, credential, inventory_snapshot(cluster_id, NODE, pods=[web_pod(c.pod, NODE, c.cid, image)])
    )
    _put_policy(live_service, "audit")  # drift: enforce, capped by the policy's audit mode
    sensor = SensorProcess.start(
        live_service.url, credential, cluster_id, NODE, tmp_path / "sensor", "--heartbeat-interval", "2"
    )
    try:
        enforcing = wait_for(
            "the node to enforce the current revision",
            lambda: (n := _node_state(live_service, cluster_id)) and n["state"] == "enforcing" and n,
            timeout=30,
        )
        assert enforcing["containers_in_scope"] == 1 and enforcing["loud"] is False
        assert c.run("/usr/local/bin/dropped /m-audit", "/m-audit") == ("rc=0", True)

        _put_policy(live_service, "enforce")
        flipped = time.monotonic()
        attempts = []
        while time.monotonic() - flipped < 2.0:
            attempts.append(c.run(f"/usr/local/bin/dropped /m-flip-{len(attempts)}", f"/m-flip-{len(attempts)}"))
            if attempts[-1][0] == "rc=137":
                break
        took = time.monotonic() - flipped
        assert attempts[-1] == ("rc=137", False), (attempts, sensor.log()[-2000:])
        assert all(a == ("rc=0", True) for a in attempts[:-1])
        print(f"audit -> enforce reached the kernel within {took:.2f} s ({len(attempts)} attempts)")

        def findings() -> list[str] | None:
            subjects = sorted(
                f["subject"] for f in live_service.list_all("/api/v1/findings", type="prevented_execution")
            )
            return subjects if len(subjects) == 2 else None

        assert wait_for("both prevention findings", findings) == [
            "killed: exec of /usr/local/bin/dropped (rule drift)",
            "would have been killed (audit): exec of /usr/local/bin/dropped (rule drift)",
        ]
    finally:
        rc = sensor.stop()
        c.remove()
    assert rc == 0, sensor.log()[-3000:]
    off = _node_state(live_service, cluster_id)
    assert off is not None and (off["state"], off["loud"]) == ("off", True)
    assert off["reason"] == (
        "the sensor cannot enforce: the sensor stopped: runtime prevention is off on this node until it runs again"
    )


def test_enforce_kills_the_exec_of_a_deleted_file(world, helpers: Path, tmp_path: Path) -> None:
    ctd, image = world
    server = IngestServer(token=TOKEN)
    c = Container(ctd, image, helpers)
    policy = tmp_path / "policy.json"
    write_policy(policy, "rev-deleted", [c], "enforce", [], rules={PreventionRule.DELETED_EXEC})
    sensor = start_sensor(server, policy, tmp_path / "sensor")
    try:
        run = "/helpers/deletedrun /helpers/marker /opt/gone /opt/gone /m-deleted"
        assert c.run(run, "/m-deleted") == ("rc=137", False)
        assert not c.has("/opt/gone")
        # Only deleted_exec is on: the same file exec'd while it still has its name runs.
        assert c.run("/usr/local/bin/dropped /m-drift", "/m-drift") == ("rc=0", True)
        wait_for("the prevention to be shipped", lambda: preventions(server, c) or None)
    finally:
        rc = sensor.stop()
        c.remove()
        server.stop()
    assert rc == 0, sensor.log()[-3000:]
    ((key, rec),) = preventions(server, c).items()
    # Executed through its descriptor (fexecve): named as /proc names such a file.
    assert key == ("deleted_exec", "/dev/fd/4 (deleted)")  # fd 3 is the source it copied
    assert (rec["mode"], rec["killed"], rec["upper_layer"]) == ("enforce", True, True)
    assert rec["samples"][0]["argv"] == ["/opt/gone", "/m-deleted"]
