"""The built-in plugin ``lily.reviews``: registers the review-request tasks and subscriptions, the jobs API,
``lily jobs`` and the ``jobs.done`` simulation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import click

from lily_host.builtins.jobs_api import jobs_api
from lily_host.builtins.jobs_commands import jobs_cli
from lily_host.builtins.review_requests import (
    CANCELLED_TASK,
    COMPLETED_TASK,
    SEND_TASK,
    on_job_cancelled,
    on_job_completed,
    send_review_request,
)
from lily_host.plugin_api.contract import EventSubscription, Routes, Simulation, TaskHandler, simulation_id
from lily_host.plugin_api.event_names import JOB_CANCELLED, JOB_COMPLETED
from lily_host.plugin_api.markers import hookimpl
from lily_host.runtime.host import host_of

if TYPE_CHECKING:
    from lily_host.plugin_api.host_api import LilyHost
    from lily_host.plugin_api.tenant import Tenant


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
