"""The audit log: who read or changed what, when, from where, and how it went.

Every call of the admin API and the tenant API and every ``lily`` command that reads or changes
tenant data appends one entry to the Redis stream ``lily:audit``: the actor (``admin`` with a
fingerprint of the token, ``key:<id>`` with the key's label and tenant, or ``cli:<user>@<host>``),
the action (``GET /api/tenants/<tenant_id>``, ``cli tenants show``), the resource ids, the tenant,
the client address as the trusted-proxy rules see it, and the outcome (HTTP status, or ``ok`` /
``error`` for a command).

Append-only and retained for ``LILY_AUDIT_DAYS`` (365 by default; each append trims older entries).
It is not erased with a tenant's data: erasing is itself an audited action. It never holds a
secret (values under secret-looking names are dropped, tokens appear only as fingerprints) or a
full phone number (numbers are masked).
"""

from __future__ import annotations

import getpass
import json
import socket
import time
from collections.abc import Mapping
from typing import Any

from lily_host.observability.log import _PHONE, mask_phone
from lily_host.plugin_api.masking import fingerprint

__all__ = ["fingerprint"]

STREAM = "lily:audit"
_SECRET_WORDS = ("token", "secret", "password", "authorization", "api_key", "apikey", "signature", "key_value")


def cli_actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"


def clean(value: Any) -> Any:
    """``value`` with secret-looking fields dropped and phone numbers masked, at any depth."""
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items() if not any(word in str(k).lower() for word in _SECRET_WORDS)}
    if isinstance(value, list | tuple):
        return [clean(item) for item in value]
    if isinstance(value, str):
        if value.startswith("lily_") and value.count("_") >= 3:  # a tenant API key
            return "[redacted]"
        return _PHONE.sub(lambda match: mask_phone(match.group(0)), value)
    return value


class AuditLog:
    def __init__(self, redis: Any, *, days: float) -> None:
        self.redis = redis
        self.days = days

    async def write(
        self,
        *,
        actor: str,
        action: str,
        outcome: str,
        tenant: str | None = None,
        resource: Mapping[str, Any] | None = None,
        remote_addr: str | None = None,
        detail: Mapping[str, Any] | None = None,
        now: float | None = None,
    ) -> None:
        now = time.time() if now is None else now
        fields = {
            "at": repr(now),
            "actor": clean(actor),
            "action": clean(action),
            "outcome": str(outcome),
            "tenant": tenant or "",
            "resource": json.dumps(clean(dict(resource or {})), default=str),
            "remote_addr": remote_addr or "",
            "detail": json.dumps(clean(dict(detail or {})), default=str),
        }
        pipe = self.redis.pipeline(transaction=False)
        pipe.xadd(STREAM, fields)
        pipe.xtrim(STREAM, minid=int((now - self.days * 86400) * 1000), approximate=True)
        await pipe.execute()

    async def list(
        self,
        *,
        tenant: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        since: float | None = None,
        before: str | None = None,
        limit: int = 100,
        scan_limit: int = 50000,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Entries newest first; ``actor`` and ``action`` match as substrings. Returns (page, next cursor)."""
        end = "(" + before if before else "+"
        start = f"{int(since * 1000)}-0" if since else "-"
        out: list[dict[str, Any]] = []
        scanned = 0
        cursor = end
        while scanned < scan_limit and len(out) <= limit:
            batch = await self.redis.xrevrange(STREAM, cursor, start, count=500)
            if not batch:
                break
            scanned += len(batch)
            for entry_id, fields in batch:
                entry = _decode(entry_id, fields)
                if tenant and entry["tenant"] != tenant:
                    continue
                if actor and actor not in entry["actor"]:
                    continue
                if action and action not in entry["action"]:
                    continue
                out.append(entry)
            cursor = "(" + batch[-1][0].decode()
            if len(batch) < 500:
                break
        page = out[:limit]
        return page, (page[-1]["id"] if len(out) > limit else None)


def _decode(entry_id: bytes, fields: Mapping[bytes, bytes]) -> dict[str, Any]:
    data = {k.decode(): v.decode() for k, v in fields.items()}
    return {
        "id": entry_id.decode(),
        "at": float(data.get("at", "0")),
        "actor": data.get("actor", ""),
        "action": data.get("action", ""),
        "outcome": data.get("outcome", ""),
        "tenant": data.get("tenant") or None,
        "resource": json.loads(data.get("resource") or "{}"),
        "remote_addr": data.get("remote_addr") or None,
        "detail": json.loads(data.get("detail") or "{}"),
    }
