"""PAP (RFC 1334) and CHAP with MD5 (RFC 1994), both roles, with time as an input.

The authenticator looks a user's secret up through a callback; the peer answers with its
own credentials. Every process exposes `start(now)`, `receive_packet(packet, now)`,
`handle_timer(now)`, `get_timer()`, `packets_to_send()` and, once decided, `result`.
Secrets never appear in a result, a repr or a log line.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from larappp.proto.ppp import frame
from larappp.proto.ppp.fsm import MAX_CONFIGURE, RESTART_INTERVAL
from larappp.proto.ppp.options import RandomSource, random_bytes

# RFC 1334 §2.2 PAP codes
PAP_REQUEST = 1
PAP_ACK = 2
PAP_NAK = 3
# RFC 1994 §4 CHAP codes
CHAP_CHALLENGE = 1
CHAP_RESPONSE = 2
CHAP_SUCCESS = 3
CHAP_FAILURE = 4
CHAP_CHALLENGE_LENGTH = 16

#: looks a user's secret up (None: unknown user); used for PAP and CHAP alike
SecretLookup = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class AuthResult:
    """How one authentication ended (no secret in it)."""

    method: str
    as_authenticator: bool
    succeeded: bool
    username: str
    message: str


def _packet(code: int, identifier: int, data: bytes) -> bytes:
    return bytes((code, identifier)) + (len(data) + 4).to_bytes(2, "big") + data


def _parse(packet: bytes) -> tuple[int, int, bytes] | None:
    if len(packet) < 4:
        return None
    length = int.from_bytes(packet[2:4], "big")
    if length < 4 or length > len(packet):
        return None
    return packet[0], packet[1], packet[4:length]


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _counted(data: bytes, offset: int) -> tuple[bytes, int] | None:
    """A one-octet length and that many octets at `offset` (RFC 1334 §2.2.1)."""
    if offset >= len(data):
        return None
    end = offset + 1 + data[offset]
    if end > len(data):
        return None
    return data[offset + 1 : end], end


def chap_md5_response(identifier: int, secret: bytes, challenge: bytes) -> bytes:
    """MD5 over identifier, secret and challenge (RFC 1994 §4.1, algorithm 5)."""
    return hashlib.md5(bytes((identifier,)) + secret + challenge, usedforsecurity=False).digest()


class AuthProcess:
    """One side of one authentication method, as a sans-IO object."""

    method = ""
    protocol = 0
    as_authenticator = False

    def __init__(
        self,
        *,
        restart_interval: float = RESTART_INTERVAL,
        max_transmits: int = MAX_CONFIGURE,
    ) -> None:
        self.restart_interval = restart_interval
        self.max_transmits = max_transmits
        self.result: AuthResult | None = None
        self.username = ""
        self._outbox: list[bytes] = []
        self._deadline: float | None = None
        self._identifier = 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} user={self.username!r} result={self.result!r}>"

    def packets_to_send(self) -> list[bytes]:
        """Packets (code, identifier, length, data) to send on `protocol`; clears the queue."""
        packets, self._outbox = self._outbox, []
        return packets

    def get_timer(self) -> float | None:
        """When `handle_timer` must next be called."""
        return self._deadline

    def start(self, now: float) -> None:
        """LCP is opened and this method was agreed: begin."""
        self._deadline = now + self.restart_interval * self.max_transmits

    def handle_timer(self, now: float) -> None:
        """Retransmit or give up if the timer has expired by `now`."""
        if self._deadline is None or now < self._deadline:
            return
        self._deadline = None
        self.timed_out(now)

    def timed_out(self, now: float) -> None:
        """The timer expired: by default the wait is over and the method failed."""
        self._finish(False, f"no {self.method.upper()} answer from the peer in time")

    def receive_packet(self, packet: bytes, now: float) -> None:
        """One received packet of `protocol`."""
        parsed = _parse(packet)
        if parsed is not None:
            self.receive(*parsed, now)

    def receive(self, code: int, identifier: int, data: bytes, now: float) -> None:
        """One parsed packet."""

    def _finish(self, succeeded: bool, message: str) -> None:
        if self.result is None:
            self.result = AuthResult(
                self.method, self.as_authenticator, succeeded, self.username, message
            )
        self._deadline = None

    def _next_identifier(self) -> int:
        self._identifier = (self._identifier + 1) & 0xFF
        return self._identifier


class PapPeer(AuthProcess):
    """PAP, answering side: sends our name and password until the authenticator answers."""

    method = "pap"
    protocol = frame.PAP

    def __init__(self, username: str, password: str, **timers: Any) -> None:
        super().__init__(**timers)
        self.username = username
        self._password = password.encode()
        self._sent: set[int] = set()
        self._transmits = 0

    def start(self, now: float) -> None:
        self._send_request(now)

    def _send_request(self, now: float) -> None:
        # RFC 1334 §2.2.1: a new Identifier for every Authenticate-Request
        identifier = self._next_identifier()
        self._sent.add(identifier)
        user = self.username.encode()[:255]
        password = self._password[:255]
        data = bytes((len(user),)) + user + bytes((len(password),)) + password
        self._outbox.append(_packet(PAP_REQUEST, identifier, data))
        self._transmits += 1
        self._deadline = now + self.restart_interval

    def timed_out(self, now: float) -> None:
        if self._transmits >= self.max_transmits:
            self._finish(
                False, f"the peer answered none of {self._transmits} PAP Authenticate-Requests"
            )
        else:
            self._send_request(now)

    def receive(self, code: int, identifier: int, data: bytes, now: float) -> None:
        if code not in (PAP_ACK, PAP_NAK) or identifier not in self._sent:
            return
        message = _counted(data, 0)
        text = _text(message[0]) if message else ""
        if code == PAP_ACK:
            self._finish(True, text)
        else:
            self._finish(False, f"the peer refused our PAP credentials ({text or 'no reason'})")


class PapAuthenticator(AuthProcess):
    """PAP, checking side: waits for a name and password and checks them by lookup."""

    method = "pap"
    protocol = frame.PAP
    as_authenticator = True

    def __init__(self, secret_for: SecretLookup, **timers: Any) -> None:
        super().__init__(**timers)
        self._secret_for = secret_for

    def timed_out(self, now: float) -> None:
        self._finish(False, "the peer sent no PAP Authenticate-Request in time")

    def receive(self, code: int, identifier: int, data: bytes, now: float) -> None:
        if code != PAP_REQUEST:
            return
        user_field = _counted(data, 0)
        if user_field is None:
            return
        password_field = _counted(data, user_field[1])
        if password_field is None:
            return
        if self.result is None:
            self.username = _text(user_field[0])
            secret = self._secret_for(self.username)
            accepted = secret is not None and hmac.compare_digest(
                secret.encode(), password_field[0]
            )
            if accepted:
                self._finish(True, "PAP credentials accepted")
            else:
                self._finish(False, f"PAP credentials of user {self.username!r} refused")
        # RFC 1334 §2.2.1: every (re)transmitted request gets the same answer
        result = self.result
        assert result is not None
        message = b"Login ok" if result.succeeded else b"Login incorrect"
        code_out = PAP_ACK if result.succeeded else PAP_NAK
        self._outbox.append(_packet(code_out, identifier, bytes((len(message),)) + message))


class ChapPeer(AuthProcess):
    """CHAP-MD5, answering side: answers every Challenge with the hash of our secret."""

    method = "chap"
    protocol = frame.CHAP

    def __init__(self, username: str, password: str, **timers: Any) -> None:
        super().__init__(**timers)
        self.username = username
        self._secret = password.encode()
        self._answered: int | None = None

    def timed_out(self, now: float) -> None:
        self._finish(False, "the peer sent no CHAP Challenge or verdict in time")

    def receive(self, code: int, identifier: int, data: bytes, now: float) -> None:
        if code == CHAP_CHALLENGE:
            challenge = _counted(data, 0)
            if challenge is None or not challenge[0]:
                return
            value = chap_md5_response(identifier, self._secret, challenge[0])
            name = self.username.encode()
            self._outbox.append(
                _packet(CHAP_RESPONSE, identifier, bytes((len(value),)) + value + name)
            )
            self._answered = identifier
        elif code in (CHAP_SUCCESS, CHAP_FAILURE) and identifier == self._answered:
            text = _text(data)
            if code == CHAP_SUCCESS:
                self._finish(True, text)
            else:
                self._finish(False, f"the peer refused our CHAP response ({text or 'no reason'})")


class ChapAuthenticator(AuthProcess):
    """CHAP-MD5, checking side: challenges the peer and checks the hash by secret lookup."""

    method = "chap"
    protocol = frame.CHAP
    as_authenticator = True

    def __init__(
        self, name: str, secret_for: SecretLookup, rng: RandomSource, **timers: Any
    ) -> None:
        super().__init__(**timers)
        self._name = name.encode()
        self._secret_for = secret_for
        self._rng = rng
        self._challenge = b""
        self._transmits = 0

    def start(self, now: float) -> None:
        self._challenge = random_bytes(self._rng, CHAP_CHALLENGE_LENGTH)
        self._send_challenge(now)

    def _send_challenge(self, now: float) -> None:
        identifier = self._next_identifier()  # RFC 1994 §4.1: changes with every Challenge
        data = bytes((len(self._challenge),)) + self._challenge + self._name
        self._outbox.append(_packet(CHAP_CHALLENGE, identifier, data))
        self._transmits += 1
        self._deadline = now + self.restart_interval

    def timed_out(self, now: float) -> None:
        if self._transmits >= self.max_transmits:
            self._finish(False, f"the peer answered none of {self._transmits} CHAP Challenges")
        else:
            self._send_challenge(now)

    def receive(self, code: int, identifier: int, data: bytes, now: float) -> None:
        if code != CHAP_RESPONSE or identifier != self._identifier or not self._challenge:
            return
        value = _counted(data, 0)
        if value is None:
            return
        if self.result is None:
            self.username = _text(data[value[1] :])
            secret = self._secret_for(self.username)
            expected = (
                chap_md5_response(identifier, secret.encode(), self._challenge)
                if secret is not None
                else b""
            )
            if secret is not None and hmac.compare_digest(expected, value[0]):
                self._finish(True, "CHAP response accepted")
            else:
                self._finish(False, f"CHAP response of user {self.username!r} refused")
        # RFC 1994 §4.2: a repeated Response gets the same verdict again
        result = self.result
        assert result is not None
        if result.succeeded:
            self._outbox.append(_packet(CHAP_SUCCESS, identifier, b"Welcome"))
        else:
            self._outbox.append(_packet(CHAP_FAILURE, identifier, b"Access denied"))
