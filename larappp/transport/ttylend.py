"""Lending an open tty to another program (pppd) and taking it back as it was lent.

pppd on the module's own serial device (or pty) puts the kernel's async PPP line
discipline (N_PPP) on the tty, sets its own termios and clears the exclusive mode
(TIOCNXCL) when it ends. A pppd that ends normally puts the discipline and the termios
back; one killed with SIGKILL leaves N_PPP in place, and whoever reads the tty next gets
EAGAIN (FACTS.md). `reclaim()` makes the tty larappp's again either way: N_TTY, the
termios it had when lent, exclusive again. Lending never closes or reopens the tty, so
neither DTR nor the call it holds up changes hands.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import struct
import termios
from dataclasses import dataclass
from typing import Any

__all__ = ["N_TTY", "LentTty", "lend", "line_discipline", "reclaim"]

#: the kernel's terminal line discipline (<linux/tty.h> N_TTY)
N_TTY = 0
#: errors meaning the tty went away (unplugged, hung up, closed)
_GONE = frozenset({errno.EIO, errno.EBADF, errno.ENODEV, errno.ENXIO})


def line_discipline(fd: int) -> int:
    """The tty's line discipline number (TIOCGETD)."""
    raw = fcntl.ioctl(fd, termios.TIOCGETD, struct.pack("i", 0))
    return int(struct.unpack("i", raw)[0])


@dataclass(frozen=True)
class LentTty:
    """A tty lent out: its file descriptor (still larappp's) and the termios to restore."""

    fd: int
    attributes: list[Any]

    @property
    def rtscts(self) -> bool:
        """Whether larappp runs RTS/CTS flow control on it (the borrower should keep it)."""
        return bool(self.attributes[2] & termios.CRTSCTS)


def lend(fd: int) -> LentTty:
    """Note the tty's state before another program takes it; OSError if `fd` is no tty."""
    return LentTty(fd, termios.tcgetattr(fd))


def reclaim(lent: LentTty) -> list[str]:
    """Make the tty larappp's again after the borrower ended; what could not be reset.

    A tty that went away meanwhile (unplugged, hung up) is left alone: its next read
    reports that.
    """
    failures: list[str] = []
    try:
        if line_discipline(lent.fd) != N_TTY:
            fcntl.ioctl(lent.fd, termios.TIOCSETD, struct.pack("i", N_TTY))
        termios.tcsetattr(lent.fd, termios.TCSANOW, lent.attributes)
    except (OSError, termios.error) as exc:
        code = exc.errno if isinstance(exc, OSError) else exc.args[0]
        if code not in _GONE:
            failures.append(f"resetting the tty after pppd: {exc}")
        return failures
    with contextlib.suppress(OSError):
        fcntl.ioctl(lent.fd, termios.TIOCEXCL)  # pppd's TIOCNXCL at its end lifted it
    return failures
