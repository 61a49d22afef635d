"""Ingest benchmark: signed Twilio voice webhooks through `lily serve` vs a bare Quart+hypercorn endpoint.

Both run under hypercorn with one worker against the same redis-server, driven by the same
asyncio load generator on loopback (64 keep-alive connections, every request a distinct signed
missed call). Lily does the real pipeline: signature (Twilio's RequestValidator), tenant by `To`
number, idempotency, one task scheduled. The bare peer verifies an HMAC and does one ZADD.

Lily runs twice, with its webhook log on (the default) and off (``LILY_WEBHOOK_LOG=false``), so
every run prints what the log costs (target: at most 10 % of Lily's requests/s). Two floors run
beside them: a no-op raw ASGI app (what hypercorn costs by itself) and the same
plus one ZADD (the least an app that commits to Redis before answering costs), so every run shows
what this machine allows at all. All four run side by side, idle but for the one under load, and
the load alternates between them in rounds (floor ... lily, then lily ... floor): on a shared
machine whose speed drifts by the minute, a ratio of figures taken minutes apart measures the
drift, not the servers. With two or more cores the servers are pinned to core 0 and the load
generator and redis-server to core 1, so neither steals the server's core mid-run (the tail
figures are about the server, not about the scheduler's mood).

    python bench/ingest_bench.py [--seconds 5] [--rounds 3] [--connections 64] [--quick] [--no-pin]
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
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

import redis as sync_redis
from twilio.request_validator import RequestValidator

from lily_host.dev.embedded_redis import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_URL = "https://lily.bench"
AUTH_TOKEN = "bench-auth-token-0123456789abcdef"
BUSINESS_NUMBER = "+15125550100"
PATH = "/webhooks/twilio/voice"
#: The ASGI app hypercorn serves for each peer (lily is `lily serve`).
APPS = {"floor": "floor_app:app", "zadd": "floor_app:zadd_app", "bare": "bare_app:app"}
#: With --pin (the default on two cores or more): the server's core, and the one wrk and Redis share.
SERVER_CORE, LOAD_CORE = "0", "1"


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


def write_calls(calls: list[tuple[str, bytes]], directory: str, kind: str) -> str:
    path = os.path.join(directory, f"{kind}-calls.tsv")
    with open(path, "w") as handle:
        for signature, body in calls:
            handle.write(f"{signature}\t{body.decode()}\n")
    return path


def drive_with_wrk(
    port: int, calls_file: str, offset: int, seconds: float, connections: int, pin: bool
) -> dict[str, float]:
    """The load from wrk (C, one thread), starting at request ``offset`` of the file (never a replay)."""
    env = {**os.environ, "REQUESTS_FILE": calls_file, "REQUEST_PATH": PATH}
    command = [
        *(["taskset", "-c", LOAD_CORE] if pin else []),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds:.0f}s",
        "--timeout",
        "5s",
        "-s",
        str(ROOT / "bench" / "wrk_requests.lua"),
        f"http://127.0.0.1:{port}",
        "--",
        str(offset),
    ]
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
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


def pin_to(core: str) -> Callable[[], None] | None:
    """A preexec_fn that pins the child (and every process it forks) to ``core``."""
    return lambda: os.sched_setaffinity(0, {int(core)})


def start_server(kind: str, port: int, env: dict[str, str], loop: str, pin: bool) -> subprocess.Popen[bytes]:
    if kind == "nolog":
        env = {**env, "LILY_WEBHOOK_LOG": "false"}
    if kind in ("lily", "nolog"):
        command = [
            sys.executable,
            "-m",
            "lily_host.cli.main",
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
            APPS[kind],
        ]
    process = subprocess.Popen(
        command,
        env=env,
        cwd=ROOT / "bench",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=pin_to(SERVER_CORE) if pin else None,
    )
    wait_for_port(port, process)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def lily_env(redis_url: str) -> dict[str, str]:
    """The environment of a benchmarked `lily serve`: production settings, Twilio only, this Redis."""
    from lily_host.tenants.secret_box import SecretBox

    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "LILY_ENV": "production",
        "LILY_PUBLIC_URL": PUBLIC_URL,
        "LILY_ADMIN_TOKEN": "bench-admin-Q7x2Lm9Rk4Vt8Zp3Wc6Ny1Hd5",  # production wants a strong one
        "LILY_SECRET_KEY": SecretBox.generate_key(),
        "LILY_LOG_LEVEL": "WARNING",
        "LILY_PLUGINS": "twilio",
        "TWILIO_ACCOUNT_SID": "ACbench0000000000000000000000000",
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": BUSINESS_NUMBER,
        "PYTHONPATH": str(ROOT / "bench"),
    }


def prepare_tenant(env: dict[str, str]) -> None:
    lily = [sys.executable, "-m", "lily_host.cli.main"]
    subprocess.run([*lily, "tenants", "add", "bench", "--name", "Bench Wash"], env=env, check=True, capture_output=True)
    subprocess.run(
        [*lily, "tenants", "set", "bench", f'twilio.business_numbers=["{BUSINESS_NUMBER}"]'],
        env=env,
        check=True,
        capture_output=True,
    )


def profile(pid: int, seconds: float, output: str) -> subprocess.Popen[bytes]:
    """py-spy (pip install py-spy) sampling the lily server while it is under load."""
    command = ["py-spy", "record", "--subprocesses", "--nonblocking", "--format", "raw", "-o", output]
    command += ["--pid", str(pid), "--duration", str(int(seconds))]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarise(runs: list[dict[str, float]]) -> dict[str, float]:
    """The median of each figure over the rounds, and the worst p99."""
    keys = ("rps", "p50_ms", "p99_ms")
    summary = {key: statistics.median(run[key] for run in runs) for key in keys}
    summary["worst_p99_ms"] = max(run["p99_ms"] for run in runs)
    summary["errors"] = sum(run["errors"] for run in runs)
    summary["requests"] = sum(run["requests"] for run in runs)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of load per round and server")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the load alternates between the servers")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="one round of 3 s")
    parser.add_argument("--profile", metavar="FILE", help="write py-spy samples of the lily server to FILE")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="leave CPU placement to the OS")
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
    seconds, rounds = (3.0, 1) if args.quick else (args.seconds, args.rounds)
    use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk") is not None)
    pin = args.pin and len(os.sched_getaffinity(0)) >= 2 and shutil.which("taskset") is not None
    loop = args.loop
    if loop == "auto":
        loop = "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"
    if pin:
        os.sched_setaffinity(0, {int(LOAD_CORE)})  # this process (and so redis-server and wrk) off the server's core

    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp)) as server:
        env = lily_env(server.url)
        prepare_tenant(env)
        kinds = ("floor", "zadd", "bare", "lily", "nolog")
        ports = {kind: free_port() for kind in kinds}
        # Enough distinct calls for 4,000 requests/s: a replayed call would be a duplicate (another path).
        calls = {
            kind: signed_calls(int(seconds * rounds * 4000) + 500, prefix=kind) for kind in ("bare", "lily", "nolog")
        }
        calls["floor"] = calls["zadd"] = calls["bare"]  # the floors read no signature and keep no delivery id
        processes: dict[str, subprocess.Popen[bytes]] = {}
        runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
        try:
            for kind in kinds:
                processes[kind] = start_server(kind, ports[kind], env, loop, pin)
                warm_up = build_requests(calls[kind][:500], ports[kind])
                asyncio.run(drive(ports[kind], warm_up, 1.0, args.connections))
            files = {kind: write_calls(calls[kind][500:], tmp, kind) for kind in kinds}
            requests = {kind: build_requests(calls[kind][500:], ports[kind]) for kind in kinds}
            sent = {kind: 0 for kind in kinds}
            for round_index in range(rounds):
                for kind in kinds if round_index % 2 == 0 else kinds[::-1]:
                    profiler = None
                    if args.profile and kind == "lily" and not runs["lily"]:
                        profiler = profile(processes[kind].pid, seconds, args.profile)
                    if use_wrk:
                        result = drive_with_wrk(ports[kind], files[kind], sent[kind], seconds, args.connections, pin)
                    else:
                        result = asyncio.run(
                            drive(ports[kind], requests[kind][sent[kind] :], seconds, args.connections)
                        )
                    # wrk stops counting with a request still in flight on every connection: skip those too.
                    sent[kind] += int(result["requests"]) + args.connections
                    runs[kind].append(result)
                    if profiler is not None:
                        profiler.wait(timeout=60)
        finally:
            for process in processes.values():
                stop(process)
        client = sync_redis.Redis.from_url(server.url)
        scheduled = client.zcard("lily:{q:default}:due")
        client.close()

    results = {kind: summarise(runs[kind]) for kind in kinds}
    placement = f"server on core {SERVER_CORE}, load and Redis on core {LOAD_CORE}" if pin else "no CPU pinning"
    print(
        f"\nIngest: signed Twilio voice webhooks, hypercorn 1 worker ({loop}), {args.connections} connections, "
        f"{rounds} x {seconds:.0f} s per server, alternating; {placement}; load from {'wrk' if use_wrk else 'asyncio'}"
    )
    print(f"{'median of the rounds':<30}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'worst p99':>11}{'errors':>8}")
    labels = {
        "floor": "hypercorn floor (no-op ASGI)",
        "zadd": "floor + one ZADD (raw ASGI)",
        "bare": "bare Quart HMAC+ZADD",
        "lily": "lily serve (full pipeline)",
        "nolog": "lily serve, webhook log off",
    }
    for kind, label in labels.items():
        r = results[kind]
        print(
            f"{label:<30}{r['rps']:>10.0f}{r['p50_ms']:>10.1f}{r['p99_ms']:>10.1f}{r['worst_p99_ms']:>11.1f}"
            f"{r['errors']:>8.0f}"
        )
    per_round = ", ".join(
        f"{lily['rps'] / bare['rps']:.2f}x" for bare, lily in zip(runs["bare"], runs["lily"], strict=True)
    )
    ratio = results["lily"]["rps"] / results["bare"]["rps"]
    print(f"ratio lily/bare: {ratio:.2f}x (target >= 0.70x; per round: {per_round})")
    # Closed loop: every connection always has one request in the server, so by Little's law the
    # mean latency is connections / throughput whatever the server does; a p99 under 50 ms needs
    # more than connections / 0.05 s requests per second, from Lily and, first, from the floor.
    needed = args.connections / 0.050
    print(
        f"lily p99 {results['lily']['p99_ms']:.1f} ms (target < 50 ms at {args.connections} connections, which needs "
        f"> {needed:.0f} req/s; the floor did {results['floor']['rps']:.0f} and the floor with one ZADD "
        f"{results['zadd']['rps']:.0f}, p99 {results['zadd']['p99_ms']:.1f} ms; lily did "
        f"{results['lily']['rps'] / results['zadd']['rps']:.0%} of that)"
    )
    log_cost = 1 - results["lily"]["rps"] / results["nolog"]["rps"]
    per_round_cost = ", ".join(
        f"{1 - on['rps'] / off['rps']:.0%}" for on, off in zip(runs["lily"], runs["nolog"], strict=True)
    )
    print(
        f"webhook log cost: {log_cost:.1%} of lily's req/s (on {results['lily']['rps']:.0f}, off "
        f"{results['nolog']['rps']:.0f}; target <= 10 %; per round: {per_round_cost})"
    )
    counted = results["lily"]["requests"] + results["nolog"]["requests"]
    print(
        f"tasks scheduled by both lily servers: {scheduled} (one per accepted webhook: 1000 in the warm-ups, "
        f"{counted:.0f} counted, and those still in flight as each round ended)"
    )


if __name__ == "__main__":
    main()
