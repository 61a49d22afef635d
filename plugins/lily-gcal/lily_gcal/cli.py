"""``lily gcal connect <tenant>``: a one-time link that connects the tenant's Google Calendar."""

from __future__ import annotations

import click

from lily_gcal.links import LINK_TTL_SECONDS, connect_link


@click.group(help="Google Calendar (lily-gcal).")
def gcal() -> None:
    """The lily-gcal commands."""


@gcal.command(help="Print a one-time link that connects TENANT's Google Calendar (valid 24 h).")
@click.argument("tenant")
def connect(tenant: str) -> None:
    from lily_host import LilyHost, with_host

    async def work(host: LilyHost) -> str:
        await host.tenants.require(tenant)
        if host.plugin_settings("gcal") is None:
            raise click.ClickException("lily-gcal is not configured: set GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET")
        return await connect_link(host, tenant)

    link = with_host(work)
    click.echo(f"Open this link to connect {tenant}'s Google Calendar (works once, for {LINK_TTL_SECONDS // 3600} h):")
    click.echo(link)
