"""SessionPort and AddressPlan without a kernel: a fake internet, a fake clock.

What the simulated network does with each uplink packet (route, answer on the link,
drop as spoofed/malformed/local) and each downlink packet (deliver, UEMBPF filter, the
module's own address), and the RA schedule driven by hand.
"""

from __future__ import annotations

import asyncio
import struct
from ipaddress import IPv4Address, IPv6Address, IPv6Network

import pytest

from larappp.errors import ConfigError, NetworkSetupError
from larappp.proto import ip
from larappp.proto.ipv6 import ndp
from larappp.sim.addressing import DTE_IID, MODULE_IID, AddressPlan, RouterSettings
from larappp.sim.network import SimNetwork
from larappp.sim.pdn import SessionPort

PLAN = AddressPlan()
SERVER4 = "198.51.100.1"
SERVER6 = "2001:db8:ffff::1"
DTE_LL = ndp.link_local_from_iid(DTE_IID)
MODULE_LL = ndp.link_local_from_iid(MODULE_IID)


class Harness:
    """A SessionPort wired to lists instead of PPP and a TUN."""

    def __init__(self, cid: int = 1, grant: str = "IPV4V6", **kwargs: object) -> None:
        self.now = 100.0
        self.downlink: list[tuple[int, bytes]] = []
        self.internet: list[bytes] = []
        self.timer_changes = 0
        self.internet_up = True
        self.port = SessionPort(
            cid,
            grant,  # type: ignore[arg-type]
            PLAN,
            lambda family, packet: self.downlink.append((family, packet)),
            self._to_internet,
            clock=lambda: self.now,
            timer_changed=self._timer_changed,
            **kwargs,  # type: ignore[arg-type]
        )

    def _to_internet(self, packet: bytes) -> bool:
        if self.internet_up:
            self.internet.append(packet)
        return self.internet_up

    def _timer_changed(self) -> None:
        self.timer_changes += 1

    def take(self) -> list[tuple[int, bytes]]:
        packets, self.downlink = self.downlink, []
        return packets


def echo4(src: object, dst: object, payload: bytes = b"ping") -> bytes:
    return ip.build_icmpv4(src, dst, 8, 0, b"\x00\x01\x00\x01" + payload)  # type: ignore[arg-type]


def echo6(src: object, dst: object, payload: bytes = b"ping") -> bytes:
    return ip.build_icmpv6(src, dst, 128, 0, b"\x00\x01\x00\x01" + payload)  # type: ignore[arg-type]


# -- addressing ---------------------------------------------------------------------------------
def test_plan_numbers_contexts_as_the_app_note_describes() -> None:
    assert PLAN.ipv4_address(1) == IPv4Address("100.64.1.2")
    assert PLAN.ipv4_peer(3) == IPv4Address("100.64.3.1")
    assert PLAN.ipv6_prefix(2) == IPv6Network("2001:db8:0:2::/64")
    # app note §4.1.2: same prefix, different IIDs for the DTE and the module
    assert PLAN.dte_ipv6(1) == IPv6Address("2001:db8:0:1:90a1:5cfc:3cc9:7301")
    assert PLAN.module_ipv6(1) == IPv6Address("2001:db8:0:1:2a0b:ad40:1:102a")
    ctx = PLAN.context_addresses(2)
    assert (ctx.ipv4, ctx.ipv4_gateway, ctx.ipv6_prefix, ctx.ipv6) == (
        "100.64.2.2",
        "100.64.2.1",
        "2001:db8:0:2::",
        "2001:db8:0:2:2a0b:ad40:1:102a",
    )
    assert ctx.ipv4_dns == ("198.51.100.53", "198.51.100.54")
    assert ctx.ipv6_dns == ("2001:db8:ffff::53", "2001:db8:ffff::54")
    assert ctx.ipv6_gateway == str(MODULE_LL)
    assert set(PLAN.zone().records) == {"server.larappp.test", "dns.larappp.test"}


def test_plan_rejects_what_cannot_work() -> None:
    with pytest.raises(ConfigError, match="0 to 255"):
        PLAN.ipv4_address(256)
    with pytest.raises(ConfigError, match="its own interface identifier"):
        AddressPlan(dte_iid=MODULE_IID)
    with pytest.raises(ConfigError, match="8 bytes"):
        AddressPlan(module_iid=b"\x01")
    with pytest.raises(ConfigError, match="lies in a DTE address pool"):
        AddressPlan(server_v4=IPv4Address("100.64.0.9"))
    with pytest.raises(ConfigError, match="ra_mtu"):
        AddressPlan(ra_mtu=1200)
    with pytest.raises(ConfigError, match="/56 or larger"):
        AddressPlan(ipv6_pool=IPv6Network("2001:db8::/60"))
    with pytest.raises(ConfigError, match="grant 'PPP' is unknown"):
        Harness(grant="PPP")


def test_grants_decide_which_families_exist() -> None:
    v4 = Harness(grant="IP").port
    assert v4.ipv4_address == IPv4Address("100.64.1.2") and v4.ipv6_prefix is None
    assert v4.advertiser is None and v4.dns_v6 == () and v4.dte_ipv6 is None
    v6 = Harness(grant="IPV6").port
    assert v6.ipv4_address is None and v6.dns_v4 == ()
    assert v6.ipv6_prefix == IPv6Network("2001:db8:0:1::/64") and v6.dns_v6 == PLAN.dns_v6
    both = Harness().port
    assert both.mtu == 1500 and both.ra_mtu == 1430 and both.dte_iid == DTE_IID
    assert both.module_iid == MODULE_IID and both.module_link_local == MODULE_LL


# -- uplink -------------------------------------------------------------------------------------
def test_rs_to_all_routers_is_answered_with_the_prefix_mtu_and_rdnss() -> None:
    h = Harness()
    h.port.uplink(6, ndp.build_router_solicitation(DTE_IID))
    ((family, packet),) = h.take()
    assert family == 6
    ra = ndp.decode_router_advertisement(packet)
    assert ra.source == MODULE_LL and ra.destination == ndp.ALL_NODES
    assert [p.prefix for p in ra.prefixes] == [IPv6Network("2001:db8:0:1::/64")]
    assert ra.prefixes[0].autonomous and ra.prefixes[0].on_link
    assert ra.mtu == 1430 and ra.router_lifetime > 0
    assert ra.dns[0].servers == PLAN.dns_v6
    assert h.port.router_solicitations == 1 and h.port.router_advertisements == 1
    assert h.port.downlink_packets == 1 and h.port.downlink_bytes == len(packet)
    assert h.internet == [] and h.port.routed_packets == 0


def test_rs_from_unspecified_and_to_the_module_link_local_are_answered() -> None:
    h = Harness()
    h.port.uplink(6, ndp.build_router_solicitation(ndp.UNSPECIFIED))
    h.port.uplink(6, ndp.build_router_solicitation(DTE_IID, destination=MODULE_LL))
    assert len(h.take()) == 2 and h.port.router_solicitations == 2


def test_invalid_rs_is_counted_malformed_and_unanswered() -> None:
    h = Harness()
    rs = bytearray(ndp.build_router_solicitation(DTE_IID))
    rs[7] = 64  # hop limit below 255: not from the link (RFC 4861 §6.1.1)
    h.port.uplink(6, bytes(rs))
    assert h.take() == [] and h.port.dropped_malformed == 1 and h.port.router_solicitations == 0


def test_rs_on_an_ipv4_only_context_has_no_router() -> None:
    h = Harness(grant="IP")
    h.port.uplink(6, ndp.build_router_solicitation(DTE_IID))
    assert h.take() == [] and h.port.dropped_spoofed == 1


def test_the_module_answers_pings_to_its_own_addresses() -> None:
    h = Harness()
    port = h.port
    assert port.ipv4_address is not None and port.module_ipv6 is not None
    port.uplink(4, echo4(port.ipv4_address, port.ipv4_peer))
    port.uplink(6, echo6(DTE_LL, MODULE_LL))
    port.uplink(6, echo6(port.dte_ipv6, port.module_ipv6))
    replies = h.take()
    assert [f for f, _ in replies] == [4, 6, 6]
    first = ip.parse_icmpv4(replies[0][1])
    assert first is not None and first.type == 0 and first.src == port.ipv4_peer
    for (_, packet), source in zip(replies[1:], (MODULE_LL, port.module_ipv6), strict=True):
        message = ip.parse_icmpv6(packet)
        assert message is not None and message.type == 129 and message.src == source
    assert port.echo_replies == 3 and h.internet == []


def test_link_traffic_the_module_does_not_answer_is_dropped_locally() -> None:
    h = Harness()
    port = h.port
    mld = ip.build_icmpv6(DTE_LL, "ff02::16", 143, 0, bytes(4), hop_limit=1)
    port.uplink(6, mld)
    port.uplink(6, echo6(DTE_LL, "ff02::1"))  # no unicast source to answer from
    port.uplink(6, echo6(DTE_LL, "fe80::99"))  # nobody else on a PPP link
    port.uplink(6, ip.build_udp(port.dte_ipv6, port.module_ipv6, 5000, 5001, b"x"))  # type: ignore[arg-type]
    port.uplink(4, ip.build_udp(port.ipv4_address, port.ipv4_peer, 5000, 5001, b"x"))  # type: ignore[arg-type]
    port.uplink(4, ip.build_udp(port.ipv4_address, "255.255.255.255", 68, 67, b"x"))  # type: ignore[arg-type]
    port.uplink(4, ip.build_udp(port.ipv4_address, "224.0.0.251", 5353, 5353, b"x"))  # type: ignore[arg-type]
    assert h.take() == [] and h.internet == []
    assert port.dropped_local == 7 and port.uplink_packets == 7


def test_own_sources_are_routed_and_counted() -> None:
    h = Harness()
    port = h.port
    packets = [
        (4, echo4(port.ipv4_address, SERVER4)),
        (6, echo6(port.dte_ipv6, SERVER6)),
        # a privacy address in the same /64 is the DTE's too (RFC 8981)
        (6, echo6(IPv6Address("2001:db8:0:1:1234:5678:9abc:def0"), SERVER6)),
    ]
    for family, packet in packets:
        port.uplink(family, packet)
    assert h.internet == [p for _, p in packets]
    assert port.routed_packets == 3 and port.uplink_bytes == sum(len(p) for _, p in packets)
    h.internet_up = False
    port.uplink(4, echo4(port.ipv4_address, SERVER4))
    assert port.dropped_internet == 1 and port.routed_packets == 3


@pytest.mark.parametrize(
    ("family", "source"),
    [
        (4, "100.64.2.2"),  # another context's address
        (4, "198.51.100.7"),
        (6, "2001:db8:0:2:90a1:5cfc:3cc9:7301"),  # another context's prefix
        (6, "2001:db8:0:1:2a0b:ad40:1:102a"),  # the module's own address
        (6, str(DTE_LL)),  # link-local sources stay on the link
    ],
)
def test_spoofed_sources_are_dropped_and_counted(family: int, source: str) -> None:
    h = Harness()
    packet = echo4(source, SERVER4) if family == 4 else echo6(source, SERVER6)
    h.port.uplink(family, packet)
    assert h.internet == [] and h.take() == []
    assert h.port.dropped_spoofed == 1 and h.port.uplink_packets == 1


def test_ipv4_on_an_ipv6_only_context_is_spoofed() -> None:
    h = Harness(grant="IPV6")
    h.port.uplink(4, echo4("100.64.1.2", SERVER4))
    assert h.port.dropped_spoofed == 1 and h.internet == []


def test_malformed_uplink_is_counted() -> None:
    h = Harness()
    good4 = echo4("100.64.1.2", SERVER4)
    h.port.uplink(6, good4)  # family disagrees with the version nibble
    h.port.uplink(4, b"")
    h.port.uplink(4, good4[:19])
    h.port.uplink(4, b"\x44" + good4[1:])  # IHL 4
    h.port.uplink(6, echo6(h.port.dte_ipv6, SERVER6)[:39])
    h.port.uplink(5, b"\x50" + bytes(40))
    assert h.port.dropped_malformed == 6 and h.internet == [] and h.take() == []


# -- downlink -----------------------------------------------------------------------------------
def udp_to(port: SessionPort, family: int, dst_port: int) -> bytes:
    if family == 4:
        return ip.build_udp(SERVER4, port.ipv4_address, 5684, dst_port, b"data")  # type: ignore[arg-type]
    return ip.build_udp(SERVER6, port.dte_ipv6, 5684, dst_port, b"data")  # type: ignore[arg-type]


def tcp_to(destination: str, dst_port: int) -> bytes:
    segment = struct.pack("!HHIIBBHHH", 443, dst_port, 1, 0, 0x50, 0x12, 1024, 0, 0)
    return ip.build_ipv4(SERVER4, destination, ip.PROTO_TCP, segment)


def test_downlink_is_delivered_as_is() -> None:
    h = Harness()
    packets = [(4, udp_to(h.port, 4, 40000)), (6, udp_to(h.port, 6, 40000))]
    for family, packet in packets:
        h.port.deliver(family, packet)
    assert h.take() == packets
    assert h.port.downlink_packets == 2


def test_uembpf_range_keeps_ports_for_the_module_inclusive_bounds() -> None:
    # app note §4.3.1: AT+UEMBPF=1,"6000-6200"; the reply to source port 6176 stays inside
    h = Harness(embpf_range=(6000, 6200))
    port = h.port
    for family in (4, 6):
        for dst_port in (6000, 6176, 6200):
            port.deliver(family, udp_to(port, family, dst_port))
    port.deliver(4, tcp_to("100.64.1.2", 6100))
    assert h.take() == [] and port.filtered_embpf == 7
    outside = [udp_to(port, 4, 5999), udp_to(port, 6, 6201), tcp_to("100.64.1.2", 443)]
    outside.append(ip.build_icmpv4(SERVER4, "100.64.1.2", 0, 0, b"\x17\x70\x17\x70"))  # no ports
    for packet in outside:
        port.deliver(packet[0] >> 4, packet)
    assert [p for _, p in h.take()] == outside and port.filtered_embpf == 7
    port.embpf_range = None
    port.deliver(4, udp_to(port, 4, 6100))
    assert len(h.take()) == 1


def test_pings_from_the_internet_to_the_module_address_are_answered_by_the_module() -> None:
    h = Harness()
    port = h.port
    port.deliver(6, echo6(SERVER6, port.module_ipv6))
    (reply,) = h.internet
    message = ip.parse_icmpv6(reply)
    assert message is not None and message.type == 129 and message.dst == IPv6Address(SERVER6)
    port.deliver(6, ip.build_udp(SERVER6, port.module_ipv6, 1, 2, b"x"))  # type: ignore[arg-type]
    assert h.take() == [] and port.dropped_local == 1 and port.echo_replies == 1


# -- RA schedule and detach ---------------------------------------------------------------------
def test_unsolicited_ras_follow_the_fake_clock() -> None:
    h = Harness(router=RouterSettings(max_interval=30.0))
    port = h.port
    assert port.get_timer() is None
    port.start_advertising()
    assert port.get_timer() == h.now and h.timer_changes == 1
    port.handle_timer(h.now)
    assert len(h.take()) == 1
    due = port.get_timer()
    assert due is not None and h.now + 9.9 <= due <= h.now + 16.0  # RFC 4861 §6.2.4
    port.handle_timer(due - 0.01)  # early: nothing
    assert h.take() == []
    port.handle_timer(due)
    assert len(h.take()) == 1 and port.router_advertisements == 2


def test_ra_response_delay_is_honoured() -> None:
    h = Harness(router=RouterSettings(response_delay=0.5, seed=1))
    h.port.uplink(6, ndp.build_router_solicitation(DTE_IID))
    assert h.take() == []
    due = h.port.get_timer()
    assert due is not None and h.now <= due <= h.now + 0.5
    h.port.handle_timer(due)
    assert len(h.take()) == 1


def test_detach_withdraws_the_router_and_stops_everything() -> None:
    detached: list[SessionPort] = []
    h = Harness(on_detach=detached.append)
    port = h.port
    port.start_advertising()
    port.detach(withdraw=True)
    ((_, final),) = h.take()
    assert ndp.decode_router_advertisement(final).router_lifetime == 0
    assert detached == [port] and not port.attached and port.get_timer() is None
    port.detach()
    port.uplink(4, echo4(port.ipv4_address, SERVER4))
    port.deliver(4, udp_to(port, 4, 1))
    port.handle_timer(h.now + 1000)
    assert detached == [port] and h.take() == [] and h.internet == []
    assert port.uplink_packets == 0


# -- SimNetwork routing without a kernel ----------------------------------------------------------
def test_network_routes_downlink_by_destination_and_tracks_contexts() -> None:
    async def scenario() -> None:
        network = SimNetwork("unused-never-started")
        got: dict[int, list[bytes]] = {1: [], 2: []}
        one = network.attach(1, grant="IPV4V6", send_downlink=lambda f, p: got[1].append(p))
        two = network.attach(2, grant="IPV6", send_downlink=lambda f, p: got[2].append(p))
        with pytest.raises(
            NetworkSetupError, match="context 1 is attached to the simulated network already"
        ):
            network.attach(1, grant="IP", send_downlink=lambda f, p: None)
        assert network.session(2) is two and network.sessions == (one, two)
        to_one, to_two = udp_to(one, 4, 9), udp_to(two, 6, 9)
        network.route_downlink(to_one)
        network.route_downlink(to_two)
        network.route_downlink(ip.build_udp(SERVER4, "100.64.2.2", 1, 2, b""))  # 2 has no IPv4
        network.route_downlink(ip.build_udp(SERVER6, "2001:db8:0:3::1", 1, 2, b""))
        network.route_downlink(ip.build_icmpv6("::", "ff02::16", 143, 0, bytes(4)))  # MLD
        network.route_downlink(ip.build_udp(SERVER4, "224.0.0.251", 5353, 5353, b""))
        network.route_downlink(b"")
        network.route_downlink(b"\x45" + bytes(10))
        assert got == {1: [to_one], 2: [to_two]}
        assert network.downlink_unknown == 2 and network.downlink_malformed == 2
        assert network.downlink_multicast == 2
        network.set_embpf_range(6000, 6200)
        assert one.embpf_range == two.embpf_range == (6000, 6200)
        three = network.attach(3, grant="IP", send_downlink=lambda f, p: None)
        assert three.embpf_range == (6000, 6200)
        network.set_embpf_range(None)
        assert network.embpf_range is None and one.embpf_range is None
        with pytest.raises(ConfigError, match="UEMBPF range 7000-6000"):
            network.set_embpf_range(7000, 6000)
        one.uplink(4, echo4(one.ipv4_address, SERVER4))  # no TUN: the internet is not there
        assert one.dropped_internet == 1
        one.detach()
        network.route_downlink(to_one)
        assert network.downlink_unknown == 3 and network.session(1) is None

        def broken(family: int, packet: bytes) -> None:
            raise RuntimeError("consumer bug")

        network.attach(1, grant="IP", send_downlink=broken)
        network.route_downlink(to_one)
        assert network.downlink_errors == 1
        await network.stop()
        await network.stop()
        assert network.sessions == () and not two.attached
        with pytest.raises(NetworkSetupError, match="stopped"):
            network.attach(4, grant="IP", send_downlink=lambda f, p: None)

    asyncio.run(scenario())
