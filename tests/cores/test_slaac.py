"""larappp.proto.ipv6.slaac: SlaacClient and RouterAdvertiser on a fake clock."""

from __future__ import annotations

import itertools
import random
from ipaddress import IPv6Address, IPv6Network

import pytest

from larappp.proto import ip
from larappp.proto.ipv6 import ndp
from larappp.proto.ipv6.slaac import (
    MAX_RTR_SOLICITATION_DELAY,
    AddressConfigured,
    AddressDeprecated,
    AddressExpired,
    AddressRefreshed,
    AdvertisedLifetimes,
    DefaultRouterLearned,
    DnsServersExpired,
    DnsServersLearned,
    LinkMtuLearned,
    PrefixIgnored,
    RaIgnored,
    RaTimedOut,
    RouterAdvertiser,
    RouterLost,
    SlaacClient,
    SlaacEvent,
    SolicitationReceived,
)

HOST_IID = bytes.fromhex("90a15cfc3cc97301")
MODULE_IID = bytes.fromhex("2a0bad400001102a")
ROUTER_LL = ndp.link_local_from_iid(MODULE_IID)
PREFIX = IPv6Network("2a0b:ad40:1:102a::/64")
HOST_GLOBAL = IPv6Address("2a0b:ad40:1:102a:90a1:5cfc:3cc9:7301")
DNS1 = IPv6Address("2001:4860:4860::8888")
DNS2 = IPv6Address("2001:4860:4860::8844")
HOURS = 3600.0


def events(client: SlaacClient) -> list[SlaacEvent]:
    taken = []
    while (event := client.next_event()) is not None:
        taken.append(event)
    return taken


def ra_packet(
    *,
    prefixes: tuple[ndp.PrefixInformation, ...] = (
        ndp.PrefixInformation(PREFIX, True, True, 86400, 14400),
    ),
    router_lifetime: int = 1800,
    mtu: int | None = 1430,
    dns: tuple[ndp.RecursiveDnsServers, ...] = (),
    source: IPv6Address = ROUTER_LL,
) -> bytes:
    return ndp.build_router_advertisement(
        ndp.RouterAdvertisement(
            source=source,
            router_lifetime=router_lifetime,
            prefixes=prefixes,
            mtu=mtu,
            dns=dns,
        )
    )


def prefix_info(
    valid: float, preferred: float, prefix: IPv6Network = PREFIX
) -> tuple[ndp.PrefixInformation, ...]:
    return (ndp.PrefixInformation(prefix, True, True, int(valid), int(preferred)),)


def started_client(**kwargs: object) -> SlaacClient:
    client = SlaacClient(HOST_IID, 0.0, random.Random(0), rs_delay_max=0.0, **kwargs)  # type: ignore[arg-type]
    client.start(0.0)
    return client


# --------------------------------------------------------------------------- solicitations


def test_router_solicitations_retry_then_time_out() -> None:
    client = started_client()
    sent_at = []
    now = 0.0
    timed_out = []
    while (deadline := client.get_timer()) is not None:
        now = deadline
        client.handle_timer(now)
        for packet in client.packets_to_send():
            assert ndp.parse_router_solicitation(packet) is not None
            assert packet[40] == 133 and len(packet) == 48  # no SLLA on PPP
            sent_at.append(now)
        timed_out += [e for e in events(client) if isinstance(e, RaTimedOut)]
    assert sent_at == [0.0, 4.0, 8.0]  # RFC 4861 §6.3.7: 3 RS, 4 s apart
    assert now == 12.0 and len(timed_out) == 1
    assert "3 Router Solicitations" in timed_out[0].reason
    assert client.solicitations_sent == 3


def test_first_solicitation_is_delayed_randomly_within_one_second_when_asked() -> None:
    delays = set()
    for seed in range(20):
        client = SlaacClient(HOST_IID, 5.0, random.Random(seed), rs_delay_max=MAX_RTR_SOLICITATION_DELAY)
        assert client.get_timer() is None  # nothing before start()
        client.start(5.0)
        deadline = client.get_timer()
        assert deadline is not None and 5.0 <= deadline <= 6.0
        client.handle_timer(deadline - 0.001)
        assert client.packets_to_send() == []
        client.handle_timer(deadline)
        assert len(client.packets_to_send()) == 1
        delays.add(round(deadline, 6))
    assert len(delays) > 1


def test_on_a_ppp_link_the_first_solicitation_goes_at_once_by_default() -> None:
    client = SlaacClient(HOST_IID, 5.0, random.Random(0))
    client.start(5.0)
    assert client.get_timer() == 5.0
    client.handle_timer(5.0)
    assert len(client.packets_to_send()) == 1


def test_custom_solicitation_parameters() -> None:
    client = started_client(rs_max=2, rs_interval=1.5, ra_timeout=10.0)
    client.handle_timer(0.0)
    client.handle_timer(1.5)
    assert len(client.packets_to_send()) == 2
    assert client.get_timer() == 11.5
    client.handle_timer(11.5)
    assert [type(e) for e in events(client)] == [RaTimedOut]
    silent = started_client(rs_max=0)
    assert silent.get_timer() is None


def test_router_advertisement_stops_solicitations() -> None:
    client = started_client()
    client.handle_timer(0.0)
    client.packets_to_send()
    client.receive_packet(ra_packet(), 1.0)
    assert client.get_timer() == 1.0 + 1800  # only lifetimes are pending: router's first
    client.handle_timer(4.0)
    assert client.packets_to_send() == []
    assert not [e for e in events(client) if isinstance(e, RaTimedOut)]


def test_late_advertisement_after_timeout_still_configures() -> None:
    client = started_client()
    for moment in (0.0, 4.0, 8.0, 12.0):
        client.handle_timer(moment)
    assert isinstance(events(client)[-1], RaTimedOut)
    client.receive_packet(ra_packet(), 30.0)
    assert client.addresses == [(HOST_GLOBAL, 64)]


# --------------------------------------------------------------------------- what an RA teaches


def test_advertisement_configures_address_router_mtu_and_dns() -> None:
    client = started_client()
    client.handle_timer(0.0)
    dns = (ndp.RecursiveDnsServers((DNS1, DNS2), 600),)
    client.receive_packet(ra_packet(dns=dns), 2.0)
    assert events(client) == [
        LinkMtuLearned(1430),
        DefaultRouterLearned(ROUTER_LL, 1800, 1430),
        AddressConfigured(HOST_GLOBAL, 64, 2.0 + 86400, 2.0 + 14400),
        DnsServersLearned((DNS1, DNS2), 600),
    ]
    # app note §4.1.2: same prefix as the module, but the host's own IID
    assert client.addresses == [(HOST_GLOBAL, 64)]
    assert HOST_GLOBAL != ndp.address_from_prefix(PREFIX, MODULE_IID)
    assert client.default_routers == [ROUTER_LL]
    assert client.dns_servers == (DNS1, DNS2)
    assert client.mtu == 1430


def test_repeated_advertisement_refreshes_quietly() -> None:
    client = started_client()
    dns = (ndp.RecursiveDnsServers((DNS1,), 600),)
    client.receive_packet(ra_packet(dns=dns), 0.0)
    events(client)
    client.receive_packet(ra_packet(dns=dns), 100.0)
    assert events(client) == [AddressRefreshed(HOST_GLOBAL, 64, 100.0 + 86400, 100.0 + 14400)]
    assert client.get_timer() == 700.0  # RDNSS lifetime moved with the refresh


def test_mtu_change_and_out_of_range_mtus() -> None:
    client = started_client(max_mtu=1500)
    client.receive_packet(ra_packet(mtu=1430), 0.0)
    events(client)
    client.receive_packet(ra_packet(mtu=1400), 1.0)
    assert events(client)[:2] == [LinkMtuLearned(1400), DefaultRouterLearned(ROUTER_LL, 1800, 1400)]
    for bad in (1279, 9000):  # below the IPv6 minimum, above the PPP link MTU
        client.receive_packet(ra_packet(mtu=bad), 2.0)
        assert not [e for e in events(client) if isinstance(e, LinkMtuLearned)]
    assert client.mtu == 1400


def test_accept_router_false_learns_no_router() -> None:
    client = started_client(accept_router=False)
    client.receive_packet(ra_packet(), 0.0)
    kinds = [type(e) for e in events(client)]
    assert DefaultRouterLearned not in kinds and AddressConfigured in kinds
    client.receive_packet(ra_packet(router_lifetime=0), 1.0)
    assert RouterLost not in [type(e) for e in events(client)]
    assert client.default_routers == []


def test_router_withdrawal_and_router_expiry() -> None:
    client = started_client()
    client.receive_packet(ra_packet(router_lifetime=600), 0.0)
    events(client)
    client.receive_packet(ra_packet(router_lifetime=0), 10.0)
    assert RouterLost(ROUTER_LL, "router lifetime 0 advertised") in events(client)
    client.receive_packet(ra_packet(router_lifetime=600), 20.0)
    assert DefaultRouterLearned(ROUTER_LL, 600, 1430) in events(client)
    client.handle_timer(619.0)
    assert client.default_routers == [ROUTER_LL]
    client.handle_timer(620.0)
    assert events(client) == [RouterLost(ROUTER_LL, "router lifetime expired")]


def test_zero_router_lifetime_from_unknown_router_is_quiet_but_stops_solicitation() -> None:
    client = started_client()
    client.handle_timer(0.0)
    assert len(client.packets_to_send()) == 1
    client.receive_packet(ra_packet(router_lifetime=0), 1.0)
    kinds = [type(e) for e in events(client)]
    assert RouterLost not in kinds and DefaultRouterLearned not in kinds
    client.handle_timer(4.0)
    assert client.packets_to_send() == []
    assert client.solicitations_sent == 1


def test_address_deprecates_then_expires() -> None:
    client = started_client()
    client.receive_packet(ra_packet(prefixes=prefix_info(600, 300), router_lifetime=0), 0.0)
    events(client)
    assert client.get_timer() == 300.0
    client.handle_timer(300.0)
    assert events(client) == [AddressDeprecated(HOST_GLOBAL)]
    assert client.get_timer() == 600.0
    client.handle_timer(600.0)
    assert events(client) == [AddressExpired(HOST_GLOBAL)]
    assert client.addresses == [] and client.get_timer() is None


def test_late_timer_call_reports_deprecation_before_expiry() -> None:
    client = started_client()
    client.receive_packet(ra_packet(prefixes=prefix_info(600, 300), router_lifetime=0), 0.0)
    events(client)
    client.handle_timer(5000.0)
    assert events(client) == [AddressDeprecated(HOST_GLOBAL), AddressExpired(HOST_GLOBAL)]


def test_zero_preferred_lifetime_is_deprecated_at_birth_and_revived_by_refresh() -> None:
    client = started_client()
    client.receive_packet(ra_packet(prefixes=prefix_info(3 * HOURS, 0), router_lifetime=0), 0.0)
    kinds = [type(e) for e in events(client)]
    assert kinds[-2:] == [AddressConfigured, AddressDeprecated]
    client.receive_packet(
        ra_packet(prefixes=prefix_info(3 * HOURS, HOURS), router_lifetime=0), 10.0
    )
    refreshed = [e for e in events(client) if isinstance(e, AddressRefreshed)]
    assert refreshed == [AddressRefreshed(HOST_GLOBAL, 64, 10.0 + 3 * HOURS, 10.0 + HOURS)]
    client.handle_timer(10.0 + HOURS)
    assert events(client) == [AddressDeprecated(HOST_GLOBAL)]


def test_infinite_lifetimes() -> None:
    client = started_client()
    infinite = ndp.INFINITE_LIFETIME
    client.receive_packet(
        ra_packet(
            prefixes=prefix_info(infinite, infinite),
            router_lifetime=0,
            dns=(ndp.RecursiveDnsServers((DNS1,), infinite),),
        ),
        0.0,
    )
    assert AddressConfigured(HOST_GLOBAL, 64, None, None) in events(client)
    assert client.get_timer() is None


# --------------------------------------------------------------------------- RFC 4862 §5.5.3 e)


def _valid_until_after(first: tuple[float, float], second_valid: float, at: float) -> float | None:
    client = started_client()
    client.receive_packet(ra_packet(prefixes=prefix_info(*first), router_lifetime=0), 0.0)
    events(client)
    client.receive_packet(
        ra_packet(prefixes=prefix_info(second_valid, min(second_valid, 60)), router_lifetime=0),
        at,
    )
    refreshed = [e for e in events(client) if isinstance(e, AddressRefreshed)]
    assert len(refreshed) == 1
    return refreshed[0].valid_until


@pytest.mark.parametrize(
    ("first_valid", "at", "advertised", "expected"),
    [
        (10 * HOURS, 0.0, 1 * HOURS, 2 * HOURS),  # short lifetime capped at two hours
        (10 * HOURS, 100.0, 0, 100.0 + 2 * HOURS),  # even 0 cannot kill it sooner
        (1 * HOURS, 0.0, 600, 1 * HOURS),  # remaining <= 2 h: short lifetime ignored
        (1 * HOURS, 0.0, 3 * HOURS, 3 * HOURS),  # longer than two hours: taken
        (1 * HOURS, 0.0, 1.5 * HOURS, 1.5 * HOURS),  # longer than remaining: taken
        (3 * HOURS, 0.0, 5 * HOURS, 5 * HOURS),
        (3 * HOURS, 2 * HOURS, 1.5 * HOURS, 3.5 * HOURS),  # remaining 1 h < advertised
        (10 * HOURS, 0.0, 2 * HOURS, 2 * HOURS),  # exactly two hours is not "greater"
    ],
)
def test_two_hour_rule(first_valid: float, at: float, advertised: float, expected: float) -> None:
    assert _valid_until_after((first_valid, 60), advertised, at) == expected


def test_two_hour_rule_with_infinite_lifetimes() -> None:
    infinite = float(ndp.INFINITE_LIFETIME)
    assert _valid_until_after((infinite, 60), HOURS, 0.0) == 2 * HOURS
    assert _valid_until_after((HOURS, 60), infinite, 5.0) is None


# --------------------------------------------------------------------------- renumbering on PPP


NEW_PREFIX = IPv6Network("2a0b:ad40:1:9999::/64")
NEW_GLOBAL = IPv6Address("2a0b:ad40:1:9999:90a1:5cfc:3cc9:7301")


def test_ppp_renumbering_replaces_the_address_and_follows_the_mtu() -> None:
    # on a PPP link only the network sends RAs: the two-hour rule is off (as the engine runs it)
    client = started_client(two_hour_rule=False)
    infinite = float(ndp.INFINITE_LIFETIME)
    client.receive_packet(ra_packet(prefixes=prefix_info(infinite, infinite), mtu=1500), 0.0)
    events(client)
    assert client.addresses == [(HOST_GLOBAL, 64)]
    renumbered = prefix_info(0, 0) + prefix_info(HOURS, HOURS, NEW_PREFIX)
    client.receive_packet(ra_packet(prefixes=renumbered, mtu=1400), 50.0)
    assert events(client) == [
        LinkMtuLearned(1400),
        DefaultRouterLearned(ROUTER_LL, 1800, 1400),
        AddressConfigured(NEW_GLOBAL, 64, 50.0 + HOURS, 50.0 + HOURS),
        AddressExpired(HOST_GLOBAL),
    ]
    assert client.addresses == [(NEW_GLOBAL, 64)]


def test_ppp_link_honours_a_shortened_valid_lifetime() -> None:
    client = started_client(two_hour_rule=False)
    client.receive_packet(ra_packet(prefixes=prefix_info(10 * HOURS, HOURS)), 0.0)
    events(client)
    client.receive_packet(ra_packet(prefixes=prefix_info(60, 30)), 100.0)
    assert events(client) == [AddressRefreshed(HOST_GLOBAL, 64, 160.0, 130.0)]
    client.handle_timer(160.0)
    assert events(client) == [AddressDeprecated(HOST_GLOBAL), AddressExpired(HOST_GLOBAL)]
    assert client.addresses == []


def test_preferred_lifetime_is_clamped_to_valid() -> None:
    client = started_client()
    client.receive_packet(ra_packet(prefixes=prefix_info(HOURS, 60)), 0.0)
    events(client)
    # valid lifetime 10 min is ignored (remaining 1 h <= 2 h), preferred 10 min is taken
    client.receive_packet(ra_packet(prefixes=prefix_info(600, 600)), 0.0)
    refreshed = [e for e in events(client) if isinstance(e, AddressRefreshed)]
    assert refreshed == [AddressRefreshed(HOST_GLOBAL, 64, HOURS, 600.0)]


# --------------------------------------------------------------------------- prefixes ignored


def test_unusable_prefixes() -> None:
    client = started_client()
    link_local = ndp.PrefixInformation(IPv6Network("fe80::/64"), True, True, 600, 300)
    backwards = ndp.PrefixInformation(PREFIX, True, True, 300, 600)
    short = ndp.PrefixInformation(IPv6Network("2001:db8::/56"), True, True, 600, 300)
    not_autonomous = ndp.PrefixInformation(IPv6Network("2001:db8:9::/64"), True, False, 600, 300)
    dead = ndp.PrefixInformation(IPv6Network("2001:db8:8::/64"), True, True, 0, 0)
    client.receive_packet(
        ra_packet(prefixes=(link_local, backwards, short, not_autonomous, dead)), 0.0
    )
    ignored = [e for e in events(client) if isinstance(e, PrefixIgnored)]
    assert [e.prefix for e in ignored] == [link_local.prefix, PREFIX, short.prefix]
    assert client.addresses == []


def test_two_prefixes_give_two_addresses() -> None:
    other = IPv6Network("2001:db8:1:2::/64")
    client = started_client()
    client.receive_packet(
        ra_packet(prefixes=prefix_info(600, 300) + prefix_info(900, 300, other)), 0.0
    )
    assert [a for a, _ in client.addresses] == [
        HOST_GLOBAL,
        ndp.address_from_prefix(other, HOST_IID),
    ]
    client.handle_timer(600.0)
    expired = [e for e in events(client) if isinstance(e, AddressExpired)]
    assert expired == [AddressExpired(HOST_GLOBAL)] and len(client.addresses) == 1


# --------------------------------------------------------------------------- RDNSS


def test_rdnss_lifetimes_and_withdrawal() -> None:
    client = started_client()
    client.receive_packet(
        ra_packet(
            dns=(ndp.RecursiveDnsServers((DNS1,), 100), ndp.RecursiveDnsServers((DNS2,), 300))
        ),
        0.0,
    )
    learned = [e for e in events(client) if isinstance(e, DnsServersLearned)]
    assert learned == [DnsServersLearned((DNS1,), 100), DnsServersLearned((DNS1, DNS2), 300)]
    client.handle_timer(100.0)
    assert events(client) == [DnsServersExpired((DNS1,), (DNS2,))]
    client.receive_packet(ra_packet(dns=(ndp.RecursiveDnsServers((DNS2,), 0),)), 150.0)
    assert DnsServersExpired((DNS2,), ()) in events(client)
    assert client.dns_servers == ()
    client.receive_packet(ra_packet(dns=(ndp.RecursiveDnsServers((DNS1,), 0),)), 160.0)
    assert not [e for e in events(client) if isinstance(e, (DnsServersExpired, DnsServersLearned))]


# --------------------------------------------------------------------------- robustness


def test_malformed_advertisement_reported_and_other_packets_ignored() -> None:
    client = started_client()
    off_link = ip.build_icmpv6(ROUTER_LL, "ff02::1", 134, 0, bytes(12), hop_limit=64)
    client.receive_packet(off_link, 0.0)
    assert [type(e) for e in events(client)] == [RaIgnored]
    for other in (
        b"",
        b"\x45" + bytes(30),
        ip.build_udp("2001:db8::1", "2001:db8::2", 1, 2, b"x"),
        ndp.build_router_solicitation(MODULE_IID),
        ip.build_icmpv6("2001:db8::1", "2001:db8::2", 128, 0, b"1234"),
    ):
        client.receive_packet(other, 0.0)
    assert events(client) == []
    client.receive_packet(ra_packet(source=client.link_local), 0.0)
    assert [type(e) for e in events(client)] == [RaIgnored]
    assert client.addresses == []


def test_every_truncated_advertisement_is_harmless() -> None:
    packet = ra_packet(dns=(ndp.RecursiveDnsServers((DNS1, DNS2), 600),))
    client = started_client()
    for cut in range(len(packet)):
        client.receive_packet(packet[:cut], 1.0)
        for event in events(client):
            assert isinstance(event, RaIgnored)
    assert client.addresses == [] and client.dns_servers == ()
    client.receive_packet(packet, 1.0)
    assert client.addresses == [(HOST_GLOBAL, 64)]


def test_iid_length_checked() -> None:
    with pytest.raises(ValueError, match="8 bytes"):
        SlaacClient(b"\x01" * 4, 0.0)


# --------------------------------------------------------------------------- router side


def make_advertiser(**kwargs: object) -> RouterAdvertiser:
    params: dict[str, object] = {
        "mtu": 1430,
        "dns": (DNS1,),
        "lifetimes": AdvertisedLifetimes(router=1800, valid=86400, preferred=14400, dns=600),
        "rng": random.Random(3),
    }
    params.update(kwargs)
    return RouterAdvertiser(PREFIX, MODULE_IID, **params)  # type: ignore[arg-type]


def test_advertiser_periodic_and_initial_intervals() -> None:
    router = make_advertiser(max_interval=600.0, response_delay_max=0.0)
    router.start(0.0)
    sent: list[float] = []
    while len(sent) < 6:
        deadline = router.get_timer()
        assert deadline is not None
        router.handle_timer(deadline)
        for packet in router.packets_to_send():
            ra = ndp.parse_router_advertisement(packet)
            assert ra is not None and ra == router.advertisement
            sent.append(deadline)
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert sent[0] == 0.0
    assert all(gap <= 16.0 for gap in gaps[:3])  # MAX_INITIAL_RTR_ADVERT_INTERVAL
    assert all(198.0 <= gap <= 600.0 for gap in gaps[3:])


def test_advertiser_answers_solicitation_with_rate_limit() -> None:
    router = make_advertiser(response_delay_max=0.5, initial_advertisements=0, max_interval=1800.0)
    router.start(0.0)
    router.handle_timer(router.get_timer() or 0.0)
    first = router.packets_to_send()
    assert len(first) == 1
    rs = ndp.build_router_solicitation(HOST_IID)
    router.receive_packet(rs, 1.0)
    assert router.next_event() == SolicitationReceived(ndp.link_local_from_iid(HOST_IID))
    deadline = router.get_timer()
    assert deadline is not None and deadline >= 3.0  # MIN_DELAY_BETWEEN_RAS after the first
    router.handle_timer(deadline)
    assert len(router.packets_to_send()) == 1
    router.receive_packet(rs, 100.0)
    deadline = router.get_timer()
    assert deadline is not None and 100.0 <= deadline <= 100.5  # MAX_RA_DELAY_TIME
    router.receive_packet(b"\x60" + bytes(50), 100.0)  # junk is ignored
    router.receive_packet(ra_packet(), 100.0)
    assert router.next_event() is not None and router.next_event() is None


def test_advertiser_withdraw_sends_zero_lifetime_and_stops() -> None:
    router = make_advertiser()
    router.start(0.0)
    router.withdraw(5.0)
    (packet,) = router.packets_to_send()
    ra = ndp.parse_router_advertisement(packet)
    assert ra is not None and ra.router_lifetime == 0 and ra.prefixes
    assert router.get_timer() is None
    router.receive_packet(ndp.build_router_solicitation(HOST_IID), 6.0)
    router.handle_timer(100.0)
    assert router.packets_to_send() == [] and router.next_event() is None


# --------------------------------------------------------------------------- back to back


def run_pair(
    client: SlaacClient, router: RouterAdvertiser, until: float, drop_first_ras: int = 0
) -> list[SlaacEvent]:
    """Move a fake clock, carrying packets both ways, until `until`; return client events."""
    now = 0.0
    seen: list[SlaacEvent] = []
    dropped = 0
    while True:
        deadlines = [t for t in (client.get_timer(), router.get_timer()) if t is not None]
        if not deadlines or min(deadlines) > until:
            break
        now = max(now, min(deadlines))
        client.handle_timer(now)
        router.handle_timer(now)
        for packet in client.packets_to_send():
            router.receive_packet(packet, now)
        for packet in router.packets_to_send():
            if dropped < drop_first_ras:
                dropped += 1
                continue
            client.receive_packet(packet, now)
        seen += events(client)
    return seen


def test_back_to_back_client_and_router() -> None:
    client = SlaacClient(HOST_IID, 0.0, random.Random(1))
    router = make_advertiser(max_interval=600.0)  # RDNSS lifetime 600 >= MaxRtrAdvInterval
    client.start(0.0)
    router.start(0.0)
    seen = run_pair(client, router, until=20.0)
    configured = [e for e in seen if isinstance(e, AddressConfigured)]
    assert len(configured) == 1 and configured[0].address == HOST_GLOBAL
    assert configured[0].valid_until is not None and configured[0].preferred_until is not None
    assert DefaultRouterLearned(ROUTER_LL, 1800, 1430) in seen
    assert DnsServersLearned((DNS1,), 600) in seen
    assert client.addresses == [(HOST_GLOBAL, 64)]
    # the router keeps refreshing: nothing expires over a day
    seen = run_pair(client, router, until=86400.0)
    assert not [
        e
        for e in seen
        if isinstance(e, (AddressExpired, RouterLost, DnsServersExpired, AddressDeprecated))
    ]
    router.withdraw(86401.0)
    for packet in router.packets_to_send():
        client.receive_packet(packet, 86401.0)
    assert RouterLost(ROUTER_LL, "router lifetime 0 advertised") in events(client)


def test_back_to_back_solicitation_answered_when_first_advertisements_are_lost() -> None:
    client = SlaacClient(HOST_IID, 0.0, random.Random(2))
    router = make_advertiser(max_interval=1800.0, initial_advertisements=0)
    client.start(0.0)
    router.start(0.0)
    seen = run_pair(client, router, until=30.0, drop_first_ras=2)
    assert client.addresses == [(HOST_GLOBAL, 64)]
    assert not [e for e in seen if isinstance(e, RaTimedOut)]
    assert client.solicitations_sent >= 2  # the RS retry is what got the answer through


