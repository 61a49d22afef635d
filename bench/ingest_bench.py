"""Ingest benchmark: signed Twilio voice webhooks through `lily serve` vs a bare Quart+hypercorn endpoint.

Both run under hypercorn with one worker against the same redis-server, driven by the same
asyncio load generator on loopback (64 keep-alive connections, every request a distinct signed
missed call). Lily does the real pipeline: signature (Twilio's RequestValidator), tenant by `To`
number, idempotency, one task scheduled. The bare peer verifies an HMAC and does one ZADD.

    python bench/ingest_bench.py [--seconds 10] [--connections 64] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import redis as sync_redis
from twilio.request_validator import RequestValidator

from lily_host.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_URL = "https://lily.bench"
AUTH_TOKEN = "bench-auth-token-0123456789abcdef"
BUSINESS_NUMBER = "+15125550100"
PATH = "/webhooks/twilio/voice"


def build_requests(count: int, port: int, prefix: str) -> list[bytes]:
    validator = RequestValidator(AUTH_TOKEN)
    requests = []
    for index in range(count):
        params = {
            "AccountSid": "ACbench0000000000000000000000000",
            "ApiVersion": "2010-04-01",
            "CallSid": f"CA{prefix}{index:030d}"[:34],
            "CallStatus": "no-answer",
            "Direction": "inbound",
            "From": f"+1512555{index % 10000:04d}",
            "To": BUSINESS_NUMBER,
        }
        body = urlencode(params).encode()
        signature = validator.compute_signature(PUBLIC_URL + PATH, params)
        head = (
            f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nX-Twilio-Signature: {signature}\r\n"
            "X-Forwarded-Proto: https\r\n\r\n"
        ).encode()
        requests.append(head + body)
    return requests


async def _connection(port: int, requests: list[bytes], cursor: list[int], deadline: float, latencies: list[float],
                      statuses: dict[int, int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline and cursor[0] < len(requests):
            request = requests[cursor[0]]
            cursor[0] += 1
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def drive(port: int, requests: list[bytes], seconds: float, connections: int) -> dict[str, float]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    cursor = [0]
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(_connection(port, requests, cursor, deadline, latencies, statuses) for _ in range(connections))
    )
    elapsed = time.perf_counter() - started
    latencies.sort()
    ok = sum(count for status, count in statuses.items() if 200 <= status < 300)
    return {
        "requests": len(latencies),
        "ok": ok,
        "errors": len(latencies) - ok,
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else 0.0,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else 0.0,
    }


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server did not listen on {port}")


def start_server(kind: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    if kind == "lily":
        command = [sys.executable, "-m", "lily_host.cli", "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"]
    else:
        command = [sys.executable, "-m", "hypercorn", "--workers", "1", "--bind", f"127.0.0.1:{port}", "bare_app:app"]
    process = subprocess.Popen(command, env=env, cwd=ROOT / "bench", stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    wait_for_port(port, process)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def prepare_tenant(env: dict[str, str]) -> None:
    lily = [sys.executable, "-m", "lily_host.cli"]
    subprocess.run([*lily, "tenants", "add", "bench", "--name", "Bench Wash"], env=env, check=True,
                   capture_output=True)
    subprocess.run([*lily, "tenants", "set", "bench", f'twilio.business_numbers=["{BUSINESS_NUMBER}"]'], env=env,
                   check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="3 s per run")
    args, _ = parser.parse_known_args()
    seconds = 3.0 if args.quick else args.seconds

    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp)) as server:
        from lily_host.crypto import SecretBox

        env = {
            **os.environ,
            "REDIS_URL": server.url,
            "LILY_ENV": "production",
            "LILY_PUBLIC_URL": PUBLIC_URL,
            "LILY_ADMIN_TOKEN": "bench-admin",
            "LILY_SECRET_KEY": SecretBox.generate_key(),
            "LILY_LOG_LEVEL": "WARNING",
            "LILY_PLUGINS": "twilio",
            "TWILIO_ACCOUNT_SID": "ACbench0000000000000000000000000",
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_FROM_NUMBER": BUSINESS_NUMBER,
            "PYTHONPATH": str(ROOT / "bench"),
        }
        prepare_tenant(env)
        results: dict[str, dict[str, float]] = {}
        for kind in ("bare", "lily"):
            port = free_port()
            requests = build_requests(int(seconds * 6000) + 2000, port, prefix=kind)
            process = start_server(kind, port, env)
            try:
                asyncio.run(drive(port, requests[:500], 1.0, args.connections))  # warm-up
                results[kind] = asyncio.run(drive(port, requests[500:], seconds, args.connections))
            finally:
                stop(process)
        client = sync_redis.Redis.from_url(server.url)
        scheduled = client.zcard("lily:{q:default}:due")
        client.close()

    print(f"\nIngest: signed Twilio voice webhooks, hypercorn 1 worker, {args.connections} connections, {seconds:.0f} s")
    print(f"{'':<28}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for kind, label in (("bare", "bare Quart HMAC+ZADD"), ("lily", "lily serve (full pipeline)")):
        r = results[kind]
        print(f"{label:<28}{r['rps']:>10.0f}{r['p50_ms']:>10.1f}{r['p99_ms']:>10.1f}{r['errors']:>8.0f}")
    ratio = results["lily"]["rps"] / results["bare"]["rps"]
    print(f"ratio lily/bare: {ratio:.2f}x (target >= 0.70x); lily p99 {results['lily']['p99_ms']:.1f} ms (target < 50 ms)")
    print(f"tasks scheduled by lily: {scheduled} (one per accepted webhook)")


if __name__ == "__main__":
    main()
