"""The built-in engine on bad input: broken frames, line noise, option storms, peers that never agree."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest

from larappp.errors import PPPError
from larappp.proto import ip
from larappp.proto.hdlc import HdlcDecoder, HdlcEncoder, append_fcs
from larappp.proto.ppp import frame
from larappp.proto.ppp.fsm import control_packet, parse_control_packet
from tests.e2e.enginerig import (
    HOST_V4,
    IFNAME,
    INTERNET_V4,
    NEEDS_ROOT_AND_TUN,
    EngineRig,
    addresses,
    check_udp_both_ways,
    run_scenario,
)

pytestmark = NEEDS_ROOT_AND_TUN


# -- bad frames on a link that is up ----------------------------------------------------


def test_bad_frames_are_counted_and_packets_still_flow(netns: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with EngineRig(netns, tmp_path) as rig:
            engine, module = rig.engine, rig.module
            await engine.wait_up(10)
            await check_udp_both_ways(rig, 4, b"before")
            await check_udp_both_ways(rig, 6, b"before")
            decoder = engine.link.decoder
            before = (decoder.bad_fcs, decoder.too_short, decoder.too_long, decoder.aborted)
            encoder = HdlcEncoder(0)
            packet = ip.build_udp(INTERNET_V4, HOST_V4, 7000, 9, b"x" * 200)
            good = encoder.encode(frame.build_frame(frame.IPV4, packet))
            bad_fcs = good[:-3] + bytes((good[-3] ^ 0x01,)) + good[-2:]
            # a frame cut short: the next flag arrives in the middle of it
            truncated = good[: len(good) // 2]
            module.inject(truncated)
            module.inject(bad_fcs)
            module.inject(b"\x7e\x01\x02\x7e")  # shorter than any frame
            module.inject(b"\x7eline noise between frames\x13\x00\xff\x7e")
            module.inject(b"\x7e\xff\x03\x00\x21\x45\x7d\x7e")  # aborted (7D 7E)
            module.inject(b"\x7e" + bytes(range(0x80, 0xFD)) * 40 + b"\x7e")  # far too long
            # a good FCS around a malformed protocol field
            module.inject(b"\x7e" + append_fcs(b"\xff\x03\x00\x00\x01\x02").replace(b"\x7e", b"") + b"\x7e")
            # a protocol the host does not run: Protocol-Reject, the link stays
            ccp = control_packet(1, 1, b"\x12\x06\x00\x00\x00\x01")
            module.inject(encoder.encode(frame.build_frame(frame.CCP, ccp)))
            await check_udp_both_ways(rig, 4, b"after")
            await check_udp_both_ways(rig, 6, b"after")
            bad_fcs_count, too_short, too_long, aborted = (
                decoder.bad_fcs - before[0],
                decoder.too_short - before[1],
                decoder.too_long - before[2],
                decoder.aborted - before[3],
            )
            assert bad_fcs_count >= 3  # truncated, bad FCS, line noise
            assert too_short >= 1 and too_long >= 1 and aborted >= 1
            assert engine.link.stats.bad_frames == 1
            assert engine.link.stats.protocol_rejects_sent == 1
            assert engine.status()["bad_frames"] == 1
            assert not engine.terminated.is_set()
            assert engine.families_up == {4, 6}
            assert engine.running_pumps() == {"serial-in", "tun-in", "timers", "serial-out", "configure"}

    run_scenario(netns, scenario)


def test_ip_frames_the_kernel_refuses_do_not_stop_the_pump(netns: str, tmp_path: Path) -> None:
    """Frames with a good FCS whose payload is no IP packet: the TUN write fails, the pump lives."""

    async def scenario() -> None:
        async with EngineRig(netns, tmp_path) as rig:
            engine, module = rig.engine, rig.module
            await engine.wait_up(10)
            encoder = HdlcEncoder(0)
            for protocol, payload in (
                (frame.IPV4, b"\x00" * 40),  # version nibble 0
                (frame.IPV6, b"\x45" + bytes(59)),  # an IPv4 header on the IPv6 protocol
                (frame.IPV4, b""),  # nothing at all
                (frame.IPV6, b"\x60"),  # one octet
            ):
                module.inject(encoder.encode(frame.build_frame(protocol, payload)))
            await check_udp_both_ways(rig, 4, b"after")
            await check_udp_both_ways(rig, 6, b"after")
            assert not engine.terminated.is_set()
            assert engine.running_pumps() == {"serial-in", "tun-in", "timers", "serial-out", "configure"}
            # version nibble 0 and the empty packet are refused (EINVAL); the TUN picks the
            # family from the version nibble and passes the others up for IP to drop
            assert engine.tun_write_errors >= 2
            assert engine.status()["tun_write_errors"] == engine.tun_write_errors

    run_scenario(netns, scenario)


def test_a_flood_of_line_noise_is_counted_and_the_link_stays(netns: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with EngineRig(netns, tmp_path) as rig:
            engine, module = rig.engine, rig.module
            await engine.wait_up(10)
            rng = random.Random(7)
            noise = bytearray()
            for _ in range(2000):  # 2000 flag-delimited pieces of random octets
                noise += b"\x7e" + rng.randbytes(rng.randint(1, 200)).replace(b"\x7e", b"\x7d")
            noise += b"\x7e"
            assert HdlcDecoder(0).receive_data(bytes(noise)) == []  # not one good frame in it
            decoder = engine.link.decoder
            seen = decoder.bad_fcs + decoder.too_short + decoder.aborted
            started = time.monotonic()
            for offset in range(0, len(noise), 4096):
                module.inject(bytes(noise[offset : offset + 4096]))
            await check_udp_both_ways(rig, 4, b"after noise")
            assert time.monotonic() - started < 3
            assert decoder.bad_fcs + decoder.too_short + decoder.aborted - seen >= 1900
            assert not engine.terminated.is_set() and engine.families_up == {4, 6}

    run_scenario(netns, scenario)


def test_a_pump_that_fails_ends_the_session_with_a_reason(netns: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with EngineRig(netns, tmp_path) as rig:
            engine, module = rig.engine, rig.module
            await engine.wait_up(10)

            def broken(data: bytes, now: float | None = None) -> None:
                raise RuntimeError("decoder exploded")

            engine.link.receive_data = broken  # type: ignore[method-assign]
            module.inject(b"\x7e\x01\x02\x03\x04\x7e")
            await asyncio.wait_for(engine.terminated.wait(), 2)
            assert engine.reason == (
                f"larappp's ppp {IFNAME} serial-in pump failed: RuntimeError: decoder exploded"
            )
            assert engine.running_pumps() == {"tun-in", "timers", "serial-out", "configure"}  # until stop()

    run_scenario(netns, scenario)


# -- negotiation that goes wrong ---------------------------------------------------------


def storm_options(rng: random.Random, count: int) -> bytes:
    """`count` options LCP does not know, and a few malformed ones in the middle."""
    unknown = [b"\x00\x02", b"\x04\x02", b"\x06\x02", b"\x09\x03\x00", b"\x0d\x02",
               b"\x11\x04\x00\x00", b"\x17\x02", b"\x4d\x02", b"\x80\x02", b"\xff\x02"]
    options = [rng.choice(unknown) for _ in range(count)]
    options[count // 2 : count // 2] = [b"\x01\x03\x05", b"\x05\x04\x00\x00"]
    return b"".join(options)


def test_option_storm_during_negotiation_still_opens(netns: str, tmp_path: Path) -> None:
    """Hundreds of Configure-Requests full of unknown options before and while the module's
    own request comes: each is rejected, the link opens when the storm is over."""

    async def scenario() -> None:
        rng = random.Random(3)
        # A storm request that lands after the host acknowledged the module's request
        # takes the host back to Req-Sent (RFC 1661 RCR- in Ack-Sent): the restart timer
        # renegotiates, so the module's timers must not run out before the host's.
        async with EngineRig(netns, tmp_path, link_timers={"restart_interval": 0.2}) as rig:
            engine, module = rig.engine, rig.module
            encoder = HdlcEncoder()
            storm = []
            for identifier in range(300):
                options = storm_options(rng, 300)
                assert len(options) > 600
                request = control_packet(1, identifier & 0xFF, options)
                storm.append(encoder.encode(frame.build_frame(frame.LCP, request)))
            started = time.monotonic()
            for index, frame_octets in enumerate(storm):
                module.inject(frame_octets)
                if index % 50 == 0:
                    await asyncio.sleep(0)  # interleave with the genuine negotiation
            await engine.wait_up(10)
            assert time.monotonic() - started < 8
            assert engine.families_up == {4, 6}
            # every storm request got its Configure-Reject (4), none was acknowledged blindly
            assert module.sent(frame.LCP, 4) >= 300
            assert engine.link.decoder.bad_fcs == 0
            await check_udp_both_ways(rig, 4, b"after the storm")

    run_scenario(netns, scenario)


SHORT_TIMERS = {"restart_interval": 0.1, "max_configure": 4}


def test_a_silent_peer_ends_in_max_configure(netns: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with EngineRig(
            netns, tmp_path, raw_peer=lambda protocol, info: [], link_timers=SHORT_TIMERS
        ) as rig:
            engine = rig.engine
            started = time.monotonic()
            with pytest.raises(PPPError) as caught:
                await engine.wait_up(10)
            assert time.monotonic() - started < 3
            assert str(caught.value) == (
                f"PPP on {IFNAME} ended before it was up: LCP: the peer did not agree to any "
                "of 4 Configure-Requests (it was silent or kept refusing)"
            )
            assert engine.terminated.is_set()
            assert rig.raw is not None and len(rig.raw.requests(frame.LCP)) == 4

    run_scenario(netns, scenario)


def test_a_peer_that_naks_every_request_ends_in_max_configure(netns: str, tmp_path: Path) -> None:
    suggestions = iter(range(600, 1500))

    def nak_everything(protocol: int, info: bytes) -> list[tuple[int, bytes]]:
        parsed = parse_control_packet(info)
        if protocol != frame.LCP or parsed is None or parsed[0] != 1:
            return []
        mru = next(suggestions)  # each time yet another MRU
        return [(frame.LCP, control_packet(3, parsed[1], b"\x01\x04" + mru.to_bytes(2, "big")))]

    async def scenario() -> None:
        async with EngineRig(
            netns, tmp_path, raw_peer=nak_everything, link_timers=SHORT_TIMERS
        ) as rig:
            started = time.monotonic()
            with pytest.raises(PPPError, match="did not agree to any of 4 Configure-Requests"):
                await rig.engine.wait_up(10)
            assert time.monotonic() - started < 5
            assert rig.raw is not None
            # Max-Failure (5) Naks are followed, then the option is dropped and the
            # unanswered retransmissions run out
            assert 5 <= len(rig.raw.requests(frame.LCP)) <= 12

    run_scenario(netns, scenario)


def test_a_peer_that_storms_instead_of_answering_ends_in_max_configure(
    netns: str, tmp_path: Path
) -> None:
    rng = random.Random(5)

    def storm(protocol: int, info: bytes) -> list[tuple[int, bytes]]:
        parsed = parse_control_packet(info)
        if protocol != frame.LCP or parsed is None or parsed[0] != 1:
            return []
        # never an answer, only more requests full of options nobody knows
        return [
            (frame.LCP, control_packet(1, rng.randrange(256), storm_options(rng, 400)))
            for _ in range(20)
        ]

    async def scenario() -> None:
        async with EngineRig(netns, tmp_path, raw_peer=storm, link_timers=SHORT_TIMERS) as rig:
            started = time.monotonic()
            with pytest.raises(PPPError, match="did not agree to any of 4 Configure-Requests"):
                await rig.engine.wait_up(10)
            assert time.monotonic() - started < 5
            assert rig.raw is not None
            rejects = [info for protocol, info in rig.raw.received if info[:1] == b"\x04"]
            assert len(rejects) >= 60  # 20 per request of ours, each rejected

    run_scenario(netns, scenario)


def test_an_ncp_that_never_opens_is_a_clear_error(netns: str, tmp_path: Path) -> None:
    """LCP opens, but the module never answers IPCP: an IPv4-only session fails."""

    async def scenario() -> None:
        async with EngineRig(
            netns,
            tmp_path,
            drop_to_host=lambda protocol: protocol == frame.IPCP,
            link_timers=SHORT_TIMERS,
            families=(4,),
        ) as rig:
            engine = rig.engine
            with pytest.raises(PPPError) as caught:
                await engine.wait_up(10)
            # the NCP's own reason, not only "no family left"
            assert str(caught.value) == (
                f"PPP on {IFNAME} did not open IPCP (IPCP: "
                "the peer did not agree to any of 4 Configure-Requests (it was silent or kept "
                "refusing)): check the APN and the PDP type"
            )
            assert engine.families_up == set()
            assert addresses(netns) == set()

    run_scenario(netns, scenario)


def test_wait_up_times_out_with_what_is_missing(netns: str, tmp_path: Path) -> None:
    """A peer that answers nothing, with the default (long) timers: wait_up's own timeout."""

    async def scenario() -> None:
        async with EngineRig(netns, tmp_path, raw_peer=lambda protocol, info: []) as rig:
            with pytest.raises(PPPError) as caught:
                await rig.engine.wait_up(0.5)
            assert str(caught.value) == (
                f"PPP on {IFNAME} was not up within 0.5 s (IPv4, IPv6 not usable yet, LCP "
                "phase Establish): check the APN and PDP type, or raise the timeout"
            )
            assert not rig.engine.terminated.is_set()

    run_scenario(netns, scenario)
