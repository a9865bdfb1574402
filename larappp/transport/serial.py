"""A serial device or pty slave as a Pipe, driven by the asyncio loop without threads.

pyserial opens and configures the port (baud rate, RTS/CTS, an exclusive lock); after
that the file descriptor is non-blocking and read/written with os.read/os.write from
`loop.add_reader`/`loop.add_writer` callbacks, in chunks as large as the kernel gives.

A pty has no modem lines (TIOCMGET fails with ENOTTY), so DTR cannot be set on it.
`hangup()` drops DTR the way pppd does on any tty: it sets the speed to B0 for a
moment and then restores it. A real UART or USB CDC-ACM driver lowers DTR (and RTS)
while the speed is B0; on a pty the other end sees the B0 speed in `tcgetattr(master)`,
which is how a simulator learns of the hang-up.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import stat
import struct
import termios
from collections.abc import Callable
from dataclasses import dataclass, field

import serial

from larappp.errors import ConfigError, PortClosed, PortError
from larappp.transport.pipe import ModemLines, Pipe

_NO_MODEM_LINES_ERRNOS = frozenset({errno.ENOTTY, errno.EINVAL})
#: The most one read takes: a 64 KiB chunk holds dozens of 1500-octet frames.
_READ_CHUNK = 65536
#: The most a tty read returns (n_tty's 4 KiB buffer less one, measured on a pty): a read
#: that got less emptied it. Reading on until EAGAIN costs more than a read: an empty n_tty
#: waits for the tty's flip-buffer worker first (flush_work, a context switch).
_TTY_READ_MAX = 4095
#: How long `hangup()` holds the speed at B0 by default (pppd holds it for one second).
HANGUP_HOLD_S = 1.0
#: How often a serial device's DCD is read while a call is watched. A poll (one TIOCMGET
#: ioctl from the loop) rather than TIOCMIWAIT: that ioctl blocks a thread until a line
#: changes and nothing can wake it but a signal or the device closing, so every watched
#: call would pin a thread that outlives its session. 0.25 s keeps detection well
#: under 1 s at a cost of four ioctls a second.
CARRIER_POLL_S = 0.25


def _open_failure(device: str, exc: BaseException) -> str:
    """One sentence saying why `device` could not be opened and what to change."""
    code = getattr(exc, "errno", None)
    if code == errno.ENOENT:
        return (
            f"{device} does not exist: check the module is plugged in and powered,"
            " or fix the port path"
        )
    if code in (errno.EACCES, errno.EPERM):
        return (
            f"no permission to open {device}: run larappp as root"
            f" or add its user to the group owning {device}"
        )
    if code in (errno.EBUSY, errno.EAGAIN):
        return (
            f"{device} is in use by another program (another larappp, ModemManager or a terminal):"
            " stop it or choose another port"
        )
    if code in (errno.ENXIO, errno.ENODEV):
        return (
            f"{device} exists but no device answers behind it:"
            " replug the module or fix the port path"
        )
    try:
        mode = os.stat(device).st_mode
    except OSError:
        mode = None
    if mode is not None and not stat.S_ISCHR(mode):
        return f"{device} is not a serial device or pty: give a /dev/tty* path"
    reason = os.strerror(code) if isinstance(code, int) else str(exc)
    return f"cannot open {device} ({reason}): check the port path and that the module is attached"


@dataclass(eq=False)
class _OpenPort:
    """What one successful open() holds; replaced on every reopen."""

    serial: serial.Serial
    fd: int
    waiters: set[asyncio.Future[None]] = field(default_factory=set)
    #: while start_reading() delivers: tells the reader that close() ended it
    reader: Callable[[], None] | None = None
    #: ... and the loop's reader callback (not registered while paused)
    readable: Callable[[], None] | None = None
    paused: bool = False


class SerialPipe(Pipe):
    """A serial device (/dev/ttyACM*, /dev/ttyUSB*) or a pty slave path, opened exclusively."""

    def __init__(self, device: str, *, baud: int = 115200, rtscts: bool = False) -> None:
        super().__init__()
        self.device = device
        self.name = device
        self.baud = baud
        self.rtscts = rtscts
        self.has_modem_lines = False
        self._port: _OpenPort | None = None
        self._reading = False
        self._write_lock = asyncio.Lock()
        self._carrier_poll: asyncio.TimerHandle | None = None

    @property
    def is_open(self) -> bool:
        return self._port is not None

    # -- open / close ------------------------------------------------------------------
    async def open(self) -> None:
        """Open and lock the device; raises PortError naming the device and the cause."""
        if self._port is not None:
            raise PortError(
                f"{self.device} is already open in this larappp; close it before opening it again"
            )
        if self.baud <= 0:
            raise ConfigError(
                f"baud rate {self.baud} for {self.device} is not valid:"
                " give a positive number such as 115200"
            )
        ser = serial.Serial()
        ser.port = self.device
        ser.baudrate = self.baud
        ser.rtscts = self.rtscts
        # VMIN=1, VTIME=0 (pyserial's inter-byte timeout 0): a non-blocking read with no
        # data then fails with EAGAIN, so a read of 0 bytes means hang-up. pyserial's
        # default VMIN=0 makes an idle tty read 0 bytes, indistinguishable from EOF.
        ser.inter_byte_timeout = 0
        # flock(LOCK_EX) refuses a second larappp (root included); TIOCEXCL below also
        # refuses programs that do not flock (for non-root users).
        ser.exclusive = True
        try:
            ser.open()
        except (serial.SerialException, OSError) as exc:
            raise PortError(_open_failure(self.device, exc)) from exc
        except ValueError as exc:
            raise ConfigError(
                f"{self.device} refused the settings ({exc}): change the baud rate"
            ) from exc
        fd = int(ser.fileno())
        try:
            fcntl.ioctl(fd, termios.TIOCEXCL)
        except OSError:
            pass  # some drivers do not support it; the flock still holds
        try:
            os.set_blocking(fd, False)
            self.has_modem_lines = _probe_modem_lines(fd)
        except OSError as exc:
            ser.close()
            raise PortError(_open_failure(self.device, exc)) from exc
        self._port = _OpenPort(serial=ser, fd=fd)

    async def close(self) -> None:
        """Close the device, waking any waiting read/write with PortClosed; safe to call twice."""
        port = self._port
        if port is None:
            return
        self._port = None
        self.unwatch_carrier()
        loop = asyncio.get_running_loop()
        loop.remove_reader(port.fd)
        loop.remove_writer(port.fd)
        for waiter in port.waiters:
            if not waiter.done():
                waiter.set_exception(PortClosed(f"{self.device} was closed by larappp"))
        if port.reader is not None:
            loop.call_soon(port.reader)
            port.reader = port.readable = None
            self._reading = False
        try:
            fcntl.ioctl(port.fd, termios.TIOCNXCL)
        except OSError:
            pass
        try:
            port.serial.close()
        except (serial.SerialException, OSError):
            pass

    def _require_open(self) -> _OpenPort:
        if self._port is None:
            raise PortClosed(f"{self.device} is not open")
        return self._port

    def _gone(self, exc: OSError | None) -> PortClosed:
        reason = "end of file" if exc is None else os.strerror(exc.errno or errno.EIO)
        return PortClosed(
            f"{self.device} went away ({reason}): the module rebooted or was unplugged,"
            " or the pty's other end closed"
        )

    async def _wait(self, port: _OpenPort, *, writable: bool) -> None:
        """Wait until `port.fd` is readable (or writable); PortClosed if close() runs meanwhile."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        add: Callable[..., None] = loop.add_writer if writable else loop.add_reader
        remove: Callable[[int], bool] = loop.remove_writer if writable else loop.remove_reader

        def ready() -> None:
            remove(port.fd)
            if not waiter.done():
                waiter.set_result(None)

        add(port.fd, ready)
        port.waiters.add(waiter)
        try:
            await waiter
        finally:
            port.waiters.discard(waiter)
            if self._port is port:
                remove(port.fd)

    # -- data --------------------------------------------------------------------------
    async def read(self, max_bytes: int = 65536) -> bytes:
        """Return at least one byte (up to `max_bytes`); PortClosed on EIO, EOF or hang-up."""
        if self._reading:
            raise PortError(
                f"two tasks read {self.device} at once; only the pipe's owner may read it"
            )
        self._reading = True
        try:
            while True:
                port = self._require_open()
                try:
                    data = os.read(port.fd, max_bytes)
                except BlockingIOError:
                    await self._wait(port, writable=False)
                    continue
                except OSError as exc:
                    raise self._gone(exc) from exc
                if not data:
                    # A hung-up tty reads as end of file (a pty slave after its master closed).
                    raise self._gone(None)
                return data
        finally:
            self._reading = False

    def start_reading(self, on_data: Callable[[bytes], None], on_closed: Callable[[PortClosed], None]) -> None:
        """Call `on_data` straight from the loop's reader whenever the port has bytes.

        The reader stays registered while reading, and a wakeup reads until the tty's
        buffer is empty (a read returns at most _TTY_READ_MAX octets) and delivers it all
        in one call: no epoll_ctl, future or task switch per chunk (the data path's way).
        """
        port = self._require_open()
        if self._reading:
            raise PortError(f"{self.device} is already being read; only the pipe's owner may read it")
        self._reading = True
        loop = asyncio.get_running_loop()
        read, fd = os.read, port.fd

        def readable() -> None:
            chunks: list[bytes] = []
            total = 0
            gone: PortClosed | None = None
            while total < _READ_CHUNK:
                try:
                    data = read(fd, _READ_CHUNK)
                except BlockingIOError:
                    break
                except OSError as exc:
                    gone = self._gone(exc)
                    break
                if not data:
                    gone = self._gone(None)
                    break
                chunks.append(data)
                total += len(data)
                if len(data) < _TTY_READ_MAX:
                    break
            if chunks:
                on_data(chunks[0] if len(chunks) == 1 else b"".join(chunks))
            if gone is not None and port.reader is not None:
                self._stop_reader(port)
                on_closed(gone)

        def closed_by_us() -> None:
            on_closed(PortClosed(f"{self.device} was closed by larappp"))

        port.reader = closed_by_us
        port.readable = readable
        port.paused = False
        loop.add_reader(port.fd, readable)

    def pause_reading(self) -> bool:
        """Remove the loop's reader until `resume_reading()` (what arrives waits in the tty)."""
        port = self._port
        if port is None or port.readable is None:
            return False
        if not port.paused:
            port.paused = True
            asyncio.get_running_loop().remove_reader(port.fd)
        return True

    def resume_reading(self) -> None:
        port = self._port
        if port is not None and port.readable is not None and port.paused:
            port.paused = False
            asyncio.get_running_loop().add_reader(port.fd, port.readable)

    def deliver_waiting(self) -> None:
        """One reader wakeup's work now: what the tty holds goes to the callback."""
        port = self._port
        if port is not None and port.readable is not None:
            port.readable()

    async def stop_reading(self) -> None:
        """Stop calling back; safe when not reading."""
        if self._port is not None and self._port.reader is not None:
            self._stop_reader(self._port)

    def _stop_reader(self, port: _OpenPort) -> None:
        port.reader = port.readable = None
        self._reading = False
        if self._port is port:
            asyncio.get_running_loop().remove_reader(port.fd)

    async def write(self, data: bytes) -> None:
        """Write all of `data`, waiting while the kernel buffer is full; PortClosed if gone."""
        async with self._write_lock:
            view = memoryview(data)
            while view:
                port = self._require_open()
                try:
                    written = os.write(port.fd, view)
                except BlockingIOError:
                    await self._wait(port, writable=True)
                    continue
                except OSError as exc:
                    raise self._gone(exc) from exc
                view = view[written:]

    def tty_fd(self) -> int | None:
        """The device's file descriptor while open: pppd can take the tty itself."""
        return self._port.fd if self._port is not None else None

    def try_write(self, data: bytes | memoryview) -> int:
        """One non-blocking os.write: the octets the tty took (0 when full or while an
        awaited `write()` holds the port, whose octets must stay in order)."""
        port = self._require_open()
        if self._write_lock.locked():
            return 0
        try:
            return os.write(port.fd, data)
        except BlockingIOError:
            return 0
        except OSError as exc:
            raise self._gone(exc) from exc

    # -- modem lines -------------------------------------------------------------------
    def _no_lines(self, line: str) -> PortError:
        return PortError(
            f"{self.device} is a pty, which has no {line} line: use hangup() to drop DTR"
            " the pppd way, or reach the module through an rfc2217:// URL or a serial device"
        )

    def set_dtr(self, on: bool) -> None:
        """Raise or lower DTR (a serial device only; a pty raises PortError)."""
        port = self._require_open()
        if not self.has_modem_lines:
            raise self._no_lines("DTR")
        try:
            port.serial.dtr = on
        except (serial.SerialException, OSError) as exc:
            raise PortClosed(
                f"{self.device} refused the DTR change ({exc}): replug the module"
            ) from exc

    def set_rts(self, on: bool) -> None:
        """Raise or lower RTS (a serial device only; a pty raises PortError)."""
        port = self._require_open()
        if not self.has_modem_lines:
            raise self._no_lines("RTS")
        try:
            port.serial.rts = on
        except (serial.SerialException, OSError) as exc:
            raise PortClosed(
                f"{self.device} refused the RTS change ({exc}): replug the module"
            ) from exc

    def modem_lines(self) -> ModemLines:
        """CTS/DSR/DCD/RI as the device reports them (all None on a pty)."""
        port = self._port
        if port is None or not self.has_modem_lines:
            return ModemLines()
        try:
            raw = fcntl.ioctl(port.fd, termios.TIOCMGET, struct.pack("I", 0))
        except OSError:
            return ModemLines()
        bits = struct.unpack("I", raw)[0]
        return ModemLines(
            cts=bool(bits & termios.TIOCM_CTS),
            dsr=bool(bits & termios.TIOCM_DSR),
            dcd=bool(bits & termios.TIOCM_CAR),
            ri=bool(bits & termios.TIOCM_RNG),
        )

    def watch_carrier(self, on_dropped: Callable[[], None]) -> bool:
        """As Pipe.watch_carrier; the device's DCD is read every CARRIER_POLL_S."""
        if not super().watch_carrier(on_dropped):
            return False
        self._schedule_carrier_poll()
        return True

    def unwatch_carrier(self) -> None:
        super().unwatch_carrier()
        if self._carrier_poll is not None:
            self._carrier_poll.cancel()
            self._carrier_poll = None

    def _schedule_carrier_poll(self) -> None:
        loop = asyncio.get_running_loop()
        self._carrier_poll = loop.call_later(CARRIER_POLL_S, self._poll_carrier)

    def _poll_carrier(self) -> None:
        self._carrier_poll = None
        self._check_carrier(self.modem_lines())
        if self._carrier_lost is not None:
            self._schedule_carrier_poll()

    async def hangup(self, hold_s: float = HANGUP_HOLD_S) -> None:
        """Drop DTR the pppd way: speed B0 for `hold_s` seconds, then the configured speed.

        Works on a pty too, where the other end sees ispeed = ospeed = B0 through
        `tcgetattr(master)` while the hang-up lasts. The speed is restored even if the
        wait is cancelled.
        """
        port = self._require_open()
        attrs = termios.tcgetattr(port.fd)
        attrs[4] = attrs[5] = termios.B0
        try:
            termios.tcsetattr(port.fd, termios.TCSANOW, attrs)
        except termios.error as exc:
            raise self._gone(OSError(exc.args[0], str(exc))) from exc
        try:
            await asyncio.sleep(hold_s)
        finally:
            if self._port is port:
                try:
                    port.serial.baudrate = self.baud  # pyserial rewrites the whole termios
                except (serial.SerialException, OSError, termios.error):
                    pass  # the port went away meanwhile; the next read/write reports it


def _probe_modem_lines(fd: int) -> bool:
    """True when the tty has modem lines: TIOCMGET fails with ENOTTY on a pty (FACTS)."""
    try:
        fcntl.ioctl(fd, termios.TIOCMGET, struct.pack("I", 0))
    except OSError as exc:
        if exc.errno in _NO_MODEM_LINES_ERRNOS:
            return False
        raise
    return True
