"""``lily trace ID`` / ``GET /api/trace/<id>``: the whole chain of one delivery.

ID may be a delivery id, a task id, a message id, or a provider's id (a CallSid, an SMS SID, a
Stripe event id...). It is resolved to its delivery (the effect index of
:mod:`lily_host.operations.correlation`, the task's own record, the webhook log's provider-id index), then:

    the delivery (time, integration, tenant, outcome, status)
    → each task (type, state, attempts, outcome, last error, durations)
    → each outbound effect (an SMS with its provider id and delivery status, a calendar event id,
      an S3 key, a booking) and any replay of the delivery.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from lily_host.observability.log import mask_phone
from lily_host.operations.correlation import effects_key, parse_delivery_id, ref_key
from lily_host.operations.task_history import TaskHistory
from lily_host.operations.webhook_log import summary
from lily_host.plugin_api.redis_typing import awaited

if TYPE_CHECKING:
    from lily_host.runtime.host import Host


def history(host: Host) -> TaskHistory:
    return TaskHistory(host.redis, host.queue.name, host.settings.trace_days)


async def resolve(host: Host, ident: str) -> tuple[str | None, str | None]:
    """(delivery id, task id) that ``ident`` leads to; either may be None."""
    ident = ident.strip()
    if parse_delivery_id(ident) is not None:
        return ident, None
    raw = await host.redis.get(ref_key(ident))
    if raw is not None:
        return raw.decode(), ident if ":" in ident and await _is_task(host, ident) else None
    if ":" in ident:
        task = await host.queue.get(ident)
        if task is not None:
            return task.delivery, ident
        runs = await history(host).runs(ident)
        if runs:
            return runs[-1].get("delivery"), ident
    return None, None


async def _is_task(host: Host, ident: str) -> bool:
    return await host.queue.get(ident) is not None or bool(await history(host).runs(ident))


async def task_view(host: Host, task_id: str) -> dict[str, Any] | None:
    """One task: live state from the queue, else its finished runs from the history."""
    task = await host.queue.get(task_id)
    runs = await history(host).runs(task_id)
    if task is None and not runs:
        return None
    last = runs[-1] if runs else {}
    view: dict[str, Any] = {
        "id": task_id,
        "type": task.type if task else last.get("type"),
        "tenant": task.tenant if task else last.get("tenant"),
        "delivery": task.delivery if task else last.get("delivery"),
        "state": task.state if task else ("done" if last.get("outcome") == "ok" else str(last.get("outcome"))),
        "attempts": task.attempt if task else last.get("attempt"),
        "max_attempts": task.max_attempts if task else last.get("max_attempts"),
        "outcome": "ok" if not task and last.get("outcome") == "ok" else (task.state if task else last.get("outcome")),
        "last_error": task.last_error if task else next((r["error"] for r in reversed(runs) if r.get("error")), None),
        "due": task.due if task else None,
        "dead_at": task.dead_at if task else None,
        "created": task.created if task else (last.get("task") or {}).get("created"),
        "errors": task.errors if task else [],
        "payload": task.payload if task else (last.get("task") or {}).get("payload"),
        "runs": [{k: r.get(k) for k in ("attempt", "outcome", "started", "duration", "error")} for r in runs],
        "total_duration": round(sum(float(r.get("duration") or 0) for r in runs), 6),
    }
    return view


async def _message(host: Host, tenant: str, message_id: str) -> dict[str, Any] | None:
    record = await host.messaging.get(tenant, message_id)
    if record is None:
        return None
    fields = record.fields
    return {
        "kind": "sms",
        "id": record.id,
        "tenant": record.tenant,
        "to": mask_phone(record.to),
        "template": record.template,
        "status": record.status,
        "provider_id": fields.get("provider_id") or None,
        "provider_status": fields.get("provider_status") or None,
        "error_code": fields.get("error_code") or None,
        "error": fields.get("error") or None,
        "channel": fields.get("channel") or None,
        "task_id": fields.get("task_id") or None,
        "created_at": record.created_at,
    }


async def assemble(host: Host, ident: str) -> dict[str, Any] | None:
    """The trace of ``ident`` as JSON-ready data, or None when nothing is known of it."""
    delivery_id, task_id = await resolve(host, ident)
    if delivery_id is None:
        if task_id is None:
            return None
        task = await task_view(host, task_id)
        return {"query": ident, "delivery": None, "tasks": [task] if task else [], "effects": [], "replays": []}
    record = await host.webhook_log.get(delivery_id)
    raw_effects = await awaited(host.redis.hgetall(effects_key(delivery_id)))
    effects_index = [json.loads(value) for value in raw_effects.values()]
    task_ids: list[str] = list(record["tasks"]) if record else []
    for effect in effects_index:
        if effect.get("kind") == "task" and effect["id"] not in task_ids:
            task_ids.append(effect["id"])
    effects: list[dict[str, Any]] = []
    for effect in effects_index:
        kind = effect.get("kind")
        if kind == "task":
            continue
        if kind == "sms" and effect.get("tenant"):
            message = await _message(host, str(effect["tenant"]), str(effect["id"]))
            if message is not None:
                effects.append(message)
                if message["task_id"] and message["task_id"] not in task_ids:
                    task_ids.append(message["task_id"])
                continue
        effects.append(effect)
    tasks = [view for view in [await task_view(host, tid) for tid in task_ids] if view is not None]
    tasks.sort(key=lambda t: float(t.get("created") or 0))
    replays: list[dict[str, Any]] = []
    if record is not None:
        found, _ = await host.webhook_log.list(
            tenant=record["tenant"], replay_of=delivery_id, since=record["at"], limit=20
        )
        replays = [summary(entry) for entry in found]
    return {
        "query": ident,
        "id": delivery_id,
        "delivery": summary(record) if record else None,
        "tasks": tasks,
        "effects": effects,
        "replays": replays,
    }
