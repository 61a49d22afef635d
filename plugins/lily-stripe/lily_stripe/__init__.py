"""Stripe for Lily: trials, Checkout, the customer portal, and tenant plan/status kept in step with Stripe."""

from __future__ import annotations

__version__ = "0.1.0"
