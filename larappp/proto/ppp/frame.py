"""PPP frame header: address/control field (ACFC) and protocol field (PFC), protocol numbers."""

from __future__ import annotations

# RFC 1661 §2 and the IANA PPP DLL protocol numbers
IPV4 = 0x0021
IPV6 = 0x0057
VJ_COMPRESSED = 0x002D  # RFC 1144
VJ_UNCOMPRESSED = 0x002F  # RFC 1144
IPCP = 0x8021  # RFC 1332
IPV6CP = 0x8057  # RFC 5072
CCP = 0x80FD  # RFC 1962
LCP = 0xC021  # RFC 1661
PAP = 0xC023  # RFC 1334
LQR = 0xC025  # RFC 1989
CHAP = 0xC223  # RFC 1994

PROTOCOL_NAMES = {
    IPV4: "IPv4",
    IPV6: "IPv6",
    VJ_COMPRESSED: "VJ compressed TCP/IP",
    VJ_UNCOMPRESSED: "VJ uncompressed TCP/IP",
    IPCP: "IPCP",
    IPV6CP: "IPV6CP",
    CCP: "CCP",
    LCP: "LCP",
    PAP: "PAP",
    LQR: "LQR",
    CHAP: "CHAP",
}

ADDRESS_CONTROL = b"\xff\x03"  # RFC 1662 §3.1: all-stations address, UI control


def protocol_name(protocol: int) -> str:
    """A readable name for a PPP protocol number (`0x80fd` -> `CCP`)."""
    return PROTOCOL_NAMES.get(protocol, f"protocol {protocol:#06x}")


def split_protocol(frame: bytes) -> tuple[int, bytes]:
    """Split a received frame (FCS stripped) into protocol number and information field.

    Accepts the address/control field present or compressed away (ACFC) and a one-octet
    protocol field (PFC) whatever was negotiated, as RFC 1661 §6.5/§6.6 recommend.
    Raises ValueError for a frame that carries no valid protocol field.
    """
    start = 2 if frame[:2] == ADDRESS_CONTROL else 0
    if len(frame) <= start:
        raise ValueError("frame has no protocol field")
    first = frame[start]
    if first & 1:  # RFC 1661 §2: the last octet of the protocol field is odd
        return first, frame[start + 1 :]
    if len(frame) < start + 2 or not frame[start + 1] & 1:
        raise ValueError("frame has a malformed protocol field")
    return (first << 8) | frame[start + 1], frame[start + 2 :]


def frame_header(protocol: int, acfc: bool = False, pfc: bool = False) -> bytes:
    """The octets before the information field for `protocol`, compressed as allowed."""
    if not 0 < protocol <= 0xFFFF or not protocol & 1 or protocol >> 8 & 1:
        raise ValueError(f"{protocol:#06x} is not a valid PPP protocol number")
    address = b"" if acfc else ADDRESS_CONTROL
    if pfc and protocol < 0x100:
        return address + bytes((protocol,))
    return address + protocol.to_bytes(2, "big")


def build_frame(protocol: int, info: bytes, acfc: bool = False, pfc: bool = False) -> bytes:
    """A frame ready for HDLC encoding: header (compressed as allowed) plus information."""
    return frame_header(protocol, acfc, pfc) + info
