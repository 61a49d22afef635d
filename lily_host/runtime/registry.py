"""Plugin discovery, isolation and registration.

Plugins are found through the ``lily.plugins`` entry-point group and loaded one at a time: one that
fails to import, declares an unknown hook or raises while registering is marked ``failed`` and the
host runs without it (``LILY_STRICT_PLUGINS=1`` makes that fatal). Built-in behaviour (the
automations, the dev outbox) is registered exactly the same way, from modules named in BUILTINS.

Each registration hook is called once per plugin with a ``register`` callback bound to that
plugin, so the host records who registered what, and a collision names both plugins.
"""

from __future__ import annotations

import enum
import functools
import importlib
import importlib.metadata
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol

import pluggy
from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings

from lily_host.config.host_settings import HostSettings
from lily_host.config.settings_errors import describe
from lily_host.config.settings_introspection import missing_env_names, settings_with_dev_values
from lily_host.observability.log import get_logger
from lily_host.plugin_api import hookspecs
from lily_host.plugin_api.contract import (
    Capability,
    EventSubscription,
    HealthCheck,
    Routes,
    Simulation,
    TaskHandler,
    TenantHealthCheck,
    WebhookEndpoint,
)
from lily_host.plugin_api.errors import ConfigurationError
from lily_host.plugin_api.versions import HOST_VERSION, OLDEST_SUPPORTED_API_VERSION, PLUGIN_API_VERSION

ENTRY_POINT_GROUP = "lily.plugins"

#: Host built-ins, registered like plugins. Names are prefixed ``lily.`` so they never clash.
BUILTINS: tuple[tuple[str, str], ...] = (
    ("lily.core", "lily_host.builtins.core"),
    ("lily.messaging", "lily_host.builtins.sms_keywords"),
    ("lily.missed_call", "lily_host.builtins.missed_call"),
    ("lily.reviews", "lily_host.builtins.reviews_plugin"),
    ("lily.bookings", "lily_host.builtins.booking_messages"),
    ("lily.conversations", "lily_host.builtins.conversation_inbox"),
    ("lily.reminders", "lily_host.builtins.appointment_reminders"),
    ("lily.quotes", "lily_host.builtins.quote_texts"),
    ("lily.review_followups", "lily_host.builtins.review_followups"),
    # Registered from web/: its development routes are guarded by the admin token (web.api_auth).
    ("lily.simulations", "lily_host.web.flow_simulations"),
    ("lily.erasure", "lily_host.builtins.tenant_erasure"),
)

log = get_logger("lily.plugins")


class PluginState(enum.StrEnum):
    LOADED = "loaded"
    NOT_CONFIGURED = "not_configured"
    FAILED = "failed"
    DISABLED = "disabled"
    #: Written for a plugin API this host does not offer (``LILY_PLUGIN_API``); ``error`` names both.
    INCOMPATIBLE = "incompatible"


class StartupError(ConfigurationError):
    """Two plugins claim the same thing, or strict mode met a broken plugin."""


class EntryPointLike(Protocol):
    name: str

    def load(self) -> Any: ...


@dataclass
class PluginRecord:
    """Everything the host knows about one plugin."""

    name: str
    builtin: bool
    distribution: str | None = None
    version: str | None = None
    #: The plugin API version the plugin declares (``LILY_PLUGIN_API`` in its module; 1 if it does not).
    api_version: int = PLUGIN_API_VERSION
    #: The module the plugin was loaded from (``lily_acme.plugin``), when known.
    source: str | None = None
    state: PluginState = PluginState.LOADED
    error: str | None = None
    missing_settings: list[str] = field(default_factory=list)
    #: Its settings did not validate: its webhooks are still mounted, answering 503 (providers retry).
    settings_invalid: bool = False
    dev_credentials: bool = False
    module: ModuleType | None = None
    settings: BaseSettings | None = None
    settings_model: type[BaseSettings] | None = None
    tenant_settings_model: type[BaseModel] | None = None
    hooks: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)
    subscriptions: list[str] = field(default_factory=list)
    health_checks: list[str] = field(default_factory=list)
    capabilities: list[str] = field(default_factory=list)
    simulations: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.state in (PluginState.LOADED, PluginState.NOT_CONFIGURED)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "builtin": self.builtin,
            "distribution": self.distribution,
            "version": self.version,
            "api_version": self.api_version,
            "state": self.state.value,
            "error": self.error,
            "missing_settings": self.missing_settings,
            "dev_credentials": self.dev_credentials,
            "hooks": self.hooks,
            "tasks": self.tasks,
            "routes": self.routes,
            "subscriptions": self.subscriptions,
            "health_checks": self.health_checks,
            "capabilities": self.capabilities,
        }


class PluginRegistry:
    """Loads plugins and holds what they registered."""

    def __init__(
        self,
        settings: HostSettings,
        *,
        only: Sequence[str] | None = None,
        extra_entry_points: Iterable[EntryPointLike] = (),
        extra_modules: Mapping[str, ModuleType] | None = None,
        builtins: Sequence[tuple[str, str]] = BUILTINS,
        discover: bool = True,
    ) -> None:
        self.settings = settings
        self.only = list(only) if only is not None else settings.plugins
        self.disabled = set(settings.disable_plugins)
        self.strict = settings.strict_plugins
        self.pm = pluggy.PluginManager("lily")
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        self.tasks: dict[str, TaskHandler] = {}
        self.task_owner: dict[str, str] = {}
        self.webhooks: list[tuple[str, WebhookEndpoint]] = []
        self.routes: list[tuple[str, Routes]] = []
        self.subscriptions: list[tuple[str, EventSubscription]] = []
        self.health_checks: list[tuple[str, HealthCheck]] = []
        self.tenant_health_checks: list[tuple[str, TenantHealthCheck]] = []
        self.capabilities: dict[str, list[tuple[str, Capability]]] = {}
        self.simulations: dict[str, tuple[str, Simulation]] = {}
        self._webhook_paths: dict[str, str] = {}
        self._subset_callers: dict[tuple[str, str], Any] = {}
        if settings.trace_hooks:
            # Explicitly asked for, so written whatever the log level: one stderr line per call and result.
            self.pm.trace.root.setwriter(lambda message: sys.stderr.write(f"lily hook trace: {message}"))
            self.pm.enable_tracing()

        for name, module_name in builtins:
            self._load(name, functools.partial(importlib.import_module, module_name), builtin=True)
        entry_points: list[EntryPointLike] = []
        if discover:
            entry_points.extend(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
        for entry_point in sorted(entry_points, key=lambda ep: ep.name):
            self._load(entry_point.name, entry_point.load, builtin=False, entry_point=entry_point)
        # Extras are what a test or an embedding program asked for by hand: LILY_PLUGINS does not filter them.
        for entry_point in extra_entry_points:
            self._load(entry_point.name, entry_point.load, builtin=False, entry_point=entry_point, explicit=True)
        for name, module in (extra_modules or {}).items():
            self._load(name, functools.partial(_identity, module), builtin=False, explicit=True)
        self._configure_all()
        self._collect_all()

    # --- loading ---------------------------------------------------------------------------------

    def _load(
        self,
        name: str,
        loader: Callable[[], Any],
        *,
        builtin: bool,
        entry_point: EntryPointLike | None = None,
        explicit: bool = False,
    ) -> None:
        source = _source_of(loader, entry_point)
        previous = self.records.get(name)
        if previous is not None:
            if not self._same_plugin_again(previous, source, explicit=explicit):
                raise StartupError(f"two plugins are named {name!r}; uninstall one of them")
            if previous.module is not None:
                return  # already loaded from its entry point: one plugin, loaded once
            del self.records[name]  # the installed copy was skipped (LILY_PLUGINS): load the asked-for one
        record = PluginRecord(name=name, builtin=builtin, source=source)
        self.records[name] = record
        distribution = getattr(entry_point, "dist", None)
        if distribution is not None:
            record.distribution = distribution.name
            record.version = distribution.version
        elif previous is not None:
            record.distribution, record.version = previous.distribution, previous.version
        if not builtin and not explicit and self.only is not None and name not in self.only:
            record.state = PluginState.DISABLED
            record.error = "not listed in LILY_PLUGINS"
            return
        if name in self.disabled:
            record.state = PluginState.DISABLED
            record.error = "listed in LILY_DISABLE_PLUGINS"
            return
        try:
            module = loader()
        except Exception as error:  # any import-time failure must not take the host down
            self._fail(record, f"failed to import: {type(error).__name__}: {error}")
            return
        record.module = module
        if not builtin and not self._check_api_version(record, module):
            return
        if builtin and record.version is None:
            record.distribution, record.version = "lily-host", HOST_VERSION
        try:
            self.pm.register(module, name=name)
        except (pluggy.PluginValidationError, ValueError) as error:
            self._fail(record, f"invalid hook implementation: {error}")
            return
        unknown = [caller.name for caller in self.pm.get_hookcallers(module) or [] if not caller.has_spec()]
        if unknown:
            self.pm.unregister(module)
            self._fail(record, f"implements unknown hook(s) {', '.join(sorted(unknown))} (misspelled?)")
            return
        self._subset_callers.clear()
        both = _wraps_and_implements(self.pm, module)
        if both:
            self.pm.unregister(module)
            self._fail(record, f"both wraps and implements hook(s) {', '.join(both)}: use two plugins")
            return
        record.hooks = sorted(caller.name for caller in self.pm.get_hookcallers(module) or [])

    def _check_api_version(self, record: PluginRecord, module: Any) -> bool:
        """Whether the host offers the plugin API version the plugin was written for."""
        declared = getattr(module, "LILY_PLUGIN_API", None)
        if declared is None:
            declared = 1  # plugins from before the API was versioned
            log.info("plugin declares no LILY_PLUGIN_API; taken as 1", plugin=record.name)
        if not isinstance(declared, int) or isinstance(declared, bool):
            self._fail(record, f"LILY_PLUGIN_API must be a whole number, not {declared!r}")
            return False
        record.api_version = declared
        if OLDEST_SUPPORTED_API_VERSION <= declared <= PLUGIN_API_VERSION:
            return True
        if declared > PLUGIN_API_VERSION:
            why = (
                f"needs plugin API {declared}; lily-host {HOST_VERSION} offers API {PLUGIN_API_VERSION}: "
                "upgrade lily-host"
            )
        else:
            why = (
                f"was written for plugin API {declared}; lily-host {HOST_VERSION} offers API "
                f"{OLDEST_SUPPORTED_API_VERSION}-{PLUGIN_API_VERSION}: upgrade the plugin"
            )
        record.state = PluginState.INCOMPATIBLE
        record.error = why
        log.error("plugin incompatible", plugin=record.name, error=why)
        if self.strict:
            raise StartupError(f"plugin {record.name!r} {why} (LILY_STRICT_PLUGINS is on)")
        return False

    def _same_plugin_again(self, existing: PluginRecord, source: str | None, *, explicit: bool) -> bool:
        """Whether a second load under a taken name is the same plugin module, asked for by hand.

        A plugin's own tests load it with ``extra_modules=`` and, once it is pip-installed, its entry
        point finds the same module again: that is one plugin, not a clash.
        """
        return explicit and not existing.builtin and source is not None and source == existing.source

    def _fail(self, record: PluginRecord, message: str) -> None:
        record.state = PluginState.FAILED
        record.error = message
        log.error("plugin failed", plugin=record.name, error=message)
        if self.strict:
            raise StartupError(f"plugin {record.name!r} {message} (LILY_STRICT_PLUGINS is on)")

    def _call(self, record: PluginRecord, hook_name: str, **kwargs: Any) -> Any:
        """Call one plugin's implementation of a hook through pluggy, with the other plugins' wrappers.

        The call goes through pluggy's hook machinery (so ``LILY_TRACE_HOOKS=1`` traces it and hook
        wrappers of any plugin wrap it), restricted to this plugin's implementation: the host keeps
        per-plugin isolation (a plugin that fails is marked, the others go on) and knows who
        registered what. Returns that implementation's result, or None.
        """
        if record.module is None or not self.pm.is_registered(record.module):
            return None
        caller = self._subset_callers.get((hook_name, record.name))
        if caller is None:
            hook = getattr(self.pm.hook, hook_name)
            if not any(
                impl.plugin_name == record.name and not (impl.hookwrapper or impl.wrapper)
                for impl in hook.get_hookimpls()
            ):
                return None  # the plugin does not implement it: nothing to call, nothing to wrap
            keep = {record.name}
            keep.update(impl.plugin_name for impl in hook.get_hookimpls() if impl.hookwrapper or impl.wrapper)
            others = [plugin for name, plugin in self.pm.list_name_plugin() if name not in keep]
            caller = self.pm.subset_hook_caller(hook_name, remove_plugins=others)
            self._subset_callers[(hook_name, record.name)] = caller
        results = caller(**kwargs)
        return results[0] if results else None

    # --- settings --------------------------------------------------------------------------------

    def _configure_all(self) -> None:
        for record in self.records.values():
            if record.state != PluginState.LOADED:
                continue
            try:
                self._configure(record)
            except StartupError:
                raise
            except Exception as error:
                self._fail(record, f"failed while registering settings: {type(error).__name__}: {error}")

    def _configure(self, record: PluginRecord) -> None:
        def register_settings(model: type[BaseSettings]) -> None:
            if not (isinstance(model, type) and issubclass(model, BaseSettings)):
                raise TypeError("register_settings expects a pydantic-settings BaseSettings subclass")
            record.settings_model = model

        def register_tenant_settings(model: type[BaseModel]) -> None:
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                raise TypeError("register_tenant_settings expects a pydantic BaseModel subclass")
            record.tenant_settings_model = model

        self._call(record, "register_settings", register=register_settings)
        self._call(record, "register_tenant_settings", register=register_tenant_settings)
        if record.settings_model is None:
            return
        dev_env = getattr(record.settings_model, "lily_dev_env", None)
        try:
            record.settings = record.settings_model()
        except ValidationError as error:
            missing = missing_env_names(record.settings_model, error)
            if missing and self.settings.dev_credentials and isinstance(dev_env, Mapping):
                record.settings = self._configure_with_dev_env(record, dev_env)
                if record.settings is not None:
                    return
            if missing and len(missing) == len(error.errors()):
                record.state = PluginState.NOT_CONFIGURED
                record.missing_settings = missing
                log.info("plugin not configured", plugin=record.name, missing=", ".join(missing))
            else:
                record.settings_invalid = True
                self._fail(record, f"invalid settings: {describe(record.settings_model, error)}")

    def _configure_with_dev_env(self, record: PluginRecord, dev_env: Mapping[str, str]) -> BaseSettings | None:
        """``lily dev``: fill a plugin's missing settings with its documented development values."""
        assert record.settings_model is not None
        settings = settings_with_dev_values(record.settings_model, dev_env)
        if settings is not None:
            record.dev_credentials = True
            log.info("plugin uses development credentials", plugin=record.name)
        return settings

    # --- registration ------------------------------------------------------------------------------

    def _collect_all(self) -> None:
        for record in self.records.values():
            if record.settings_invalid and record.state == PluginState.FAILED:
                self._mount_refusing_webhooks(record)
            if not record.active:
                continue
            try:
                self._collect(record)
            except StartupError:
                raise
            except Exception as error:
                self._fail(record, f"failed while registering: {type(error).__name__}: {error}")
                self._forget(record)
        self._check_subscriptions()

    def _mount_refusing_webhooks(self, record: PluginRecord) -> None:
        """A plugin whose settings are invalid keeps its webhook paths, answering 503 with a logged
        reason: a 404 would tell the provider the URL is wrong, and log nothing here."""
        try:
            self._call(
                record,
                "register_webhooks",
                register=lambda endpoint: self._add_webhook(record, endpoint),
                settings=None,
            )
        except StartupError:
            raise
        except Exception as error:  # it is failed already; its webhooks then answer 404
            log.warning("failed plugin's webhooks not mounted", plugin=record.name, error=str(error))
            self.webhooks = [(owner, item) for owner, item in self.webhooks if owner != record.name]

    def _collect(self, record: PluginRecord) -> None:
        configured = record.state == PluginState.LOADED
        settings = record.settings
        self._call(
            record, "register_tasks", register=lambda handler: self._add_task(record, handler), settings=settings
        )
        self._call(
            record,
            "register_webhooks",
            register=lambda endpoint: self._add_webhook(record, endpoint),
            settings=settings,
        )
        self._call(
            record, "register_routes", register=lambda routes: self._add_routes(record, routes), settings=settings
        )
        self._call(
            record,
            "register_event_subscriptions",
            register=lambda subscription: self._add_subscription(record, subscription),
            settings=settings,
        )
        if configured:
            self._call(
                record,
                "register_health_checks",
                register=lambda check: self._add_health(record, check),
                settings=settings,
            )
            if not record.dev_credentials:
                self._call(
                    record,
                    "register_capabilities",
                    register=lambda capability: self._add_capability(record, capability),
                    settings=settings,
                )
            self._call(
                record,
                "register_simulations",
                register=lambda simulation: self._add_simulation(record, simulation),
                settings=settings,
            )

    def _add_task(self, record: PluginRecord, handler: TaskHandler) -> None:
        if not isinstance(handler, TaskHandler):
            raise TypeError("register_tasks expects TaskHandler objects")
        owner = self.task_owner.get(handler.name)
        if owner is not None:
            raise StartupError(
                f"task name {handler.name!r} is registered by both plugin {owner!r} and plugin {record.name!r}"
            )
        self.tasks[handler.name] = handler
        self.task_owner[handler.name] = record.name
        record.tasks.append(handler.name)

    def _add_webhook(self, record: PluginRecord, endpoint: WebhookEndpoint) -> None:
        if not isinstance(endpoint, WebhookEndpoint):
            raise TypeError("register_webhooks expects WebhookEndpoint instances")
        path = endpoint.path
        owner = self._webhook_paths.get(path)
        if owner is not None:
            raise StartupError(f"webhook path {path} is registered by both plugin {owner!r} and plugin {record.name!r}")
        self._webhook_paths[path] = record.name
        self.webhooks.append((record.name, endpoint))
        record.routes.append(f"POST {path}")

    def _add_routes(self, record: PluginRecord, routes: Routes) -> None:
        if not isinstance(routes, Routes):
            raise TypeError("register_routes expects Routes objects")
        self.routes.append((record.name, routes))

    def _add_subscription(self, record: PluginRecord, subscription: EventSubscription) -> None:
        if not isinstance(subscription, EventSubscription):
            raise TypeError("register_event_subscriptions expects EventSubscription objects")
        self.subscriptions.append((record.name, subscription))
        record.subscriptions.append(f"{subscription.event} -> {subscription.task}")

    def _add_health(self, record: PluginRecord, check: HealthCheck | TenantHealthCheck) -> None:
        if isinstance(check, TenantHealthCheck):
            self.tenant_health_checks.append((record.name, check))
        elif isinstance(check, HealthCheck):
            self.health_checks.append((record.name, check))
        else:
            raise TypeError("register_health_checks expects HealthCheck or TenantHealthCheck objects")
        record.health_checks.append(check.name)

    def _add_capability(self, record: PluginRecord, capability: Capability) -> None:
        if not isinstance(capability, Capability):
            raise TypeError("register_capabilities expects Capability objects")
        self.capabilities.setdefault(capability.name, []).append((record.name, capability))
        record.capabilities.append(capability.name)

    def _add_simulation(self, record: PluginRecord, simulation: Simulation) -> None:
        owner = self.simulations.get(simulation.name)
        if owner is not None:
            raise StartupError(
                f"simulation {simulation.name!r} is registered by both plugin {owner[0]!r} and plugin {record.name!r}"
            )
        self.simulations[simulation.name] = (record.name, simulation)
        record.simulations.append(simulation.name)

    def _forget(self, record: PluginRecord) -> None:
        """Drop everything a plugin registered before it failed, so no half-registered plugin runs."""
        for task in record.tasks:
            self.tasks.pop(task, None)
            self.task_owner.pop(task, None)
        self.webhooks = [(owner, item) for owner, item in self.webhooks if owner != record.name]
        self._webhook_paths = {path: owner for path, owner in self._webhook_paths.items() if owner != record.name}
        self.routes = [(owner, item) for owner, item in self.routes if owner != record.name]
        self.subscriptions = [(owner, item) for owner, item in self.subscriptions if owner != record.name]
        self.health_checks = [(owner, item) for owner, item in self.health_checks if owner != record.name]
        self.tenant_health_checks = [(o, item) for o, item in self.tenant_health_checks if o != record.name]
        for name, providers in list(self.capabilities.items()):
            self.capabilities[name] = [(owner, item) for owner, item in providers if owner != record.name]
        self.simulations = {name: item for name, item in self.simulations.items() if item[0] != record.name}
        if record.module is not None and self.pm.is_registered(record.module):
            self.pm.unregister(record.module)
            self._subset_callers.clear()
        record.tasks, record.routes, record.subscriptions = [], [], []
        record.health_checks, record.capabilities, record.simulations = [], [], []

    def _check_subscriptions(self) -> None:
        for owner, subscription in self.subscriptions:
            if subscription.task not in self.tasks:
                log.warning(
                    "event subscription names an unknown task",
                    plugin=owner,
                    event_name=subscription.event,
                    task_type=subscription.task,
                )

    # --- views ----------------------------------------------------------------------------------------

    @property
    def tenant_models(self) -> dict[str, type[BaseModel]]:
        return {
            name: record.tenant_settings_model
            for name, record in self.records.items()
            if record.active and record.tenant_settings_model is not None
        }

    def record_for(self, name: str) -> PluginRecord:
        return self.records[name]

    def listing(self) -> list[dict[str, Any]]:
        return [record.as_dict() for record in self.records.values()]

    def module_of(self, name: str) -> ModuleType | None:
        return self.records[name].module if name in self.records else None

    def active_modules(self) -> list[ModuleType]:
        return [r.module for r in self.records.values() if r.active and r.module is not None]


def _identity(module: ModuleType) -> ModuleType:
    return module


def _source_of(loader: Callable[[], Any], entry_point: EntryPointLike | None) -> str | None:
    """The module a plugin comes from, without importing it: the entry point's value, or the module given."""
    value = getattr(entry_point, "value", None)
    if isinstance(value, str):
        return value.partition(":")[0].strip() or None
    if isinstance(loader, functools.partial) and loader.func is _identity and loader.args:
        module = loader.args[0]
        return getattr(module, "__name__", None)
    return None


def _wraps_and_implements(pm: pluggy.PluginManager, module: Any) -> list[str]:
    """Hooks that ``module`` both wraps and implements plainly (its wrapper would wrap every
    plugin's call of the hook, its own plain implementation included, once per plugin)."""
    both = []
    for caller in pm.get_hookcallers(module) or []:
        mine = [impl for impl in caller.get_hookimpls() if impl.plugin is module]
        if any(impl.hookwrapper or impl.wrapper for impl in mine) and any(
            not (impl.hookwrapper or impl.wrapper) for impl in mine
        ):
            both.append(caller.name)
    return sorted(both)
