"""larappp.transport.tun inside a throw-away network namespace (needs root)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
from typing import TypeVar

import pytest

from larappp.errors import ConfigError, NetworkSetupError
from larappp.proto import ip
from larappp.transport.netlink import Netlink
from larappp.transport.tun import Tun
from tests.nshelp import in_netns, ip_json

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces and TUN"),
    pytest.mark.skipif(not os.path.exists("/dev/net/tun"), reason="no /dev/net/tun"),
]

T = TypeVar("T")


def link_names(namespace: str) -> set[str]:
    return {link["ifname"] for link in ip_json(namespace, "link", "show")}


def test_tun_lives_in_the_namespace_and_vanishes_when_closed(netns: str) -> None:
    def scenario() -> tuple[str, int, set[str], set[str]]:
        tun = Tun.open("ppp7", mtu=1400)
        try:
            present = link_names(netns)
            mtu = tun.get_mtu()
        finally:
            tun.close()
        return tun.name, mtu, present, link_names(netns)

    name, mtu, present, after = in_netns(netns, scenario)
    assert name == "ppp7" and mtu == 1400
    assert "ppp7" in present and "ppp7" not in after
    assert after == {"lo"}
    root_links = {
        x["ifname"]
        for x in json.loads(
            subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True).stdout
        )
    }
    assert "ppp7" not in root_links  # never created outside the namespace


def test_kernel_picks_a_name_and_close_is_idempotent(netns: str) -> None:
    def scenario() -> tuple[str, bool]:
        with Tun.open() as tun:
            name = tun.name
            assert tun.fileno() >= 0
        tun.close()
        return name, tun.closed

    name, closed = in_netns(netns, scenario)
    assert name.startswith("tun") and closed


def test_bad_names_and_names_in_use(netns: str) -> None:
    for bad in ("", "x" * 16, "a/b", ".."):
        with pytest.raises(ConfigError):
            Tun.open(bad)

    def scenario() -> str:
        with Tun.open("ppp8"), pytest.raises(NetworkSetupError, match="choose another name"):
            Tun.open("ppp8")
        with Tun.open("ppp8") as again:  # the name is free again after close
            return again.name

    assert in_netns(netns, scenario) == "ppp8"
    with pytest.raises(ConfigError, match="MTU"):
        in_netns(netns, lambda: Tun.open("ppp9", mtu=20))
    assert "ppp9" not in link_names(netns)  # a failed open leaves no interface behind


def test_packets_flow_both_ways_through_the_kernel(netns: str) -> None:
    """A ping written into the TUN is answered by the kernel; a UDP send comes out of it."""

    async def exchange(tun: Tun) -> tuple[bytes, bytes]:
        async with Netlink() as nl:
            await nl.set_link_up(tun.name)
            await nl.add_ipv4_peer(tun.name, "10.77.0.1", "10.77.0.2")
        request = ip.build_icmpv4("10.77.0.2", "10.77.0.1", 8, 0, b"\x12\x34\x00\x01larappp")
        await tun.write(request)
        reply = b""
        while not reply:
            packet = await asyncio.wait_for(tun.read(), 5)
            message = ip.parse_icmpv4(packet)
            if message is not None and message.type == 0:
                reply = packet
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"to the module", ("10.77.0.2", 6176))
        outgoing = b""
        while not outgoing:
            packet = await asyncio.wait_for(tun.read(), 5)
            if ip.parse_udp(packet) is not None:
                outgoing = packet
        return reply, outgoing

    def scenario() -> tuple[bytes, bytes]:
        with Tun.open("ppp6", mtu=1500) as tun:
            assert tun.read_packet() is None  # non-blocking, nothing queued yet
            return asyncio.run(exchange(tun))

    reply, outgoing = in_netns(netns, scenario)
    message = ip.parse_icmpv4(reply)
    assert message is not None and message.body == b"\x12\x34\x00\x01larappp"
    assert (str(message.src), str(message.dst)) == ("10.77.0.1", "10.77.0.2")
    datagram = ip.parse_udp(outgoing)
    assert datagram is not None and datagram.payload == b"to the module"
    assert (str(datagram.src), datagram.dst_port) == ("10.77.0.1", 6176)
    assert ip.dest_port(outgoing) == 6176


def test_read_waits_until_a_packet_arrives_and_is_cancellable(netns: str) -> None:
    async def scenario_async(tun: Tun) -> bool:
        reader = asyncio.ensure_future(tun.read())
        await asyncio.sleep(0)  # let it register with the loop
        assert not reader.done()
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        loop = asyncio.get_running_loop()
        return not loop.remove_reader(tun.fileno())  # the cancelled read unregistered itself

    def scenario() -> bool:
        with Tun.open("ppp5") as tun:
            return asyncio.run(scenario_async(tun))

    assert in_netns(netns, scenario)
