"""Task handlers of the Twilio plugin."""

from __future__ import annotations

from typing import Any

from lily_host import TaskContext
from lily_twilio.client import OPTED_OUT_CODE

STATUS_TASK = "twilio.message_status"


async def record_message_status(ctx: TaskContext, payload: dict[str, Any]) -> None:
    """A status callback, recorded on the message; 21610 suppresses the recipient for this tenant."""
    if ctx.tenant_id is None:
        return
    error_code = payload.get("error_code")
    await ctx.host.record_sms_status(
        ctx.tenant_id,
        str(payload["message_sid"]),
        str(payload["status"]),
        str(error_code) if error_code else None,
        recipient_opted_out=error_code == str(OPTED_OUT_CODE),
        channel="twilio",
    )
