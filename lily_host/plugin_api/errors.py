"""Exceptions a plugin raises to tell the host what happened.

Task handlers raise these to steer retries; webhook endpoints raise the webhook ones to
produce a clear 4xx. Anything else a task raises is retried with backoff.
"""

from __future__ import annotations


class LilyError(Exception):
    """Base class of every exception the host understands."""


# --- task outcomes -----------------------------------------------------------------------


class RetryLater(LilyError):
    """Retry this task after ``seconds`` (a rate limit, a Retry-After header).

    Spends an attempt, like any failure, but the wait is the one given rather than backoff.
    """

    def __init__(self, reason: str, *, seconds: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.seconds = max(0.0, float(seconds))


class PermanentError(LilyError):
    """Do not retry: the task goes straight to the dead letters (e.g. Twilio 21610, a 4xx)."""

    def __init__(self, reason: str, *, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class Defer(LilyError):
    """Run this task again at ``until`` (Unix seconds) without spending an attempt.

    Quiet hours and paused tenants use it: the task is not failing, it is early.
    """

    def __init__(self, reason: str, *, until: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.until = until


# --- webhook outcomes ----------------------------------------------------------------------


class WebhookRejected(LilyError):
    """A webhook request that must be answered with a 4xx and change nothing."""

    status: int = 400
    outcome: str = "invalid"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidPayload(WebhookRejected):
    """The body is malformed or lacks a field the endpoint needs (400)."""

    status = 400
    outcome = "invalid"


class BadSignature(WebhookRejected):
    """The signature is wrong (403) or missing (401)."""

    outcome = "bad_signature"

    def __init__(self, reason: str, *, missing: bool = False) -> None:
        super().__init__(reason)
        self.status = 401 if missing else 403


class UnknownTenant(WebhookRejected):
    """No tenant owns what the webhook names (404)."""

    status = 404
    outcome = "unknown_tenant"


# --- configuration -----------------------------------------------------------------------


class ConfigurationError(LilyError):
    """The host cannot start as configured; the message says which setting to fix."""


class CapabilityUnavailable(LilyError):
    """No installed, configured plugin provides the capability (e.g. ``sms``)."""


class RecipientOptedOut(PermanentError):
    """The provider refuses because the recipient opted out (Twilio 21610): suppress, do not retry."""
