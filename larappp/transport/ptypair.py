"""A pty pair whose slave another program (pppd) opens by path, while larappp reads and
writes the master asynchronously: the bridge between a module port that only larappp can
reach (an RFC 2217 URL, later a CMUX channel, or a device larappp already holds) and a
program that wants a tty.

larappp keeps its own slave fd open for the pair's lifetime, so the master does not read
EIO before the other program has opened the slave, nor between its open and its first
write. `hang_up()` closes the master: every holder of the slave then sees a hang-up
(pppd: "Modem hangup"), which ends it without an LCP Terminate exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import struct
import termios
import tty
from collections.abc import Callable
from typing import Self

from larappp.errors import PortClosed

__all__ = ["PtyPair"]


class PtyPair:
    """A raw pty: `slave_path` for another program, an asyncio master side for larappp."""

    def __init__(self, master_fd: int, slave_fd: int, slave_path: str) -> None:
        self._master: int | None = master_fd
        self._slave: int | None = slave_fd
        self.slave_path = slave_path
        self._waiters: set[asyncio.Future[None]] = set()
        self._write_lock = asyncio.Lock()

    @classmethod
    def open(cls) -> Self:
        """A new pty in raw mode (no echo, no line editing, 8 bits); fds not inherited."""
        master, slave = os.openpty()  # both non-inheritable (PEP 446)
        try:
            tty.setraw(slave)
            os.set_blocking(master, False)
            path = os.ttyname(slave)
        except OSError:
            os.close(master)
            os.close(slave)
            raise
        return cls(master, slave, path)

    @property
    def is_open(self) -> bool:
        return self._master is not None

    def _fd(self) -> int:
        if self._master is None:
            raise PortClosed(f"the pty bridge {self.slave_path} is closed")
        return self._master

    async def _wait(self, fd: int, *, writable: bool) -> None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        add: Callable[..., None] = loop.add_writer if writable else loop.add_reader
        remove: Callable[[int], bool] = loop.remove_writer if writable else loop.remove_reader

        def ready() -> None:
            remove(fd)
            if not waiter.done():
                waiter.set_result(None)

        add(fd, ready)
        self._waiters.add(waiter)
        try:
            await waiter
        finally:
            self._waiters.discard(waiter)
            if self._master == fd:
                remove(fd)

    async def read(self, max_bytes: int = 65536) -> bytes:
        """At least one byte the program wrote to the slave; PortClosed once the pty is gone."""
        while True:
            fd = self._fd()
            try:
                data = os.read(fd, max_bytes)
            except BlockingIOError:
                await self._wait(fd, writable=False)
                continue
            except OSError as exc:
                if exc.errno == errno.EIO:  # every slave fd closed: the program is gone
                    raise PortClosed(f"the program on {self.slave_path} closed it") from exc
                raise PortClosed(f"the pty bridge {self.slave_path} failed: {exc}") from exc
            if not data:
                raise PortClosed(f"the program on {self.slave_path} closed it")
            return data

    async def write(self, data: bytes) -> None:
        """Write all of `data` towards the program, waiting while the pty buffer is full."""
        async with self._write_lock:
            view = memoryview(data)
            while view:
                fd = self._fd()
                try:
                    written = os.write(fd, view)
                except BlockingIOError:
                    await self._wait(fd, writable=True)
                    continue
                except OSError as exc:
                    raise PortClosed(f"the pty bridge {self.slave_path} failed: {exc}") from exc
                view = view[written:]

    def pending(self) -> int:
        """Bytes the program wrote that larappp has not read yet (0 once closed)."""
        if self._master is None:
            return 0
        try:
            raw = fcntl.ioctl(self._master, termios.FIONREAD, struct.pack("i", 0))
        except OSError:
            return 0
        return int(struct.unpack("i", raw)[0])

    def hang_up(self) -> None:
        """Close the master: the slave's holders see a hang-up; larappp's own slave fd goes too."""
        master, self._master = self._master, None
        if master is not None:
            loop = _running_loop()
            if loop is not None:
                loop.remove_reader(master)
                loop.remove_writer(master)
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_exception(PortClosed(f"the pty bridge {self.slave_path} was closed"))
            os.close(master)
        self._close_slave()

    def close(self) -> None:
        """Close both ends; safe to call twice."""
        self.hang_up()

    def _close_slave(self) -> None:
        slave, self._slave = self._slave, None
        if slave is not None:
            with contextlib.suppress(OSError):
                os.close(slave)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
