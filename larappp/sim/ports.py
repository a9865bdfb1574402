"""Publishing the simulated module's ports: a pty with a stable path, an RFC 2217 server.

A pty behaves like a USB CDC-ACM port of the module: while the module reboots it is
gone (the master closes, so the DTE's reads fail, and the symlink disappears), then a
new pty appears at the same symlink path. A pty has no modem lines; the DTE setting
speed B0 (what pppd does to drop DTR) or closing the port counts as DTR OFF.

RFC 2217 carries the lines both ways: pyserial's PortManager drives a port object whose
DTR/RTS setters reach the module and whose CTS/DSR/DCD come from it. A client asking for
hardware flow control (SET-CONTROL) gets what a UART with RTS/CTS does: its bytes hold
while CTS is off. A pty has no CTS: there the module's flow control changes nothing.

Both stop reading while the port's serial line (larappp.sim.line) has no room, so what
the DTE writes faster than the line carries waits in the DTE's pty or socket buffers.
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

from serial import rfc2217

from larappp.errors import PortError
from larappp.sim.events import ModemLinesChanged
from larappp.sim.runner import ModuleDriver

IAC = b"\xff"
#: Largest backlog kept for a DTE that does not read; beyond it bytes are dropped.
MAX_BACKLOG = 1 << 20


class PtyPortServer:
    """One module port as a pty whose stable symlink vanishes and comes back on reboots."""

    def __init__(
        self,
        driver: ModuleDriver,
        port: int,
        link_path: str,
        *,
        poll_interval: float = 0.02,
        drain_timeout: float = 0.5,
        linger: float = 0.1,
    ) -> None:
        self.driver = driver
        self.port = port
        self.link_path = link_path
        self.poll_interval = poll_interval
        self.drain_timeout = drain_timeout
        self.linger = linger
        self.device: str | None = None
        self.dropped = 0
        self._loop = asyncio.get_running_loop()
        self._master: int | None = None
        self._present = False
        self._dtr = False
        self._backlog = bytearray()
        self._poll: asyncio.TimerHandle | None = None
        self._transition: asyncio.Task[None] | None = None
        self._stopped = False
        #: not reading while the port's line has no room (the DTE's bytes wait in the pty)
        self._input_paused = False

    @property
    def path(self) -> str:
        return self.link_path

    async def start(self) -> None:
        directory = os.path.dirname(self.link_path)
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise PortError(f"cannot create {directory} for the simulator's ptys ({exc.strerror}): "
                            "choose another --pty-dir") from None
        self.driver.attach(self.port, self)
        self._open()

    async def stop(self) -> None:
        self._stopped = True
        if self._transition is not None:
            self._transition.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._transition
        self._close_now()
        self.driver.detach(self.port, self)

    # -- PortSink ------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self._master is None or not self._present:
            self.dropped += len(data)
            return
        if self._backlog:
            self._queue(data)
            return
        try:
            written = os.write(self._master, data)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            if exc.errno == errno.EIO:
                self._dte_gone()
                self.dropped += len(data)
                return
            raise
        if written < len(data):
            self._queue(data[written:])
            self._loop.add_writer(self._master, self._on_writable)

    def lines_changed(self, lines: ModemLinesChanged) -> None:
        """A pty has no modem lines."""

    def ports_closed(self, reopen_at: float | None) -> None:
        self._transition = self._loop.create_task(self._close_gracefully())

    def resume_input(self) -> None:
        if self._input_paused and self._master is not None and self._present:
            self._input_paused = False
            self._loop.add_reader(self._master, self._on_readable)

    def ports_reopened(self) -> None:
        previous = self._transition

        async def reopen() -> None:
            if previous is not None:
                await previous
            if not self._stopped:
                self._open()

        self._transition = self._loop.create_task(reopen())

    # -- the pty --------------------------------------------------------------------------------
    def _open(self) -> None:
        master, slave = os.openpty()
        try:
            tty.setraw(slave)
            self.device = os.ttyname(slave)
        finally:
            # Not holding the slave lets the master tell when the DTE has the port open.
            os.close(slave)
        os.set_blocking(master, False)
        self._master = master
        self._present = False
        self._backlog.clear()
        self._loop.add_reader(master, self._on_readable)
        tmp = f"{self.link_path}.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(self.device, tmp)
        os.replace(tmp, self.link_path)
        self._schedule_poll()

    def _schedule_poll(self) -> None:
        self._poll = self._loop.call_later(self.poll_interval, self._on_poll)

    def _on_poll(self) -> None:
        self._poll = None
        if self._master is None:
            return
        if not self._present:
            self._try_read()
        if self._present and self._master is not None:
            try:
                attrs = termios.tcgetattr(self._master)
            except termios.error:
                attrs = None
            # FACTS: the master sees the slave's termios; speed B0 is how the DTE drops DTR.
            self._set_dtr(attrs is not None and attrs[5] != termios.B0)
        if self._master is not None:
            self._schedule_poll()

    def _on_readable(self) -> None:
        room = self.driver.room(self.port)
        if not room and self._master is not None:
            self._input_paused = True
            self._loop.remove_reader(self._master)
            return
        self._try_read(room)

    def _try_read(self, size: int = 65536) -> None:
        master = self._master
        if master is None:
            return
        try:
            data = os.read(master, min(size, 65536))
        except BlockingIOError:
            if not self._present:
                self._dte_here()
            return
        except OSError as exc:
            if exc.errno == errno.EIO:
                self._dte_gone()
                return
            raise
        if not self._present:
            self._dte_here()
        if data:
            self.driver.receive(self.port, data)

    def _dte_here(self) -> None:
        self._present = True
        self._input_paused = False
        if self._master is not None:
            self._loop.add_reader(self._master, self._on_readable)
            try:
                speed = termios.tcgetattr(self._master)[5]
            except termios.error:
                speed = termios.B0
            self._set_dtr(speed != termios.B0)

    def _dte_gone(self) -> None:
        # EIO on the master: no process has the slave open (the DTE closed the port).
        if self._master is not None:
            self._loop.remove_reader(self._master)
            self._loop.remove_writer(self._master)
        self._present = False
        self._backlog.clear()
        self._set_dtr(False)

    def _set_dtr(self, on: bool) -> None:
        if on != self._dtr:
            self._dtr = on
            self.driver.set_dtr(self.port, self, on)

    def _queue(self, data: bytes) -> None:
        room = MAX_BACKLOG - len(self._backlog)
        if room < len(data):
            self.dropped += len(data) - max(room, 0)
            data = data[: max(room, 0)]
        self._backlog += data

    def _on_writable(self) -> None:
        master = self._master
        if master is None:
            return
        try:
            written = os.write(master, self._backlog)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno == errno.EIO:
                self._dte_gone()
                return
            raise
        del self._backlog[:written]
        if not self._backlog:
            self._loop.remove_writer(master)

    def _slave_queue(self) -> int:
        """Bytes written to the DTE but not read by it yet (opens the slave briefly)."""
        if self.device is None:
            return 0
        try:
            fd = os.open(self.device, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return 0
        try:
            return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0])
        except OSError:
            return 0
        finally:
            os.close(fd)

    async def _close_gracefully(self) -> None:
        """Let the DTE read what the module said last (e.g. the OK of CFUN=16), then vanish."""
        deadline = self._loop.time() + self.drain_timeout
        while self._present and self._loop.time() < deadline:
            if not self._backlog and self._slave_queue() == 0:
                # A USB port goes a moment after the last answer: a DTE still in a read
                # with a short timeout returns what it got before it sees the port gone.
                await asyncio.sleep(self.linger)
                break
            await asyncio.sleep(0.01)
        self._close_now()

    def _close_now(self) -> None:
        if self._poll is not None:
            self._poll.cancel()
            self._poll = None
        # The path goes first, so a DTE that sees the port fail finds no path to reopen.
        with contextlib.suppress(OSError):
            if os.readlink(self.link_path) == self.device:
                os.unlink(self.link_path)
        master, self._master = self._master, None
        if master is not None:
            self._loop.remove_reader(master)
            self._loop.remove_writer(master)
            os.close(master)
        self._present = False
        self._backlog.clear()
        self._set_dtr(False)


class _SimSerialPort:
    """The port object PortManager drives: DTR/RTS go to the module, CTS/DSR/DCD come from it."""

    def __init__(self, server: Rfc2217PortServer, connection: _Rfc2217Connection) -> None:
        self._server = server
        self._connection = connection
        self.baudrate = 115200
        self.bytesize = 8
        self.parity = "N"
        self.stopbits = 1
        self.xonxoff = False
        self.break_condition = False
        self._dtr = False
        self._rts = False
        self._rtscts = False

    @property
    def rtscts(self) -> bool:
        return self._rtscts

    @rtscts.setter
    def rtscts(self, on: bool) -> None:
        """The client asked for hardware flow control (or none): its bytes hold while CTS is off."""
        self._rtscts = bool(on)
        self._server.driver.set_rtscts(self._server.port, self._connection, self._rtscts)

    @property
    def dtr(self) -> bool:
        return self._dtr

    @dtr.setter
    def dtr(self, on: bool) -> None:
        self._dtr = bool(on)
        self._server.driver.set_dtr(self._server.port, self._connection, self._dtr)

    @property
    def rts(self) -> bool:
        return self._rts

    @rts.setter
    def rts(self, on: bool) -> None:
        self._rts = bool(on)

    def _lines(self) -> ModemLinesChanged:
        return self._server.driver.module.modem_lines(self._server.port)

    @property
    def cts(self) -> bool:
        return self._lines().cts

    @property
    def dsr(self) -> bool:
        return self._lines().dsr

    @property
    def cd(self) -> bool:
        return self._lines().dcd

    @property
    def ri(self) -> bool:
        return False

    def reset_input_buffer(self) -> None:
        """Nothing is buffered on the module side."""

    def reset_output_buffer(self) -> None:
        """Nothing is buffered on the module side."""


class _Rfc2217Connection(asyncio.Protocol):
    """One RFC 2217 client of one port."""

    def __init__(self, server: Rfc2217PortServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.manager: rfc2217.PortManager | None = None
        #: not reading while the port's line has no room (the DTE's bytes wait in TCP)
        self.input_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if not self.server.accepting or self.server.connection is not None:
            # One DTE per port; and none while the module is away.
            transport.close()
            return
        self.server.connection = self
        self.manager = rfc2217.PortManager(_SimSerialPort(self.server, self), self)

    # PortManager's "connection": telnet negotiation bytes, already escaped.
    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def send(self, data: bytes) -> None:
        """Module bytes for the client (IAC doubled, FACTS: replace() is the fast escape)."""
        self.write(data.replace(IAC, IAC + IAC))

    def data_received(self, data: bytes) -> None:
        manager = self.manager
        if manager is None:
            return
        if IAC not in data and manager.mode == rfc2217.M_NORMAL and manager.suboption is None:
            payload = data
        else:
            payload = b"".join(manager.filter(data))
        if payload and self.server.connection is self:
            driver = self.server.driver
            driver.receive(self.server.port, payload)
            if not driver.room(self.server.port) and self.transport is not None:
                self.input_paused = True
                self.transport.pause_reading()

    def resume_input(self) -> None:
        if self.input_paused and self.transport is not None and not self.transport.is_closing():
            self.input_paused = False
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.server.connection is self:
            self.server.connection = None
            # The DTE went away: its DTR is off, and its flow control with it.
            self.server.driver.set_dtr(self.server.port, self, False)
            self.server.driver.set_rtscts(self.server.port, self, False)
        self.manager = None
        self.transport = None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Rfc2217PortServer:
    """One module port as an RFC 2217 server on 127.0.0.1; refuses clients while rebooting."""

    def __init__(self, driver: ModuleDriver, port: int, *, host: str = "127.0.0.1", tcp_port: int = 0) -> None:
        self.driver = driver
        self.port = port
        self.host = host
        self.tcp_port = tcp_port
        self.connection: _Rfc2217Connection | None = None
        self.accepting = False
        self._loop = asyncio.get_running_loop()
        self._server: asyncio.Server | None = None
        self._transition: asyncio.Task[None] | None = None
        self._stopped = False

    @property
    def url(self) -> str:
        return f"rfc2217://{self.host}:{self.tcp_port}"

    async def start(self) -> None:
        self.driver.attach(self.port, self)
        await self._listen()

    async def _listen(self) -> None:
        try:
            self._server = await self._loop.create_server(
                lambda: _Rfc2217Connection(self), self.host, self.tcp_port, reuse_address=True
            )
        except OSError as exc:
            raise PortError(
                f"cannot listen on {self.host}:{self.tcp_port} for port {self.port} ({exc.strerror}): "
                "choose another --rfc2217-port"
            ) from None
        self.tcp_port = self._server.sockets[0].getsockname()[1]
        self.accepting = True

    def _unlisten(self) -> None:
        self.accepting = False
        if self._server is not None:
            self._server.close()
            self._server = None
        if self.connection is not None:
            connection, self.connection = self.connection, None
            connection.close()
            self.driver.set_dtr(self.port, connection, False)
            self.driver.set_rtscts(self.port, connection, False)

    async def stop(self) -> None:
        self._stopped = True
        if self._transition is not None:
            self._transition.cancel()
            with contextlib.suppress(asyncio.CancelledError, PortError):
                await self._transition
        self._unlisten()
        self.driver.detach(self.port, self)

    # -- PortSink ------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.connection is not None:
            self.connection.send(data)

    def lines_changed(self, lines: ModemLinesChanged) -> None:
        connection = self.connection
        if connection is not None and connection.manager is not None:
            connection.manager.check_modem_lines()

    def resume_input(self) -> None:
        if self.connection is not None:
            self.connection.resume_input()

    def ports_closed(self, reopen_at: float | None) -> None:
        # The client's connection closes after what is queued for it (the OK of CFUN=16).
        self._unlisten()

    def ports_reopened(self) -> None:
        if self._stopped:
            return

        async def relisten() -> None:
            if not self._stopped and self._server is None:
                await self._listen()

        self._transition = self._loop.create_task(relisten())
