"""Router Solicitations out and Router Advertisements in, on one interface the kernel owns
(pppd's ppp<N>), through a raw ICMPv6 socket.

The built-in engine sees every IPv6 packet in its TUN; with pppd the packets are the
kernel's, so `SlaacClient` gets its RAs from this socket instead. Both directions use
whole IPv6 packets, as on the TUN: an RA read here is given back with an IPv6 header
rebuilt from what the kernel reports (source, destination, hop limit; the kernel has
checked the checksum), and an RS handed in as a packet goes out with the packet's
destination and the hop limit 255 that neighbour discovery requires (RFC 4861 §6.1.1;
the kernel fills in the checksum and picks the link-local source, FACTS.md).
"""

from __future__ import annotations

import asyncio
import socket
import struct
from ipaddress import IPv6Address
from typing import Self

from larappp.errors import NetworkSetupError, PortClosed
from larappp.proto.ip import PROTO_ICMPV6, build_icmpv6

__all__ = ["NdpSocket"]

ICMP6_FILTER = 1  # linux/icmpv6.h, level IPPROTO_ICMPV6
ND_ROUTER_ADVERTISEMENT = 134  # RFC 4861 §4.2
NDP_HOP_LIMIT = 255  # RFC 4861 §6.1
_IPV6_HEADER = 40
_CMSG_SPACE = socket.CMSG_SPACE(20) + socket.CMSG_SPACE(4)  # in6_pktinfo, hop limit


def _pass_only(icmp_type: int) -> bytes:
    """An ICMP6_FILTER that blocks every type but `icmp_type` (a set bit blocks a type)."""
    words = [0xFFFFFFFF] * 8
    words[icmp_type >> 5] &= ~(1 << (icmp_type & 31))
    return struct.pack("=8I", *words)


class NdpSocket:
    """A raw ICMPv6 socket bound to one interface: receives RAs, sends RSs, as IPv6 packets."""

    def __init__(self, sock: socket.socket, ifname: str, ifindex: int) -> None:
        self._sock: socket.socket | None = sock
        self.ifname = ifname
        self.ifindex = ifindex

    @classmethod
    def open(cls, ifname: str) -> Self:
        """Open it on `ifname`, which must exist; NetworkSetupError naming the cause otherwise."""
        try:
            ifindex = socket.if_nametoindex(ifname)
        except OSError:
            raise NetworkSetupError(f"interface {ifname} does not exist: the PPP link went away") from None
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, PROTO_ICMPV6)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
            sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, _pass_only(ND_ROUTER_ADVERTISEMENT))
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, NDP_HOP_LIMIT)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, NDP_HOP_LIMIT)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise NetworkSetupError(f"cannot open an ICMPv6 socket on {ifname} ({exc.strerror}): run as root") from None
        return cls(sock, ifname, ifindex)

    def _socket(self) -> socket.socket:
        if self._sock is None:
            raise PortClosed(f"the ICMPv6 socket on {self.ifname} is closed")
        return self._sock

    async def receive(self) -> bytes:
        """The next Router Advertisement on the interface, as a whole IPv6 packet."""
        loop = asyncio.get_running_loop()
        while True:
            sock = self._socket()
            try:
                message, ancillary, _flags, address = sock.recvmsg(65535, _CMSG_SPACE)
            except BlockingIOError:
                waiter: asyncio.Future[None] = loop.create_future()

                def readable(waiter: asyncio.Future[None] = waiter) -> None:
                    if not waiter.done():
                        waiter.set_result(None)

                loop.add_reader(sock.fileno(), readable)
                try:
                    await waiter
                finally:
                    if self._sock is not None:
                        loop.remove_reader(sock.fileno())
                continue
            except OSError as exc:
                raise PortClosed(f"the ICMPv6 socket on {self.ifname} failed: {exc}") from exc
            packet = _rebuild(message, ancillary, address)
            if packet is not None:
                return packet

    def send(self, packet: bytes) -> None:
        """Send the ICMPv6 message of an IPv6 packet (an RS) to the packet's destination."""
        if len(packet) < _IPV6_HEADER + 4 or packet[6] != PROTO_ICMPV6:
            raise ValueError("NdpSocket sends ICMPv6 packets without extension headers only")
        destination = str(IPv6Address(packet[24:40]))
        message = packet[_IPV6_HEADER:_IPV6_HEADER + 2] + b"\x00\x00" + packet[_IPV6_HEADER + 4:]
        try:
            self._socket().sendto(message, (destination, 0, 0, self.ifindex))
        except BlockingIOError:
            pass  # a full socket buffer drops it, as a full link would; SLAAC retries
        except OSError as exc:
            raise PortClosed(f"the ICMPv6 socket on {self.ifname} failed: {exc}") from exc

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                asyncio.get_running_loop().remove_reader(sock.fileno())
            except RuntimeError:
                pass
            sock.close()


def _rebuild(message: bytes, ancillary: list[tuple[int, int, bytes]], address: tuple[str, ...]) -> bytes | None:
    """The IPv6 packet the kernel delivered `message` in (None without the needed ancillary data)."""
    if len(message) < 4:
        return None
    destination: IPv6Address | None = None
    hop_limit: int | None = None
    for level, kind, data in ancillary:
        if level != socket.IPPROTO_IPV6:
            continue
        if kind == socket.IPV6_PKTINFO and len(data) >= 16:
            destination = IPv6Address(data[:16])
        elif kind == socket.IPV6_HOPLIMIT and len(data) >= 4:
            hop_limit = struct.unpack("=i", data[:4])[0]
    if destination is None or hop_limit is None:
        return None
    source = IPv6Address(address[0].split("%", 1)[0])
    return build_icmpv6(source, destination, message[0], message[1], message[4:], hop_limit=hop_limit)
