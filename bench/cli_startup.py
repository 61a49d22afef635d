"""How long `lily` takes to start, beside the interpreter itself, in the same run.

Run: python bench/cli_startup.py [--quick] (``nox -s bench`` does). Each command runs as a fresh
process, interleaved with the others round by round so a busy machine slows them alike; the table
gives the median and the fastest run in ms. Target: `lily --version` and `lily --help` under 300 ms.
A plugin command pays for loading the plugins; it is shown so the price of a command is visible.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_MS = 300.0


def lily_script() -> list[str]:
    """The `lily` console script of this interpreter's environment (what a user runs)."""
    script = Path(sys.executable).parent / "lily"
    if script.exists():
        return [str(script)]
    found = shutil.which("lily")
    return [found] if found else [sys.executable, "-m", "lily_host.cli.main"]


def run_once(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5 rounds instead of 20")
    parser.add_argument("--rounds", type=int, default=None, help="how many times each command runs")
    args, _unknown = parser.parse_known_args()
    rounds = args.rounds or (5 if args.quick else 20)
    lily = lily_script()
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import click'": [sys.executable, "-c", "import click"],
        "lily --version": [*lily, "--version"],
        "lily --help": [*lily, "--help"],
        "lily tasks --help": [*lily, "tasks", "--help"],
        "lily jobs --help (loads plugins)": [*lily, "jobs", "--help"],
    }
    for command in commands.values():  # warm the file cache: the first run of anything is slower
        run_once(command)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, command in commands.items():
            times[name].append(run_once(command))

    width = max(len(name) for name in commands)
    baseline = statistics.median(times["python -c pass"])
    print(f"CLI start-up, {rounds} runs each, interleaved ({sys.executable})")
    print(f"{'':<{width}}  {'median ms':>10}  {'min ms':>8}  {'over python':>12}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<{width}}  {median:>10.0f}  {min(values):>8.0f}  {median - baseline:>+12.0f}")
    for name in ("lily --version", "lily --help"):
        median = statistics.median(times[name])
        verdict = "ok" if median < TARGET_MS else "OVER TARGET"
        print(f"{name}: median {median:.0f} ms, target < {TARGET_MS:.0f} ms: {verdict}")


if __name__ == "__main__":
    main()
