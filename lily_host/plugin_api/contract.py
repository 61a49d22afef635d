"""The declarative objects plugins hand the host through the registration hooks.

Everything a plugin contributes is one of these: a webhook endpoint, a set of routes, a task
handler, an event subscription, a health check, a settings model, a capability provider or a
CLI command. The host records which plugin registered each one.
"""

from __future__ import annotations

import abc
import contextlib
import enum
import secrets
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from lily_host.plugin_api.deprecation import warn_deprecated
from lily_host.plugin_api.forms import parse_form
from lily_host.plugin_api.versions import PLUGIN_API_VERSION

if TYPE_CHECKING:
    import structlog
    from quart import Blueprint, Response

    from lily_host.plugin_api.host_api import LilyHost, TenantDirectory
    from lily_host.plugin_api.tenant import Tenant


# --- tasks -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How a failing task is retried: exponential backoff with full jitter, capped.

    Attempt ``n`` (1-based) that fails waits ``min(cap, base * 2 ** (n - 1))`` seconds plus up to
    ``jitter`` of that (tenacity's ``wait_exponential`` + ``wait_random``) before attempt ``n + 1``.
    """

    max_attempts: int = 5
    backoff_base: float = 2.0
    backoff_cap: float = 600.0
    jitter: float = 1.0


#: Schedules one task: ``(task_type, payload, **options)`` → task id, or None when deduplicated.
ScheduleFunc = Callable[..., Awaitable["str | None"]]


@dataclass
class TaskContext:
    """What a task handler gets besides its payload. Attributes, one by one, in docs/api.md."""

    #: This task's id (``lily tasks show ID``).
    task_id: str
    #: The registered task type (``twilio.send_sms``).
    task_type: str
    #: The tenant the task was scheduled for, or None for a host-wide task.
    tenant_id: str | None
    #: 1 on the first run; counted when the task is claimed.
    attempt: int
    #: The task type's ``RetryPolicy.max_attempts``.
    max_attempts: int
    #: When the task was first due (seconds since the epoch).
    first_due: float
    #: A logger bound to this task (task id, type, tenant, attempt).
    log: structlog.stdlib.BoundLogger
    #: The host (:class:`~lily_host.LilyHost`).
    host: LilyHost
    #: Schedules follow-up tasks (injected by the host; use :meth:`schedule`).
    schedule_task: ScheduleFunc | None = field(repr=False, default=None)
    #: The tenant record behind :attr:`tenant` (read :attr:`tenant`).
    tenant_record: Tenant | None = field(repr=False, default=None)
    #: The plugin that registered this task type, and the plugin API version it declared.
    plugin: str | None = None
    plugin_api: int = PLUGIN_API_VERSION
    #: The id of the webhook delivery this task descends from (``lily trace`` follows it), if any.
    delivery: str | None = None

    @property
    def tenant(self) -> Tenant | None:
        """The tenant (with this plugin's ``plugin_settings``), or None: host-wide task, or the tenant is gone.

        Deprecated behaviour, kept for one version: a plugin declaring API 1 gets the tenant *id* here,
        as API 1 did, and one warning naming the plugin (use :attr:`tenant_id`).
        """
        if self.plugin_api < 2:
            warn_deprecated(
                self.plugin,
                "TaskContext.tenant",
                "is the Tenant since plugin API 2; read ctx.tenant_id for the id (declare LILY_PLUGIN_API = 2)",
            )
            return self.tenant_id  # type: ignore[return-value]
        return self.tenant_record

    def now(self) -> float:
        """The host clock's time (seconds since the epoch)."""
        return self.host.clock.now()

    async def schedule(self, task_type: str, payload: Mapping[str, Any], **options: Any) -> str | None:
        """Schedule a follow-up task now (the same tenant unless ``tenant=`` says otherwise).

        Options: ``delay=`` seconds or ``run_at=`` epoch seconds, ``jitter=(low, high)`` seconds added
        at random, ``dedupe_key=`` (no second pending task with the same key), ``tenant=``,
        ``max_attempts=``. The task id, or None when ``dedupe_key`` matched a pending task.
        """
        options.setdefault("tenant", self.tenant_id)
        options.setdefault("delivery", self.delivery)
        schedule = self.schedule_task if self.schedule_task is not None else self.host.schedule
        return await schedule(task_type, payload, **options)


TaskFunc = Callable[[TaskContext, dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class TaskHandler:
    """A named task type and the async function that runs it.

    ``name`` is global: prefix it with the plugin name (``twilio.send_sms``). A handler may be
    run more than once for one task (at-least-once delivery): make it idempotent.
    ``tenant_gated`` tasks wait (are deferred, not failed) while their tenant's subscription
    pauses automations.
    """

    name: str
    func: TaskFunc
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    tenant_gated: bool = False


@dataclass(frozen=True)
class EventSubscription:
    """Run task ``task`` (registered by anyone) with the event's data whenever ``event`` is emitted.

    Each subscription becomes its own task, so one slow consumer never blocks another.
    """

    event: str
    task: str


# --- webhooks ----------------------------------------------------------------------------------


class RequestHeaders(Mapping[str, str]):
    """A webhook request's headers: names match case-insensitively; a repeated header reads as its
    first value (``getlist`` has them all). What ``WebhookRequest.headers`` is, on either door."""

    __slots__ = ("_first", "_pairs")

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._pairs = list(pairs)
        first: dict[str, str] = {}
        for name, value in self._pairs:
            first.setdefault(name.lower(), value)
        self._first = first

    @classmethod
    def from_asgi(cls, raw: Iterable[tuple[bytes, bytes]]) -> RequestHeaders:
        """From an ASGI scope's headers (servers send names lower-cased; latin-1 is HTTP's charset)."""
        return cls([(name.decode("latin-1"), value.decode("latin-1")) for name, value in raw])

    def __getitem__(self, name: str) -> str:
        return self._first[name.lower()]

    def get(self, name: str, default: Any = None) -> Any:  # one dict look-up, no KeyError on the way
        return self._first.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)

    def pairs(self) -> list[tuple[str, str]]:
        """Every (name, value) as the request had them, repeated names included."""
        return list(self._pairs)

    def getlist(self, name: str) -> list[str]:
        lowered = name.lower()
        return [value for key, value in self._pairs if key.lower() == lowered]

    def __repr__(self) -> str:  # names only: values carry signatures and tokens
        return f"RequestHeaders({sorted(self._first)})"


@dataclass(frozen=True, slots=True)
class WebhookResponse:
    """A webhook's answer without Quart: status, body and content type.

    Immutable, so one instance can answer every request (Twilio's empty TwiML, a JSON ``ok``): the
    host's front door sends it as it is, where a Quart ``Response`` is built, rendered and copied
    per request. ``handle`` and ``duplicate_response`` may return either.
    """

    body: bytes = b""
    status: int = 200
    content_type: str = "application/json"
    #: Headers beyond content type and length (e.g. ``Lily-Outcome: duplicate``, or
    #: ``(("Retry-After", "5"),)`` on a 429 or 503).
    headers: tuple[tuple[str, str], ...] = ()
    #: The ASGI header list, built once.
    asgi_headers: tuple[tuple[bytes, bytes], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        headers = ((b"content-type", self.content_type.encode("latin-1")), (b"content-length", b"%d" % len(self.body)))
        extra = tuple((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in self.headers)
        object.__setattr__(self, "asgi_headers", headers + extra)

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: tuple[tuple[str, str], ...] = ()) -> WebhookResponse:
        import json

        return cls(json.dumps(data).encode(), status, "application/json", headers)

    def to_quart(self) -> Response:
        from quart import Response

        return Response(self.body, status=self.status, content_type=self.content_type, headers=dict(self.headers))


@dataclass
class WebhookRequest:
    """An inbound webhook as the pipeline saw it: raw bytes first, parsed views on demand."""

    method: str
    path: str
    query_string: str
    public_url: str
    headers: Mapping[str, str]
    body: bytes
    content_type: str
    path_params: Mapping[str, str]
    settings: Any
    _form: dict[str, str] | None = None
    _form_lists: dict[str, list[str]] | None = None

    def form(self) -> dict[str, str]:
        """The url-encoded body as a dict (first value of each name)."""
        if self._form is None:
            self._form = {name: values[0] for name, values in self.form_lists().items()}
        return self._form

    def form_lists(self) -> dict[str, list[str]]:
        """The url-encoded body with every value of every name (signature schemes sign them all)."""
        if self._form_lists is None:
            self._form_lists = parse_form(self.body)
        return self._form_lists

    def json(self) -> Any:
        """The JSON body; a malformed, too deep or not-UTF-8 one raises InvalidPayload (400)."""
        from lily_host.plugin_api.errors import InvalidPayload
        from lily_host.plugin_api.untrusted import UntrustedInput, loads_json

        try:
            return loads_json(self.body)
        except UntrustedInput as error:
            raise InvalidPayload(str(error)) from error


#: Builds the tasks that deliver an event: ``(event, data, tenant=)`` → task descriptions.
FanoutFunc = Callable[..., "list[dict[str, Any]]"]
#: Whether a delivery id was committed before: ``(integration, delivery_id)`` → bool.
SeenBeforeFunc = Callable[[str, str], Awaitable[bool]]


class WebhookContext:
    """What an endpoint's ``handle`` may do: emit events and schedule tasks. Attributes in docs/api.md.

    Nothing is written while ``handle`` runs; the pipeline commits the idempotency key and every
    task in one atomic Redis step after ``handle`` returns, so a duplicate delivery schedules
    nothing and a crash schedules nothing half-way. That is why :meth:`schedule` and :meth:`emit`
    are not awaited: they *defer* the work to the commit.
    """

    def __init__(
        self,
        *,
        host: LilyHost,
        tenant: Tenant | None,
        integration: str,
        delivery_id: str | None,
        log: structlog.stdlib.BoundLogger,
        fanout: FanoutFunc,
        seen_before: SeenBeforeFunc,
        record_id: str | None = None,
    ) -> None:
        #: The host (:class:`~lily_host.LilyHost`).
        self.host = host
        #: The tenant the delivery resolved to (with this plugin's ``plugin_settings``), or None.
        self.tenant = tenant
        #: The integration label (metrics, logs, idempotency scope).
        self.integration = integration
        #: The provider's id of this delivery (``WebhookEndpoint.delivery_id``), or None.
        self.delivery_id = delivery_id
        #: The id of this delivery's record in the webhook log (``lily trace``), carried by its tasks.
        self.record_id = record_id
        #: A logger bound to this delivery.
        self.log = log
        #: The tasks this delivery will commit (read-only for plugins).
        self.pending: list[dict[str, Any]] = []
        self._fanout = fanout
        self._seen_before = seen_before

    def now(self) -> float:
        """The host clock's time (seconds since the epoch)."""
        return self.host.clock.now()

    def emit(self, event: str, data: Mapping[str, Any]) -> None:
        """Deliver ``event`` to its subscribers (one task each) for this request's tenant, at commit."""
        tasks = self._fanout(event, data, tenant=self.tenant_id)
        if self.record_id:
            for task in tasks:
                task["delivery"] = self.record_id
        self.pending.extend(tasks)

    def schedule(self, task_type: str, payload: Mapping[str, Any], **options: Any) -> None:
        """Schedule a task at commit (deferred: nothing is written until ``handle`` returns).

        Options as :meth:`TaskContext.schedule`: ``delay=``, ``run_at=``, ``jitter=``, ``dedupe_key=``,
        ``tenant=``, ``max_attempts=``.
        """
        options.setdefault("tenant", self.tenant_id)
        if self.record_id:
            options.setdefault("delivery", self.record_id)
        self.pending.append({"type": task_type, "payload": dict(payload), **options})

    @property
    def tenant_id(self) -> str | None:
        """The tenant's id, or None."""
        return self.tenant.id if self.tenant is not None else None

    async def seen_before(self) -> bool:
        """Whether this delivery id was already committed, i.e. this request is a duplicate.

        The pipeline itself detects duplicates atomically at commit time; this costs one Redis
        round trip and is only for handlers that want to label their own metrics or answers.
        """
        if self.delivery_id is None:
            return False
        return await self._seen_before(self.integration, self.delivery_id)


def delivery_guard(integration: str, delivery_id: str) -> str:
    """The queue guard (idempotency key suffix) of one webhook delivery."""
    return f"seen:{integration}:{delivery_id}"


class WebhookEndpoint(abc.ABC):
    """One provider webhook URL. Subclass it; the host runs every request through one pipeline.

    Order: size limit → content type → ``parse`` → ``resolve_tenant`` → ``verify`` → unknown tenant
    → idempotency (``delivery_id``) → ``handle`` → atomic commit. Raise the exceptions of
    :mod:`lily_host.plugin_api.errors` (InvalidPayload, BadSignature, UnknownTenant) for a clean 4xx.
    """

    #: URL rule, e.g. ``/webhooks/twilio/voice``; may hold Quart converters (``<tenant_id>``).
    path: ClassVar[str]
    #: Label in metrics and logs; defaults to the registering plugin's name.
    integration: ClassVar[str | None] = None
    #: Accepted media types (without parameters).
    content_types: ClassVar[tuple[str, ...]] = ("application/json",)
    #: Per-endpoint body limit; ``None`` uses ``LILY_MAX_WEBHOOK_BYTES`` (1 MiB).
    max_body_bytes: ClassVar[int | None] = None
    #: How long a delivery id is remembered, in seconds.
    dedupe_ttl: ClassVar[int] = 3 * 24 * 3600
    #: When False, a request that resolves to no tenant still reaches ``handle`` (tenant=None).
    tenant_required: ClassVar[bool] = True

    def parse(self, request: WebhookRequest) -> Any:
        """Turn the raw body into the endpoint's payload. Raise InvalidPayload when malformed."""
        return request.json()

    async def resolve_tenant(self, request: WebhookRequest, payload: Any, tenants: TenantDirectory) -> Tenant | None:
        """Find the one tenant this delivery belongs to, or None."""
        return None

    @abc.abstractmethod
    def verify(self, request: WebhookRequest, payload: Any, tenant: Tenant | None) -> None:
        """Check the provider's signature over ``request.body``; raise BadSignature if wrong."""

    def delivery_id(self, request: WebhookRequest, payload: Any) -> str | None:
        """A provider-scoped id of this delivery for idempotency, or None to skip deduplication."""
        return None

    async def handle(
        self, request: WebhookRequest, payload: Any, ctx: WebhookContext
    ) -> Response | WebhookResponse | None:
        """Translate the payload into events/tasks via ``ctx``; return a response or None (200 JSON)."""
        return None

    def duplicate_response(self, request: WebhookRequest, payload: Any) -> Response | WebhookResponse | None:
        """Response for a duplicate delivery; None means the same default as ``handle``."""
        return None


# --- routes, health, capabilities, commands -------------------------------------------------------


@dataclass(frozen=True)
class Routes:
    """A Quart blueprint of ordinary routes (APIs, OAuth callbacks).

    Mounted at ``url_prefix`` (default ``/plugins/<plugin>``). While the plugin is not configured,
    every route answers 503 with the missing settings, unless ``always_available``.
    """

    blueprint: Blueprint
    url_prefix: str | None = None
    always_available: bool = False


class HealthState(enum.StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    NOT_CONFIGURED = "not_configured"
    AUTH_FAILED = "auth_failed"
    FAILED = "failed"
    #: Running on development credentials (``lily dev``): working, but nothing reaches a provider.
    DEVELOPMENT = "development"


@dataclass(frozen=True)
class HealthResult:
    state: HealthState
    message: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HealthCheck:
    """An async check: ``func(host)`` returns a HealthResult. Raising counts as failed."""

    name: str
    func: Callable[[LilyHost], Awaitable[HealthResult]]
    timeout: float = 5.0


@dataclass(frozen=True)
class TenantHealthCheck:
    """A provider check of one tenant (its calendar, its account): ``func(host, tenant)``.

    Returns the tenant's entry — a dict with at least ``state`` (a HealthState value, or
    ``not_connected``) and ``message`` — or None when the check does not apply to the tenant.
    The host runs it for each tenant at most every ``LILY_HEALTH_TENANT_INTERVAL`` seconds,
    spread over time and cached in between, so ``/health`` stays cheap with any number of
    tenants. ``summarize``, if given, turns the cached entries (tenant id → entry) into the
    plugin's result; by default any failing tenant degrades the plugin.
    """

    name: str
    func: Callable[[LilyHost, Tenant], Awaitable[Mapping[str, Any] | None]]
    timeout: float = 5.0
    summarize: Callable[[Mapping[str, Mapping[str, Any]]], HealthResult] | None = None


@dataclass(frozen=True)
class Capability:
    """A provider of a named capability (``sms``, ``calendar``, ``storage``) for automations.

    ``provider`` implements the protocol the host documents for that name
    (:mod:`lily_host.plugin_api.capabilities`). Only configured plugins' capabilities are used.
    """

    name: str
    provider: Any
    priority: int = 0


SimulatedRequest = tuple[str, Mapping[str, str], bytes]

_SIMULATION_ID: ContextVar[str | None] = ContextVar("lily_simulation_id", default=None)


@dataclass(frozen=True)
class Simulation:
    """A signed sample request for ``lily simulate NAME`` in development.

    ``build(host, tenant)`` returns (path, headers, body) signed with the configured secrets (or an
    awaitable of it). The delivery's id comes from :func:`simulation_id`: fresh on every run, so a
    simulation is never silently a duplicate, unless ``lily simulate --id`` repeats one.
    """

    name: str
    description: str
    build: Callable[[LilyHost, Tenant], SimulatedRequest | Awaitable[SimulatedRequest]]


def simulation_id(prefix: str = "", nbytes: int = 16) -> str:
    """The id of the delivery being simulated: ``lily simulate --id``'s value, else ``prefix`` + fresh hex."""
    given = _SIMULATION_ID.get()
    return given if given else prefix + secrets.token_hex(nbytes)


@contextlib.contextmanager
def simulation_id_given(value: str | None) -> Iterator[None]:
    """While building a simulation: :func:`simulation_id` returns ``value`` (None: fresh ids)."""
    token = _SIMULATION_ID.set(value)
    try:
        yield
    finally:
        _SIMULATION_ID.reset(token)
