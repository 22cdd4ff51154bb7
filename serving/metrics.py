"""Prometheus metrics on BentoML's /metrics (bentoml.metrics handles the multi-process registry)."""

from __future__ import annotations

import bentoml

REQUESTS = bentoml.metrics.Counter(
    name="qwenflow_requests", documentation="Requests by endpoint and HTTP status", labelnames=["endpoint", "status"]
)
PROMPT_TOKENS = bentoml.metrics.Counter(name="qwenflow_prompt_tokens", documentation="Prompt tokens processed")
GENERATED_TOKENS = bentoml.metrics.Counter(
    name="qwenflow_generated_tokens", documentation="Completion tokens generated"
)
LATENCY = bentoml.metrics.Histogram(
    name="qwenflow_request_latency_seconds",
    documentation="Request latency (to last token)",
    labelnames=["endpoint"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, float("inf")),
)
QUEUE_DEPTH = bentoml.metrics.Gauge(
    name="qwenflow_queue_depth", documentation="Requests waiting for a batch slot", multiprocess_mode="livesum"
)

# The routes this service answers; anything else is counted as "other", so random URLs cannot grow /metrics.
ROUTES = ("/v1/chat/completions", "/v1/completions", "/v1/models")
# BentoML's own routes (probes, metrics, its index and API schema); its static UI assets are left out on purpose.
BENTOML_ROUTES = ("/metrics", "/readyz", "/livez", "/healthz", "/health", "/", "/docs.json", "/schema.json")
UNKNOWN = "/unknown-route"


def route(path: str) -> str:
    return path if path in ROUTES else "other"


def bound_bentoml_route_labels() -> None:
    """BentoML's traffic-metrics middleware labels every series with the raw URL path, so each random 404 path adds
    new series forever. It sits outside anything a service can add, so requests for paths no route serves reach it
    (and the router, which answers 404 as before) under one fixed path. Checked against bentoml 1.4.40."""
    from bentoml._internal.server.http import instruments

    cls = instruments.RunnerTrafficMetricsMiddleware
    if getattr(cls, "_qwenflow_bounded", False):
        return
    original = cls.__call__

    async def bounded(self, scope, receive, send):
        if scope.get("type") == "http" and scope.get("path") not in ROUTES + BENTOML_ROUTES:
            scope = {**scope, "path": UNKNOWN, "raw_path": UNKNOWN.encode()}
        return await original(self, scope, receive, send)

    cls.__call__, cls._qwenflow_bounded = bounded, True
