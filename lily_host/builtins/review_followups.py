"""Built-in plugin: one optional follow-up to a review request, cancelled by anything the customer does.

With ``tenant.review_follow_up_days`` set (default off), the review request carries a tracked short
link through Lily (``<public URL>/r/<token>``, a redirect to the tenant's ``review_link``), and
``reviews.follow_up`` is scheduled that many days later. It is cancelled when the customer clicks
the link, texts anything (a reply, STOP; :mod:`lily_host.records.followup_registry`), or the job is cancelled.

Every customer gets the same request and the same follow-up: nothing asks how the job went first,
and nothing depends on an answer (Google forbids review gating; so does the FTC's rule on reviews).

Redis keys: ``lily:review_link:<sha256 of token>`` → "<tenant> <job id>" (kept for the tenant's retention);
on the job record: review_token, review_clicked_at, review_follow_up_due, review_follow_up_sent_at.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quart import Blueprint, Response, redirect

from lily_host.builtins.review_requests import FOLLOW_UP_TASK, KIND, link_key
from lily_host.observability.log import mask_phone
from lily_host.plugin_api.contract import Routes, TaskContext, TaskHandler
from lily_host.plugin_api.markers import hookimpl
from lily_host.records import followup_registry as followups
from lily_host.records.job_store import JobStore
from lily_host.runtime.host import current_host, host_of
from lily_host.sms.message_templates import REVIEW_FOLLOW_UP


async def send_follow_up(ctx: TaskContext, payload: dict[str, Any]) -> None:
    host = host_of(ctx.host)
    tenant = ctx.tenant
    job_id = str(payload.get("job_id") or "")
    if tenant is None:
        return
    job = await JobStore(host.redis, host.pii).get(tenant.id, job_id)
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
    await JobStore(host.redis, host.pii).set(tenant.id, job_id, review_follow_up_sent_at=repr(ctx.now()))
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
        # A page for the person who tapped the link, like the quote pages (a link is followed by people).
        page = (
            "<!doctype html><html lang=en><meta charset=utf-8><title>Link not found</title>"
            "<body><p>This link is no longer valid.</p></body></html>"
        )
        return Response(page, status=404, content_type="text/html; charset=utf-8")
    store = JobStore(host.redis, host.pii)
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
