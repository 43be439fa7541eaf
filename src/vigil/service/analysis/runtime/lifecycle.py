"""Wiring runtime analysis into the service: the analyzer on ``app.state``, its thread in the lifespan."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import Engine

from vigil.service.analysis.runtime.runner import RuntimeAnalyzer
from vigil.service.settings import Settings


def install(app: FastAPI, settings: Settings, engine: Engine) -> None:
    """Attach ``app.state.runtime_analyzer``; run it in the background while the app serves
    (unless ``settings.runtime_analysis`` is off: then records queue and passes run by hand)."""
    app.state.runtime_analyzer = RuntimeAnalyzer(
        engine,
        watch_period=settings.runtime_watch_period,
        label_interval=settings.runtime_label_interval,
    )
    previous = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: FastAPI):
        analyzer: RuntimeAnalyzer = a.state.runtime_analyzer
        if settings.runtime_analysis:
            analyzer.start(settings.runtime_tick)
        try:
            async with previous(a) as state:
                yield state
        finally:
            analyzer.stop()

    app.router.lifespan_context = lifespan
