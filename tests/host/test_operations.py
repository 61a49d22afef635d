"""Operators' tools against a real Redis: the webhook log (each outcome, redaction, retention, erasure),
replay (once), the audit log (admin, tenant key, CLI; no secrets), honest health (anonymous, readiness,
workers), integrations failing and recovering, and the secret-key canary."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import types
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import sample_echo_plugin
from click.testing import CliRunner

from lily_host import hookimpl
from lily_host.cli.main import main
from lily_host.observability.log import configure_logging
from lily_host.operations.webhook_log import stream_key
from lily_host.plugin_api.contract import EventSubscription, TaskContext, TaskHandler
from lily_host.tenants.canary import CANARY_KEY, PLAINTEXT
from lily_host.tenants.secret_box import SecretBox
from lily_host.testing import TEST_ADMIN_TOKEN, Harness, HarnessFactory, hmac_sha256_hex
from lily_host.web.api_audit import client_address

ECHO = {"echo": sample_echo_plugin}
ENV = {"ECHO_SECRET": "s"}
NUMBER = "+15550001111"
JSON_PATH = "/webhooks/echo/json"


def restore_logging() -> None:
    """Log to the real stderr again: capsys closes the stream the JSON lines went to."""
    with contextlib.redirect_stderr(sys.__stderr__):
        configure_logging("test", "WARNING")


def signed(body: dict[str, Any], secret: str = "s") -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    return raw, {"Content-Type": "application/json", "X-Echo-Signature": hmac_sha256_hex(secret, raw)}


async def post(lily: Harness, body: dict[str, Any], **kwargs: Any) -> Any:
    raw, headers = signed(body, **kwargs)
    return await lily.client.post(JSON_PATH, data=raw, headers=headers)


async def webhooks(lily: Harness, **query: str) -> dict[str, Any]:
    response = await lily.client.get("/api/webhooks", query_string=query, headers=lily.admin_headers)
    assert response.status_code == 200, await response.get_data()
    data: dict[str, Any] = await response.get_json()
    return data


async def cli(*args: str) -> Any:
    # The CLI runs its own event loop: give it a thread.
    return await asyncio.to_thread(CliRunner().invoke, main, list(args))


async def test_every_webhook_outcome_is_logged_with_secrets_redacted(lily_harness: HarnessFactory) -> None:
    async with lily_harness(extra_modules=ECHO, env=ENV) as lily:
        await lily.create_tenant("acme", plugins={"echo": {"numbers": [NUMBER]}})
        accepted = await post(lily, {"id": "m1", "to": NUMBER, "text": "hi", "api_token": "tok-123"})
        duplicate = await post(lily, {"id": "m1", "to": NUMBER, "text": "hi", "api_token": "tok-123"})
        raw, headers = signed({"id": "m2", "to": NUMBER})
        forged = await lily.client.post(JSON_PATH, data=raw, headers={**headers, "X-Echo-Signature": "0" * 64})
        unknown = await post(lily, {"id": "m3", "to": "+15550009999"})
        invalid = await lily.client.post(JSON_PATH, data=b"{not json", headers=headers)
        wrong_type = await lily.client.post(JSON_PATH, data=b"x", headers={"Content-Type": "text/plain"})
        exploded = await post(lily, {"id": "m4", "to": NUMBER, "explode": True})
        statuses = [r.status_code for r in (accepted, duplicate, forged, unknown, invalid, wrong_type, exploded)]
        assert statuses == [200, 200, 403, 404, 400, 415, 500]

        listing = (await webhooks(lily))["webhooks"]
        by_outcome = {entry["outcome"]: entry for entry in listing}
        assert set(by_outcome) == {
            "accepted",
            "duplicate",
            "bad_signature",
            "unknown_tenant",
            "invalid",
            "unsupported_media_type",
            "error",
        }
        first = by_outcome["accepted"]
        assert first["tenant"] == "acme" and first["status"] == 200 and first["integration"] == "echo"
        assert first["provider_id"] == "m1" and first["verified"] is True
        [task_id] = first["tasks"]
        assert task_id.startswith("echo.record:")
        assert (await lily.host.queue.get(task_id)).delivery == first["id"]  # type: ignore[union-attr]
        assert by_outcome["duplicate"]["tasks"] == []
        forgery = by_outcome["bad_signature"]
        # A forgery naming acme's number is not acme's: it cannot crowd acme's log or hijack a trace.
        assert forgery["verified"] is False and forgery["tenant"] is None and forgery["claimed_tenant"] == "acme"
        assert forgery["id"].startswith("_.")
        assert by_outcome["unknown_tenant"]["tenant"] is None
        assert by_outcome["error"]["reason"] == "RuntimeError: handler bug"
        assert by_outcome["unsupported_media_type"]["status"] == 415

        detail = await lily.client.get(f"/api/webhooks/{first['id']}", headers=lily.admin_headers)
        entry = await detail.get_json()
        assert json.loads(entry["body"])["api_token"] == "[redacted]" and entry["redacted"] is True
        assert entry["headers"]["x-echo-signature"] == "[redacted]"
        assert "tok-123" not in json.dumps(entry)

        only_errors = (await webhooks(lily, outcome="error,bad_signature"))["webhooks"]
        assert {e["outcome"] for e in only_errors} == {"error", "bad_signature"}
        assert [e["outcome"] for e in (await webhooks(lily, tenant="acme", outcome="accepted"))["webhooks"]] == [
            "accepted"
        ]
        page = await webhooks(lily, limit="3")
        rest = await webhooks(lily, limit="10", before=page["next"])
        assert len(page["webhooks"]) == 3 and len(rest["webhooks"]) == 4 and rest["next"] is None
        assert {e["id"] for e in page["webhooks"]}.isdisjoint({e["id"] for e in rest["webhooks"]})
        bad = await lily.client.get("/api/webhooks?since=yesterday-ish", headers=lily.admin_headers)
        assert bad.status_code == 400 and "since" in (await bad.get_json())["message"]
        for query in ("before=zzz", "limit=0", "limit=%C2%B2"):
            refused = await lily.client.get(f"/api/webhooks?{query}", headers=lily.admin_headers)
            assert refused.status_code == 400, query

        listed = await cli("webhooks", "list", "--outcome", "error")
        assert listed.exit_code == 0 and "RuntimeError: handler bug" in listed.output
        shown = await cli("webhooks", "show", first["id"])
        assert shown.exit_code == 0 and "[redacted]" in shown.output and "tok-123" not in shown.output


async def test_replay_of_a_failed_delivery_creates_its_tasks_once(lily_harness: HarnessFactory) -> None:
    async with lily_harness(extra_modules=ECHO, env=ENV) as lily:
        await lily.create_tenant("acme", plugins={"echo": {"numbers": [NUMBER]}})
        await lily.host.redis.set("echo:broken", 1)
        failed = await post(lily, {"id": "m1", "to": NUMBER, "text": "one"})
        assert failed.status_code == 500
        [entry] = (await webhooks(lily, outcome="error"))["webhooks"]
        assert entry["verified"] is True
        await lily.host.redis.delete("echo:broken")

        replayed = await lily.client.post(f"/api/webhooks/{entry['id']}/replay", headers=lily.admin_headers)
        assert replayed.status_code == 201
        result = await replayed.get_json()
        assert result["outcome"] == "accepted" and result["replay_of"] == entry["id"] and len(result["tasks"]) == 1
        again = await (
            await lily.client.post(f"/api/webhooks/{entry['id']}/replay", headers=lily.admin_headers)
        ).get_json()
        assert again["outcome"] == "duplicate" and again["tasks"] == []
        await lily.run_due()
        assert await lily.host.redis.lrange("echo:seen", 0, -1) == [b"acme:one"]
        replay_entry = await lily.client.get(f"/api/webhooks/{result['id']}", headers=lily.admin_headers)
        assert (await replay_entry.get_json())["replay_of"] == entry["id"]

        # Bulk: two more fail; count first, then replay: each original's tasks exactly once.
        await lily.host.redis.set("echo:broken", 1)
        await post(lily, {"id": "m2", "to": NUMBER, "text": "two"})
        await post(lily, {"id": "m3", "to": NUMBER, "text": "three"})
        await lily.host.redis.delete("echo:broken")
        await lily.host.webhook_log.drain()  # the CLI reads from its own process
        dry = await cli("webhooks", "replay", "--outcome", "error", "--since", "2h", "--dry-run")
        assert dry.exit_code == 0, dry.output
        assert dry.output.startswith("3 deliveries would be replayed")
        body = {"outcome": "error", "since": "2h", "dry_run": False}
        bulk = await (await lily.client.post("/api/webhooks/replay", json=body, headers=lily.admin_headers)).get_json()
        assert sorted(item["outcome"] for item in bulk["replayed"]) == ["accepted", "accepted", "duplicate"]
        await lily.run_due()
        assert sorted(await lily.host.redis.lrange("echo:seen", 0, -1)) == [b"acme:one", b"acme:three", b"acme:two"]
        refused = await lily.client.post("/api/webhooks/replay", json={"dry_run": False}, headers=lily.admin_headers)
        assert refused.status_code == 400


async def test_unverified_deliveries_cannot_be_replayed(lily_harness: HarnessFactory) -> None:
    async with lily_harness(extra_modules=ECHO, env=ENV) as lily:
        await lily.create_tenant("acme", plugins={"echo": {"numbers": [NUMBER]}})
        raw, headers = signed({"id": "m9", "to": NUMBER})
        await lily.client.post(JSON_PATH, data=raw, headers={**headers, "X-Echo-Signature": "0" * 64})
        [entry] = (await webhooks(lily))["webhooks"]
        refused = await lily.client.post(f"/api/webhooks/{entry['id']}/replay", headers=lily.admin_headers)
        assert refused.status_code == 409 and "verified" in (await refused.get_json())["message"]


async def test_webhook_log_retention_cap_and_erasure(lily_harness: HarnessFactory) -> None:
    async with lily_harness(extra_modules=ECHO, env={**ENV, "LILY_WEBHOOK_LOG_MAX_ENTRIES": "100"}) as lily:
        await lily.create_tenant("acme", retention_days=1, plugins={"echo": {"numbers": [NUMBER]}})
        redis = lily.host.redis
        key = stream_key("acme")
        now_ms = int((await redis.time())[0]) * 1000
        await redis.xadd(key, {"id": "old"}, id=f"{now_ms - 2 * 86400 * 1000}-0")
        await redis.xadd(key, {"id": "recent"}, id=f"{now_ms - 3600 * 1000}-0")
        await post(lily, {"id": "m1", "to": NUMBER})
        await lily.host.webhook_log.drain()  # appends are sent after the answer
        ids = [fields[b"id"] for _, fields in await redis.xrange(key)]
        assert b"old" not in ids and b"recent" in ids  # older than the tenant's retention: trimmed
        for index in range(250):
            await post(lily, {"id": f"n{index}", "to": NUMBER})
        await lily.host.webhook_log.drain()
        assert await redis.xlen(key) <= 200  # the global cap (approximate trimming keeps at most twice it)
        await lily.run_due()  # the deliveries' tasks ran: their traces exist
        assert [k async for k in redis.scan_iter(match="lily:trace:acme.*")] != []

        response = await lily.client.delete("/api/tenants/acme", headers=lily.admin_headers)
        assert response.status_code == 204
        await lily.run_due()
        assert not await redis.exists(key)
        assert [k async for k in redis.scan_iter(match="lily:trace:acme.*")] == []
        audit = await (await lily.client.get("/api/audit?tenant=acme", headers=lily.admin_headers)).get_json()
        assert "DELETE /api/tenants/<tenant_id>" in [entry["action"] for entry in audit["audit"]]


async def test_audit_entries_for_admin_tenant_key_and_cli_hold_no_secret(lily_harness: HarnessFactory) -> None:
    async with lily_harness(extra_modules=ECHO, env=ENV) as lily:
        await lily.create_tenant("acme", contact_phone="+15551234567")
        created = await lily.client.post(
            "/api/tenants/acme/keys",
            json={"label": "crm"},
            headers={**lily.admin_headers, "X-Forwarded-For": "203.0.113.9"},
        )
        secret = (await created.get_json())["key"]
        assert (
            await lily.client.get("/plugins/echo/whoami", headers={"Authorization": f"Bearer {secret}"})
        ).status_code == 200
        assert (await lily.client.get("/api/tenants", headers={"Authorization": "Bearer nope"})).status_code == 403
        changed = await cli("tenants", "set", "acme", "contact_phone=+15557654321")
        assert changed.exit_code == 0, changed.output
        shown = await cli("tenants", "show", "acme")
        assert shown.exit_code == 0

        entries, _ = await lily.host.audit.list(limit=50)
        actions = [(e["actor"].split(":")[0], e["action"], e["outcome"]) for e in entries]
        assert ("admin", "POST /api/tenants/<tenant_id>/keys", "201") in actions
        assert ("key", "GET /plugins/echo/whoami", "200") in actions
        assert ("invalid-admin-token", "GET /api/tenants", "403") in actions
        assert ("cli", "cli tenants set", "ok") in actions
        assert ("cli", "cli tenants show", "ok") in actions
        key_entry = next(e for e in entries if e["actor"].startswith("key:"))
        assert key_entry["tenant"] == "acme" and key_entry["detail"] == {"label": "crm"}
        admin_entry = next(e for e in entries if e["action"] == "POST /api/tenants/<tenant_id>/keys")
        # The test client is no trusted proxy: its X-Forwarded-For is not believed.
        assert admin_entry["remote_addr"] == "<local>" and admin_entry["resource"] == {"tenant_id": "acme"}
        cli_entry = next(e for e in entries if e["action"] == "cli tenants set")
        assert cli_entry["tenant"] == "acme" and cli_entry["resource"] == {
            "args": ["acme", "contact_phone=+1******4321"]
        }
        everything = json.dumps(entries)
        for leaked in (secret, TEST_ADMIN_TOKEN, "+15557654321", "+15551234567"):
            assert leaked not in everything

        audited = await cli("audit", "--tenant", "acme", "--actor", "cli")
        assert audited.exit_code == 0 and "cli tenants set" in audited.output


def test_audited_client_address_follows_the_trusted_proxy_rules() -> None:
    trusted = ["127.0.0.1", "10.0.0.0/8"]
    assert client_address("127.0.0.1", "203.0.113.9, 10.1.2.3", trusted) == "203.0.113.9"
    assert client_address("198.51.100.7", "203.0.113.9", trusted) == "198.51.100.7"  # not a proxy of ours
    assert client_address("127.0.0.1", "", trusted) == "127.0.0.1"


async def test_anonymous_health_reveals_only_a_status_and_calls_no_provider(lily_harness: HarnessFactory) -> None:
    async with lily_harness(extra_modules=ECHO, env=ENV) as lily:
        await lily.create_tenant("acme-secret-id", plugins={"echo": {"numbers": [NUMBER]}})
        anonymous = await lily.client.get("/health")
        assert anonymous.status_code == 200 and await anonymous.get_json() == {"status": "ok"}
        assert await lily.host.redis.get("echo:health_calls") is None
        wrong = await lily.client.get("/health", headers={"Authorization": "Bearer wrong"})
        assert await wrong.get_json() == {"status": "ok"}
        detailed = await (await lily.client.get("/health", headers=lily.admin_headers)).get_json()
        assert detailed["plugins"]["echo"]["checks"]["echo_api"]["state"] == "ok"
        assert await lily.host.redis.get("echo:health_calls") == b"1"
        # A task due and no worker: failed, for anonymous callers too (from Redis, no provider call).
        await lily.host.queue.schedule("echo.record", {"text": "x"}, tenant="acme-secret-id")
        anonymous = await lily.client.get("/health")
        assert anonymous.status_code == 503 and await anonymous.get_json() == {"status": "failed"}
        assert await lily.host.redis.get("echo:health_calls") == b"1"
        assert (await (await lily.client.get("/health", headers=lily.admin_headers)).get_json())["status"] == "failed"
        anonymous = await lily.client.get("/health")
        assert anonymous.status_code == 503
        text = await anonymous.get_data(as_text=True)
        assert json.loads(text) == {"status": "failed"} and "acme-secret-id" not in text


async def test_health_shows_queue_workers_and_dead_letters(lily_harness: HarnessFactory) -> None:
    async with lily_harness(extra_modules=ECHO, env=ENV) as lily:
        queue = lily.host.queue
        await queue.schedule("echo.record", {"text": "x"}, tenant=None, max_attempts=1)
        report = await (await lily.client.get("/health", headers=lily.admin_headers)).get_json()
        assert report["queue"]["state"] == "failed" and "no live worker" in report["queue"]["message"]
        assert report["queue"]["oldest_overdue"]["type"] == "echo.record"

        worker = lily.host.make_worker(lease=5.0)
        running = asyncio.create_task(worker.run())
        for _ in range(100):
            if (await (await lily.client.get("/api/workers", headers=lily.admin_headers)).get_json())["workers"]:
                break
            await asyncio.sleep(0.05)
        listed = await cli("workers")
        assert listed.exit_code == 0 and worker.worker_id in listed.output
        await lily.host.redis.set("echo:record_broken", 1)
        await queue.schedule("echo.record", {"text": "y"}, tenant=None, max_attempts=1)
        for _ in range(100):
            if (await queue.stats()).dead:
                break
            await asyncio.sleep(0.05)
        report = await (await lily.client.get("/health", headers=lily.admin_headers)).get_json()
        assert report["queue"]["workers"]["live"] == 1
        assert report["queue"]["dead_last_hour"] == {"echo.record": 1}
        for _ in range(100):  # the worker writes a run's history with its next ack flush
            dead = await (await lily.client.get("/api/tasks?state=dead", headers=lily.admin_headers)).get_json()
            if dead["tasks"] and dead["tasks"][0]["runs"]:
                break
            await asyncio.sleep(0.05)
        [task] = dead["tasks"]
        assert task["state"] == "dead" and task["runs"][0]["outcome"] == "dead"
        assert "echo provider refused the call" in task["last_error"]
        shown = await (await lily.client.get(f"/api/tasks/{task['id']}", headers=lily.admin_headers)).get_json()
        assert shown["id"] == task["id"] and shown["attempts"] == 1
        await lily.host.redis.delete("echo:record_broken")
        retried = await lily.client.post(f"/api/tasks/{task['id']}/retry", headers=lily.admin_headers)
        assert retried.status_code == 200
        for _ in range(100):
            view = await (await lily.client.get(f"/api/tasks/{task['id']}", headers=lily.admin_headers)).get_json()
            if view["state"] == "done":
                break
            await asyncio.sleep(0.05)
        assert view["state"] == "done" and [run["outcome"] for run in view["runs"]] == ["dead", "ok"]
        again = await lily.client.post(f"/api/tasks/{task['id']}/retry", headers=lily.admin_headers)
        assert again.status_code == 409
        worker.stop()
        await running
        assert (await cli("workers")).exit_code == 1  # "no live worker"


async def test_wrong_secret_key_is_not_ready_and_webhooks_answer_503(lily_harness: HarnessFactory) -> None:
    async with lily_harness(extra_modules=ECHO, env=ENV) as lily:
        ready = await lily.client.get("/readyz")
        assert ready.status_code == 200 and (await ready.get_json())["status"] == "ready"
        other = SecretBox([SecretBox.generate_key()])
        await lily.host.redis.set(CANARY_KEY, other.encrypt(PLAINTEXT))
        ready = await lily.client.get("/readyz")
        report = await ready.get_json()
        assert ready.status_code == 503 and report["checks"]["secret_key"]["state"] == "failed"
        assert "LILY_SECRET_KEY=<new>,<old>" in report["checks"]["secret_key"]["message"]
        assert (await lily.client.get("/health")).status_code == 503


Recorded = list[tuple[str, dict[str, Any]]]


def integration_listener(seen: Recorded) -> types.ModuleType:
    module = types.ModuleType("integration_listener")

    def record(event: str) -> Callable[[TaskContext, dict[str, Any]], Awaitable[None]]:
        async def run(ctx: TaskContext, payload: dict[str, Any]) -> None:
            seen.append((event, payload))

        return run

    @hookimpl
    def register_tasks(register: Callable[[TaskHandler], None]) -> None:
        register(TaskHandler("listener.failing", record("integration.failing")))
        register(TaskHandler("listener.recovered", record("integration.recovered")))

    @hookimpl
    def register_event_subscriptions(register: Callable[[EventSubscription], None]) -> None:
        register(EventSubscription("integration.failing", "listener.failing"))
        register(EventSubscription("integration.recovered", "listener.recovered"))

    module.register_tasks = register_tasks  # type: ignore[attr-defined]
    module.register_event_subscriptions = register_event_subscriptions  # type: ignore[attr-defined]
    return module


async def test_failing_and_recovered_are_logged_and_emitted_once_each(
    lily_harness: HarnessFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: Recorded = []
    modules = {**ECHO, "listener": integration_listener(seen)}
    async with lily_harness(extra_modules=modules, env=ENV) as lily:
        configure_logging("production", "INFO")
        capsys.readouterr()
        await lily.host.redis.set("echo:record_broken", 1)
        for index in range(8):
            await lily.host.queue.schedule("echo.record", {"text": str(index)}, tenant=None, max_attempts=1)
        await lily.run_due()
        report = await (await lily.client.get("/health", headers=lily.admin_headers)).get_json()
        assert report["integrations"]["echo"]["state"] == "failing"
        assert report["plugins"]["echo"]["state"] == "degraded" and report["status"] in ("degraded", "failed")
        await lily.host.redis.delete("echo:record_broken")
        # Recovery needs the window's error ratio under the threshold again: enough successes.
        for index in range(10):
            await lily.host.queue.schedule("echo.record", {"text": f"ok{index}"}, tenant=None)
        await lily.run_due()
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
        events = [line["event"] for line in lines if line.get("integration") == "echo"]
        assert events.count("integration failing") == 1
        assert events.count("integration recovered") == 1
        assert [event for event, _ in seen] == ["integration.failing", "integration.recovered"]
        assert seen[0][1]["integration"] == "echo" and seen[0][1]["consecutive_failures"] >= 5
        assert (await lily.host.integrations.state("echo"))["state"] == "ok"
    restore_logging()


async def test_paging_across_tenants_keeps_entries_that_share_a_stream_id(lily_harness: HarnessFactory) -> None:
    """Streams are per tenant, so two entries may carry the same stream id (same millisecond and
    sequence): the cursor breaks the tie with the record id, and no page loses or repeats one."""
    async with lily_harness() as lily:
        redis = lily.host.redis
        for tenant in ("acme", "bravo", "coco"):
            for ms in (1_700_000_000_001, 1_700_000_000_002):
                entry = {"id": f"{tenant}.{ms}.x", "at": ms / 1000, "integration": "echo", "outcome": "accepted"}
                await redis.xadd(stream_key(tenant), {"id": entry["id"], "r": json.dumps(entry)}, id=f"{ms}-0")
                await redis.sadd("lily:webhooks:logs", stream_key(tenant))
        seen: list[str] = []
        cursor = None
        for _ in range(10):
            page, cursor = await lily.host.webhook_log.list(limit=2, before=cursor)
            seen += [entry["id"] for entry in page]
            if cursor is None:
                break
        assert sorted(seen) == sorted(
            f"{t}.{ms}.x" for t in ("acme", "bravo", "coco") for ms in (1700000000001, 1700000000002)
        )
        assert len(seen) == len(set(seen)) == 6


def test_redaction_knows_every_secret_word_and_header_case() -> None:
    """The spelt-out body check and the header-name memo agree with the list of secret words."""
    from lily_host.operations.webhook_log import _SECRET_WORDS, _mentions_secret, redact_body, redact_headers

    for word in _SECRET_WORDS:
        assert _mentions_secret(f"x_{word}_y"), word
        assert redact_headers([(f"X-{word.upper()}", "v"), ("Accept", "*/*")]) == {
            f"x-{word}": "[redacted]",
            "accept": "*/*",
        }
    assert redact_body(b"a=1&b=2", "application/x-www-form-urlencoded") == ("a=1&b=2", False)
    assert redact_body(b"a=1&Password=hunter2", "application/x-www-form-urlencoded") == (
        "a=1&Password=%5Bredacted%5D",
        True,
    )
