"""When a text may go: the federal window, the tenant's quiet hours and state rules; the strictest wins.

Three rules apply to every text except compliance confirmations:

- **federal**: 8:00-21:00 in the recipient's local time (47 CFR 64.1200(c)(1));
- **tenant**: outside the tenant's quiet hours (default 21:00-09:00);
- **state**: the recipient's state by area code, when it is stricter (:mod:`lily_host.sms.state_quiet_hours`).

Each rule is kept in its own zone: the recipient's when a provider told us (a booking's attendee),
else, for the federal and state rules, the area code's zone, else the tenant's. A moment is allowed
only when every rule allows it, so combining them is an intersection of windows, computed with
zoneinfo on each local day: a boundary is "9:00 on that day in that zone", whatever the UTC offset
is that day, so the answers stay right across DST changes.

:func:`next_allowed` moves a moment forward to the first allowed one (a text due at night waits for
the morning); :func:`last_allowed` moves it back to the last allowed minute before (a reminder due
at 7:00 goes the evening before instead).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from lily_host.sms.state_quiet_hours import Hours, rule_for_number

if TYPE_CHECKING:
    from lily_host.plugin_api.tenant import Tenant

#: 47 CFR 64.1200(c)(1): no telephone solicitation before 8 am or after 9 pm at the called party's location.
FEDERAL_HOURS: Hours = (8 * 60, 21 * 60)
DAY_MINUTES = 24 * 60
#: How many days a search looks ahead or back (a week covers every weekday rule).
SEARCH_DAYS = 8
#: The last allowed moment before a window closes: one minute before its end.
LAST_MINUTE = 60.0


@dataclass(frozen=True)
class Rule:
    """Allowed intervals of one local day, in one zone; ``sunday`` overrides the other days."""

    name: str
    zone: ZoneInfo
    daily: tuple[Hours, ...]
    sunday: tuple[Hours, ...] | None = None

    def intervals(self, day: dt.date) -> tuple[Hours, ...]:
        if self.sunday is not None and day.weekday() == 6:
            return self.sunday
        return self.daily

    def _bounds(self, day: dt.date) -> list[tuple[float, float]]:
        return [(_at(day, start, self.zone), _at(day, end, self.zone)) for start, end in self.intervals(day)]

    def next_allowed(self, when: float) -> float | None:
        day = dt.datetime.fromtimestamp(when, self.zone).date()
        for offset in range(SEARCH_DAYS):
            for start, end in self._bounds(day + dt.timedelta(days=offset)):
                if end > when:
                    return max(when, start)
        return None

    def last_allowed(self, when: float) -> float | None:
        day = dt.datetime.fromtimestamp(when, self.zone).date()
        for offset in range(SEARCH_DAYS):
            for start, end in reversed(self._bounds(day - dt.timedelta(days=offset))):
                if start <= when:
                    return when if when < end else end - LAST_MINUTE
        return None


def _at(day: dt.date, minutes: int, zone: ZoneInfo) -> float:
    """Unix time of ``minutes`` after midnight on local ``day`` (24:00 = the next midnight)."""
    if minutes >= DAY_MINUTES:
        day, minutes = day + dt.timedelta(days=1), minutes - DAY_MINUTES
    local = dt.datetime.combine(day, dt.time(minutes // 60, minutes % 60), tzinfo=zone)
    return local.timestamp()


def tenant_hours(tenant: Tenant) -> tuple[Hours, ...]:
    """The complement of the tenant's quiet hours, as allowed intervals of a day."""
    start, end = tenant.quiet_hours
    quiet_start, quiet_end = start.hour * 60 + start.minute, end.hour * 60 + end.minute
    if quiet_start == quiet_end:
        return ((0, DAY_MINUTES),)
    if quiet_start < quiet_end:
        return tuple(part for part in ((0, quiet_start), (quiet_end, DAY_MINUTES)) if part[0] < part[1])
    return ((quiet_end, quiet_start),)


def rules_for(tenant: Tenant, number: str | None = None, timezone: str | None = None) -> list[Rule]:
    """The rules a text from ``tenant`` to ``number`` must keep; ``timezone`` is the recipient's, if known."""
    recipient_zone = ZoneInfo(timezone) if timezone else None
    area = rule_for_number(number)
    area_zone = ZoneInfo(area.zone) if area is not None else None
    local_zone = recipient_zone or area_zone or tenant.tz
    rules = [
        Rule("tenant", recipient_zone or tenant.tz, tenant_hours(tenant)),
        Rule("federal", local_zone, (FEDERAL_HOURS,)),
    ]
    if area is not None:
        state = area.rule
        sunday = () if state.sunday is None else (state.sunday,)
        rules.append(Rule(f"state:{state.state}", local_zone, (state.weekdays,), sunday))
    return rules


def next_allowed(rules: Sequence[Rule], when: float) -> float | None:
    """The first moment at or after ``when`` that every rule allows; None if none does within a week."""
    moment = when
    for _ in range(4 * SEARCH_DAYS * max(1, len(rules))):
        moved = False
        for rule in rules:
            allowed = rule.next_allowed(moment)
            if allowed is None:
                return None
            if allowed > moment:
                moment, moved = allowed, True
        if not moved:
            return moment
    return None


def last_allowed(rules: Sequence[Rule], when: float) -> float | None:
    """The last moment at or before ``when`` that every rule allows; None if none does within a week."""
    moment = when
    for _ in range(4 * SEARCH_DAYS * max(1, len(rules))):
        moved = False
        for rule in rules:
            allowed = rule.last_allowed(moment)
            if allowed is None:
                return None
            if allowed < moment:
                moment, moved = allowed, True
        if not moved:
            return moment
    return None


def blocking_rules(rules: Sequence[Rule], when: float) -> list[str]:
    """Names of the rules that do not allow ``when`` (for logs and tests)."""
    return [rule.name for rule in rules if rule.next_allowed(when) != when]
