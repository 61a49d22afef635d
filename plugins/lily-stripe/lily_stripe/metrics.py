"""The plugin's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter

EVENTS = Counter(
    "lily_stripe_events_total",
    "Verified Stripe events by type and outcome (synced, ignored, unknown_tenant, duplicate)",
    ["type", "outcome"],
)
