"""Google Calendar for Lily: per-tenant OAuth and the ``calendar`` capability."""

from __future__ import annotations

__version__ = "0.1.0"
