"""Layer-3 TUN interfaces made with the standard library (the built-in PPP engine's netdev).

`Tun.open()` opens /dev/net/tun and attaches an IFF_TUN | IFF_NO_PI interface: every
read returns one bare IPv4 or IPv6 packet and every write injects one. The interface
lives in the network namespace of the thread that opens it and disappears when its fd
is closed, so a crashed larappp leaves no interface behind (FACTS.md, Kernel).

IPv6 on the TUN, measured by tests/kernel/test_tun_kernel_slaac.py (Debian 12 kernel):
- With `addr_gen_mode=1` (no kernel link-local), `accept_ra=2` and fe80::<host IID>/64
  added by hand, the kernel sends Router Solicitations into the TUN itself, and an RA
  written into the TUN fd makes it add <prefix>:<host IID>/64 (IID taken from the
  link-local, app note §4.1.2) and `default via fe80::<router> proto ra mtu <RA MTU>`
  at once. It ignores RDNSS: DNS servers always come from user space.
- With `accept_ra=0` the kernel ignores the RA, and the address and route that
  `SlaacClient` reports, installed through `larappp.transport.netlink`, come out the
  same and are removed exactly by the ledger.
- The kernel's first RS after link-up is lost about every other time (the TUN counts
  it in tx_dropped: the kernel drops its own packets for a moment after link-up), and
  the retry follows router_solicitation_interval (4 s) later.
- TUN devices are IFF_NOARP, so the kernel does no DAD on them.
Advice for the engine: always run `SlaacClient` (its RS go over PPP on a schedule we
control; it gives RaTimedOut, lifetimes and RDNSS). Then either let the kernel install
(accept_ra=2, router_solicitations=0, write every RA into the TUN) or install from the
client's events (accept_ra=0); both work here.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import socket
import struct
from collections.abc import Callable
from typing import Self

from larappp.errors import ConfigError, NetworkSetupError

__all__ = ["TUN_BATCH", "TUN_DEVICE", "Tun"]

TUN_DEVICE = "/dev/net/tun"
TUNSETIFF = 0x400454CA  # _IOW('T', 202, int), linux/if_tun.h
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
SIOCSIFMTU = 0x8922  # linux/sockios.h
SIOCGIFMTU = 0x8921
IFNAMSIZ = 16
#: the most packets one wakeup of `start_reading()` delivers
TUN_BATCH = 64
_IFREQ = "16sH14x"  # struct ifreq: name, flags (union padded to 24 bytes)
_IFREQ_INT = "16si12x"


def _check_name(name: str) -> bytes:
    encoded = name.encode()
    if not encoded or len(encoded) >= IFNAMSIZ or "/" in name or name in (".", ".."):
        raise ConfigError(
            f"interface name {name!r} is not usable: give 1 to 15 characters without '/'"
        )
    return encoded


class Tun:
    """An open TUN interface: a non-blocking fd carrying bare IP packets (no PI header)."""

    def __init__(self, fd: int, name: str) -> None:
        self._fd = fd
        self.name = name
        self._on_packets: Callable[[list[bytes]], None] | None = None
        self._on_error: Callable[[OSError], None] | None = None
        self._batch = 0
        self._reader_loop: asyncio.AbstractEventLoop | None = None

    # -- opening -------------------------------------------------------------------
    @classmethod
    def open(cls, name: str | None = None, *, mtu: int | None = None) -> Tun:
        """Create the interface `name` (None: the kernel picks tunN), optionally set its MTU.

        It is created down; bring it up with `larappp.transport.netlink` after setting
        the sysctls that must precede link-up (addr_gen_mode).
        """
        requested = _check_name(name) if name is not None else b""
        try:
            fd = os.open(TUN_DEVICE, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NetworkSetupError(
                f"{TUN_DEVICE} is missing: load the tun kernel module (modprobe tun)"
            ) from None
        except PermissionError:
            raise NetworkSetupError(
                f"cannot open {TUN_DEVICE}: run larappp as root or with CAP_NET_ADMIN"
            ) from None
        try:
            ifreq = struct.pack(_IFREQ, requested, IFF_TUN | IFF_NO_PI)
            answer = fcntl.ioctl(fd, TUNSETIFF, ifreq)
        except OSError as exc:
            os.close(fd)
            if exc.errno == errno.EPERM:
                raise NetworkSetupError(
                    "creating a TUN interface needs CAP_NET_ADMIN: run larappp as root"
                ) from None
            if exc.errno == errno.EBUSY:
                raise NetworkSetupError(
                    f"interface {name!r} already exists and is in use: choose another name"
                ) from None
            if exc.errno == errno.EINVAL:
                raise NetworkSetupError(
                    f"interface {name!r} exists and is not a free TUN device: choose another name"
                ) from None
            raise NetworkSetupError(f"cannot create TUN interface {name!r}: {exc}") from None
        actual = answer[:IFNAMSIZ].split(b"\0", 1)[0].decode()
        tun = cls(fd, actual)
        if mtu is not None:
            try:
                tun.set_mtu(mtu)
            except BaseException:
                tun.close()
                raise
        return tun

    # -- properties ------------------------------------------------------------------
    def fileno(self) -> int:
        """The TUN fd (for add_reader/poll); -1 once closed."""
        return self._fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def _ifreq_socket(self) -> socket.socket:
        # created in the calling thread, hence in the namespace the TUN was opened in
        return socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def set_mtu(self, mtu: int) -> None:
        """Set the interface MTU (SIOCSIFMTU); a TUN accepts 68 to 65535."""
        if not 68 <= mtu <= 65535:
            raise ConfigError(f"MTU {mtu} is out of range: use 68 to 65535 (1280+ for IPv6)")
        with self._ifreq_socket() as sock:
            try:
                fcntl.ioctl(sock, SIOCSIFMTU, struct.pack(_IFREQ_INT, self.name.encode(), mtu))
            except OSError as exc:
                raise NetworkSetupError(f"cannot set MTU {mtu} on {self.name}: {exc}") from None

    def get_mtu(self) -> int:
        """The interface MTU as the kernel has it."""
        with self._ifreq_socket() as sock:
            answer = fcntl.ioctl(sock, SIOCGIFMTU, struct.pack(_IFREQ_INT, self.name.encode(), 0))
        return int(struct.unpack(_IFREQ_INT, answer)[1])

    # -- synchronous IO ----------------------------------------------------------------
    def read_packet(self, bufsize: int = 65536) -> bytes | None:
        """One packet from the kernel, or None when none is waiting (non-blocking)."""
        try:
            return os.read(self._fd, bufsize)
        except BlockingIOError:
            return None

    def write_packet(self, packet: bytes | bytearray | memoryview) -> bool:
        """Hand one IP packet to the kernel; False when the kernel's queue is full (EAGAIN).

        The kernel drops (EIO/EINVAL) packets written while the link is down or that are
        not IP; those errors are raised as OSError for the caller to count.
        """
        try:
            os.write(self._fd, packet)
        except BlockingIOError:
            return False
        return True

    # -- asyncio ---------------------------------------------------------------------
    async def read(self, bufsize: int = 65536) -> bytes:
        """Wait for and return one packet."""
        while True:
            packet = self.read_packet(bufsize)
            if packet is not None:
                return packet
            await self._wait(readable=True)

    async def write(self, packet: bytes | bytearray | memoryview) -> None:
        """Write one packet, waiting while the kernel's queue is full."""
        while not self.write_packet(packet):
            await self._wait(readable=False)

    async def _wait(self, *, readable: bool) -> None:
        if self._fd < 0:
            raise OSError(errno.EBADF, f"TUN {self.name} is closed")
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        fd = self._fd
        if readable:
            loop.add_reader(fd, wake)
        else:
            loop.add_writer(fd, wake)
        try:
            await ready
        finally:
            if readable:
                loop.remove_reader(fd)
            else:
                loop.remove_writer(fd)

    # -- the data path: packets delivered from the loop's reader, in batches -------------
    def start_reading(
        self, on_packets: Callable[[list[bytes]], None], on_error: Callable[[OSError], None], *, batch: int = TUN_BATCH
    ) -> None:
        """Call `on_packets` with every packet waiting (up to `batch` per wakeup) until stopped.

        One wakeup reads all the kernel has queued, so a burst costs one callback, and the
        reader stays registered between wakeups (no epoll_ctl or future per packet). A read
        error stops the reading and goes to `on_error`.
        """
        self._on_packets = on_packets
        self._on_error = on_error
        self._batch = batch
        self.resume_reading()

    def pause_reading(self) -> None:
        """Leave packets in the kernel's queue (where it drops what does not fit)."""
        if self._reader_loop is not None:
            self._reader_loop.remove_reader(self._fd)
            self._reader_loop = None

    def resume_reading(self) -> None:
        """Deliver packets again after `pause_reading()`."""
        if self._reader_loop is None and self._on_packets is not None and self._fd >= 0:
            self._reader_loop = asyncio.get_running_loop()
            self._reader_loop.add_reader(self._fd, self._readable)

    def deliver_waiting(self) -> None:
        """Deliver what the kernel has queued now, paused or not (one wakeup's work)."""
        if self._on_packets is not None and self._fd >= 0:
            self._readable()

    def stop_reading(self) -> None:
        """Stop delivering packets; safe when not reading."""
        self.pause_reading()
        self._on_packets = self._on_error = None

    def _readable(self) -> None:
        packets: list[bytes] = []
        read, fd = os.read, self._fd
        error: OSError | None = None
        for _ in range(self._batch):
            try:
                packets.append(read(fd, 65536))
            except BlockingIOError:
                break
            except OSError as exc:
                error = exc
                break
        on_packets, on_error = self._on_packets, self._on_error
        if packets and on_packets is not None:
            on_packets(packets)
        if error is not None:
            self.stop_reading()
            if on_error is not None:
                on_error(error)

    # -- closing ---------------------------------------------------------------------
    def close(self) -> None:
        """Close the fd; the kernel removes the interface with its addresses and routes."""
        self.stop_reading()
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Tun({self.name!r}, fd={self._fd})"
