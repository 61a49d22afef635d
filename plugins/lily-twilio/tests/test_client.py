"""The SDK wrapper on its own: base URL rewriting and the mapping of Twilio's errors."""

from __future__ import annotations

import pytest
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.response import Response

from lily_host import PermanentError, RecipientOptedOut, RetryLater
from lily_twilio.client import BaseUrlHttpClient, TwilioUnavailable, map_error
from lily_twilio.settings import TwilioSettings, TwilioTenantSettings


def rest_error(status: int, code: int | None) -> TwilioRestException:
    return TwilioRestException(status, "https://api.twilio.com/x", "Unable to create record: nope", code, "POST")


def test_requests_for_twilio_hosts_go_to_the_configured_base() -> None:
    client = BaseUrlHttpClient("http://127.0.0.1:9999/sandbox")

    assert (
        client.rebase("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json?x=1")
        == "http://127.0.0.1:9999/sandbox/2010-04-01/Accounts/AC1/Messages.json?x=1"
    )
    assert client.rebase("https://example.com/media/1") == "https://example.com/media/1"
    assert BaseUrlHttpClient().rebase("https://api.twilio.com/x") == "https://api.twilio.com/x"


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, 21610, RecipientOptedOut),
        (429, 20429, RetryLater),
        (400, 20429, RetryLater),
        (500, 20500, TwilioUnavailable),
        (503, None, TwilioUnavailable),
        (400, 21211, PermanentError),
        (401, 20003, PermanentError),
    ],
)
def test_twilio_errors_map_to_task_outcomes(status: int, code: int | None, expected: type[Exception]) -> None:
    outcome = map_error(rest_error(status, code), None)

    assert type(outcome) is expected


def test_retry_after_is_honoured_in_seconds_or_as_a_date() -> None:
    in_seconds = map_error(rest_error(429, 20429), Response(429, "{}", {"Retry-After": "17"}))
    absent = map_error(rest_error(429, 20429), Response(429, "{}", {}))
    as_date = map_error(rest_error(429, 20429), Response(429, "{}", {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}))

    assert isinstance(in_seconds, RetryLater) and in_seconds.seconds == 17
    assert isinstance(absent, RetryLater) and absent.seconds == 30
    assert isinstance(as_date, RetryLater) and as_date.seconds == 0


def test_permanent_errors_keep_twilios_code_and_message() -> None:
    outcome = map_error(rest_error(400, 21211), None)

    assert isinstance(outcome, PermanentError)
    assert outcome.code == "21211"
    assert "nope" in outcome.reason


def test_problem_details_errors_are_mapped_too() -> None:
    error = TwilioServiceException("about:blank", "Too many", 429, 20429, detail="slow down")

    assert isinstance(map_error(error, None), RetryLater)


def test_settings_validate_numbers_and_urls() -> None:
    tenant = TwilioTenantSettings.model_validate({"business_numbers": "+1 (555) 123-0000, +15551230000"})

    assert tenant.business_numbers == ["+15551230000"]
    assert tenant.sender(None) == "+15551230000"
    with pytest.raises(ValueError, match=r"E\.164"):
        TwilioTenantSettings.model_validate({"business_numbers": ["5551230000"]})
    with pytest.raises(ValueError, match="TWILIO_API_BASE"):
        TwilioSettings(account_sid="AC1", auth_token="t", api_base="ftp://x")
