"""The only way an SMS leaves Lily: ``host.messaging.queue_sms`` and the ``sms.send`` task.

``queue_sms`` renders the tenant's template, stores a message record and schedules ``sms.send``.
When the task runs, the message passes one pipeline, whatever channel sends it:

    suppression list → quiet hours → frequency cap → the ``sms`` capability

Confirmations (replies to STOP/START/HELP) skip the first three: they are the one message that may
reach a number that just opted out, and they answer at once, even at night. A message due in quiet
hours or over the cap is deferred (``Defer``), which spends no attempt and drops nothing.

Message records (one Redis hash each, kept for the tenant's retention period):

- ``lily:{t:<tenant>}:sms:message:<id>``     id, to*, body*, template, kind, status, provider_id, error_code, ...
  (* sealed with the host's key, :mod:`lily_host.tenants.customer_pii`)
- ``lily:{t:<tenant>}:sms:messages``         zset id → created time (newest last)
- ``lily:{t:<tenant>}:sms:provider:<pid>``   provider message id → our id (for status callbacks)
- ``lily:{t:<tenant>}:sms:dedupe:<key>``      a queue_sms dedupe key already used → message id

All in the tenant's slot (hash tag ``{t:<tenant>}``), so each transaction over them is one slot.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from prometheus_client import Counter

from lily_host.observability.log import get_logger, mask_phone
from lily_host.operations.correlation import current_delivery, record_effect
from lily_host.plugin_api.capabilities import SMS, OutgoingSms, SentSms
from lily_host.plugin_api.errors import Defer, PermanentError, RecipientOptedOut
from lily_host.plugin_api.key_registry import track_keys
from lily_host.plugin_api.key_slots import slot_transaction, tenant_key
from lily_host.plugin_api.validators import check_timezone, normalize_e164
from lily_host.sms.compliance import Compliance, quiet_hours_end
from lily_host.sms.conversation_store import ConversationStore
from lily_host.sms.message_templates import TemplateError, render, segment_info

if TYPE_CHECKING:
    from lily_host.operations.integration_health import IntegrationHealth
    from lily_host.plugin_api.clock import Clock
    from lily_host.plugin_api.contract import TaskContext
    from lily_host.plugin_api.tenant import Tenant
    from lily_host.queue import TaskQueue
    from lily_host.tenants.customer_pii import Pii
    from lily_host.tenants.store import TenantStore

SEND_TASK = "sms.send"
#: How long a queue_sms dedupe key is remembered after its message was queued.
DEDUPE_SECONDS = 7 * 24 * 3600

MessageKind = Literal["transactional", "confirmation"]
KINDS: frozenset[str] = frozenset({"transactional", "confirmation"})

#: Record states after which the send task has nothing left to do.
FINISHED = frozenset({"sent", "delivered", "undelivered", "failed", "suppressed", "opted_out", "read"})
#: Provider states in the order they happen; a late callback never moves a message backwards.
_STATUS_RANK = {
    "scheduled": 0,
    "deferred": 0,
    "retrying": 0,
    "sending": 1,
    "accepted": 2,
    "queued": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "opted_out": 4,
    "suppressed": 4,
    "read": 5,
}

# Callbacks arrive out of order and concurrently: move the status only forward, in one step.
_ADVANCE_STATUS_LUA = """
local rank = tonumber(redis.call('HGET', KEYS[1], 'status_rank') or '0')
if tonumber(ARGV[2]) >= rank then
  redis.call('HSET', KEYS[1], 'status', ARGV[1], 'status_rank', ARGV[2])
end
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""

SMS_OUTCOMES = Counter(
    "lily_sms_total",
    "Outgoing SMS by outcome (queued, sent, suppressed, deferred_quiet_hours, deferred_cap, opted_out, failed, retry)",
    ["outcome"],
)
SMS_STATUS = Counter(
    "lily_sms_status_total", "Delivery status callbacks for outgoing SMS, by status", ["channel", "status"]
)

log = get_logger("lily.messaging")


@dataclass(frozen=True)
class MessageRecord:
    id: str
    tenant: str
    to: str
    body: str
    template: str
    kind: str
    status: str
    created_at: float
    fields: Mapping[str, str]

    @classmethod
    def from_hash(cls, raw: Mapping[bytes, bytes], pii: Pii) -> MessageRecord:
        """The record with its number and body opened (sealed at rest: :mod:`lily_host.tenants.customer_pii`)."""
        data = {key.decode(): value.decode() for key, value in raw.items()}
        data["to"], data["body"] = pii.open(data["to"]), pii.open(data["body"])
        return cls(
            id=data["id"],
            tenant=data["tenant"],
            to=data["to"],
            body=data["body"],
            template=data.get("template", ""),
            kind=data.get("kind", "transactional"),
            status=data.get("status", "scheduled"),
            created_at=float(data.get("created_at", "0")),
            fields=data,
        )

    def as_dict(self) -> dict[str, Any]:
        """The record as APIs and the CLI show it (number masked)."""
        data = dict(self.fields)
        data["to"] = mask_phone(self.to)
        return data


class Messaging:
    """``host.messaging``. Built once per host, its collaborators handed in (the host composes it)."""

    def __init__(
        self,
        *,
        redis: Any,
        tenants: TenantStore,
        queue: TaskQueue,
        clock: Clock,
        capability: Callable[[str], Any],
        daily_cap: int,
        pii: Pii,
        compliance: Compliance | None = None,
        integrations: IntegrationHealth | None = None,
        trace_days: float = 0.0,
    ) -> None:
        """``integrations`` counts each send as a channel's success or failure (alerts);
        ``trace_days`` is how long a text stays findable from its delivery (``lily trace``)."""
        self.redis = redis
        self.tenants = tenants
        self.queue = queue
        self.clock = clock
        self.capability = capability
        self.pii = pii
        self.integrations = integrations
        self.trace_days = trace_days
        self.compliance = compliance or Compliance(redis, daily_cap=daily_cap, pii=pii)
        self._advance_status = redis.register_script(_ADVANCE_STATUS_LUA)
        self.conversations = ConversationStore(redis, pii, tenants, status_of=self.get)

    # --- queueing ------------------------------------------------------------------------------------

    async def queue_sms(
        self,
        tenant: str | Tenant,
        to: str,
        *,
        template: str,
        context: Mapping[str, Any] | None = None,
        kind: MessageKind = "transactional",
        delay: float | None = None,
        run_at: float | None = None,
        jitter: tuple[float, float] | None = None,
        dedupe_key: str | None = None,
        default_text: str | None = None,
        recipient_timezone: str | None = None,
    ) -> str | None:
        """Render ``template`` for the tenant and schedule its sending; the task id, or None if not queued.

        None means: the recipient is suppressed for this tenant (and this is not a confirmation), or
        the tenant already queued a message with this ``dedupe_key`` (remembered for 7 days, and for
        as long as that message waits in the queue). ``default_text`` is the text used when neither
        the tenant nor Lily has a template of that name. ``recipient_timezone`` (IANA), when a
        provider gave the recipient's, is the zone quiet hours are kept in instead of the tenant's.
        Raises PermanentError for a bad number, template or timezone.
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, not {kind!r}")
        record = await self.tenants.require(tenant) if isinstance(tenant, str) else tenant
        try:
            number = normalize_e164(to)
        except ValueError as error:
            raise PermanentError(f"cannot text {mask_phone(to)}: {error}", code="invalid_number") from error
        try:
            body = render(record, template, context, default=default_text)
        except TemplateError as error:
            raise PermanentError(f"tenant {record.id}: {error}", code="template") from error
        if recipient_timezone is not None:
            try:
                check_timezone(recipient_timezone)
            except ValueError as error:
                raise PermanentError(str(error), code="timezone") from error
        if kind != "confirmation" and await self.compliance.is_suppressed(record.id, number):
            SMS_OUTCOMES.labels("suppressed").inc()
            log.info("sms not queued: recipient opted out", tenant=record.id, to=mask_phone(number), template=template)
            return None

        if dedupe_key is not None and await self.redis.exists(message_dedupe_key(record.id, dedupe_key)):
            log.info("sms not queued: same dedupe key already used", tenant=record.id, template=template)
            return None

        message_id = secrets.token_hex(12)
        now = self.clock.now()
        length = segment_info(body)
        retention = record.retention_days * 86400
        fields = {
            "id": message_id,
            "tenant": record.id,
            # Customer PII is sealed at rest (lily_host.tenants.customer_pii); MessageRecord opens it.
            "to": self.pii.seal(number),
            "body": self.pii.seal(body),
            "template": template,
            "kind": kind,
            "status": "scheduled",
            "status_rank": "0",
            "created_at": repr(now),
            "updated_at": repr(now),
            "encoding": length.encoding,
            "length": str(length.units),
            "segments": str(length.segments),
            "timezone": recipient_timezone or "",
            # The webhook delivery this text descends from (lily trace).
            "delivery": current_delivery() or "",
        }
        key = message_key(record.id, message_id)
        pipe = await slot_transaction(self.redis, key)
        track_keys(pipe, record.id, key, ttl=retention)
        pipe.hset(key, mapping=fields)
        pipe.expire(key, retention)
        pipe.zadd(index_key(record.id), {message_id: now})
        pipe.zremrangebyscore(index_key(record.id), "-inf", now - retention)
        await pipe.execute()

        options: dict[str, Any] = {"tenant": record.id}
        for name, value in (("delay", delay), ("run_at", run_at), ("jitter", jitter)):
            if value is not None:
                options[name] = value
        if dedupe_key is not None:
            options["dedupe_key"] = f"sms:{record.id}:{dedupe_key}"
        task_id = await self.queue.schedule(SEND_TASK, {"message_id": message_id}, **options)
        if task_id is None or (dedupe_key is not None and not await self._owns_task(task_id, message_id)):
            # Another call with the same dedupe key got there first.
            await self._forget(record.id, message_id)
            return None
        if dedupe_key is not None:
            dedupe = self.redis.pipeline(transaction=False)
            track_keys(dedupe, record.id, message_dedupe_key(record.id, dedupe_key), ttl=DEDUPE_SECONDS)
            dedupe.set(message_dedupe_key(record.id, dedupe_key), message_id, ex=DEDUPE_SECONDS)
            await dedupe.execute()
        await cast("Awaitable[int]", self.redis.hset(key, "task_id", task_id))
        await record_effect(
            self.redis,
            self.trace_days,
            "sms",
            message_id,
            {"tenant": record.id, "task_id": task_id, "template": template},
        )
        # Every text queued is part of the customer's conversation, whoever queued it.
        name = str((context or {}).get("customer_name") or "")
        await self.conversations.record_outbound(record, number, body, message_id, now, template=template, name=name)
        SMS_OUTCOMES.labels("queued").inc()
        log.info(
            "sms queued",
            tenant=record.id,
            message_id=message_id,
            to=mask_phone(number),
            template=template,
            kind=kind,
            segments=length.segments,
        )
        return task_id

    async def _owns_task(self, task_id: str, message_id: str) -> bool:
        task = await self.queue.get(task_id)
        return task is None or task.payload.get("message_id") == message_id

    async def _forget(self, tenant_id: str, message_id: str) -> None:
        pipe = await slot_transaction(self.redis, index_key(tenant_id))
        pipe.delete(message_key(tenant_id, message_id))
        pipe.zrem(index_key(tenant_id), message_id)
        await pipe.execute()

    # --- reading -----------------------------------------------------------------------------------

    async def get(self, tenant_id: str, message_id: str) -> MessageRecord | None:
        raw = await cast("Awaitable[dict[bytes, bytes]]", self.redis.hgetall(message_key(tenant_id, message_id)))
        return MessageRecord.from_hash(raw, self.pii) if raw else None

    async def recent(self, tenant_id: str, limit: int = 50) -> list[MessageRecord]:
        ids = await self.redis.zrevrange(index_key(tenant_id), 0, max(0, limit - 1))
        records = []
        for raw_id in ids:
            record = await self.get(tenant_id, raw_id.decode())
            if record is not None:
                records.append(record)
        return records

    async def by_provider_id(self, tenant_id: str, provider_id: str) -> MessageRecord | None:
        message_id = await self.redis.get(provider_key(tenant_id, provider_id))
        return None if message_id is None else await self.get(tenant_id, message_id.decode())

    # --- sending (the sms.send task) ---------------------------------------------------------------------

    async def send_task(self, ctx: TaskContext, payload: dict[str, Any]) -> None:
        """Run one message through suppression → quiet hours → cap → channel."""
        message_id = str(payload.get("message_id", ""))
        if ctx.tenant_id is None:
            raise PermanentError("sms.send needs a tenant", code="no_tenant")
        tenant = ctx.tenant_record if ctx.tenant_record is not None else await self.tenants.get(ctx.tenant_id)
        if tenant is None:
            ctx.log.warning("sms dropped: tenant no longer exists", message_id=message_id)
            return
        message = await self.get(tenant.id, message_id)
        if message is None:
            ctx.log.warning("sms dropped: message record expired or unknown", message_id=message_id)
            return
        if message.status in FINISHED:
            return
        if message.status == "sending":
            # The previous attempt died between handing the text over and recording it: at-least-once.
            ctx.log.warning("previous send attempt did not finish; sending again", message_id=message_id)
        now = ctx.now()
        log_context = {"message_id": message_id, "to": mask_phone(message.to), "template": message.template}

        reserved = False
        if message.kind != "confirmation":
            if await self.compliance.is_suppressed(tenant.id, message.to):
                await self._update(message, status="suppressed", now=now)
                SMS_OUTCOMES.labels("suppressed").inc()
                ctx.log.info("sms not sent: recipient opted out", **log_context)
                return
            quiet_until = quiet_hours_end(tenant, now, message.fields.get("timezone") or None, message.to)
            if quiet_until is not None:
                await self._update(
                    message, status="deferred", now=now, deferred_reason="quiet_hours", deferred_until=repr(quiet_until)
                )
                SMS_OUTCOMES.labels("deferred_quiet_hours").inc()
                raise Defer("quiet hours (federal, state or the tenant's)", until=quiet_until)
            cap_until = await self.compliance.reserve_send(tenant.id, message.to, message.id, now)
            if cap_until is not None:
                await self._update(
                    message, status="deferred", now=now, deferred_reason="frequency_cap", deferred_until=repr(cap_until)
                )
                SMS_OUTCOMES.labels("deferred_cap").inc()
                raise Defer(f"frequency cap of {self.compliance.daily_cap} texts per 24 h reached", until=cap_until)
            reserved = True

        channel = self.capability(SMS)
        await self._update(message, status="sending", now=now, attempt=str(ctx.attempt))
        outgoing = OutgoingSms(message_id=message.id, to=message.to, body=message.body)
        try:
            sent: SentSms = await channel.send(tenant, outgoing)
        except RecipientOptedOut as error:
            await self._release(reserved, message)
            await self.compliance.suppress(
                tenant.id, message.to, reason=f"provider:{error.code or 'opted_out'}", at=now
            )
            await self._update(message, status="opted_out", now=now, error_code=error.code or "", error=error.reason)
            SMS_OUTCOMES.labels("opted_out").inc()
            ctx.log.info("sms refused: recipient opted out at the provider; suppressed", **log_context)
            return
        except PermanentError as error:
            await self._release(reserved, message)
            await self._update(message, status="failed", now=now, error_code=error.code or "", error=error.reason)
            SMS_OUTCOMES.labels("failed").inc()
            raise
        except Exception as error:
            if self.integrations is not None:
                await self.integrations.record(
                    str(getattr(channel, "name", "sms")), False, f"{type(error).__name__}: {error}"
                )
            await self._release(reserved, message)
            # The queue dead-letters the task after its last attempt; the record says so too.
            final = ctx.attempt >= ctx.max_attempts
            await self._update(
                message, status="failed" if final else "retrying", now=now, error=f"{type(error).__name__}: {error}"
            )
            SMS_OUTCOMES.labels("failed" if final else "retry").inc()
            raise
        channel_name = str(getattr(channel, "name", "sms"))
        await self._update(
            message,
            status="sent" if _rank(sent.status) <= _rank("sent") else sent.status,
            now=now,
            provider_id=sent.provider_id,
            provider_status=sent.status,
            sender=sent.sender,
            channel=channel_name,
            sent_at=repr(now),
        )
        pipe = self.redis.pipeline(transaction=False)
        retention = tenant.retention_days * 86400
        track_keys(pipe, tenant.id, provider_key(tenant.id, sent.provider_id), ttl=retention)
        pipe.set(provider_key(tenant.id, sent.provider_id), message.id, ex=retention)
        await pipe.execute()
        if self.integrations is not None:
            await self.integrations.record(channel_name, True)
        await record_effect(
            self.redis,
            self.trace_days,
            "sms",
            message.id,
            {"tenant": tenant.id, "task_id": message.fields.get("task_id", ""), "template": message.template},
            refs=(sent.provider_id,),
            delivery=message.fields.get("delivery") or None,
        )
        SMS_OUTCOMES.labels("sent").inc()
        ctx.log.info("sms sent", channel=channel_name, provider_id=sent.provider_id, **log_context)

    async def _release(self, reserved: bool, message: MessageRecord) -> None:
        if reserved:
            await self.compliance.release_send(message.tenant, message.to, message.id)

    async def _update(self, message: MessageRecord, *, status: str, now: float, **extra: str) -> None:
        fields = {"status": status, "status_rank": str(_rank(status)), "updated_at": repr(now), **extra}
        await cast("Awaitable[int]", self.redis.hset(message_key(message.tenant, message.id), mapping=fields))

    # --- delivery status (provider callbacks) ---------------------------------------------------------

    async def record_status(
        self,
        tenant_id: str,
        provider_id: str,
        status: str,
        error_code: str | None = None,
        *,
        recipient_opted_out: bool = False,
        channel: str = "sms",
    ) -> bool:
        """Record a provider's status callback on the message; False if no message has that provider id.

        ``recipient_opted_out`` (e.g. Twilio error 21610) adds the recipient to the tenant's suppression list.
        """
        status = status.strip().lower()
        SMS_STATUS.labels(channel, status).inc()
        message = await self.by_provider_id(tenant_id, provider_id)
        if message is None:
            log.info("status callback for an unknown message", tenant=tenant_id, status=status)
            return False
        now = self.clock.now()
        if recipient_opted_out:
            await self.compliance.suppress(
                tenant_id, message.to, reason=f"provider:{error_code or 'opted_out'}", at=now
            )
        extra: dict[str, str] = {"updated_at": repr(now), "provider_status": status}
        if error_code:
            extra["error_code"] = error_code
        if status == "delivered":
            extra["delivered_at"] = repr(now)
        args: list[str] = [status, str(_rank(status))]
        for name, value in extra.items():
            args.extend((name, value))
        await self._advance_status(keys=[message_key(tenant_id, message.id)], args=args)
        log.info("sms status", tenant=tenant_id, message_id=message.id, status=status, error_code=error_code)
        return True


def _rank(status: str) -> int:
    return _STATUS_RANK.get(status, 2)


def message_key(tenant_id: str, message_id: str) -> str:
    return tenant_key(tenant_id, "sms", "message", message_id)


def index_key(tenant_id: str) -> str:
    return tenant_key(tenant_id, "sms", "messages")


def message_dedupe_key(tenant_id: str, key: str) -> str:
    return tenant_key(tenant_id, "sms", "dedupe", key)


def provider_key(tenant_id: str, provider_id: str) -> str:
    return tenant_key(tenant_id, "sms", "provider", provider_id)
