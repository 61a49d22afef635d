"""The plugin's tasks: send a scheduled reply (once per customer message), and erase a deleted tenant."""

from __future__ import annotations

from typing import Any

import httpx

from lily_chatwoot import client
from lily_chatwoot.settings import PLUGIN, ChatwootSettings, ChatwootTenantSettings
from lily_chatwoot.webhooks import REPLY_TASK
from lily_host import PermanentError, RetryPolicy, TaskContext, TaskHandler, deleted_tenant

ERASE_TASK = f"{PLUGIN}.erase_tenant"
#: How long "this message was answered" is remembered: longer than any retry or redelivery.
ONCE_TTL = 7 * 24 * 3600


def replied_key(ctx: TaskContext, tenant_id: str, account: str, message: str) -> str:
    return ctx.host.keys(PLUGIN).tenant_key(tenant_id, "replied", account, message)


async def send_reply(ctx: TaskContext, payload: dict[str, Any]) -> None:
    """Post the reply chosen when the message arrived.

    Chatwoot's message API has no idempotency key and the queue runs a task at least once, so the
    call is guarded with ``host.once``: claimed before it is made, released only when Chatwoot
    surely did not create the message (it answered with an error, or no connection was made).
    """
    tenant = ctx.tenant
    if tenant is None:
        ctx.log.warning("tenant no longer exists; reply not sent")
        return
    own = tenant.plugin_settings
    if not isinstance(own, ChatwootTenantSettings) or own.api_access_token is None:
        raise PermanentError(
            f"tenant {tenant.id} has no {PLUGIN} api_access_token: "
            f"`lily tenants set {tenant.id} {PLUGIN}.api_access_token=...`",
            code="not_configured",
        )
    account, conversation, message = str(payload["account"]), str(payload["conversation"]), str(payload["message"])
    if own.account_id != account:
        ctx.log.warning("tenant's Chatwoot account changed since the message arrived; reply not sent")
        return
    settings = ctx.host.plugin_settings(PLUGIN)
    assert isinstance(settings, ChatwootSettings)
    claim = replied_key(ctx, tenant.id, account, message)
    if not await ctx.host.once(claim, ONCE_TTL, tenant=tenant.id):  # tenant=: erased with the tenant
        ctx.log.info("message already answered", conversation=conversation, message=message)
        return
    token = own.api_access_token.get_secret_value()
    try:
        response = await client.send_message(settings, token, account, conversation, str(payload["reply"]))
    except httpx.ConnectError:
        await ctx.host.release_once(claim)  # never reached Chatwoot: the retry may send
        raise
    except httpx.HTTPError as error:
        # The request may have reached Chatwoot (a timeout after sending): a second copy of the
        # reply in the customer's chat is worse than none, so keep the claim and stop here.
        raise PermanentError(
            f"the reply may or may not have been sent ({type(error).__name__}); not retried to avoid a duplicate",
            code="unknown_outcome",
        ) from error
    if response.status_code >= 300:
        await ctx.host.release_once(claim)  # Chatwoot answered and created nothing
    client.raise_for_answer(response, operation="send_message", now=ctx.now())
    ctx.log.info("chatwoot reply sent", conversation=conversation, message=message)


async def erase_tenant(ctx: TaskContext, payload: dict[str, Any]) -> None:
    """``tenant.deleted``: every ``lily:chatwoot:<tenant>:*`` key goes."""
    tenant_id = await deleted_tenant(ctx, payload)
    if tenant_id is None:
        return
    keys = ctx.host.keys(PLUGIN)
    # Every such key was recorded in the tenant's key registry (once(..., tenant=)): no keyspace walk.
    removed = await ctx.host.erase_tracked(lambda escaped: [keys.tenant_pattern(escaped)], tenant_id)
    ctx.log.info("tenant erased", keys=removed)


HANDLERS = (
    # tenant_gated: a tenant whose subscription is paused sends no automated replies.
    TaskHandler(
        REPLY_TASK,
        send_reply,
        retry=RetryPolicy(max_attempts=6, backoff_base=5.0, backoff_cap=900.0),
        tenant_gated=True,
    ),
    TaskHandler(ERASE_TASK, erase_tenant),
)
