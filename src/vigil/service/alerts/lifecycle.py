"""Wiring alerts into the service: the dispatcher on app.state, its background loop in the lifespan."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from vigil.service.alerts.dispatcher import Dispatcher
from vigil.service.settings import Settings


def runs_in_background(settings: Settings) -> bool:
    # Unset: follow the service's background switch (set by `vigil service` and `vigil up`).
    return settings.integrity_background if settings.alerts_background is None else settings.alerts_background


def install(app: FastAPI, settings: Settings, engine: Engine) -> None:
    """Attach ``app.state.alerts``; run its loop while the app runs if the settings say so."""
    app.state.alerts = Dispatcher.from_settings(engine, settings)
    previous = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: FastAPI):
        running: Dispatcher = a.state.alerts  # read at start: a test may have swapped it
        if runs_in_background(settings):
            running.start(settings.alerts_tick)
        try:
            async with previous(a) as state:
                yield state
        finally:
            await run_in_threadpool(running.stop)

    app.router.lifespan_context = lifespan
