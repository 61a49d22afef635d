"""Templates: defaults in the product's voice, tenant overrides, safe rendering, SMS length."""

from __future__ import annotations

import pytest

from lily_host.plugin_api.tenant import Tenant
from lily_host.sms.message_templates import DEFAULT_TEMPLATES, TemplateError, render, segment_info


def tenant(**fields: object) -> Tenant:
    return Tenant.model_validate({"id": "acme", "name": "Acme Washing", **fields})


def test_missed_call_default_speaks_with_the_product_voice_and_names_the_tenant() -> None:
    body = render(tenant(), "missed_call")

    assert body.startswith("Acme Washing: Sorry we missed your call! 📞 Text us 2-3 photos of the area and your ZIP")
    assert body.endswith("Reply STOP to opt out.")


def test_review_request_uses_the_first_name_service_and_link() -> None:
    body = render(
        tenant(),
        "review_request",
        {"customer_name": "Dana Smith", "service": "window cleaning", "review_link": "https://g.page/r/acme"},
    )

    assert body.startswith("Hi Dana! 🌟 How did we do with your window cleaning?")
    assert "https://g.page/r/acme" in body


def test_help_text_has_name_contact_and_opt_out() -> None:
    body = render(tenant(contact_phone="+15551239999"), "help")

    assert "Acme Washing" in body and "+15551239999" in body and "Reply STOP to opt out" in body


def test_tenant_override_wins_and_may_use_the_same_fields() -> None:
    custom = tenant(templates={"missed_call": "{tenant_name} here - send pics!"})

    assert render(custom, "missed_call") == "Acme Washing here - send pics!"


def test_unknown_template_and_missing_fields_are_errors_that_say_why() -> None:
    with pytest.raises(TemplateError, match="no template named 'nope'"):
        render(tenant(), "nope")
    with pytest.raises(TemplateError, match=r"\{zip\}"):
        render(tenant(templates={"missed_call": "need {zip}"}), "missed_call")


def test_a_default_text_can_come_from_the_caller() -> None:
    assert render(tenant(), "booking_confirmed", {"when": "Tue 9am"}, default="See you {when}!") == "See you Tue 9am!"


@pytest.mark.parametrize(
    "text", ["{tenant_name.__class__}", "{context[0]}", "{tenant_name!r}", "{tenant_name:>99}", "{"]
)
def test_templates_cannot_reach_into_objects_or_format_strangely(text: str) -> None:
    with pytest.raises(TemplateError):
        render(tenant(templates={"missed_call": text}), "missed_call")


def test_every_default_renders() -> None:
    # what the booking automation and the conversation inbox supply on top of the tenant's own fields
    booking = {"when": "Mon, Dec 1 at 9:00 AM", "address_line": " at 12 Elm St", "book_again": "", "body": "Hi"}
    booking |= {"reschedule_link": "https://x/r", "eta_line": "", "description": "d", "amount": "$1", "quote_link": "q"}
    for name in DEFAULT_TEMPLATES:
        assert render(tenant(review_link="https://x"), name, booking)


@pytest.mark.parametrize(
    ("body", "encoding", "units", "segments"),
    [
        ("", "GSM-7", 0, 1),
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("€" * 80, "GSM-7", 160, 1),
        ("[" + "a" * 159, "GSM-7", 161, 2),
        ("é" * 160, "GSM-7", 160, 1),
        ("📞", "UCS-2", 2, 1),
        ("ç" * 70, "UCS-2", 70, 1),
        ("ç" * 71, "UCS-2", 71, 2),
        ("ç" * 134, "UCS-2", 134, 2),
        ("ç" * 135, "UCS-2", 135, 3),
    ],
)
def test_segments_are_counted_like_carriers_bill_them(body: str, encoding: str, units: int, segments: int) -> None:
    info = segment_info(body)

    assert (info.encoding, info.units, info.segments) == (encoding, units, segments)


def test_escape_and_surrogate_pairs_are_never_split_across_segments() -> None:
    # 152 plain septets then a two-septet character: it cannot straddle segments 1 and 2.
    assert segment_info("a" * 152 + "€" + "a" * 10).segments == 2
    assert segment_info("a" * 152 + "€" + "a" * 152).segments == 3
    # 66 UTF-16 units then an emoji (two units) goes whole into the second segment.
    assert segment_info("ç" * 66 + "📞" + "ç" * 66).segments == 3


def test_units_left_in_the_last_segment() -> None:
    assert segment_info("a" * 150).units_left == 10
    assert segment_info("a" * 200).units_left == 106
