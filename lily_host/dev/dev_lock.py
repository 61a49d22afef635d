"""One ``lily dev`` per folder (``.lily/dev.pid``), and its port checked free before anything starts."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from lily_host.plugin_api.errors import ConfigurationError

PID_FILE = "dev.pid"


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
