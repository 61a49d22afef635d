"""What a Stripe SDK error means for Lily: an HTTP answer for the tenant API, a retry decision for tasks."""

from __future__ import annotations

from dataclasses import dataclass, field

import stripe

from lily_host import PermanentError, RetryLater
from lily_stripe.gateway import retry_after

#: Parameters that come straight from the tenant's request: Stripe refusing them is the caller's error.
CALLER_PARAMS = frozenset({"success_url", "cancel_url", "return_url"})
DEFAULT_RATE_LIMIT_WAIT = 30.0


@dataclass(frozen=True)
class ApiFailure:
    """An error answer for the tenant billing API."""

    status: int
    error: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, str]:
        return {"error": self.error, "message": self.message}


def api_failure(error: stripe.StripeError) -> ApiFailure:
    """Map an SDK error to a clear 4xx (the caller can fix it) or 502 (Stripe or our config can't)."""
    stripe_message = error.user_message or str(error) or type(error).__name__
    if isinstance(error, stripe.RateLimitError):
        wait = retry_after(error, 5.0)
        return ApiFailure(
            429,
            "rate_limited",
            f"Stripe is rate limiting requests; retry in {wait:g} s",
            {"Retry-After": str(max(1, round(wait)))},
        )
    if isinstance(error, stripe.IdempotencyError):
        return ApiFailure(
            409,
            "idempotency_conflict",
            "this Idempotency-Key was already used for a different request; send a new key",
        )
    if isinstance(error, stripe.InvalidRequestError) and error.param in CALLER_PARAMS:
        return ApiFailure(400, "invalid_request", f"Stripe refused {error.param}: {stripe_message}")
    if isinstance(error, stripe.AuthenticationError | stripe.PermissionError):
        return ApiFailure(
            502,
            "billing_unavailable",
            "Stripe refused Lily's credentials; the operator must check STRIPE_SECRET_KEY",
        )
    if isinstance(error, stripe.InvalidRequestError):
        return ApiFailure(
            502,
            "billing_misconfigured",
            f"Stripe refused the request ({error.code or 'invalid_request'}): {stripe_message}",
        )
    if isinstance(error, stripe.APIConnectionError):
        return ApiFailure(502, "billing_unavailable", "could not reach Stripe; retry shortly")
    return ApiFailure(502, "billing_unavailable", f"Stripe failed ({error.http_status or 'no status'}); retry shortly")


def task_error(error: stripe.StripeError) -> Exception:
    """The exception a task raises for an SDK error: RetryLater, PermanentError, or the error itself (backoff)."""
    if isinstance(error, stripe.RateLimitError):
        return RetryLater("Stripe rate limit", seconds=retry_after(error, DEFAULT_RATE_LIMIT_WAIT))
    if isinstance(error, stripe.AuthenticationError | stripe.PermissionError):
        # Retrying with the same key cannot succeed; after fixing it, `lily tasks retry` replays the task.
        return PermanentError(f"Stripe refused the credentials: {error.user_message or error}", code="auth")
    if isinstance(error, stripe.InvalidRequestError | stripe.IdempotencyError):
        return PermanentError(f"Stripe refused the request: {error.user_message or error}", code=error.code)
    return error
