"""Reading what strangers send (plugin_api.untrusted) and whom to throttle (plugin_api.auth_throttle)."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lily_host.plugin_api.auth_throttle import client_address
from lily_host.plugin_api.untrusted import MAX_JSON_DEPTH, UntrustedInput, ascii_int, loads_json


@given(st.binary(max_size=200))
def test_any_bytes_are_a_value_or_untrusted_input_never_another_error(body: bytes) -> None:
    with contextlib.suppress(UntrustedInput):
        loads_json(body)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 1100 + b"]" * 1100,  # RecursionError in json.loads
        b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1),  # parses, but deeper than allowed
        b'{"a":' * 100 + b"1" + b"}" * 100,
        b"\377",
        b'"\\ud800"',
        b'{"\\udfff": 1}',
        b"NaN",
        b"[Infinity]",
        b"9" * 5000,  # past Python's int digit limit
        b"",
    ],
)
def test_hostile_json_is_refused_with_a_message(body: bytes) -> None:
    with pytest.raises(UntrustedInput) as refused:
        loads_json(body)
    assert str(refused.value)


def test_ordinary_json_passes_through() -> None:
    value = {"name": "Café ☕", "list": [1, 2.5, None, True], "deep": [[[[1]]]]}
    assert loads_json(json.dumps(value).encode()) == value
    depth = MAX_JSON_DEPTH
    assert loads_json(b"[" * depth + b"]" * depth) is not None


@pytest.mark.parametrize(("text", "expected"), [("0", 0), ("42", 42), (None, None)])
def test_ascii_int_reads_ascii_digits(text: str | None, expected: int | None) -> None:
    assert ascii_int(text, name="limit") == expected


@pytest.mark.parametrize("text", ["²", "٣", "-1", "+1", " 1", "1_0", "1\n", "", "1" * 19])
def test_ascii_int_refuses_anything_else(text: str) -> None:
    with pytest.raises(UntrustedInput, match="limit"):
        ascii_int(text, name="limit")


def test_the_throttled_address_is_the_peer_unless_the_peer_is_a_trusted_proxy() -> None:
    trusted = ["127.0.0.1", "10.0.0.0/8"]
    assert client_address("203.0.113.1", "198.51.100.1", trusted) == "203.0.113.1"  # a spoofed header
    assert client_address("127.0.0.1", None, trusted) == "127.0.0.1"
    assert client_address("127.0.0.1", "198.51.100.1", trusted) == "198.51.100.1"
    # The nearest untrusted hop: what the client wrote itself (the leftmost) is not believed.
    assert client_address("127.0.0.1", "1.2.3.4, 198.51.100.1, 10.0.0.5", trusted) == "198.51.100.1"
    assert client_address(None, None, trusted) == "unknown"
