"""A plugin that registers a task name the echo plugin already uses."""

from collections.abc import Callable
from typing import Any

from lily_host import TaskContext, TaskHandler, hookimpl

#: The plugin API version this plugin is written for (docs/api.md, "Versions").
LILY_PLUGIN_API = 2


async def other(ctx: TaskContext, payload: dict[str, Any]) -> None:
    return None


@hookimpl
def register_tasks(register: Callable[[TaskHandler], None]) -> None:
    register(TaskHandler("echo.record", other))
