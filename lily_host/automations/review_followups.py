"""Built-in plugin: one optional follow-up to a review request, cancelled by anything the customer does.

With ``tenant.review_follow_up_days`` set (default off), the review request carries a tracked short
link through Lily (``<public URL>/r/<token>``, a redirect to the tenant's ``review_link``), and
``reviews.follow_up`` is scheduled that many days later. It is cancelled when the customer clicks
the link, texts anything (a reply, STOP; :mod:`lily_host.followups`), or the job is cancelled.

Every customer gets the same request and the same follow-up: nothing asks how the job went first,
and nothing depends on an answer (Google forbids review gating; so does the FTC's rule on reviews).

Redis keys: ``lily:review_link:<token>`` → "<tenant> <job id>" (kept for the tenant's retention);
on the job record: review_token, review_clicked_at, review_follow_up_due, review_follow_up_sent_at.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from quart import Blueprint, Response, redirect

from lily_host import followups, hookimpl
from lily_host.contract import Routes, TaskContext, TaskHandler
from lily_host.host import current_host
from lily_host.log import mask_phone
from lily_host.templates import REVIEW_FOLLOW_UP

if TYPE_CHECKING:
    from lily_host.automations.reviews import JobStore
    from lily_host.host import Host
    from lily_host.tenants import Tenant

FOLLOW_UP_TASK = "reviews.follow_up"
KIND = "review"


def link_key(token: str) -> str:
    return f"lily:review_link:{token}"


def _store(host: Host) -> JobStore:
    # Imported here: the reviews automation imports this module.
    from lily_host.automations.reviews import JobStore

    return JobStore(host.redis, host.pii)


async def tracked_link(host: Host, tenant: Tenant, job_id: str) -> str:
    """The short link the review request carries when a follow-up may follow; the plain link otherwise."""
    if not tenant.review_follow_up_days or not tenant.review_link:
        return tenant.review_link or ""
    token = secrets.token_urlsafe(12)
    await host.redis.set(link_key(token), f"{tenant.id} {job_id}", ex=tenant.retention_days * 86400)
    await _store(host).set(tenant.id, job_id, review_token=token)
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
        await _store(host).set(tenant.id, job_id, review_follow_up_due=repr(due))


async def send_follow_up(ctx: TaskContext, payload: dict[str, Any]) -> None:
    host = ctx.host
    tenant = await host.tenants.get(ctx.tenant) if ctx.tenant else None
    job_id = str(payload.get("job_id") or "")
    if tenant is None:
        return
    job = await _store(host).get(tenant.id, job_id)
    if job is None or job.status != "completed" or job.fields.get("review_clicked_at"):
        return
    phone = job.fields.get("customer_phone", "")
    if not phone or not await followups.is_pending(host, tenant.id, phone, KIND, job_id, ctx.task_id):
        ctx.log.info("review follow-up cancelled: the customer replied or clicked", job_id=job_id)
        return
    token = job.fields.get("review_token")
    link = host.public_url(f"/r/{token}") if token else tenant.review_link or ""
    context = {"customer_name": job.fields.get("customer_name", ""), "review_link": link}
    await host.messaging.queue_sms(
        tenant, phone, template=REVIEW_FOLLOW_UP, context=context, dedupe_key=f"review-follow-up:{job_id}"
    )
    await followups.done(host, tenant.id, phone, KIND, job_id)
    await _store(host).set(tenant.id, job_id, review_follow_up_sent_at=repr(ctx.now()))
    ctx.log.info("review follow-up queued", job_id=job_id, to=mask_phone(phone))


review_links = Blueprint("lily_review_links", __name__)


@review_links.get("/<token>")
async def follow_review_link(token: str) -> Any:
    """Record the click (which cancels the follow-up) and send the customer on to the review page."""
    host = current_host()
    raw = await host.redis.get(link_key(token)) if 12 <= len(token) <= 32 else None
    tenant = None
    if raw is not None:
        tenant_id, _, job_id = raw.decode().partition(" ")
        tenant = await host.tenants.get(tenant_id)
    if tenant is None or not tenant.review_link:
        return Response("This link is no longer valid.", status=404, content_type="text/plain; charset=utf-8")
    store = _store(host)
    job = await store.get(tenant.id, job_id)
    if job is not None and not job.fields.get("review_clicked_at"):
        await store.set(tenant.id, job_id, review_clicked_at=repr(host.clock.now()))
        if job.fields.get("customer_phone"):
            await followups.cancel(host, tenant.id, job.fields["customer_phone"], KIND, job_id)
    return redirect(tenant.review_link, code=302)


@hookimpl
def register_tasks(register: Callable[[TaskHandler], None]) -> None:
    register(TaskHandler(FOLLOW_UP_TASK, send_follow_up, tenant_gated=True))


@hookimpl
def register_routes(register: Callable[[Routes], None]) -> None:
    register(Routes(review_links, url_prefix="/r"))
