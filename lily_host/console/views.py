"""The console's routes: sign-in and sessions, then one page per concern, all reading the same
stores and functions as the admin API (:mod:`lily_host.web.ops_api`, :mod:`lily_host.web.admin_api`).

Every request but the overview (which refreshes itself) and static files is audited through the
app's audit hook (:mod:`lily_host.web.api_audit`), with the session's actor ``console:admin:<fp>``;
sign-in attempts are audited whether they succeed or not.
"""

from __future__ import annotations

import hmac
import json
import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from quart import Blueprint, Response, g, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.sansio.response import Response as BaseResponse

from lily_host.console import data
from lily_host.console.sessions import (
    COOKIE,
    SIGNIN_COOKIE,
    Session,
    close_session,
    load_session,
    open_session,
    use_link_token,
)
from lily_host.observability.log import get_logger
from lily_host.operations.audit_log import fingerprint
from lily_host.operations.correlation import parse_delivery_id
from lily_host.operations.timeparse import parse_since
from lily_host.runtime.delivery_trace import assemble, task_view
from lily_host.runtime.host import Host, current_host
from lily_host.runtime.webhook_replay import ReplayRefused, replay, replayable

log = get_logger("lily.console")

console = Blueprint(
    "lily_console",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

_PUBLIC = {"lily_console.signin", "lily_console.signin_post", "lily_console.signin_link", "lily_console.static"}
#: Not audited: the overview refreshes itself every few seconds (it shows no tenant data).
_UNAUDITED = {"lily_console.overview", "lily_console.static"}
PAGE_SIZE = 50
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class BadFilter(ValueError):
    """A filter the operator typed cannot be read (shown on the page, nothing else happens)."""


# --- plumbing ------------------------------------------------------------------------------------------


def _session() -> Session:
    session: Session = g.console_session
    return session


async def page(template: str, status: int = 200, **context: Any) -> Response:
    host = current_host()
    session: Session | None = getattr(g, "console_session", None)
    body = await render_template(
        f"console/{template}",
        csrf=session.csrf if session else "",
        signed_in=session is not None,
        development=not host.settings.is_production,
        env=host.settings.env,
        endpoint=request.endpoint or "",
        **context,
    )
    return Response(body, status=status, content_type="text/html; charset=utf-8")


async def problem(status: int, title: str, message: str) -> Response:
    return await page("error.html", status=status, title=title, message=message)


def _safe_next(target: str | None) -> str:
    """Only a path inside the console: never an open redirect."""
    if target and target.startswith("/console") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("lily_console.overview")


def _time_arg(args: Any, name: str) -> float | None:
    raw = (args.get(name) or "").strip()
    if not raw:
        return None
    try:
        return parse_since(raw)
    except ValueError as error:
        raise BadFilter(f"{name}: {error}") from None


def _query(**changes: Any) -> str:
    """The current query string with ``changes`` applied (for paging links)."""
    args = dict(parse_qsl(request.query_string.decode(), keep_blank_values=False))
    for name, value in changes.items():
        if value in (None, ""):
            args.pop(name, None)
        else:
            args[name] = str(value)
    return "?" + urlencode(args) if args else "?"


@console.app_template_filter("iso")
def iso_filter(at: float | None) -> str:
    """A Unix time as ISO 8601 UTC, for ``<time datetime>`` (the page's script shows it in the operator's zone)."""
    return datetime.fromtimestamp(float(at or 0), UTC).isoformat(timespec="seconds")


@console.app_template_filter("utc")
def utc_filter(at: float | None) -> str:
    """The same time as text, for a browser without script."""
    return datetime.fromtimestamp(float(at or 0), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@console.app_template_global("query")
def query_global(**changes: Any) -> str:
    return _query(**changes)


@console.before_request
async def guard() -> Any:
    """Sign-in pages are open; everything else wants a live session, and a POST its CSRF token."""
    host = current_host()
    if request.endpoint in _PUBLIC:
        return None
    if not host.settings.admin_token:
        return await problem(503, "Console disabled", "The console is disabled: set LILY_ADMIN_TOKEN.")
    session = await load_session(host.redis, request.cookies.get(COOKIE), host.settings.admin_token)
    if session is None:
        # A tenant key (or any Authorization header) opens nothing here: only the session cookie does.
        if request.method == "GET":
            return redirect(url_for("lily_console.signin", next=request.full_path.rstrip("?")), 303)
        return await problem(401, "Signed out", "Your session has ended: sign in again.")
    g.console_session = session
    if request.endpoint not in _UNAUDITED:
        g.audit_actor = {"actor": session.actor}
        # A delivery id names its tenant: the audit entry of a replay or a look at it says whose.
        parsed = parse_delivery_id(str((request.view_args or {}).get("delivery_id", "")))
        if parsed is not None and parsed[0]:
            g.audit_actor["tenant"] = parsed[0]
    if request.method == "POST":
        form = await request.form
        if not session.csrf_ok(form.get("csrf")):
            return await problem(403, "Refused", "This form has no valid CSRF token: reload the page and try again.")
    return None


@console.after_request
async def headers(response: Response) -> Response:
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    # The sign-in link holds a one-time token: never let it leave in a Referer.
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Content-Security-Policy"] = _CSP
    if request.endpoint != "lily_console.static":
        response.headers["Cache-Control"] = "no-store"
    return response


@console.errorhandler(BadFilter)
async def bad_filter(error: BadFilter) -> Response:
    return await problem(400, "Bad filter", str(error))


@console.errorhandler(HTTPException)
async def http_error(error: HTTPException) -> Response:
    return await problem(error.code or 500, error.name or "Error", error.description or "")


def _set_cookie(response: BaseResponse, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/console",
        httponly=True,
        samesite="Strict",
        secure=current_host().settings.is_production,
    )


# --- signing in and out -----------------------------------------------------------------------------


@console.get("/signin")
async def signin() -> Response:
    return await _signin_page(200, "")


async def _signin_page(status: int, error: str) -> Response:
    token = secrets.token_urlsafe(24)
    response = await page(
        "signin.html", status=status, error=error, signin_csrf=token, next=_safe_next(request.args.get("next"))
    )
    _set_cookie(response, SIGNIN_COOKIE, token, 3600)
    return response


@console.post("/signin")
async def signin_post() -> Any:
    host = current_host()
    form = await request.form
    g.audit_actor = {"actor": "anonymous"}
    expected_csrf = request.cookies.get(SIGNIN_COOKIE, "")
    given_csrf = form.get("csrf", "")
    if not expected_csrf or not hmac.compare_digest(expected_csrf.encode(), given_csrf.encode()):
        return await _signin_page(403, "The sign-in form expired: try again.")
    admin_token = host.settings.admin_token
    if not admin_token:
        return await _signin_page(503, "The console is disabled: set LILY_ADMIN_TOKEN.")
    token = form.get("token", "").strip()
    if not token:
        return await _signin_page(400, "Paste the admin token (LILY_ADMIN_TOKEN).")
    if not hmac.compare_digest(token.encode(), admin_token.encode()):
        tenant = await host.tenants.authenticate(token)
        if tenant is not None:
            key = await host.tenants.key_record(token) or {}
            g.audit_actor = {"actor": f"key:{key.get('key_id', '?')}", "tenant": tenant.id}
            return await _signin_page(403, "That is a tenant API key: the console opens only with the admin token.")
        g.audit_actor = {"actor": f"invalid-admin-token:{fingerprint(token)}"}
        return await _signin_page(403, "That is not the admin token.")
    sid, session = await open_session(host.redis, admin_token)
    g.audit_actor = {"actor": session.actor}
    response = redirect(_safe_next(form.get("next")), 303)
    _set_cookie(response, COOKIE, sid, None)
    response.delete_cookie(SIGNIN_COOKIE, path="/console")
    return response


@console.get("/signin/<token>")
async def signin_link(token: str) -> Any:
    host = current_host()
    g.audit_actor = {"actor": "console:link"}
    admin_token = host.settings.admin_token
    if not admin_token or not await use_link_token(host.redis, token):
        return await _signin_page(403, "That sign-in link was used already or has expired: sign in with the token.")
    sid, session = await open_session(host.redis, admin_token)
    g.audit_actor = {"actor": session.actor, "label": "one-time link"}
    response = redirect(url_for("lily_console.overview"), 303)
    _set_cookie(response, COOKIE, sid, None)
    return response


@console.post("/signout")
async def signout() -> Any:
    await close_session(current_host().redis, _session())
    response = redirect(url_for("lily_console.signin"), 303)
    response.delete_cookie(COOKIE, path="/console")
    return response


# --- overview -----------------------------------------------------------------------------------------


@console.get("/")
async def overview() -> Response:
    return await page("overview.html", o=await data.overview(current_host()), refresh=10)


# --- webhooks -----------------------------------------------------------------------------------------


def _webhook_filters() -> dict[str, Any]:
    args = request.args
    filters: dict[str, Any] = {}
    for name in ("tenant", "integration", "outcome"):
        value = (args.get(name) or "").strip()
        if value:
            filters[name] = value
    for name in ("since", "until"):
        moment = _time_arg(args, name)
        if moment is not None:
            filters[name] = moment
    return filters


@console.get("/webhooks")
async def webhooks() -> Response:
    host = current_host()
    filters = _webhook_filters()
    before = request.args.get("before") or None
    entries, cursor, scanned = await data.webhooks(host, filters, before=before, limit=PAGE_SIZE)
    return await page(
        "webhooks.html",
        entries=entries,
        cursor=cursor,
        scanned=scanned,
        args=request.args,
        integrations=data.integration_names(host),
        outcomes=data.OUTCOMES,
        paged=bool(before),
    )


@console.get("/webhooks/<delivery_id>")
async def webhook(delivery_id: str) -> Response:
    host = current_host()
    entry = await host.webhook_log.get(delivery_id)
    if entry is None:
        return await problem(404, "Not found", f"No delivery {delivery_id} in the webhook log.")
    tasks = [view for view in [await task_view(host, tid) for tid in entry["tasks"]] if view is not None]
    return await page(
        "webhook.html",
        e=entry,
        body=data.body_view(entry),
        headers=data.masked_headers(entry["headers"]),
        tasks=tasks,
        # A replay carries its own id: replayed again it would get past the original's guard.
        can_replay=replayable(entry) and not entry["replay_of"],
        result=request.args.get("replayed"),
    )


@console.post("/webhooks/<delivery_id>/replay")
async def replay_webhook(delivery_id: str) -> Any:
    host = current_host()
    entry = await host.webhook_log.get(delivery_id)
    if entry is None:
        return await problem(404, "Not found", f"No delivery {delivery_id} in the webhook log.")
    if entry["replay_of"]:
        return await problem(409, "Not replayable", f"{delivery_id} is a replay: replay {entry['replay_of']} instead.")
    try:
        result = await replay(host, entry)
    except ReplayRefused as refusal:
        return await problem(409, "Not replayable", str(refusal))
    return redirect(url_for("lily_console.webhook", delivery_id=result["id"], replay_of=delivery_id), 303)


@console.get("/webhooks/replay")
async def bulk_replay_preview() -> Response:
    host = current_host()
    filters = _webhook_filters()
    filters.setdefault("outcome", "error")
    if "since" not in filters:
        filters["since"] = parse_since("1h")
    candidates, matched = await data.bulk_candidates(host, filters, fetch=False)
    return await page(
        "replay.html",
        matched=matched,
        count=len(candidates),
        args={**request.args, "outcome": filters["outcome"], "since": request.args.get("since") or "1h"},
        integrations=data.integration_names(host),
        outcomes=data.OUTCOMES,
        limit=data.BULK_LIMIT,
    )


@console.post("/webhooks/replay")
async def bulk_replay() -> Any:
    host = current_host()
    form = await request.form
    filters: dict[str, Any] = {}
    for name in ("tenant", "integration", "outcome"):
        if form.get(name):
            filters[name] = form[name]
    for name in ("since", "until"):
        value = _time_arg(form, name)
        if value is not None:
            filters[name] = value
    if "since" not in filters or "outcome" not in filters:
        return await problem(400, "Bad filter", "Bulk replay needs an outcome and a since time.")
    candidates, _matched = await data.bulk_candidates(host, filters, fetch=True)
    expected = form.get("count", "")
    if expected != str(len(candidates)):
        # What would be replayed changed since the operator saw the count: show the new count instead.
        return await problem(409, "Changed", f"{len(candidates)} deliveries match now, not {expected}: look again.")
    results = []
    for entry in reversed(candidates):  # oldest first, as they arrived
        try:
            results.append(await replay(host, entry))
        except ReplayRefused as refusal:
            results.append({"replay_of": entry["id"], "outcome": "refused", "reason": str(refusal), "id": ""})
    return await page("replayed.html", results=results)


# --- trace --------------------------------------------------------------------------------------------


@console.get("/trace")
async def trace() -> Response:
    ident = (request.args.get("id") or "").strip()
    if not ident:
        return await page("trace.html", ident="", trace=None, timeline=[])
    if len(ident) > 300:
        raise BadFilter("that id is too long")
    found = await assemble(current_host(), ident)
    if found is None:
        return await page("trace.html", status=404, ident=ident, trace=None, timeline=[])
    return await page("trace.html", ident=ident, trace=found, timeline=data.timeline(found))


# --- tasks --------------------------------------------------------------------------------------------


@console.get("/tasks")
async def tasks() -> Response:
    host = current_host()
    state = request.args.get("state", "dead")
    if state not in ("dead", "due", "in_flight"):
        raise BadFilter("state is dead, due or in_flight")
    found = await host.queue.list_tasks(state, PAGE_SIZE)  # type: ignore[arg-type]
    stats = await host.queue.stats(ready_by_type=False)
    return await page("tasks.html", state=state, tasks=found, stats=stats, flash=request.args.get("done"))


@console.get("/tasks/<path:task_id>")
async def task(task_id: str) -> Response:
    view = await task_view(current_host(), task_id)
    if view is None:
        return await problem(404, "Not found", f"No task {task_id} (finished tasks are kept for LILY_TRACE_DAYS).")
    return await page("task.html", t=view, payload=json.dumps(data.masked(view.get("payload")), indent=2))


@console.post("/tasks/<path:task_id>/retry")
async def retry_task(task_id: str) -> Any:
    if not await current_host().queue.retry_dead(task_id):
        return await problem(409, "Not dead", f"{task_id} is not a dead task.")
    return redirect(url_for("lily_console.tasks", state="dead", done=f"Retrying {task_id}"), 303)


@console.post("/tasks/<path:task_id>/purge")
async def purge_task(task_id: str) -> Any:
    if not await data.purge_dead_task(current_host(), task_id):
        return await problem(409, "Not dead", f"{task_id} is not a dead task.")
    return redirect(url_for("lily_console.tasks", state="dead", done=f"Purged {task_id}"), 303)


@console.post("/tasks/retry-all")
async def retry_all() -> Any:
    count = await current_host().queue.retry_dead(all_dead=True)
    return redirect(url_for("lily_console.tasks", state="dead", done=f"Retrying {count} dead task(s)"), 303)


# --- tenants ------------------------------------------------------------------------------------------


@console.get("/tenants")
async def tenants() -> Response:
    search = (request.args.get("q") or "").strip().lower()
    raw_page = request.args.get("page") or "1"
    if not raw_page.isdigit() or int(raw_page) < 1:
        raise BadFilter("page is a whole number from 1")
    listing = await data.tenant_page(current_host(), search, int(raw_page), PAGE_SIZE)
    return await page("tenants.html", q=search, **listing)


@console.get("/tenants/<tenant_id>")
async def tenant(tenant_id: str) -> Response:
    found = await data.tenant_detail(current_host(), tenant_id)
    if found is None:
        return await problem(404, "Not found", f"No tenant {tenant_id}.")
    return await page("tenant.html", **found)


# --- audit --------------------------------------------------------------------------------------------


@console.get("/audit")
async def audit() -> Response:
    args = request.args
    entries, cursor = await current_host().audit.list(
        tenant=(args.get("tenant") or "").strip() or None,
        actor=(args.get("actor") or "").strip() or None,
        action=(args.get("action") or "").strip() or None,
        since=_time_arg(args, "since"),
        before=args.get("before") or None,
        limit=PAGE_SIZE,
    )
    return await page("audit.html", entries=entries, cursor=cursor, args=args)


# --- development ----------------------------------------------------------------------------------------


@console.get("/outbox")
async def outbox() -> Response:
    host: Host = current_host()
    if host.settings.is_production:
        return await problem(404, "Not found", "The outbox exists only in development.")
    texts = await data.outbox(host, PAGE_SIZE)
    return await page("outbox.html", messages=texts["sent"], held=texts["held"])
