"""The simulated module's side of PPP: a DataSession running PppLink in the module role,
with the network behind it (larappp.sim.network) standing for the operator.

The module is a transparent pipe for the DTE's packets (app note §4.1.1); it hands the
DTE the IPv4 address and DNS the network assigned (IPCP) and only a link-local interface
identifier over IPV6CP, the global prefix coming by SLAAC from the network's RA (§4.1.2).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, cast

from larappp.proto.ppp import events as ev
from larappp.proto.ppp.config import LinkConfig
from larappp.proto.ppp.link import PppLink
from larappp.sim.data import DataCall, DataSession, DataSessionFactory, HangupCallback, SendCallback
from larappp.sim.radio import Radio

if TYPE_CHECKING:
    from larappp.sim.addressing import Grant
    from larappp.sim.network import SimNetwork

log = logging.getLogger(__name__)

AUTH_NAMES = {1: ("pap",), 2: ("chap",), 3: ("chap", "pap")}


class ModulePppSession(DataSession):
    """The module's end of one PPP call: negotiates, then relays packets to the network."""

    def __init__(
        self,
        call: DataCall,
        send: SendCallback,
        hangup: HangupCallback,
        *,
        network: SimNetwork,
        clock: Callable[[], float],
        wake: Callable[[], None],
        radio: Radio | None = None,
    ) -> None:
        super().__init__(call, send, hangup)
        self._clock = clock
        #: the module's one radio, shared by all calls: rates, latency, the uplink buffer
        self.radio = radio or Radio()
        self._wake = wake
        self.closed_reason: str | None = None
        self.port = network.attach(call.cid, grant=cast("Grant", call.pdp_type), send_downlink=self._downlink)
        # The applied +UEMBPF range keeps those ports for the module's own apps (app note §4.3).
        network.set_embpf_range(*(call.embedded_port_range or (None, None)))
        ipv4 = call.has_ipv4 and self.port.ipv4_address is not None
        dns = tuple(IPv4Address(str(d)) for d in (self.port.dns_v4 or ())[:2])
        # Credentials set with AT+UAUTHREQ are checked against what the DTE sends.
        authenticate = AUTH_NAMES.get(call.auth_type, ()) if call.user else ()
        config = LinkConfig(
            mru=min(1500, max(576, call.mtu)),
            authenticate_peer=authenticate,
            secret_for=(lambda user: call.password if user == call.user else None) if authenticate else None,
            auth_name="lara-r6",
            ipv4=ipv4,
            ipv6=call.has_ipv6,
            ipv4_address=IPv4Address(str(self.port.ipv4_peer)) if ipv4 else None,
            ipv4_peer_address=IPv4Address(str(self.port.ipv4_address)) if ipv4 else None,
            dns_servers=dns if ipv4 else (),
            ipv6_interface_id=self.port.module_iid if call.has_ipv6 else None,
            ipv6_peer_interface_id=self.port.dte_iid if call.has_ipv6 else None,
            echo_interval=None,
        )
        if not ipv4 and not call.has_ipv6:
            config = LinkConfig(ipv4=False, ipv6=True, echo_interval=None)
        self.link = PppLink("module", config, now=clock())
        self.link.open(clock())
        # The call is not wired to its port until the factory returns: send from the first timer.
        self._opening = True

    # -- DataSession -------------------------------------------------------------------------
    def on_data(self, data: bytes) -> None:
        self._opening = False
        self.link.receive_data(data, self._clock())
        self._process()

    def close(self, reason: str) -> None:
        self.closed_reason = reason
        self.port.detach()

    def get_timer(self) -> float | None:
        if self._opening:
            return self._clock()
        deadlines = [t for t in (self.link.get_timer(), self.radio.get_timer()) if t is not None]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        self._opening = False
        self.radio.handle_timer(now)  # every call's packets: whichever call's timer fires first
        self.link.handle_timer(now)
        self._process()

    # -- faults (larappp.sim.control) ----------------------------------------------------------
    def renegotiate(self, family: int, now: float) -> None:
        """The module renegotiates IPCP (4) or IPV6CP (6) while LCP stays up: its side of the
        NCP goes down and sends a new Configure-Request (RFC 1661 Down then Up in Opened)."""
        ncp = self.link.ipcp if family == 4 else self.link.ipv6cp
        if ncp is None:
            raise ValueError(f"the call negotiates no {'IPCP' if family == 4 else 'IPV6CP'}")
        self._opening = False
        self.link.renegotiate(family, now)
        self._process()

    # -- network -------------------------------------------------------------------------------
    def _downlink(self, family: int, packet: bytes) -> None:
        if self.closed_reason is not None:
            return
        now = self._clock()
        self.radio.downlink.offer(len(packet), lambda: self._to_dte(family, packet), now)
        self.radio.handle_timer(now)
        self._wake()  # the driver's timer follows the radio's

    def _to_dte(self, family: int, packet: bytes) -> None:
        if self.closed_reason is None and self.link.send_packet(family, packet):
            self._flush()
            self._wake()

    def _uplink(self, family: int, packet: bytes, now: float) -> None:
        # What the radio cannot send yet waits in the module's buffer, or is dropped (§4).
        self.radio.uplink.offer(len(packet), lambda: self.port.uplink(family, packet), now)
        self.radio.handle_timer(now)

    def _process(self) -> None:
        while (event := self.link.next_event()) is not None:
            if isinstance(event, ev.PacketReceived):
                self._uplink(event.family, event.packet, self._clock())
            elif isinstance(event, ev.Ipv6cpOpened):
                self.port.start_advertising()  # periodic RAs besides the answers to RS
            elif isinstance(event, ev.LinkTerminated):
                # LCP Terminate (or a failed negotiation) ends the call: NO CARRIER (§4.2).
                self._flush()
                self.hangup(f"lcp: {event.reason}")
                return
            else:
                log.debug("cid %d: %s", self.call.cid, event)
        self._flush()

    def _flush(self) -> None:
        data = self.link.data_to_send()
        if data:
            self.send(data)


def ppp_session_factory(
    network: SimNetwork, clock: Callable[[], float], wake: Callable[[], None], radio: Radio | None = None,
) -> DataSessionFactory:
    """A DataSessionFactory for the Simulator that runs module-side PPP on `network`, all
    calls sharing `radio` (none: a radio without limits)."""
    shared = radio or Radio()

    def factory(call: DataCall, send: SendCallback, hangup: HangupCallback) -> DataSession:
        return ModulePppSession(call, send, hangup, network=network, clock=clock, wake=wake, radio=shared)

    return factory
