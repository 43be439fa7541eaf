"""Where the node's runtime policy comes from: a file (standalone nodes, tests) or the service.

Both run in a thread of their own and hand each new policy to ``apply`` (the Enforcer); what goes
wrong goes to ``fail`` (the heartbeat's enforcement_error). The kernel keeps enforcing the last
policy applied while a source is unreachable or unreadable.

From the service: ``GET RUNTIME_POLICY_PATH?node=&revision=&wait=`` with the sensor's credential. The
service answers at once when it holds another revision than the one given, else when the node's
policy changes or ``wait`` seconds pass: a change reaches the kernel within one round trip.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
from pydantic import ValidationError

from vigil.wire.prevention import MAX_POLICY_WAIT_SECONDS, RUNTIME_POLICY_PATH, NodeRuntimePolicy

log = logging.getLogger(__name__)

MAX_POLICY_BYTES = 32 << 20  # 10,000 containers and 100,000 deny-listed digests fit with room to spare
_DETAIL_LIMIT = 300

Apply = Callable[[NodeRuntimePolicy], None]
Fail = Callable[[str], None]


class PolicyError(ValueError):
    """A runtime policy that cannot be enforced; the message names its source and why."""


def parse_policy(raw: bytes, source: str, node_name: str) -> NodeRuntimePolicy:
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyError(f"runtime policy {source} is {len(raw)} bytes, over the {MAX_POLICY_BYTES} byte limit")
    try:
        policy = NodeRuntimePolicy.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(document)"
        raise PolicyError(f"runtime policy {source} is not a NodeRuntimePolicy: {where}: {first['msg']}") from None
    if policy.node_name != node_name:
        raise PolicyError(
            f"runtime policy {source} is for node {policy.node_name}, and this sensor is node {node_name}"
        )
    return policy


class PolicyFile:
    """``--runtime-policy FILE``: loaded at start, loaded again whenever the file changes."""

    def __init__(self, path: Path, node_name: str, apply: Apply, fail: Fail, interval_s: float = 0.5) -> None:
        self.path = path
        self.node_name = node_name
        self.apply = apply
        self.fail = fail
        self.interval_s = interval_s
        self._signature: tuple[int, int, int] | None = None
        self._thread: threading.Thread | None = None

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def load(self) -> NodeRuntimePolicy:
        """Read, check and apply the file now; raises PolicyError (nothing applied) when it cannot."""
        self._signature = self._stat()
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise PolicyError(f"cannot read runtime policy {self.path}: {exc.strerror}") from None
        policy = parse_policy(raw, str(self.path), self.node_name)
        self.apply(policy)
        return policy

    def start(self, stop: threading.Event) -> None:
        self._thread = threading.Thread(target=self._run, args=(stop,), name="vigil-policy-file", daemon=True)
        self._thread.start()

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval_s):
            sig = self._stat()
            if sig == self._signature:
                continue
            try:
                self.load()
            except PolicyError as exc:
                self.fail(f"{exc}; still enforcing the policy loaded before")


class PolicyPoller:
    """The long-poll client of the service's runtime policy for this node."""

    def __init__(
        self,
        service: str,
        credential: str,
        node_name: str,
        apply: Apply,
        fail: Fail,
        *,
        verify: bool | ssl.SSLContext = True,
        wait_s: int = MAX_POLICY_WAIT_SECONDS,
        backoff_max_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.node_name = node_name
        self.apply = apply
        self.fail = fail
        self.wait_s = max(0, min(wait_s, MAX_POLICY_WAIT_SECONDS))
        self.backoff_max_s = backoff_max_s
        self.revision = ""
        self.polls = 0
        # The service holds the request up to wait_s: the read timeout must outlast it.
        self._client = httpx.Client(
            base_url=service.rstrip("/"),
            headers={"Authorization": f"Bearer {credential}", "User-Agent": "vigil-sensor"},
            timeout=httpx.Timeout(10.0, read=self.wait_s + 15.0),
            transport=transport,
            verify=verify,
        )
        self._thread: threading.Thread | None = None

    def poll_once(self, wait_s: int | None = None) -> NodeRuntimePolicy | None:
        """One request; applies and returns the policy when its revision is new. Raises PolicyError
        when the service refuses or answers something unusable, httpx.HTTPError when unreachable."""
        params = {
            "node": self.node_name,
            "revision": self.revision,
            "wait": str(self.wait_s if wait_s is None else wait_s),
        }
        self.polls += 1
        with self._client.stream("GET", RUNTIME_POLICY_PATH, params=params) as resp:
            body = b""
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) > MAX_POLICY_BYTES:
                    raise PolicyError(f"the service's runtime policy is over the {MAX_POLICY_BYTES} byte limit")
            if resp.status_code != 200:
                detail = body.decode(errors="replace")[:_DETAIL_LIMIT]
                raise PolicyError(
                    f"the service answered the runtime policy request with HTTP {resp.status_code}: {detail}"
                )
        policy = parse_policy(body, "from the service", self.node_name)
        if policy.revision == self.revision:
            return None
        self.apply(policy)
        self.revision = policy.revision
        return policy

    def start(self, stop: threading.Event) -> None:
        self._thread = threading.Thread(target=self._run, args=(stop,), name="vigil-policy-poll", daemon=True)
        self._thread.start()

    def _run(self, stop: threading.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                self.poll_once()
                failures = 0
                continue
            except PolicyError as exc:
                self.fail(str(exc))
            except httpx.HTTPError as exc:
                # Unreachable: the kernel keeps the last policy; the service sees this node lag.
                log.warning(
                    "runtime policy not fetched (%s: %s); the kernel keeps revision %r",
                    type(exc).__name__,
                    exc,
                    self.revision or None,
                )
            except Exception as exc:  # a source must never die: the node would silently stop following
                log.exception("runtime policy round failed")
                self.fail(f"runtime policy round failed: {type(exc).__name__}: {exc}")
            failures += 1
            stop.wait(min(self.backoff_max_s, 0.5 * 2 ** min(failures, 10)))

    def close(self) -> None:
        self._client.close()
