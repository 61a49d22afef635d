"""Console benchmark: server time of every console page with 10,000 tenants and 100,000 logged webhooks.

Fills a fresh redis-server (tenants, deliveries written through the webhook log itself, dead
letters, an audit log), signs in, then requests each page repeatedly in-process through the ASGI
app (no network, so the figures are the server's time) and prints median and p95 per page.
The target is under 100 ms per page; nothing here asserts it.

    python bench/console_bench.py [--tenants 10000] [--webhooks 100000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lily_host.console.sessions import COOKIE, open_session
from lily_host.dev.embedded_redis import RedisServer
from lily_host.operations.webhook_log import Trail

INTEGRATIONS = ("twilio", "stripe", "calcom")
OUTCOMES = ("accepted",) * 90 + ("duplicate",) * 5 + ("error", "invalid", "bad_signature", "unknown_tenant", "error")


async def fill(host: Any, tenants: int, webhooks: int) -> dict[str, str]:
    started = time.perf_counter()
    ids = [f"tenant-{index:05d}" for index in range(tenants)]
    for chunk in range(0, tenants, 500):
        await asyncio.gather(*(host.tenants.create(t, f"Tenant {t[-5:]}") for t in ids[chunk : chunk + 500]))
    print(f"  {tenants} tenants in {time.perf_counter() - started:.1f} s", flush=True)
    started = time.perf_counter()
    rng = random.Random(7)
    sample: dict[str, str] = {}

    async def one(index: int) -> None:
        tenant = ids[index % tenants]
        outcome = rng.choice(OUTCOMES)
        trail = Trail(
            route="/webhooks/twilio/voice",
            tenant=tenant,
            verified=outcome in ("accepted", "duplicate", "error"),
            provider_id=f"CA{index:032x}",
            body=f"CallSid=CA{index:032x}&From=%2B15555550123&To=%2B15125550100&CallStatus=no-answer".encode(),
            content_type="application/x-www-form-urlencoded",
            tasks=[f"automations.missed_call:{index:024x}"] if outcome == "accepted" else [],
        )
        record_id = host.webhook_log.record(
            integration=rng.choice(INTEGRATIONS),
            method="POST",
            path="/webhooks/twilio/voice",
            headers=[("content-type", "application/x-www-form-urlencoded"), ("x-twilio-signature", "x")],
            remote_addr="127.0.0.1",
            trail=trail,
            outcome=outcome,
            status=200 if outcome in ("accepted", "duplicate") else 500,
            latency=0.002,
        )
        sample.setdefault("delivery", record_id)
        sample.setdefault("tenant", tenant)

    for chunk in range(0, webhooks, 1000):
        await asyncio.gather(*(one(index) for index in range(chunk, min(webhooks, chunk + 1000))))
        await host.webhook_log.drain()  # the appends ride the queue's group commit, unawaited
    print(f"  {webhooks} webhooks in {time.perf_counter() - started:.1f} s", flush=True)
    for index in range(2000):
        await host.queue.schedule("bench.work", {"n": index}, tenant=ids[index % tenants], delay=3600)
    pipe_writes = [
        host.audit.write(
            actor="admin:bench", action="GET /api/tenants/<tenant_id>", outcome="200", tenant=ids[i % tenants]
        )
        for i in range(5000)
    ]
    for chunk in range(0, len(pipe_writes), 500):
        await asyncio.gather(*pipe_writes[chunk : chunk + 500])
    return sample


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--webhooks", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=15)
    args, _others = parser.parse_known_args()  # `nox -s bench -- --quick` is meant for the other benches
    with tempfile.TemporaryDirectory() as folder:
        server = RedisServer(Path(folder) / "redis").start()
        try:
            os.environ.update(
                {
                    "REDIS_URL": server.url,
                    "LILY_ENV": "test",
                    "LILY_ADMIN_TOKEN": "bench-admin-token",
                    "LILY_SECRET_KEY": "dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktMDAwMDA=",
                    "LILY_LOG_LEVEL": "WARNING",
                    "LILY_DATA_DIR": folder,
                    "LILY_WEBHOOK_LOG_MAX_ENTRIES": "100000",
                }
            )
            from lily_host.config.host_settings import HostSettings
            from lily_host.web.app import create_app

            app = create_app(HostSettings())
            async with app.test_app() as test_app:
                host = app.extensions["lily"]
                print(f"Filling Redis ({args.tenants} tenants, {args.webhooks} webhooks)...", flush=True)
                sample = await fill(host, args.tenants, args.webhooks)
                sid, _session = await open_session(host.redis, "bench-admin-token")
                client = test_app.test_client()
                headers = {"Cookie": f"{COOKIE}={sid}"}
                dead = await host.queue.list_tasks("due", 1)
                pages = {
                    "overview": "/console/",
                    "webhooks": "/console/webhooks",
                    "webhooks ?outcome=error": "/console/webhooks?outcome=error",
                    "webhooks ?integration=stripe&since=1h": "/console/webhooks?integration=stripe&since=1h",
                    "webhooks ?tenant=": f"/console/webhooks?tenant={sample['tenant']}",
                    "webhooks, page 20": None,
                    "delivery": f"/console/webhooks/{sample['delivery']}",
                    "bulk replay count": "/console/webhooks/replay?outcome=error&since=1h",
                    "trace": f"/console/trace?id={sample['delivery']}",
                    "tasks (dead)": "/console/tasks",
                    "tasks (due)": "/console/tasks?state=due",
                    "task": f"/console/tasks/{dead[0].id}",
                    "tenants": "/console/tenants",
                    "tenants ?q=": "/console/tenants?q=0042",
                    "tenants, last page": "/console/tenants?page=200",
                    "tenant": f"/console/tenants/{sample['tenant']}",
                    "audit": "/console/audit",
                    "audit ?action=tenants": "/console/audit?action=tenants",
                    "outbox": "/console/outbox",
                }
                # "Older" 20 times from the newest: the cursor of page 20.
                path = "/console/webhooks"
                for _ in range(19):
                    text = await (await client.get(path, headers=headers)).get_data(as_text=True)
                    cursor = text.split("before=")[1].split('"')[0]
                    path = f"/console/webhooks?before={cursor}"
                pages["webhooks, page 20"] = path
                print(f"\nConsole pages, server time over {args.rounds} requests each (target < 100 ms):")
                print(f"  {'page':<38} {'median':>9} {'p95':>9}  status  rows")
                worst = 0.0
                for name, url in pages.items():
                    assert url is not None
                    times = []
                    status = 0
                    for _ in range(args.rounds):
                        started = time.perf_counter()
                        response = await client.get(url, headers=headers)
                        body = await response.get_data(as_text=True)
                        times.append((time.perf_counter() - started) * 1000)
                        status = response.status_code
                    times.sort()
                    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
                    worst = max(worst, p95)
                    print(
                        f"  {name:<38} {statistics.median(times):>7.1f}ms {p95:>7.1f}ms"
                        f"  {status:>6}  {body.count('<tr')}",
                        flush=True,
                    )
                print(f"\nSlowest page p95: {worst:.1f} ms ({'under' if worst < 100 else 'OVER'} the 100 ms target)")
        finally:
            server.stop()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
