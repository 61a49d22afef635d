"""The pipeline's own parsing: form bodies (held to parse_qsl), request headers, fixed answers."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lily_host import InvalidPayload, WebhookResponse
from lily_host.plugin_api.contract import RequestHeaders
from lily_host.plugin_api.forms import parse_form, parse_form_text


def grouped(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for name, value in pairs:
        fields.setdefault(name, []).append(value)
    return fields


# Raw text built from the characters that matter to a form parser, escapes (valid or not) included.
FORM_PIECES = [*"ab=&+%; é", "%2B", "%26", "%3D", "%E2%82%AC", "%zz", "%C3", "%"]
form_text = st.lists(st.sampled_from(FORM_PIECES), max_size=40).map("".join)


@given(form_text)
def test_parse_form_gives_what_parse_qsl_gives(text: str) -> None:
    assert parse_form_text(text) == grouped(parse_qsl(text, keep_blank_values=True))


@given(st.lists(st.tuples(st.text(), st.text()), max_size=8))
def test_an_encoded_form_reads_back_field_for_field(pairs: list[tuple[str, str]]) -> None:
    assert parse_form(urlencode(pairs).encode()) == grouped(pairs)


def test_repeated_fields_blank_values_and_escapes() -> None:
    body = b"MediaUrl0=a&MediaUrl0=b&Body=&From=%2B15125550100&Text=hello+world&&flag"
    assert parse_form(body) == {
        "MediaUrl0": ["a", "b"],
        "Body": [""],
        "From": ["+15125550100"],
        "Text": ["hello world"],
        "flag": [""],
    }


def test_a_body_that_is_not_utf8_is_invalid() -> None:
    with pytest.raises(InvalidPayload, match="UTF-8"):
        parse_form(b"Body=\xff")


def test_request_headers_match_names_in_any_case_and_keep_repeats() -> None:
    headers = RequestHeaders.from_asgi(
        [(b"x-twilio-signature", b"abc="), (b"accept", b"text/xml"), (b"accept", b"*/*"), (b"x-caf\xe9", b"\xe9")]
    )
    assert headers["X-Twilio-Signature"] == headers.get("x-twilio-signature") == "abc="
    assert "X-TWILIO-SIGNATURE" in headers and "x-missing" not in headers and 42 not in headers
    assert headers.get("x-missing") is None and headers.get("x-missing", "d") == "d"
    assert headers["Accept"] == "text/xml" and headers.getlist("ACCEPT") == ["text/xml", "*/*"]
    assert headers["X-Café"] == "é"  # latin-1, as HTTP has it
    assert len(headers) == 3 and sorted(headers) == ["accept", "x-café", "x-twilio-signature"]
    with pytest.raises(KeyError):
        headers["x-missing"]
    assert "abc=" not in repr(headers)  # values (signatures, tokens) stay out of logs


def test_webhook_response_carries_its_asgi_headers_and_converts_to_quart() -> None:
    answer = WebhookResponse(b"<Response/>", 200, "text/xml; charset=utf-8")
    assert answer.asgi_headers == ((b"content-type", b"text/xml; charset=utf-8"), (b"content-length", b"11"))
    quart = answer.to_quart()
    assert quart.status_code == 200 and quart.content_type == "text/xml; charset=utf-8"
    error = WebhookResponse.json({"error": "x"}, 409)
    assert error.status == 409 and error.body == b'{"error": "x"}' and error.content_type == "application/json"
    with pytest.raises(AttributeError):
        answer.status = 500  # type: ignore[misc]  # shared between requests: never changed in place
