"""Downloading inbound MMS media, with the size and type limits, and credentials kept on a leash.

Twilio media URLs need HTTP Basic auth (account SID + auth token) and usually answer with a
redirect to a signed CDN URL. Redirects are followed by hand so that the credentials go only to
allow-listed hosts, and only over https (or to a loopback address, for local fakes): never to
whatever host a redirect or a forged event names.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from lily_host import track_api_call
from lily_s3.settings import normalize_content_type

MAX_REDIRECTS = 5
_GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})


class MediaRejected(Exception):
    """This media item cannot be stored (too big, wrong type, gone, bad URL): retrying will not help."""


class MediaUnavailable(Exception):
    """The media server failed or could not be reached: try again later."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass(frozen=True)
class FetchedMedia:
    data: bytes
    content_type: str
    url: str


def host_key(url: str) -> str:
    """``host`` for default ports, ``host:port`` otherwise: how allow-list entries are written."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    if parts.port is not None and parts.port != default_port:
        return f"{host}:{parts.port}"
    return host


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class MediaFetcher:
    def __init__(
        self,
        *,
        credentials: tuple[str, str] | None,
        credential_hosts: Collection[str],
        timeout: float,
    ) -> None:
        self.credentials = credentials
        self.credential_hosts = frozenset(host.lower() for host in credential_hosts)
        self.timeout = timeout

    def may_authenticate(self, url: str) -> bool:
        """Whether the Twilio credentials may be sent to ``url``."""
        if self.credentials is None or host_key(url) not in self.credential_hosts:
            return False
        return urlsplit(url).scheme == "https" or _is_loopback(url)

    async def fetch(
        self, url: str, *, max_bytes: int, allowed_types: Collection[str], declared_type: str | None = None
    ) -> FetchedMedia:
        """The media at ``url``, or MediaRejected / MediaUnavailable. Never reads more than ``max_bytes``."""
        current = url
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
            for _hop in range(MAX_REDIRECTS + 1):
                if urlsplit(current).scheme not in ("http", "https"):
                    raise MediaRejected(f"media URL scheme is not http(s): {urlsplit(current).scheme!r}")
                auth = (
                    httpx.BasicAuth(*self.credentials) if self.credentials and self.may_authenticate(current) else None
                )
                with track_api_call("s3", "media_download"):
                    try:
                        async with client.stream("GET", current, auth=auth) as response:
                            if response.is_redirect:
                                location = response.headers.get("Location")
                                if not location:
                                    raise MediaRejected(f"redirect without Location from {host_key(current)}")
                                current = urljoin(current, location)
                                continue
                            return await self._read(response, current, max_bytes, allowed_types, declared_type)
                    except httpx.HTTPError as error:
                        raise MediaUnavailable(
                            f"cannot download media from {host_key(current)}: {type(error).__name__}"
                        ) from error
            raise MediaRejected(f"more than {MAX_REDIRECTS} redirects downloading media")

    async def _read(
        self,
        response: httpx.Response,
        url: str,
        max_bytes: int,
        allowed_types: Collection[str],
        declared_type: str | None,
    ) -> FetchedMedia:
        status = response.status_code
        if status == 429 or status >= 500:
            raise MediaUnavailable(
                f"media server {host_key(url)} answered {status}", retry_after=_retry_after(response)
            )
        if status >= 400:
            raise MediaRejected(f"media server {host_key(url)} answered {status}")
        content_type = normalize_content_type(response.headers.get("Content-Type", ""))
        if content_type in _GENERIC_TYPES and declared_type:
            content_type = normalize_content_type(declared_type)
        if content_type not in allowed_types:
            raise MediaRejected(f"media type {content_type or 'unknown'!r} is not allowed ({', '.join(allowed_types)})")
        length = response.headers.get("Content-Length")
        if length is not None and length.isascii() and length.isdigit() and int(length) > max_bytes:
            raise MediaRejected(f"media is {int(length)} bytes, over the {max_bytes}-byte limit")
        chunks: list[bytes] = []
        received = 0
        async for chunk in response.aiter_bytes():
            received += len(chunk)
            if received > max_bytes:
                raise MediaRejected(f"media is over the {max_bytes}-byte limit")
            chunks.append(chunk)
        if received == 0:
            raise MediaRejected("media is empty")
        return FetchedMedia(data=b"".join(chunks), content_type=content_type, url=url)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
