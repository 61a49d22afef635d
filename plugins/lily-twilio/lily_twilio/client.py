"""The Twilio SDK client, pointed at ``TWILIO_API_BASE``, and how its errors map to Lily's.

SDK calls block, so they run in worker threads (``asyncio.to_thread``). Each thread gets its own
``requests.Session`` (a Session is not safe to share across threads) and remembers the last
response it saw, because ``TwilioRestException`` drops the headers and a 429's ``Retry-After``
lives there.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http import HttpClient
from twilio.http.response import Response
from twilio.rest import Client

from lily_host import PermanentError, RecipientOptedOut, RetryLater, parse_retry_after
from lily_twilio.settings import DEFAULT_API_BASE, TwilioSettings

_logger = logging.getLogger("lily_twilio.http")

OPTED_OUT_CODE = 21610
RATE_LIMIT_CODE = 20429
#: Wait after a 429 that names no Retry-After.
DEFAULT_RATE_LIMIT_WAIT = 30.0


class TwilioUnavailable(Exception):
    """Twilio answered 5xx or not at all; the task is retried with backoff."""


class BaseUrlHttpClient(HttpClient):  # type: ignore[misc]  # twilio ships no type information
    """An SDK HTTP client that sends every ``*.twilio.com`` request to ``api_base`` instead."""

    def __init__(self, api_base: str = DEFAULT_API_BASE, *, timeout: float = 15.0) -> None:
        super().__init__(_logger, False, timeout)
        split = urlsplit(api_base.rstrip("/"))
        self._scheme, self._netloc, self._prefix = split.scheme, split.netloc, split.path
        self._rebase_urls = api_base.rstrip("/") != DEFAULT_API_BASE
        self._local = threading.local()

    def rebase(self, url: str) -> str:
        if not self._rebase_urls:
            return url
        split = urlsplit(url)
        if not (split.hostname or "").endswith("twilio.com"):
            return url
        return urlunsplit((self._scheme, self._netloc, self._prefix + split.path, split.query, split.fragment))

    @property
    def last_response(self) -> Response | None:
        """The last response this thread received."""
        response: Response | None = getattr(self._local, "last_response", None)
        return response

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        self._local.last_response = None
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
        body: dict[str, Any] = {"data": data, "params": params}
        if headers and headers.get("Content-Type") in ("application/json", "application/scim+json"):
            body = {"json": data, "params": params}
        answer = session.request(
            method.upper(),
            self.rebase(url),
            headers=headers,
            auth=auth,
            timeout=timeout if timeout is not None else self.timeout,
            allow_redirects=allow_redirects,
            **body,
        )
        response = Response(int(answer.status_code), answer.text, answer.headers)
        self._local.last_response = response
        return response


def make_client(settings: TwilioSettings) -> tuple[Client, BaseUrlHttpClient]:
    """A Client for the configured account, talking to ``settings.api_base``."""
    http = BaseUrlHttpClient(settings.api_base, timeout=settings.request_timeout)
    client = Client(settings.account_sid, settings.auth_token.get_secret_value(), http_client=http)
    return client, http


def retry_after_seconds(response: Response | None) -> float | None:
    """``Retry-After`` of a response in seconds, or None when absent or unreadable."""
    if response is None or response.headers is None:
        return None
    return parse_retry_after(response.headers.get("Retry-After"), now=time.time())


def map_error(error: TwilioException, response: Response | None) -> Exception:
    """The Lily outcome of a failed Twilio call (raise what this returns)."""
    if isinstance(error, TwilioRestException):
        status, code, message = int(error.status), error.code, str(error.msg)
    elif isinstance(error, TwilioServiceException):
        status, code, message = int(error.status), error.code, f"{error.title}: {error.detail or ''}".strip(": ")
    else:
        return TwilioUnavailable(f"Twilio client error: {error}")
    code_text = str(code) if code is not None else str(status)
    if code == OPTED_OUT_CODE:
        return RecipientOptedOut(f"Twilio {OPTED_OUT_CODE}: the recipient replied STOP ({message})", code=code_text)
    if status == 429 or code == RATE_LIMIT_CODE:
        wait = retry_after_seconds(response)
        return RetryLater(
            f"Twilio rate limit ({code_text}): {message}", seconds=DEFAULT_RATE_LIMIT_WAIT if wait is None else wait
        )
    if status >= 500:
        return TwilioUnavailable(f"Twilio {status} ({code_text}): {message}")
    return PermanentError(f"Twilio {status} error {code_text}: {message}", code=code_text)


def map_transport_error(error: requests.RequestException) -> TwilioUnavailable:
    """Timeouts and refused connections: retried with backoff."""
    return TwilioUnavailable(f"Twilio did not answer: {type(error).__name__}: {error}")
