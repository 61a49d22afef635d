"""docs/alerts/lily.rules.yml: valid (`promtool check rules`), unit-tested (`promtool test rules`), and
written only against metrics Lily exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

# Imported for their side effect: they register the metrics the rules use.
import lily_host.observability.metrics
import lily_host.operations.integration_health
import lily_host.queue.queue_metrics
import lily_host.runtime.ops_metrics
import lily_host.sms.outbound  # noqa: F401

ALERTS = Path(__file__).resolve().parents[2] / "docs" / "alerts"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian: apt-get install prometheus); alert rules not checked"
)


@needs_promtool
def test_rules_pass_promtool_check() -> None:
    done = subprocess.run(
        [str(PROMTOOL), "check", "rules", "lily.rules.yml"], cwd=ALERTS, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_rules_pass_their_unit_tests() -> None:
    done = subprocess.run(
        [str(PROMTOOL), "test", "rules", "lily.rules.test.yml"], cwd=ALERTS, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_rules_use_only_metrics_lily_exports() -> None:
    metrics = list(REGISTRY.collect())
    exported = {metric.name for metric in metrics} | {
        metric.name + "_total" for metric in metrics if metric.type == "counter"
    }
    used = set(re.findall(r"\blily_[a-z_]+", (ALERTS / "lily.rules.yml").read_text()))
    assert used - exported == set()
