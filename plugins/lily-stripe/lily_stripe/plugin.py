"""The hook implementations of the Stripe plugin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from pydantic_settings import BaseSettings

from lily_host import HealthCheck, RetryPolicy, Routes, Simulation, TaskHandler, WebhookEndpoint, hookimpl
from lily_stripe.api import URL_PREFIX, make_blueprint
from lily_stripe.health import health_checks
from lily_stripe.settings import StripeSettings
from lily_stripe.simulations import checkout_simulation, talks_to_local_fake
from lily_stripe.sync import SYNC_TASK, schedule_sync, sync_subscription
from lily_stripe.webhook import StripeWebhook

#: The plugin API version this plugin is written for (docs/api.md, "Versions").
LILY_PLUGIN_API = 2

#: Stripe outages are usually short; a sync that still fails after ~1 h lands in the dead letters.
SYNC_RETRY = RetryPolicy(max_attempts=8, backoff_base=5.0, backoff_cap=900.0)


@hookimpl
def register_settings(register: Callable[[type[BaseSettings]], None]) -> None:
    register(StripeSettings)


@hookimpl
def register_webhooks(register: Callable[[WebhookEndpoint], None]) -> None:
    register(StripeWebhook())


@hookimpl
def register_routes(register: Callable[[Routes], None]) -> None:
    register(Routes(make_blueprint(), url_prefix=URL_PREFIX))


@hookimpl
def register_tasks(register: Callable[[TaskHandler], None]) -> None:
    # Not tenant_gated: syncing is what un-pauses a paused tenant.
    register(TaskHandler(SYNC_TASK, sync_subscription, retry=SYNC_RETRY))


@hookimpl
def register_health_checks(register: Callable[[HealthCheck], None]) -> None:
    for check in health_checks():
        register(check)


@hookimpl
def register_simulations(register: Callable[[Simulation], None], settings: StripeSettings) -> None:
    if talks_to_local_fake(settings):
        register(checkout_simulation(settings))


@hookimpl
def register_commands(cli: click.Group) -> None:
    @cli.group("billing")
    def billing() -> None:
        """Stripe billing: subscriptions of tenants."""

    @billing.command("sync")
    @click.argument("tenant_id")
    def sync(tenant_id: str) -> None:
        """Fetch TENANT_ID's subscription from Stripe and apply it (e.g. after missed webhooks)."""
        from lily_host import PermanentError, with_host

        async def work(host: Any) -> str | None:
            try:
                return await schedule_sync(host, tenant_id)
            except PermanentError as error:
                raise click.ClickException(error.reason) from error

        task_id = with_host(work)
        click.echo(f"scheduled {SYNC_TASK} for {tenant_id} (task {task_id}); a running `lily worker` applies it")
