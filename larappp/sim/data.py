"""What the simulated module does with the bytes of a data call (after CONNECT).

The module hands each dialled call to a `DataSession` made by a factory. The module-side
PPP will be one; `DiscardDataSession` just counts bytes. Sessions are sans-IO too: they
may ask for a timer (`get_timer`) and are called back with `handle_timer(now)`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from larappp.sim.scenario import ContextAddresses


@dataclass(frozen=True)
class DataCall:
    """Everything a data session needs to know about the call it serves."""

    port: int
    cid: int
    apn: str
    #: The PDP type the network granted ("IP", "IPV6", "IPV4V6").
    pdp_type: str
    addresses: ContextAddresses
    mtu: int
    #: AT+UAUTHREQ for this cid: 0 none, 1 PAP, 2 CHAP, 3 automatic.
    auth_type: int
    user: str
    password: str
    #: The CLAT IPv4 address offered over PPP when 464XLAT is active (app note §2.5).
    xlat_ipv4: str | None
    #: The applied +UEMBPF range: downlink packets to these ports stay in the module (§4.3).
    embedded_port_range: tuple[int, int] | None

    @property
    def has_ipv4(self) -> bool:
        return self.pdp_type in ("IP", "IPV4V6") or self.xlat_ipv4 is not None

    @property
    def has_ipv6(self) -> bool:
        return self.pdp_type in ("IPV6", "IPV4V6")


class HangupCallback(Protocol):
    """Called by a session to end its call (e.g. on LCP Terminate): NO CARRIER follows."""

    def __call__(self, reason: str = ...) -> None: ...


SendCallback = Callable[[bytes], None]


class DataSession(abc.ABC):
    """The module's end of one data call: bytes from the DTE in, bytes to the DTE out."""

    def __init__(self, call: DataCall, send: SendCallback, hangup: HangupCallback) -> None:
        self.call = call
        self.send = send
        self.hangup = hangup

    @abc.abstractmethod
    def on_data(self, data: bytes) -> None:
        """Bytes the DTE sent in data mode (the module already took "+++" out)."""

    @abc.abstractmethod
    def close(self, reason: str) -> None:
        """The call ended for `reason` ("dtr", "ath", "escape", "reboot", ...); stop sending."""

    def get_timer(self) -> float | None:
        """When the session wants `handle_timer`; None when it does not."""
        return None

    def handle_timer(self, now: float) -> None:
        """Called at (or after) the time `get_timer` asked for."""


DataSessionFactory = Callable[[DataCall, SendCallback, HangupCallback], DataSession]


class DiscardDataSession(DataSession):
    """A data session that drops what the DTE sends and counts it (until PPP plugs in)."""

    def __init__(self, call: DataCall, send: SendCallback, hangup: HangupCallback) -> None:
        super().__init__(call, send, hangup)
        self.bytes_received = 0
        self.chunks: list[bytes] = []
        self.closed_reason: str | None = None
        #: Keep at most this many bytes in `chunks` (tests look at them).
        self.keep = 65536
        self._kept = 0

    def on_data(self, data: bytes) -> None:
        self.bytes_received += len(data)
        if self._kept < self.keep:
            self.chunks.append(data[: self.keep - self._kept])
            self._kept += len(self.chunks[-1])

    @property
    def received(self) -> bytes:
        return b"".join(self.chunks)

    def close(self, reason: str) -> None:
        self.closed_reason = reason

    def inject(self, data: bytes) -> None:
        """Send bytes to the DTE as if they came from the network (tests)."""
        self.send(data)
