"""Follow-up texts that stop when the customer acts: one registry for quotes and review requests.

A follow-up is a scheduled task (``quotes.follow_up``, ``reviews.follow_up``) registered here under
the customer's number (keyed hash). Any text from that number (a reply, a STOP, anything) cancels
all of that tenant's pending follow-ups to it, in the host's inbound task, before anything else
reads the text; an acceptance or a click cancels the one it concerns. The follow-up task also
re-checks its own record when it runs, so a cancellation that raced with it changes nothing.

Redis keys: ``lily:{t:<tenant>}:followups:<hash>``  hash "<kind>:<id>" → task id (expires with the last)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from lily_host.plugin_api.key_registry import track_keys_now
from lily_host.plugin_api.key_slots import tenant_key
from lily_host.plugin_api.redis_typing import awaited
from lily_host.plugin_api.validators import normalize_e164

if TYPE_CHECKING:
    from lily_host.plugin_api.clock import Clock
    from lily_host.plugin_api.host_api import PiiBox
    from lily_host.queue import TaskQueue


class FollowUpHost(Protocol):
    """What the registry uses of the running host (``Host`` is one; built-ins pass ``host_of(ctx.host)``)."""

    @property
    def redis(self) -> Any: ...

    @property
    def pii(self) -> PiiBox: ...

    @property
    def queue(self) -> TaskQueue: ...

    @property
    def clock(self) -> Clock: ...


#: The registry outlives the latest follow-up by this much.
GRACE_SECONDS = 7 * 24 * 3600

# Register one follow-up; the key's expiry only ever grows (EXPIRE GT needs Redis 7, Lily runs on 6.2).
_REGISTER_LUA = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[3]) then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return 1
"""


def _prefix(tenant_id: str) -> str:
    return tenant_key(tenant_id, "followups")


def followup_key_pattern(tenant_id: str) -> str:
    return f"{_prefix(tenant_id)}:*"


async def _key(host: FollowUpHost, tenant_id: str, number: str) -> str:
    return f"{_prefix(tenant_id)}:{await host.pii.digest(normalize_e164(number))}"


async def register(
    host: FollowUpHost, tenant_id: str, number: str, kind: str, item: str, task_id: str, due: float
) -> None:
    key = await _key(host, tenant_id, number)
    ttl = max(60, int(due - host.clock.now())) + GRACE_SECONDS
    await track_keys_now(host.redis, tenant_id, key, ttl=ttl)
    await host.redis.register_script(_REGISTER_LUA)(keys=[key], args=[f"{kind}:{item}", task_id, ttl])


async def cancel(host: FollowUpHost, tenant_id: str, number: str, kind: str, item: str) -> bool:
    """Cancel one follow-up (an acceptance, a click); True if one was pending."""
    key = await _key(host, tenant_id, number)
    task_id = await awaited(host.redis.hget(key, f"{kind}:{item}"))
    if task_id is None:
        return False
    await awaited(host.redis.hdel(key, f"{kind}:{item}"))
    return await host.queue.cancel(_text(task_id))


async def cancel_all(host: FollowUpHost, tenant_id: str, number: str) -> list[str]:
    """The customer texted: cancel every pending follow-up to them; the "<kind>:<id>" of each."""
    key = await _key(host, tenant_id, number)
    pending = await awaited(host.redis.hgetall(key))
    if not pending:
        return []
    await awaited(host.redis.delete(key))
    for task_id in pending.values():
        await host.queue.cancel(_text(task_id))
    return sorted(_text(name) for name in pending)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def is_pending(host: FollowUpHost, tenant_id: str, number: str, kind: str, item: str, task_id: str) -> bool:
    """Is ``task_id`` still the registered follow-up (not cancelled by a reply, an acceptance or a click)?"""
    key = await _key(host, tenant_id, number)
    held = await awaited(host.redis.hget(key, f"{kind}:{item}"))
    return held is not None and _text(held) == task_id


async def done(host: FollowUpHost, tenant_id: str, number: str, kind: str, item: str) -> None:
    await awaited(host.redis.hdel(await _key(host, tenant_id, number), f"{kind}:{item}"))
