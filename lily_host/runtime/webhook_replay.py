"""Replaying a stored delivery through the same pipeline, past the idempotency guard.

``lily webhooks replay ID`` / ``POST /api/webhooks/<id>/replay`` take a logged delivery and run it
again: parse → tenant → handler → atomic commit, exactly as when it arrived, except for two steps.
The signature is not checked again (only deliveries whose signature *was* verified can be replayed,
so nothing unverified gets in this way), and the provider's idempotency guard is replaced by a
guard of its own, ``replay:<original id>``: a replay runs even though the delivery was seen, and a
second replay of the same delivery creates nothing twice. The replay is logged as a delivery of its
own, with ``replay_of`` naming the original, and its tasks carry the replay's id.

Bodies are logged with secret-looking values redacted; a delivery whose body was redacted is
replayed with the redacted values (said in the answer).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from lily_host.observability.log import get_logger
from lily_host.operations.correlation import delivery_scope, new_delivery_id
from lily_host.operations.webhook_log import Trail
from lily_host.plugin_api.contract import RequestHeaders, WebhookRequest, WebhookResponse
from lily_host.plugin_api.errors import ConfigurationError, UnknownTenant, WebhookRejected
from lily_host.runtime.registry import PluginState

if TYPE_CHECKING:
    from lily_host.runtime.host import Host

log = get_logger("lily.webhooks")

#: Outcomes of deliveries that may be replayed (their signature was verified).
REPLAYABLE_NOTE = "only deliveries whose signature was verified can be replayed"


class ReplayRefused(Exception):
    """This delivery cannot be replayed (and why)."""


def replayable(entry: dict[str, Any]) -> bool:
    return bool(entry.get("verified")) and bool(entry.get("route"))


def _endpoint(host: Host, entry: dict[str, Any]) -> tuple[str, Any]:
    for plugin, endpoint in host.registry.webhooks:
        if endpoint.path == entry["route"] and (endpoint.integration or plugin) == entry["integration"]:
            record = host.registry.records[plugin]
            if record.state != PluginState.LOADED:
                raise ReplayRefused(f"{plugin} is not available ({record.state.value})")
            return plugin, endpoint
    raise ReplayRefused(f"no loaded plugin serves {entry['integration']} deliveries at {entry['route']}")


async def replay(host: Host, entry: dict[str, Any]) -> dict[str, Any]:
    """Run one logged delivery again; returns the replay's own log entry fields."""
    if not replayable(entry):
        raise ReplayRefused(f"delivery {entry['id']} ({entry['outcome']}) cannot be replayed: {REPLAYABLE_NOTE}")
    plugin, endpoint = _endpoint(host, entry)
    integration = endpoint.integration or plugin
    settings = host.settings
    body = str(entry.get("body", "")).encode()
    headers = RequestHeaders(dict(entry.get("headers") or {}).items())
    query = str(entry.get("query") or "")
    wreq = WebhookRequest(
        method=entry.get("method", "POST"),
        path=entry["path"],
        query_string=query,
        public_url=settings.public_url + entry["path"] + (f"?{query}" if query else ""),
        headers=headers,
        body=body,
        content_type=entry.get("content_type", ""),
        path_params=dict(entry.get("params") or {}),
        settings=host.registry.records[plugin].settings,
    )
    trail = Trail(route=entry["route"], params=dict(entry.get("params") or {}), replay_of=entry["id"], query=query)
    trail.body, trail.content_type, trail.verified = body, wreq.content_type, True
    started = time.perf_counter()
    status = 200
    outcome = "accepted"
    try:
        payload = endpoint.parse(wreq)
        tenant = await endpoint.resolve_tenant(wreq, payload, host.tenants)
        record = host.registry.records[plugin]
        if tenant is not None and record.tenant_settings_model is not None:
            # The endpoint's plugin sees its own tenant settings, as on the live pipeline.
            tenant = host.tenants.view_for(tenant, plugin)
        if tenant is not None:
            trail.tenant, trail.retention_days = tenant.id, tenant.retention_days
        if tenant is None and endpoint.tenant_required:
            raise UnknownTenant("no tenant matches this delivery")
        provider_id = endpoint.delivery_id(wreq, payload)
        trail.provider_id = provider_id
        record_id = trail.record_id = new_delivery_id(trail.tenant)
        bound = log.bind(integration=integration, tenant=trail.tenant, delivery=record_id, replay_of=entry["id"])
        ctx = host.webhook_context(
            plugin=plugin,
            tenant=tenant,
            integration=integration,
            delivery_id=provider_id,
            log=bound,
            record_id=record_id,
        )
        with delivery_scope(record_id):
            response = await endpoint.handle(wreq, payload, ctx)
        committed = await host.queue.schedule_many(ctx.pending, guard=(f"replay:{entry['id']}", endpoint.dedupe_ttl))
        if committed is None:
            outcome, trail.reason = "duplicate", "already replayed"
        else:
            trail.tasks = committed
            if isinstance(response, WebhookResponse):
                status = response.status
            elif response is not None:
                status = response.status_code
    except WebhookRejected as rejection:
        outcome, status, trail.reason = rejection.outcome, rejection.status, rejection.reason
    except ConfigurationError as error:
        outcome, status, trail.reason = "unavailable", 503, str(error)
    except Exception as error:
        log.exception("replay failed", integration=integration, replay_of=entry["id"])
        outcome, status, trail.reason = "error", 500, f"{type(error).__name__}: {error}"
    record_id = host.webhook_log.record(
        integration=integration,
        method=wreq.method,
        path=wreq.path,
        headers=headers.items(),
        remote_addr=None,
        trail=trail,
        outcome=outcome,
        status=status,
        latency=time.perf_counter() - started,
    )
    await host.webhook_log.drain()  # not the hot path: the entry is written before we answer
    log.info("webhook replayed", replay_of=entry["id"], delivery=record_id, outcome=outcome, tasks=len(trail.tasks))
    return {
        "id": record_id,
        "replay_of": entry["id"],
        "outcome": outcome,
        "status": status,
        "tasks": trail.tasks,
        "reason": trail.reason,
        "redacted_body": bool(entry.get("redacted")),
    }


async def replay_many(host: Host, *, dry_run: bool, limit: int = 1000, **filters: Any) -> dict[str, Any]:
    """Replay (or with ``dry_run`` only count) the replayable deliveries matching ``filters``."""
    entries, _ = await host.webhook_log.list(limit=limit, **filters)
    candidates = [entry for entry in entries if replayable(entry) and not entry.get("replay_of")]
    skipped = len(entries) - len(candidates)
    if dry_run:
        return {"dry_run": True, "matched": len(entries), "replayable": len(candidates), "skipped": skipped}
    results = []
    for entry in reversed(candidates):  # oldest first, as they arrived
        try:
            results.append(await replay(host, entry))
        except ReplayRefused as refusal:
            results.append({"replay_of": entry["id"], "outcome": "refused", "reason": str(refusal)})
    return {
        "dry_run": False,
        "matched": len(entries),
        "replayable": len(candidates),
        "skipped": skipped,
        "replayed": results,
    }
