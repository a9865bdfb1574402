"""Turn a port spec from the configuration into a Pipe, and wait for a port to come back."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

from larappp.errors import ConfigError, PortError
from larappp.transport.pipe import Pipe
from larappp.transport.rfc2217 import Rfc2217Pipe, parse_rfc2217_url
from larappp.transport.serial import SerialPipe

#: How often `wait_for_port()` looks again.
POLL_INTERVAL_S = 0.2


def open_pipe(spec: str, *, baud: int = 115200, rtscts: bool = False) -> Pipe:
    """The pipe for `spec`, not yet opened (`await pipe.open()`); ConfigError for unknown forms.

    Accepted: an absolute device path (/dev/ttyACM0, /dev/ttyUSB2, a pty slave or a
    symlink to one) and an RFC 2217 URL (rfc2217://HOST:PORT).
    """
    spec = spec.strip()
    if spec.startswith("rfc2217://"):
        return Rfc2217Pipe(spec, baud=baud, rtscts=rtscts)
    if spec.startswith("/"):
        return SerialPipe(spec, baud=baud, rtscts=rtscts)
    raise ConfigError(_unknown_spec(spec))


def _unknown_spec(spec: str) -> str:
    if spec and "://" not in spec and "/" not in spec:
        example = f"/dev/{spec}"
    else:
        example = "/dev/ttyACM0"
    return (
        f"port '{spec}' is not understood: give an absolute device path such as {example}"
        " or an RFC 2217 URL such as rfc2217://HOST:PORT"
    )


async def wait_for_port(spec: str, timeout: float, *, interval: float = POLL_INTERVAL_S) -> None:
    """Wait until the port in `spec` is back (after a module reboot); PortError on timeout.

    A device path is back when it exists and is readable and writable; it is not
    opened, because opening and closing a tty toggles DTR. An RFC 2217 URL is back when
    its TCP port accepts a connection again.
    """
    spec = spec.strip()
    if spec.startswith("rfc2217://"):
        host, port = parse_rfc2217_url(spec)
        probe = _tcp_probe(host, port, interval)
        what = "check the RFC 2217 server and the module behind it"
    elif spec.startswith("/"):
        probe = _path_probe(spec)
        what = "check the module is powered and its USB port enumerated (dmesg)"
    else:
        raise ConfigError(_unknown_spec(spec))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if await probe():
            return
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise PortError(f"{spec} did not come back within {timeout:g} s: {what}")
        await asyncio.sleep(min(interval, remaining))


def _path_probe(path: str) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return os.path.exists(path) and os.access(path, os.R_OK | os.W_OK)

    return probe


def _tcp_probe(host: str, port: int, attempt_timeout: float) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), max(attempt_timeout, 1.0)
            )
        except (OSError, TimeoutError):
            return False
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
        return True

    return probe
