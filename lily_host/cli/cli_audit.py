"""Audit entries for ``lily`` commands that read or change tenant data.

``lily``'s top-level group is an :class:`AuditedGroup`: after a command ran (or failed) it appends
one entry to the audit log (:mod:`lily_host.operations.audit_log`) with the OS user and host as the actor, the
command and its arguments (secret-looking values redacted, phone numbers masked), the tenant the
command names, and the outcome. Commands that touch no tenant data (serve, worker, dev, keygen,
plugins, health, simulate, help, version) are not recorded. An audit entry that cannot be written
(Redis unreachable) never changes the command's own outcome; after a command that succeeded it is said on
stderr (a failed command's one line already says why Redis or the settings are unusable).
"""

from __future__ import annotations

import asyncio
from typing import Any

import click

from lily_host.cli.lazy_group import LazyGroup

#: Commands that read or change no tenant data.
NOT_AUDITED = frozenset(
    {"serve", "worker", "dev", "keygen", "plugins", "plugin", "docs", "health", "simulate", "workers"}
)
_SECRET_WORDS = ("token", "secret", "password", "key=", "api_key", "signature")


def _clean_args(args: list[str]) -> list[str]:
    cleaned: list[str] = []
    redact_next = False
    for arg in args:
        lowered = arg.lower()
        if redact_next:
            cleaned.append("[redacted]")
            redact_next = False
        elif any(word in lowered for word in _SECRET_WORDS) and "=" in arg:
            cleaned.append(arg.split("=", 1)[0] + "=[redacted]")
        elif arg.startswith("--") and any(word.rstrip("=") in lowered for word in _SECRET_WORDS):
            cleaned.append(arg)
            redact_next = True
        else:
            cleaned.append(arg)
    return cleaned


def _tenant(path: list[str], rest: list[str]) -> str | None:
    for index, arg in enumerate(rest):
        if arg == "--tenant" and index + 1 < len(rest):
            return rest[index + 1]
        if arg.startswith("--tenant="):
            return arg.split("=", 1)[1]
    if path and path[0] == "tenants" and len(path) > 1:
        positional = [arg for arg in rest if not arg.startswith("-")]
        return positional[0] if positional else None
    return None


class AuditedGroup(LazyGroup):
    """The lazy ``lily`` group that audits the commands it ran (cheap to import: click only)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["lily.argv"] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        outcome = "ok"
        try:
            return super().invoke(ctx)
        except click.exceptions.Exit as stop:
            outcome = "ok" if stop.exit_code == 0 else f"exit {stop.exit_code}"
            raise
        except SystemExit as stop:
            outcome = "ok" if stop.code in (0, None) else f"exit {stop.code}"
            raise
        except click.ClickException as error:
            outcome = f"error: {error.format_message()}"
            raise
        except BaseException:
            outcome = "error"
            raise
        finally:
            _record(self, ctx, outcome)


def _command_path(group: click.Group, ctx: click.Context, argv: list[str]) -> tuple[list[str], list[str]]:
    path: list[str] = []
    command: click.Command | None = group
    rest = list(argv)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.get_command(ctx, rest[0])
        if sub is None:
            break
        path.append(rest.pop(0))
        command = sub
    return path, rest


def _record(group: click.Group, ctx: click.Context, outcome: str) -> None:
    argv = ctx.meta.get("lily.argv") or []
    if not argv or any(arg in ("--help", "-h", "--version") for arg in argv):
        return
    path, rest = _command_path(group, ctx, argv)
    if not path or path[0] in NOT_AUDITED:
        return
    try:
        asyncio.run(_write(path, rest, outcome))
    except Exception as error:  # the command's own outcome stands
        # A command that failed has said why in one line, and the audit write failed for the same
        # reason (Redis unreachable, a bad setting): a second line would only repeat it.
        if outcome == "ok":
            click.echo(f"warning: audit entry not written: {type(error).__name__}: {error}", err=True)


async def _write(path: list[str], rest: list[str], outcome: str) -> None:
    import redis.asyncio as aioredis

    from lily_host.config.host_settings import HostSettings
    from lily_host.operations.audit_log import AuditLog, cli_actor

    settings = HostSettings()
    if not settings.redis_url:
        return
    client = aioredis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        await AuditLog(client, days=settings.audit_days).write(
            actor=cli_actor(),
            action="cli " + " ".join(path),
            outcome=outcome[:300],
            tenant=_tenant(path, rest),
            resource={"args": _clean_args(rest)},
        )
    finally:
        await client.aclose()
