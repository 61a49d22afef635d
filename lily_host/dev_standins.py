"""``lily dev``'s local stand-ins for providers, and its "one per folder" lock.

A plugin whose provider needs an account (Stripe, Google, S3) names a stand-in on its settings
model: ``lily_dev_standin = "package.module:function"`` (a path, so that heavy imports such as
moto happen only under ``lily dev``). ``lily dev`` calls the function with a :class:`DevContext`;
it returns ``None`` when the environment already configures the plugin, or a :class:`DevStandIn`:
a running local server and the variables that point the plugin at it. Those variables are set in
``lily dev``'s environment and shared with the commands run beside it (``.lily/dev.env``), so the
plugin is simply configured, as it would be against the real provider.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import socket
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lily_host.errors import ConfigurationError
from lily_host.log import get_logger

if TYPE_CHECKING:
    from lily_host.host import Host
    from lily_host.plugins import PluginRegistry

log = get_logger("lily.dev")

PID_FILE = "dev.pid"


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
    prepare_tenant: Callable[[Host, str], Awaitable[None]] | None = None


StandInFactory = Callable[[DevContext], DevStandIn | None]


def _factory(path: str) -> StandInFactory:
    module_name, _, attribute = path.partition(":")
    factory: StandInFactory = getattr(importlib.import_module(module_name), attribute)
    return factory


def start_standins(registry: PluginRegistry, context: DevContext) -> dict[str, DevStandIn]:
    """Start the stand-in of every plugin that names one and is not configured by the environment.

    A stand-in that cannot start (say moto is not installed) is logged and skipped: the plugin then
    stays ``not_configured`` and ``lily dev``'s banner says which variables to set.
    """
    started: dict[str, DevStandIn] = {}
    for name, record in registry.records.items():
        model = record.settings_model
        path = getattr(model, "lily_dev_standin", None) if model is not None else None
        if not isinstance(path, str) or record.state.value == "disabled":
            continue
        try:
            standin = _factory(path)(context)
        except Exception as error:  # a missing optional dependency must not stop `lily dev`
            log.warning("local stand-in not started", plugin=name, error=f"{type(error).__name__}: {error}")
            continue
        if standin is not None:
            started[name] = standin
    return started


def stop_standins(standins: Mapping[str, DevStandIn]) -> None:
    for name, standin in standins.items():
        try:
            standin.stop()
        except Exception as error:  # stopping the others matters more
            log.warning("local stand-in did not stop cleanly", plugin=name, error=str(error))


# --- one `lily dev` per folder ------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_dev(data_dir: Path) -> tuple[int, int] | None:
    """(pid, port) of the ``lily dev`` running in this folder, if one is."""
    try:
        pid_text, _, port_text = (data_dir / PID_FILE).read_text().strip().partition(" ")
        pid, port = int(pid_text), int(port_text)
    except (OSError, ValueError):
        return None
    return (pid, port) if pid != os.getpid() and _alive(pid) else None


@contextlib.contextmanager
def dev_lock(data_dir: Path, port: int) -> Iterator[Path]:
    """Hold ``.lily/dev.pid`` while this ``lily dev`` runs; refuse, touching nothing, if another holds it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / PID_FILE
    for _attempt in range(2):
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            other = running_dev(data_dir)
            if other is not None:
                raise ConfigurationError(
                    f"Lily dev is already running here (pid {other[0]}, port {other[1]}); "
                    "use it, or stop it first (Ctrl-C in its terminal)"
                ) from None
            path.unlink(missing_ok=True)  # left by a `lily dev` that was killed
            continue
        with os.fdopen(descriptor, "w") as file:
            file.write(f"{os.getpid()} {port}\n")
        break
    else:
        raise ConfigurationError(f"cannot take {path}: another `lily dev` is starting here")
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def check_port_free(bind_host: str, port: int) -> None:
    """ConfigurationError, before anything starts, when ``bind_host:port`` is taken."""
    with socket.socket(socket.AF_INET6 if ":" in bind_host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((bind_host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise ConfigurationError(
                    f"port {port} on {bind_host} is already in use; stop what uses it or pick another with --port"
                ) from None
            raise ConfigurationError(f"cannot listen on {bind_host}:{port}: {error.strerror}") from None
