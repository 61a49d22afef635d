"""Sending windows: federal 8-21, the tenant's quiet hours and state rules by area code; strictest wins."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from lily_host.plugin_api.tenant import Tenant
from lily_host.sms.compliance import quiet_hours_end
from lily_host.sms.send_windows import last_allowed, rules_for
from lily_host.sms.state_quiet_hours import AREA_CODES, STATE_RULES, ZONE_EXCEPTIONS, rule_for_number

FLORIDA = "+13055550123"  # Miami, 8-20
PANHANDLE = "+18505550123"  # Pensacola: Florida's rule, Central time
TEXAS = "+12105550123"  # 9-21, Sundays noon-21
MISSISSIPPI = "+16015550123"  # 8-20, no Sundays
ELSEWHERE = "+12125550123"  # New York: the federal window only


def at(zone: str, year: int, month: int, day: int, hour: int, minute: int = 0) -> float:
    return dt.datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone)).timestamp()


def tenant(**fields: object) -> Tenant:
    return Tenant(id="acme", name="Acme", **fields)  # type: ignore[arg-type]


def test_every_state_row_cites_its_source_and_every_area_code_has_a_row() -> None:
    for rule in STATE_RULES.values():
        assert rule.source and any(char.isdigit() for char in rule.source), rule.state
        ZoneInfo(rule.zone)
    assert set(AREA_CODES.values()) == set(STATE_RULES)
    assert all(len(code) == 3 and code.isdigit() for code in AREA_CODES)
    assert set(ZONE_EXCEPTIONS) <= set(AREA_CODES)


def test_florida_closes_at_eight_pm_where_the_tenant_would_allow_nine() -> None:
    acme = tenant(timezone="America/New_York")
    assert quiet_hours_end(acme, at("America/New_York", 2025, 6, 2, 19, 59), number=FLORIDA) is None
    assert quiet_hours_end(acme, at("America/New_York", 2025, 6, 2, 20, 0), number=FLORIDA) == at(
        "America/New_York", 2025, 6, 3, 9, 0
    )
    # Without a state rule the tenant's 21:00 holds.
    assert quiet_hours_end(acme, at("America/New_York", 2025, 6, 2, 20, 30), number=ELSEWHERE) is None


def test_state_hours_are_kept_in_the_area_codes_zone() -> None:
    acme = tenant(timezone="America/New_York", quiet_hours_start="23:00", quiet_hours_end="06:00")
    assert rule_for_number(PANHANDLE) is not None
    # 20:30 in New York is 19:30 in Pensacola: still open there, already closed in Miami.
    assert quiet_hours_end(acme, at("America/New_York", 2025, 6, 2, 20, 30), number=PANHANDLE) is None
    assert quiet_hours_end(acme, at("America/New_York", 2025, 6, 2, 20, 30), number=FLORIDA) is not None
    # The recipient's own zone, when a provider gave it, wins over the area code's.
    assert quiet_hours_end(acme, at("America/New_York", 2025, 6, 2, 20, 30), "America/Los_Angeles", FLORIDA) is None


def test_sunday_rules_texas_noon_and_mississippi_none() -> None:
    open_all_day = tenant(timezone="America/Chicago", quiet_hours_start="00:00", quiet_hours_end="00:00")
    sunday_ten = at("America/Chicago", 2025, 6, 8, 10, 0)
    assert quiet_hours_end(open_all_day, sunday_ten, number=TEXAS) == at("America/Chicago", 2025, 6, 8, 12, 0)
    assert quiet_hours_end(open_all_day, sunday_ten, number=MISSISSIPPI) == at("America/Chicago", 2025, 6, 9, 8, 0)
    # The federal window still holds where no state rule is stricter.
    assert quiet_hours_end(open_all_day, at("America/Chicago", 2025, 6, 9, 7, 0), number=ELSEWHERE) == at(
        "America/Chicago", 2025, 6, 9, 8, 0
    )


def test_the_tenants_own_window_wins_when_it_is_the_strictest() -> None:
    late_starter = tenant(timezone="America/New_York", quiet_hours_start="19:00", quiet_hours_end="10:00")
    assert quiet_hours_end(late_starter, at("America/New_York", 2025, 6, 2, 9, 0), number=FLORIDA) == at(
        "America/New_York", 2025, 6, 2, 10, 0
    )
    assert quiet_hours_end(late_starter, at("America/New_York", 2025, 6, 2, 19, 30), number=FLORIDA) == at(
        "America/New_York", 2025, 6, 3, 10, 0
    )


def test_windows_across_dst_changes() -> None:
    acme = tenant(timezone="America/New_York")
    # Saturday night before spring forward: Florida's 8:00 on Sunday is 12:00 UTC, not 13:00.
    sunday_open = quiet_hours_end(acme, at("America/New_York", 2025, 3, 8, 22, 0), number=FLORIDA)
    assert sunday_open == at("America/New_York", 2025, 3, 9, 9, 0)
    assert dt.datetime.fromtimestamp(sunday_open, dt.UTC).hour == 13
    # Fall back: 9:00 on 2025-11-02 is 14:00 UTC.
    fall = quiet_hours_end(acme, at("America/New_York", 2025, 11, 1, 23, 30), number=FLORIDA)
    assert fall is not None and dt.datetime.fromtimestamp(fall, dt.UTC).hour == 14


def test_last_allowed_moves_back_to_the_last_minute_before_quiet_hours() -> None:
    acme = tenant(timezone="America/New_York")
    rules = rules_for(acme, FLORIDA)
    # 7:00 is too early: the last allowed minute before is 19:59 the evening before (Florida).
    assert last_allowed(rules, at("America/New_York", 2025, 6, 3, 7, 0)) == at("America/New_York", 2025, 6, 2, 19, 59)
    # Inside the window nothing moves.
    noon = at("America/New_York", 2025, 6, 3, 12, 0)
    assert last_allowed(rules, noon) == noon
    # Across spring forward: 7:00 on Sunday 2025-03-09 goes back to 19:59 on Saturday (EST).
    assert last_allowed(rules, at("America/New_York", 2025, 3, 9, 7, 0)) == at("America/New_York", 2025, 3, 8, 19, 59)
