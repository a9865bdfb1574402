"""Back to back: a host-role PppLink against a module-role PppLink over a fake wire and clock.

Like h11's ConnectionPair: both sans-IO cores are driven by hand, octets are carried
between them whole or one by one, frames can be dropped, and time only moves when a
timer is due. Every scenario runs both ways of feeding the octets.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address, IPv6Network

import pytest

from larappp.proto.hdlc import HdlcDecoder, HdlcEncoder
from larappp.proto.ppp import frame
from larappp.proto.ppp.config import LinkConfig
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
    ModemLeftDataMode,
    NetworkProtocolClosed,
    PacketReceived,
    ProtocolRejected,
)
from larappp.proto.ppp.fsm import State, control_packet, parse_control_packet
from larappp.proto.ppp.link import Phase, PppLink

SECRETS = {"alice": "s3cret-pw", "bob": "hunter2"}
HOST = LinkConfig(username="alice", password="s3cret-pw")
MODULE = LinkConfig(
    authenticate_peer=("pap",),
    secret_for=SECRETS.get,
    ipv4_address=IPv4Address("10.64.64.1"),
    ipv4_peer_address=IPv4Address("10.64.64.2"),
    dns_servers=(IPv4Address("10.64.0.53"), IPv4Address("10.64.0.54")),
)

FrameFilter = Callable[[bytes], bool]


def protocol_of(stuffed: bytes) -> tuple[int, int]:
    """(protocol, code) of one stuffed frame as it is on the wire (without flags)."""
    (decoded,) = HdlcDecoder(0).receive_data(b"\x7e" + stuffed + b"\x7e")
    protocol, info = frame.split_protocol(decoded)
    return protocol, info[0] if info else -1


def drop_first(count: int, protocol: int, code: int | None = None) -> FrameFilter:
    """A filter dropping the first `count` frames of `protocol` (and `code`)."""
    remaining = [count]

    def keep(stuffed: bytes) -> bool:
        got_protocol, got_code = protocol_of(stuffed)
        if remaining[0] > 0 and got_protocol == protocol and code in (None, got_code):
            remaining[0] -= 1
            return False
        return True

    return keep


class LinkPair:
    """Two PppLinks on a fake serial line with a fake clock."""

    def __init__(
        self,
        byte_by_byte: bool,
        host_config: LinkConfig = HOST,
        module_config: LinkConfig = MODULE,
        seed: int = 1,
    ) -> None:
        self.byte_by_byte = byte_by_byte
        self.now = 0.0
        self.host = PppLink("host", host_config, 0.0, random.Random(seed))
        self.module = PppLink("module", module_config, 0.0, random.Random(seed + 1000))
        self.events: dict[str, list[LinkEvent]] = {"host": [], "module": []}
        self.to_module: list[FrameFilter] = []
        self.to_host: list[FrameFilter] = []

    def open(self) -> None:
        self.host.open(self.now)
        self.module.open(self.now)
        self.pump()

    def deliver(self, data: bytes, target: PppLink, filters: list[FrameFilter]) -> None:
        if filters:
            pieces = [p for p in data.split(b"\x7e") if p and all(f(p) for f in filters)]
            data = b"".join(b"\x7e" + p + b"\x7e" for p in pieces)
        if self.byte_by_byte:
            for index in range(len(data)):
                target.receive_data(data[index : index + 1], self.now)
        elif data:
            target.receive_data(data, self.now)

    def collect(self) -> None:
        for name, link in (("host", self.host), ("module", self.module)):
            while (event := link.next_event()) is not None:
                self.events[name].append(event)

    def pump(self) -> None:
        for _ in range(10_000):
            to_module, to_host = self.host.data_to_send(), self.module.data_to_send()
            if not to_module and not to_host:
                self.collect()
                return
            self.deliver(to_module, self.module, self.to_module)
            self.deliver(to_host, self.host, self.to_host)
        raise AssertionError("the two links never went quiet")

    def run(self, until: float) -> None:
        """Move the clock to `until`, firing every timer due on the way."""
        self.pump()
        while True:
            deadlines = [t for t in (self.host.get_timer(), self.module.get_timer()) if t]
            if not deadlines or min(deadlines) > until:
                break
            self.now = max(self.now, min(deadlines))
            self.host.handle_timer(self.now)
            self.module.handle_timer(self.now)
            self.pump()
        self.now = max(self.now, until)

    def first(self, side: str, kind: type[LinkEvent]) -> LinkEvent:
        for event in self.events[side]:
            if isinstance(event, kind):
                return event
        raise AssertionError(f"no {kind.__name__} on the {side} side: {self.events[side]}")

    def kinds(self, side: str) -> list[str]:
        return [type(event).__name__ for event in self.events[side]]


@pytest.fixture(params=[False, True], ids=["whole", "bytewise"])
def byte_by_byte(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def assert_fully_open(pair: LinkPair) -> None:
    assert pair.host.phase is Phase.NETWORK and pair.module.phase is Phase.NETWORK
    assert pair.host.is_open(4) and pair.module.is_open(4)


# -- opening ------------------------------------------------------------------------------


def test_lcp_pap_ipcp_ipv6cp_open(byte_by_byte: bool) -> None:
    pair = LinkPair(byte_by_byte)
    pair.open()
    assert pair.now == 0.0  # no timer was needed
    assert_fully_open(pair)
    kinds = pair.kinds("host")
    assert kinds[:2] == ["LinkOpened", "AuthSucceeded"]
    assert sorted(kinds[2:]) == ["IpcpOpened", "Ipv6cpOpened"]
    opened = pair.first("host", LinkOpened)
    assert isinstance(opened, LinkOpened)
    assert opened.auth_by_peer == "pap" and opened.auth_by_us is None
    assert opened.pfc and opened.acfc and opened.remote_mru == 1500
    ipcp = pair.first("host", IpcpOpened)
    assert ipcp == IpcpOpened(
        IPv4Address("10.64.64.2"),
        IPv4Address("10.64.64.1"),
        (IPv4Address("10.64.0.53"), IPv4Address("10.64.0.54")),
    )
    module_ipcp = pair.first("module", IpcpOpened)
    assert module_ipcp == IpcpOpened(IPv4Address("10.64.64.1"), IPv4Address("10.64.64.2"), ())
    host_v6, module_v6 = pair.first("host", Ipv6cpOpened), pair.first("module", Ipv6cpOpened)
    assert isinstance(host_v6, Ipv6cpOpened) and isinstance(module_v6, Ipv6cpOpened)
    assert host_v6.local_iid == module_v6.peer_iid and host_v6.peer_iid == module_v6.local_iid
    assert host_v6.local_iid != host_v6.peer_iid
    assert host_v6.local_link_local in IPv6Network("fe80::/64")
    assert host_v6.peer_link_local == module_v6.local_link_local
    auth = pair.first("module", AuthSucceeded)
    assert auth == AuthSucceeded("pap", "alice", as_authenticator=True)
    # ACCM 0 both ways once LCP is open
    assert pair.host.lcp.transmit_accm == 0 and pair.host.decoder.accm == 0
    assert pair.host.decoder.bad_fcs == pair.module.decoder.bad_fcs == 0


def test_chap_md5(byte_by_byte: bool) -> None:
    module = replace(MODULE, authenticate_peer=("chap",))
    pair = LinkPair(byte_by_byte, module_config=module)
    pair.open()
    assert_fully_open(pair)
    host_opened = pair.first("host", LinkOpened)
    assert isinstance(host_opened, LinkOpened) and host_opened.auth_by_peer == "chap"
    assert pair.first("host", AuthSucceeded) == AuthSucceeded("chap", "alice", False)
    assert pair.first("module", AuthSucceeded) == AuthSucceeded("chap", "alice", True)


def test_chap_refused_by_host_falls_back_to_pap(byte_by_byte: bool) -> None:
    module = replace(MODULE, authenticate_peer=("chap", "pap"))
    host = replace(HOST, answer_auth=("pap",))
    pair = LinkPair(byte_by_byte, host, module)
    pair.open()
    assert_fully_open(pair)
    assert pair.first("module", AuthSucceeded) == AuthSucceeded("pap", "alice", True)


@pytest.mark.parametrize("method", ["pap", "chap"])
def test_wrong_password_fails_and_terminates(byte_by_byte: bool, method: str) -> None:
    module = replace(MODULE, authenticate_peer=(method,))
    host = replace(HOST, password="wrong")
    pair = LinkPair(byte_by_byte, host, module)
    pair.open()
    pair.run(until=10)
    failed = pair.first("host", AuthFailed)
    assert isinstance(failed, AuthFailed) and failed.method == method
    module_failed = pair.first("module", AuthFailed)
    assert isinstance(module_failed, AuthFailed) and module_failed.username == "alice"
    for side in ("host", "module"):
        terminated = pair.first(side, LinkTerminated)
        assert isinstance(terminated, LinkTerminated)
        assert "authentication failed" in terminated.reason
    assert not pair.host.is_open(4)
    assert "wrong" not in repr(pair.events)


def test_host_refusing_to_authenticate_terminates(byte_by_byte: bool) -> None:
    pair = LinkPair(byte_by_byte, replace(HOST, answer_auth=()))
    pair.open()
    pair.run(until=10)
    terminated = pair.first("module", LinkTerminated)
    assert isinstance(terminated, LinkTerminated)
    assert "refused to authenticate with PAP" in terminated.reason
    assert isinstance(pair.first("host", LinkTerminated), LinkTerminated)


def test_without_authentication_and_with_a_smaller_mru(byte_by_byte: bool) -> None:
    module = replace(MODULE, authenticate_peer=())
    host = replace(HOST, mru=1400)
    pair = LinkPair(byte_by_byte, host, module)
    pair.open()
    assert_fully_open(pair)
    assert "AuthSucceeded" not in pair.kinds("host")
    module_opened = pair.first("module", LinkOpened)
    assert isinstance(module_opened, LinkOpened) and module_opened.remote_mru == 1400
    host_opened = pair.first("host", LinkOpened)
    assert isinstance(host_opened, LinkOpened) and host_opened.local_mru == 1400


def test_module_assigns_the_host_interface_identifier(byte_by_byte: bool) -> None:
    assigned = bytes.fromhex("90a15cfc3cc97301")  # app note §4.1.2's example host IID
    module = replace(MODULE, ipv6_peer_interface_id=assigned)
    host = replace(HOST, ipv6_interface_id=bytes(8))  # ask for one
    pair = LinkPair(byte_by_byte, host, module)
    pair.open()
    host_v6 = pair.first("host", Ipv6cpOpened)
    assert isinstance(host_v6, Ipv6cpOpened) and host_v6.local_iid == assigned
    assert host_v6.local_link_local == IPv6Address("fe80::90a1:5cfc:3cc9:7301")


def test_colliding_interface_identifiers_are_resolved(byte_by_byte: bool) -> None:
    same = bytes.fromhex("0200000000000001")
    pair = LinkPair(
        byte_by_byte,
        replace(HOST, ipv6_interface_id=same),
        replace(MODULE, ipv6_interface_id=same),
    )
    pair.open()
    host_v6 = pair.first("host", Ipv6cpOpened)
    module_v6 = pair.first("module", Ipv6cpOpened)
    assert isinstance(host_v6, Ipv6cpOpened) and isinstance(module_v6, Ipv6cpOpened)
    assert host_v6.local_iid != host_v6.peer_iid
    assert host_v6.local_iid == module_v6.peer_iid and module_v6.local_iid == host_v6.peer_iid


# -- data -----------------------------------------------------------------------------


def test_packets_both_ways(byte_by_byte: bool) -> None:
    pair = LinkPair(byte_by_byte)
    pair.open()
    rng = random.Random(5)
    sent: dict[str, list[tuple[int, bytes]]] = {"host": [], "module": []}
    for size in (20, 21, 40, 576, 1280, 1500):
        for family in (4, 6):
            for side, link in (("host", pair.host), ("module", pair.module)):
                packet = bytes((0x45 if family == 4 else 0x60,)) + rng.randbytes(size - 1)
                packet += b"\x7e\x7d\x11\x13"[: max(0, 1500 - len(packet))]
                assert link.send_packet(family, packet)
                sent[side].append((family, packet))
    pair.events = {"host": [], "module": []}
    pair.pump()
    got_by_module = [
        (e.family, e.packet) for e in pair.events["module"] if isinstance(e, PacketReceived)
    ]
    got_by_host = [
        (e.family, e.packet) for e in pair.events["host"] if isinstance(e, PacketReceived)
    ]
    assert got_by_module == sent["host"]
    assert got_by_host == sent["module"]
    assert pair.host.stats.packets_sent == pair.module.stats.packets_received == len(sent["host"])


def test_ip_frames_use_the_compressed_header(byte_by_byte: bool) -> None:
    pair = LinkPair(byte_by_byte)
    pair.open()
    pair.host.send_packet(4, b"\x45" + bytes(19))
    wire = pair.host.data_to_send()
    (decoded,) = HdlcDecoder(0).receive_data(wire)
    assert decoded == b"\x21\x45" + bytes(19)  # ACFC and PFC: one header octet


def test_packets_before_the_ncp_opens_are_refused() -> None:
    pair = LinkPair(False)
    assert not pair.host.send_packet(4, b"\x45" + bytes(19))
    assert pair.host.stats.packets_dropped == 1
    assert not pair.host.send_packet(5, b"x")


# -- keepalive --------------------------------------------------------------------------


def test_echo_keeps_a_healthy_link_up(byte_by_byte: bool) -> None:
    pair = LinkPair(byte_by_byte)
    pair.open()
    pair.run(until=300)
    assert "LinkTerminated" not in pair.kinds("host") + pair.kinds("module")
    assert pair.host.lcp.echo_replies >= 9 and pair.module.lcp.echo_replies >= 9
    assert_fully_open(pair)


def test_echo_timeout_when_the_peer_goes_silent(byte_by_byte: bool) -> None:
    pair = LinkPair(byte_by_byte)
    pair.open()
    # echoes go out every 5 s from the link's start; the one at 45 s is answered
    pair.run(until=45)
    pair.to_host.append(lambda stuffed: False)  # the module's side of the line goes dead
    # the echoes of 50, 55 and 60 s go unanswered: 3 x 5 s after the first of them, it is over
    pair.run(until=64.9)
    assert not pair.host.terminated and pair.host.is_open(4)
    pair.run(until=65.0)
    timed_out = pair.first("host", EchoTimedOut)
    assert timed_out == EchoTimedOut(3)
    terminated = pair.first("host", LinkTerminated)
    assert isinstance(terminated, LinkTerminated) and "Echo-Requests in 15 s" in terminated.reason
    assert terminated.lost == "echo-timeout"
    assert pair.host.terminated and pair.host.phase is Phase.DEAD
    assert pair.host.get_timer() is None
    # the families went down with it, and no Terminate-Request went to a peer that is gone
    closed = [e for e in pair.events["host"] if isinstance(e, NetworkProtocolClosed)]
    assert sorted(e.family for e in closed) == [4, 6]
    # the module heard nothing either (no Terminate-Request): its own echoes timed out
    module_end = pair.first("module", LinkTerminated)
    assert isinstance(module_end, LinkTerminated) and module_end.lost == "echo-timeout"


# -- termination --------------------------------------------------------------------------


@pytest.mark.parametrize("closer", ["host", "module"])
def test_terminate_from_either_side(byte_by_byte: bool, closer: str) -> None:
    pair = LinkPair(byte_by_byte)
    pair.open()
    pair.run(until=5)
    closing = pair.host if closer == "host" else pair.module
    other = "module" if closer == "host" else "host"
    closing.close(pair.now, "user hang-up")
    pair.run(until=20)
    mine = pair.first(closer, LinkTerminated)
    theirs = pair.first(other, LinkTerminated)
    assert mine == LinkTerminated("user hang-up")
    assert isinstance(theirs, LinkTerminated)
    assert theirs.reason == "LCP: the peer sent Terminate-Request (user hang-up)"
    closed = [e for e in pair.events[other] if isinstance(e, NetworkProtocolClosed)]
    assert {e.protocol for e in closed} == {"IPCP", "IPV6CP"}
    for link in (pair.host, pair.module):
        assert link.terminated and link.phase is Phase.DEAD
        assert link.get_timer() is None
    # a terminated link takes no more input and reports nothing new
    pair.host.receive_data(b"\x7e\xff\x03\xc0\x21\x01\x01\x00\x04\x7e")
    assert pair.host.next_event() is None


def test_close_before_lcp_opened() -> None:
    link = PppLink("host", HOST, 0.0, random.Random(3))
    link.close(0.0, "changed my mind")
    assert link.next_event() == LinkTerminated("changed my mind")
    link2 = PppLink("host", HOST, 0.0, random.Random(3))
    link2.open(0.0)
    link2.close(1.0, "no answer wanted")
    link2.handle_timer(4.0)
    link2.handle_timer(7.0)
    assert link2.next_event() == LinkTerminated("no answer wanted")


# -- loss, silence, storms ------------------------------------------------------------


def test_lost_frames_are_recovered_by_the_restart_timer(byte_by_byte: bool) -> None:
    pair = LinkPair(byte_by_byte)
    pair.to_module.append(drop_first(2, frame.LCP, 1))  # our first two Configure-Requests
    pair.to_host.append(drop_first(1, frame.IPCP))
    pair.to_module.append(drop_first(1, frame.PAP))
    pair.to_module.append(drop_first(1, frame.IPV6CP))
    pair.open()
    assert not pair.host.is_open(4)
    pair.run(until=30)
    assert_fully_open(pair)
    assert pair.host.is_open(6)
    assert "LinkTerminated" not in pair.kinds("host")


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_random_loss_still_converges(byte_by_byte: bool, seed: int) -> None:
    pair = LinkPair(byte_by_byte, seed=seed)
    loss = random.Random(seed)
    pair.to_module.append(lambda stuffed: loss.random() > 0.25)
    pair.to_host.append(lambda stuffed: loss.random() > 0.25)
    pair.open()
    for _ in range(60):
        if pair.host.is_open(4) and pair.module.is_open(4):
            break
        pair.run(until=pair.now + 3)
    assert_fully_open(pair)


def test_silent_peer_gives_max_configure_then_terminated(byte_by_byte: bool) -> None:
    pair = LinkPair(byte_by_byte)
    pair.to_module.append(lambda stuffed: False)
    pair.to_host.append(lambda stuffed: False)
    pair.host.open(0.0)
    pair.run(until=100)
    terminated = pair.first("host", LinkTerminated)
    assert isinstance(terminated, LinkTerminated)
    assert terminated.reason == (
        "LCP: the peer did not agree to any of 10 Configure-Requests "
        "(it was silent or kept refusing)"
    )
    assert pair.now == 100 and pair.host.terminated


class RawPeer:
    """A scripted peer speaking raw PPP frames, to misbehave on purpose."""

    def __init__(self) -> None:
        self.decoder = HdlcDecoder(0)
        self.encoder = HdlcEncoder()

    def frames(self, data: bytes, byte_by_byte: bool) -> list[tuple[int, bytes]]:
        chunks = [data[i : i + 1] for i in range(len(data))] if byte_by_byte else [data]
        out = []
        for chunk in chunks:
            for decoded in self.decoder.receive_data(chunk):
                out.append(frame.split_protocol(decoded))
        return out

    def lcp(self, code: int, identifier: int, data: bytes) -> bytes:
        return self.encoder.encode(
            frame.build_frame(frame.LCP, control_packet(code, identifier, data))
        )


def feed(link: PppLink, data: bytes, byte_by_byte: bool, now: float) -> None:
    if byte_by_byte:
        for index in range(len(data)):
            link.receive_data(data[index : index + 1], now)
    else:
        link.receive_data(data, now)


def test_peer_that_keeps_nakking_ends_in_max_configure(byte_by_byte: bool) -> None:
    link = PppLink("host", HOST, 0.0, random.Random(9))
    peer = RawPeer()
    link.open(0.0)
    now = 0.0
    suggestions = iter(range(600, 1500))
    for _ in range(200):
        for protocol, info in peer.frames(link.data_to_send(), byte_by_byte):
            parsed = parse_control_packet(info)
            if protocol == frame.LCP and parsed and parsed[0] == 1:
                # Nak every request, each time asking for yet another MRU
                mru = next(suggestions)
                feed(
                    link,
                    peer.lcp(3, parsed[1], b"\x01\x04" + mru.to_bytes(2, "big")),
                    byte_by_byte,
                    now,
                )
        if link.terminated:
            break
        deadline = link.get_timer()
        assert deadline is not None
        now = deadline
        link.handle_timer(now)
    events = []
    while (event := link.next_event()) is not None:
        events.append(event)
    assert isinstance(events[-1], LinkTerminated)
    assert "10 Configure-Requests" in events[-1].reason
    assert now < 60  # Max-Failure Naks, then Max-Configure retransmissions


def odd_options(rng: random.Random, count: int) -> list[bytes]:
    options = []
    for _ in range(count):
        option_type = rng.choice([0, 4, 6, 9, 13, 17, 19, 23, 77, 128, 200, 255])
        options.append(bytes((option_type, 2 + rng.randint(0, 2))) + rng.randbytes(0)[:0])
    return [o + bytes(o[1] - 2) for o in options]


def test_option_storm_is_rejected_and_the_link_still_opens(byte_by_byte: bool) -> None:
    link = PppLink("host", replace(HOST, ipv6=False), 0.0, random.Random(11))
    peer = RawPeer()
    rng = random.Random(12)
    link.open(0.0)
    peer.frames(link.data_to_send(), byte_by_byte)  # our Configure-Request, unanswered yet
    odd = odd_options(rng, 300)
    malformed = [b"\x01\x03\x05", b"\x05\x04\x00\x00", b"\x02\x05\x00\x00\x00"]
    duplicate = [b"\x01\x04\x05\xdc", b"\x01\x04\x05\xdc"]
    storm = b"".join(odd[:150] + malformed + odd[150:] + duplicate)
    assert len(storm) > 700
    feed(link, peer.lcp(1, 77, storm), byte_by_byte, 0.1)
    ((protocol, info),) = peer.frames(link.data_to_send(), byte_by_byte)
    parsed = parse_control_packet(info)
    assert protocol == frame.LCP and parsed is not None
    code, identifier, data = parsed
    assert (code, identifier) == (4, 77)
    # everything unknown, malformed or repeated comes back, as sent and in order
    assert data == b"".join(odd[:150] + malformed + odd[150:] + duplicate[1:])
    # hundreds of random requests: every one gets exactly one answer, nothing breaks
    for identifier in range(200):
        junk = rng.randbytes(rng.randint(0, 60))
        feed(link, peer.lcp(1, identifier, junk), byte_by_byte, 0.2)
        answers = peer.frames(link.data_to_send(), byte_by_byte)
        assert len(answers) <= 1
        if answers:
            assert answers[0][0] == frame.LCP and answers[0][1][0] in (2, 3, 4)
    # then a sane peer: the link opens
    feed(link, peer.lcp(1, 250, b"\x05\x06\x11\x22\x33\x44"), byte_by_byte, 0.3)
    link.handle_timer(3.0)  # retransmits our request
    requests = [
        info for protocol, info in peer.frames(link.data_to_send(), byte_by_byte) if info[0] == 1
    ]
    parsed = parse_control_packet(requests[-1])
    assert parsed is not None
    feed(link, peer.lcp(2, parsed[1], parsed[2]), byte_by_byte, 3.1)
    assert link.lcp.state is State.OPENED


# -- the IPv4-only module, the looped-back line ------------------------------------------


def test_ipv6cp_protocol_rejected_by_an_ipv4_only_module(byte_by_byte: bool) -> None:
    pair = LinkPair(byte_by_byte, module_config=replace(MODULE, ipv6=False))
    pair.open()
    pair.run(until=60)
    assert_fully_open(pair)
    assert pair.first("host", ProtocolRejected) == ProtocolRejected(frame.IPV6CP, "IPV6CP")
    closed = pair.first("host", NetworkProtocolClosed)
    assert isinstance(closed, NetworkProtocolClosed) and closed.protocol == "IPV6CP"
    assert "Protocol-Rejected" in closed.reason
    assert "Ipv6cpOpened" not in pair.kinds("host")
    assert "LinkTerminated" not in pair.kinds("host")
    assert pair.module.stats.protocol_rejects_sent == 1
    assert not pair.host.send_packet(6, b"\x60" + bytes(39))
    assert pair.host.send_packet(4, b"\x45" + bytes(19))
    pair.pump()
    assert isinstance(pair.events["module"][-1], PacketReceived)


def test_unknown_protocols_are_protocol_rejected(byte_by_byte: bool) -> None:
    pair = LinkPair(byte_by_byte)
    pair.open()
    encoder = HdlcEncoder(0)
    for protocol in (frame.CCP, frame.VJ_COMPRESSED, 0x8207):
        info = control_packet(1, 1, b"\x12\x06\x00\x00\x00\x01")
        feed(pair.module, encoder.encode(frame.build_frame(protocol, info)), byte_by_byte, 0)
    rejects = pair.module.stats.protocol_rejects_sent
    assert rejects == 3
    pair.pump()
    assert_fully_open(pair)


def test_looped_back_line_is_detected(byte_by_byte: bool) -> None:
    link = PppLink("host", HOST, 0.0, random.Random(21))
    link.open(0.0)
    now = 0.0
    for _ in range(200):
        data = link.data_to_send()
        if data:
            feed(link, data, byte_by_byte, now)
            continue
        deadline = link.get_timer()
        if deadline is None:
            break
        now = deadline
        link.handle_timer(now)
    events = []
    while (event := link.next_event()) is not None:
        events.append(event)
    assert isinstance(events[-1], LinkTerminated)
    assert "looped back" in events[-1].reason
    assert "LinkOpened" not in [type(e).__name__ for e in events]
    assert now < 10


# -- the link lost under PPP: looped back, the module in command mode, the line gone ------


def host_echoes_to_itself(pair: LinkPair) -> None:
    """From now on the module is in command mode with echo on: it returns what it gets."""
    original = pair.deliver

    def deliver(data: bytes, target: PppLink, filters: list[FrameFilter]) -> None:
        if target is pair.module:
            target = pair.host  # the host's octets come back to it
        elif target is pair.host:
            return  # the module's PPP side is gone
        original(data, target, [])

    pair.deliver = deliver  # type: ignore[method-assign]


def test_own_echo_request_coming_back_is_a_lost_link(byte_by_byte: bool) -> None:
    pair = LinkPair(byte_by_byte)
    pair.open()
    pair.run(until=12)
    host_echoes_to_itself(pair)
    pair.run(until=14.9)
    assert not pair.host.terminated
    pair.run(until=15.0)  # the next Echo-Request comes straight back
    looped = pair.first("host", LinkLooped)
    assert isinstance(looped, LinkLooped) and "Echo-Request" in looped.evidence
    terminated = pair.first("host", LinkTerminated)
    assert isinstance(terminated, LinkTerminated) and terminated.lost == "looped-back"
    assert "looped back" in terminated.reason
    kinds = pair.kinds("host")
    assert kinds.index("LinkLooped") < kinds.index("NetworkProtocolClosed") < kinds.index(
        "LinkTerminated"
    )
    assert pair.host.lcp.echo_replies == pair.module.lcp.echo_replies  # none from itself
    assert pair.host.terminated and pair.host.data_to_send() == b""


def test_own_echo_reply_coming_back_is_a_lost_link(byte_by_byte: bool) -> None:
    pair = LinkPair(byte_by_byte)
    pair.open()
    magic = pair.host.lcp.magic.to_bytes(4, "big")
    reply = control_packet(10, 7, magic)
    pair.deliver(HdlcEncoder().encode(frame.build_frame(frame.LCP, reply)), pair.host, [])
    pair.collect()
    looped = pair.first("host", LinkLooped)
    assert isinstance(looped, LinkLooped) and "Echo-Reply" in looped.evidence
    assert pair.first("host", LinkTerminated) == LinkTerminated(
        pair.host.lcp.reason, "looped-back"
    )


def test_peer_echoes_with_its_own_magic_are_no_loop(byte_by_byte: bool) -> None:
    pair = LinkPair(byte_by_byte)
    pair.open()
    pair.run(until=60)
    assert "LinkLooped" not in pair.kinds("host") + pair.kinds("module")
    assert pair.host.lcp.echo_replies == 13  # at 0, 5, ... 60 s
    assert_fully_open(pair)


def test_without_magic_numbers_nothing_is_taken_for_a_loop(byte_by_byte: bool) -> None:
    pair = LinkPair(
        byte_by_byte,
        replace(HOST, magic_number=False),
        replace(MODULE, magic_number=False),
    )
    pair.open()
    pair.run(until=20)
    assert pair.host.lcp.magic == 0
    assert "LinkLooped" not in pair.kinds("host")
    assert_fully_open(pair)


def test_looped_back_negotiation_ends_at_once_without_terminate(byte_by_byte: bool) -> None:
    link = PppLink("host", HOST, 0.0, random.Random(21))
    link.open(0.0)
    for _ in range(100):
        data = link.data_to_send()
        if not data:
            break
        feed(link, data, byte_by_byte, 0.0)  # every octet comes straight back
    events = drain_events(link)
    assert [type(e).__name__ for e in events] == ["LinkLooped", "LinkTerminated"]
    assert events[0] == LinkLooped("10 Magic-Number Naks in a row")
    assert isinstance(events[1], LinkTerminated) and events[1].lost == "looped-back"
    assert link.data_to_send() == b""  # no Terminate-Request into the loop


def test_a_moment_of_echo_before_the_peer_starts_is_no_loop(byte_by_byte: bool) -> None:
    pair = LinkPair(byte_by_byte)
    pair.host.open(0.0)
    feed(pair.host, pair.host.data_to_send(), byte_by_byte, 0.0)  # a tty echoing, once
    pair.module.open(0.0)
    pair.run(until=10)
    assert "LinkLooped" not in pair.kinds("host")
    assert_fully_open(pair)


@pytest.mark.parametrize("result", ["NO CARRIER", "ERROR", "OK"])
def test_result_code_from_the_module_ends_the_link_at_once(
    byte_by_byte: bool, result: str
) -> None:
    pair = LinkPair(byte_by_byte)
    pair.open()
    pair.run(until=7)
    packet = bytes.fromhex("4500001c000000004001") + bytes(18)
    assert pair.module.send_packet(4, packet)
    # the module's last frame and its result code in one read, as after a network drop
    pair.deliver(pair.module.data_to_send() + f"\r\n{result}\r\n".encode(), pair.host, [])
    pair.collect()
    assert pair.first("host", PacketReceived) == PacketReceived(4, packet)
    assert pair.first("host", ModemLeftDataMode) == ModemLeftDataMode(result)
    terminated = pair.first("host", LinkTerminated)
    assert isinstance(terminated, LinkTerminated) and terminated.lost == "left-data-mode"
    assert result in terminated.reason
    closed = [e for e in pair.events["host"] if isinstance(e, NetworkProtocolClosed)]
    assert sorted(e.family for e in closed) == [4, 6]
    assert all(result in e.reason for e in closed)
    assert pair.host.data_to_send() == b""  # nothing more for the command line
    assert pair.host.get_timer() is None
    assert not pair.host.send_packet(4, packet)


def test_no_carrier_instead_of_negotiation(byte_by_byte: bool) -> None:
    link = PppLink("host", HOST, 0.0, random.Random(3))
    link.open(0.0)
    link.data_to_send()
    feed(link, b"\r\nNO CARRIER\r\n", byte_by_byte, 0.5)
    assert drain_events(link) == [
        ModemLeftDataMode("NO CARRIER"),
        LinkTerminated(
            "the module left data mode: it sent NO CARRIER between the PPP frames",
            "left-data-mode",
        ),
    ]


def test_result_codes_inside_ip_packets_are_carried(byte_by_byte: bool) -> None:
    pair = LinkPair(byte_by_byte)
    pair.open()
    packet = bytes.fromhex("4500001c000000004011") + bytes(10) + b"\r\nNO CARRIER\r\n\r\nOK\r\n"
    for _ in range(3):
        assert pair.module.send_packet(4, packet)
    pair.pump()
    assert pair.kinds("host").count("PacketReceived") == 3
    assert "ModemLeftDataMode" not in pair.kinds("host")
    assert_fully_open(pair)


def test_module_role_ignores_result_code_text(byte_by_byte: bool) -> None:
    pair = LinkPair(byte_by_byte)
    pair.open()
    pair.deliver(b"\r\nOK\r\n", pair.module, [])
    pair.collect()
    assert "ModemLeftDataMode" not in pair.kinds("module")
    assert_fully_open(pair)


@pytest.mark.parametrize("moment", [0.0, 100.0])
def test_lower_layer_lost_ends_the_link_in_any_phase(byte_by_byte: bool, moment: float) -> None:
    pair = LinkPair(byte_by_byte)
    if moment:
        pair.open()
        pair.run(until=moment)
    else:
        pair.host.open(0.0)  # still negotiating
    pair.host.lower_layer_lost(pair.now, "DCD dropped")
    pair.collect()
    assert pair.first("host", LinkTerminated) == LinkTerminated("DCD dropped", "lower-layer-down")
    assert pair.host.terminated and pair.host.data_to_send() == b""
    pair.host.lower_layer_lost(pair.now, "again")  # once is enough
    pair.host.close(pair.now, "larappp down")
    pair.collect()
    assert pair.kinds("host").count("LinkTerminated") == 1


def drain_events(link: PppLink) -> list[LinkEvent]:
    events = []
    while (event := link.next_event()) is not None:
        events.append(event)
    return events


# -- one NCP closing or renegotiating while LCP stays up ----------------------------------


def test_ipv6cp_renegotiated_by_the_module_brings_a_new_identifier(byte_by_byte: bool) -> None:
    pair = LinkPair(byte_by_byte)
    pair.open()
    before = pair.first("host", Ipv6cpOpened)
    assert isinstance(before, Ipv6cpOpened)
    pair.events["host"].clear()
    pair.module.renegotiate(6, pair.now)
    pair.pump()
    assert pair.kinds("host") == ["NetworkProtocolClosed", "Ipv6cpOpened"]
    closed, after = pair.events["host"]
    assert closed == NetworkProtocolClosed("IPV6CP", "IPV6CP: renegotiated by the peer")
    assert isinstance(closed, NetworkProtocolClosed) and closed.family == 6
    assert isinstance(after, Ipv6cpOpened)
    # the host took a fresh identifier: its old link-local (and SLAAC address) must go
    assert after.local_iid != before.local_iid
    assert after.local_link_local != before.local_link_local
    assert pair.host.is_open(4) and pair.host.is_open(6)  # IPv4 never went down
    assert pair.host.lcp.state is State.OPENED


def test_ipcp_renegotiated_by_the_host_keeps_ipv6(byte_by_byte: bool) -> None:
    pair = LinkPair(byte_by_byte)
    pair.open()
    pair.events["host"].clear()
    pair.events["module"].clear()
    pair.host.renegotiate(4, pair.now)
    assert not pair.host.is_open(4) and pair.host.is_open(6)
    pair.pump()
    assert pair.kinds("host") == ["NetworkProtocolClosed", "IpcpOpened"]
    assert pair.kinds("module") == ["NetworkProtocolClosed", "IpcpOpened"]
    reopened = pair.events["host"][1]
    assert isinstance(reopened, IpcpOpened) and reopened.local == IPv4Address("10.64.64.2")
    assert_fully_open(pair)


def test_ipcp_terminated_by_the_peer_then_reopened(byte_by_byte: bool) -> None:
    pair = LinkPair(byte_by_byte)
    pair.open()
    pair.events["host"].clear()
    ipcp = pair.module.ipcp
    assert ipcp is not None
    ipcp.close(pair.now, "IPCP: the network deactivated IPv4")  # Terminate-Request
    pair.run(until=pair.now + 10)
    closed = pair.first("host", NetworkProtocolClosed)
    assert isinstance(closed, NetworkProtocolClosed) and closed.family == 4
    assert "Terminate-Request" in closed.reason
    assert not pair.host.is_open(4) and pair.host.is_open(6)
    assert pair.host.lcp.state is State.OPENED and not pair.host.terminated
    pair.events["host"].clear()
    ipcp.open(pair.now)  # the network offers IPv4 again
    pair.pump()
    assert pair.kinds("host") == ["IpcpOpened"]
    assert_fully_open(pair)


def test_each_ncp_closing_carries_its_own_reason(byte_by_byte: bool) -> None:
    pair = LinkPair(byte_by_byte)
    pair.open()
    ipcp = pair.module.ipcp
    assert ipcp is not None
    ipcp.close(pair.now, "IPv4 deactivated")
    pair.run(until=pair.now + 10)
    ipcp.open(pair.now)
    pair.pump()
    pair.events["host"].clear()
    pair.module.renegotiate(4, pair.now)
    pair.pump()
    closed = pair.first("host", NetworkProtocolClosed)
    assert closed == NetworkProtocolClosed("IPCP", "IPCP: renegotiated by the peer")
