"""The tenant as plugins see it: a business, its settings, and the plugin's own tenant settings.

``Tenant`` is read-only for plugins: the host's tenant store creates and changes records. A tenant
handed to a plugin (``WebhookEndpoint.verify``, ``WebhookContext.tenant``, ``TaskContext.tenant``)
carries that plugin's own tenant settings, decrypted, as ``tenant.plugin_settings``.
"""

from __future__ import annotations

import re
import time
from datetime import time as dt_time
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from lily_host.plugin_api.validators import check_timezone

#: How an encrypted secret is stored (``SecretBox``'s format): never shown, never handed out undecrypted.
STORED_SECRET_PREFIX = "enc:v1:"


# Used with fullmatch: "$" also matches before a trailing newline, and "acme\n" is not a slug.
TENANT_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62})")
HHMM = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
#: Subscription states in which a tenant's automations run. ``none``: billing not managed by Lily.
ACTIVE_STATUSES = frozenset({"none", "trialing", "active", "past_due"})


class TenantError(ValueError):
    """A tenant operation that cannot be done as asked; the message says why."""


class IndexConflict(TenantError):
    """A lookup value (phone number, customer id) already belongs to another tenant."""


def normalize_index_value(kind: str, value: str) -> str:
    """Canonical form of a lookup value: phone numbers keep only + and digits; others lowercase."""
    value = value.strip()
    if kind == "phone":
        return re.sub(r"[^\d+]", "", value)
    return value.lower()


class Tenant(BaseModel):
    """A business. ``plugins`` holds each plugin's tenant settings in stored form."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    timezone: str = "America/New_York"
    quiet_hours_start: str = "21:00"
    quiet_hours_end: str = "09:00"
    review_delay_seconds: int = Field(default=24 * 3600, ge=0, le=90 * 24 * 3600)
    review_link: str | None = None
    contact_phone: str | None = None
    contact_email: str | None = None
    jitter_seconds: str | None = None
    templates: dict[str, str] = Field(default_factory=dict)
    plan: str = "none"
    subscription_status: str = "none"
    trial_end: float | None = None
    status_since: float | None = None
    billing: dict[str, Any] = Field(default_factory=dict)
    retention_days: int = Field(default=365, ge=1, le=3650)
    #: Appointment reminders, minutes before the start (default 24 h and 2 h); [] turns them off.
    reminder_offsets_minutes: list[int] = Field(default_factory=lambda: [24 * 60, 120], max_length=5)
    #: Where a customer who replies R to a reminder reschedules (else the scheduling plugin's booking_url).
    reschedule_link: str | None = None
    #: One follow-up text this many days after a quote, unless the customer answered; None: off.
    quote_follow_up_days: int | None = Field(default=None, ge=1, le=60)
    #: One follow-up this many days after a review request, unless the customer clicked or answered; None: off.
    review_follow_up_days: int | None = Field(default=None, ge=1, le=60)
    plugins: dict[str, dict[str, Any]] = Field(default_factory=dict)
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)

    #: This plugin's own tenant settings, decrypted (set when the host hands the tenant to a plugin).
    _plugin_settings: Any = PrivateAttr(default=None)
    #: Views of this record already made for plugins (the store's cached records are shared, so a
    #: plugin's settings are decrypted once per record, not once per request).
    _views: dict[str, Tenant] = PrivateAttr(default_factory=dict)

    @property
    def plugin_settings(self) -> Any:
        """The receiving plugin's tenant settings (its ``register_tenant_settings`` model), or None."""
        return self._plugin_settings

    def for_plugin(self, settings: Any) -> Tenant:
        """A copy of this tenant carrying one plugin's decrypted tenant settings (the host calls it)."""
        view = self.model_copy()
        view._plugin_settings = settings
        view._views = {}
        return view

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not TENANT_ID.fullmatch(value):
            raise ValueError("tenant id must be a slug: lowercase letters, digits and '-', 1-63 chars")
        return value

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        return check_timezone(value)

    @field_validator("quiet_hours_start", "quiet_hours_end")
    @classmethod
    def _check_hhmm(cls, value: str) -> str:
        if not HHMM.fullmatch(value):
            raise ValueError("quiet hours are HH:MM, 24-hour (e.g. 21:00)")
        return value

    @field_validator("reminder_offsets_minutes")
    @classmethod
    def _check_offsets(cls, value: list[int]) -> list[int]:
        if any(not 15 <= offset <= 14 * 24 * 60 for offset in value):
            raise ValueError("reminder offsets are minutes before the appointment, each from 15 to 20160 (14 days)")
        return sorted(set(value), reverse=True)

    @field_validator("reschedule_link")
    @classmethod
    def _check_link(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("reschedule_link must be an http(s) URL")
        return value

    @field_validator("jitter_seconds")
    @classmethod
    def _check_jitter(cls, value: str | None) -> str | None:
        if value is not None:
            parse_jitter(value)
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def quiet_hours(self) -> tuple[dt_time, dt_time]:
        return dt_time.fromisoformat(self.quiet_hours_start), dt_time.fromisoformat(self.quiet_hours_end)

    @property
    def automations_active(self) -> bool:
        return self.subscription_status in ACTIVE_STATUSES

    def public_view(self) -> dict[str, Any]:
        """The record as the APIs show it: secrets masked."""
        data = self.model_dump()
        data["plugins"] = {
            name: {key: ("********" if is_stored_secret(value) else value) for key, value in values.items()}
            for name, values in self.plugins.items()
        }
        return data


def parse_jitter(value: str) -> tuple[float, float]:
    """``"10-45"`` → (10.0, 45.0); the bounds are seconds, low ≤ high."""
    try:
        low_text, high_text = value.split("-", 1)
        low, high = float(low_text), float(high_text)
    except ValueError as error:
        raise ValueError(f"jitter must look like '10-45' (seconds), got {value!r}") from error
    if low < 0 or high < low:
        raise ValueError(f"jitter range {value!r} must satisfy 0 <= low <= high")
    return low, high


def is_stored_secret(value: Any) -> bool:
    """Whether a stored tenant-settings value is an encrypted secret (``enc:v1:...``)."""
    return isinstance(value, str) and value.startswith(STORED_SECRET_PREFIX)
