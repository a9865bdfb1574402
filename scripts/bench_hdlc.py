#!/usr/bin/env python3
"""Throughput of the HDLC codec and the PppLink data path on 1500-octet frames.

Every figure is also printed as a ratio to baselines measured in the same run (a raw
bytes copy and a single bytes.replace over the same data), so numbers from different
machines or loads can be compared.

    python3 scripts/bench_hdlc.py [--seconds 0.5]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from larappp.proto.hdlc import DEFAULT_ACCM, HdlcDecoder, HdlcEncoder, fcs16
from larappp.proto.ppp.config import LinkConfig
from larappp.proto.ppp.link import PppLink

FRAME_SIZE = 1500
BATCH = 64


def rate(work: Callable[[], int], seconds: float) -> float:
    """MB/s of `work` (which returns the octets it processed), best of three runs."""
    best = 0.0
    for _ in range(3):
        done = 0
        start = time.perf_counter()
        deadline = start + seconds / 3
        while True:
            done += work()
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, done / (now - start) / 1e6)
    return best


def open_pair() -> tuple[PppLink, PppLink]:
    host = PppLink("host", LinkConfig(echo_interval=None), 0.0, random.Random(1))
    module = PppLink(
        "module",
        LinkConfig(echo_interval=None, ipv4_peer_address=IPv4Address("10.0.0.2")),
        0.0,
        random.Random(2),
    )
    host.open(0.0)
    module.open(0.0)
    for _ in range(20):
        a, b = host.data_to_send(), module.data_to_send()
        if not a and not b:
            break
        module.receive_data(a)
        host.receive_data(b)
    while host.next_event() is not None:
        pass
    while module.next_event() is not None:
        pass
    assert host.is_open(4) and module.is_open(4), "the pair did not open"
    return host, module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.6, help="time per measurement")
    args = parser.parse_args()
    seconds = args.seconds
    rng = random.Random(7)
    frames = [
        b"\xff\x03\x00\x21" + rng.randbytes(FRAME_SIZE - 4) for _ in range(BATCH)
    ]  # random payloads: about 2/256 octets need escaping at ACCM 0, 34/256 at the default
    octets = sum(len(f) for f in frames)

    def copy() -> int:
        for f in frames:
            bytes(bytearray(f))
        return octets

    def replace() -> int:
        for f in frames:
            f.replace(b"\x7d", b"\x7d\x5d")
        return octets

    baseline_copy = rate(copy, seconds)
    baseline_replace = rate(replace, seconds)

    def fcs() -> int:
        for f in frames:
            fcs16(f)
        return octets

    results: list[tuple[str, float]] = [("FCS-16 (crc_hqx, reflected)", rate(fcs, seconds))]
    for name, accm in (("0x00000000", 0), ("0xFFFFFFFF", DEFAULT_ACCM)):
        encoder = HdlcEncoder(accm)
        wire = encoder.encode_many(frames)

        def encode(encoder: HdlcEncoder = encoder) -> int:
            encoder.encode_many(frames)
            return octets

        def decode(wire: bytes = wire, accm: int = accm) -> int:
            decoder = HdlcDecoder(accm)
            got = decoder.receive_data(wire)
            assert len(got) == BATCH
            return octets

        results.append((f"encode, ACCM {name}", rate(encode, seconds)))
        results.append((f"decode, ACCM {name}", rate(decode, seconds)))

    host, module = open_pair()
    packets = [f[4:] for f in frames]
    chunk = 4096

    def link_path() -> int:
        for packet in packets:
            host.send_packet(4, packet)
        wire = host.data_to_send()
        for offset in range(0, len(wire), chunk):
            module.receive_data(wire[offset : offset + chunk])
        count = 0
        while module.next_event() is not None:
            count += 1
        assert count == BATCH
        return octets

    results.append(("PppLink send+receive (4 KiB reads)", rate(link_path, seconds)))

    print(f"baseline bytes copy    : {baseline_copy:9.1f} MB/s")
    print(f"baseline bytes.replace : {baseline_replace:9.1f} MB/s")
    print(f"{'1500-octet frames':36} {'MB/s':>9} {'/copy':>8} {'/replace':>9}")
    for name, value in results:
        print(
            f"{name:36} {value:9.1f} {value / baseline_copy:8.3f} {value / baseline_replace:9.3f}"
        )


if __name__ == "__main__":
    main()
