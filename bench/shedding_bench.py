"""Load shedding benchmark: signed deliveries per second while one source floods bad signatures.

`lily serve` (one hypercorn worker) gets signed Twilio voice webhooks from 127.0.0.1 at a steady
rate, and in the flood rounds, at the same time, forged ones (a wrong X-Twilio-Signature) from
127.0.0.2 at twice that rate. Figure: signed deliveries accepted per second, with the flood and
without it, for Lily as configured by default (a source's rejected requests are rate-limited:
``LILY_BAD_REQUEST_BURST``/``_RATE``) and for the same server with that limit off.

The signed rate is half of what the server accepts with no flood at all (measured first, closed
loop, in the same run): deliveries arrive at the rate their events happen, and a flood twice that
rate must not take the room they need. (At saturation every request, even one answered 429 at the
door, costs the server its HTTP parsing; the closed-loop figure is printed too, for the record.)

    python bench/shedding_bench.py [--seconds 5] [--rounds 2] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_bench import (
    BUSINESS_NUMBER,
    LOAD_CORE,
    build_requests,
    drive,
    lily_env,
    prepare_tenant,
    signed_calls,
    start_server,
    stop,
)

from lily_host.dev.embedded_redis import RedisServer, free_port

FLOOD_SOURCE = "127.0.0.2"
CONNECTIONS = 64


def forged_calls(count: int) -> list[tuple[str, bytes]]:
    """Bodies a provider could send, with a signature that is not the provider's."""
    calls = []
    for index in range(count):
        params = {
            "AccountSid": "ACbench0000000000000000000000000",
            "CallSid": "CA" + hashlib.md5(f"forged-{index}".encode()).hexdigest(),
            "CallStatus": "no-answer",
            "From": f"+1512{700 + index // 10000:03d}{index % 10000:04d}",
            "To": BUSINESS_NUMBER,
        }
        calls.append(("bm90IGEgc2lnbmF0dXJl", urlencode(params).encode()))
    return calls


async def _paced_connection(
    port: int,
    requests: list[bytes],
    cursor: list[int],
    start: float,
    interval: float,
    deadline: float,
    counts: dict[int, int],
    source: str | None,
) -> None:
    local = (source, 0) if source else None
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=local)
    try:
        while cursor[0] < len(requests):
            slot = cursor[0]
            cursor[0] += 1
            when = start + slot * interval
            if when > deadline or time.perf_counter() > deadline:
                return
            delay = when - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(requests[slot])
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            close = False
            for line in head.split(b"\r\n"):
                lowered = line.lower()
                if lowered.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
                elif lowered.startswith(b"connection:") and b"close" in lowered:
                    close = True
            if length:
                await reader.readexactly(length)
            counts[status] = counts.get(status, 0) + 1
            if close:
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=local)
    finally:
        writer.close()


async def paced(
    port: int, requests: list[bytes], rate: float, seconds: float, source: str | None = None
) -> dict[int, int]:
    """Open loop: request k is sent at start + k / rate (later if every connection is busy), until
    ``seconds`` have passed; then each connection waits for its last answer."""
    counts: dict[int, int] = {}
    cursor = [0]
    start = time.perf_counter() + 0.05
    deadline = start + seconds
    await asyncio.gather(
        *(
            _paced_connection(port, requests, cursor, start, 1.0 / rate, deadline, counts, source)
            for _ in range(CONNECTIONS)
        )
    )
    return counts


async def round_with(
    port: int, signed: list[bytes], forged: list[bytes] | None, rate: float, seconds: float
) -> tuple[float, dict[int, int], dict[int, int]]:
    """Signed deliveries accepted per second (and the status counts of both streams)."""
    started = time.perf_counter()
    finished = [0.0]

    async def signed_stream() -> dict[int, int]:
        counts = await paced(port, signed, rate, seconds)
        finished[0] = time.perf_counter()
        return counts

    jobs = [signed_stream()]
    if forged is not None:
        jobs.append(paced(port, forged, 2 * rate, seconds, FLOOD_SOURCE))
    results = await asyncio.gather(*jobs)
    elapsed = finished[0] - started
    signed_counts = results[0]
    flood_counts = results[1] if forged is not None else {}
    accepted = sum(count for status, count in signed_counts.items() if 200 <= status < 300)
    return accepted / elapsed, signed_counts, flood_counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="one round of 3 s")
    args, _ = parser.parse_known_args()
    seconds, rounds = (3.0, 1) if args.quick else (args.seconds, args.rounds)
    pin = len(os.sched_getaffinity(0)) >= 2
    loop = "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"
    if pin:
        os.sched_setaffinity(0, {int(LOAD_CORE)})

    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp)) as server:
        env = lily_env(server.url)
        prepare_tenant(env)
        servers = {"limited": {}, "unlimited": {"LILY_BAD_REQUEST_BURST": "0"}}
        ports = {kind: free_port() for kind in servers}
        processes = {
            kind: start_server("lily", ports[kind], {**env, **extra}, loop, pin) for kind, extra in servers.items()
        }
        try:
            calls = signed_calls(int(seconds * (2 * rounds + 3) * 6000) + 2000, prefix="shed")
            offset = 0

            def take(count: int, port: int) -> list[bytes]:
                nonlocal offset
                chosen = calls[offset : offset + count]
                offset += count
                return build_requests(chosen, port)

            forged = forged_calls(int(seconds * 2 * 8000) + 1000)
            asyncio.run(drive(ports["limited"], take(1000, ports["limited"]), 1.0, 16))  # warm-up
            asyncio.run(drive(ports["unlimited"], take(1000, ports["unlimited"]), 1.0, 16))
            capacity = asyncio.run(drive(ports["limited"], take(int(seconds * 6000), ports["limited"]), seconds, 64))
            rate = capacity["rps"] / 2
            figures: dict[str, dict[str, list[float]]] = {kind: {"alone": [], "flood": []} for kind in servers}
            last_flood: dict[str, dict[int, int]] = {}
            for _ in range(rounds):
                for kind in servers:
                    port = ports[kind]
                    alone, _, _ = asyncio.run(
                        round_with(port, take(int(rate * seconds) + 10, port), None, rate, seconds)
                    )
                    flood_requests = build_requests(forged, port)
                    with_flood, _, flood_counts = asyncio.run(
                        round_with(port, take(int(rate * seconds) + 10, port), flood_requests, rate, seconds)
                    )
                    figures[kind]["alone"].append(alone)
                    figures[kind]["flood"].append(with_flood)
                    last_flood[kind] = flood_counts
            # For the record: closed loop, the server saturated by signed deliveries, plus the flood.
            saturated_port = ports["limited"]
            saturated_alone = asyncio.run(
                drive(saturated_port, take(int(seconds * 6000), saturated_port), seconds, 64)
            )["rps"]

            async def saturated_with_flood() -> float:
                closed, _ = await asyncio.gather(
                    drive(saturated_port, take(int(seconds * 6000), saturated_port), seconds, 64),
                    paced(
                        saturated_port,
                        build_requests(forged, saturated_port),
                        2 * saturated_alone,
                        seconds,
                        FLOOD_SOURCE,
                    ),
                )
                return float(closed["rps"])

            saturated_flood = asyncio.run(saturated_with_flood())
        finally:
            for process in processes.values():
                stop(process)

    print(
        f"\nLoad shedding: signed Twilio webhooks at {rate:.0f}/s (half the {capacity['rps']:.0f}/s accepted "
        f"with no flood), forged ones from another address at {2 * rate:.0f}/s; hypercorn 1 worker ({loop}), "
        f"{rounds} x {seconds:.0f} s"
    )
    print(f"{'median of the rounds':<42}{'alone/s':>10}{'flood/s':>10}{'ratio':>8}   flood answered")
    for kind, label in (
        ("limited", "lily (bad-request limit, the default)"),
        ("unlimited", "lily, LILY_BAD_REQUEST_BURST=0"),
    ):
        alone = statistics.median(figures[kind]["alone"])
        flood = statistics.median(figures[kind]["flood"])
        answered = ", ".join(f"{status}: {count}" for status, count in sorted(last_flood[kind].items()))
        print(f"{label:<42}{alone:>10.0f}{flood:>10.0f}{flood / alone:>7.2f}x   {answered}")
    ratio = statistics.median(figures["limited"]["flood"]) / statistics.median(figures["limited"]["alone"])
    print(f"signed deliveries with the flood / without: {ratio:.2f}x (target >= 0.80x)")
    print(
        f"for the record, saturated (closed loop, 64 connections): {saturated_alone:.0f}/s alone, "
        f"{saturated_flood:.0f}/s with forged requests offered at {2 * saturated_alone:.0f}/s "
        f"({saturated_flood / saturated_alone:.2f}x)"
    )


if __name__ == "__main__":
    main()
