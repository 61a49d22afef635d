"""Built-in plugin: a missed call gets a text back.

``call.missed`` (from any telephony plugin) → after a random delay in ``LILY_JITTER_SECONDS``
(default 10-45 s; ``tenant.jitter_seconds`` overrides it), the tenant's ``missed_call`` template goes
to the caller through ``host.messaging``. At most one text-back per caller per tenant per 24 h;
never to the tenant's own numbers; never to a suppressed number; nothing while the tenant's
automations are off (canceled, unpaid or paused subscription).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lily_host.observability.log import mask_phone
from lily_host.plugin_api.contract import EventSubscription, TaskContext, TaskHandler
from lily_host.plugin_api.event_names import CALL_MISSED
from lily_host.plugin_api.key_registry import track_keys_now
from lily_host.plugin_api.key_slots import tenant_key
from lily_host.plugin_api.markers import hookimpl
from lily_host.plugin_api.tenant import parse_jitter
from lily_host.plugin_api.validators import normalize_e164
from lily_host.runtime.host import host_of
from lily_host.sms.message_templates import MISSED_CALL
from lily_host.tenants.store import index_fields

if TYPE_CHECKING:
    from lily_host.plugin_api.tenant import Tenant
    from lily_host.runtime.host import Host

TASK = "automations.missed_call"
#: One text-back per caller per tenant in this many seconds.
TEXT_BACK_WINDOW = 24 * 3600


# The 24 h window on the host's clock: claimed by the first call, still open to that same call's
# redelivered task, closed to any other call until 24 h have passed.
_CLAIM_LUA = """
local held = redis.call('GET', KEYS[1])
if held then
  local sid, at = string.match(held, '^(.*)|([^|]*)$')
  if sid == ARGV[1] then return 1 end
  if tonumber(ARGV[2]) - tonumber(at) < tonumber(ARGV[3]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'EX', tonumber(ARGV[3]) * 2)
return 1
"""


async def claim_window(host: Host, tenant_id: str, caller: str, call_sid: str, now: float) -> bool:
    """True if this call may text ``caller`` back: no other call did in the last 24 h."""
    script = host.redis.register_script(_CLAIM_LUA)
    # The caller's keyed hash, not the number: no plaintext customer number at rest (lily_host.tenants.customer_pii).
    key = missed_call_key(tenant_id, await host.pii.digest(caller))
    await track_keys_now(host.redis, tenant_id, key, ttl=TEXT_BACK_WINDOW * 2)
    return bool(await script(keys=[key], args=[call_sid, repr(now), TEXT_BACK_WINDOW]))


def tenant_numbers(host: Host, tenant: Tenant) -> set[str]:
    """Every phone number the tenant owns: its contact number and each plugin's phone-indexed settings."""
    numbers: set[str] = set()
    candidates: list[Any] = [tenant.contact_phone]
    for plugin, model in host.tenants.models.items():
        values = tenant.plugins.get(plugin, {})
        for field_name, kind in index_fields(model).items():
            if kind == "phone":
                raw = values.get(field_name)
                candidates.extend(raw if isinstance(raw, list) else [raw])
    for candidate in candidates:
        if isinstance(candidate, str) and candidate:
            try:
                numbers.add(normalize_e164(candidate))
            except ValueError:
                continue
    return numbers


async def text_back(ctx: TaskContext, payload: dict[str, Any]) -> None:
    host = host_of(ctx.host)
    tenant = ctx.tenant
    if tenant is None:
        ctx.log.warning("missed call for an unknown tenant; ignored")
        return
    call_sid = str(payload.get("call_sid") or ctx.task_id)
    if not tenant.automations_active:
        ctx.log.info("missed call: no text-back, automations are off", status=tenant.subscription_status)
        return
    try:
        caller = normalize_e164(str(payload.get("caller") or ""))
    except ValueError:
        ctx.log.info("missed call from a number that cannot be texted", call_sid=call_sid)
        return
    own = tenant_numbers(host, tenant)
    business_number = payload.get("business_number")
    if isinstance(business_number, str) and business_number:
        with contextlib.suppress(ValueError):
            own.add(normalize_e164(business_number))
    if caller in own:
        ctx.log.info("missed call from the tenant's own number; no text-back", call_sid=call_sid)
        return
    if await host.messaging.compliance.is_suppressed(tenant.id, caller):
        ctx.log.info("missed call from an opted-out number; no text-back", caller=mask_phone(caller))
        return
    if not await claim_window(host, tenant.id, caller, call_sid, ctx.now()):
        ctx.log.info("caller already got a text-back in the last 24 h", caller=mask_phone(caller))
        return
    jitter = parse_jitter(tenant.jitter_seconds) if tenant.jitter_seconds else host.settings.jitter
    task_id = await host.messaging.queue_sms(
        tenant,
        caller,
        template=MISSED_CALL,
        context={"caller": caller},
        jitter=jitter,
        dedupe_key=f"missed-call:{call_sid}",
    )
    ctx.log.info("missed call text-back scheduled", caller=mask_phone(caller), call_sid=call_sid, task=task_id)


@hookimpl
def register_tasks(register: Callable[[TaskHandler], None]) -> None:
    register(TaskHandler(TASK, text_back))


@hookimpl
def register_event_subscriptions(register: Callable[[EventSubscription], None]) -> None:
    register(EventSubscription(CALL_MISSED, TASK))


def missed_call_key(tenant_id: str, caller_digest: str) -> str:
    """``lily:{t:<tenant>}:automations:missed_call:<caller hash>``: the text-back claimed for a caller."""
    return tenant_key(tenant_id, "automations", "missed_call", caller_digest)
