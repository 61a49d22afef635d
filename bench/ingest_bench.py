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
import hashlib
import importlib.util
import os
import shutil
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


def signed_calls(count: int, prefix: str) -> list[tuple[str, bytes]]:
    """(signature, form body) of ``count`` distinct missed calls."""
    validator = RequestValidator(AUTH_TOKEN)
    calls = []
    for index in range(count):
        params = {
            "AccountSid": "ACbench0000000000000000000000000",
            "ApiVersion": "2010-04-01",
            "CallSid": "CA" + hashlib.md5(f"{prefix}-{index}".encode()).hexdigest(),
            "CallStatus": "no-answer",
            "Direction": "inbound",
            # Distinct, valid NANP numbers (555 numbers are fictional: a text-back skips them).
            "From": f"+1512{300 + index // 10000:03d}{index % 10000:04d}",
            "To": BUSINESS_NUMBER,
        }
        calls.append((validator.compute_signature(PUBLIC_URL + PATH, params), urlencode(params).encode()))
    return calls


def build_requests(calls: list[tuple[str, bytes]], port: int) -> list[bytes]:
    requests = []
    for signature, body in calls:
        head = (
            f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nX-Twilio-Signature: {signature}\r\n"
            "X-Forwarded-Proto: https\r\n\r\n"
        ).encode()
        requests.append(head + body)
    return requests


async def _connection(
    port: int,
    requests: list[bytes],
    cursor: list[int],
    deadline: float,
    latencies: list[float],
    statuses: dict[int, int],
) -> None:
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


def drive_with_wrk(port: int, calls: list[tuple[str, bytes]], seconds: float, connections: int) -> dict[str, float]:
    """The same load from wrk (C, one thread): the load generator then takes little CPU from the server."""
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False) as handle:
        for signature, body in calls:
            handle.write(f"{signature}\t{body.decode()}\n")
    env = {**os.environ, "REQUESTS_FILE": handle.name, "REQUEST_PATH": PATH}
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds:.0f}s",
        "--timeout",
        "5s",
        "-s",
        str(ROOT / "bench" / "wrk_requests.lua"),
        f"http://127.0.0.1:{port}",
    ]
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    os.unlink(handle.name)
    line = next(line for line in output.splitlines() if line.startswith("WRK_RESULT"))
    count, duration_us, p50, p99, _max, errors = (float(part) for part in line.split()[1:])
    return {
        "requests": count,
        "ok": count - errors,
        "errors": errors,
        "rps": count / (duration_us / 1e6),
        "p50_ms": p50,
        "p99_ms": p99,
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


def start_server(kind: str, port: int, env: dict[str, str], loop: str) -> subprocess.Popen[bytes]:
    if kind == "lily":
        command = [
            sys.executable,
            "-m",
            "lily_host.cli",
            "serve",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--loop",
            loop,
        ]
    else:
        command = [
            sys.executable,
            "-m",
            "hypercorn",
            "--workers",
            "1",
            "--bind",
            f"127.0.0.1:{port}",
            "--worker-class",
            loop,
            "bare_app:app",
        ]
    process = subprocess.Popen(
        command, env=env, cwd=ROOT / "bench", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
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
    subprocess.run([*lily, "tenants", "add", "bench", "--name", "Bench Wash"], env=env, check=True, capture_output=True)
    subprocess.run(
        [*lily, "tenants", "set", "bench", f'twilio.business_numbers=["{BUSINESS_NUMBER}"]'],
        env=env,
        check=True,
        capture_output=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="3 s per run")
    parser.add_argument("--profile", metavar="FILE", help="write py-spy samples of the lily server to FILE")
    parser.add_argument(
        "--client",
        choices=("auto", "wrk", "asyncio"),
        default="auto",
        help="load generator: wrk (Debian package) when installed, else a Python asyncio client",
    )
    parser.add_argument(
        "--loop",
        choices=("auto", "uvloop", "asyncio"),
        default="auto",
        help="event loop of both servers (the same for both): uvloop when installed",
    )
    args, _ = parser.parse_known_args()
    seconds = 3.0 if args.quick else args.seconds
    use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk") is not None)
    loop = args.loop
    if loop == "auto":
        loop = "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"

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
            calls = signed_calls(int(seconds * 4000) + 1000, prefix=kind)
            requests = build_requests(calls, port)
            process = start_server(kind, port, env, loop)
            try:
                asyncio.run(drive(port, requests[:500], 1.0, args.connections))  # warm-up
                profiler = None
                if args.profile and kind == "lily":
                    # py-spy (pip install py-spy) samples the server while it is under load.
                    profiler = subprocess.Popen(
                        [
                            "py-spy",
                            "record",
                            "--subprocesses",
                            "--format",
                            "raw",
                            "-o",
                            args.profile,
                            "--pid",
                            str(process.pid),
                            "--duration",
                            str(int(seconds)),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                if use_wrk:
                    results[kind] = drive_with_wrk(port, calls[500:], seconds, args.connections)
                else:
                    results[kind] = asyncio.run(drive(port, requests[500:], seconds, args.connections))
                if profiler is not None:
                    profiler.wait(timeout=60)
            finally:
                stop(process)
        client = sync_redis.Redis.from_url(server.url)
        scheduled = client.zcard("lily:{q:default}:due")
        client.close()

    print(
        f"\nIngest: signed Twilio voice webhooks, hypercorn 1 worker, {args.connections} connections, {seconds:.0f} s"
    )
    print(f"{'':<28}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for kind, label in (("bare", "bare Quart HMAC+ZADD"), ("lily", "lily serve (full pipeline)")):
        r = results[kind]
        print(f"{label:<28}{r['rps']:>10.0f}{r['p50_ms']:>10.1f}{r['p99_ms']:>10.1f}{r['errors']:>8.0f}")
    ratio = results["lily"]["rps"] / results["bare"]["rps"]
    print(
        f"ratio lily/bare: {ratio:.2f}x (target >= 0.70x); lily p99 {results['lily']['p99_ms']:.1f} ms (target < 50 ms)"
    )
    print(f"tasks scheduled by lily: {scheduled} (one per accepted webhook)")


if __name__ == "__main__":
    main()
