"""Property: whatever happens, no text reaches a number suppressed for that tenant, or lands in quiet hours.

Random sequences of inbound keywords and revocation phrases, missed calls, job completions and
cancellations and clock moves, for two tenants in different timezones and callers in states with
stricter hours (FL 8-20, TX 9-21 and noon on Sundays, MS no Sundays) and without; "quiet hours" is
the strictest of the federal window, the tenant's and the state's. Only confirmations (replies to
STOP/START/HELP) are exempt.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lily_host.sms.compliance import HELP_WORDS, OPT_IN_WORDS, OPT_OUT_WORDS, in_quiet_hours
from lily_host.sms.revocation import is_revocation
from lily_host.testing import Harness, HarnessFactory

TENANTS = ("acme", "bravo")
CALLERS = ("+15557650001", "+15557650002", "+13055550123", "+12105550123", "+16015550123")
WORDS = (
    "STOP",
    "stop ",
    "Cancel",
    "START",
    "yes",
    "UNSTOP",
    "HELP",
    "info",
    "STOP please",
    "hi there",
    "please stop texting me",
    "can you stop by tomorrow?",
)


@dataclass(frozen=True)
class Inbound:
    tenant: str
    caller: str
    body: str


@dataclass(frozen=True)
class MissedCall:
    tenant: str
    caller: str


@dataclass(frozen=True)
class JobDone:
    tenant: str
    caller: str
    job: int


@dataclass(frozen=True)
class JobCancelled:
    tenant: str
    job: int


@dataclass(frozen=True)
class Advance:
    seconds: float


#: New York: Monday 2025-06-02 01:00, and midnight on the Friday / Saturday before the 2025 DST changes.
STARTS = (1748840400.0, 1741410000.0 - 86400.0, 1762056000.0 - 86400.0)

tenants = st.sampled_from(TENANTS)
callers = st.sampled_from(CALLERS)
jobs = st.integers(0, 2)
operations = st.one_of(
    st.builds(Inbound, tenants, callers, st.sampled_from(WORDS)),
    st.builds(MissedCall, tenants, callers),
    st.builds(JobDone, tenants, callers, jobs),
    st.builds(JobCancelled, tenants, jobs),
    st.builds(Advance, st.sampled_from([5.0, 40.0, 900.0, 3 * 3600.0, 7 * 3600.0, 13 * 3600.0])),
)


class Model:
    """What the suppression lists must be after each step."""

    def __init__(self) -> None:
        self.suppressed: dict[str, set[str]] = {tenant: set() for tenant in TENANTS}

    def apply(self, operation: Inbound) -> None:
        word = operation.body.strip().upper()
        if word in OPT_OUT_WORDS or (word not in OPT_IN_WORDS | HELP_WORDS and is_revocation(operation.body)):
            self.suppressed[operation.tenant].add(operation.caller)
        elif word in OPT_IN_WORDS:
            self.suppressed[operation.tenant].discard(operation.caller)


async def step(lily: Harness, operation: Any, model: Model) -> None:
    host = lily.host
    # Everything due now runs first, so the step's own effects are all that run at this instant.
    await lily.run_due()
    if isinstance(operation, Inbound):
        data = {
            "from": operation.caller,
            "to": "+15551230000",
            "body": operation.body,
            "message_sid": None,
            "media": [],
        }
        await host.events.emit("message.received", data, tenant=operation.tenant)
        model.apply(operation)
    elif isinstance(operation, MissedCall):
        data = {"caller": operation.caller, "business_number": "+15551230000", "call_sid": None, "status": "busy"}
        await host.events.emit("call.missed", data, tenant=operation.tenant)
    elif isinstance(operation, JobDone):
        data = {"job_id": f"J{operation.job}", "customer_name": "Sam Lee", "customer_phone": operation.caller}
        await host.events.emit("job.completed", data, tenant=operation.tenant)
    elif isinstance(operation, JobCancelled):
        await host.events.emit("job.cancelled", {"job_id": f"J{operation.job}"}, tenant=operation.tenant)
    else:
        lily.clock.advance(operation.seconds)
    await lily.run_due()


async def check_new_texts(lily: Harness, seen: int, model: Model) -> int:
    outbox = await lily.outbox()
    now = lily.clock.now()
    for sent in outbox[seen:]:
        tenant = await lily.host.tenants.require(sent["tenant"])
        message = await lily.host.messaging.get(tenant.id, sent["message_id"])
        assert message is not None
        if message.kind == "confirmation":
            continue
        assert sent["to"] not in model.suppressed[tenant.id], f"{message.template} to a number that opted out"
        assert not in_quiet_hours(tenant, now, None, sent["to"]), f"{message.template} sent in quiet hours"
    for tenant_id in TENANTS:
        assert set(await lily.host.messaging.compliance.suppressed(tenant_id)) == model.suppressed[tenant_id]
    return len(outbox)


async def run_scenario(factory: HarnessFactory, start: float, start_hour: int, operations: list[Any]) -> None:
    async with factory() as lily:
        lily.clock.set(start + start_hour * 3600)
        await lily.create_tenant("acme", name="Acme", review_link="https://r/acme", review_delay_seconds=3600)
        await lily.create_tenant(
            "bravo",
            name="Bravo",
            timezone="America/Los_Angeles",
            review_link="https://r/bravo",
            quiet_hours_end="08:30",
        )
        model = Model()
        seen = 0
        for operation in [*operations, Advance(86400.0), Advance(86400.0)]:
            await step(lily, operation, model)
            seen = await check_new_texts(lily, seen, model)


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    start=st.sampled_from(STARTS),
    start_hour=st.integers(0, 24 * 7 - 1),
    operations=st.lists(operations, min_size=1, max_size=20),
)
def test_no_text_reaches_an_opted_out_number_or_lands_in_quiet_hours(
    lily_harness: HarnessFactory, start: float, start_hour: int, operations: list[Any]
) -> None:
    asyncio.run(run_scenario(lily_harness, start, start_hour, operations))
