"""A tiny, independent PPP-in-HDLC codec and packet builders for the VM tests.

Kept apart from larappp.proto on purpose: the VM tests check the real pppd's bytes with
code that shares nothing with the code under test. RFC 1662 (framing, FCS-16),
RFC 1661 (LCP), RFC 1332 (IPCP), RFC 792 (ICMP echo).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

FLAG = 0x7E  # RFC 1662 §4.2
ESCAPE = 0x7D
PROTO_LCP = 0xC021
PROTO_IPCP = 0x8021
PROTO_IPV6CP = 0x8057
PROTO_CCP = 0x80FD
PROTO_IP = 0x0021

CONF_REQ, CONF_ACK, CONF_NAK, CONF_REJ = 1, 2, 3, 4  # RFC 1661 §5
TERM_REQ, TERM_ACK, CODE_REJ, PROTO_REJ = 5, 6, 7, 8
ECHO_REQ, ECHO_REPLY = 9, 10


def _fcs16_table() -> list[int]:
    table = []
    for byte in range(256):
        value = byte
        for _ in range(8):
            value = (value >> 1) ^ 0x8408 if value & 1 else value >> 1
        table.append(value)
    return table


_TABLE = _fcs16_table()


def fcs16(data: bytes, fcs: int = 0xFFFF) -> int:
    """RFC 1662 §C.2 FCS-16 (the per-byte table loop; good residue 0xF0B8)."""
    for byte in data:
        fcs = (fcs >> 8) ^ _TABLE[(fcs ^ byte) & 0xFF]
    return fcs


def encode_frame(protocol: int, payload: bytes) -> bytes:
    """One HDLC frame with address/control and a 2-byte protocol, escaping every byte < 0x20."""
    body = bytes([0xFF, 0x03]) + struct.pack(">H", protocol) + payload
    fcs = fcs16(body) ^ 0xFFFF
    body += struct.pack("<H", fcs)
    out = bytearray([FLAG])
    for byte in body:
        if byte < 0x20 or byte in (FLAG, ESCAPE):
            out += bytes([ESCAPE, byte ^ 0x20])
        else:
            out.append(byte)
    out.append(FLAG)
    return bytes(out)


@dataclass(frozen=True)
class Frame:
    """One received PPP frame with its (decompressed) protocol number."""

    protocol: int
    payload: bytes


class Deframer:
    """Splits a byte stream into PPP frames; frames with a bad FCS are counted and dropped."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.bad_fcs = 0

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        while True:
            end = self._buffer.find(FLAG)
            if end < 0:
                return frames
            raw = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if raw:
                frame = self._decode(raw)
                if frame is not None:
                    frames.append(frame)

    def _decode(self, raw: bytes) -> Frame | None:
        body = bytearray()
        escaped = False
        for byte in raw:
            if escaped:
                body.append(byte ^ 0x20)
                escaped = False
            elif byte == ESCAPE:
                escaped = True
            else:
                body.append(byte)
        if len(body) < 4 or fcs16(bytes(body)) != 0xF0B8:
            self.bad_fcs += 1
            return None
        body = body[:-2]
        if body[:2] == b"\xff\x03":  # address/control, unless compressed away (ACFC)
            body = body[2:]
        if body[0] & 1:  # one-byte protocol field (PFC)
            return Frame(body[0], bytes(body[1:]))
        return Frame((body[0] << 8) | body[1], bytes(body[2:]))


@dataclass(frozen=True)
class ControlPacket:
    """An LCP/IPCP packet: code, identifier and data (options, for Configure-*)."""

    code: int
    identifier: int
    data: bytes

    @classmethod
    def parse(cls, payload: bytes) -> ControlPacket:
        code, identifier, length = struct.unpack(">BBH", payload[:4])
        return cls(code, identifier, payload[4:length])

    def encode(self) -> bytes:
        return struct.pack(">BBH", self.code, self.identifier, 4 + len(self.data)) + self.data

    def options(self) -> dict[int, bytes]:
        """Configure-* options as {type: value}."""
        result: dict[int, bytes] = {}
        data = self.data
        while len(data) >= 2:
            kind, length = data[0], data[1]
            result[kind] = data[2:length]
            data = data[length:]
        return result


def option(kind: int, value: bytes) -> bytes:
    """One configuration option (RFC 1661 §6)."""
    return bytes([kind, 2 + len(value)]) + value


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f">{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def icmp_echo_request(source: bytes, destination: bytes, ident: int, seq: int, data: bytes) -> bytes:
    """An IPv4 packet carrying an ICMP echo request (RFC 791, RFC 792)."""
    icmp = struct.pack(">BBHHH", 8, 0, 0, ident, seq) + data
    icmp = icmp[:2] + struct.pack(">H", _checksum(icmp)) + icmp[4:]
    header = struct.pack(
        ">BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 0x1234, 0, 64, 1, 0, source, destination
    )
    header = header[:10] + struct.pack(">H", _checksum(header)) + header[12:]
    return header + icmp


@dataclass(frozen=True)
class IcmpEcho:
    """The fields of an ICMP echo (reply) the tests compare."""

    source: bytes
    destination: bytes
    icmp_type: int
    ident: int
    seq: int
    data: bytes


def parse_icmp(packet: bytes) -> IcmpEcho | None:
    """Parse an IPv4 ICMP echo/echo reply, checking both checksums; None for anything else."""
    if len(packet) < 28 or packet[0] >> 4 != 4 or packet[9] != 1:
        return None
    header_length = (packet[0] & 0x0F) * 4
    total = struct.unpack(">H", packet[2:4])[0]
    if _checksum(packet[:header_length]) != 0 or _checksum(packet[header_length:total]) != 0:
        return None
    icmp = packet[header_length:total]
    icmp_type, _, _, ident, seq = struct.unpack(">BBHHH", icmp[:8])
    return IcmpEcho(packet[12:16], packet[16:20], icmp_type, ident, seq, icmp[8:])
