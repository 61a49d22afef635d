"""What a plugin's local stand-in for its provider is, under ``lily dev`` (public: ``lily_host``).

A plugin whose provider needs an account (Stripe, Google, S3) names a stand-in on its settings
model: ``lily_dev_standin = "package.module:function"`` (a path, so that heavy imports such as
moto happen only under ``lily dev``). ``lily dev`` calls the function with a :class:`DevContext`;
it returns ``None`` when the environment already configures the plugin, or a :class:`DevStandIn`:
a running local server and the variables that point the plugin at it. Those variables are set in
``lily dev``'s environment and shared with the commands run beside it (``.lily/dev.env``), so the
plugin is simply configured, as it would be against the real provider. Starting and stopping them
is ``lily dev``'s (:mod:`lily_host.dev.standins`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lily_host.plugin_api.host_api import LilyHost


@dataclass(frozen=True)
class DevContext:
    """What a stand-in may need to know about the ``lily dev`` it serves."""

    data_dir: Path
    #: Where Lily is reached (``http://localhost:8000``): OAuth redirects come back here.
    public_url: str
    environ: Mapping[str, str]


@dataclass
class DevStandIn:
    """A local provider: the variables that point its plugin at it, and how to stop it."""

    description: str
    env: dict[str, str]
    stop: Callable[[], None] = field(default=lambda: None)
    #: Called with the running host and the demo tenant's id, each start (e.g. connect its calendar).
    prepare_tenant: Callable[[LilyHost, str], Awaitable[None]] | None = None


#: The function a settings model's ``lily_dev_standin`` names.
StandInFactory = Callable[[DevContext], DevStandIn | None]
