"""Message templates: the product's default texts, per-tenant overrides, rendering, and SMS length.

A template is a ``str.format`` string restricted to plain ``{name}`` fields (no attribute or index
access, so a tenant-edited template cannot reach into Python objects). Every render gets the
tenant's own fields (``tenant_name``, ``contact``, ``review_link``) plus the caller's context.

Length is reported the way carriers bill it: GSM-7 when every character is in the GSM 03.38
alphabet (160 septets in one segment, 153 per segment when split; extension characters such as
``€`` or ``{`` take two), otherwise UCS-2 (70 UTF-16 units, 67 per segment when split). One emoji
turns a whole message into UCS-2.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from lily_host.plugin_api.tenant import Tenant

MISSED_CALL = "missed_call"
REVIEW_REQUEST = "review_request"
OPT_OUT_CONFIRMATION = "opt_out_confirmation"
OPT_IN_CONFIRMATION = "opt_in_confirmation"
HELP = "help"
BOOKING_CONFIRMED = "booking_confirmed"
BOOKING_RESCHEDULED_TEXT = "booking_rescheduled"
BOOKING_CANCELLED_TEXT = "booking_cancelled"
CONVERSATION_REPLY = "conversation_reply"
APPOINTMENT_REMINDER = "appointment_reminder"
APPOINTMENT_CONFIRMED_REPLY = "appointment_confirmed_reply"
RESCHEDULE_REPLY = "reschedule_reply"
ON_MY_WAY = "on_my_way"
QUOTE_SENT = "quote_sent"
QUOTE_FOLLOW_UP = "quote_follow_up"
QUOTE_ACCEPTED_REPLY = "quote_accepted_reply"
REVIEW_FOLLOW_UP = "review_follow_up"

DEFAULT_TEMPLATES: Mapping[str, str] = {
    MISSED_CALL: (
        "{tenant_name}: Sorry we missed your call! 📞 Text us 2-3 photos of the area and your ZIP "
        "and we'll send a quote. Reply STOP to opt out."
    ),
    REVIEW_REQUEST: (
        "Hi {first_name}! 🌟 How did we do with your {service}? A quick review helps a small business a lot: "
        "{review_link} Thank you! - {tenant_name}. Reply STOP to opt out."
    ),
    OPT_OUT_CONFIRMATION: (
        "{tenant_name}: you're unsubscribed and will get no more messages from us. Reply START to resubscribe."
    ),
    OPT_IN_CONFIRMATION: "{tenant_name}: you're subscribed again. Reply HELP for help, STOP to opt out.",
    HELP: "{tenant_name}: for help contact us at {contact}. Msg & data rates may apply. Reply STOP to opt out.",
    # Booking texts: {when}, {address_line}, {book_again} come from the booking automation.
    BOOKING_CONFIRMED: (
        "Hi {first_name}! Your {service} with {tenant_name} is confirmed for {when}{address_line}. "
        "Questions? Just reply. Reply STOP to opt out."
    ),
    BOOKING_RESCHEDULED_TEXT: (
        "Hi {first_name}, your {service} with {tenant_name} is now {when}{address_line}. "
        "See you then! Reply STOP to opt out."
    ),
    BOOKING_CANCELLED_TEXT: (
        "Hi {first_name}, your {service} with {tenant_name} on {when} is cancelled.{book_again} Reply STOP to opt out."
    ),
    # A business's reply from the conversation inbox: {body} is what it wrote.
    CONVERSATION_REPLY: "{body}",
    # Reminders and their replies: {when}, {address_line}, {reschedule_link} come from the reminders automation.
    APPOINTMENT_REMINDER: (
        "Reminder: your {service} with {tenant_name} is {when}{address_line}. "
        "Reply C to confirm or R to reschedule. Reply STOP to opt out."
    ),
    APPOINTMENT_CONFIRMED_REPLY: "Thanks {first_name}, you're confirmed for {when}. See you then! - {tenant_name}",
    RESCHEDULE_REPLY: "{tenant_name}: to reschedule your {service} on {when}, go to {reschedule_link}",
    ON_MY_WAY: "{tenant_name}: we're on our way to your {service}{eta_line}! Reply STOP to opt out.",
    # Quotes: {description}, {amount} (formatted, e.g. $250) and {quote_link} come from the quotes automation.
    QUOTE_SENT: (
        "{tenant_name}: here's your quote for {description}: {amount}. See it and accept: {quote_link} "
        "or reply YES to accept. Reply STOP to opt out."
    ),
    QUOTE_FOLLOW_UP: (
        "{tenant_name}: just checking in on your quote for {description} ({amount}): {quote_link} "
        "Reply YES to accept. Reply STOP to opt out."
    ),
    QUOTE_ACCEPTED_REPLY: (
        "{tenant_name}: thank you, your quote for {description} ({amount}) is accepted! We'll be in touch to schedule."
    ),
    REVIEW_FOLLOW_UP: (
        "Hi {first_name}, a quick reminder from {tenant_name}: if you have a minute, a review helps us a lot: "
        "{review_link} Reply STOP to opt out."
    ),
}

#: Context values a template may use without the caller passing them.
DEFAULT_CONTEXT: Mapping[str, str] = {"service": "service", "first_name": "there"}

_FORMATTER = string.Formatter()


class TemplateError(ValueError):
    """A template that cannot be rendered; the message names the template and the problem."""


def template_fields(text: str) -> list[str]:
    """The field names ``text`` uses; TemplateError if it uses anything but plain ``{name}`` fields."""
    try:
        parsed = list(_FORMATTER.parse(text))
    except ValueError as error:
        raise TemplateError(f"malformed template: {error} (write a literal brace as {{{{ or }}}})") from error
    names: list[str] = []
    for _literal, field_name, format_spec, conversion in parsed:
        if field_name is None:
            continue
        if not field_name.isidentifier() or format_spec or conversion:
            raise TemplateError(f"template field {{{field_name}}} is not allowed: use plain names like {{tenant_name}}")
        names.append(field_name)
    return names


def template_text(tenant: Tenant, name: str, default: str | None = None) -> str:
    """The tenant's own version of template ``name``, else ``default``, else Lily's default."""
    text = tenant.templates.get(name) or default or DEFAULT_TEMPLATES.get(name)
    if text is None:
        raise TemplateError(f"no template named {name!r} (known: {', '.join(sorted(DEFAULT_TEMPLATES))})")
    return text


def tenant_context(tenant: Tenant) -> dict[str, str]:
    """What every template may say about the tenant itself."""
    contact = tenant.contact_phone or tenant.contact_email or "this number"
    return {"tenant_name": tenant.name, "contact": contact, "review_link": tenant.review_link or ""}


def render(tenant: Tenant, name: str, context: Mapping[str, Any] | None = None, *, default: str | None = None) -> str:
    """Render template ``name`` for ``tenant``; TemplateError names a field nobody supplied."""
    text = template_text(tenant, name, default)
    values: dict[str, str] = {**DEFAULT_CONTEXT, **tenant_context(tenant)}
    values.update({key: "" if value is None else str(value) for key, value in (context or {}).items()})
    if values.get("customer_name") and "first_name" not in (context or {}):
        values["first_name"] = values["customer_name"].split()[0]
    missing = [field for field in template_fields(text) if field not in values]
    if missing:
        raise TemplateError(
            f"template {name!r} uses {', '.join('{' + m + '}' for m in missing)} but nothing supplies it"
        )
    return text.format_map(values).strip()


# --- length ----------------------------------------------------------------------------------------

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

Encoding = Literal["GSM-7", "UCS-2"]


@dataclass(frozen=True)
class SegmentInfo:
    """How a body travels: its encoding, its length in that encoding's units, and the segments billed."""

    encoding: Encoding
    units: int
    segments: int

    @property
    def units_left(self) -> int:
        """Units that still fit in the last segment."""
        single, multi = (160, 153) if self.encoding == "GSM-7" else (70, 67)
        if self.segments <= 1:
            return single - self.units
        return self.segments * multi - self.units


def is_gsm7(body: str) -> bool:
    return all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in body)


def segment_info(body: str) -> SegmentInfo:
    """Encoding, length and segment count of ``body`` as a carrier sees it."""
    if is_gsm7(body):
        costs = [2 if char in GSM7_EXTENSION else 1 for char in body]
        return SegmentInfo("GSM-7", sum(costs), _segments(costs, single=160, multi=153))
    costs = [2 if ord(char) > 0xFFFF else 1 for char in body]
    return SegmentInfo("UCS-2", sum(costs), _segments(costs, single=70, multi=67))


def _segments(costs: list[int], *, single: int, multi: int) -> int:
    """Segments needed when no character (escape pair or surrogate pair) is split across two."""
    total = sum(costs)
    if total <= single:
        return 1
    segments, used = 1, 0
    for cost in costs:
        if used + cost > multi:
            segments += 1
            used = 0
        used += cost
    return max(segments, math.ceil(total / multi))
