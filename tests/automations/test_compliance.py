"""Compliance rules: keywords, quiet hours in the tenant's timezone, suppression and caps per tenant."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from lily_host.plugin_api.tenant import Tenant
from lily_host.plugin_api.validators import normalize_e164
from lily_host.sms.compliance import Keyword, classify_keyword, quiet_hours_end
from lily_host.testing import Harness


def tenant(**fields: object) -> Tenant:
    return Tenant.model_validate({"id": "acme", "name": "Acme", **fields})


def local(zone: str, *args: int) -> float:
    return dt.datetime(*args, tzinfo=ZoneInfo(zone)).timestamp()


@pytest.mark.parametrize("word", ["STOP", "stopall", " Unsubscribe ", "cancel", "END", "quit", "revoke", "OptOut"])
def test_opt_out_words(word: str) -> None:
    assert classify_keyword(word) is Keyword.OPT_OUT


@pytest.mark.parametrize(
    ("word", "keyword"),
    [
        ("START", Keyword.OPT_IN),
        ("yes", Keyword.OPT_IN),
        ("Unstop", Keyword.OPT_IN),
        ("help", Keyword.HELP),
        ("INFO\n", Keyword.HELP),
    ],
)
def test_opt_in_and_help_words(word: str, keyword: Keyword) -> None:
    assert classify_keyword(word) is keyword


@pytest.mark.parametrize("body", ["STOP please", "stop.", "please stop", "", "helpful", "YES!"])
def test_only_whole_bodies_are_keywords(body: str) -> None:
    assert classify_keyword(body) is None


def test_quiet_hours_default_to_nine_pm_until_nine_am_in_the_tenants_zone() -> None:
    acme = tenant(timezone="America/Chicago")

    assert quiet_hours_end(acme, local("America/Chicago", 2025, 6, 2, 20, 59)) is None
    assert quiet_hours_end(acme, local("America/Chicago", 2025, 6, 2, 21, 0)) == local(
        "America/Chicago", 2025, 6, 3, 9, 0
    )
    assert quiet_hours_end(acme, local("America/Chicago", 2025, 6, 3, 3, 0)) == local(
        "America/Chicago", 2025, 6, 3, 9, 0
    )
    assert quiet_hours_end(acme, local("America/Chicago", 2025, 6, 3, 9, 0)) is None


def test_quiet_hours_follow_the_tenants_own_setting() -> None:
    daytime = tenant(quiet_hours_start="12:00", quiet_hours_end="13:30")
    none = tenant(quiet_hours_start="00:00", quiet_hours_end="00:00")
    noon = local("America/New_York", 2025, 6, 2, 12, 15)

    assert quiet_hours_end(daytime, noon) == local("America/New_York", 2025, 6, 2, 13, 30)
    assert quiet_hours_end(none, noon) is None


def test_quiet_hours_end_at_nine_local_across_a_dst_change() -> None:
    acme = tenant()
    # The night clocks spring forward (9 March 2025): 9:00 is EDT, one hour "sooner" in UTC.
    end = quiet_hours_end(acme, local("America/New_York", 2025, 3, 8, 22, 0))

    assert end is not None
    assert dt.datetime.fromtimestamp(end, ZoneInfo("America/New_York")).replace(tzinfo=None) == dt.datetime(
        2025, 3, 9, 9, 0
    )


def test_numbers_must_be_e164() -> None:
    assert normalize_e164(" +1 (555) 765-4321 ") == "+15557654321"
    for bad in ("5557654321", "+1555", "call me"):
        with pytest.raises(ValueError):
            normalize_e164(bad)


async def test_suppression_is_per_tenant_and_stop_start_are_idempotent(lily: Harness) -> None:
    compliance = lily.host.messaging.compliance

    assert await compliance.suppress("acme", "+15557654321", reason="keyword:STOP", at=1.0, source_id="SM1")
    assert await compliance.suppress("acme", "+15557654321", reason="keyword:STOP", at=1.0, source_id="SM1")
    assert not await compliance.suppress("acme", "+15557654321", reason="keyword:STOP", at=2.0, source_id="SM2")

    assert await compliance.is_suppressed("acme", "+15557654321")
    assert not await compliance.is_suppressed("bravo", "+15557654321")
    assert (await compliance.suppressed("acme"))["+15557654321"]["reason"] == "keyword:STOP"
    assert await compliance.unsuppress("acme", "+15557654321", source_id="SM3")
    assert not await compliance.unsuppress("acme", "+15557654321", source_id="SM4")
    assert not await compliance.is_suppressed("acme", "+15557654321")


async def test_frequency_cap_counts_a_rolling_day(lily: Harness) -> None:
    compliance = lily.host.messaging.compliance
    cap = compliance.daily_cap

    for index in range(cap):
        assert await compliance.reserve_send("acme", "+15557654321", f"m{index}", 1000.0 + index) is None
    assert await compliance.reserve_send("acme", "+15557654321", "m0", 2000.0) is None
    assert await compliance.reserve_send("acme", "+15557654321", "late", 2000.0) == 1000.0 + 86400
    assert await compliance.reserve_send("bravo", "+15557654321", "other", 2000.0) is None
    await compliance.release_send("acme", "+15557654321", "m1")
    assert await compliance.reserve_send("acme", "+15557654321", "late", 2000.0) is None
    assert await compliance.reserve_send("acme", "+15557654321", "next-day", 1000.0 + 86400) is None


def test_quiet_hours_in_the_recipients_timezone_use_the_tenants_window() -> None:
    acme = tenant(timezone="America/New_York")
    nine_thirty_pm_new_york = local("America/New_York", 2025, 6, 2, 21, 30)

    assert quiet_hours_end(acme, nine_thirty_pm_new_york) is not None
    assert quiet_hours_end(acme, nine_thirty_pm_new_york, "America/Los_Angeles") is None
    assert quiet_hours_end(acme, local("America/Los_Angeles", 2025, 6, 2, 23, 0), "America/Los_Angeles") == local(
        "America/Los_Angeles", 2025, 6, 3, 9, 0
    )
