"""lily_host.fakes: the base of provider fakes serves real HTTP on a free loopback port and stops cleanly."""

from __future__ import annotations

import socket
import threading

import httpx
import pytest

from lily_host.fakes import LocalHTTPServer, Reply, Request, json_reply


class EchoFake(LocalHTTPServer):
    """Records every request and answers it with what it understood."""

    methods = ("GET", "POST")

    def __init__(self, *, port: int = 0) -> None:
        super().__init__(port=port, name="fake-echo")
        self.requests: list[Request] = []
        self._lock = threading.Lock()

    def handle_request(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
        if request.path == "/stream":
            return Reply(200, b"no length", {"Content-Type": "text/plain"}, send_length=False)
        payload = {"method": request.method, "path": request.path, "query": request.query, "form": request.form()}
        return json_reply(201, payload, {"X-Fake": "echo"})


def refuses_connections(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_serves_records_and_stops() -> None:
    fake = EchoFake()
    with pytest.raises(RuntimeError, match="EchoFake is not started"):
        _ = fake.base_url
    with fake as started:
        assert started is fake
        assert fake.port > 0
        assert fake.base_url == f"http://127.0.0.1:{fake.port}"
        response = httpx.post(
            f"{fake.base_url}/v1/things?expand=all", data={"name": "Acme", "empty": ""}, headers={"X-Token": "t"}
        )
        assert response.status_code == 201
        assert response.headers["content-type"] == "application/json"
        assert response.headers["x-fake"] == "echo"
        assert response.json() == {
            "method": "POST",
            "path": "/v1/things",
            "query": "expand=all",
            "form": {"name": ["Acme"], "empty": [""]},
        }
        [request] = fake.requests
        assert request.target == "/v1/things?expand=all"
        assert request.headers["x-token"] == "t"  # names lower-cased
        assert request.body == b"name=Acme&empty="
        port = fake.port
    assert refuses_connections(port)
    fake.stop()  # twice is fine


def test_serves_its_methods_only_and_can_reply_without_a_length() -> None:
    with EchoFake() as fake, httpx.Client(base_url=fake.base_url) as client:
        assert client.get("/one").status_code == 201
        assert client.get("/two").status_code == 201
        assert client.delete("/three").status_code == 501
        streamed = client.get("/stream")
        assert streamed.status_code == 200
        assert streamed.text == "no length"
        assert "content-length" not in streamed.headers
    assert [request.path for request in fake.requests] == ["/one", "/two", "/stream"]


def test_bind_gives_the_address_before_serving() -> None:
    fake = EchoFake().bind()
    try:
        assert fake.base_url.startswith("http://127.0.0.1:")
        fake.start()
        assert httpx.get(f"{fake.base_url}/late").status_code == 201
    finally:
        fake.stop()


def test_a_json_body_is_decoded() -> None:
    request = Request("POST", "/x", {"content-type": "application/json"}, b'{"a": 1}')
    assert request.json() == {"a": 1}
    assert Request("GET", "/x", {}, b"").json() is None
