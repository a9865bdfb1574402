"""Faults of the simulated module (larappp.sim.faults) on the sans-IO model: what each puts
on the wire of each port, with a fake clock. The same faults through a running simulator's
control socket, on ptys and over PPP, are in test_sim_fault_control.py."""

from __future__ import annotations

from dataclasses import replace

import pytest

from larappp.sim import faults
from larappp.sim.data import DiscardDataSession
from larappp.sim.events import CallEnded, ModemLinesChanged, PortsClosed, PortsReopened
from larappp.sim.faults import FaultError
from larappp.sim.module import Module
from larappp.sim.scenario import Scenario
from larappp.sim.state import COMMAND, DATA

SCENARIO = Scenario(
    operator="europe", grant="IPV4V6", registration_delay=1.0, reboot_time=2.0,
    shutdown_delay=0.05, echo=False, escape_guard=1.0,
)
NO_CARRIER = b"\r\nNO CARRIER\r\n"


class Dte:
    """The DTE side of every port of one module, with a clock moved by hand."""

    def __init__(self, scenario: Scenario = SCENARIO) -> None:
        self.now = 100.0
        self.module = Module(scenario, ports=3, now=self.now)
        self.module.power_on(self.now)
        self.advance(scenario.registration_delay + 0.01)
        assert self.module.registered

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while (due := self.module.get_timer()) is not None and due <= end:
            self.now = max(self.now, due)
            self.module.handle_timer(self.now)
        self.now = end
        self.module.handle_timer(self.now)

    def cmd(self, line: str, port: int = 0) -> bytes:
        self.module.receive_data(port, line.encode() + b"\r", self.now)
        return self.module.data_to_send(port)

    def dial(self, cid: int, port: int) -> DiscardDataSession:
        if cid not in self.module.nvm.contexts:
            assert self.cmd(f'AT+CGDCONT={cid},"IPV4V6","apn{cid}"', port).endswith(b"OK\r\n")
        assert self.cmd(f"ATD*99***{cid}#", port).endswith(b"\r\nCONNECT\r\n")
        call = self.module.ports[port].call
        assert call is not None and isinstance(call.session, DiscardDataSession)
        return call.session

    def events(self) -> list[object]:
        out: list[object] = []
        while (event := self.module.next_event()) is not None:
            out.append(event)
        return out


@pytest.fixture
def dte() -> Dte:
    return Dte()


def test_drop_sends_no_carrier_and_nothing_else_and_keeps_the_context(dte: Dte) -> None:
    session = dte.dial(2, port=1)
    session.inject(b"\x7e\xff\x03\xc0\x21\x7e")  # the network side was talking
    assert dte.module.data_to_send(1) == b"\x7e\xff\x03\xc0\x21\x7e"
    dte.events()
    faults.drop_call(dte.module, dte.now, cid=2)
    # NO CARRIER alone: no LCP Terminate-Request (no 0x7E frame) before or after it.
    assert dte.module.data_to_send(1) == NO_CARRIER
    assert dte.module.ports[1].mode == COMMAND
    assert session.closed_reason == "network-drop"
    events = dte.events()
    assert CallEnded(1, 2, "network-drop") in events
    assert ModemLinesChanged(1, cts=True, dsr=True, dcd=False) in events  # DCD off
    assert 2 in dte.module.ram.contexts  # the PDN connection survives a dropped call
    session.inject(b"late")
    assert dte.module.data_to_send(1) == b""
    # The host can dial again at once.
    assert dte.cmd("ATD*99***2#", 1) == b"\r\nCONNECT\r\n"


def test_after_a_drop_the_port_echoes_the_hosts_frames_and_answers_at() -> None:
    dte = Dte(replace(SCENARIO, echo=True))
    assert dte.cmd("ATE1", 1) == b"ATE1\r\r\nOK\r\n"
    dte.dial(1, port=1)
    faults.drop_call(dte.module, dte.now, port=1)
    assert dte.module.data_to_send(1) == NO_CARRIER
    # The host's LCP Echo-Request, still sent in the belief the link is up, comes back.
    frame = b"\x7e\xff\x7d\x23\xc0\x21\x09\x01\x00\x08\x12\x34\x56\x78\x7e"
    dte.module.receive_data(1, frame, dte.now)
    assert dte.module.data_to_send(1) == frame
    assert dte.cmd("AT", 1) == b"AT\r\r\nOK\r\n"


@pytest.mark.parametrize(
    ("urc", "text"),
    [
        ("NW PDN DEACT", "+CGEV: NW PDN DEACT 2"),
        ("ME PDN DEACT", "+CGEV: ME PDN DEACT 2"),
        ("NW DEACT", '+CGEV: NW DEACT "IPV4V6","100.64.2.2",2'),
    ],
)
def test_deactivation_sends_cgev_on_the_control_port_and_no_carrier_on_the_call(
    dte: Dte, urc: str, text: str
) -> None:
    assert dte.cmd("AT+CGEREP=1", 0) == b"\r\nOK\r\n"
    dte.dial(2, port=1)
    assert dte.module.data_to_send(0) == b"\r\n+CGEV: ME PDN ACT 2\r\n"
    faults.deactivate_context(dte.module, dte.now, 2, urc=urc)
    assert dte.module.data_to_send(1) == NO_CARRIER
    assert dte.module.data_to_send(0) == f"\r\n{text}\r\n".encode()
    assert dte.module.ports[1].mode == COMMAND
    assert 2 not in dte.module.ram.contexts
    with pytest.raises(FaultError, match="cid 2 is not active"):
        faults.deactivate_context(dte.module, dte.now, 2)


def test_a_silent_peer_passes_nothing_either_way_until_it_talks_again(dte: Dte) -> None:
    session = dte.dial(1, port=1)
    faults.silence(dte.module, dte.now, cid=1, seconds=5.0)
    dte.module.receive_data(1, b"\x7e\xc0\x21\x09echo\x7e", dte.now)
    session.inject(b"\x7e\xc0\x21\x0areply\x7e")
    assert session.received == b"" and dte.module.data_to_send(1) == b""
    assert dte.module.counters["bytes_lost_silent"] == 19
    dte.advance(4.9)
    assert dte.module.ports[1].mode == DATA  # no NO CARRIER: the call just went quiet
    assert dte.module.data_to_send(1) == b""
    dte.advance(0.2)
    dte.module.receive_data(1, b"again", dte.now)
    session.inject(b"back")
    assert session.received == b"again" and dte.module.data_to_send(1) == b"back"
    faults.silence(dte.module, dte.now, port=1)  # until switched off
    dte.advance(3600)
    session.inject(b"x")
    assert dte.module.data_to_send(1) == b""
    faults.silence(dte.module, dte.now, port=1, on=False)
    session.inject(b"y")
    assert dte.module.data_to_send(1) == b"y"


def test_reboot_closes_the_ports_at_once_and_boots_unregistered(dte: Dte) -> None:
    assert dte.cmd("AT+CEREG=1", 0) == b"\r\nOK\r\n"
    session = dte.dial(1, port=1)
    dte.events()
    faults.reboot(dte.module, dte.now, down_for=3.0)
    assert session.closed_reason == "reboot"
    events = dte.events()
    assert PortsClosed("reboot", dte.now + 3.0) in events
    assert ModemLinesChanged(1, cts=False, dsr=False, dcd=False) in events
    assert dte.module.data_to_send(1) == b"" and dte.module.data_to_send(0) == b""
    dte.advance(2.9)
    assert dte.module.state == "rebooting"
    dte.advance(0.2)
    assert PortsReopened() in dte.events()
    assert dte.module.ports[1].mode == COMMAND
    # Booted with the power-on profile (no +CEREG URCs) and not registered yet.
    assert dte.cmd("AT+CEREG?", 0) == b"\r\n+CEREG: 0,2\r\n\r\nOK\r\n"
    assert not dte.module.ram.contexts
    dte.advance(SCENARIO.registration_delay + 0.01)
    assert dte.module.registered


def test_unplug_takes_the_ports_away_for_a_while_and_keeps_the_module_registered(dte: Dte) -> None:
    session = dte.dial(2, port=1)
    dte.events()
    faults.unplug(dte.module, dte.now, 3.0)
    assert session.closed_reason == "unplugged"
    events = dte.events()
    assert PortsClosed("unplugged", dte.now + 3.0) in events
    assert ModemLinesChanged(0, cts=False, dsr=False, dcd=False) in events
    assert dte.module.data_to_send(1) == b""
    assert dte.cmd("AT", 0) == b""  # nobody there to answer
    assert 2 not in dte.module.ram.contexts  # the call's context went as on a DTR drop
    with pytest.raises(FaultError, match="unplugged"):
        faults.drop_call(dte.module, dte.now)
    dte.advance(3.1)
    assert PortsReopened() in dte.events()
    assert dte.module.modem_lines(0) == ModemLinesChanged(0, cts=True, dsr=True, dcd=False)
    assert dte.module.registered and 1 in dte.module.ram.contexts
    assert dte.cmd("AT", 0) == b"\r\nOK\r\n"


def test_radio_off_reports_cereg_0_and_ends_the_calls_then_radio_on_registers(dte: Dte) -> None:
    assert dte.cmd("AT+CEREG=1", 0) == b"\r\nOK\r\n"
    dte.dial(1, port=1)
    dte.dial(3, port=2)
    faults.radio_off(dte.module, dte.now)
    assert dte.module.data_to_send(1) == NO_CARRIER
    assert dte.module.data_to_send(2) == NO_CARRIER
    assert b"+CEREG: 0\r\n" in dte.module.data_to_send(0)
    assert dte.cmd("AT+CFUN?", 0) == b"\r\n+CFUN: 0\r\n\r\nOK\r\n"
    assert dte.cmd("ATD*99***1#", 1) == b"\r\nNO CARRIER\r\n"
    faults.radio_on(dte.module, dte.now)
    assert dte.module.data_to_send(0) == b"\r\n+CEREG: 2\r\n"
    dte.advance(SCENARIO.registration_delay + 0.01)
    assert dte.module.data_to_send(0) == b"\r\n+CEREG: 1\r\n"


def test_faults_name_what_is_missing(dte: Dte) -> None:
    with pytest.raises(FaultError, match="no data call is up on cid 1"):
        faults.drop_call(dte.module, dte.now, cid=1)
    with pytest.raises(FaultError, match="port 7 does not exist"):
        faults.silence(dte.module, dte.now, port=7)
    with pytest.raises(FaultError, match="port 0 has no data call"):
        faults.drop_call(dte.module, dte.now, port=0)
    with pytest.raises(FaultError, match="form 'NW GONE' is unknown"):
        faults.deactivate_context(dte.module, dte.now, 1, urc="NW GONE")
    faults.reboot(dte.module, dte.now)
    with pytest.raises(FaultError, match="not running now"):
        faults.radio_off(dte.module, dte.now)
