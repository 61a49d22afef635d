"""State sending hours stricter than the federal 8:00-21:00, keyed by the recipient's area code.

Data, not logic (:mod:`lily_host.sms.send_windows` applies it). Each row names the state, the hours
texts may go in the recipient's local time (Monday-Saturday, and Sunday where the state treats it
differently; ``None`` = no texts that day), the zone most of the state's area codes are in, and the
source the row was taken from. States missing here follow the federal window (47 CFR
64.1200(c)(1)); the tenant's own quiet hours still apply on top, and the strictest rule wins.

Legal holidays (AL, LA, MS ban calls on some) are not modelled: the federal and tenant windows
apply on those days. This table is reviewed data, not legal advice: when a statute changes, change
its row and its source together.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

#: (start, end) in minutes after local midnight: texts may go from start up to (not including) end.
Hours = tuple[int, int]


def _hours(start_hour: int, end_hour: int) -> Hours:
    return start_hour * 60, end_hour * 60


@dataclass(frozen=True)
class StateRule:
    state: str
    #: Monday to Saturday.
    weekdays: Hours
    #: Sunday: the same as ``weekdays`` unless given; ``None`` means no texts on Sunday.
    sunday: Hours | None
    #: IANA zone of most of the state's area codes (exceptions in ``ZONE_EXCEPTIONS``).
    zone: str
    source: str


_SAME = _hours(8, 20)

STATE_RULES: Mapping[str, StateRule] = {
    rule.state: rule
    for rule in (
        StateRule(
            "AL",
            _hours(8, 20),
            None,
            "America/Chicago",
            "Ala. Admin. Code r. 770-X-5-.16 (Alabama PSC telephone solicitation rule): 8am-8pm, none on Sundays",
        ),
        StateRule(
            "CT",
            _hours(9, 20),
            _hours(9, 20),
            "America/New_York",
            "Conn. Gen. Stat. § 42-288a(c) as amended by Public Act 23-98 (2023): 9am-8pm",
        ),
        StateRule(
            "FL",
            _SAME,
            _SAME,
            "America/New_York",
            "Fla. Stat. § 501.059(8)(a) (Florida Telephone Solicitation Act, as amended 2021/2023): 8am-8pm",
        ),
        StateRule(
            "LA",
            _hours(8, 20),
            None,
            "America/Chicago",
            "La. R.S. 45:844.15 and La. PSC General Order (Do Not Call): 8am-8pm, none on Sundays",
        ),
        StateRule(
            "MD",
            _SAME,
            _SAME,
            "America/New_York",
            "Md. Code, Com. Law § 14-4503 (Stop the Spam Calls Act of 2023, eff. 2024-01-01): 8am-8pm",
        ),
        StateRule(
            "MS",
            _hours(8, 20),
            None,
            "America/Chicago",
            "Miss. Code Ann. § 77-3-729 (telephone solicitation): 8am-8pm, none on Sundays",
        ),
        StateRule(
            "NJ",
            _SAME,
            _SAME,
            "America/New_York",
            "N.J. Stat. § 56:8-119 et seq. (Telemarketing Do Not Call Law) as surveyed in issue 17: 8am-8pm",
        ),
        StateRule(
            "OK",
            _SAME,
            _SAME,
            "America/Chicago",
            "Okla. Stat. tit. 15, § 775C.4 (Telephone Solicitation Act of 2022, eff. 2022-11-01): 8am-8pm",
        ),
        StateRule(
            "TX",
            _hours(9, 21),
            _hours(12, 21),
            "America/Chicago",
            "Tex. Bus. & Com. Code § 301.051: 9am-9pm Monday-Saturday, noon-9pm Sunday",
        ),
        StateRule(
            "WA",
            _SAME,
            _SAME,
            "America/Los_Angeles",
            "Rev. Code Wash. § 80.36.390(2): 8am-8pm",
        ),
    )
}

#: Area codes (NANP, +1) of the states above. Overlays included.
AREA_CODES: Mapping[str, str] = {
    code: state
    for state, codes in {
        "AL": "205 251 256 334 483 659 938",
        "CT": "203 475 860 959",
        "FL": "239 305 321 324 352 386 407 448 561 645 656 689 727 728 754 772 786 813 850 863 904 941 954",
        "LA": "225 318 337 457 504 985",
        "MD": "227 240 301 410 443 667",
        "MS": "228 601 662 769",
        "NJ": "201 551 609 640 732 848 856 862 908 973",
        "OK": "405 539 572 580 918",
        "TX": (
            "210 214 254 281 325 346 361 409 430 432 469 512 682 713 726 737 806 817 830 832 903 915 936 940 945 956 "
            "972 979"
        ),
        "WA": "206 253 360 425 509 564",
    }.items()
    for code in codes.split()
}

#: Area codes in another zone than most of their state.
ZONE_EXCEPTIONS: Mapping[str, str] = {
    "850": "America/Chicago",  # Florida panhandle
    "448": "America/Chicago",  # overlay of 850
    "915": "America/Denver",  # El Paso
}


@dataclass(frozen=True)
class AreaRule:
    area_code: str
    rule: StateRule
    zone: str


def area_code(number: str) -> str | None:
    """The NANP area code of an E.164 number (``+1NXX...``), else None."""
    if len(number) == 12 and number.startswith("+1") and number[2:].isascii() and number[2:].isdigit():
        return number[2:5]
    return None


def rule_for_number(number: str | None) -> AreaRule | None:
    """The stricter state rule that applies to ``number`` by its area code, if any."""
    code = area_code(number) if number else None
    if code is None:
        return None
    state = AREA_CODES.get(code)
    if state is None:
        return None
    rule = STATE_RULES[state]
    return AreaRule(code, rule, ZONE_EXCEPTIONS.get(code, rule.zone))
