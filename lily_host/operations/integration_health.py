"""Integrations whose outbound calls fail repeatedly turn ``failing``, once, and recover once.

Every outbound call an integration makes on Lily's behalf (an SMS handed to a channel, a task of a
plugin's own type: calendar writes, uploads...) is recorded here as a success or a failure. An
integration turns ``failing`` when ``LILY_INTEGRATION_FAILURES`` calls in a row failed (default 5),
or when at least ``LILY_INTEGRATION_MIN_CALLS`` calls in the last ``LILY_INTEGRATION_WINDOW_SECONDS``
failed at a ratio of ``LILY_INTEGRATION_ERROR_RATIO`` or more (default 0.5); it recovers with a
success once the window's error ratio is under that threshold again.

The state lives in Redis and each update is one Lua call, so of all the processes recording calls
exactly one sees each transition: it logs it (once when going down, once when recovering, never
per failure) and emits the domain event ``integration.failing`` / ``integration.recovered``, which
any plugin may subscribe to (to text or email the operator, say).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge

from lily_host.observability.log import get_logger
from lily_host.operations.correlation import delivery_scope
from lily_host.plugin_api.event_names import INTEGRATION_FAILING, INTEGRATION_RECOVERED
from lily_host.plugin_api.redis_typing import awaited

if TYPE_CHECKING:
    from lily_host.config.host_settings import HostSettings
    from lily_host.plugin_api.clock import Clock

#: Emits a domain event (the host's event bus): ``emit(event, data, tenant=None)``.
Emit = Callable[..., Awaitable[Any]]

#: Width of one counting bucket of the error-ratio window.
BUCKET_SECONDS = 60

CALLS = Counter(
    "lily_integration_calls_total",
    "Outbound calls of integrations, by outcome (ok, failed)",
    ["integration", "outcome"],
)
FAILING = Gauge(
    "lily_integration_failing", "1 while an integration is failing (see docs/operations.md)", ["integration"]
)

log = get_logger("lily.integrations")

# KEYS[1] state hash; KEYS[2] the set of names; KEYS[3..] buckets of the window, the current one last.
# ARGV: ok (1|0), now, consecutive threshold, ratio threshold, min calls, error, bucket ttl
_RECORD = """
local ok = ARGV[1] == '1'
local now = ARGV[2]
local state = redis.call('HGET', KEYS[1], 'state') or 'ok'
local consecutive = tonumber(redis.call('HGET', KEYS[1], 'consecutive') or '0')
local current = KEYS[#KEYS]
redis.call('SADD', KEYS[2], ARGV[8])
if ok then
  consecutive = 0
  redis.call('HINCRBY', current, 'ok', 1)
else
  consecutive = consecutive + 1
  redis.call('HINCRBY', current, 'failed', 1)
  redis.call('HSET', KEYS[1], 'last_error', ARGV[6], 'last_failure', now)
end
redis.call('EXPIRE', current, tonumber(ARGV[7]))
local good, bad = 0, 0
for i = 3, #KEYS do
  good = good + tonumber(redis.call('HGET', KEYS[i], 'ok') or '0')
  bad = bad + tonumber(redis.call('HGET', KEYS[i], 'failed') or '0')
end
local total = good + bad
local ratio_bad = total > 0 and bad / total >= tonumber(ARGV[4])
local over_ratio = total >= tonumber(ARGV[5]) and ratio_bad
local failing = consecutive >= tonumber(ARGV[3]) or over_ratio
redis.call('HSET', KEYS[1], 'consecutive', consecutive, 'window_ok', good, 'window_failed', bad)
if state ~= 'failing' and failing then
  redis.call('HSET', KEYS[1], 'state', 'failing', 'since', now)
  return 'failing'
end
-- Recovery wants the ratio under the threshold whatever the count: no flapping on one success.
if state == 'failing' and ok and not ratio_bad then
  redis.call('HSET', KEYS[1], 'state', 'ok', 'since', now)
  return 'recovered'
end
return ''
"""

#: One hash tag for every integration's state, buckets and the set of names: the script that
#: records a call writes all three, so on a Redis Cluster they share one slot.
PREFIX = "lily:{integrations}:"
NAMES = "lily:{integrations}:names"


class IntegrationHealth:
    def __init__(self, redis: Any, settings: HostSettings, clock: Clock, emit: Emit) -> None:
        self.redis = redis
        self.settings = settings
        self.clock = clock
        self._emit_event = emit
        self._script = redis.register_script(_RECORD)
        self._counters: dict[tuple[str, str], Any] = {}

    def _keys(self, integration: str, now: float) -> list[str]:
        window = self.settings.integration_window_seconds
        last = math.floor(now / BUCKET_SECONDS)
        first = math.floor((now - window) / BUCKET_SECONDS) + 1
        return [PREFIX + integration, NAMES] + [f"{PREFIX}{integration}:b:{b}" for b in range(first, last + 1)]

    async def record(self, integration: str, ok: bool, error: str = "") -> str:
        """Record one outbound call; returns the transition it caused ("failing", "recovered" or "")."""
        key = (integration, "ok" if ok else "failed")
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = CALLS.labels(*key)
        counter.inc()
        settings = self.settings
        now = self.clock.now()
        raw = await self._script(
            keys=self._keys(integration, now),
            args=[
                "1" if ok else "0",
                repr(now),
                settings.integration_failures,
                settings.integration_error_ratio,
                settings.integration_min_calls,
                error[:500],
                int(settings.integration_window_seconds) + BUCKET_SECONDS,
                integration,
            ],
        )
        transition = raw.decode() if isinstance(raw, bytes) else str(raw or "")
        if transition:
            await self._announce(integration, transition, error)
        return transition

    async def _announce(self, integration: str, transition: str, error: str) -> None:
        state = await self.state(integration)
        data = {"integration": integration, **state}
        with delivery_scope(None):  # the event is about the integration, not the task that tipped it
            await self._emit(integration, transition, error, data)

    async def _emit(self, integration: str, transition: str, error: str, data: dict[str, Any]) -> None:
        state = data
        if transition == "failing":
            FAILING.labels(integration).set(1)
            log.error("integration failing", integration=integration, last_error=error, **_counts(state))
            await self._emit_event(INTEGRATION_FAILING, data, tenant=None)
        else:
            FAILING.labels(integration).set(0)
            log.warning("integration recovered", integration=integration)
            await self._emit_event(INTEGRATION_RECOVERED, data, tenant=None)

    async def state(self, integration: str) -> dict[str, Any]:
        raw = await awaited(self.redis.hgetall(PREFIX + integration))
        data = {k.decode(): v.decode() for k, v in raw.items()}
        return {
            "state": data.get("state", "ok"),
            "since": float(data["since"]) if data.get("since") else None,
            "consecutive_failures": int(data.get("consecutive", "0")),
            "window_ok": int(data.get("window_ok", "0")),
            "window_failed": int(data.get("window_failed", "0")),
            "last_error": data.get("last_error") or None,
            "last_failure": float(data["last_failure"]) if data.get("last_failure") else None,
        }

    async def all(self) -> dict[str, dict[str, Any]]:
        """Every integration that recorded a call, with its state (and the failing gauge refreshed)."""
        names = [raw.decode() for raw in await awaited(self.redis.smembers(NAMES))]
        states = {name: await self.state(name) for name in sorted(names)}
        for name, state in states.items():
            FAILING.labels(name).set(1 if state["state"] == "failing" else 0)
        return states


def _counts(state: dict[str, Any]) -> dict[str, Any]:
    return {k: state[k] for k in ("consecutive_failures", "window_ok", "window_failed")}
