"""Admission webhooks' side of the service: the feed they decide from, and the decisions they send back.

The feed (``GET /api/v1/clusters/{cluster_id}/admission/feed``) is NDJSON, one ``vigil.wire.admission``
event per line: a snapshot first (the enforcement and trust policies, and the per-digest and per-tag facts),
then each change. A policy replaced through this service wakes every feed at once; every feed also compares
the stored revisions each ``REVISION_SECONDS``, so a change made by another replica, the CLI or the console
arrives as soon. Facts are diffed against what the feed sent every ``FACTS_SECONDS`` (computed once for all
feeds of a cluster in that time), and a ping goes out after ``PING_SECONDS`` of silence, so both ends see a
dead connection.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from vigil.clock import utcnow
from vigil.policy.trust_doc import PolicyDoc
from vigil.service.api.body import openapi_body, parse_body
from vigil.service.api.deps import admission_client, own_cluster, reader, still_valid
from vigil.service.api.errors import ApiError
from vigil.service.api.query import cluster_query
from vigil.service.api.responses import ViewRoute, plain_text
from vigil.service.store import admission as store
from vigil.service.store import enforcement as enforcement_store
from vigil.service.store import inventory
from vigil.service.store.clusters import cluster_name
from vigil.service.store.ids import MAX_ROW_ID, MIN_ROW_ID
from vigil.service.store.pagination import DEFAULT_LIMIT, MAX_LIMIT, BadCursor, decode_cursor, encode_cursor
from vigil.service.store.policy import load_policy
from vigil.service.store.tokens import Principal
from vigil.wire.admission import (
    FEED_MEDIA_TYPE,
    AdmissionDecisionBatch,
    AdmissionDecisionRecord,
    DecisionsAccepted,
    DigestFacts,
    EnforcementEvent,
    FactsEvent,
    Outcome,
    PingEvent,
    SnapshotEvent,
    TagFacts,
    TrustEvent,
)
from vigil.wire.views import Page

log = logging.getLogger(__name__)
router = APIRouter(tags=["admission"], route_class=ViewRoute)

REVISION_SECONDS = 1.0
FACTS_SECONDS = 2.0
PING_SECONDS = 10.0
REAUTH_SECONDS = 30.0
FACTS_PER_EVENT = 500


# -- change notification --------------------------------------------------------------------------


class PolicyChanges:
    """Wakes the feeds waiting in this process when a policy is replaced through it."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Event] = set()

    def notify(self) -> None:
        for event in list(self._waiters):
            event.set()

    async def wait(self, timeout: float) -> None:
        event = asyncio.Event()
        self._waiters.add(event)
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(event)


def _changes(app: FastAPI) -> PolicyChanges:
    changes = getattr(app.state, "admission_changes", None)
    if changes is None:
        changes = app.state.admission_changes = PolicyChanges()
    return changes


def policy_changed(app: FastAPI) -> None:
    """Tell this process's feeds that the enforcement or trust policy was just replaced."""
    _changes(app).notify()


# -- facts, shared by the feeds of a cluster ------------------------------------------------------


class _Facts:
    def __init__(self, digests: list[DigestFacts], tags: list[TagFacts]) -> None:
        self.digests = {d.digest: d for d in digests}
        self.tags = {t.reference: t for t in tags}


class FactsCache:
    """The facts for a cluster's feeds, read from the store at most once per ``ttl`` for all of them."""

    def __init__(self, engine: Engine, ttl: float = FACTS_SECONDS / 2) -> None:
        self.engine = engine
        self.ttl = ttl
        self._lock = threading.Lock()
        self._cached: dict[str, tuple[float, _Facts]] = {}

    def get(self, cluster_id: str) -> _Facts:
        with self._lock:
            hit = self._cached.get(cluster_id)
            if hit is not None and time.monotonic() - hit[0] < self.ttl:
                return hit[1]
            with self.engine.connect() as conn:
                facts = _Facts(*store.feed_facts(conn, cluster_id))
            self._cached[cluster_id] = (time.monotonic(), facts)
            return facts


def _facts_cache(app: FastAPI) -> FactsCache:
    cache = getattr(app.state, "admission_facts", None)
    if cache is None:
        cache = app.state.admission_facts = FactsCache(app.state.engine)
    return cache


# -- the feed -------------------------------------------------------------------------------------


def _line(event: BaseModel) -> bytes:
    return orjson.dumps(event.model_dump(mode="json")) + b"\n"


class _Policies:
    """The two policy documents as a feed last sent them."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.enforcement_revision = ""
        self.trust_revision = ""

    def read(self) -> tuple[enforcement_store.StoredEnforcement, Any]:
        with self.engine.connect() as conn:
            return enforcement_store.load_enforcement(conn), load_policy(conn)

    def changes(self) -> list[BaseModel]:
        enforcement, trust = self.read()
        out: list[BaseModel] = []
        if enforcement.revision != self.enforcement_revision:
            self.enforcement_revision = enforcement.revision
            out.append(
                EnforcementEvent(
                    enforcement=enforcement.policy.model_dump(mode="json"), enforcement_revision=enforcement.revision
                )
            )
        if trust.revision != self.trust_revision:
            self.trust_revision = trust.revision
            out.append(TrustEvent(trust=_trust_document(trust), trust_revision=trust.revision))
        return out


def _trust_document(trust) -> dict[str, Any]:
    # As GET /api/v1/policy/trust shows it, without the revision (the event carries that on its own).
    return PolicyDoc.from_policy(trust).model_dump(mode="json")


def _fresh(sent: dict[str, Any], now: dict[str, Any]) -> list[Any]:
    changed = [v for k, v in now.items() if sent.get(k) != v]
    sent.update({k: now[k] for k in now})
    return changed


@router.get(
    "/api/v1/clusters/{cluster_id}/admission/feed",
    summary="What the cluster's admission webhooks decide from, as NDJSON: a snapshot, then each change "
    "(admission credential of that cluster)",
    response_class=StreamingResponse,
    responses=plain_text(FEED_MEDIA_TYPE, "One vigil.wire.admission FeedEvent per line, a snapshot first"),
)
async def admission_feed(
    cluster_id: str, request: Request, who: Principal = Depends(admission_client)
) -> StreamingResponse:
    own_cluster(who, cluster_id)
    app = request.app
    engine: Engine = app.state.engine
    changes = _changes(app)
    facts_cache = _facts_cache(app)
    policies = _Policies(engine)
    secret = request.headers.get("authorization", "").partition(" ")[2].strip()

    def snapshot() -> tuple[bytes, _Facts]:
        enforcement, trust = policies.read()
        with engine.connect() as conn:
            name = cluster_name(conn, cluster_id) or ""
        policies.enforcement_revision, policies.trust_revision = enforcement.revision, trust.revision
        facts = facts_cache.get(cluster_id)
        event = SnapshotEvent(
            cluster_name=name,
            enforcement=enforcement.policy.model_dump(mode="json"),
            enforcement_revision=enforcement.revision,
            trust=_trust_document(trust),
            trust_revision=trust.revision,
            digests=list(facts.digests.values()),
            tags=list(facts.tags.values()),
        )
        return _line(event), facts

    async def lines() -> AsyncIterator[bytes]:
        first, facts = await run_in_threadpool(snapshot)
        sent_digests, sent_tags = dict(facts.digests), dict(facts.tags)
        yield first
        last_line = last_facts = last_auth = time.monotonic()
        log.info("admission feed opened", extra={"cluster_id": cluster_id, "credential_id": who.token_id})
        while True:
            await changes.wait(REVISION_SECONDS)
            if await request.is_disconnected():
                return
            now = time.monotonic()
            if now - last_auth >= REAUTH_SECONDS:
                last_auth = now
                if not await run_in_threadpool(still_valid, engine, secret):
                    return  # the webhook reconnects with its current credential, or is refused
            out = [_line(e) for e in await run_in_threadpool(policies.changes)]
            if now - last_facts >= FACTS_SECONDS:
                last_facts = now
                facts = await run_in_threadpool(facts_cache.get, cluster_id)
                digests, tags = _fresh(sent_digests, facts.digests), _fresh(sent_tags, facts.tags)
                for i in range(0, max(len(digests), len(tags)), FACTS_PER_EVENT):
                    part = FactsEvent(digests=digests[i : i + FACTS_PER_EVENT], tags=tags[i : i + FACTS_PER_EVENT])
                    out.append(_line(part))
            if not out and now - last_line >= PING_SECONDS:
                out.append(_line(PingEvent(at=utcnow())))
            for chunk in out:
                yield chunk
            if out:
                last_line = now

    return StreamingResponse(
        lines(), media_type=FEED_MEDIA_TYPE, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


# -- decisions ------------------------------------------------------------------------------------


class AdmissionDecision(AdmissionDecisionRecord):
    """A decision as the service keeps it: with the cluster it came from and when it arrived."""

    id: int
    cluster_id: str
    received_at: datetime


@router.post(
    "/api/v1/clusters/{cluster_id}/admission/decisions",
    response_model=DecisionsAccepted,
    summary="Record a batch of the cluster's admission decisions; idempotent per batch_id and request uid "
    "(admission credential of that cluster)",
    openapi_extra=openapi_body(AdmissionDecisionBatch),
)
async def post_decisions(cluster_id: str, request: Request, who: Principal = Depends(admission_client)) -> dict:
    own_cluster(who, cluster_id)
    batch: AdmissionDecisionBatch = await parse_body(request, AdmissionDecisionBatch)
    if batch.cluster_id != cluster_id:
        raise ApiError(
            422, "invalid_request", f"body.cluster_id: {batch.cluster_id!r} is not the path's cluster {cluster_id!r}"
        )

    def work() -> tuple[bool, int]:
        with request.app.state.engine.begin() as conn:
            if not inventory.claim_batch(conn, cluster_id, batch.batch_id, "admission"):
                return True, 0
            return False, store.record_decisions(conn, cluster_id, batch.decisions)

    duplicate, accepted = await run_in_threadpool(work)
    log.info(
        "admission decisions",
        extra={"cluster_id": cluster_id, "batch_id": batch.batch_id, "accepted": accepted, "duplicate": duplicate},
    )
    return {"batch_id": batch.batch_id, "accepted": accepted, "duplicate": duplicate}


@router.get(
    "/api/v1/admission/decisions",
    response_model=Page[AdmissionDecision],
    summary="Admission decisions, newest first (admin, viewer)",
)
def list_decisions(
    request: Request,
    cluster: str | None = Depends(cluster_query),
    namespace: str | None = Query(None, max_length=63),
    outcome: Outcome | None = Query(None),
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    after: str | None = Query(None, description="cursor from the previous page's `next`"),
    who: Principal = Depends(reader),
) -> dict:
    before = None
    if after:
        (before,) = decode_cursor(after, 1)
        if not isinstance(before, int) or not MIN_ROW_ID <= before <= MAX_ROW_ID:
            raise BadCursor(f"cursor {after[:64]!r} is not one this service issued for this listing")
    with request.app.state.engine.connect() as conn:
        rows = store.list_decisions(
            conn, cluster=cluster, namespace=namespace, outcome=outcome, limit=limit + 1, before_id=before
        )
    page = rows[:limit]
    items = [
        {**d.record.model_dump(mode="json"), "id": d.id, "cluster_id": d.cluster_id, "received_at": d.received_at}
        for d in page
    ]
    return {"items": items, "next": encode_cursor([page[-1].id]) if len(rows) > limit else None}
