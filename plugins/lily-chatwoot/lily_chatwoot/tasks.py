"""The plugin's tasks: post a note for each event (exactly once), and erase a deleted tenant's keys."""

from __future__ import annotations

from typing import Any

import httpx

from lily_host import PermanentError, RetryPolicy, TaskContext, TaskHandler, deleted_tenant
from lily_chatwoot import client
from lily_chatwoot.settings import PLUGIN, ChatwootSettings, ChatwootTenantSettings
from lily_chatwoot.webhooks import NOTE_TASK

ERASE_TASK = f"{PLUGIN}.erase_tenant"
#: How long "this event's note was posted" is remembered: longer than any retry or redelivery.
ONCE_TTL = 7 * 24 * 3600


async def post_note(ctx: TaskContext, payload: dict[str, Any]) -> None:
    """At-least-once delivery runs a task again after a crash or a failed attempt, and the provider
    has no idempotency key: ``host.once`` makes the call happen once per event."""
    tenant = ctx.tenant
    if tenant is None:
        ctx.log.warning("tenant no longer exists; note not posted")
        return
    own = tenant.plugin_settings
    if not isinstance(own, ChatwootTenantSettings) or own.account_id is None or own.api_key is None:
        raise PermanentError(
            f"tenant {tenant.id} has no {PLUGIN} account_id and api_key: "
            f"`lily tenants set {tenant.id} {PLUGIN}.account_id=... {PLUGIN}.api_key=...`",
            code="not_configured",
        )
    settings = ctx.host.plugin_settings(PLUGIN)
    assert isinstance(settings, ChatwootSettings)
    claim = ctx.host.keys(PLUGIN).tenant_key(tenant.id, "noted", payload["event_id"])
    if not await ctx.host.once(claim, ONCE_TTL):
        ctx.log.info("note already posted for this event")
        return
    text = f"Lily received {payload['type']} ({payload['event_id']})"
    try:
        response = await client.post_note(settings, own, text)
    except httpx.ConnectError:
        await ctx.host.release_once(claim)  # never reached the provider: the retry may post
        raise
    except httpx.HTTPError as error:
        # The request may have reached the provider (a timeout after sending): keep the claim, since
        # a second note is worse than none, and dead-letter the task for a person to look at.
        raise PermanentError(f"note may or may not have been posted ({type(error).__name__})", code="unknown") from error
    if response.status_code >= 300:
        await ctx.host.release_once(claim)  # the provider answered and did not post
    client.raise_for_answer(response, operation="post_note", now=ctx.now())


async def erase_tenant(ctx: TaskContext, payload: dict[str, Any]) -> None:
    """``tenant.deleted``: remove every key this plugin keeps for the tenant."""
    tenant_id = await deleted_tenant(ctx, payload)
    if tenant_id is None:
        return
    keys = ctx.host.keys(PLUGIN)
    removed = await ctx.host.erase_keys(lambda escaped: [keys.tenant_pattern(escaped)], tenant_id)
    ctx.log.info("tenant erased", keys=removed)


HANDLERS = (
    TaskHandler(NOTE_TASK, post_note, retry=RetryPolicy(max_attempts=6, backoff_base=5.0, backoff_cap=900.0)),
    TaskHandler(ERASE_TASK, erase_tenant),
)
