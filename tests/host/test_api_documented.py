"""docs/api.md documents every public name, both contexts attribute by attribute, and the host interface
member by member; a name added to the API without its documentation fails here."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import lily_host
import lily_host.fakes
import lily_host.testing
from lily_host import LilyHost, TaskContext, TenantDirectory, WebhookContext

ROOT = Path(__file__).resolve().parents[2]
API = (ROOT / "docs" / "api.md").read_text()


def headings() -> set[str]:
    return set(re.findall(r"^### `([^`]+)`", API, flags=re.M))


def section(title: str) -> str:
    match = re.search(rf"^### `{re.escape(title)}`\n(.*?)(?=^##+ |\Z)", API, flags=re.M | re.S)
    assert match, f"docs/api.md has no section for {title}"
    return match.group(1)


def public_members(protocol: type) -> list[str]:
    return sorted(
        name
        for name, value in vars(protocol).items()
        if not name.startswith("_") and (inspect.isfunction(value) or isinstance(value, property))
    )


def test_every_name_of_the_three_public_modules_has_a_section() -> None:
    documented = headings()
    for module in (lily_host, lily_host.testing, lily_host.fakes):
        missing = sorted(set(module.__all__) - documented)
        assert not missing, f"{module.__name__}: undocumented in docs/api.md: {missing}"


def test_the_facade_exports_exactly_what_it_lists() -> None:
    for name in lily_host.__all__:
        assert getattr(lily_host, name) is not None
    assert "Host" not in lily_host.__all__ and "TenantStore" not in lily_host.__all__


def test_every_task_context_attribute_is_documented() -> None:
    text = section("TaskContext")
    fields = [f.name for f in dataclasses.fields(TaskContext) if f.name not in {"schedule_task", "tenant_record"}]
    for name in [*fields, "tenant", "now", "schedule"]:
        assert f"`ctx.{name}" in text or f"ctx.{name}(" in text, f"TaskContext.{name} is not in docs/api.md"


def test_every_webhook_context_attribute_is_documented() -> None:
    text = section("WebhookContext")
    context = WebhookContext(
        host=None,  # type: ignore[arg-type]
        tenant=None,
        integration="x",
        delivery_id=None,
        log=None,  # type: ignore[arg-type]
        fanout=lambda *a, **k: [],
        seen_before=None,  # type: ignore[arg-type]
    )
    names = [name for name in vars(context) if not name.startswith("_")]
    names += [name for name, value in vars(WebhookContext).items() if not name.startswith("_") and callable(value)]
    names += ["tenant_id"]
    for name in names:
        assert f"ctx.{name}" in text, f"WebhookContext.{name} is not in docs/api.md"


def test_every_host_member_is_documented() -> None:
    text = section("LilyHost")
    for name in public_members(LilyHost):
        assert f"host.{name}" in text, f"LilyHost.{name} is not in docs/api.md"


def test_every_tenant_directory_member_is_documented() -> None:
    text = section("TenantDirectory")
    for name in public_members(TenantDirectory):
        assert f"tenants.{name}(" in text, f"TenantDirectory.{name} is not in docs/api.md"


def test_the_harness_is_documented_member_by_member() -> None:
    text = section("Harness")
    members = [name for name, value in vars(lily_host.testing.Harness).items() if not name.startswith("_")]
    for name in [*members, "app", "client", "clock", "host", "admin_headers"]:
        assert f"lily.{name}" in text, f"Harness.{name} is not in docs/api.md"
