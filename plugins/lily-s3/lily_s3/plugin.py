"""lily-s3's hook implementations."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import click
from pydantic import BaseModel
from pydantic_settings import BaseSettings

from lily_host import (
    TENANT_DELETED,
    Capability,
    EventSubscription,
    HealthCheck,
    HealthResult,
    LilyHost,
    Routes,
    TaskHandler,
    hookimpl,
)
from lily_s3.health import check_bucket
from lily_s3.routes import make_blueprint
from lily_s3.settings import PLUGIN_NAME, S3Settings, S3TenantSettings
from lily_s3.storage import S3Bucket, S3StorageProvider
from lily_s3.tasks import ERASE_TENANT, STORE_INBOUND_MEDIA, S3Tasks, schedule_retention

#: The plugin API version this plugin is written for (docs/api.md, "Versions").
LILY_PLUGIN_API = 2

#: The event lily-twilio (or any SMS plugin) emits for an inbound SMS/MMS.
MESSAGE_RECEIVED = "message.received"


@hookimpl
def register_settings(register: Callable[[type[BaseSettings]], None]) -> None:
    register(S3Settings)


@hookimpl
def register_tenant_settings(register: Callable[[type[BaseModel]], None]) -> None:
    register(S3TenantSettings)


@hookimpl
def register_routes(register: Callable[[Routes], None], settings: S3Settings | None) -> None:
    register(Routes(make_blueprint(settings), url_prefix="/api"))


@hookimpl
def register_tasks(register: Callable[[TaskHandler], None], settings: S3Settings | None) -> None:
    for handler in S3Tasks(settings).handlers():
        register(handler)


@hookimpl
def register_event_subscriptions(register: Callable[[EventSubscription], None], settings: S3Settings | None) -> None:
    # Unconfigured, every inbound text would become a task that can only fail.
    if settings is not None:
        register(EventSubscription(MESSAGE_RECEIVED, STORE_INBOUND_MEDIA))
    # Always: a deleted tenant's photo records go even while S3 is unconfigured (and say so if
    # objects may remain).
    register(EventSubscription(TENANT_DELETED, ERASE_TENANT))


@hookimpl
def register_health_checks(register: Callable[[HealthCheck], None], settings: S3Settings) -> None:
    bucket = S3Bucket(settings)

    async def bucket_health(host: LilyHost) -> HealthResult:
        return await check_bucket(bucket)

    register(HealthCheck("s3.bucket", bucket_health, timeout=10.0))


@hookimpl
def register_capabilities(register: Callable[[Capability], None], settings: S3Settings) -> None:
    register(Capability("storage", S3StorageProvider(S3Bucket(settings))))


@hookimpl
def startup(host: LilyHost) -> Any:
    settings: S3Settings | None = host.plugin_settings(PLUGIN_NAME)
    if settings is None:
        return None
    # The sweep reschedules itself; this only (re)starts the chain, deduplicated per interval.
    return schedule_retention(host, run_at=host.clock.now(), interval=settings.s3_retention_interval_seconds)


@hookimpl
def register_commands(cli: click.Group) -> None:
    @cli.group("s3")
    def s3_group() -> None:
        """lily-s3: photo storage."""

    @s3_group.command("sandbox")
    @click.option("--port", default=9000, show_default=True, help="Port of the local S3 (moto) server.")
    @click.option("--bucket", default="lily-photos", show_default=True, help="Bucket to create.")
    def sandbox(port: int, bucket: str) -> None:
        """Run a local S3 (moto) with a bucket, for `lily dev`. Needs `pip install 'lily-s3[sandbox]'`."""
        try:
            from lily_s3.fake import serve_sandbox

            moto = serve_sandbox(port, [bucket])
        except ImportError as error:
            raise click.ClickException("the sandbox needs moto: pip install 'lily-s3[sandbox]'") from error
        click.echo("Local S3 running. In the shell that runs lily:")
        for name, value in moto.env(bucket).items():
            click.echo(f"  export {name}={value}")
        click.echo("Ctrl-C stops it (everything stored is lost).")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            moto.stop()
