"""Domain events and their fan-out: each subscriber gets its own task.

A slow or failing consumer never blocks another one, because every (event, subscriber) pair is
a separate task with its own retries. Payload conventions are in docs/events.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lily_host.observability.metrics import EVENTS
from lily_host.plugin_api.contract import EventSubscription

if TYPE_CHECKING:
    from lily_host.queue import TaskQueue


class EventBus:
    def __init__(self, subscriptions: Sequence[tuple[str, EventSubscription]], queue: TaskQueue) -> None:
        self.queue = queue
        self._subscribers: dict[str, list[str]] = {}
        #: EVENTS label children by event (``labels()`` locks and builds a key on every call).
        self._counters: dict[str, Any] = {}
        for _owner, subscription in subscriptions:
            self._subscribers.setdefault(subscription.event, []).append(subscription.task)

    def subscribers(self, event: str) -> list[str]:
        return list(self._subscribers.get(event, ()))

    def fanout(self, event: str, data: Mapping[str, Any], *, tenant: str | None) -> list[dict[str, Any]]:
        """The tasks that deliver ``event`` to each subscriber (not yet scheduled)."""
        counter = self._counters.get(event)
        if counter is None:
            counter = self._counters[event] = EVENTS.labels(event)
        counter.inc()
        payload = dict(data)
        return [{"type": task, "payload": payload, "tenant": tenant} for task in self._subscribers.get(event, ())]

    async def emit(self, event: str, data: Mapping[str, Any], *, tenant: str | None) -> list[str]:
        """Schedule one task per subscriber of ``event``, due now; returns their ids."""
        tasks = self.fanout(event, data, tenant=tenant)
        if not tasks:
            return []
        return await self.queue.schedule_many(tasks) or []
