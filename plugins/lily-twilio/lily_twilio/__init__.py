"""Twilio for Lily: voice and SMS webhooks, message status callbacks and the ``sms`` channel."""

from __future__ import annotations

__version__ = "0.1.0"
