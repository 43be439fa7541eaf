"""Wiring integrity into the service: the policy file at start, the evaluator, its background thread."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import Engine

from vigil.registry import RegistryClient, RegistryConfig
from vigil.service.analysis.integrity_runner import IntegrityEvaluator
from vigil.service.analysis.policy_doc import load_policy_file
from vigil.service.settings import Settings
from vigil.service.store.policy import replace_policy

log = logging.getLogger(__name__)

# Tag answers expire a little before the next reverify, so each reverify sees the registry
# as it is, while images evaluated in between share the answers (one request per tag per interval).
TAG_TTL_FRACTION = 0.9


def make_evaluator(settings: Settings, engine: Engine) -> IntegrityEvaluator:
    config = RegistryConfig.load(settings.registry_config)
    client = RegistryClient(config, tag_ttl=settings.reverify_interval * TAG_TTL_FRACTION)
    return IntegrityEvaluator(engine, client, reverify_interval=settings.reverify_interval)


def load_trust_file(settings: Settings, engine: Engine) -> None:
    if settings.trust_file is None:
        return
    policy = load_policy_file(settings.trust_file)  # PolicyFileError names the file and field
    with engine.begin() as conn:
        replace_policy(conn, policy, actor=f"file:{settings.trust_file}")


def install(app: FastAPI, settings: Settings, engine: Engine, tick: float = 2.0) -> None:
    """Load the policy file, attach ``app.state.integrity``; run passes in the background if configured."""
    load_trust_file(settings, engine)
    evaluator = make_evaluator(settings, engine)
    app.state.integrity = evaluator
    previous = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: FastAPI):
        # Read at start, not at install: a test or embedder may have swapped the evaluator in between.
        running: IntegrityEvaluator = a.state.integrity
        if settings.integrity_background:
            running.start(tick)
        try:
            async with previous(a) as state:
                yield state
        finally:
            running.stop()
            running.client.close()

    app.router.lifespan_context = lifespan
