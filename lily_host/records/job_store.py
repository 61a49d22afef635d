"""Completed jobs at rest: one Redis hash per job, ``lily:{t:<tenant>}:job:<job_id>``, kept for the tenant's
retention period; the customer's name and phone number in it are sealed with the host's key
(:mod:`lily_host.tenants.customer_pii`). Completing and cancelling are atomic scripts.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lily_host.plugin_api.key_registry import track_keys_now
from lily_host.plugin_api.key_slots import tenant_key
from lily_host.plugin_api.validators import normalize_e164

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from lily_host.plugin_api.host_api import PiiBox
    from lily_host.plugin_api.tenant import Tenant


JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
INVALID_JOB_ID = "job id must be 1-128 characters: letters, digits and . _ : - (starting with a letter or digit)"


class JobError(ValueError):
    """A job request that cannot be done as asked; the message says why."""


class JobCompletion(BaseModel):
    """The body of ``POST /api/jobs/<id>/complete`` and the data of ``job.completed``."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    customer_name: str = Field(min_length=1, max_length=200)
    customer_phone: str
    service: str | None = Field(default=None, max_length=100)

    @field_validator("customer_phone")
    @classmethod
    def _e164(cls, value: str) -> str:
        return normalize_e164(value)


def check_job_id(job_id: str) -> str:
    if not JOB_ID.fullmatch(job_id):
        raise JobError(INVALID_JOB_ID)
    return job_id


def validation_message(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or 'body'}: {item['msg']}" for item in error.errors()
    )


# --- storage -------------------------------------------------------------------------------------------

# Mark a job completed; returns {1, ""} when it was not completed before, else {0, event_emitted}.
_COMPLETE_LUA = """
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'completed' then
  return {0, redis.call('HGET', KEYS[1], 'event_emitted') or ''}
end
redis.call('HSET', KEYS[1], 'job_id', ARGV[1], 'status', 'completed', 'customer_name', ARGV[2],
  'customer_phone', ARGV[3], 'service', ARGV[4], 'completed_at', ARGV[5], 'event_emitted', '',
  'review_state', 'pending')
redis.call('HDEL', KEYS[1], 'cancelled_at')
redis.call('HINCRBY', KEYS[1], 'completions', 1)
redis.call('EXPIRE', KEYS[1], ARGV[6])
return {1, ''}
"""

# Cancel a job; returns false for an unknown job, else {previous status, review task to cancel, review state}.
_CANCEL_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local status = redis.call('HGET', KEYS[1], 'status') or ''
local task = redis.call('HGET', KEYS[1], 'review_request_task') or ''
local state = redis.call('HGET', KEYS[1], 'review_state') or ''
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'cancelled_at', ARGV[1])
redis.call('HDEL', KEYS[1], 'review_claim', 'review_request_task')
if state == 'pending' or state == 'scheduled' then
  state = 'cancelled'
  redis.call('HSET', KEYS[1], 'review_state', state)
end
return {status, task, state}
"""


@dataclass(frozen=True)
class Job:
    tenant: str
    job_id: str
    fields: Mapping[str, str]

    @property
    def status(self) -> str:
        return self.fields.get("status", "")

    def public_view(self) -> dict[str, Any]:
        """The job as the API and CLI show it; times as ISO 8601 UTC."""
        data: dict[str, Any] = {
            key: self.fields[key]
            for key in ("job_id", "status", "customer_name", "customer_phone", "service")
            if self.fields.get(key)
        }
        for key in ("completed_at", "cancelled_at"):
            if self.fields.get(key):
                data[key] = _iso(self.fields[key])
        review: dict[str, str] = {}
        if self.fields.get("review_state"):
            review["state"] = self.fields["review_state"]
        for key in ("review_due_at", "review_sent_at"):
            if self.fields.get(key):
                review[key.removeprefix("review_")] = _iso(self.fields[key])
        data["review_request"] = review
        return data


def _iso(timestamp: str) -> str:
    return dt.datetime.fromtimestamp(float(timestamp), dt.UTC).isoformat(timespec="seconds")


#: Job fields that hold customer PII, sealed at rest when the store has the host's PII box.
SEALED_FIELDS = ("customer_name", "customer_phone")


class JobStore:
    def __init__(self, redis: aioredis.Redis, pii: PiiBox | None = None) -> None:
        self.redis = redis
        self.pii = pii
        self._complete = redis.register_script(_COMPLETE_LUA)
        self._cancel = redis.register_script(_CANCEL_LUA)

    @staticmethod
    def key(tenant_id: str, job_id: str) -> str:
        return tenant_key(tenant_id, "job", job_id)

    async def get(self, tenant_id: str, job_id: str) -> Job | None:
        raw = await cast("Awaitable[dict[bytes, bytes]]", self.redis.hgetall(self.key(tenant_id, job_id)))
        if not raw:
            return None
        fields = {key.decode(): value.decode() for key, value in raw.items()}
        if self.pii is not None:
            for name in SEALED_FIELDS:
                if fields.get(name):
                    fields[name] = self.pii.open(fields[name])
        return Job(tenant_id, job_id, fields)

    async def complete(self, tenant: Tenant, job_id: str, details: JobCompletion, now: float) -> tuple[bool, bool]:
        """Mark the job completed: (newly completed, completion event already emitted)."""
        ttl = tenant.retention_days * 86400 + tenant.review_delay_seconds
        await track_keys_now(self.redis, tenant.id, self.key(tenant.id, job_id), ttl=ttl)
        newly, emitted = await self._complete(
            keys=[self.key(tenant.id, job_id)],
            args=[
                job_id,
                self._seal(details.customer_name),
                self._seal(details.customer_phone),
                details.service or "",
                repr(now),
                ttl,
            ],
        )
        return bool(int(newly)), bool(emitted)

    def _seal(self, value: str) -> str:
        return self.pii.seal(value) if self.pii is not None else value

    async def cancel(self, tenant_id: str, job_id: str, now: float) -> tuple[str, str, str] | None:
        """Cancel the job: (previous status, review task to cancel or "", review state), None if unknown."""
        result = await self._cancel(keys=[self.key(tenant_id, job_id)], args=[repr(now)])
        if not result:
            return None
        status, task, state = (part.decode() if isinstance(part, bytes) else str(part) for part in result)
        return status, task, state

    async def set(self, tenant_id: str, job_id: str, **fields: str) -> None:
        await cast("Awaitable[int]", self.redis.hset(self.key(tenant_id, job_id), mapping=fields))

    async def claim_review(self, tenant_id: str, job_id: str, claimant: str) -> bool:
        """Only one subscriber run schedules a job's review: True for it (and for its own redelivery)."""
        key = self.key(tenant_id, job_id)
        if await cast("Awaitable[bool]", self.redis.hsetnx(key, "review_claim", claimant)):
            return True
        holder = await cast("Awaitable[bytes | None]", self.redis.hget(key, "review_claim"))
        return holder is not None and holder.decode() == claimant
