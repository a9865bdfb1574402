"""The escape from online data mode ("+++", app note §9.1.4) in the AT core."""

from __future__ import annotations

import pytest

from larappp.proto.at.core import AtClient, AtUsageError, ResponseReceived


def _connected() -> AtClient:
    client = AtClient()
    client.send("ATD*99***1#", now=0.0, timeout=30.0)
    client.receive_data(b"\r\nCONNECT\r\n\x7e\xff\x7d\x23")
    event = client.next_event()
    assert isinstance(event, ResponseReceived) and event.final.kind == "connect"
    assert client.data_mode
    return client


@pytest.mark.parametrize("bytewise", [False, True])
def test_escape_is_answered_by_ok(bytewise: bool) -> None:
    client = _connected()
    client.take_leftover()
    assert client.send_escape(now=5.0, timeout=2.0) == b"+++"
    answer = b"\r\nOK\r\n"
    chunks = [answer[i : i + 1] for i in range(len(answer))] if bytewise else [answer]
    for chunk in chunks:
        client.receive_data(chunk)
    event = client.next_event()
    assert isinstance(event, ResponseReceived)
    assert event.command == "+++" and event.final.ok
    assert not client.data_mode
    # Online command mode: ATH is an ordinary command now.
    assert client.send("ATH", now=6.0, timeout=2.0) == b"ATH\r"


def test_escape_times_out() -> None:
    client = _connected()
    client.send_escape(now=5.0, timeout=2.0)
    assert client.get_timer() == 7.0
    client.handle_timer(7.5)
    event = client.next_event()
    assert event is not None and type(event).__name__ == "CommandTimedOut"


def test_escape_refused_while_a_command_waits() -> None:
    client = AtClient()
    client.send("AT", now=0.0, timeout=1.0)
    with pytest.raises(AtUsageError):
        client.send_escape(now=0.0, timeout=1.0)
