"""The real pppd in the QEMU VM against hand-written host-side PPP (no larappp PPP code)."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import time
from collections.abc import Callable

from tests.vm.frames import (
    CONF_REQ,
    PROTO_IP,
    PROTO_LCP,
    ControlPacket,
    Deframer,
    Frame,
    icmp_echo_request,
    parse_icmp,
)
from tests.vm.handpeer import HandPeer
from tests.vm.qemu import (
    PPPD_EXIT_HANGUP,
    PPPD_EXIT_OK,
    PPPD_EXIT_PEER_DEAD,
    PppdVm,
    pppd_guest_script,
)

MODULE_ROLE = ["noauth", "10.64.0.1:10.64.0.2", "ms-dns 10.64.0.53", "debug"]
LCP_ASYNCMAP, LCP_MAGIC, LCP_PCOMP, LCP_ACCOMP = 2, 5, 7, 8  # RFC 1661 §6, RFC 1662 §7.1


def test_pppd_sends_lcp_configure_request(pppd_vm: Callable[..., PppdVm]) -> None:
    script = pppd_guest_script(["noauth", "lcp-restart 1", "lcp-max-configure 2"])

    async def first_frame(vm: PppdVm) -> tuple[bytes, float, int | None]:
        pipe = await vm.open_pipe()
        raw = b""
        deframer = Deframer()
        frames: list[Frame] = []
        while not frames:
            chunk = await asyncio.wait_for(pipe.read(), 45)
            raw += chunk
            frames = deframer.feed(chunk)
        assert vm.started_at is not None
        boot_seconds = time.monotonic() - vm.started_at
        rss = vm.rss_bytes()
        assert frames[0].protocol == PROTO_LCP
        packet = ControlPacket.parse(frames[0].payload)
        assert packet.code == CONF_REQ
        options = packet.options()
        assert options[LCP_ASYNCMAP] == bytes(4)
        assert len(options[LCP_MAGIC]) == 4
        assert LCP_PCOMP in options and LCP_ACCOMP in options
        await pipe.close()
        return raw, boot_seconds, rss

    with pppd_vm(script) as vm:
        raw, boot_seconds, rss = asyncio.run(first_frame(vm))
        # RFC 1662: flag, address 0xff, control 0x03 escaped (ACCM is all ones until LCP opens)
        assert raw.startswith(bytes.fromhex("7e ff 7d 23 c0 21 7d 21"))
        status = vm.wait(30)
    assert status != PPPD_EXIT_OK  # nobody answered: pppd gave up after two Configure-Requests
    assert "LCP: timeout sending Config-Requests" in (vm.read_share("pppd.log") or "")
    print(f"\nVM figures: boot to first LCP frame {boot_seconds:.2f} s, QEMU RSS "
          f"{(rss or 0) / 2**20:.0f} MiB (peak {(vm.peak_rss_bytes or 0) / 2**20:.0f} MiB)")
    assert boot_seconds < 60


def test_link_opens_pings_and_terminates(pppd_vm: Callable[..., PppdVm]) -> None:
    # pppd's defaults (CCP, VJ) are left on: the hand peer must refuse them as a host would.
    script = pppd_guest_script(MODULE_ROLE)

    async def session(vm: PppdVm) -> HandPeer:
        pipe = await vm.open_pipe()
        peer = HandPeer(pipe)
        await asyncio.wait_for(peer.open(), 45)
        assert (peer.local_address, peer.peer_address, peer.dns) == (
            "10.64.0.2", "10.64.0.1", "10.64.0.53"
        )
        ip_up = await vm.wait_for_share("ip-up.txt", 20)
        assert "10.64.0.1 peer 10.64.0.2" in ip_up
        source = ipaddress.IPv4Address(peer.local_address).packed
        destination = ipaddress.IPv4Address(peer.peer_address).packed
        for seq in range(1, 4):
            payload = bytes(range(seq, seq + 48))
            await peer.send(PROTO_IP, icmp_echo_request(source, destination, 0x4C50, seq, payload))
            reply = parse_icmp(await asyncio.wait_for(peer.next_ip_packet(), 10))
            assert reply is not None
            assert (reply.icmp_type, reply.ident, reply.seq, reply.data) == (0, 0x4C50, seq, payload)
            assert (reply.source, reply.destination) == (destination, source)
        # a near-MTU packet full of octets that need escaping crosses both ways intact
        payload = (bytes(range(0x20)) + b"\x7d\x7e" * 8) * 29 + bytes(8)
        started = time.monotonic()
        await peer.send(PROTO_IP, icmp_echo_request(source, destination, 0x4C50, 9, payload))
        reply = parse_icmp(await asyncio.wait_for(peer.next_ip_packet(), 20))
        print(f"\n{len(payload)}-byte echo round trip {time.monotonic() - started:.3f} s")
        assert reply is not None and reply.data == payload
        await peer.terminate()
        await pipe.close()
        return peer

    with pppd_vm(script) as vm:
        peer = asyncio.run(session(vm))
        status = vm.wait(30)
    assert peer.deframer.bad_fcs == 0
    # pppd 2.4.9 reads EOF from its channel after "Connection terminated" and then reports
    # 16 (hangup) instead of 0: the log tells how the link ended.
    assert status in (PPPD_EXIT_OK, PPPD_EXIT_HANGUP)
    log = vm.read_share("pppd.log") or ""
    assert "LCP terminated by peer" in log
    assert "ip-down" in (vm.read_share("ip-down.txt") or "")


def test_pppd_exits_when_host_goes_away(pppd_vm: Callable[..., PppdVm]) -> None:
    script = pppd_guest_script(
        [*MODULE_ROLE, "lcp-echo-interval 1", "lcp-echo-failure 2", "lcp-restart 1"]
    )

    async def session(vm: PppdVm) -> None:
        pipe = await vm.open_pipe()
        await asyncio.wait_for(HandPeer(pipe).open(), 45)
        await pipe.close()  # the host end vanishes: no Terminate-Request, no more echo replies

    with pppd_vm(script) as vm:
        asyncio.run(session(vm))
        status = vm.wait(30)
    assert status in (PPPD_EXIT_PEER_DEAD, PPPD_EXIT_HANGUP)  # see the test above
    assert "No response to 2 echo-requests" in (vm.read_share("pppd.log") or "")


def test_guest_command_on_kernel_command_line(pppd_vm: Callable[..., PppdVm]) -> None:
    """init runs a command given as larappp.b64= in preference to the share's guest.sh."""
    command = "uname -r >/share/kernel.txt; test -c /dev/ppp && grep -q ppp_async /proc/modules"
    encoded = base64.b64encode(command.encode()).decode()
    with pppd_vm("exit 3", extra_append=f"larappp.b64={encoded}") as vm:
        status = vm.wait(30)
    assert status == 0
    assert vm.artifacts is not None
    assert (vm.read_share("kernel.txt") or "").strip() == vm.artifacts.kernel_version
