"""One image's pull and catalog in a child process with its own memory limit.

The service runs its scanner in process; an image is untrusted input, and whatever a hostile one
makes the catalog allocate must never take the service down. The child is spawned (never forked:
the service's threads may hold locks a fork would copy held), sets ``RLIMIT_AS`` to
``max_memory_bytes`` before it reads a byte of the image, builds its own registry client from the
parent's settings (``ClientSource``), and sends back the image's contents or the error's text. Whatever ends the
child (a memory limit, a signal, a crash) is an ``IsolatedScanError`` naming it: the job fails
with that reason, and the service goes on.
"""

from __future__ import annotations

import multiprocessing
import resource
import signal
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import httpx

from vigil.catalog import LayerDigestMismatch
from vigil.catalog.limits import ScanLimits, limit_text
from vigil.model.image import ImageRef
from vigil.registry import Platform, RegistryClient, RegistryConfig, RegistryError, RetryPolicy
from vigil.registry.client import MAX_MANIFEST_BYTES
from vigil.registry.transport import DEFAULT_RETRY, DEFAULT_TIMEOUT
from vigil.scanner.pull import PulledImage, pull_contents

# Time the child may take beyond the scan's own deadline (start, registry round trips, sending back).
_GRACE_SECONDS = 60.0


class IsolatedScanError(Exception):
    """The child could not scan the image: a pull or catalog error's text, or how the child ended."""


@dataclass(frozen=True, slots=True)
class ClientSource:
    """Where the child reads its registry settings: the same file and environment as the parent's.

    Credentials never cross the pipe (a ``Secret`` refuses pickling): the child reads them itself,
    from the file and the ``VIGIL_REGISTRY_*`` variables it inherits."""

    config_path: Path | None = None
    max_manifest_bytes: int = MAX_MANIFEST_BYTES
    retry: RetryPolicy = DEFAULT_RETRY
    timeout: httpx.Timeout | float = field(default_factory=lambda: DEFAULT_TIMEOUT)

    def client(self) -> RegistryClient:
        config = RegistryConfig.load(self.config_path)
        return RegistryClient(
            config, retry=self.retry, timeout=self.timeout, max_manifest_bytes=self.max_manifest_bytes
        )


def _child(
    out: Connection,
    source: ClientSource,
    ref: ImageRef,
    reference: str,
    platform: Platform,
    limits: ScanLimits,
    memory: int,
) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    try:
        with source.client() as registry:
            pulled = pull_contents(registry, ref, reference, platform, limits=limits)
        out.send(("ok", pulled))
    except MemoryError:
        out.send(("error", f"the scan ran out of memory: limit {limit_text('max_memory_bytes', memory)}"))
    except (RegistryError, LayerDigestMismatch, ValueError, OSError) as exc:
        out.send(("error", str(exc)))
    except Exception as exc:  # the parent fails the job with it; the child has nothing else to keep
        out.send(("error", f"the scanner failed: {type(exc).__name__}: {exc}"[:1000]))
    finally:
        out.close()


def pull_isolated(
    source: ClientSource,
    ref: ImageRef,
    reference: str,
    platform: Platform,
    limits: ScanLimits,
) -> PulledImage:
    """``pull_contents`` in a child process limited to ``limits.max_memory_bytes`` of address space."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    memory = limits.max_memory_bytes
    child = context.Process(
        target=_child,
        args=(send, source, ref, reference, platform, limits, memory),
        name="vigil-scan",
        daemon=True,
    )
    child.start()
    send.close()  # the child holds the only sending end: its exit ends the wait below
    answer = None
    timed_out = False
    try:
        if receive.poll(limits.deadline_seconds + _GRACE_SECONDS):
            answer = receive.recv()
        else:
            timed_out = True
    except (EOFError, OSError):
        answer = None  # the child ended before sending (a signal, memory exhausted while starting)
    except MemoryError:
        answer = ("error", "the scan's result is too large to receive")
    finally:
        receive.close()
        if answer is None and child.is_alive():
            child.kill()
        child.join(10)
    if answer is not None:
        kind, value = answer
        if kind == "ok":
            assert isinstance(value, PulledImage)
            return value
        raise IsolatedScanError(value)
    code = child.exitcode
    if timed_out or code is None:
        raise IsolatedScanError(
            f"the scan did not finish within {limit_text('deadline_seconds', limits.deadline_seconds)} "
            f"and {_GRACE_SECONDS:g} s more; its process was stopped"
        )
    if code < 0:
        name = signal.Signals(-code).name
        raise IsolatedScanError(
            f"the scan process was killed by {name} (memory limit {limit_text('max_memory_bytes', memory)})"
        )
    raise IsolatedScanError(
        f"the scan process exited with status {code} before it answered "
        f"(memory limit {limit_text('max_memory_bytes', memory)})"
    )
