"""What a settings model says about itself: the environment variable of each field, which ones a
validation error found missing, and an instance built with development values filled in."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from lily_host.config.settings_errors import env_name


def missing_env_names(model: type[BaseSettings], error: ValidationError) -> list[str]:
    """The environment variables a validation error found missing, in the error's order."""
    names = []
    for item in error.errors():
        if item["type"] == "missing" and item["loc"]:
            field_name = str(item["loc"][0])
            names.append(env_name(model, field_name) if field_name in model.model_fields else field_name.upper())
    return names


def init_key(model: type[BaseSettings], field_name: str) -> str:
    """The keyword a settings model accepts for a field: its alias when it has one."""
    info = model.model_fields[field_name]
    alias = info.validation_alias if isinstance(info.validation_alias, str) else info.alias
    return alias or field_name


def settings_with_dev_values(model: type[BaseSettings], dev_env: Mapping[str, str]) -> BaseSettings | None:
    """``model`` with its documented development values (``lily_dev_env``) filling what the
    environment leaves unset; None if that still does not validate. The process environment wins
    and is left untouched."""
    by_env_name = {env_name(model, field_name): init_key(model, field_name) for field_name in model.model_fields}
    overrides: dict[str, Any] = {
        by_env_name[name]: value for name, value in dev_env.items() if name in by_env_name and name not in os.environ
    }
    try:
        return model(**overrides)
    except ValidationError:
        return None
