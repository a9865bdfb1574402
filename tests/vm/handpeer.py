"""A hand-written PPP peer for the VM tests: just enough LCP and IPCP to open a link.

It checks the VM tier itself (QEMU, the serial socket, the guest's pppd and kernel)
without larappp's own PPP code, so a failure here points at the tier, not at larappp.
"""

from __future__ import annotations

import asyncio
import ipaddress

from larappp.transport.pipe import Pipe
from tests.vm.frames import (
    CONF_ACK,
    CONF_NAK,
    CONF_REJ,
    CONF_REQ,
    ECHO_REPLY,
    ECHO_REQ,
    PROTO_IP,
    PROTO_IPCP,
    PROTO_LCP,
    PROTO_REJ,
    TERM_ACK,
    TERM_REQ,
    ControlPacket,
    Deframer,
    Frame,
    encode_frame,
    option,
)

IPCP_ADDRESS = 3  # RFC 1332 §3.3
IPCP_COMPRESSION = 2  # RFC 1332 §3.2 (VJ): refused, this peer has none
IPCP_PRIMARY_DNS = 129  # RFC 1877 §1.1


class HandPeer:
    """The host end of a PPP link, played by hand over a Pipe (no authentication, IPv4)."""

    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe
        self.deframer = Deframer()
        self._pending: list[Frame] = []
        self._next_id = 1
        #: every frame received, in order (protocol, payload)
        self.received: list[Frame] = []
        self.local_address: str | None = None
        self.peer_address: str | None = None
        self.dns: str | None = None

    def _identifier(self) -> int:
        self._next_id = (self._next_id + 1) & 0xFF
        return self._next_id

    async def send(self, protocol: int, payload: bytes) -> None:
        await self.pipe.write(encode_frame(protocol, payload))

    async def send_control(self, protocol: int, code: int, data: bytes, identifier: int | None = None) -> int:
        ident = self._identifier() if identifier is None else identifier
        await self.send(protocol, ControlPacket(code, ident, data).encode())
        return ident

    async def next_frame(self) -> Frame:
        """The next frame pppd sent (LCP Echo-Requests are answered on the way)."""
        while True:
            while not self._pending:
                self._pending.extend(self.deframer.feed(await self.pipe.read()))
            frame = self._pending.pop(0)
            self.received.append(frame)
            if frame.protocol == PROTO_LCP:
                packet = ControlPacket.parse(frame.payload)
                if packet.code == ECHO_REQ:
                    reply = ControlPacket(ECHO_REPLY, packet.identifier, b"\x00\x00\x00\x00" + packet.data[4:])
                    await self.send(PROTO_LCP, reply.encode())
                    continue
            return frame

    async def open(self) -> None:
        """Open LCP, then IPCP asking for an address and a DNS server; returns when both are up."""
        # Our Configure-Request goes out each time pppd sends one until pppd acks ours:
        # bytes sent before pppd has opened its tty are lost, and this peer has no timer.
        lcp_request: int | None = None
        lcp_acked = lcp_peer_acked = False
        ipcp_options = option(IPCP_ADDRESS, bytes(4)) + option(IPCP_PRIMARY_DNS, bytes(4))
        ipcp_request: int | None = None
        ipcp_acked = ipcp_peer_acked = False
        while not (ipcp_acked and ipcp_peer_acked):
            frame = await self.next_frame()
            if frame.protocol not in (PROTO_LCP, PROTO_IPCP):
                if frame.protocol & 0x8000:  # another control protocol (CCP...): RFC 1661 §5.7
                    await self.send_control(
                        PROTO_LCP, PROTO_REJ, frame.protocol.to_bytes(2, "big") + frame.payload
                    )
                continue
            packet = ControlPacket.parse(frame.payload)
            if frame.protocol == PROTO_LCP:
                if packet.code == CONF_REQ:
                    await self.send_control(PROTO_LCP, CONF_ACK, packet.data, packet.identifier)
                    lcp_peer_acked = True
                    if not lcp_acked:
                        lcp_request = await self.send_control(PROTO_LCP, CONF_REQ, b"")
                elif packet.code == CONF_ACK and packet.identifier == lcp_request:
                    lcp_acked = True
                elif packet.code == TERM_REQ:
                    raise AssertionError(f"pppd terminated the link: {packet.data!r}")
                if lcp_acked and lcp_peer_acked and ipcp_request is None:
                    ipcp_request = await self.send_control(PROTO_IPCP, CONF_REQ, ipcp_options)
                continue
            if packet.code == CONF_REQ:
                options = packet.options()
                if IPCP_COMPRESSION in options:
                    rejected = option(IPCP_COMPRESSION, options[IPCP_COMPRESSION])
                    await self.send_control(PROTO_IPCP, CONF_REJ, rejected, packet.identifier)
                else:
                    self.peer_address = str(ipaddress.IPv4Address(options[IPCP_ADDRESS]))
                    await self.send_control(PROTO_IPCP, CONF_ACK, packet.data, packet.identifier)
                    ipcp_peer_acked = True
            elif packet.code in (CONF_NAK, CONF_REJ) and packet.identifier == ipcp_request:
                ours = ControlPacket(CONF_REQ, 0, ipcp_options).options()
                if packet.code == CONF_NAK:  # take what pppd suggests: our address, its DNS
                    ours.update(packet.options())
                else:
                    ours = {k: v for k, v in ours.items() if k not in packet.options()}
                ipcp_options = b"".join(option(k, v) for k, v in ours.items())
                ipcp_request = await self.send_control(PROTO_IPCP, CONF_REQ, ipcp_options)
            elif packet.code == CONF_ACK and packet.identifier == ipcp_request:
                acked = packet.options()
                self.local_address = str(ipaddress.IPv4Address(acked[IPCP_ADDRESS]))
                if IPCP_PRIMARY_DNS in acked:
                    self.dns = str(ipaddress.IPv4Address(acked[IPCP_PRIMARY_DNS]))
                ipcp_acked = True

    async def next_ip_packet(self) -> bytes:
        """The next IPv4 packet pppd's kernel sent over the link."""
        while True:
            frame = await self.next_frame()
            if frame.protocol == PROTO_IP:
                return frame.payload

    async def terminate(self, timeout: float = 10.0) -> None:
        """Send LCP Terminate-Request and wait for pppd's Terminate-Ack."""
        ident = await self.send_control(PROTO_LCP, TERM_REQ, b"larappp test")

        async def acked() -> None:
            while True:
                frame = await self.next_frame()
                if frame.protocol == PROTO_LCP:
                    packet = ControlPacket.parse(frame.payload)
                    if packet.code == TERM_ACK and packet.identifier == ident:
                        return

        await asyncio.wait_for(acked(), timeout)
