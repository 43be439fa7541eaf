"""Asking the trusted registry what the feed did not know, within the request's budget (I/O).

Answers are kept for a while (tags move, so not for long), and a question still running when the
budget ends goes on in the background: the next review of the same image finds its answer.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from vigil.admission.decide import AnswerKey, RegistryQuestion
from vigil.registry.client import RegistryClient
from vigil.registry.errors import NotFound, RegistryError
from vigil.registry.probe import RegistryAnswer, error_kind, probe

log = logging.getLogger(__name__)

ANSWER_TTL = 60.0
MAX_ANSWERS = 10_000


def ask(client: RegistryClient, question: RegistryQuestion) -> RegistryAnswer:
    """The registry's answer to ``question`` (blocking)."""
    if question.digest is not None:
        return probe(client, question.effective, question.digest)
    try:
        resolved = client.resolve(question.effective, question.effective.tag)
    except NotFound as exc:
        return RegistryAnswer(tag_missing=str(exc))
    except RegistryError as exc:
        return RegistryAnswer(error=str(exc), error_kind=error_kind(exc))
    return RegistryAnswer(tag_digest=resolved.digest, tag_artifacts=frozenset({resolved.digest}))


class ColdResolver:
    def __init__(self, client: RegistryClient, *, workers: int = 8, ttl: float = ANSWER_TTL) -> None:
        self.client = client
        self.ttl = ttl
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="vigil-admission-registry")
        self._answers: dict[AnswerKey, tuple[float, RegistryAnswer]] = {}
        self._pending: dict[AnswerKey, asyncio.Future[RegistryAnswer]] = {}

    def cached(self, key: AnswerKey) -> RegistryAnswer | None:
        hit = self._answers.get(key)
        if hit is None or time.monotonic() - hit[0] > self.ttl:
            return None
        return hit[1]

    def _remember(self, key: AnswerKey, answer: RegistryAnswer) -> None:
        if answer.error is not None:
            return  # a failure is asked again next time, not remembered
        if len(self._answers) >= MAX_ANSWERS:
            self._answers.pop(next(iter(self._answers)))
        self._answers[key] = (time.monotonic(), answer)

    async def answers(self, questions: Sequence[RegistryQuestion], budget: float) -> dict[AnswerKey, RegistryAnswer]:
        """What the registry answered to ``questions`` within ``budget`` seconds; the rest is left out."""
        out: dict[AnswerKey, RegistryAnswer] = {}
        waiting: list[tuple[AnswerKey, asyncio.Future[RegistryAnswer]]] = []
        loop = asyncio.get_running_loop()
        for q in questions:
            hit = self.cached(q.key)
            if hit is not None:
                out[q.key] = hit
                continue
            future = self._pending.get(q.key)
            if future is None:
                future = asyncio.wrap_future(self._pool.submit(ask, self.client, q), loop=loop)
                self._pending[q.key] = future
                future.add_done_callback(functools.partial(self._settle, q.key))
            waiting.append((q.key, future))
        if waiting:
            await asyncio.wait([f for _, f in waiting], timeout=budget)
            for key, future in waiting:
                if future.done() and not future.cancelled() and future.exception() is None:
                    out[key] = future.result()
        return out

    def _settle(self, key: AnswerKey, future: asyncio.Future[RegistryAnswer]) -> None:
        self._pending.pop(key, None)
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            log.warning("registry question failed", extra={"image": key[0], "error": str(exc)})
            return
        self._remember(key, future.result())

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()
