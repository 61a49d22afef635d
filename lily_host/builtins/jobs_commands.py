"""``lily jobs``: complete, cancel and show completed jobs and their review requests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
from pydantic import ValidationError

from lily_host.builtins.review_requests import (
    cancel_job,
    complete_job,
)
from lily_host.plugin_api.cli_output import echo_fields, echo_json, json_option, local_time, masked
from lily_host.records.job_store import (
    Job,
    JobCompletion,
    JobError,
    JobStore,
    check_job_id,
    validation_message,
)

if TYPE_CHECKING:
    from lily_host.runtime.host import Host


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
