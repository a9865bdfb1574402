"""Spotting the module's result codes among the PPP frames: it has left data mode.

When a call ends without PPP saying so (the network dropped it, the context was
deactivated) the module sends a final result code in the verbose V.250 form,
CR LF "NO CARRIER" CR LF (ITU-T V.250 §5.7.1, ATV1), and is back in command mode. Those
octets arrive where HDLC frames were: after the last frame's flag, or instead of any
frame. `DataModeWatcher` looks only at octets outside frames, which it recognises
without decoding anything: they come before the first flag, or in a piece that starts
with CR right after a flag. No PPP frame starts with CR (0x0D): the address field is
0xFF, a two-octet protocol field starts with an even octet, and the one-octet protocol
0x0D is reserved (RFC 1661 §2, "transparency inefficient"). A result code's own CR LF
on both sides is required too, so octets inside frames (payload, escaped or not) never
count, whatever they contain.
"""

from __future__ import annotations

import re

from larappp.proto.at.core import decode_line, parse_final_result

_FLAG = b"\x7e"
#: a flag followed by CR; a compiled pattern finds it several times faster than
#: `bytes.find` with a two-octet needle does in a frame full of zeros
_FLAG_THEN_CR = re.compile(b"\x7e\r")
#: the longest result line looked for (+CME ERROR with a verbose text is the longest)
MAX_RESULT_LENGTH = 80
#: octets outside frames kept while no result line is complete
_MAX_TEXT = 512
_RESULT_LINE = re.compile(rb"\r\n([^\r\n]{1,%d})\r\n" % MAX_RESULT_LENGTH)


class DataModeWatcher:
    """Finds a final result code outside the HDLC frames of a received byte stream."""

    def __init__(self) -> None:
        self._outside = True  # before the first flag, every octet is outside a frame
        self._after_flag = False  # the previous chunk ended with a flag
        self._text = bytearray()
        #: the first result code found (the line as sent, e.g. "NO CARRIER"), None so far
        self.result: str | None = None

    def receive_data(self, data: bytes) -> str | None:
        """Feed received octets (any chunking); returns the result code they completed."""
        if self.result is not None or not data:
            return None
        if self._after_flag and not self._outside and data[0] == 0x0D:
            self._outside = True
        position = 0
        while True:
            if self._outside:
                end = data.find(_FLAG, position)
                self._text += data[position : end if end >= 0 else len(data)]
                found = self._scan()
                if found is not None or end < 0:
                    self._after_flag = False
                    return found
                self._outside = False
                self._text.clear()
                position = end
            found_at = _FLAG_THEN_CR.search(data, position)
            if found_at is None:
                break
            self._outside = True
            position = found_at.start() + 1
        self._after_flag = data.endswith(_FLAG)
        return None

    def _scan(self) -> str | None:
        for match in _RESULT_LINE.finditer(self._text):
            line = decode_line(match.group(1))
            final = parse_final_result(line)
            if final is not None and final.kind != "connect":
                self.result = line
                return line
        if len(self._text) > _MAX_TEXT:
            # keep what may still be the start of a result line
            del self._text[: -(MAX_RESULT_LENGTH + 4)]
        return None
