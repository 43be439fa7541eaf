"""One image's pull and catalog in a child process with its own memory limit.

The service runs its scanner in process; an image is untrusted input, and whatever a hostile one
makes the catalog allocate must never take the service down. The child is spawned (never forked:
the service's threads may hold locks a fork would copy held), sets ``RLIMIT_AS`` to
``max_memory_bytes`` before it reads a byte of the image, builds its own registry client from the
parent's settings, and sends back the image's contents or the error's text. Whatever ends the
child (a memory limit, a signal, a crash) is an ``IsolatedScanError`` naming it: the job fails
with that reason, and the service goes on.
"""

from __future__ import annotations

import multiprocessing
import resource
import signal
from dataclasses import dataclass
from multiprocessing.connection import Connection

import httpx

from vigil.catalog import LayerDigestMismatch
from vigil.catalog.limits import ScanLimits, limit_text
from vigil.model.image import ImageRef
from vigil.registry import Platform, RegistryClient, RegistryConfig, RegistryError, RetryPolicy
from vigil.scanner.pull import PulledImage, pull_contents

# Time the child may take beyond the scan's own deadline (start, registry round trips, sending back).
_GRACE_SECONDS = 60.0


class IsolatedScanError(Exception):
    """The child could not scan the image: a pull or catalog error's text, or how the child ended."""


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """What the child needs to build the same registry client as the parent's."""

    config: RegistryConfig
    retry: RetryPolicy
    timeout: httpx.Timeout | float
    max_manifest_bytes: int

    @classmethod
    def of(cls, client: RegistryClient) -> ClientSettings:
        t = client.transport
        return cls(t.config, t.retry, t.timeout, client.max_manifest_bytes)


def _child(
    out: Connection,
    client: ClientSettings,
    ref: ImageRef,
    reference: str,
    platform: Platform,
    limits: ScanLimits,
    memory: int,
) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    try:
        with RegistryClient(
            client.config, retry=client.retry, timeout=client.timeout, max_manifest_bytes=client.max_manifest_bytes
        ) as registry:
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
    client: RegistryClient,
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
        args=(send, ClientSettings.of(client), ref, reference, platform, limits, memory),
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
