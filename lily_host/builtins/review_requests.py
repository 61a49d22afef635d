"""Built-in plugin: completed jobs and the review request that follows them.

``POST /api/jobs/<job_id>/complete`` (tenant API key) or ``lily jobs complete`` marks a job done
and emits ``job.completed``; the subscriber schedules ``reviews.send_request`` at completion time +
``tenant.review_delay_seconds`` (default 24 h), which texts the tenant's ``review_link`` to the
customer. One request per job however often it is completed; none if the job is cancelled
(``POST /api/jobs/<job_id>/cancel`` or a ``job.cancelled`` event) before it is due. Every customer
gets the same request: no asking "were you happy?" first (Google's policy and the FTC's rule).

A job is one Redis hash, ``lily:job:<tenant>:<job_id>``, kept for the tenant's retention period; the
customer's name and phone number in it are sealed with the host's key (:mod:`lily_host.tenants.customer_pii`).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import click
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from quart import Blueprint, g, jsonify, request

from lily_host.observability.log import get_logger, mask_phone
from lily_host.plugin_api.cli_output import echo_fields, echo_json, json_option, local_time, masked
from lily_host.plugin_api.contract import EventSubscription, Routes, Simulation, TaskContext, TaskHandler, simulation_id
from lily_host.plugin_api.event_names import JOB_CANCELLED, JOB_COMPLETED
from lily_host.plugin_api.markers import hookimpl
from lily_host.plugin_api.route_auth import require_tenant
from lily_host.plugin_api.validators import normalize_e164
from lily_host.records import followup_registry as followups
from lily_host.runtime.host import current_host, host_of
from lily_host.sms.message_templates import REVIEW_REQUEST

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from lily_host.plugin_api.host_api import LilyHost, PiiBox
    from lily_host.plugin_api.tenant import Tenant
    from lily_host.runtime.host import Host

COMPLETED_TASK = "reviews.job_completed"
CANCELLED_TASK = "reviews.job_cancelled"
SEND_TASK = "reviews.send_request"

JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
INVALID_JOB_ID = "job id must be 1-128 characters: letters, digits and . _ : - (starting with a letter or digit)"

log = get_logger("lily.reviews")


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
    if not JOB_ID.match(job_id):
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
        return f"lily:job:{tenant_id}:{job_id}"

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


# --- the operations the API and the CLI share ----------------------------------------------------------


# --- the optional follow-up (tenant.review_follow_up_days; sent by lily_host.builtins.review_followups) ---

FOLLOW_UP_TASK = "reviews.follow_up"
#: The kind of follow-up in the follow-up registry (lily_host.records.followup_registry).
KIND = "review"


def link_key(token: str) -> str:
    return f"lily:review_link:{token}"


async def tracked_link(host: Host, tenant: Tenant, job_id: str) -> str:
    """The short link the review request carries when a follow-up may follow; the plain link otherwise."""
    if not tenant.review_follow_up_days or not tenant.review_link:
        return tenant.review_link or ""
    token = secrets.token_urlsafe(12)
    await host.redis.set(link_key(token), f"{tenant.id} {job_id}", ex=tenant.retention_days * 86400)
    await JobStore(host.redis, host.pii).set(tenant.id, job_id, review_token=token)
    return host.public_url(f"/r/{token}")


async def schedule_follow_up(host: Host, tenant: Tenant, job_id: str, phone: str, now: float) -> None:
    if not tenant.review_follow_up_days:
        return
    due = now + tenant.review_follow_up_days * 86400
    task_id = await host.queue.schedule(
        FOLLOW_UP_TASK,
        {"job_id": job_id},
        tenant=tenant.id,
        run_at=due,
        dedupe_key=f"review-follow-up:{tenant.id}:{job_id}",
    )
    if task_id is not None:
        await followups.register(host, tenant.id, phone, KIND, job_id, task_id, due)
        await JobStore(host.redis, host.pii).set(tenant.id, job_id, review_follow_up_due=repr(due))


async def complete_job(host: Host, tenant: Tenant, job_id: str, details: JobCompletion) -> dict[str, Any]:
    check_job_id(job_id)
    store = JobStore(host.redis, host.pii)
    newly, emitted = await store.complete(tenant, job_id, details, host.clock.now())
    if newly or not emitted:
        # A crash between marking and emitting is healed by the next call: subscribers dedupe.
        await host.events.emit(
            JOB_COMPLETED, {"job_id": job_id, **details.model_dump(exclude_none=True)}, tenant=tenant.id
        )
        await store.set(tenant.id, job_id, event_emitted="1")
    log.info("job completed", tenant=tenant.id, job_id=job_id, duplicate=not newly)
    job = await store.get(tenant.id, job_id)
    return {"duplicate": not newly, **(job.public_view() if job else {"job_id": job_id})}


async def cancel_job(host: Host, tenant: Tenant, job_id: str, *, emit: bool = True) -> dict[str, Any] | None:
    """Cancel the job and its pending review request; None if the tenant has no such job."""
    check_job_id(job_id)
    store = JobStore(host.redis, host.pii)
    result = await store.cancel(tenant.id, job_id, host.clock.now())
    if result is None:
        return None
    previous, review_task, _state = result
    if review_task:
        await host.queue.cancel(review_task)
    job = await store.get(tenant.id, job_id)
    if job is not None and job.fields.get("customer_phone"):
        await followups.cancel(host, tenant.id, job.fields["customer_phone"], KIND, job_id)
    if emit and previous != "cancelled":
        await host.events.emit(JOB_CANCELLED, {"job_id": job_id}, tenant=tenant.id)
    log.info("job cancelled", tenant=tenant.id, job_id=job_id, review_cancelled=bool(review_task))
    job = await store.get(tenant.id, job_id)
    return job.public_view() if job else {"job_id": job_id, "status": "cancelled"}


# --- tasks ------------------------------------------------------------------------------------------------


async def on_job_completed(ctx: TaskContext, payload: dict[str, Any]) -> None:
    """Schedule the review request of a completed job, once."""
    host = host_of(ctx.host)
    tenant = ctx.tenant
    if tenant is None:
        return
    try:
        job_id = check_job_id(str(payload.get("job_id") or ""))
        details = JobCompletion.model_validate(payload)
    except (JobError, ValidationError) as error:
        message = validation_message(error) if isinstance(error, ValidationError) else str(error)
        ctx.log.warning("job.completed with unusable data; no review request", error=message)
        return
    store = JobStore(host.redis, host.pii)
    job = await store.get(tenant.id, job_id)
    if job is None:
        # Emitted by a plugin rather than the jobs API: record the job the same way.
        await store.complete(tenant, job_id, details, ctx.now())
        job = await store.get(tenant.id, job_id)
    if job is None or job.status != "completed":
        ctx.log.info("job no longer completed; no review request", job_id=job_id)
        return
    if job.fields.get("review_sent_at"):
        return
    if not await store.claim_review(tenant.id, job_id, ctx.task_id):
        return
    due = float(job.fields.get("completed_at") or ctx.now()) + tenant.review_delay_seconds
    completion = job.fields.get("completions", "1")
    task_id = await host.queue.schedule(
        SEND_TASK,
        {"job_id": job_id},
        tenant=tenant.id,
        run_at=due,
        dedupe_key=f"reviews:{tenant.id}:{job_id}:{completion}",
    )
    if task_id is not None:
        await store.set(
            tenant.id, job_id, review_request_task=task_id, review_due_at=repr(due), review_state="scheduled"
        )
    ctx.log.info("review request scheduled", job_id=job_id, due=due)


async def on_job_cancelled(ctx: TaskContext, payload: dict[str, Any]) -> None:
    tenant = ctx.tenant
    job_id = str(payload.get("job_id") or "")
    if tenant is None or not JOB_ID.match(job_id):
        return
    await cancel_job(host_of(ctx.host), tenant, job_id, emit=False)


async def send_review_request(ctx: TaskContext, payload: dict[str, Any]) -> None:
    host = host_of(ctx.host)
    tenant = ctx.tenant
    job_id = str(payload.get("job_id") or "")
    if tenant is None:
        return
    store = JobStore(host.redis, host.pii)
    job = await store.get(tenant.id, job_id)
    if job is None or job.status != "completed":
        ctx.log.info("job cancelled or gone; no review request", job_id=job_id)
        return
    if job.fields.get("review_sent_at") or job.fields.get("review_request_task") != ctx.task_id:
        return
    if not tenant.review_link:
        await store.set(tenant.id, job_id, review_state="skipped_no_review_link")
        ctx.log.warning("no review request: the tenant has no review_link (lily tenants set ... review_link=...)")
        return
    context = {
        "customer_name": job.fields.get("customer_name", ""),
        "service": job.fields.get("service") or "service",
        # A tracked short link when a follow-up may follow (its click cancels the follow-up).
        "review_link": await tracked_link(host, tenant, job_id),
    }
    phone = job.fields.get("customer_phone", "")
    queued = await host.messaging.queue_sms(
        tenant, phone, template=REVIEW_REQUEST, context=context, dedupe_key=f"review:{job_id}"
    )
    if queued is not None:
        await schedule_follow_up(host, tenant, job_id, phone, ctx.now())
    await store.set(tenant.id, job_id, review_sent_at=repr(ctx.now()), review_state="sent")
    ctx.log.info("review request queued", job_id=job_id, to=mask_phone(phone))


# --- HTTP API --------------------------------------------------------------------------------------------

jobs_api = Blueprint("lily_jobs", __name__)


def _error(status: int, error: str, message: str) -> Any:
    response = jsonify({"error": error, "message": message})
    response.status_code = status
    return response


async def _json_body() -> dict[str, Any] | Any:
    if not request.is_json:
        return _error(415, "unsupported_media_type", "send the job as JSON (Content-Type: application/json)")
    body = await request.get_json(silent=True)
    if not isinstance(body, dict):
        return _error(400, "invalid", "the body must be a JSON object")
    return body


@jobs_api.post("/<job_id>/complete")
@require_tenant
async def complete(job_id: str) -> Any:
    if not JOB_ID.match(job_id):
        return _error(400, "invalid", INVALID_JOB_ID)
    body = await _json_body()
    if not isinstance(body, dict):
        return body
    try:
        details = JobCompletion.model_validate(body)
    except ValidationError as error:
        return _error(400, "invalid", validation_message(error))
    result = await complete_job(current_host(), g.tenant, job_id, details)
    return jsonify(result), 200 if result["duplicate"] else 202


@jobs_api.post("/<job_id>/cancel")
@require_tenant
async def cancel(job_id: str) -> Any:
    if not JOB_ID.match(job_id):
        return _error(400, "invalid", INVALID_JOB_ID)
    result = await cancel_job(current_host(), g.tenant, job_id)
    if result is None:
        return _error(404, "not_found", f"no job {job_id!r} for this tenant")
    return jsonify(result)


@jobs_api.get("/<job_id>")
@require_tenant
async def show(job_id: str) -> Any:
    job = (
        await JobStore(current_host().redis, current_host().pii).get(g.tenant.id, job_id)
        if JOB_ID.match(job_id)
        else None
    )
    if job is None:
        return _error(404, "not_found", f"no job {job_id!r} for this tenant")
    return jsonify(job.public_view())


# --- CLI ----------------------------------------------------------------------------------------------------


@click.group("jobs", help="Completed jobs and their review requests.")
def jobs_cli() -> None:
    """Group of job commands."""


def _echo_job(view: dict[str, Any], headline: str) -> None:
    """One job for people: local times, the customer's number masked (``--json`` has the record as is)."""
    review = view.get("review_request") or {}
    click.echo(headline)
    echo_fields(
        [
            ("status", view.get("status")),
            ("customer", view.get("customer_name")),
            ("phone", masked(view.get("customer_phone"))),
            ("service", view.get("service")),
            ("completed", local_time(view.get("completed_at"))),
            ("cancelled", local_time(view.get("cancelled_at"))),
            ("review request", review.get("state")),
            ("review due", local_time(review.get("due_at"))),
            ("review sent", local_time(review.get("sent_at"))),
        ]
    )


@jobs_cli.command("complete", help="Mark JOB_ID done; its review request goes out after the tenant's delay.")
@click.argument("tenant_id")
@click.argument("job_id")
@click.option("--name", "customer_name", required=True, help="Customer name")
@click.option("--phone", "customer_phone", required=True, help="Customer phone, E.164 (+15551234567)")
@click.option("--service", default=None, help="What was done, e.g. 'window cleaning'")
@json_option
def complete_command(
    tenant_id: str, job_id: str, customer_name: str, customer_phone: str, service: str | None, as_json: bool
) -> None:
    from lily_host.plugin_api.commands import with_host

    try:
        check_job_id(job_id)
        details = JobCompletion(customer_name=customer_name, customer_phone=customer_phone, service=service)
    except JobError as error:
        raise click.BadParameter(str(error), param_hint="JOB_ID") from error
    except ValidationError as error:
        raise click.UsageError(validation_message(error)) from error

    async def work(host: Host) -> dict[str, Any]:
        return await complete_job(host, await host.tenants.require(tenant_id), job_id, details)

    result = with_host(work)
    if as_json:
        echo_json(result)
        return
    already = " (already completed: nothing changed)" if result.get("duplicate") else ""
    _echo_job(result, f"job {job_id} of {tenant_id} completed{already}")


@jobs_cli.command("cancel", help="Cancel JOB_ID; a review request not yet sent is dropped.")
@click.argument("tenant_id")
@click.argument("job_id")
@json_option
def cancel_command(tenant_id: str, job_id: str, as_json: bool) -> None:
    from lily_host.plugin_api.commands import with_host

    async def work(host: Host) -> dict[str, Any] | None:
        return await cancel_job(host, await host.tenants.require(tenant_id), job_id)

    result = with_host(work)
    if result is None:
        raise click.ClickException(f"tenant {tenant_id!r} has no job {job_id!r}")
    if as_json:
        echo_json(result)
        return
    _echo_job(result, f"job {job_id} of {tenant_id} cancelled")


@jobs_cli.command("show", help="Show JOB_ID and the state of its review request.")
@click.argument("tenant_id")
@click.argument("job_id")
@json_option
def show_command(tenant_id: str, job_id: str, as_json: bool) -> None:
    from lily_host.plugin_api.commands import with_host

    async def work(host: Host) -> Job | None:
        await host.tenants.require(tenant_id)
        return await JobStore(host.redis, host.pii).get(tenant_id, job_id)

    job = with_host(work)
    if job is None:
        raise click.ClickException(f"tenant {tenant_id!r} has no job {job_id!r}")
    if as_json:
        echo_json(job.public_view())
        return
    _echo_job(job.public_view(), f"job {job_id} of {tenant_id}")


# --- hooks ----------------------------------------------------------------------------------------------------


@hookimpl
def register_routes(register: Callable[[Routes], None]) -> None:
    register(Routes(jobs_api, url_prefix="/api/jobs"))


@hookimpl
def register_tasks(register: Callable[[TaskHandler], None]) -> None:
    register(TaskHandler(COMPLETED_TASK, on_job_completed))
    register(TaskHandler(CANCELLED_TASK, on_job_cancelled))
    # Held, not dropped, while the tenant's subscription is paused.
    register(TaskHandler(SEND_TASK, send_review_request, tenant_gated=True))


@hookimpl
def register_event_subscriptions(register: Callable[[EventSubscription], None]) -> None:
    register(EventSubscription(JOB_COMPLETED, COMPLETED_TASK))
    register(EventSubscription(JOB_CANCELLED, CANCELLED_TASK))


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(jobs_cli)


#: The customer of a simulated job (a 555 number: it never reaches a real phone).
SAMPLE_CUSTOMER = "+15555550167"
#: The tenant secret holding the API key `lily simulate jobs.done` calls the jobs API with.
SIMULATION_KEY_SECRET = "simulation_api_key"


async def _simulated_job_done(host: LilyHost, tenant: Tenant) -> tuple[str, Mapping[str, str], bytes]:
    """``POST /api/jobs/<fresh id>/complete`` with the tenant's key, as the SaaS would call it."""
    import json

    tenants = host_of(host).tenants  # minting an API key is the host's, not the plugin API's
    key = await tenants.get_secret(tenant.id, SIMULATION_KEY_SECRET)
    if key is None or await tenants.authenticate(key) is None:
        # One key for every simulation of this tenant, kept encrypted like its other secrets.
        _key_id, key = await tenants.mint_key(tenant.id, "lily simulate")
        await tenants.put_secret(tenant.id, SIMULATION_KEY_SECRET, key)
    body = {"customer_name": "Sam Sample", "customer_phone": SAMPLE_CUSTOMER, "service": "pressure washing"}
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    return f"/api/jobs/{simulation_id('job-', 6)}/complete", headers, json.dumps(body).encode()


@hookimpl
def register_simulations(register: Callable[[Simulation], None]) -> None:
    register(
        Simulation(
            "jobs.done",
            "a job is marked done → review request after the tenant's delay (lily tasks run-now ID: now)",
            _simulated_job_done,
        )
    )
