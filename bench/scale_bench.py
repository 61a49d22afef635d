"""Scale: Lily's costs with 100,000 tenants and 1,000,000 pending tasks, beside an empty Redis.

    nox -s bench -- scale          (or: python bench/scale_bench.py [--quick] [--erasure-only])

Two redis-servers side by side: "empty" (the one bench tenant) and "loaded" (the bench tenant plus
100,000 tenants, each with a phone number in the index, a message record and a job, and 1,000,000
review requests due over the next day). Printed, each beside its empty figure from the same run:

* ingest: signed Twilio missed-call webhooks per second through `lily serve` (one hypercorn
  worker per Redis, 64 connections, rounds alternating between the two);
* queue: tasks per second scheduled (schedule_many) and run (claim + ack) in one process, in
  short rounds alternating between the two Redis (empty, loaded, loaded, empty, ...) after a
  warm-up round on each; printed: the median of each, and the median of the rounds' paired ratios
  (each loaded round against the empty round beside it), which is what to read on a noisy machine;
* memory: Redis bytes per pending task, beside arq's bytes per deferred job in a third Redis;
* erasure: the time to erase one tenant's keys among 100,000 tenants and among 1,000, through the
  tenant's key registry (as ``lily.erase_tenant`` does) and by a walk of the keyspace (as before the
  registry, and for tenants from before it); ``--erasure-only`` measures just these;
* cluster: queue tasks/s on a three-primary Redis Cluster, with one queue and with the load
  spread over three queues (one per primary), when a cluster can be started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_bench import (
    LOAD_CORE,
    build_requests,
    drive,
    lily_env,
    prepare_tenant,
    signed_calls,
    start_server,
    stop,
)

from lily_host.builtins.review_requests import JobStore
from lily_host.dev.embedded_redis import RedisServer, free_port
from lily_host.plugin_api.key_registry import open_registry, track_keys
from lily_host.plugin_api.key_slots import tenant_key
from lily_host.sms.outbound import message_key
from lily_host.tenants.store import Tenant, record_key

REVIEW_TASK = "reviews.send_request"
#: Tenants erased per figure (the median is printed).
ERASE_SAMPLES = 7


def populate_tenants(client: redis.Redis, count: int, prefix: str = "t") -> None:
    """``count`` tenants as TenantStore writes them, each with an index entry, a message and a job,
    recorded in the tenant's key registry as the host's writers record them."""
    template = Tenant(id="x", name="Scale Wash", plugins={"twilio": {"business_numbers": ["+15125550000"]}})
    record = json.loads(template.model_dump_json())
    pipe = client.pipeline(transaction=False)
    for index in range(count):
        tenant_id = f"{prefix}{index:06d}"
        number = f"+1{200 + index // 10_000_000 % 800:03d}{index % 10_000_000:07d}"
        record["id"] = tenant_id
        record["plugins"]["twilio"]["business_numbers"] = [number]
        pipe.set(record_key(tenant_id), json.dumps(record))
        pipe.sadd("lily:tenants", tenant_id)
        pipe.hset("lily:index:phone", number, tenant_id)
        pipe.sadd(tenant_key(tenant_id, "tenant_index"), f"phone\x00{number}")
        open_registry(pipe, tenant_id)
        track_keys(pipe, tenant_id, message_key(tenant_id, "m1"), JobStore.key(tenant_id, "j1"), ttl=90 * 86400)
        pipe.hset(message_key(tenant_id, "m1"), mapping={"to": "+15125551234", "status": "sent", "body": "Thanks!"})
        pipe.set(JobStore.key(tenant_id, "j1"), json.dumps({"id": "j1", "customer": "Pat", "phone": "+15125551234"}))
        if index % 1000 == 999:
            pipe.execute()
    pipe.execute()


async def schedule_pending(url: str, count: int, tenants: int) -> float:
    """``count`` review requests due over the next day, spread over the tenants; returns seconds."""
    import redis.asyncio as aioredis

    from lily_host.queue import TaskQueue

    client = aioredis.Redis.from_url(url)
    queue = TaskQueue(client)
    started = time.perf_counter()
    batch = 5000
    for start in range(0, count, batch):
        specs = [
            {
                "type": REVIEW_TASK,
                "payload": {"job": f"j{i}"},
                "tenant": f"t{i % tenants:06d}",
                "delay": 60 + random.uniform(0, 86_400),
                "dedupe_key": f"review:t{i % tenants:06d}:j{i}",
            }
            for i in range(start, min(start + batch, count))
        ]
        await queue.schedule_many(specs)
    elapsed = time.perf_counter() - started
    await client.aclose()
    return elapsed


async def queue_round(url: str, tasks: int, queue_name: str = "bench", cluster: bool = False) -> tuple[float, float]:
    """Tasks/s scheduled (due now) and then run (claim + ack) by one process, on one queue."""
    from lily_host.queue import TaskQueue

    client: Any
    if cluster:
        from redis.asyncio.cluster import RedisCluster

        client = RedisCluster.from_url(url)
    else:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(url)
    try:
        return await queue_pass(TaskQueue(client, name=queue_name), tasks)
    finally:
        await client.aclose()


async def queue_pass(queue: Any, tasks: int) -> tuple[float, float]:
    """Schedule ``tasks`` no-op tasks due now on ``queue``, then claim and ack them all: tasks/s of each."""
    specs = [{"type": "bench.noop", "payload": {"i": i}, "tenant": f"t{i % 1000:06d}"} for i in range(tasks)]
    started = time.perf_counter()
    await asyncio.gather(*(queue.schedule_many(specs[i : i + 100]) for i in range(0, tasks, 100)))
    scheduled = time.perf_counter() - started
    started = time.perf_counter()
    done = 0
    while done < tasks:
        result = await queue.claim_batch("bench", limit=200, lease=60)
        if not result.tasks:
            break
        await queue.ack(result.tasks)
        done += len(result.tasks)
    ran = time.perf_counter() - started
    return tasks / scheduled, done / ran


async def queue_compare(urls: dict[str, str], rounds: int, tasks: int) -> dict[str, list[tuple[float, float]]]:
    """``rounds`` queue passes on each Redis, alternating (empty, loaded, loaded, empty, ...) so that
    a slow spell of the shared machine falls on both alike; one client and queue per Redis for the
    whole run, and a warm-up pass on each (not counted) so that neither pays for first use."""
    import redis.asyncio as aioredis

    from lily_host.queue import TaskQueue

    clients = {kind: aioredis.Redis.from_url(url) for kind, url in urls.items()}
    try:
        queues = {kind: TaskQueue(client, name="bench") for kind, client in clients.items()}
        for queue in queues.values():
            await queue_pass(queue, tasks // 4)
        results: dict[str, list[tuple[float, float]]] = {kind: [] for kind in urls}
        kinds = list(urls)
        for round_index in range(rounds):
            for kind in kinds if round_index % 2 == 0 else kinds[::-1]:
                results[kind].append(await queue_pass(queues[kind], tasks))
        return results
    finally:
        for client in clients.values():
            await client.aclose()


async def arq_memory(url: str, jobs: int) -> float:
    """arq's Redis bytes per deferred job: ``jobs`` jobs deferred up to a day."""
    from arq import create_pool
    from arq.connections import RedisSettings

    pool = await create_pool(RedisSettings.from_dsn(url))
    before = int((await pool.info("memory"))["used_memory"])
    for start in range(0, jobs, 500):
        await asyncio.gather(
            *(
                pool.enqueue_job("send_review_request", {"job": f"j{i}"}, _defer_by=60 + random.uniform(0, 86_400))
                for i in range(start, min(start + 500, jobs))
            )
        )
    after = int((await pool.info("memory"))["used_memory"])
    await pool.aclose()
    return (after - before) / jobs


async def erase_one(url: str, tenant_id: str, *, walk: bool = False) -> tuple[float, int]:
    """Seconds and keys to erase what the host keeps for one tenant: as ``lily.erase_tenant`` does
    (its key registry), or with ``walk`` by one walk of the keyspace (``erase_keys``: how every
    erasure went before the registry, and how a tenant from before it still goes)."""
    import redis.asyncio as aioredis

    from lily_host.builtins.tenant_erasure import erase_host_data, host_key_patterns
    from lily_host.plugin_api.erasure import erase_keys

    client = aioredis.Redis.from_url(url)
    await client.ping()  # the connection is made before the clock starts
    started = time.perf_counter()
    if walk:
        removed = await erase_keys(client, host_key_patterns, tenant_id)
    else:
        removed = await erase_host_data(client, tenant_id)
    elapsed = time.perf_counter() - started
    await client.aclose()
    return elapsed, removed


def erasure_figures(loaded_url: str, small_url: str, tenants: int) -> str:
    """One tenant erased among ``tenants`` and among 1,000 (already in ``small_url``), by the
    registry and by a walk, each a tenant of its own; the median of ``ERASE_SAMPLES`` tenants each."""
    loaded, small = redis.Redis.from_url(loaded_url), redis.Redis.from_url(small_url)
    keys_loaded, keys_small = loaded.dbsize(), small.dbsize()
    times: dict[tuple[str, bool], list[float]] = {}
    removed = 0
    # Interleaved (loaded, small, loaded, ...) so a change in the machine's speed touches both alike.
    for offset in range(ERASE_SAMPLES):
        for walk in (False, True):
            for label, url, count in (("loaded", loaded_url, tenants), ("small", small_url, 1000)):
                tenant_id = f"t{count // 2 + offset + (ERASE_SAMPLES if walk else 0):06d}"
                elapsed, removed = asyncio.run(erase_one(url, tenant_id, walk=walk))
                times.setdefault((label, walk), []).append(elapsed)
    figures = {kind: statistics.median(values) * 1000 for kind, values in times.items()}
    return (
        f"erase one tenant ({removed} keys), its key registry: {figures[('loaded', False)]:.1f} ms among "
        f"{tenants:,} tenants ({keys_loaded:,} keys), {figures[('small', False)]:.1f} ms among 1,000 "
        f"({keys_small:,} keys) (goal: independent of tenants)\n"
        f"erase one tenant by a walk of the keyspace (erase_keys; before the registry): "
        f"{figures[('loaded', True)]:.0f} ms among {tenants:,}, {figures[('small', True)]:.1f} ms among 1,000"
    )


def erasure_only(tenants: int) -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        RedisServer(Path(tmp) / "loaded") as loaded,
        RedisServer(Path(tmp) / "small") as small,
    ):
        started = time.perf_counter()
        populate_tenants(redis.Redis.from_url(loaded.url), tenants)
        populate_tenants(redis.Redis.from_url(small.url), 1000)
        print(f"\nScale, erasure only: {tenants:,} tenants written in {time.perf_counter() - started:.1f} s")
        print(erasure_figures(loaded.url, small.url, tenants))


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def cluster_figures(tmp: str, tasks: int) -> str:
    try:
        from lily_host.dev.embedded_cluster import RedisClusterGroup
    except ImportError:
        return "cluster: not measured (no cluster helper in this tree)"
    group = RedisClusterGroup(Path(tmp) / "cluster").start()
    try:
        url = group.url
        one = asyncio.run(queue_round(url, tasks, "one", cluster=True))

        async def spread() -> tuple[float, float]:
            names = group.queue_names_one_per_primary("spread")
            results = await asyncio.gather(*(queue_round(url, tasks // 3, name, cluster=True) for name in names))
            return sum(r[0] for r in results), sum(r[1] for r in results)

        three = asyncio.run(spread())
    finally:
        group.stop()
    return (
        f"cluster (3 primaries), one process: one queue {one[0]:.0f} scheduled/s, {one[1]:.0f} run/s; "
        f"three queues (one per primary) {three[0]:.0f} scheduled/s, {three[1]:.0f} run/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tenants", type=int, default=100_000)
    parser.add_argument("--pending", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=4, help="ingest rounds per Redis (alternating)")
    parser.add_argument("--queue-rounds", type=int, default=12, help="queue passes per Redis (alternating)")
    parser.add_argument("--queue-tasks", type=int, default=20_000, help="tasks per queue pass")
    parser.add_argument(
        "--parts", default="ingest,queue,erasure,cluster", help="comma-separated subset (memory is always measured)"
    )
    parser.add_argument("--quick", action="store_true", help="10,000 tenants, 100,000 tasks, one 3 s round")
    parser.add_argument("--erasure-only", action="store_true", help="only the erasure figures (no tasks, no servers)")
    args, _ = parser.parse_known_args()
    if args.erasure_only:
        erasure_only(10_000 if args.quick else args.tenants)
        return
    tenants, pending, seconds, rounds = args.tenants, args.pending, args.seconds, args.rounds
    queue_rounds, queue_tasks = args.queue_rounds, args.queue_tasks
    parts = set(args.parts.split(","))
    if args.quick:
        tenants, pending, seconds, rounds, queue_rounds = 10_000, 100_000, 3.0, 1, 4
    pin = len(os.sched_getaffinity(0)) >= 2
    if pin:
        os.sched_setaffinity(0, {int(LOAD_CORE)})
    loop = "uvloop"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        loop = "asyncio"

    with (
        tempfile.TemporaryDirectory() as tmp,
        RedisServer(Path(tmp) / "empty") as empty,
        RedisServer(Path(tmp) / "loaded") as loaded,
        RedisServer(Path(tmp) / "arq") as arq_server,
    ):
        base_env = lily_env("")
        envs = {"empty": {**base_env, "REDIS_URL": empty.url}, "loaded": {**base_env, "REDIS_URL": loaded.url}}
        for env in envs.values():
            prepare_tenant(env)
        sync_loaded = redis.Redis.from_url(loaded.url)
        started = time.perf_counter()
        populate_tenants(sync_loaded, tenants)
        tenants_seconds = time.perf_counter() - started
        before = used_memory(sync_loaded)
        pending_seconds = asyncio.run(schedule_pending(loaded.url, pending, tenants))
        per_task = (used_memory(sync_loaded) - before) / pending
        per_arq_job = asyncio.run(arq_memory(arq_server.url, min(pending, 200_000)))

        urls = {"empty": empty.url, "loaded": loaded.url}
        ingest: dict[str, list[float]] = {kind: [] for kind in envs}
        if "ingest" in parts:
            ports = {kind: free_port() for kind in envs}
            processes = {kind: start_server("lily", ports[kind], envs[kind], loop, pin) for kind in envs}
            try:
                calls = signed_calls(int(seconds * rounds * 2 * 5000) + 2000, prefix="scale")
                cursor = 0
                for kind in envs:  # warm-up
                    warm = build_requests(calls[cursor : cursor + 500], ports[kind])
                    cursor += 500
                    asyncio.run(drive(ports[kind], warm, 1.0, 16))
                for round_index in range(rounds):
                    for kind in envs if round_index % 2 == 0 else list(envs)[::-1]:
                        requests = build_requests(calls[cursor : cursor + int(seconds * 5000)], ports[kind])
                        result = asyncio.run(drive(ports[kind], requests, seconds, 64))
                        cursor += int(result["requests"]) + 64
                        ingest[kind].append(result["rps"])
            finally:
                for process in processes.values():
                    stop(process)
        # The queue passes run with no lily serve process alive, in one process and event loop.
        queue = asyncio.run(queue_compare(urls, queue_rounds, queue_tasks)) if "queue" in parts else {}

        erasure_lines = ""
        if "erasure" in parts:
            populate_tenants(redis.Redis.from_url(empty.url), 1000)
            erasure_lines = erasure_figures(loaded.url, empty.url, tenants)
        cluster_line = cluster_figures(tmp, 30_000) if "cluster" in parts else ""

    def median(values: list[float]) -> float:
        return statistics.median(values)

    def ratio(kind_values: dict[str, list[float]]) -> str:
        return f"{median(kind_values['loaded']) / median(kind_values['empty']):.2f}x"

    print(
        f"\nScale: {tenants:,} tenants (written in {tenants_seconds:.1f} s) and {pending:,} review requests due "
        f"over the next day (scheduled in {pending_seconds:.1f} s, {pending / pending_seconds:,.0f}/s)"
    )
    if ingest["empty"]:
        print(f"ingest: {rounds} x {seconds:.0f} s rounds per Redis, alternating (goal: within 10 %)")
        print(f"{'median of the rounds':<40}{'empty':>12}{'loaded':>12}{'ratio':>8}{'paired':>8}")
        pairs = sorted(load / base for load, base in zip(ingest["loaded"], ingest["empty"], strict=True))
        print(
            f"{'ingest, webhooks/s (lily serve)':<40}{median(ingest['empty']):>12.0f}"
            f"{median(ingest['loaded']):>12.0f}{ratio(ingest):>8}"
            f"{median(pairs):>7.2f}x [{pairs[0]:.2f} - {pairs[-1]:.2f}]"
        )
    if queue:
        print(
            f"queue: {queue_rounds} passes of {queue_tasks:,} tasks per Redis, alternating (goal: within 10 %); "
            f"paired = median of each loaded pass over the empty pass beside it, [lowest - highest]"
        )
        print(f"{'median of the passes':<40}{'empty':>12}{'loaded':>12}{'ratio':>8}{'paired':>8}")
        for label, index in (("queue, tasks scheduled/s", 0), ("queue, tasks run/s (claim + ack)", 1)):
            values = {kind: [q[index] for q in queue[kind]] for kind in queue}
            pairs = sorted(load / base for load, base in zip(values["loaded"], values["empty"], strict=True))
            print(
                f"{label:<40}{median(values['empty']):>12.0f}{median(values['loaded']):>12.0f}{ratio(values):>8}"
                f"{median(pairs):>7.2f}x [{pairs[0]:.2f} - {pairs[-1]:.2f}]"
            )
    print(
        f"memory per pending task: lily {per_task:.0f} bytes, arq {per_arq_job:.0f} bytes per deferred job "
        f"({per_task / per_arq_job:.2f}x; goal: no more than arq)"
    )
    for line in (erasure_lines, cluster_line):
        if line:
            print(line)


if __name__ == "__main__":
    main()
