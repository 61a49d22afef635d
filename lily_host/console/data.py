"""What each console page shows, gathered with indexed reads so a page stays cheap at scale
(10,000 tenants, 100,000 logged deliveries: ``nox -s bench`` prints the figures)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from lily_host.observability.log import mask_phone
from lily_host.operations.audit_log import _SECRET_WORDS, clean
from lily_host.operations.webhook_index import FAILED_MAX_ENTRIES, last_hour, recent
from lily_host.operations.webhook_log import REDACTED, stream_key
from lily_host.plugin_api.redis_typing import awaited
from lily_host.runtime.health import collect_health
from lily_host.runtime.webhook_replay import replayable
from lily_host.sms.compliance import _suppressed_key
from lily_host.sms.outbound import index_key
from lily_host.sms.outbox import Outbox, held_texts
from lily_host.tenants.store import index_fields

if TYPE_CHECKING:
    from lily_host.runtime.host import Host

OUTCOMES = (
    "accepted",
    "duplicate",
    "error",
    "invalid",
    "bad_signature",
    "unknown_tenant",
    "not_configured",
    "unavailable",
    "too_large",
    "timeout",
)
HEALTH_CACHE_KEY = "lily:console:health"
HEALTH_CACHE_SECONDS = 15
#: Deliveries replayed at most by one bulk replay.
BULK_LIMIT = 500
_PURGE_ONE = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HINCRBY', KEYS[4], 'dead|' .. (string.match(ARGV[1], '^(.*):') or ''), -1)
return 1
"""


def secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def masked(value: Any) -> Any:
    """For display: phone numbers masked (as the audit log masks them) and values under
    secret-looking names shown as ``[redacted]``, at any depth."""
    if isinstance(value, Mapping):
        return {
            str(k): (REDACTED if secret_name(str(k)) and v not in (None, "") else masked(v)) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [masked(item) for item in value]
    if isinstance(value, str):
        return clean(value)
    return value


def integration_names(host: Host) -> list[str]:
    return sorted({endpoint.integration or plugin for plugin, endpoint in host.registry.webhooks})


# --- overview -------------------------------------------------------------------------------------------


#: How long a shared health report is kept at all (shown while a fresh one is being made).
HEALTH_KEEP_SECONDS = 600
#: How long a page waits for a health report when there is none yet before showing "checking".
HEALTH_WAIT_SECONDS = 0.05
_refreshing: set[asyncio.Task[None]] = set()


async def _refresh_health(host: Host) -> None:
    report = await collect_health(host)
    report["checked_at"] = time.time()
    await host.redis.set(HEALTH_CACHE_KEY, json.dumps(report, default=str), ex=HEALTH_KEEP_SECONDS)


def _start_refresh(host: Host) -> asyncio.Task[None]:
    task = asyncio.get_running_loop().create_task(_refresh_health(host))
    _refreshing.add(task)  # held until done: a task nobody holds may be collected mid-flight
    task.add_done_callback(_refreshing.discard)
    return task


def _checking_report() -> dict[str, Any]:
    """What the overview shows before the first health report exists (it refreshes itself)."""
    return {
        "status": "checking",
        "ready": {"checks": {}},
        "plugins": {},
        "queue": {
            "workers": {"live": "…", "list": []},
            "message": "Health checks are running; this page shows them when it refreshes.",
        },
        "integrations": {},
        "elapsed_seconds": 0.0,
        "checked_at": time.time(),
    }


async def health_report(host: Host) -> dict[str, Any]:
    """The shared health report, without making a page wait for the providers.

    Health checks call the providers: however many consoles are open and refreshing, they run at
    most once per HEALTH_CACHE_SECONDS (one process takes the refresh lock), in the background; a
    page shows the last report meanwhile, so it answers in milliseconds whatever the checks cost.
    """
    raw = await host.redis.get(HEALTH_CACHE_KEY)
    report: dict[str, Any] | None = json.loads(raw) if raw is not None else None
    stale = report is None or time.time() - float(report.get("checked_at") or 0) >= HEALTH_CACHE_SECONDS
    if stale and await host.redis.set(HEALTH_CACHE_KEY + ":refreshing", "1", nx=True, ex=HEALTH_CACHE_SECONDS):
        task = _start_refresh(host)
        if report is None:
            done, _ = await asyncio.wait({task}, timeout=HEALTH_WAIT_SECONDS)
            if done and not task.exception():
                raw = await host.redis.get(HEALTH_CACHE_KEY)
                report = json.loads(raw) if raw is not None else None
    return report if report is not None else _checking_report()


async def overview(host: Host) -> dict[str, Any]:
    report = await health_report(host)
    stats = await host.queue.stats(ready_by_type=False)
    hour = await last_hour(host.redis)
    totals: dict[str, int] = {}
    for by_outcome in hour.values():
        for outcome, count in by_outcome.items():
            totals[outcome] = totals.get(outcome, 0) + count
    failing = {name: state for name, state in report["integrations"].items() if state["state"] == "failing"}
    return {
        "status": report["status"],
        "ready": report["ready"],
        "plugins": report["plugins"],
        "queue": report["queue"],
        "stats": stats,
        "hour": hour,
        "hour_outcomes": sorted(totals),
        "hour_total": sum(totals.values()),
        "failing": failing,
        "integrations": report["integrations"],
        "elapsed": report["elapsed_seconds"],
        "checked_at": report["checked_at"],
    }


# --- webhooks -------------------------------------------------------------------------------------------


async def webhooks(
    host: Host, filters: dict[str, Any], *, before: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None, int]:
    """A page of deliveries newest first: (entries, cursor, entries scanned)."""
    if filters.get("tenant"):
        # One tenant: its own stream, already the index.
        entries, cursor = await host.webhook_log.list(
            tenant=filters["tenant"],
            integration=filters.get("integration"),
            outcome=filters.get("outcome"),
            since=filters.get("since"),
            until=filters.get("until"),
            before=before,
            limit=limit,
            scan_limit=5000,
        )
        for entry in entries:
            entry["ntasks"] = len(entry["tasks"])
        return entries, cursor, len(entries)
    outcomes = set(str(filters["outcome"]).split(",")) if filters.get("outcome") else None
    return await recent(
        host.redis,
        integration=filters.get("integration"),
        outcomes=outcomes,
        since=filters.get("since"),
        until=filters.get("until"),
        before=before,
        limit=limit,
    )


def masked_headers(headers: dict[str, str]) -> list[tuple[str, str]]:
    return sorted((name, str(masked(value))) for name, value in headers.items())


def body_view(entry: dict[str, Any]) -> dict[str, Any]:
    """The logged (already redacted) body for display: form fields as rows, JSON pretty; numbers masked."""
    body = str(entry.get("body") or "")
    content_type = entry.get("content_type", "")
    if content_type == "application/x-www-form-urlencoded":
        pairs = parse_qsl(body, keep_blank_values=True)
        return {"kind": "form", "rows": [(name, _mask_value(name, value)) for name, value in pairs]}
    if content_type == "application/json":
        try:
            return {"kind": "text", "text": json.dumps(masked(json.loads(body)), indent=2)}
        except (ValueError, RecursionError):
            pass
    return {"kind": "text", "text": masked(body)}


def _mask_value(name: str, value: str) -> str:
    masked_value = str(masked(value))
    if masked_value == value and name.lower() in ("from", "to", "caller", "called", "phone") and value:
        return mask_phone(value)
    return masked_value


async def bulk_candidates(host: Host, filters: dict[str, Any], *, fetch: bool) -> tuple[list[dict[str, Any]], int]:
    """Deliveries a bulk replay would run again, newest first, and how many matched.

    Without ``fetch`` (the preview) the entries are the index's summaries: counting reads no
    tenant's log. With it, each is read whole from its tenant's log, ready to replay.
    """
    if filters.get("tenant"):
        entries, _ = await host.webhook_log.list(
            tenant=filters["tenant"],
            integration=filters.get("integration"),
            outcome=filters.get("outcome"),
            since=filters.get("since"),
            until=filters.get("until"),
            limit=BULK_LIMIT,
        )
        return [entry for entry in entries if replayable(entry) and not entry["replay_of"]], len(entries)
    outcomes = set(str(filters["outcome"]).split(",")) if filters.get("outcome") else None
    summaries, _, _ = await recent(
        host.redis,
        integration=filters.get("integration"),
        outcomes=outcomes,
        since=filters.get("since"),
        until=filters.get("until"),
        limit=BULK_LIMIT,
        scan_limit=FAILED_MAX_ENTRIES,
    )
    # A replay is not replayed again by a bulk replay (its original is, if it still matches).
    chosen = [summary for summary in summaries if summary["replayable"] and not summary["replay_of"]]
    if not fetch:
        return chosen, len(summaries)
    entries = [e for e in [await host.webhook_log.get(s["id"]) for s in chosen] if e is not None]
    return [entry for entry in entries if replayable(entry)], len(summaries)


# --- trace ----------------------------------------------------------------------------------------------


def timeline(trace: dict[str, Any]) -> list[dict[str, Any]]:
    """The chain as dated steps, oldest first: the delivery, each task's runs, texts sent, replays."""
    steps: list[dict[str, Any]] = []
    delivery = trace.get("delivery")
    if delivery:
        steps.append(
            {
                "at": delivery["at"],
                "kind": "webhook",
                "title": f"{delivery['integration']} webhook {delivery['outcome']} ({delivery['status']})",
                "detail": f"tenant {delivery['tenant'] or '—'} · {delivery['latency_ms']:.1f} ms",
                "link": ("webhook", delivery["id"]),
                "state": delivery["outcome"],
            }
        )
    for task in trace.get("tasks", []):
        created = task.get("created")
        if created:
            steps.append(
                {
                    "at": float(created),
                    "kind": "task",
                    "title": f"task {task['type']} scheduled",
                    "detail": f"state now {task['state']}",
                    "link": ("task", task["id"]),
                    "state": "scheduled",
                }
            )
        for run in task.get("runs", []):
            steps.append(
                {
                    "at": float(run.get("started") or 0),
                    "kind": "run",
                    "title": f"{task['type']} attempt {run.get('attempt')}: {run.get('outcome')}",
                    "detail": (run.get("error") or "")
                    + (f" · {float(run['duration']) * 1000:.1f} ms" if run.get("duration") is not None else ""),
                    "link": ("task", task["id"]),
                    "state": str(run.get("outcome")),
                }
            )
        if task.get("state") == "dead" and task.get("dead_at"):
            steps.append(
                {
                    "at": float(task["dead_at"]),
                    "kind": "dead",
                    "title": f"{task['type']} dead-lettered",
                    "detail": task.get("last_error") or "",
                    "link": ("task", task["id"]),
                    "state": "error",
                }
            )
    for effect in trace.get("effects", []):
        if effect.get("kind") == "sms":
            steps.append(
                {
                    "at": float(effect.get("created_at") or 0),
                    "kind": "sms",
                    "title": f"text to {effect['to']}: {effect['status']}",
                    "detail": " · ".join(
                        str(x) for x in (effect.get("template"), effect.get("provider_id"), effect.get("error")) if x
                    ),
                    "link": None,
                    "state": str(effect["status"]),
                }
            )
        else:
            steps.append(
                {
                    "at": float(effect.get("at") or effect.get("created_at") or 0),
                    "kind": str(effect.get("kind")),
                    "title": f"{effect.get('kind')} {effect.get('id')}",
                    "detail": ", ".join(f"{k}={v}" for k, v in masked(effect).items() if k not in ("kind", "id")),
                    "link": None,
                    "state": "accepted",
                }
            )
    for replayed in trace.get("replays", []):
        steps.append(
            {
                "at": replayed["at"],
                "kind": "replay",
                "title": f"replayed: {replayed['outcome']} ({replayed['status']})",
                "detail": replayed["id"],
                "link": ("webhook", replayed["id"]),
                "state": replayed["outcome"],
            }
        )
    # The delivery comes first whatever the clocks say: everything else descends from it.
    steps.sort(
        key=lambda step: (step["kind"] != "webhook" or step["link"] != ("webhook", trace.get("id")), step["at"] or 0)
    )
    return steps


# --- tasks ----------------------------------------------------------------------------------------------


async def purge_dead_task(host: Host, task_id: str) -> bool:
    """Delete one dead task (the queue's own purge works by age); False when it is not dead."""
    keys = host.queue.keys
    script = host.redis.register_script(_PURGE_ONE)
    return bool(await script(keys=[keys.dead, keys.tasks, keys.attempts, keys.counts], args=[task_id]))


# --- tenants --------------------------------------------------------------------------------------------


async def tenant_page(host: Host, search: str, number: int, size: int) -> dict[str, Any]:
    """Tenants sorted by id, those whose id contains ``search``; one page read with one MGET."""
    ids = sorted(raw.decode() for raw in await awaited(host.redis.smembers("lily:tenants")))
    if search:
        ids = [tenant_id for tenant_id in ids if search in tenant_id]
    pages = max(1, -(-len(ids) // size))
    number = min(number, pages)
    chosen = ids[(number - 1) * size : number * size]
    tenants = await host.tenants.get_many(chosen)
    return {"tenants": tenants, "total": len(ids), "page_number": number, "pages": pages}


async def tenant_detail(host: Host, tenant_id: str) -> dict[str, Any] | None:
    tenant = await host.tenants.get(tenant_id)
    if tenant is None:
        return None
    view = tenant.public_view()
    numbers: list[tuple[str, str]] = []
    if tenant.contact_phone:
        numbers.append(("contact", mask_phone(tenant.contact_phone)))
    for plugin, values in tenant.plugins.items():
        record = host.registry.records.get(plugin)
        model = record.tenant_settings_model if record is not None else None
        if model is None:
            continue
        for field_name, kind in index_fields(model).items():
            raw = values.get(field_name)
            items = raw if isinstance(raw, list) else ([raw] if raw else [])
            numbers.extend(
                (f"{plugin}.{field_name}", mask_phone(str(item)) if kind == "phone" else str(item)) for item in items
            )
    settings = {
        plugin: {key: _setting(key, value) for key, value in values.items()}
        for plugin, values in view["plugins"].items()
    }
    pipe = host.redis.pipeline(transaction=False)
    pipe.xlen(stream_key(tenant_id))
    pipe.zcard(index_key(tenant_id))
    pipe.hlen(_suppressed_key(tenant_id))
    logged, texts, suppressed = await pipe.execute()
    recent_webhooks, _ = await host.webhook_log.list(tenant=tenant_id, limit=10, scan_limit=500)
    messages = await host.messaging.recent(tenant_id, 10)
    keys = await host.tenants.list_keys(tenant_id)
    return {
        "t": tenant,
        "numbers": numbers,
        "settings": settings,
        "counts": {
            "webhooks logged": int(logged),
            "texts": int(texts),
            "suppressed numbers": int(suppressed),
            "API keys": len(keys),
        },
        "webhooks": recent_webhooks,
        "messages": [
            {
                "id": m.id,
                "to": mask_phone(m.to),
                "template": m.template,
                "status": m.status,
                "provider_status": m.fields.get("provider_status") or "",
                "error": m.fields.get("error") or m.fields.get("error_code") or "",
                "created_at": m.created_at,
            }
            for m in messages
        ],
    }


def _setting(name: str, value: Any) -> str:
    if value is None:
        return "—"
    if (isinstance(value, str) and value == "********") or (value and secret_name(name)):
        return "********"  # stored encrypted, or under a secret-looking name
    return json.dumps(masked(value)) if not isinstance(value, str) else str(masked(value))


# --- development ----------------------------------------------------------------------------------------


async def outbox(host: Host, limit: int) -> dict[str, list[dict[str, Any]]]:
    """The newest texts the development outbox recorded instead of sending, and the texts Lily holds."""
    entries = await Outbox(host.redis).messages()
    newest = list(reversed(entries))[:limit]
    held = (await held_texts(host.messaging, await host.tenants.all()))[:limit]
    return {"sent": [_masked_text(entry) for entry in newest], "held": [_masked_text(entry) for entry in held]}


def _masked_text(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        **entry,
        "to": mask_phone(entry.get("to")),
        "from": mask_phone(entry.get("from")),
        "body": masked(entry.get("body", "")),
    }
