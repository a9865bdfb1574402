"""Every PPP link event reads as a sentence in a log or the journal: no Python repr, no user name."""

from __future__ import annotations

import typing
from ipaddress import IPv4Address

import pytest

from larappp.proto.ppp import events as ev

SAMPLES: list[ev.LinkEvent] = [
    ev.LinkOpened(1500, 1400, 0x1234, True, True, None, "pap"),
    ev.AuthSucceeded("chap-md5", "alice@secret", False),
    ev.AuthFailed("pap", "alice@secret", False, "the peer sent Authenticate-Nak"),
    ev.IpcpOpened(IPv4Address("10.0.0.2"), None, ()),
    ev.Ipv6cpOpened(bytes(range(1, 9)), None),
    ev.NetworkProtocolClosed("ipv6cp", "the peer sent Terminate-Request"),
    ev.ProtocolRejected(0x8057, "IPV6CP"),
    ev.PacketReceived(4, b"\x45" * 60),
    ev.EchoTimedOut(3),
    ev.LinkLooped("our magic number came back"),
    ev.ModemLeftDataMode("NO CARRIER"),
    ev.LinkWentDown("the peer sent Configure-Request"),
    ev.LinkTerminated("echo timeout", "echo-timeout"),
]


def test_the_samples_cover_every_event_type() -> None:
    assert {type(e) for e in SAMPLES} == set(typing.get_args(ev.LinkEvent))


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).__name__)
def test_an_event_reads_without_repr_or_user_name(event: ev.LinkEvent) -> None:
    text = ev.describe(event)
    assert text and "\n" not in text
    assert f"{type(event).__name__}(" not in text and "='" not in text, text
    assert "alice" not in text


def test_the_text_carries_what_a_person_needs() -> None:
    assert ev.describe(ev.ModemLeftDataMode("NO CARRIER")) == "the module left data mode: NO CARRIER between the PPP frames"
    assert "fe80::102:304:506:708" in ev.describe(SAMPLES[4])
    assert "echo-timeout" in ev.describe(SAMPLES[-1])
    with pytest.raises(TypeError):
        ev.describe("not an event")  # type: ignore[arg-type]
