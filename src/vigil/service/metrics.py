"""Prometheus metrics, one registry per app so that several apps (tests) can coexist."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "vigil_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "vigil_http_request_duration_seconds", "HTTP request latency", ["method", "route"], registry=self.registry
        )
        self.ingest_batches = Counter(
            "vigil_ingest_batches_total", "Inventory batches received", ["kind", "result"], registry=self.registry
        )
        self.ingest_objects = Counter(
            "vigil_ingest_objects_total", "Inventory objects applied", ["type"], registry=self.registry
        )
