"""Cal.com for Lily: booking webhooks in, booking events out."""

from __future__ import annotations

__version__ = "0.1.0"
