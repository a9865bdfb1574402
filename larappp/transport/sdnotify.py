"""systemd's notify protocol (sd_notify(3)): readiness, status, watchdog, for Type=notify.

One datagram per message to the AF_UNIX socket named by $NOTIFY_SOCKET ("@" starts an
abstract name); every function is silent without it, so `larappp up --foreground` works
the same outside systemd. The helpers build the fields sd_notify(3) defines; a status
line is one line of text a person reads in `systemctl status`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping

__all__ = [
    "extend_timeout",
    "forwarding_status",
    "keep_informed",
    "ready",
    "sd_notify",
    "status",
    "stopping",
    "watchdog",
    "watchdog_interval",
]

log = logging.getLogger(__name__)


def sd_notify(message: str, *, environ: Mapping[str, str] | None = None) -> bool:
    """Send `message` (newline-separated KEY=VALUE fields); False when not under systemd or it failed."""
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("could not notify systemd at %s: %s", env.get("NOTIFY_SOCKET"), exc)
        return False
    return True


def _one_line(text: str) -> str:
    return " ".join(text.split())


def ready(status_text: str = "") -> bool:
    """Start-up is complete (Type=notify units leave "activating"), with an optional status."""
    return sd_notify("READY=1" + (f"\nSTATUS={_one_line(status_text)}" if status_text else ""))


def status(text: str) -> bool:
    """The one line `systemctl status` shows as the service's status."""
    return sd_notify(f"STATUS={_one_line(text)}")


#: how long past the unit's own timeout one progress line keeps a bring-up (or a teardown)
#: alive: longer than the longest silent step (an AT command may take 180 s by the AT
#: manual), so that only larappp's own timeouts end a bring-up that still moves.
PROGRESS_GRACE_S = 200.0


def forwarding_status(progress: Callable[[str], None]) -> Callable[[str], None]:
    """`progress`, each message also sent as STATUS= when running under systemd.

    Every message also carries EXTEND_TIMEOUT_USEC: a bring-up that reports progress
    (waiting for registration, a module reboot) is waiting legitimately, and systemd's
    start timeout must not cut it short while larappp's own timeouts still run.
    """
    if not os.environ.get("NOTIFY_SOCKET"):
        return progress
    extend = f"EXTEND_TIMEOUT_USEC={round(PROGRESS_GRACE_S * 1_000_000)}"

    def both(message: str) -> None:
        progress(message)
        sd_notify(f"STATUS={_one_line(message)}\n{extend}")

    return both


def stopping(status_text: str = "") -> bool:
    """Teardown has begun."""
    return sd_notify("STOPPING=1" + (f"\nSTATUS={_one_line(status_text)}" if status_text else ""))


def watchdog() -> bool:
    """Keep-alive for WatchdogSec=: send it only while the service is really healthy."""
    return sd_notify("WATCHDOG=1")


def extend_timeout(seconds: float) -> bool:
    """Ask for `seconds` more before the start, stop or runtime timeout fires (EXTEND_TIMEOUT_USEC)."""
    return sd_notify(f"EXTEND_TIMEOUT_USEC={max(0, round(seconds * 1_000_000))}")


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between two WATCHDOG=1 the manager expects (half of WatchdogSec=), None when off.

    sd_watchdog_enabled(3): $WATCHDOG_USEC is the timeout, and when $WATCHDOG_PID is set
    it must be this process (a child that inherited the environment must not ping).
    """
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 2_000_000


async def keep_informed(
    healthy: Callable[[], bool],
    describe: Callable[[], str],
    *,
    period: float = 2.0,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Run until cancelled: WATCHDOG=1 while `healthy()`, STATUS=`describe()` when it changes.

    Started once the service is READY (systemd.service(5): the watchdog is activated when
    start-up is complete). A service that stops being healthy stops pinging, so systemd
    restarts it once WatchdogSec= has passed. Does nothing outside systemd.
    """
    env = os.environ if environ is None else environ
    if not env.get("NOTIFY_SOCKET"):
        return
    interval = watchdog_interval(env)
    sleep = min(period, interval) if interval else period
    shown = describe()
    while True:
        if interval and healthy():
            sd_notify("WATCHDOG=1", environ=env)
        now = describe()
        if now != shown:
            sd_notify(f"STATUS={_one_line(now)}", environ=env)
            shown = now
        await asyncio.sleep(sleep)
