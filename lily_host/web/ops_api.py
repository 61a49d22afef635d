"""The admin API for operators: webhook log and replay, traces, tasks and dead letters, audit, workers.

All routes need ``Authorization: Bearer $LILY_ADMIN_TOKEN`` and are audited. Listings take filters
as query parameters and page with ``before`` (the ``next`` of the previous page). See
docs/operations.md ("Admin API for operators") for every route and field.
"""

from __future__ import annotations

import re
from typing import Any

from quart import Blueprint, jsonify, request

from lily_host.operations.timeparse import parse_since
from lily_host.operations.webhook_log import summary
from lily_host.operations.worker_registry import WorkerRegistry
from lily_host.plugin_api.json_problem import problem
from lily_host.runtime.delivery_trace import assemble, task_view
from lily_host.runtime.host import current_host
from lily_host.runtime.webhook_replay import ReplayRefused, replay, replay_many
from lily_host.web.api_auth import require_admin

ops = Blueprint("lily_ops", __name__)

MAX_LIMIT = 500


class BadQuery(ValueError):
    pass


def _limit(default: int = 50) -> int:
    raw = request.args.get("limit")
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadQuery(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


_CURSOR = re.compile(r"\d{1,20}-\d{1,20}(~[\w.:-]{1,200})?")


def _cursor() -> str | None:
    raw = request.args.get("before") or None
    if raw is not None and not _CURSOR.fullmatch(raw):
        raise BadQuery("before must be the 'next' value of a previous page")
    return raw


def _time(name: str, args: Any = None) -> float | None:
    raw = (args if args is not None else request.args).get(name)
    if raw in (None, ""):
        return None
    try:
        return parse_since(str(raw))
    except ValueError as error:
        raise BadQuery(f"{name}: {error}") from None


def _filters(args: Any) -> dict[str, Any]:
    filters: dict[str, Any] = {}
    for name in ("tenant", "integration", "outcome"):
        value = args.get(name)
        if value not in (None, ""):
            if not isinstance(value, str):
                raise BadQuery(f"{name} must be a string")
            filters[name] = value
    for name in ("since", "until"):
        value = _time(name, args)
        if value is not None:
            filters[name] = value
    return filters


@ops.errorhandler(BadQuery)
async def bad_query(error: BadQuery) -> Any:
    return problem(400, "invalid", str(error))


@ops.get("/webhooks")
@require_admin
async def list_webhooks() -> Any:
    """Deliveries newest first; filters tenant, integration, outcome (comma list), since, until; paging before."""
    filters = _filters(request.args)
    entries, cursor = await current_host().webhook_log.list(limit=_limit(), before=_cursor(), **filters)
    return jsonify({"webhooks": [summary(entry) for entry in entries], "next": cursor})


@ops.get("/webhooks/<delivery_id>")
@require_admin
async def show_webhook(delivery_id: str) -> Any:
    entry = await current_host().webhook_log.get(delivery_id)
    if entry is None:
        return problem(404, "not_found", f"no delivery {delivery_id!r} in the webhook log")
    return jsonify(entry)


@ops.post("/webhooks/<delivery_id>/replay")
@require_admin
async def replay_one(delivery_id: str) -> Any:
    host = current_host()
    entry = await host.webhook_log.get(delivery_id)
    if entry is None:
        return problem(404, "not_found", f"no delivery {delivery_id!r} in the webhook log")
    try:
        result = await replay(host, entry)
    except ReplayRefused as refusal:
        return problem(409, "not_replayable", str(refusal))
    return jsonify(result), 201 if result["outcome"] == "accepted" else 200


@ops.post("/webhooks/replay")
@require_admin
async def replay_bulk() -> Any:
    """Body: {"outcome": "error", "since": "2h", "tenant"?, "integration"?, "until"?, "dry_run": true, "limit"?}."""
    if request.mimetype != "application/json":
        return problem(415, "unsupported_media_type", "send a JSON object with Content-Type: application/json")
    try:
        body = await request.get_json(silent=True)
    except RecursionError:
        body = None
    if not isinstance(body, dict):
        return problem(400, "invalid", "the body must be a JSON object")
    unknown = sorted(set(body) - {"tenant", "integration", "outcome", "since", "until", "dry_run", "limit"})
    if unknown:
        return problem(400, "invalid", f"unknown field(s): {', '.join(unknown)}")
    if "since" not in body and "outcome" not in body:
        return problem(400, "invalid", "give at least 'outcome' or 'since' (bulk replay of the whole log is refused)")
    dry_run = body.get("dry_run", True)
    limit = body.get("limit", 1000)
    if not isinstance(dry_run, bool) or not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 5000:
        return problem(400, "invalid", "'dry_run' must be true or false and 'limit' a number from 1 to 5000")
    filters = _filters(
        {k: (str(v) if k in ("since", "until") and isinstance(v, int | float) else v) for k, v in body.items()}
    )
    return jsonify(await replay_many(current_host(), dry_run=dry_run, limit=limit, **filters))


@ops.get("/trace/<path:ident>")
@require_admin
async def trace(ident: str) -> Any:
    result = await assemble(current_host(), ident)
    if result is None:
        return problem(404, "not_found", f"nothing known of {ident!r} (traces are kept for LILY_TRACE_DAYS)")
    return jsonify(result)


@ops.get("/tasks")
@require_admin
async def list_tasks() -> Any:
    """?state=due|in_flight|dead (dead letters) &limit."""
    state = request.args.get("state", "dead")
    if state not in ("due", "in_flight", "dead"):
        return problem(400, "invalid", "state must be due, in_flight or dead")
    host = current_host()
    found = await host.queue.list_tasks(state, _limit())  # type: ignore[arg-type]
    return jsonify({"tasks": [await task_view(host, task.id) for task in found], "state": state})


@ops.get("/tasks/<path:task_id>")
@require_admin
async def show_task(task_id: str) -> Any:
    view = await task_view(current_host(), task_id)
    if view is None:
        return problem(404, "not_found", f"no task {task_id!r} (finished tasks are kept for LILY_TRACE_DAYS)")
    return jsonify(view)


@ops.post("/tasks/<path:task_id>/retry")
@require_admin
async def retry_task(task_id: str) -> Any:
    if not await current_host().queue.retry_dead(task_id):
        return problem(409, "not_dead", f"{task_id} is not a dead task")
    return jsonify({"requeued": task_id})


@ops.get("/audit")
@require_admin
async def audit() -> Any:
    """?tenant &actor &action (substrings) &since &before &limit."""
    entries, cursor = await current_host().audit.list(
        tenant=request.args.get("tenant") or None,
        actor=request.args.get("actor") or None,
        action=request.args.get("action") or None,
        since=_time("since"),
        before=_cursor(),
        limit=_limit(100),
    )
    return jsonify({"audit": entries, "next": cursor})


@ops.get("/workers")
@require_admin
async def workers() -> Any:
    host = current_host()
    return jsonify({"workers": await WorkerRegistry(host.redis, host.queue.name).live()})


@ops.get("/integrations")
@require_admin
async def integrations() -> Any:
    return jsonify({"integrations": await current_host().integrations.all()})
