"""The whole PPP link as one sans-IO object, for the host role and the module role.

Raw octets from the line go in with `receive_data()`, IP packets with `send_packet()`,
time with `handle_timer(now)`; octets for the line come out of `data_to_send()`, events
out of `next_event()`. Phases follow RFC 1661 §3.2: Dead, Establish, Authenticate,
Network, Terminate. IP packets bypass the option machinery: one header prepended and one
HDLC stuffing per packet going out, one dictionary-free branch per frame coming in.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from larappp.errors import ConfigError
from larappp.proto.hdlc import DEFAULT_ACCM, HdlcDecoder, HdlcEncoder
from larappp.proto.ppp import frame
from larappp.proto.ppp.auth import (
    AuthProcess,
    ChapAuthenticator,
    ChapPeer,
    PapAuthenticator,
    PapPeer,
)
from larappp.proto.ppp.config import LinkConfig, Role, ipcp_config, ipv6cp_config, lcp_config
from larappp.proto.ppp.datamode import DataModeWatcher
from larappp.proto.ppp.events import (
    AuthFailed,
    AuthSucceeded,
    EchoTimedOut,
    IpcpOpened,
    Ipv6cpOpened,
    LinkEvent,
    LinkLooped,
    LinkOpened,
    LinkTerminated,
    LinkWentDown,
    ModemLeftDataMode,
    NetworkProtocolClosed,
    PacketReceived,
    ProtocolRejected,
)
from larappp.proto.ppp.fsm import (
    ControlProtocol,
    LayerSignal,
    State,
)
from larappp.proto.ppp.ipcp import UNSPECIFIED, Ipcp
from larappp.proto.ppp.ipv6cp import Ipv6cp
from larappp.proto.ppp.lcp import (
    Lcp,
)
from larappp.proto.ppp.options import RandomSource

_LCP_HEADER = frame.ADDRESS_CONTROL + frame.LCP.to_bytes(2, "big")
_HEADER_SLACK = 4 + 2 + 16  # address, control, protocol; FCS; a peer exceeding the MRU a bit
_IDLE_STATES = frozenset({State.INITIAL, State.STARTING, State.CLOSED, State.STOPPED})
_NEGOTIATING_STATES = frozenset({State.REQ_SENT, State.ACK_RCVD, State.ACK_SENT})


class Phase(enum.Enum):
    """The RFC 1661 §3.2 link phases."""

    DEAD = "Dead"
    ESTABLISH = "Establish"
    AUTHENTICATE = "Authenticate"
    NETWORK = "Network"
    TERMINATE = "Terminate"


@dataclass
class LinkStats:
    """Counters of one link, for logs and health checks."""

    packets_sent: int = 0
    packets_received: int = 0
    packets_dropped: int = 0
    #: IP packets queued to send and then dropped unsent (`drop_queued_data`)
    queue_dropped: int = 0
    bad_frames: int = 0
    protocol_rejects_sent: int = 0


class PppLink:
    """One PPP link (LCP, PAP/CHAP, IPCP, IPV6CP over RFC 1662 framing) without any I/O."""

    def __init__(
        self,
        role: Role,
        config: LinkConfig | None = None,
        now: float = 0.0,
        rng: RandomSource | None = None,
    ) -> None:
        if role not in ("host", "module"):
            raise ConfigError(f"PPP role must be 'host' or 'module', not {role!r}")
        config = config if config is not None else LinkConfig()
        if role == "module" and config.ipv4 and config.ipv4_peer_address is None:
            raise ConfigError("a module-role PPP link needs ipv4_peer_address to give the host")
        self.role: Role = role
        self.config = config
        self.stats = LinkStats()
        self._rng: RandomSource = rng if rng is not None else random.SystemRandom()
        self._now = now
        timers: dict[str, Any] = {
            "restart_interval": config.restart_interval,
            "max_configure": config.max_configure,
            "max_terminate": config.max_terminate,
            "max_failure": config.max_failure,
        }
        self._lcp = Lcp(self, lcp_config(config), self._rng, **timers)
        self._ipcp = Ipcp(self, ipcp_config(role, config), **timers) if config.ipv4 else None
        self._ipv6cp = (
            Ipv6cp(self, ipv6cp_config(role, config), self._rng, **timers) if config.ipv6 else None
        )
        self._ncps: list[ControlProtocol[Any]] = [
            ncp for ncp in (self._ipcp, self._ipv6cp) if ncp is not None
        ]
        self._ncp_reported: dict[int, bool] = {}
        self._rejected_ncps: set[int] = set()
        self._decoder = HdlcDecoder(
            DEFAULT_ACCM, max_frame_length=max(config.mru, 1500) + _HEADER_SLACK
        )
        self._watcher = (
            DataModeWatcher() if role == "host" and config.watch_result_codes else None
        )
        #: (reason, cause) once the link was lost without a Terminate exchange
        self._lost: tuple[str, str] | None = None
        self._lcp_encoder = HdlcEncoder(DEFAULT_ACCM)  # RFC 1662 §7.1: LCP always escapes all
        self._encoder = HdlcEncoder(DEFAULT_ACCM)
        self._control_header_prefix = frame.ADDRESS_CONTROL
        self._ipv4_header = frame.frame_header(frame.IPV4)
        self._ipv6_header = frame.frame_header(frame.IPV6)
        self._ipv4_open = False
        self._ipv6_open = False
        #: frames to send: control (LCP, auth, NCP) always leaves before data (IP)
        self._control_out: list[bytes] = []
        self._data_out: deque[bytes] = deque()
        self._data_queued = 0
        self._events: deque[LinkEvent] = deque()
        self._phase = Phase.DEAD
        self._auth: list[AuthProcess] = []
        self._auth_reported: set[int] = set()
        self._deferred: list[Callable[[float], None]] = []
        self._terminated = False

    # -- public state ----------------------------------------------------------------
    @property
    def phase(self) -> Phase:
        """The RFC 1661 §3.2 phase the link is in."""
        return self._phase

    @property
    def lcp(self) -> Lcp:
        """The LCP automaton (read its state and agreed options)."""
        return self._lcp

    @property
    def ipcp(self) -> Ipcp | None:
        """The IPCP automaton, None when IPv4 is disabled."""
        return self._ipcp

    @property
    def ipv6cp(self) -> Ipv6cp | None:
        """The IPV6CP automaton, None when IPv6 is disabled."""
        return self._ipv6cp

    @property
    def terminated(self) -> bool:
        """True once LinkTerminated was reported: the object accepts no more input."""
        return self._terminated

    @property
    def decoder(self) -> HdlcDecoder:
        """The HDLC decoder (its counters: bad_fcs, too_short, aborted, garbage_bytes...)."""
        return self._decoder

    def is_open(self, family: int) -> bool:
        """Whether IP packets of `family` (4 or 6) can be sent now."""
        return self._ipv4_open if family == 4 else self._ipv6_open

    # -- administrative events ----------------------------------------------------------
    def open(self, now: float) -> None:
        """Start negotiating: the line is up (after CONNECT) and we want the link."""
        self._tick(now)
        if self._phase is not Phase.DEAD or self._terminated:
            return
        self._phase = Phase.ESTABLISH
        for ncp in self._ncps:
            ncp.open(now)
        self._lcp.open(now)
        self._lcp.up(now)
        self._settle(now)

    def close(self, now: float, reason: str) -> None:
        """End the link: Terminate-Request, then LinkTerminated once acknowledged or timed out."""
        self._tick(now)
        if self._terminated:
            return
        if self._lcp.state in (State.CLOSING, State.STOPPING):
            return
        if self._phase is not Phase.DEAD:
            self._phase = Phase.TERMINATE
        self._lcp.close(now, reason)
        if self._lcp.state in (State.INITIAL, State.CLOSED) and not self._terminated:
            self._finish(reason)
        self._settle(now)

    def lower_layer_lost(self, now: float, reason: str, cause: str = "lower-layer-down") -> None:
        """The line under PPP is gone (carrier lost, module back in command mode, peer
        silent): end the link at once, without a Terminate-Request nobody would read.

        The NCPs report NetworkProtocolClosed, then LinkTerminated(reason, lost=cause).
        """
        self._tick(now)
        if self._terminated:
            return
        self._lost = (reason, cause)
        lcp = self._lcp
        if lcp.state not in (State.INITIAL, State.STARTING):
            lcp.down(now, reason)  # tld from Opened: the NCPs go down with it
        if not self._terminated:
            lcp.close(now, reason)  # Starting: tlf, which finishes the link
        if not self._terminated:
            self._finish(reason)
        self._deferred.clear()
        # the module is not reading PPP any more: send it nothing
        self._control_out.clear()
        self.drop_queued_data()

    def renegotiate(self, family: int, now: float) -> None:
        """Negotiate the NCP of `family` (4: IPCP, 6: IPV6CP) again while LCP stays up.

        The peer sees a new Configure-Request; both sides report NetworkProtocolClosed
        and then IpcpOpened / Ipv6cpOpened with what was agreed this time (a host with a
        random interface identifier proposes a new one).
        """
        self._tick(now)
        ncp = self._ipcp if family == 4 else self._ipv6cp
        if self._terminated or ncp is None or ncp.state is not State.OPENED:
            return
        ncp.down(now, f"{ncp.name}: renegotiated")
        ncp.up(now)
        self._settle(now)

    # -- time ------------------------------------------------------------------------
    def _tick(self, now: float | None) -> float:
        if now is not None and now > self._now:
            self._now = now
        return self._now

    def get_timer(self) -> float | None:
        """When `handle_timer` must next be called (None: nothing is waiting)."""
        if self._terminated:
            return None
        deadlines = [self._lcp.get_timer()]
        deadlines.extend(ncp.get_timer() for ncp in self._ncps)
        deadlines.extend(process.get_timer() for process in self._auth)
        pending = [deadline for deadline in deadlines if deadline is not None]
        return min(pending) if pending else None

    def handle_timer(self, now: float) -> None:
        """Run the restart, echo and authentication timers that have expired by `now`."""
        now = self._tick(now)
        if self._terminated:
            return
        self._lcp.handle_timer(now)
        for ncp in self._ncps:
            ncp.handle_timer(now)
        for process in self._auth:
            process.handle_timer(now)
        self._run_auth(now)
        self._settle(now)

    # -- octets in and out ---------------------------------------------------------------
    def receive_data(self, data: bytes, now: float | None = None) -> None:
        """Feed octets read from the line (any chunking); `now` defaults to the last time seen."""
        now = self._tick(now)
        frames = self._decoder.receive_data(data)
        result = self._watcher.receive_data(data) if self._watcher is not None else None
        if self._terminated:
            return
        if frames:
            self._receive_frames(frames, now)
        if result is not None and not self._terminated:
            self._events.append(ModemLeftDataMode(result))
            reason = f"the module left data mode: it sent {result} between the PPP frames"
            self.lower_layer_lost(now, reason, "left-data-mode")

    def _receive_frames(self, frames: list[bytes], now: float) -> None:
        events = self._events
        for received in frames:
            # the data path first: address/control (or not), then a one- or two-octet protocol
            start = 2 if received.startswith(b"\xff\x03") else 0
            low = received[start : start + 1]
            offset = start + 1
            if low == b"\x00":
                low = received[offset : offset + 1]
                offset += 1
            if low == b"\x21" and self._ipv4_open:
                events.append(PacketReceived(4, received[offset:]))
                self.stats.packets_received += 1
                continue
            if low == b"\x57" and self._ipv6_open:
                events.append(PacketReceived(6, received[offset:]))
                self.stats.packets_received += 1
                continue
            try:
                protocol, info = frame.split_protocol(received)
            except ValueError:
                self.stats.bad_frames += 1
                continue
            self._dispatch(protocol, info, now)
            # before the next frame: it may need what this one set up (auth after LCP)
            self._settle(now)
            if self._terminated:
                return

    @property
    def has_data_to_send(self) -> bool:
        """Whether `data_to_send()` has octets for the line (no need to wake a writer otherwise)."""
        return bool(self._control_out or self._data_out)

    @property
    def has_control_to_send(self) -> bool:
        """Whether control frames (LCP, authentication, NCP) wait to be sent: only these
        start or move a timer."""
        return bool(self._control_out)

    def data_to_send(self, data_budget: int | None = None) -> bytes:
        """Octets to write to the line (frames back to back, sharing flags): every queued
        control frame first, so LCP, authentication and NCP never wait behind IP packets,
        then the IP frames; with `data_budget`, only as many IP frames as fit in that many
        octets (at least one), the rest staying queued for the next call."""
        frames = self._control_out
        self._control_out = []
        data_out = self._data_out
        if data_budget is None:
            frames.extend(data_out)
            data_out.clear()
            self._data_queued = 0
        else:
            taken = 0
            while data_out and (not taken or taken + len(data_out[0]) <= data_budget):
                stuffed = data_out.popleft()
                taken += len(stuffed)
                frames.append(stuffed)
            self._data_queued -= taken
        if not frames:
            return b""
        return b"".join((b"\x7e", b"\x7e".join(frames), b"\x7e"))

    @property
    def queued_data_octets(self) -> int:
        """Octets of IP frames queued and not yet taken by `data_to_send`."""
        return self._data_queued

    def drop_queued_data(self) -> int:
        """Drop every IP frame still queued (control frames stay); how many were dropped."""
        dropped = len(self._data_out)
        self._data_out.clear()
        self._data_queued = 0
        self.stats.queue_dropped += dropped
        return dropped

    def send_packet(self, family: int, packet: bytes) -> bool:
        """Queue an IP packet (`family` 4 or 6); False (dropped) when that NCP is not open."""
        if family == 4 and self._ipv4_open:
            header = self._ipv4_header
        elif family == 6 and self._ipv6_open:
            header = self._ipv6_header
        else:
            self.stats.packets_dropped += 1
            return False
        stuffed = self._encoder.stuff(header + packet)
        self._data_out.append(stuffed)
        self._data_queued += len(stuffed)
        self.stats.packets_sent += 1
        return True

    def next_event(self) -> LinkEvent | None:
        """The oldest event not yet taken, or None."""
        return self._events.popleft() if self._events else None

    # -- dispatch of received frames --------------------------------------------------
    def _dispatch(self, protocol: int, info: bytes, now: float) -> None:
        if protocol == frame.LCP:
            self._lcp.receive_packet(info, now)
            return
        if protocol in (frame.IPV4, frame.IPV6):
            owner: ControlProtocol[Any] | None = (
                self._ipcp if protocol == frame.IPV4 else self._ipv6cp
            )
            if owner is None or id(owner) in self._rejected_ncps:
                self._protocol_reject(protocol, info)
            else:
                self.stats.packets_dropped += 1  # RFC 1661 §3.4: NCP not opened yet
            return
        if self._phase in (Phase.DEAD, Phase.ESTABLISH, Phase.TERMINATE):
            return  # RFC 1661 §3.3: only LCP until it is opened
        if protocol in (frame.PAP, frame.CHAP):
            for process in self._auth:
                if process.protocol == protocol:
                    process.receive_packet(info, now)
            self._run_auth(now)
            return
        if self._phase is not Phase.NETWORK:
            return  # RFC 1661 §3.5: no network protocols before authentication succeeded
        for control in self._ncps:
            if control.protocol == protocol and id(control) not in self._rejected_ncps:
                control.receive_packet(info, now)
                return
        self._protocol_reject(protocol, info)

    def _protocol_reject(self, protocol: int, info: bytes) -> None:
        if self._lcp.send_protocol_reject(protocol, info):
            self.stats.protocol_rejects_sent += 1

    # -- what the control protocols call back ---------------------------------------------
    def send_control(self, protocol: int, packet: bytes) -> None:
        """Frame and queue a control packet (LCP with the default ACCM and full header)."""
        if protocol == frame.LCP:
            self._control_out.append(self._lcp_encoder.stuff(_LCP_HEADER + packet))
        else:
            header = self._control_header_prefix + protocol.to_bytes(2, "big")
            self._control_out.append(self._encoder.stuff(header + packet))

    def layer_signal(self, source: Any, signal: LayerSignal, now: float) -> None:
        """A control protocol ran tlu, tld, tls or tlf."""
        if source is self._lcp:
            self._lcp_signal(signal, now)
        else:
            self._ncp_signal(source, signal, now)

    def protocol_rejected(self, protocol: int, now: float) -> None:
        """The peer Protocol-Rejected `protocol`: stop the NCP behind it, keep the link."""
        if protocol in (frame.IPCP, frame.IPV4):
            ncp: ControlProtocol[Any] | None = self._ipcp
        elif protocol in (frame.IPV6CP, frame.IPV6):
            ncp = self._ipv6cp
        else:
            return
        if ncp is None or id(ncp) in self._rejected_ncps:
            return
        self._rejected_ncps.add(id(ncp))
        self._events.append(ProtocolRejected(protocol, frame.protocol_name(protocol)))
        reason = f"{ncp.name}: the peer Protocol-Rejected {frame.protocol_name(protocol)}"
        self._deferred.append(lambda when: self._stop_ncp(ncp, when, reason))

    def echo_timed_out(self, unanswered: int, now: float) -> None:
        """LCP gave up on the peer's echoes: the link is lost."""
        self._events.append(EchoTimedOut(unanswered))
        interval = self.config.echo_interval or 0.0
        reason = (
            f"LCP: the peer answered none of {unanswered} Echo-Requests in "
            f"{unanswered * interval:g} s; the line or the module is gone"
        )
        self._deferred.append(lambda when: self.lower_layer_lost(when, reason, "echo-timeout"))

    def link_looped(self, evidence: str, now: float) -> None:
        """LCP saw its own packet come back: the link is lost."""
        self._events.append(LinkLooped(evidence))
        reason = (
            f"LCP: the line is looped back ({evidence}); the module is not in data mode "
            "or echoes what it receives"
        )
        self._deferred.append(lambda when: self.lower_layer_lost(when, reason, "looped-back"))

    # -- LCP and NCP layer events ------------------------------------------------------
    def _lcp_signal(self, signal: LayerSignal, now: float) -> None:
        lcp = self._lcp
        if signal is LayerSignal.UP:
            self._encoder.accm = lcp.transmit_accm
            self._decoder.accm = lcp.receive_accm
            acfc, pfc = lcp.transmit_acfc, lcp.transmit_pfc
            self._control_header_prefix = b"" if acfc else frame.ADDRESS_CONTROL
            self._ipv4_header = frame.frame_header(frame.IPV4, acfc, pfc)
            self._ipv6_header = frame.frame_header(frame.IPV6, acfc, pfc)
            for ncp in self._ncps:
                ncp.peer_mru = lcp.remote_mru
            self._events.append(
                LinkOpened(
                    local_mru=lcp.local_mru,
                    remote_mru=lcp.remote_mru,
                    magic=lcp.magic,
                    pfc=pfc,
                    acfc=acfc,
                    auth_by_us=lcp.auth_by_us,
                    auth_by_peer=lcp.auth_by_peer,
                )
            )
            self._deferred.append(self._start_authentication)
        elif signal is LayerSignal.DOWN:
            self._reset_framing()
            self._auth = []
            self._auth_reported = set()
            if lcp.state in (State.CLOSING, State.STOPPING) or self._lost is not None:
                self._phase = Phase.TERMINATE
            else:
                self._phase = Phase.ESTABLISH
                self._events.append(LinkWentDown("LCP: the peer renegotiated the link"))
            why = self._lost[0] if self._lost is not None else "LCP went down"
            for ncp in self._ncps:
                if ncp.state not in (State.INITIAL, State.STARTING):
                    ncp.down(now, why)
        elif signal is LayerSignal.FINISHED:
            self._finish(lcp.reason or "LCP finished")

    def _finish(self, reason: str) -> None:
        self._phase = Phase.DEAD
        self._ipv4_open = self._ipv6_open = False
        self._auth = []
        self._terminated = True
        self._events.append(LinkTerminated(reason, self._lost[1] if self._lost else None))

    def _reset_framing(self) -> None:
        self._encoder.accm = DEFAULT_ACCM
        self._decoder.accm = DEFAULT_ACCM
        self._control_header_prefix = frame.ADDRESS_CONTROL
        self._ipv4_header = frame.frame_header(frame.IPV4)
        self._ipv6_header = frame.frame_header(frame.IPV6)

    def _ncp_signal(self, ncp: ControlProtocol[Any], signal: LayerSignal, now: float) -> None:
        key = id(ncp)
        if signal is LayerSignal.UP:
            self._ncp_reported[key] = False
            ncp.reason = ""  # why it went down last time no longer applies
            if ncp is self._ipcp:
                assert self._ipcp is not None
                if self.role == "host" and self._ipcp.local_address == UNSPECIFIED:
                    reason = "IPCP: the peer did not give us an IPv4 address"
                    self._deferred.append(lambda when: self._ipcp_close(when, reason))
                    return
                self._ipv4_open = True
                self._events.append(
                    IpcpOpened(
                        self._ipcp.local_address,
                        self._ipcp.peer_address,
                        self._ipcp.dns_servers,
                    )
                )
            elif ncp is self._ipv6cp:
                assert self._ipv6cp is not None
                self._ipv6_open = True
                self._events.append(Ipv6cpOpened(self._ipv6cp.local_iid, self._ipv6cp.peer_iid))
        elif signal is LayerSignal.DOWN or signal is LayerSignal.FINISHED:
            if ncp is self._ipcp:
                self._ipv4_open = False
            elif ncp is self._ipv6cp:
                self._ipv6_open = False
            if not self._ncp_reported.get(key, False):
                self._ncp_reported[key] = True
                if signal is LayerSignal.DOWN and ncp.state in _NEGOTIATING_STATES:
                    # tld on the way back to negotiating: a Configure packet while Opened
                    reason = ncp.reason or f"{ncp.name}: renegotiated by the peer"
                else:
                    reason = ncp.reason or f"{ncp.name}: closed"
                self._events.append(NetworkProtocolClosed(ncp.name, reason))

    def _ipcp_close(self, now: float, reason: str) -> None:
        if self._ipcp is not None and self._ipcp.state is State.OPENED:
            self._ipcp.close(now, reason)

    def _stop_ncp(self, ncp: ControlProtocol[Any], now: float, reason: str) -> None:
        if ncp.state not in (State.INITIAL, State.STARTING):
            ncp.down(now, reason)
        ncp.close(now, reason)

    # -- authentication --------------------------------------------------------------
    def _start_authentication(self, now: float) -> None:
        lcp, config = self._lcp, self.config
        if lcp.state is not State.OPENED:
            return
        processes: list[AuthProcess] = []
        timers: dict[str, Any] = {
            "restart_interval": config.restart_interval,
            "max_transmits": config.max_configure,
        }
        if config.authenticate_peer:
            method = lcp.auth_by_us
            secret_for = config.secret_for
            assert secret_for is not None
            if method == "chap":
                processes.append(
                    ChapAuthenticator(config.auth_name, secret_for, self._rng, **timers)
                )
            elif method == "pap":
                processes.append(PapAuthenticator(secret_for, **timers))
            else:
                wanted = " or ".join(name.upper() for name in config.authenticate_peer)
                self.close(now, f"LCP: the peer refused to authenticate with {wanted}")
                return
        method = lcp.auth_by_peer
        if method == "chap":
            processes.append(ChapPeer(config.username, config.password, **timers))
        elif method == "pap":
            processes.append(PapPeer(config.username, config.password, **timers))
        self._auth = processes
        self._auth_reported = set()
        if not processes:
            self._enter_network(now)
            return
        self._phase = Phase.AUTHENTICATE
        for process in processes:
            process.start(now)
        self._run_auth(now)

    def _run_auth(self, now: float) -> None:
        for process in self._auth:
            for packet in process.packets_to_send():
                self.send_control(process.protocol, packet)
        failed = None
        for process in self._auth:
            result = process.result
            if result is None or id(process) in self._auth_reported:
                continue
            self._auth_reported.add(id(process))
            if result.succeeded:
                self._events.append(
                    AuthSucceeded(result.method, result.username, result.as_authenticator)
                )
            else:
                self._events.append(
                    AuthFailed(
                        result.method, result.username, result.as_authenticator, result.message
                    )
                )
                failed = result
        if failed is not None:
            side = "the peer" if failed.as_authenticator else "we"
            reason = f"{failed.method.upper()} authentication failed ({side}): {failed.message}"
            self._deferred.append(lambda when: self.close(when, reason))
            return
        if (
            self._phase is Phase.AUTHENTICATE
            and self._auth
            and all(p.result is not None and p.result.succeeded for p in self._auth)
        ):
            self._enter_network(now)

    def _enter_network(self, now: float) -> None:
        self._phase = Phase.NETWORK
        for ncp in self._ncps:
            if id(ncp) not in self._rejected_ncps and ncp.state in (State.INITIAL, State.STARTING):
                ncp.up(now)

    # -- after every input ----------------------------------------------------------------
    def _settle(self, now: float) -> None:
        """Run what the automata asked for while they were busy, then check the NCPs."""
        while self._deferred:
            self._deferred.pop(0)(now)
        if self._terminated or self._phase is not Phase.NETWORK:
            return
        if self._lcp.state is not State.OPENED:
            return
        if all(ncp.state in _IDLE_STATES for ncp in self._ncps):
            reasons = "; ".join(ncp.reason for ncp in self._ncps if ncp.reason)
            self.close(
                now, "no network protocol is left running" + (f" ({reasons})" if reasons else "")
            )
