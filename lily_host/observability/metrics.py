"""Prometheus metrics of the host. The queue's own live in lily_host/scheduler/metrics.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

WEBHOOKS = Counter(
    "lily_webhooks_total",
    "Inbound webhooks by integration and outcome "
    "(accepted, duplicate, bad_signature, unknown_tenant, invalid, too_large, unsupported_media_type, "
    "not_configured, unavailable, error)",
    ["integration", "outcome"],
)
WEBHOOK_SECONDS = Histogram(
    "lily_webhook_duration_seconds",
    "Time to answer an inbound webhook",
    ["integration"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
API_CALL_SECONDS = Histogram(
    "lily_external_api_duration_seconds",
    "Latency of calls to providers' APIs",
    ["integration", "operation"],
)
API_CALL_ERRORS = Counter(
    "lily_external_api_errors_total",
    "Failed calls to providers' APIs",
    ["integration", "operation", "error"],
)
EVENTS = Counter("lily_events_total", "Domain events emitted, by event and number of subscribers", ["event"])


@contextmanager
def track_api_call(integration: str, operation: str) -> Iterator[None]:
    """Time a call to a provider's API and count its failures by exception type."""
    started = time.perf_counter()
    try:
        yield
    except BaseException as error:
        API_CALL_ERRORS.labels(integration, operation, type(error).__name__).inc()
        raise
    finally:
        API_CALL_SECONDS.labels(integration, operation).observe(time.perf_counter() - started)


def render_latest() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
