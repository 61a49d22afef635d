"""Structured logging: JSON lines in production, readable console lines in development.

Every line about a request or a task carries tenant, integration and delivery/task id (bound by
the webhook pipeline and the worker). Secrets are redacted and phone numbers masked here, in one
processor, so no call site has to remember.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from lily_host.plugin_api.masking import mask_phone

__all__ = ["configure_logging", "get_logger", "mask_phone"]

_SECRET_WORDS = ("token", "secret", "password", "authorization", "api_key", "apikey", "signature")
# Phone numbers as providers send them: E.164 with its "+" (optionally spaced or punctuated).
# Requiring the "+" keeps timestamps, ids and amounts intact.
_PHONE = re.compile(r"(?<![\w+])\+\d[\d\-\s().]{6,}\d")
#: Keys whose values are phone numbers even without a "+".
_PHONE_KEYS = frozenset({"to", "from", "from_", "caller", "phone", "customer_phone", "recipient", "number"})


#: Words that introduce an example in a message ("write it like +15551234567"): an example is
#: nobody's number, and masking it would leave the reader with "+1******4567" to copy.
_EXAMPLE_MARKERS = ("like ", "e.g. ", "e.g ", "example: ")


def _mask_in_text(text: str) -> str:
    def mask(match: re.Match[str]) -> str:
        before = text[max(0, match.start() - 10) : match.start()].lower()
        if before.endswith(_EXAMPLE_MARKERS):
            return match.group(0)
        return mask_phone(match.group(0))

    return _PHONE.sub(mask, text)


def _redact(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        lowered = key.lower()
        if any(word in lowered for word in _SECRET_WORDS) and value is not None:
            event_dict[key] = "[redacted]"
        elif isinstance(value, str) and lowered in _PHONE_KEYS:
            event_dict[key] = mask_phone(value)
        elif isinstance(value, str) and key not in ("event", "timestamp"):
            event_dict[key] = _mask_in_text(value)
    return event_dict


def configure_logging(env: str = "development", level: str = "INFO") -> None:
    """Set up structlog (and the stdlib root logger it renders through) once per process."""
    renderer: Any = (
        structlog.processors.JSONRenderer() if env == "production" else structlog.dev.ConsoleRenderer(colors=False)
    )
    numeric_level = logging.getLevelName(level.upper())
    if not isinstance(numeric_level, int):
        numeric_level = logging.INFO
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str = "lily", **context: Any) -> structlog.stdlib.BoundLogger:
    # Without context, keep structlog's lazy proxy: a module-level logger then follows
    # configure_logging() even when the module was imported first.
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name, **context)
    return logger
