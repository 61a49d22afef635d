"""Settings errors people can act on: the environment variable, the value it holds and what is allowed.

pydantic names the field (``env``) and prefixes messages with "Value error, "; an operator set
``LILY_ENV``. Everything that turns a settings ``ValidationError`` into a message, the host's and
the plugins', goes through :func:`describe`. Values of secret variables are never shown.
"""

from __future__ import annotations

import re
import typing
from typing import Any, TypeVar

from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings

from lily_host.plugin_api.errors import ConfigurationError

S = TypeVar("S", bound=BaseSettings)

#: Variable names whose values are secrets (shown as their length only).
_SECRET_PARTS = ("SECRET", "TOKEN", "PASSWORD", "API_KEY", "AUTH")
_PREFIXES = ("Value error, ", "Assertion failed, ")
_LONGEST_VALUE = 60


def env_name(model: type[BaseSettings], field_name: str) -> str:
    """The environment variable that sets ``field_name`` of ``model``."""
    info = model.model_fields[field_name]
    alias = info.validation_alias if isinstance(info.validation_alias, str) else info.alias
    if alias:
        return alias.upper()
    prefix = str(model.model_config.get("env_prefix", ""))
    return f"{prefix}{field_name}".upper()


def _is_secret(model: type[BaseSettings], field_name: str, name: str) -> bool:
    if any(part in name for part in _SECRET_PARTS):
        return True
    annotation = model.model_fields[field_name].annotation
    return annotation is SecretStr or SecretStr in typing.get_args(annotation)


def _shown(value: Any, secret: bool) -> str:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if secret:
        length = len(value) if isinstance(value, str) else 0
        return f"(hidden, {length} characters)"
    text = value if isinstance(value, str) else str(value)
    if len(text) > _LONGEST_VALUE:
        text = text[:_LONGEST_VALUE] + "..."
    return repr(text)


def clean_message(message: str) -> str:
    """pydantic's message without its "Value error, " prefix, and "Input should be" said plainly."""
    for prefix in _PREFIXES:
        if message.startswith(prefix):
            message = message[len(prefix) :]
    return re.sub(r"^Input should be\b", "must be", message)


def describe(model: type[BaseSettings], error: ValidationError) -> str:
    """One line for every problem in ``error``: ``VAR='value': what is allowed``, joined by "; "."""
    parts: list[str] = []
    missing: list[str] = []
    for item in error.errors():
        message = clean_message(str(item["msg"]))
        field_name = str(item["loc"][0]) if item["loc"] else None
        if field_name is None or field_name not in model.model_fields:
            parts.append(message)  # a check across fields: its message names the variables
            continue
        name = env_name(model, field_name)
        if item["type"] == "missing":
            missing.append(name)
            continue
        shown = f"{name}={_shown(item.get('input'), _is_secret(model, field_name, name))}"
        # Plugins' validators often name the variable themselves: say it once.
        parts.append(f"{shown}{message[len(name) :]}" if message.startswith(name) else f"{shown}: {message}")
    if missing:
        parts.insert(0, f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} required")
    return "; ".join(parts)


def load_settings(model: type[S]) -> S:
    """``model()`` from the environment, or ConfigurationError with :func:`describe`'s line."""
    try:
        return model()
    except ValidationError as error:
        raise ConfigurationError(describe(model, error)) from None
