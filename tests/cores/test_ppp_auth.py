"""PAP and CHAP-MD5, both roles, with retransmissions and timeouts driven by a fake clock."""

from __future__ import annotations

import hashlib
import random

import pytest

from larappp.proto.ppp.auth import (
    AuthProcess,
    AuthResult,
    ChapAuthenticator,
    ChapPeer,
    PapAuthenticator,
    PapPeer,
    chap_md5_response,
)

SECRETS = {"alice": "s3cret-pw"}


def exchange(a: AuthProcess, b: AuthProcess, now: float, drop: int = 0) -> int:
    """Carry packets between two processes until quiet; drop the first `drop` packets."""
    moved = 0
    for _ in range(50):
        packets = [(b, p) for p in a.packets_to_send()] + [(a, p) for p in b.packets_to_send()]
        if not packets:
            return moved
        for target, packet in packets:
            moved += 1
            if drop > 0:
                drop -= 1
                continue
            target.receive_packet(packet, now)
    raise AssertionError("never quiet")


def run(a: AuthProcess, b: AuthProcess, until: float, drop: int = 0) -> float:
    now = 0.0
    a.start(now)
    b.start(now)
    exchange(a, b, now, drop)
    while True:
        deadlines = [t for t in (a.get_timer(), b.get_timer()) if t is not None]
        if not deadlines or min(deadlines) > until:
            return now
        now = min(deadlines)
        a.handle_timer(now)
        b.handle_timer(now)
        exchange(a, b, now)


@pytest.mark.parametrize("method", ["pap", "chap"])
@pytest.mark.parametrize("drop", [0, 1, 3])
def test_success_with_losses(method: str, drop: int) -> None:
    peer: AuthProcess
    authenticator: AuthProcess
    if method == "pap":
        peer = PapPeer("alice", "s3cret-pw")
        authenticator = PapAuthenticator(SECRETS.get)
    else:
        peer = ChapPeer("alice", "s3cret-pw")
        authenticator = ChapAuthenticator("LARA-R6", SECRETS.get, random.Random(1))
    run(peer, authenticator, until=60, drop=drop)
    assert peer.result is not None
    assert peer.result == AuthResult(method, False, True, "alice", peer.result.message)
    assert authenticator.result is not None and authenticator.result.succeeded
    assert authenticator.result.username == "alice" and authenticator.result.as_authenticator
    assert peer.get_timer() is None and authenticator.get_timer() is None


@pytest.mark.parametrize("method", ["pap", "chap"])
@pytest.mark.parametrize(("user", "password"), [("alice", "wrong"), ("mallory", "s3cret-pw")])
def test_refused_credentials(method: str, user: str, password: str) -> None:
    peer: AuthProcess
    authenticator: AuthProcess
    if method == "pap":
        peer = PapPeer(user, password)
        authenticator = PapAuthenticator(SECRETS.get)
    else:
        peer = ChapPeer(user, password)
        authenticator = ChapAuthenticator("LARA-R6", SECRETS.get, random.Random(1))
    run(peer, authenticator, until=60)
    assert peer.result is not None and not peer.result.succeeded
    assert "refused" in peer.result.message
    assert authenticator.result is not None and not authenticator.result.succeeded
    assert authenticator.result.username == user
    for text in (repr(peer), repr(authenticator), repr(peer.result), repr(authenticator.result)):
        assert password not in text and "s3cret" not in text


def test_pap_peer_gives_up_after_max_transmits() -> None:
    peer = PapPeer("alice", "s3cret-pw")
    now = 0.0
    peer.start(now)
    sent = peer.packets_to_send()
    while peer.result is None:
        deadline = peer.get_timer()
        assert deadline is not None
        now = deadline
        peer.handle_timer(now)
        sent += peer.packets_to_send()
    assert len(sent) == 10 and now == pytest.approx(30.0)
    assert len({packet[1] for packet in sent}) == 10  # RFC 1334: a new identifier each time
    assert "none of 10" in peer.result.message


def test_pap_request_wire_format_and_repeated_answers() -> None:
    peer = PapPeer("alice", "s3cret-pw")
    peer.start(0.0)
    (request,) = peer.packets_to_send()
    assert request == bytes.fromhex("01010014") + b"\x05alice\x09s3cret-pw"
    authenticator = PapAuthenticator(SECRETS.get)
    authenticator.start(0.0)
    authenticator.receive_packet(request, 0.1)
    authenticator.receive_packet(request, 0.2)  # a retransmission gets the same answer
    ack1, ack2 = authenticator.packets_to_send()
    assert ack1 == ack2 == bytes.fromhex("0201000d") + b"\x08Login ok"
    # malformed requests are ignored
    for bad in (b"\x01\x02\x00\x05\x09", b"\x01\x02\x00\x06\x01a", b"\x01"):
        authenticator.receive_packet(bad, 0.3)
    assert authenticator.packets_to_send() == []


def test_pap_authenticator_times_out_without_a_request() -> None:
    authenticator = PapAuthenticator(SECRETS.get)
    authenticator.start(0.0)
    assert authenticator.get_timer() == 30.0
    authenticator.handle_timer(29.9)
    assert authenticator.result is None
    authenticator.handle_timer(30.0)
    assert authenticator.result is not None and not authenticator.result.succeeded


def test_chap_md5_value_and_wire_format() -> None:
    challenge = bytes(range(16))
    expected = hashlib.md5(b"\x07" + b"s3cret-pw" + challenge).digest()
    assert chap_md5_response(7, b"s3cret-pw", challenge) == expected
    peer = ChapPeer("alice", "s3cret-pw")
    peer.start(0.0)
    peer.receive_packet(b"\x01\x07\x00\x1c\x10" + challenge + b"LARA-R6", 0.1)
    (response,) = peer.packets_to_send()
    assert response == b"\x02\x07\x00\x1a\x10" + expected + b"alice"
    peer.receive_packet(b"\x03\x06\x00\x04", 0.2)  # Success for another identifier: ignored
    assert peer.result is None
    peer.receive_packet(b"\x03\x07\x00\x0bWelcome", 0.2)
    assert peer.result is not None and peer.result.succeeded and peer.result.message == "Welcome"


def test_chap_authenticator_retransmits_with_new_identifiers_then_gives_up() -> None:
    authenticator = ChapAuthenticator("LARA-R6", SECRETS.get, random.Random(2))
    authenticator.start(0.0)
    now = 0.0
    challenges = authenticator.packets_to_send()
    while authenticator.result is None:
        deadline = authenticator.get_timer()
        assert deadline is not None
        now = deadline
        authenticator.handle_timer(now)
        challenges += authenticator.packets_to_send()
    assert len(challenges) == 10 and len({c[1] for c in challenges}) == 10
    assert {c[5:21] for c in challenges} == {challenges[0][5:21]}
    assert "none of 10 CHAP Challenges" in authenticator.result.message


def test_chap_authenticator_repeats_its_verdict_and_ignores_stale_responses() -> None:
    authenticator = ChapAuthenticator("LARA-R6", SECRETS.get, random.Random(2))
    peer = ChapPeer("alice", "s3cret-pw")
    authenticator.start(0.0)
    (challenge,) = authenticator.packets_to_send()
    peer.receive_packet(challenge, 0.1)
    (response,) = peer.packets_to_send()
    stale = bytes((response[0], (response[1] - 1) & 0xFF)) + response[2:]
    authenticator.receive_packet(stale, 0.2)
    assert authenticator.packets_to_send() == [] and authenticator.result is None
    authenticator.receive_packet(response, 0.2)
    authenticator.receive_packet(response, 0.3)
    verdicts = authenticator.packets_to_send()
    assert [v[0] for v in verdicts] == [3, 3]


def test_chap_peer_times_out_without_a_challenge() -> None:
    peer = ChapPeer("alice", "s3cret-pw")
    peer.start(0.0)
    peer.handle_timer(30.0)
    assert peer.result is not None and not peer.result.succeeded
    assert "no CHAP Challenge" in peer.result.message
