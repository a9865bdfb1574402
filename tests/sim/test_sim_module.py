"""The simulated LARA-R6 (sans-IO module model) driven with raw bytes and a fake clock."""

from __future__ import annotations

from dataclasses import replace

import pytest

from larappp.sim.atcmd import LineAssembler, split_commands, split_params
from larappp.sim.commands.pdp import dotted_ipv6
from larappp.sim.data import DiscardDataSession
from larappp.sim.escape import EscapeDetector
from larappp.sim.events import CallEnded, CallStarted, ModemLinesChanged, PortsClosed, PortsReopened
from larappp.sim.module import Module
from larappp.sim.scenario import Scenario
from larappp.sim.state import COMMAND, DATA, ONLINE_COMMAND

BASE = Scenario(
    operator="europe", grant="IPV4V6", registration_delay=1.0, reboot_time=2.0,
    shutdown_delay=0.05, echo=False, escape_guard=1.0,
)


class Dte:
    """The test's end of the module: writes commands at a fake time, reads what comes back."""

    def __init__(self, scenario: Scenario = BASE, *, ports: int = 3, bytewise: bool = False) -> None:
        self.now = 100.0
        self.module = Module(scenario, ports=ports, now=self.now)
        self.module.power_on(self.now)
        self.bytewise = bytewise

    def advance(self, seconds: float) -> None:
        """Move the clock, running every timer due on the way (as the asyncio driver would)."""
        end = self.now + seconds
        while True:
            due = self.module.get_timer()
            if due is None or due > end:
                break
            self.now = max(self.now, due)
            self.module.handle_timer(self.now)
            if self.module.get_timer() == due:
                # A strict deadline (escape gap): step just past it.
                self.now = due + 1e-6
                self.module.handle_timer(self.now)
        self.now = end
        self.module.handle_timer(self.now)

    def write(self, data: bytes, port: int = 0) -> None:
        if self.bytewise:
            for i in range(len(data)):
                self.module.receive_data(port, data[i : i + 1], self.now)
        else:
            self.module.receive_data(port, data, self.now)

    def read(self, port: int = 0) -> bytes:
        return self.module.data_to_send(port)

    def cmd(self, line: str, port: int = 0) -> str:
        self.write(line.encode() + b"\r", port)
        return self.read(port).decode("latin-1")

    def events(self) -> list[object]:
        out: list[object] = []
        while (event := self.module.next_event()) is not None:
            out.append(event)
        return out

    def register(self) -> None:
        self.advance(BASE.registration_delay + 0.01)
        assert self.module.registered


@pytest.fixture(params=["whole", "bytewise"])
def dte(request: pytest.FixtureRequest) -> Dte:
    return Dte(bytewise=request.param == "bytewise")


def session(dte: Dte, port: int = 0) -> DiscardDataSession:
    call = dte.module.ports[port].call
    assert call is not None
    assert isinstance(call.session, DiscardDataSession)
    return call.session


# -- the module-side parser ------------------------------------------------------------------
def test_split_commands_basic_and_extended() -> None:
    cmds = split_commands('E0+CMEE=2;+CGDCONT=1,"IP","a;b";S2?&D2')
    assert [(c.name, c.kind, c.args) for c in cmds] == [
        ("E", "action", "0"), ("+CMEE", "set", "2"), ("+CGDCONT", "set", '1,"IP","a;b"'),
        ("S2", "read", ""), ("&D", "action", "2"),
    ]
    assert split_commands("+CGDCONT=?")[0].kind == "test"
    assert split_commands("D*99***1#")[0].args == "*99***1#"


def test_split_params_quotes() -> None:
    params = split_params('1,"IPV4V6","my,apn",,7')
    assert [(p.text, p.quoted) for p in params] == [
        ("1", False), ("IPV4V6", True), ("my,apn", True), ("", False), ("7", False),
    ]


def test_line_assembler_prefix_backspace_and_lf() -> None:
    assembler = LineAssembler()
    got = [assembler.feed_byte(b) for b in b"\nxxAT+CGMX\x08M\r\nat\r"]
    assert [g for g in got if g is not None] == ["+CGMM", ""]


# -- basic behaviour -----------------------------------------------------------------------------
def test_at_ok_and_echo_default_after_boot() -> None:
    dte = Dte(replace(BASE, echo=True))
    assert dte.cmd("AT") == "AT\r\r\nOK\r\n"
    assert dte.cmd("ATE0") == "ATE0\r\r\nOK\r\n"
    assert dte.cmd("AT") == "\r\nOK\r\n"


def test_identification(dte: Dte) -> None:
    assert dte.cmd("ATI") == "\r\nLARA-R6001D\r\n\r\nOK\r\n"
    assert dte.cmd("ATI0") == "\r\nLARA-R6001D\r\n\r\nOK\r\n"
    assert dte.cmd("AT+CGMM") == "\r\nLARA-R6001D\r\n\r\nOK\r\n"
    assert "OK" in dte.cmd("AT+CGMR")


def test_cmee_formats(dte: Dte) -> None:
    # CMEE=0 after boot: plain ERROR.
    assert dte.cmd("AT+UMNOPROF=100") == "\r\nERROR\r\n"
    dte.cmd("AT+CMEE=1")
    assert dte.cmd("AT+UMNOPROF=100") == "\r\n+CME ERROR: 3\r\n"
    dte.cmd("AT+CMEE=2")
    assert dte.cmd("AT+UMNOPROF=100") == "\r\n+CME ERROR: operation not allowed\r\n"
    assert dte.cmd("AT+NOPE") == "\r\n+CME ERROR: operation not supported\r\n"


def test_several_commands_on_one_line(dte: Dte) -> None:
    assert dte.cmd("AT+CMEE=2;+CGMM;+CMEE?") == "\r\nLARA-R6001D\r\n+CMEE: 2\r\n\r\nOK\r\n"


# -- NVM versus RAM ------------------------------------------------------------------------------
def test_nvm_survives_reboot_and_ram_resets() -> None:
    dte = Dte()
    assert dte.cmd("AT+CFUN=0") == "\r\nOK\r\n"
    assert dte.cmd("AT+UMNOPROF=100") == "\r\nOK\r\n"
    dte.cmd('AT+CGDCONT=2,"IPV4V6","apn2"')
    dte.cmd("AT+UDCONF=19,2,0")
    dte.cmd('AT+UEMBPF=1,"6000-6200"')
    dte.cmd("AT+CMEE=2;E1;+CVHU=0")
    assert dte.cmd("AT+CFUN=16") == "AT+CFUN=16\r\r\nOK\r\n"
    dte.advance(0.06)
    closed = [e for e in dte.events() if isinstance(e, PortsClosed)]
    assert len(closed) == 1
    assert closed[0].reason == "reboot"
    assert closed[0].reopen_at == pytest.approx(dte.now + 2.0, abs=0.02)
    assert dte.module.state == "rebooting"
    dte.write(b"AT\r")
    assert dte.read() == b""
    dte.advance(2.0)
    assert any(isinstance(e, PortsReopened) for e in dte.events())
    # RAM: echo back to the boot default (off in this scenario), CMEE 0, CVHU 1, CFUN 1.
    assert dte.cmd("AT+CMEE?") == "\r\n+CMEE: 0\r\n\r\nOK\r\n"
    assert dte.cmd("AT+CVHU?") == "\r\n+CVHU: 1\r\n\r\nOK\r\n"
    assert dte.cmd("AT+CFUN?") == "\r\n+CFUN: 1\r\n\r\nOK\r\n"
    # NVM kept.
    assert dte.cmd("AT+UMNOPROF?") == "\r\n+UMNOPROF: 100\r\n\r\nOK\r\n"
    assert dte.cmd("AT+UDCONF=19") == "\r\n+UDCONF: 19,2,0\r\n\r\nOK\r\n"
    assert '+CGDCONT: 2,"IPV4V6","apn2","",0,0,0,0' in dte.cmd("AT+CGDCONT?")
    assert dte.module.counters["reboots"] == 1


def test_echo_on_after_reboot_by_default() -> None:
    dte = Dte(replace(BASE, echo=True))
    dte.cmd("ATE0")
    dte.cmd("AT+CFUN=16")
    dte.advance(3)
    assert dte.cmd("AT") == "AT\r\r\nOK\r\n"


def test_umnoprof_needs_radio_off() -> None:
    dte = Dte()
    dte.cmd("AT+CMEE=1")
    assert dte.cmd("AT+UMNOPROF=100") == "\r\n+CME ERROR: 3\r\n"
    dte.cmd("AT+CFUN=4")
    assert dte.cmd("AT+UMNOPROF=100") == "\r\nOK\r\n"


def test_uembpf_applied_only_after_reboot() -> None:
    dte = Dte()
    assert dte.cmd('AT+UEMBPF=1,"6000-6200"') == "\r\nOK\r\n"
    # The read shows the configured value; the data side keeps the applied one.
    assert dte.cmd("AT+UEMBPF?") == '\r\n+UEMBPF: 1,"6000-6200"\r\n\r\nOK\r\n'
    assert dte.module.applied_range is None
    dte.cmd("AT+CFUN=16")
    dte.advance(3)
    assert dte.module.applied_range == (6000, 6200)
    assert dte.cmd("AT+UEMBPF?") == '\r\n+UEMBPF: 1,"6000-6200"\r\n\r\nOK\r\n'
    dte.cmd("AT+UEMBPF=0")
    assert dte.module.applied_range == (6000, 6200)
    dte.cmd("AT+CMEE=1")
    assert dte.cmd('AT+UEMBPF=1,"7000-6000"') == "\r\n+CME ERROR: 50\r\n"


# -- registration --------------------------------------------------------------------------------
def test_cereg_urc_after_registration_delay(dte: Dte) -> None:
    dte.cmd("AT+CEREG=2")
    assert dte.cmd("AT+CEREG?") == "\r\n+CEREG: 2,2\r\n\r\nOK\r\n"
    dte.advance(0.5)
    assert dte.read() == b""
    dte.advance(0.6)
    assert dte.read() == b'\r\n+CEREG: 1,"5C0D","01F4A203",7\r\n'
    assert dte.cmd("AT+COPS?") == '\r\n+COPS: 0,0,"I TIM",7\r\n\r\nOK\r\n'
    dte.cmd("AT+COPS=3,2")
    assert dte.cmd("AT+COPS?") == '\r\n+COPS: 0,2,"22201",7\r\n\r\nOK\r\n'
    dte.cmd("AT+CFUN=0")
    assert dte.cmd("AT+COPS?") == "\r\n+COPS: 0\r\n\r\nOK\r\n"


def test_cfun1_registers_again_with_urc() -> None:
    dte = Dte()
    dte.cmd("AT+CEREG=1")
    dte.cmd("AT+CFUN=4")
    assert dte.cmd("AT+CFUN=1") == "\r\nOK\r\n\r\n+CEREG: 2\r\n"
    dte.advance(1.01)
    assert dte.read() == b"\r\n+CEREG: 1\r\n"


def test_roaming_registers_with_stat_5() -> None:
    dte = Dte(replace(BASE, operator="roaming", grant="IP"))
    dte.cmd("AT+CEREG=1")
    dte.advance(1.01)
    assert dte.read() == b"\r\n+CEREG: 5\r\n"
    dte.cmd("AT+COPS=3,2")
    assert '"26201"' in dte.cmd("AT+COPS?")


def test_never_register() -> None:
    dte = Dte(replace(BASE, never_register=True))
    dte.advance(100)
    assert not dte.module.registered
    assert dte.cmd("AT+CEREG?") == "\r\n+CEREG: 0,2\r\n\r\nOK\r\n"
    dte.cmd('AT+CGDCONT=1,"IP","a"')
    assert dte.cmd("ATD*99***1#") == "\r\nNO CARRIER\r\n"


# -- contexts ------------------------------------------------------------------------------------
def test_cgdcont_read_awkward_ipv4v6_format() -> None:
    dte = Dte()
    dte.cmd("AT+CFUN=0")
    dte.cmd('AT+CGDCONT=1,"IPV4V6","internet"')
    dte.cmd("AT+CFUN=1")
    assert dte.cmd("AT+CGDCONT?") == '\r\n+CGDCONT: 1,"IPV4V6","internet","",0,0,0,0\r\n\r\nOK\r\n'
    dte.register()
    v6 = dotted_ipv6(dte.module.ram.contexts[1].addresses.ipv6)
    assert len(v6.split(".")) == 16
    assert dte.cmd("AT+CGDCONT?") == (
        f'\r\n+CGDCONT: 1,"IPV4V6","internet","100.64.1.2 {v6}",0,0,0,0\r\n\r\nOK\r\n'
    )
    assert v6.startswith("32.1.13.184.")  # 2001:db8:...


@pytest.mark.parametrize(
    ("grant", "requested", "shown", "address_parts"),
    [("IPV6", "IPV4V6", "IPV6", 16), ("IP", "IPV4V6", "IP", 4), ("IPV4V6", "IP", "IP", 4)],
)
def test_cgdcont_shows_granted_type(grant: str, requested: str, shown: str, address_parts: int) -> None:
    dte = Dte(replace(BASE, grant=grant))
    dte.cmd(f'AT+CGDCONT=1,"{requested}","apn"')
    dte.register()
    line = dte.cmd("AT+CGDCONT?").split("\r\n")[1]
    fields = line.split(",")
    assert fields[1] == f'"{shown}"'
    assert len(fields[3].strip('"').split(".")) == address_parts


def test_cgcontrdp_format_dual_stack() -> None:
    dte = Dte()
    dte.cmd('AT+CGDCONT=1,"IPV4V6","internet"')
    dte.register()
    lines = dte.cmd("AT+CGCONTRDP=1").split("\r\n")
    assert lines[1] == (
        '+CGCONTRDP: 1,5,"internet","100.64.1.2.255.255.255.0","100.64.1.1",'
        '"198.51.100.53","198.51.100.54","","",0,0,1500'
    )
    v6 = lines[2].split(",")
    assert v6[:3] == ["+CGCONTRDP: 1", "5", '"internet"']
    assert len(v6[3].strip('"').split(".")) == 32
    assert v6[3].strip('"').endswith(".255.255.255.255.255.255.255.255.0.0.0.0.0.0.0.0")
    assert len(v6[5].strip('"').split(".")) == 16
    assert v6[-1] == "1500"
    assert lines[3:] == ["", "OK", ""]


def test_cgact_activate_deactivate_and_unique_apn() -> None:
    dte = Dte()
    dte.cmd("AT+CMEE=1")
    dte.cmd('AT+CGDCONT=1,"IPV4V6","one";+CGDCONT=2,"IP","two";+CGDCONT=3,"IP","one"')
    dte.register()
    assert dte.cmd("AT+CGACT?") == "\r\n+CGACT: 1,1\r\n+CGACT: 2,0\r\n+CGACT: 3,0\r\n\r\nOK\r\n"
    assert dte.cmd("AT+CGACT=1,2") == "\r\nOK\r\n"
    # App note §4.1.3: a different and unique APN per context.
    assert dte.cmd("AT+CGACT=1,3") == "\r\n+CME ERROR: 148\r\n"
    assert dte.cmd("AT+CGACT=0,2") == "\r\nOK\r\n"
    assert "+CGACT: 2,0" in dte.cmd("AT+CGACT?")


def test_ipv6_only_network_rejects_ipv4_only_request() -> None:
    dte = Dte(replace(BASE, grant="IPV6"))
    dte.cmd("AT+CMEE=1")
    dte.cmd('AT+CGDCONT=2,"IP","two"')
    dte.register()
    assert dte.cmd("AT+CGACT=1,2") == "\r\n+CME ERROR: 132\r\n"


# -- XLAT ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("operator", "active"), [("tmobile-us", True), ("europe", False), ("roaming", False)])
def test_xlat_only_after_reboot_and_only_on_tmobile(operator: str, active: bool) -> None:
    dte = Dte(replace(BASE, operator=operator, grant="IPV6"))
    dte.register()
    dte.cmd("AT+CFUN=0")
    assert dte.cmd("AT+UDCONF=66,4,1") == "\r\nOK\r\n"
    assert dte.cmd("AT+UDCONF=66") == "\r\n+UDCONF: 66,4,1\r\n\r\nOK\r\n"
    dte.cmd("AT+CFUN=1")
    dte.register()
    assert not dte.module.xlat_active  # not before the reboot
    dte.cmd("AT+CFUN=16")
    dte.advance(3)
    dte.register()
    assert dte.module.xlat_active is active
    dte.cmd("AT+CMEE=1")
    answer = dte.cmd('AT+UPING="www.google.com"')
    # App note §2.4.1: no ping in an IPv6 context; XLAT gives IPv4 on T-Mobile.
    assert answer == ("\r\nOK\r\n" if active else "\r\n+CME ERROR: 3\r\n")


def test_xlat_call_offers_clat_ipv4() -> None:
    dte = Dte(replace(BASE, operator="tmobile-us", grant="IPV6"))
    dte.cmd("AT+UDCONF=66,4,1;+CFUN=16")
    dte.advance(3)
    dte.register()
    assert dte.cmd("ATD*99***1#") == "\r\nCONNECT\r\n"
    assert session(dte).call.xlat_ipv4 == "192.0.0.2"


# -- UPING, UDNSRN and friends ----------------------------------------------------------------
def test_uping_urcs_like_the_app_note() -> None:
    dte = Dte()
    dte.register()
    assert dte.cmd('AT+UPING="www.google.com"') == "\r\nOK\r\n"
    dte.advance(1)
    urcs = dte.read().decode().split("\r\n")
    urcs = [u for u in urcs if u]
    assert len(urcs) == 4
    for i, urc in enumerate(urcs, 1):
        assert urc.startswith(f'+UUPING: {i},32,"www.google.com","216.239.59.147",')


def test_udnsrn_and_misc_commands() -> None:
    dte = Dte()
    dte.register()
    assert dte.cmd('AT+UDNSRN=0,"www.google.com"') == '\r\n+UDNSRN: "216.239.59.147"\r\n\r\nOK\r\n'
    assert dte.cmd('AT+UAUTHREQ=1,1,"user","secret"') == "\r\nOK\r\n"
    assert "secret" not in dte.cmd("AT+UAUTHREQ?")
    for line in ("AT&D2", "ATS2=43", "AT+CSCON=1", "AT+ULWM2M=1", "AT+CVHU=0", "AT+COPS=0"):
        assert dte.cmd(line) == "\r\nOK\r\n", line
    assert dte.cmd("ATS2?") == "\r\n043\r\n\r\nOK\r\n"
    assert dte.cmd("AT+ULWM2M?") == "\r\n+ULWM2M: 1\r\n\r\nOK\r\n"


# -- dial and data mode -------------------------------------------------------------------------
def test_dial_rules(dte: Dte) -> None:
    assert dte.cmd("ATD*99***7#") == "\r\nERROR\r\n"  # cid undefined
    assert dte.cmd("ATD*99***1#") == "\r\nNO CARRIER\r\n"  # not registered
    dte.register()
    assert dte.cmd("ATD*99***1#") == "\r\nCONNECT\r\n"
    assert dte.module.ports[0].mode == DATA
    events = dte.events()
    assert CallStarted(0, 1) in events
    assert ModemLinesChanged(0, cts=True, dsr=True, dcd=True) in events


def test_fourth_dial_refused() -> None:
    dte = Dte(ports=4)
    for cid in (1, 2, 3, 4):
        dte.cmd(f'AT+CGDCONT={cid},"IP","apn{cid}"')
    dte.register()
    for port, cid in enumerate((1, 2, 3)):
        assert dte.cmd(f"ATD*99***{cid}#", port=port) == "\r\nCONNECT\r\n"
    # App note §4.1.3: up to 3 PPP instances at once.
    assert dte.cmd("ATD*99***4#", port=3) == "\r\nNO CARRIER\r\n"
    assert dte.module.counters["dials_refused"] == 1


def test_data_goes_to_session_and_back() -> None:
    dte = Dte()
    dte.register()
    dte.cmd("ATD*99***1#")
    dte.write(b"\x7e\xff\x03hello\x7e")
    assert session(dte).received == b"\x7e\xff\x03hello\x7e"
    session(dte).inject(b"\x7eworld\x7e")
    assert dte.read() == b"\x7eworld\x7e"
    # AT is data in data mode: no echo, no answer.
    dte.write(b"AT\r")
    assert dte.read() == b""
    assert session(dte).received.endswith(b"AT\r")


def test_bytes_after_connect_in_same_chunk_are_data() -> None:
    dte = Dte()
    dte.register()
    dte.write(b"ATD*99***1#\r\x7e\x01\x02")
    assert dte.read() == b"\r\nCONNECT\r\n"
    assert session(dte).received == b"\x7e\x01\x02"


def test_session_hangup_gives_no_carrier_and_deactivates() -> None:
    dte = Dte()
    dte.cmd('AT+CGDCONT=2,"IPV4V6","two"')
    dte.register()
    dte.cmd("ATD*99***2#", port=1)
    assert 2 in dte.module.ram.contexts  # §4.1.3: the dial activated it
    session(dte, 1).hangup("lcp-terminate")
    assert dte.read(1) == b"\r\nNO CARRIER\r\n"
    assert dte.module.ports[1].mode == COMMAND
    assert 2 not in dte.module.ram.contexts  # and its end deactivated it
    assert session_closed(dte) == []
    assert CallEnded(1, 2, "lcp-terminate") in dte.events()


def session_closed(dte: Dte) -> list[int]:
    return [c.port for c in dte.module.calls]


def test_cid1_default_bearer_stays_active_after_ppp() -> None:
    dte = Dte()
    dte.register()
    dte.cmd("ATD*99***1#")
    session(dte).hangup()
    assert dte.read() == b"\r\nNO CARRIER\r\n"
    assert 1 in dte.module.ram.contexts


def test_dtr_drop_ends_call() -> None:
    dte = Dte()
    dte.cmd('AT+CGDCONT=2,"IP","two"')
    dte.register()
    dte.module.set_dtr(0, True, dte.now)
    dte.cmd("ATD*99***2#")
    s = session(dte)
    dte.module.set_dtr(0, False, dte.now)
    assert dte.read() == b"\r\nNO CARRIER\r\n"
    assert s.closed_reason == "dtr"
    assert 2 not in dte.module.ram.contexts
    assert ModemLinesChanged(0, cts=True, dsr=True, dcd=False) in dte.events()


def test_dtr_ignored_with_amp_d0() -> None:
    dte = Dte()
    dte.register()
    dte.module.set_dtr(0, True, dte.now)
    dte.cmd("AT&D0")
    dte.cmd("ATD*99***1#")
    dte.module.set_dtr(0, False, dte.now)
    assert dte.module.ports[0].mode == DATA


# -- "+++" ---------------------------------------------------------------------------------------
def dialled(bytewise: bool = False) -> Dte:
    dte = Dte(bytewise=bytewise)
    dte.cmd('AT+CGDCONT=2,"IPV4V6","two"')
    dte.register()
    assert dte.cmd("ATD*99***2#") == "\r\nCONNECT\r\n"
    return dte


@pytest.mark.parametrize("bytewise", [False, True])
def test_escape_accepted_after_guard_silence(bytewise: bool) -> None:
    dte = dialled(bytewise)
    dte.write(b"payload")
    dte.advance(1.0)
    dte.write(b"+++")
    dte.advance(0.9)
    assert dte.read() == b""
    dte.advance(0.2)
    assert dte.read() == b"\r\nOK\r\n"
    assert dte.module.ports[0].mode == ONLINE_COMMAND
    assert session(dte).received == b"payload"  # the pluses were not data
    assert dte.module.modem_lines(0).dcd  # the call is still up in OLCM


def test_escape_with_pluses_spread_within_500ms() -> None:
    dte = dialled()
    dte.advance(1.5)
    for _ in range(3):
        dte.write(b"+")
        dte.advance(0.4)
    dte.advance(1.0)
    assert dte.read() == b"\r\nOK\r\n"


def test_escape_refused_without_guard_before() -> None:
    dte = dialled()
    dte.write(b"payload")
    dte.advance(0.5)
    dte.write(b"+++")
    dte.advance(3)
    assert dte.read() == b""
    assert dte.module.ports[0].mode == DATA
    assert session(dte).received == b"payload+++"


def test_escape_refused_with_more_than_500ms_between_pluses() -> None:
    dte = dialled()
    dte.advance(1.5)
    dte.write(b"+")
    dte.advance(0.6)
    dte.write(b"+")
    dte.advance(0.1)
    dte.write(b"+")
    dte.advance(3)
    assert dte.module.ports[0].mode == DATA
    assert dte.read() == b""
    assert session(dte).received == b"+++"


def test_escape_refused_when_followed_by_data() -> None:
    dte = dialled()
    dte.advance(1.5)
    dte.write(b"+++")
    dte.advance(0.5)
    dte.write(b"x")
    dte.advance(3)
    assert dte.module.ports[0].mode == DATA
    assert session(dte).received == b"+++x"


def test_escape_refused_inside_a_frame() -> None:
    dte = dialled()
    dte.advance(1.5)
    dte.write(b"+++more")
    dte.advance(3)
    assert dte.module.ports[0].mode == DATA
    assert session(dte).received == b"+++more"


def test_escape_detector_four_pluses_are_data() -> None:
    det = EscapeDetector(guard=1.0, max_gap=0.5, now=0.0)
    assert det.feed(b"++++", 2.0) == b"++++"
    assert det.get_timer() is None


def test_ato_resumes_and_ath_default_cvhu_keeps_call() -> None:
    dte = dialled()
    dte.advance(1.5)
    dte.write(b"+++")
    dte.advance(1.1)
    assert dte.read() == b"\r\nOK\r\n"
    # CVHU=1 (default): ATH in OLCM answers OK but does not drop the call (app note §4.2).
    assert dte.cmd("ATH") == "\r\nOK\r\n"
    assert dte.module.ports[0].mode == ONLINE_COMMAND
    assert dte.cmd("ATO") == "\r\nCONNECT\r\n"
    assert dte.module.ports[0].mode == DATA
    dte.write(b"after")
    assert session(dte).received == b"after"


def test_ath_with_cvhu0_ends_ppp_and_deactivates() -> None:
    dte = dialled()
    dte.advance(1.5)
    dte.write(b"+++")
    dte.advance(1.1)
    dte.read()
    s = session(dte)
    assert dte.cmd("AT+CVHU=0") == "\r\nOK\r\n"
    assert dte.cmd("ATH") == "\r\nOK\r\n"
    assert dte.module.ports[0].mode == COMMAND
    assert s.closed_reason == "ath"
    assert 2 not in dte.module.ram.contexts
    assert dte.cmd("ATO") == "\r\nNO CARRIER\r\n"


def test_escape_with_amp_d2_ends_call() -> None:
    dte = Dte()
    dte.cmd('AT+CGDCONT=2,"IPV4V6","two"')
    dte.register()
    dte.cmd("AT&D2")
    dte.cmd("ATD*99***2#")
    dte.advance(1.5)
    dte.write(b"+++")
    dte.advance(1.1)
    assert dte.read() == b"\r\nNO CARRIER\r\n"
    assert 2 not in dte.module.ram.contexts


def test_reboot_from_other_port_ends_calls() -> None:
    dte = dialled()
    s = session(dte)
    assert dte.cmd("AT+CFUN=16", port=1) == "\r\nOK\r\n"
    dte.advance(0.1)
    assert s.closed_reason == "reboot"
    assert dte.read() == b""


# -- faults --------------------------------------------------------------------------------------
def test_fault_error_silent_vanish() -> None:
    scenario = replace(
        BASE, error_on=frozenset({"+CGACT"}), silent_on=frozenset({"+CSQ"}), vanish_on=frozenset({"+CGMR"}),
    )
    dte = Dte(scenario)
    assert dte.cmd("AT+CGACT?") == "\r\nERROR\r\n"
    assert dte.cmd("AT+CSQ") == ""
    assert dte.cmd("AT") == "\r\nOK\r\n"
    assert dte.cmd("AT+CGMR") == "\r\n03.15\r\n\r\nOK\r\n"
    dte.advance(0.1)
    assert PortsClosed("vanished", None) in dte.events()
    dte.advance(100)
    assert dte.module.state == "vanished"
    assert dte.cmd("AT") == ""


def test_scenario_from_dict_and_prefix_normalisation() -> None:
    s = Scenario.from_dict({"scenario": "roaming", "error_on": ["AT+CGACT", "atd"], "grant": "IP"})
    assert s.operator == "roaming"
    assert s.fault_for("+CGACT=1,1") == "error"
    assert s.fault_for("D*99***1#") == "error"
    assert s.fault_for("+CGDCONT?") is None
    assert Scenario.from_dict({"operator": "europe", "granted": "IPV6"}).grant == "IPV6"


def test_garbage_and_noise_are_seeded() -> None:
    scenario = replace(BASE, garbage=1.0, urc_noise=1.0, seed=3)
    a, b = Dte(scenario), Dte(scenario)
    out_a = a.cmd("AT")
    assert out_a == b.cmd("AT")
    assert "\r\nOK\r\n" in out_a
    assert not out_a.startswith("\r\nOK")
    assert a.module.counters["garbage"] == 1
    assert a.module.counters["noise_urcs"] == 1


# -- layering ------------------------------------------------------------------------------------
def test_sim_uses_no_host_code() -> None:
    """(That the model itself is sans-IO is checked with every core in tests/cores/test_no_io.py.)"""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, larappp.sim, larappp.sim.cli; "
        "print(sorted(m for m in sys.modules if m.startswith('larappp.') "
        "and not m.startswith(('larappp.sim', 'larappp.proto', 'larappp.transport')) and m != 'larappp.errors'))"
    )
    # The simulator is built on the same sans-IO cores and kernel transports as the host,
    # never on the host's engines, modem lifecycle or sessions.
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "[]"
