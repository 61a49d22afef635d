"""A plugin whose hook name is misspelled: the host must say so instead of ignoring it."""

from collections.abc import Callable

from lily_host import TaskHandler, hookimpl

#: The plugin API version this plugin is written for (docs/api.md, "Versions").
LILY_PLUGIN_API = 2


@hookimpl
def register_task(register: Callable[[TaskHandler], None]) -> None:  # should be register_tasks
    pass
