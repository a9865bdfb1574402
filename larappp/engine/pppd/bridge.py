"""The pump between pppd's pty and the module's dialled port.

pppd gets the slave of a pty pair; this copies bytes between the pty master and the
pipe. It holds the module's bytes until pppd has spoken (its first LCP
Configure-Request): bytes written before pppd opened the tty would be flushed. Flow
control (RTS/CTS per `modem.rtscts`) and the port's lock are the pipe's. A result code
between the module's frames (NO CARRIER: it left data mode) hangs pppd up at once and
leaves the rest of the port's bytes to the AT runner.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from larappp.engine.base import cancel_all
from larappp.errors import PortClosed
from larappp.proto.ppp.datamode import DataModeWatcher
from larappp.transport.pipe import Pipe
from larappp.transport.ptypair import PtyPair

__all__ = ["PtyBridge"]


class PtyBridge:
    """Copies bytes both ways between a pty master (pppd's side) and the module's pipe."""

    def __init__(
        self, pipe: Pipe, pty: PtyPair, *, leftover: bytes = b"", on_port_lost: Callable[[PortClosed], None],
        on_left_data_mode: Callable[[str], None] = lambda _result: None,
    ) -> None:
        self.pipe = pipe
        self.pty = pty
        self._leftover = leftover
        self._on_port_lost = on_port_lost
        self._on_left_data_mode = on_left_data_mode
        self._watcher = DataModeWatcher()
        #: set once pppd wrote its first bytes (it has opened its tty)
        self.pppd_spoke = asyncio.Event()
        self._forwarding = False
        self._from_pppd: asyncio.Task[None] | None = None
        self._to_pppd: asyncio.Task[None] | None = None

    def start(self, name: str) -> None:
        self._from_pppd = asyncio.create_task(self._pppd_to_port(), name=f"{name} pty-in")
        self._to_pppd = asyncio.create_task(self._port_to_pppd(), name=f"{name} pty-out")

    async def _pppd_to_port(self) -> None:
        while True:
            try:
                data = await self.pty.read()
            except PortClosed:
                return  # pppd is gone; the engine's process watcher reports why
            self.pppd_spoke.set()
            self._forwarding = True
            try:
                await self.pipe.write(data)
            except PortClosed as exc:
                self._port_lost(exc)
                return
            finally:
                self._forwarding = False

    async def _port_to_pppd(self) -> None:
        await self.pppd_spoke.wait()
        try:
            data, self._leftover = self._leftover, b""
            while True:
                result = self._watcher.receive_data(data)
                if result is not None:
                    self._on_left_data_mode(result)
                    self.pty.hang_up()  # pppd sees a hang-up and ends
                    return
                if data:
                    await self.pty.write(data)
                try:
                    data = await self.pipe.read()
                except PortClosed as exc:
                    self._port_lost(exc)
                    return
        except PortClosed:
            return  # pppd is gone

    def _port_lost(self, exc: PortClosed) -> None:
        self._on_port_lost(exc)
        self.pty.hang_up()  # pppd sees a hang-up and ends

    def stop_reading_port(self) -> None:
        """pppd has exited: the module's bytes after this (NO CARRIER) are the AT runner's."""
        if self._to_pppd is not None:
            self._to_pppd.cancel()

    async def forward_last_frames(self, limit: float = 1.0) -> None:
        """After pppd's exit: let what it wrote last (a Terminate-Ack) reach the module, then stop."""
        deadline = time.monotonic() + limit
        idle = 0
        while self.pty.is_open and time.monotonic() < deadline:
            # twice idle, 10 ms apart: the kernel hands the slave's last bytes over a moment late
            idle = idle + 1 if not self._forwarding and self.pty.pending() == 0 else 0
            if idle >= 2:
                break
            await asyncio.sleep(0.01)
        if self._from_pppd is not None:
            self._from_pppd.cancel()

    async def stop(self) -> None:
        await cancel_all([t for t in (self._from_pppd, self._to_pppd) if t is not None])
        self._from_pppd = self._to_pppd = None
