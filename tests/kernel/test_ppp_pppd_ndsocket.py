"""The pppd backend's ICMPv6 socket on a kernel interface, in a throw-away namespace (root).

A TUN stands in for pppd's ppp interface (both are IFF_NOARP point-to-point links
without a kernel link-local): what the test writes into the TUN is what the module
would send over PPP, and what the kernel writes to the TUN is what would go to it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from ipaddress import IPv6Address, IPv6Network

import pytest

from larappp.errors import NetworkSetupError, PortClosed
from larappp.proto import ip
from larappp.proto.ipv6 import ndp
from larappp.proto.ipv6.slaac import RouterAdvertiser, SlaacClient
from larappp.transport.ndsocket import NdpSocket
from larappp.transport.netns import call_in_netns, temp_netns
from larappp.transport.sysctl import Sysctl
from larappp.transport.tun import Tun

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces and raw sockets"),
    pytest.mark.skipif(not os.path.exists("/dev/net/tun"), reason="no /dev/net/tun"),
]

HOST_IID = bytes.fromhex("90a15cfc3cc97301")  # app note §4.1.2 example
MODULE_IID = bytes.fromhex("2a0bad400001102a")
HOST_LL = ndp.link_local_from_iid(HOST_IID)
PREFIX = IPv6Network("2001:db8:1:1::/64")


def tun_link(namespace: str, name: str = "lppd9") -> Tun:
    """A TUN set up as larappp sets pppd's interface: addr_gen_mode=1, accept_ra=0, fe80::<IID>."""
    tun = Tun.open(name)
    sysctl = Sysctl()
    sysctl.prepare_ipv6_link(name, kernel_slaac=False)
    for argv in (["link", "set", name, "up"], ["addr", "add", f"{HOST_LL}/64", "dev", name, "nodad"]):
        subprocess.run(["ip", "-n", namespace, *argv], check=True, capture_output=True)
    return tun


def test_router_advertisements_in_solicitations_out() -> None:
    def inside(namespace: str) -> None:
        async def body() -> None:
            tun = tun_link(namespace)
            sock = NdpSocket.open("lppd9")
            try:
                # the module's RA (with RDNSS) reaches the socket as the same IPv6 packet
                advertiser = RouterAdvertiser(PREFIX, MODULE_IID, mtu=1430, dns=(IPv6Address("2001:db8::53"),))
                advertiser.start(0.0)
                advertiser.handle_timer(100.0)
                (ra,) = advertiser.packets_to_send()
                # unrelated ICMPv6 (an echo request to us) is filtered out before user space
                echo = ip.build_icmpv6(ndp.link_local_from_iid(MODULE_IID), HOST_LL, 128, 0, b"\x00\x01\x00\x01ping")
                tun.write_packet(echo)
                tun.write_packet(ra)
                got = await asyncio.wait_for(sock.receive(), 5)
                assert got == ra
                client = SlaacClient(HOST_IID, 0.0)
                client.receive_packet(got, 1.0)
                assert [str(a) for a, _ in client.addresses] == [str(ndp.address_from_prefix(PREFIX, HOST_IID))]
                assert client.dns_servers == (IPv6Address("2001:db8::53"),)
                # an RS from SlaacClient leaves as the RS it built: source fe80::<IID>, hop limit 255
                rs = ndp.build_router_solicitation(HOST_IID)
                sock.send(rs)
                while True:
                    packet = await asyncio.wait_for(tun.read(), 5)
                    if packet[6] == ip.PROTO_ICMPV6 and packet[40] == ndp.ICMPV6_ROUTER_SOLICITATION:
                        break
                assert packet[4:] == rs[4:]  # the kernel may add a flow label (bytes 1-3)
                assert ndp.decode_router_solicitation(packet).source == HOST_LL
                with pytest.raises(ValueError, match="ICMPv6 packets"):
                    sock.send(b"\x60" + bytes(50))
            finally:
                sock.close()
                tun.close()
            with pytest.raises(PortClosed):
                await sock.receive()

        asyncio.run(body())

    with temp_netns("lppd-nd-") as namespace:
        call_in_netns(namespace, inside, namespace)


def test_opening_on_a_missing_interface_says_so() -> None:
    with temp_netns("lppd-nd-") as namespace, pytest.raises(NetworkSetupError, match="interface lppd-x does not exist"):
        call_in_netns(namespace, NdpSocket.open, "lppd-x")
