"""Built-in plugin: completed jobs and the review request that follows them.

``POST /api/jobs/<job_id>/complete`` (tenant API key) or ``lily jobs complete`` marks a job done
and emits ``job.completed``; the subscriber schedules ``reviews.send_request`` at completion time +
``tenant.review_delay_seconds`` (default 24 h), which texts the tenant's ``review_link`` to the
customer. One request per job however often it is completed; none if the job is cancelled
(``POST /api/jobs/<job_id>/cancel`` or a ``job.cancelled`` event) before it is due. Every customer
gets the same request: no asking "were you happy?" first (Google's policy and the FTC's rule).

A job is one Redis hash, ``lily:job:<tenant>:<job_id>``, kept for the tenant's retention period; the
customer's name and phone number in it are sealed with the host's key (:mod:`lily_host.tenants.customer_pii`).

The job store is :mod:`lily_host.records.job_store`; the tenant API :mod:`lily_host.builtins.jobs_api`,
``lily jobs`` :mod:`lily_host.builtins.jobs_commands`, the hooks :mod:`lily_host.builtins.reviews_plugin`.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from lily_host.observability.log import get_logger, mask_phone
from lily_host.plugin_api.contract import TaskContext
from lily_host.plugin_api.event_names import JOB_CANCELLED, JOB_COMPLETED
from lily_host.records import followup_registry as followups
from lily_host.records.job_store import (
    JOB_ID,
    JobCompletion,
    JobError,
    JobStore,
    check_job_id,
    validation_message,
)
from lily_host.runtime.host import host_of
from lily_host.sms.message_templates import REVIEW_REQUEST

if TYPE_CHECKING:
    from lily_host.plugin_api.tenant import Tenant
    from lily_host.runtime.host import Host


COMPLETED_TASK = "reviews.job_completed"
CANCELLED_TASK = "reviews.job_cancelled"
SEND_TASK = "reviews.send_request"


log = get_logger("lily.reviews")


# --- the operations the API and the CLI share ----------------------------------------------------------


# --- the optional follow-up (tenant.review_follow_up_days; sent by lily_host.builtins.review_followups) ---

FOLLOW_UP_TASK = "reviews.follow_up"
#: The kind of follow-up in the follow-up registry (lily_host.records.followup_registry).
KIND = "review"


def link_key(token: str) -> str:
    """The tracked review link's key: a hash of the token (no bearer material in key names)."""
    return f"lily:review_link:{hashlib.sha256(token.encode()).hexdigest()}"


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
    if tenant is None or not JOB_ID.fullmatch(job_id):
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
