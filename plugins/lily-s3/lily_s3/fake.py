"""Local stand-ins for the providers, for tests and for a sandbox on a laptop.

- :class:`MotoS3`: moto's S3 server (real HTTP, real SigV4, presigned POST/GET) on 127.0.0.1,
  with switches for IAM enforcement so permission errors are S3's own. Needs ``lily-s3[sandbox]``.
- :class:`FakeMediaServer`: serves MMS media like Twilio's media URLs: HTTP Basic auth with the
  account SID + auth token, optional redirects to another host, injectable failures, and a record
  of every request (with its Authorization header) so tests can see where credentials went.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3  # type: ignore[import-untyped]
import httpx

from lily_host import DevContext, DevStandIn
from lily_host.fakes import LocalHTTPServer, Reply, Request

#: Bytes that start like a JPEG / PNG: S3 does not look, but people reading a sandbox bucket might.
SAMPLE_JPEG = b"\xff\xd8\xff\xe0" + b"jpeg-bytes" * 10
SAMPLE_PNG = b"\x89PNG\r\n\x1a\n" + b"png-bytes" * 10

MOTO_ACCESS_KEY = "testing"
MOTO_SECRET_KEY = "testing"


class MotoS3:
    """moto's server in a thread. moto keeps its state per process: ``reset()`` between tests."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, region: str = "us-east-1") -> None:
        self.host = host
        self.port = port
        self.region = region
        self._server: Any = None

    def start(self) -> MotoS3:
        from moto.server import ThreadedMotoServer

        # werkzeug logs every request at INFO; keep test and sandbox output readable.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        self._server.start()
        self.host, self.port = self._server.get_host_and_port()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self.allow_all()
            self._server.stop()
            self._server = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def env(
        self, bucket: str, *, access_key: str = MOTO_ACCESS_KEY, secret_key: str = MOTO_SECRET_KEY
    ) -> dict[str, str]:
        """The environment that points lily-s3 at this server."""
        return {
            "S3_BUCKET_NAME": bucket,
            "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key,
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
        }

    def client(
        self, service: str = "s3", *, access_key: str = MOTO_ACCESS_KEY, secret_key: str = MOTO_SECRET_KEY
    ) -> Any:
        return boto3.session.Session().client(
            service,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=self.region,
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def reset(self) -> None:
        """Forget every bucket, object, user and policy; IAM enforcement off."""
        self.allow_all()
        httpx.post(f"{self.endpoint_url}/moto-api/reset").raise_for_status()

    def create_user(self, name: str, policy: Mapping[str, Any]) -> tuple[str, str]:
        """An IAM user with ``policy`` inline; returns its (access key id, secret)."""
        iam = self.client("iam")
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return str(key["AccessKeyId"]), str(key["SecretAccessKey"])

    def enforce_iam(self) -> None:
        """From now on every request must be signed by an IAM user whose policies allow it."""
        httpx.post(f"{self.endpoint_url}/moto-api/reset-auth", content=b"0").raise_for_status()

    def allow_all(self) -> None:
        httpx.post(f"{self.endpoint_url}/moto-api/reset-auth", content=b"inf").raise_for_status()


@dataclass
class MediaRequest:
    path: str
    authorization: str | None
    host: str


@dataclass
class _Media:
    body: bytes
    content_type: str
    redirect_to: str | None = None
    send_length: bool = True


@dataclass
class FakeMediaServer(LocalHTTPServer):
    """A Twilio-like media server. ``require_auth`` media need Basic ``account_sid:auth_token``.

    Starting, stopping and ``base_url`` come from :class:`lily_host.fakes.LocalHTTPServer`.
    """

    methods = ("GET",)
    protocol_version = "HTTP/1.0"

    account_sid: str = "AC00000000000000000000000000000000"
    auth_token: str = "fake-auth-token"
    require_auth: bool = True
    requests: list[MediaRequest] = field(default_factory=list)
    _media: dict[str, _Media] = field(default_factory=dict)
    _failures: list[tuple[str | None, int]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        super().__init__(name="fake-media")

    def add(self, path: str, body: bytes, content_type: str = "image/jpeg", *, send_length: bool = True) -> str:
        """Serve ``body`` at ``path``; returns the URL."""
        self._media[path] = _Media(body=body, content_type=content_type, send_length=send_length)
        return self.base_url + path

    def add_redirect(self, path: str, location: str) -> str:
        """Answer ``path`` with a 307 to ``location`` (Twilio redirects media to its CDN)."""
        self._media[path] = _Media(body=b"", content_type="", redirect_to=location)
        return self.base_url + path

    def fail_next(self, status: int, times: int = 1, *, path: str | None = None) -> None:
        """The next ``times`` requests (to ``path``, or any) get ``status`` (e.g. 503, 429)."""
        with self._lock:
            self._failures.extend([(path, status)] * times)

    def _take_failure(self, path: str) -> int | None:
        with self._lock:
            for index, (wanted, status) in enumerate(self._failures):
                if wanted is None or wanted == path:
                    del self._failures[index]
                    return status
        return None

    def requests_to(self, path: str) -> list[MediaRequest]:
        return [item for item in self.requests if item.path == path]

    def expected_authorization(self) -> str:
        token = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return f"Basic {token}"

    def handle_request(self, request: Request) -> Reply:
        authorization = request.headers.get("authorization")
        with self._lock:
            self.requests.append(MediaRequest(request.target, authorization, request.headers.get("host", "")))
        failure = self._take_failure(request.target)
        if failure is not None:
            return _reply(failure, b'{"message": "injected failure"}', "application/json", {"Retry-After": "1"})
        media = self._media.get(request.target)
        if media is None:
            return _reply(404, b'{"code": 20404, "message": "not found"}', "application/json")
        if self.require_auth and media.redirect_to is None and not self._authorised(authorization):
            return _reply(
                401,
                b'{"code": 20003, "message": "Authenticate"}',
                "application/json",
                {"WWW-Authenticate": 'Basic realm="Twilio API"'},
            )
        if media.redirect_to is not None:
            if self.require_auth and not self._authorised(authorization):
                return _reply(401, b'{"code": 20003, "message": "Authenticate"}', "application/json")
            return _reply(307, b"", "text/plain", {"Location": media.redirect_to})
        return _reply(200, media.body, media.content_type, send_length=media.send_length)

    def _authorised(self, authorization: str | None) -> bool:
        return authorization == self.expected_authorization()


def _reply(
    status: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None, *, send_length: bool = True
) -> Reply:
    content = {"Content-Type": content_type} if content_type else {}
    return Reply(status, body, {**content, **(headers or {})}, send_length=send_length)


def post_presigned_form(upload: Mapping[str, Any], data: bytes, content_type: str, filename: str = "photo") -> int:
    """Upload like a browser: multipart/form-data with the presigned fields first, the file last."""
    response = httpx.post(upload["url"], data=dict(upload["fields"]), files={"file": (filename, data, content_type)})
    return response.status_code


def decode_post_policy(fields: Mapping[str, str]) -> dict[str, Any]:
    """The JSON policy document of a presigned POST (what S3 checks the form against)."""
    policy: dict[str, Any] = json.loads(base64.b64decode(fields["policy"]))
    return policy


def serve_sandbox(port: int, buckets: Iterable[str]) -> MotoS3:
    """Start moto on ``port`` with ``buckets`` created: a local S3 for ``lily dev``."""
    moto = MotoS3(port=port).start()
    for bucket in buckets:
        moto.create_bucket(bucket)
    return moto


#: The bucket of ``lily dev``'s local S3.
DEV_BUCKET = "lily-dev-photos"


def dev_standin(context: DevContext) -> DevStandIn | None:
    """``lily dev`` without S3_BUCKET_NAME: moto's S3 server on a free port, with a bucket."""
    if context.environ.get("S3_BUCKET_NAME"):
        return None
    moto = serve_sandbox(0, [DEV_BUCKET])
    return DevStandIn(f"moto S3 at {moto.endpoint_url}, bucket {DEV_BUCKET}", moto.env(DEV_BUCKET), stop=moto.stop)
