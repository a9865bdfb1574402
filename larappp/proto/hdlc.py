"""RFC 1662 asynchronous HDLC-like framing: FCS-16, byte stuffing with an ACCM, flags.

Everything here works on whole buffers, never byte by byte in Python: the FCS is
`binascii.crc_hqx` over bit-reflected input, stuffing is a chain of `bytes.replace`,
unstuffing splits on the escape octet, and frames are found by splitting on the flag.
The address/control and protocol fields (ACFC, PFC) belong to the PPP link layer
(`larappp.proto.ppp.frame`); this module only sees the octets between two flags.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable

FLAG = 0x7E  # RFC 1662 §4.2
ESCAPE = 0x7D  # RFC 1662 §4.2
DEFAULT_ACCM = 0xFFFFFFFF  # RFC 1662 §7.1: every control character escaped until LCP agrees
FCS_INITIAL = 0xFFFF  # RFC 1662 §C.2 PPPINITFCS16
FCS_GOOD = 0xF0B8  # RFC 1662 §C.2 PPPGOODFCS16: the FCS over a good frame including its FCS
MIN_FRAME_LENGTH = 4  # RFC 1662 §3.1: shorter frames (FCS included) are silently discarded
DEFAULT_MAX_FRAME_LENGTH = 8192  # octets between flags after unstuffing, FCS included

_FLAG_BYTE = b"\x7e"
_ESCAPE_BYTE = b"\x7d"
_ESCAPE_PAIR = b"\x7d\x7d"  # an escaped 0x5D (a sender may escape any octet): the loop's case
# bit-reversal of every octet: crc_hqx is MSB-first, the PPP FCS is LSB-first
_REFLECT = bytes(int(f"{octet:08b}"[::-1], 2) for octet in range(256))
# the octet that follows an escape, XORed back (RFC 1662 §4.2): one 1-byte object per value
_UNESCAPED = tuple(bytes((octet ^ 0x20,)) for octet in range(256))


def _reflect16(value: int) -> int:
    return (_REFLECT[value & 0xFF] << 8) | _REFLECT[value >> 8]


_GOOD_REFLECTED = _reflect16(FCS_GOOD)


def fcs16(data: bytes, fcs: int = FCS_INITIAL) -> int:
    """The running FCS-16 of RFC 1662 §C.2 (`pppfcs16`): not complemented.

    `fcs16(b"123456789") ^ 0xFFFF == 0x906E` (the CRC-16/X-25 check value) and the FCS over a
    frame followed by its transmitted FCS is `FCS_GOOD`.
    """
    return _reflect16(binascii.crc_hqx(data.translate(_REFLECT), _reflect16(fcs)))


def append_fcs(frame: bytes) -> bytes:
    """`frame` followed by its complemented FCS-16, least significant octet first (§C.2)."""
    # reflecting the 16-bit CRC and sending it LSB first is sending it MSB first with each
    # octet reflected: one translate instead of two table look-ups per frame
    crc = binascii.crc_hqx(frame.translate(_REFLECT), FCS_INITIAL)
    return frame + (crc ^ 0xFFFF).to_bytes(2, "big").translate(_REFLECT)


def fcs_is_good(frame: bytes) -> bool:
    """Whether a received frame, FCS included, has the good residue (RFC 1662 §C.2)."""
    return binascii.crc_hqx(frame.translate(_REFLECT), FCS_INITIAL) == _GOOD_REFLECTED


def accm_characters(accm: int) -> bytes:
    """The control characters (0x00-0x1F) whose bits are set in an ACCM (RFC 1662 §7.1)."""
    if not 0 <= accm <= 0xFFFFFFFF:
        raise ValueError(f"an ACCM is 32 bits, got {accm:#x}")
    return bytes(char for char in range(32) if accm >> char & 1)


class HdlcEncoder:
    """Turns PPP frames (address..information) into flagged, FCS-protected, stuffed octets."""

    def __init__(self, accm: int = DEFAULT_ACCM) -> None:
        self._escapes: tuple[tuple[bytes, bytes], ...] = ()
        self.accm = accm

    @property
    def accm(self) -> int:
        """The transmit ACCM: control characters escaped besides 0x7D and 0x7E."""
        return self._accm

    @accm.setter
    def accm(self, accm: int) -> None:
        chars = accm_characters(accm)
        self._accm = accm
        self._escapes = tuple((bytes((c,)), bytes((ESCAPE, c ^ 0x20))) for c in chars)

    def stuff(self, frame: bytes) -> bytes:
        """The frame with its FCS appended and every special octet escaped, without flags."""
        data = append_fcs(frame)
        # 0x7D first, or the escapes added for 0x7E would be escaped again
        data = data.replace(b"\x7d", b"\x7d\x5d").replace(b"\x7e", b"\x7d\x5e")
        for raw, escaped in self._escapes:
            data = data.replace(raw, escaped)
        return data

    def encode(self, protocol_payload: bytes) -> bytes:
        """One complete frame on the wire: flag, stuffed frame and FCS, flag."""
        return b"".join((_FLAG_BYTE, self.stuff(protocol_payload), _FLAG_BYTE))

    def encode_many(self, frames: Iterable[bytes]) -> bytes:
        """Several frames back to back sharing the flags between them (RFC 1662 §3.1)."""
        stuffed = [self.stuff(frame) for frame in frames]
        if not stuffed:
            return b""
        return b"".join((_FLAG_BYTE, _FLAG_BYTE.join(stuffed), _FLAG_BYTE))


class HdlcDecoder:
    """Finds good frames in a stream of received octets; counts what it had to throw away."""

    def __init__(
        self, accm: int = DEFAULT_ACCM, max_frame_length: int = DEFAULT_MAX_FRAME_LENGTH
    ) -> None:
        if max_frame_length < MIN_FRAME_LENGTH:
            raise ValueError(f"max_frame_length must be at least {MIN_FRAME_LENGTH}")
        self.max_frame_length = max_frame_length
        self._pending = bytearray()
        self._hunting = True  # no flag seen yet: octets before the first flag are garbage
        self._delete = b""
        self.accm = accm
        self.frames = 0
        self.bad_fcs = 0
        self.too_short = 0
        self.too_long = 0
        self.aborted = 0
        self.garbage_bytes = 0

    @property
    def accm(self) -> int:
        """The receive ACCM: control characters arriving unescaped are dropped (RFC 1662 §7.1)."""
        return self._accm

    @accm.setter
    def accm(self, accm: int) -> None:
        self._delete = accm_characters(accm)
        self._accm = accm

    def receive_data(self, data: bytes) -> list[bytes]:
        """Feed received octets; returns the good frames completed by them, FCS stripped."""
        if _FLAG_BYTE not in data:
            if self._hunting:
                self.garbage_bytes += len(data)
            else:
                self._pending += data
                self._check_overflow()
            return []
        pieces = data.split(_FLAG_BYTE)
        frames: list[bytes] = []
        first = pieces[0]
        if self._hunting:
            self.garbage_bytes += len(first)
            self._hunting = False
        else:
            if self._pending:
                self._pending += first
                first = bytes(self._pending)
                self._pending.clear()
            if first:
                self._decode(first, frames)
        for piece in pieces[1:-1]:
            if piece:
                self._decode(piece, frames)
        self._pending += pieces[-1]
        self._check_overflow()
        return frames

    def _check_overflow(self) -> None:
        # worst case every octet escaped; beyond that no valid frame can still be in the buffer
        if len(self._pending) > 2 * self.max_frame_length:
            self.too_long += 1
            self.garbage_bytes += len(self._pending)
            self._pending.clear()
            self._hunting = True

    def _decode(self, piece: bytes, frames: list[bytes]) -> None:
        if self._delete:
            stripped = piece.translate(None, self._delete)
            if len(stripped) != len(piece):
                good = _check(stripped, self.max_frame_length)
                if isinstance(good, bytes):
                    self.frames += 1
                    frames.append(good)
                    return
                # Not good without them: the control characters may be data from a sender
                # that already uses the smaller ACCM LCP just agreed (frames in flight when
                # we switch). The FCS decides, as with any frame.
        result = _check(piece, self.max_frame_length)
        if isinstance(result, bytes):
            self.frames += 1
            frames.append(result)
        elif result is _ABORTED:
            self.aborted += 1
        elif result is _TOO_SHORT:
            self.too_short += 1
        elif result is _TOO_LONG:
            self.too_long += 1
        elif result is _BAD_FCS:
            self.bad_fcs += 1


_ABORTED, _TOO_SHORT, _TOO_LONG, _BAD_FCS, _EMPTY = range(5)


def _check(piece: bytes, max_frame_length: int) -> bytes | int:
    """The frame without its FCS if `piece` is a good one, else why not."""
    if _ESCAPE_BYTE in piece:
        unstuffed = _unstuff(piece)
        if unstuffed is None:
            return _ABORTED
        piece = unstuffed
    length = len(piece)
    if length < MIN_FRAME_LENGTH:
        return _TOO_SHORT if length else _EMPTY
    if length > max_frame_length:
        return _TOO_LONG
    if binascii.crc_hqx(piece.translate(_REFLECT), FCS_INITIAL) != _GOOD_REFLECTED:
        return _BAD_FCS
    return piece[:-2]


def _unstuff(piece: bytes) -> bytes | None:
    """Undo RFC 1662 §4.2 escaping; None when the piece ends in an escape (an abort, 7D 7E)."""
    if _ESCAPE_PAIR not in piece and not piece.endswith(_ESCAPE_BYTE):
        # Every 0x7D starts an escape, so the pairs cannot overlap: the two a sender must
        # escape whatever the ACCM (flag and escape, all there is at ACCM 0) are undone in
        # C; any other escaped octet left shows in the count, and the loop below runs.
        fast = piece.replace(b"\x7d\x5e", b"\x7e").replace(b"\x7d\x5d", b"\x7d")
        if len(piece) - len(fast) == piece.count(_ESCAPE_BYTE):
            return fast
    parts = piece.split(_ESCAPE_BYTE)
    if not parts[-1] and len(parts) > 1 and _trailing_escape_is_live(parts):
        return None
    out = [parts[0]]
    escaping = True  # the 0x7D before this part is an escape (not an escaped 0x7D)
    for part in parts[1:]:
        if not escaping:
            out.append(part)
            escaping = True
        elif part:
            out.append(_UNESCAPED[part[0]])
            out.append(part[1:])
        else:
            # "7D 7D": the second 0x7D is the escaped octet itself
            out.append(_UNESCAPED[ESCAPE])
            escaping = False
    return b"".join(out)


def _trailing_escape_is_live(parts: list[bytes]) -> bool:
    """Whether the 0x7D that ends a piece is an escape rather than an escaped 0x7D."""
    # each trailing empty part is one more 0x7D at the end; a run of them pairs up from its start
    run = 0
    for part in reversed(parts[1:]):
        if part:
            break
        run += 1
    return run % 2 == 1
