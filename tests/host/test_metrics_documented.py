"""docs/operations.md's metric table lists exactly the metrics the code registers, with their labels."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from lily_host.config.host_settings import HostSettings
from lily_host.runtime.registry import PluginRegistry

ROOT = Path(__file__).resolve().parents[2]
_ROW = re.compile(r"^\| `(lily_[a-z_]+)` \| ([^|]*) \|", re.M)


def registered() -> dict[str, set[str]]:
    """Every ``lily_*`` metric registered once the host and every installed plugin are loaded."""
    # Importing these registers the host's metrics (the SMS counters live in sms.outbound).
    import lily_host.observability.metrics
    import lily_host.queue.queue_metrics
    import lily_host.sms.outbound  # noqa: F401

    registry = PluginRegistry(HostSettings(), only=None)
    assert all(record.module is not None for record in registry.records.values() if record.active)
    found: dict[str, set[str]] = {}
    for collector in list(REGISTRY._collector_to_names):  # prometheus_client has no public listing
        if not isinstance(collector, MetricWrapperBase):
            continue
        name = collector._name
        if not name.startswith("lily_"):
            continue
        if collector._type == "counter":
            name += "_total"
        found[name] = set(collector._labelnames)
    return found


def documented() -> dict[str, set[str]]:
    section = (ROOT / "docs" / "operations.md").read_text().split("## Metrics", 1)[1].split("\n## ", 1)[0]
    return {name: set(re.findall(r"`([a-z_]+)`", labels)) for name, labels in _ROW.findall(section)}


def test_every_registered_metric_is_documented_with_its_labels() -> None:
    code, docs = registered(), documented()
    assert set(code) - set(docs) == set(), "metrics missing from docs/operations.md"
    assert set(docs) - set(code) == set(), "docs/operations.md lists metrics the code does not register"
    for name, labels in code.items():
        assert docs[name] == labels, f"{name}: labels in the docs {sorted(docs[name])}, in the code {sorted(labels)}"
