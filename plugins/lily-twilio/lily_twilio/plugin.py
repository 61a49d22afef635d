"""lily-twilio's hook implementations."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel
from pydantic_settings import BaseSettings

from lily_host import Capability, HealthCheck, Simulation, TaskHandler, WebhookEndpoint, hookimpl
from lily_twilio.channel import TwilioSmsChannel
from lily_twilio.health import account_check
from lily_twilio.settings import TwilioSettings, TwilioTenantSettings
from lily_twilio.simulations import simulations
from lily_twilio.tasks import STATUS_TASK, record_message_status
from lily_twilio.webhooks import SmsWebhook, StatusWebhook, VoiceWebhook

#: The plugin API version this plugin is written for (docs/api.md, "Versions").
LILY_PLUGIN_API = 2


@hookimpl
def register_settings(register: Callable[[type[BaseSettings]], None]) -> None:
    register(TwilioSettings)


@hookimpl
def register_tenant_settings(register: Callable[[type[BaseModel]], None]) -> None:
    register(TwilioTenantSettings)


@hookimpl
def register_webhooks(register: Callable[[WebhookEndpoint], None]) -> None:
    register(VoiceWebhook())
    register(SmsWebhook())
    register(StatusWebhook())


@hookimpl
def register_tasks(register: Callable[[TaskHandler], None]) -> None:
    register(TaskHandler(STATUS_TASK, record_message_status))


@hookimpl
def register_capabilities(register: Callable[[Capability], None], settings: TwilioSettings) -> None:
    register(Capability("sms", TwilioSmsChannel(settings)))


@hookimpl
def register_health_checks(register: Callable[[HealthCheck], None], settings: TwilioSettings) -> None:
    register(HealthCheck("twilio.account", account_check(settings)))


@hookimpl
def register_simulations(register: Callable[[Simulation], None], settings: TwilioSettings) -> None:
    for simulation in simulations(settings):
        register(simulation)
