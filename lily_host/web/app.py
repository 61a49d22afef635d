"""``create_app()``: the Quart application factory. No global app: all state hangs off the app."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from quart import Quart, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from lily_host.builtins.core import dev_routes
from lily_host.config.host_settings import HostSettings
from lily_host.config.redis_connection import ensure_redis, redis_client
from lily_host.config.settings_errors import load_settings
from lily_host.observability.log import configure_logging, get_logger
from lily_host.observability.metrics import render_latest
from lily_host.plugin_api.clock import Clock
from lily_host.plugin_api.errors import ConfigurationError
from lily_host.plugin_api.route_auth import API_RATE_LIMIT
from lily_host.queue.depth import collect_depth
from lily_host.runtime.health import collect_health, public_health, readiness
from lily_host.runtime.host import Host, current_host
from lily_host.runtime.registry import PluginRegistry, PluginState, StartupError
from lily_host.tenants.secret_box import SecretBox
from lily_host.web.admin_api import admin
from lily_host.web.api_auth import dev_routes_refusal
from lily_host.web.consent_api import consent_api
from lily_host.web.front_door import WebhookFrontDoor
from lily_host.web.load_shedding import SHEDDER, ApiRateLimiter, LoadShedder
from lily_host.web.webhook_pipeline import WebhookRoute

log = get_logger("lily.app")

#: Default prefix of a plugin's ordinary routes when it names none.
DEFAULT_ROUTE_PREFIX = "/plugins/{plugin}"


def resolve_secret_keys(settings: HostSettings) -> list[str]:
    """LILY_SECRET_KEY, or outside production a key kept in the data folder (created once)."""
    if settings.secret_key:
        return settings.secret_key
    if settings.is_production:
        raise ConfigurationError("LILY_SECRET_KEY is required when LILY_ENV=production (lily keygen makes one)")
    path = Path(settings.data_dir) / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(SecretBox.generate_key())
        path.chmod(0o600)
        log.warning("LILY_SECRET_KEY not set; using a development key", path=str(path))
    return [path.read_text().strip()]


def build_host(
    settings: HostSettings,
    *,
    registry: PluginRegistry | None = None,
    clock: Clock | None = None,
) -> Host:
    """A Host (plugins loaded, Redis client made, no connection yet) for the app, a worker or the CLI."""
    settings.check_production()
    redis = redis_client(settings)  # a URL or Sentinel; one clear line when the settings are wrong
    registry = registry if registry is not None else PluginRegistry(settings)
    return Host(settings, registry, redis, secret_box=SecretBox(resolve_secret_keys(settings)), clock=clock)


def refuse_failed_plugins(host: Host) -> None:
    """In production a plugin that failed to load stops the start, unless it is disabled explicitly.

    Otherwise a typo in one variable silently takes SMS (say) offline while the server says ok.
    """
    if not host.settings.is_production:
        return
    failed = [record for record in host.registry.records.values() if record.state == PluginState.FAILED]
    if failed:
        reasons = "; ".join(f"plugin {record.name}: {record.error}" for record in failed)
        names = ",".join(record.name for record in failed)
        raise ConfigurationError(
            f"{reasons}. Fix it, or run without it by setting LILY_DISABLE_PLUGINS={names} (LILY_ENV=production)"
        )


def create_app(
    settings: HostSettings | None = None,
    *,
    registry: PluginRegistry | None = None,
    clock: Clock | None = None,
    run_worker: bool = False,
    worker_options: Mapping[str, Any] | None = None,
) -> Quart:
    settings = settings if settings is not None else load_settings(HostSettings)
    configure_logging(settings.env, settings.log_level)
    host = build_host(settings, registry=registry, clock=clock)
    refuse_failed_plugins(host)
    app = Quart("lily_host")
    app.extensions["lily"] = host
    app.config["MAX_CONTENT_LENGTH"] = settings.max_webhook_bytes
    # Load shedding (web/load_shedding.py): webhooks and the tenant API, per app.
    shedder = app.extensions[SHEDDER] = LoadShedder(settings, host.queue)
    api_limiter = ApiRateLimiter(host.redis, per_minute=settings.api_rate_per_minute, burst=settings.api_burst)
    app.extensions[API_RATE_LIMIT] = api_limiter.retry_after_for_token
    _mount_host_routes(app)
    mount_plugins(app, host.registry, shedder=shedder)
    _install_lifecycle(app, host, run_worker=run_worker, worker_options=worker_options or {})
    return app


def _mount_host_routes(app: Quart) -> None:
    from lily_host.console import install_console
    from lily_host.web import api_audit
    from lily_host.web.ops_api import ops

    app.register_blueprint(admin, url_prefix="/api")
    app.register_blueprint(ops, url_prefix="/api")
    # The core plugin's /dev routes (the outbox) are guarded here, by the admin token's guard:
    # only a `lily dev` session leaves them open.
    app.before_request_funcs.setdefault(dev_routes.name, []).append(dev_routes_refusal)
    app.register_blueprint(consent_api, url_prefix="/api/sms/consent")
    api_audit.install(app)
    install_console(app)

    @app.get("/healthz")
    async def healthz() -> Any:
        return jsonify({"status": "alive"})

    @app.get("/readyz")
    async def readyz() -> Any:
        report = await readiness(current_host())
        return jsonify(report), 200 if report["status"] == "ready" else 503

    @app.get("/health")
    async def health() -> Any:
        host = current_host()
        if not _is_admin(host.settings.admin_token, request.headers.get("Authorization", "")):
            # Anonymous: the overall status only, and no provider is called for it.
            public = await public_health(host)
            return jsonify(public), 503 if public["status"] == "failed" else 200
        report = await collect_health(host)
        return jsonify(report), 503 if report["status"] == "failed" else 200

    @app.get("/metrics")
    async def metrics() -> Response:
        from lily_host.runtime import ops_metrics

        await collect_depth(current_host().queue)
        await ops_metrics.collect(current_host())
        body, content_type = render_latest()
        return Response(body, content_type=content_type)

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Any:
        response = jsonify({"error": (error.name or "error").lower().replace(" ", "_"), "message": error.description})
        response.status_code = error.code or 500
        return response

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> Any:
        log.exception("unhandled error", path=request.path)
        return jsonify({"error": "internal", "message": "internal error"}), 500


def _is_admin(expected: str | None, header: str) -> bool:
    import hmac

    scheme, _, token = header.partition(" ")
    token = token.strip()
    return bool(expected) and scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), str(expected).encode())


def mount_plugins(app: Quart, registry: PluginRegistry, *, shedder: LoadShedder | None = None) -> None:
    """Mount every plugin's webhooks and routes; records each plugin's routes; collisions are errors.

    ``shedder`` guards the webhooks (load shedding); without one (``lily plugins``) nothing is shed."""
    blueprint_owner: dict[str, str] = {}
    gated_blueprints: dict[str, str] = {}
    fixed_paths: dict[str, WebhookRoute] = {}
    for plugin, endpoint in registry.webhooks:
        route = WebhookRoute(plugin, endpoint, shedder)
        app.add_url_rule(
            endpoint.path, endpoint=f"webhook:{plugin}:{endpoint.path}", view_func=route.quart_view(), methods=["POST"]
        )
        if "<" not in endpoint.path:
            fixed_paths[endpoint.path] = route
    for plugin, routes in registry.routes:
        name = routes.blueprint.name
        if name in blueprint_owner:
            raise StartupError(
                f"blueprint {name!r} is registered by both plugin {blueprint_owner[name]!r} and {plugin!r}"
            )
        blueprint_owner[name] = plugin
        prefix = routes.url_prefix if routes.url_prefix is not None else DEFAULT_ROUTE_PREFIX.format(plugin=plugin)
        app.register_blueprint(routes.blueprint, url_prefix=prefix)
        if not routes.always_available:
            gated_blueprints[name] = plugin
    _check_route_collisions(app, registry, blueprint_owner)
    # Webhooks with a fixed path skip Quart's request machinery (the ingest hot path).
    app.asgi_app = WebhookFrontDoor(app, app.asgi_app, fixed_paths)  # type: ignore[method-assign]

    async def refuse_unconfigured_plugin() -> Any:
        plugin = gated_blueprints.get(request.blueprint or "")
        if plugin is None:
            return None
        record = registry.records[plugin]
        if record.state == PluginState.LOADED:
            return None
        missing = record.missing_settings
        message = f"{plugin} is not available" + (f": set {', '.join(missing)}" if missing else f" ({record.state})")
        return jsonify({"error": "not_configured", "message": message, "missing": missing}), 503

    # Scoped to the gated blueprints instead of app-wide, so webhooks and host routes run no
    # before-request hook. First in each list: it still runs before the blueprint's own hooks.
    # (Nested blueprints reach it too, and the check above lets them through, as before.)
    for name in gated_blueprints:
        app.before_request_funcs.setdefault(name, []).insert(0, refuse_unconfigured_plugin)


def _check_route_collisions(app: Quart, registry: PluginRegistry, blueprint_owner: dict[str, str]) -> None:
    seen: dict[tuple[str, str], str] = {}
    for rule in app.url_map.iter_rules():
        endpoint = rule.endpoint
        if endpoint.startswith("webhook:"):
            owner = endpoint.split(":", 2)[1]
        else:
            owner = blueprint_owner.get(endpoint.split(".", 1)[0], "lily-host")
        for method in rule.methods or ():
            if method in ("HEAD", "OPTIONS"):
                continue
            key = (rule.rule, method)
            if key in seen and seen[key] != owner:
                raise StartupError(f"route {method} {rule.rule} is registered by both {seen[key]!r} and {owner!r}")
            seen.setdefault(key, owner)
    for record in registry.records.values():
        record.routes = sorted({f"{method} {rule}" for (rule, method), owner in seen.items() if owner == record.name})


def _install_lifecycle(app: Quart, host: Host, *, run_worker: bool, worker_options: Mapping[str, Any]) -> None:
    state: dict[str, Any] = {}
    shedder: LoadShedder = app.extensions[SHEDDER]

    @app.before_serving
    async def start() -> None:
        from lily_host.tenants.canary import require_secret_key

        await ensure_redis(host.redis, host.settings)
        await require_secret_key(host.redis, host.tenants.secret_box)
        await host.require_current_key_layout()
        await host.startup()
        shedder.start()
        if run_worker:
            await host.finish_tenant_deletions()
        if run_worker:
            worker = host.make_worker(**worker_options)
            state["worker"] = worker
            state["worker_task"] = asyncio.get_running_loop().create_task(worker.run())
        # Everything loaded so far lives as long as the process: keep it out of the collector's
        # generations so full collections under load stay short (tail latency).
        gc.collect()
        gc.freeze()
        log.info("lily started", env=host.settings.env, pid=os.getpid())

    @app.after_serving
    async def stop() -> None:
        worker = state.get("worker")
        if worker is not None:
            worker.stop()
            await state["worker_task"]
        await shedder.stop()
        await host.shutdown()
        await host.queue.drain()
        await host.webhook_log.drain()
        await host.redis.aclose()
