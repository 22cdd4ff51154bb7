"""Prometheus metrics on BentoML's /metrics (bentoml.metrics handles the multi-process registry)."""
from __future__ import annotations

import bentoml

REQUESTS = bentoml.metrics.Counter(name="qwenflow_requests", documentation="Requests by endpoint and HTTP status",
                                   labelnames=["endpoint", "status"])
PROMPT_TOKENS = bentoml.metrics.Counter(name="qwenflow_prompt_tokens", documentation="Prompt tokens processed")
GENERATED_TOKENS = bentoml.metrics.Counter(name="qwenflow_generated_tokens", documentation="Completion tokens generated")
LATENCY = bentoml.metrics.Histogram(name="qwenflow_request_latency_seconds", documentation="Request latency (to last token)",
                                    labelnames=["endpoint"],
                                    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, float("inf")))
QUEUE_DEPTH = bentoml.metrics.Gauge(name="qwenflow_queue_depth", documentation="Requests waiting for a batch slot",
                                    multiprocess_mode="livesum")
