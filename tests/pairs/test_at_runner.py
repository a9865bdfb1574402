"""The asyncio AT runner against a scripted module on an in-memory pipe."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from larappp.engine.at import AtCommandError, AtRunner, DialResult
from larappp.errors import ModemError, ModemTimeout, PortClosed, PortError
from larappp.lara_r6 import parsers, rules, scripts
from larappp.proto.at.chat import ChatScript, ChatStep
from larappp.proto.at.core import CarrierLost, UrcReceived
from larappp.transport.pipe import Pipe
from tests.aio import run_bounded

PORT = "/dev/ttyFAKE0"
PPP_BYTES = bytes.fromhex("7eff7d23c0217d217d217d207d34")
UUPINGS = [
    f'+UUPING: {n},32,"www.google.com","216.58.206.68",115,{rtt}'  # app note §2.4.1
    for n, rtt in ((1, 62), (2, 53), (3, 53), (4, 53))
]


def crlf(*lines: str) -> bytes:
    return b"".join(b"\r\n" + line.encode() + b"\r\n" for line in lines)


class ScriptedPipe(Pipe):
    """The host end of a pipe whose far end is a scripted module (command -> reply bytes)."""

    def __init__(
        self, replies: dict[str, bytes] | None = None, *, echo: bool = True, bytewise: bool = False
    ) -> None:
        super().__init__()
        self.name = PORT
        self.replies = dict(replies or {})
        self.echo = echo
        self.bytewise = bytewise  # the module's answers arrive one byte per read
        self.commands: list[str] = []
        self.written: list[bytes] = []
        self.fail_writes = False
        self.on_command: Callable[[str], None] | None = None
        self._incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._partial = b""

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        self.vanish()

    async def read(self, max_bytes: int = 65536) -> bytes:
        chunk = await self._incoming.get()
        if chunk is None:
            self._incoming.put_nowait(None)  # stays gone for every later read
            raise PortClosed(f"{self.name} was unplugged")
        return chunk

    async def write(self, data: bytes) -> None:
        if self.fail_writes:
            raise PortClosed(f"{self.name}: write failed")
        self.written.append(data)
        if data == b"+++" and "+++" in self.replies:  # the escape travels alone, without CR
            self.feed(self.replies["+++"])
            return
        self._partial += data
        while b"\r" in self._partial:
            line, self._partial = self._partial.split(b"\r", 1)
            command = line.decode("latin-1")
            self.commands.append(command)
            if self.on_command is not None:
                self.on_command(command)
            reply = self.replies.get(command)
            if reply is not None:
                self.feed((line + b"\r" if self.echo else b"") + reply)

    # the module's side
    def feed(self, data: bytes) -> None:
        chunks = [data[i : i + 1] for i in range(len(data))] if self.bytewise else [data]
        for chunk in chunks:
            self._incoming.put_nowait(chunk)

    def vanish(self) -> None:
        self._incoming.put_nowait(None)

    def eof(self) -> None:
        self._incoming.put_nowait(b"")


async def settle() -> None:
    """Let the reader task process what is queued (no wall-clock wait)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def started(pipe: Pipe, **kwargs: Any) -> AtRunner:
    runner = AtRunner(pipe, **kwargs)
    await runner.start()
    return runner


# -- commands ----------------------------------------------------------------------


def test_command_returns_lines_and_delivers_interleaved_urcs() -> None:
    cgdcont = '+CGDCONT: 1,"IP","APN1","166.130.71.189",0,0,0,0'  # app note §4.1.3

    async def scenario() -> None:
        pipe = ScriptedPipe({"AT+CGDCONT?": crlf(cgdcont, "+CEREG: 5", "OK", "+CSCON: 1")})
        trace: list[str] = []
        runner = await started(pipe, trace=trace.append)
        everything = runner.subscribe()
        assert pipe.owner == "at"
        response = await runner.command("AT+CGDCONT?")
        assert response.lines == (cgdcont,)
        assert response.final.kind == "ok"
        await settle()
        assert [everything.get_nowait().line for _ in range(2)] == ["+CEREG: 5", "+CSCON: 1"]
        assert trace[:3] == [">> AT+CGDCONT?", "<< AT+CGDCONT?", f"<< {cgdcont}"]
        assert "<< OK" in trace
        await runner.stop()
        assert pipe.owner is None

    run_bounded(scenario)


def test_command_error_names_the_command_and_the_meaning() -> None:
    async def scenario() -> None:
        pipe = ScriptedPipe({'AT+CGDCONT=1,"IP","x"': crlf("+CME ERROR: 3")})
        runner = await started(pipe)
        with pytest.raises(AtCommandError) as info:
            await runner.command('AT+CGDCONT=1,"IP","x"')
        error = info.value
        assert isinstance(error, ModemError)
        assert str(error) == 'AT+CGDCONT=1,"IP","x" failed: +CME ERROR: 3 (operation not allowed)'
        assert error.command == 'AT+CGDCONT=1,"IP","x"'
        assert error.final.kind == "cme_error"
        assert error.final.code == 3
        # the runner goes on after an error
        pipe.replies["AT"] = crlf("OK")
        assert (await runner.command("AT")).final.ok
        await runner.stop()

    run_bounded(scenario)


def test_secrets_are_masked_in_trace_and_errors() -> None:
    command = 'AT+CGAUTH=1,1,"user","s3cret"'

    async def scenario() -> None:
        pipe = ScriptedPipe({command: crlf("ERROR")})
        trace: list[str] = []
        runner = await started(pipe, trace=trace.append, secrets=["s3cret"])
        with pytest.raises(AtCommandError) as info:
            await runner.command(command)
        assert "s3cret" not in str(info.value)
        assert '"***"' in str(info.value)
        assert trace[0] == '>> AT+CGAUTH=1,1,"user","***"'
        assert all("s3cret" not in line for line in trace)
        assert pipe.commands == [command]  # the module gets the real thing
        await runner.stop()

    run_bounded(scenario)


def test_timeout_error_text() -> None:
    async def scenario() -> None:
        pipe = ScriptedPipe()  # never answers
        runner = await started(pipe)
        with pytest.raises(ModemTimeout) as info:
            await runner.command("AT+X", timeout=0.05)
        assert str(info.value) == (
            f"no answer to AT+X within 0.05 s from {PORT}: check that the module is powered on"
            " and that this is its AT port"
        )
        # the next command is not blocked by the one that timed out
        pipe.replies["AT"] = crlf("OK")
        assert (await runner.command("AT")).final.ok
        await runner.stop()

    run_bounded(scenario)


def test_timeout_by_fake_clock_when_input_arrives() -> None:
    now = [1000.0]

    async def scenario() -> None:
        pipe = ScriptedPipe()
        runner = await started(pipe, clock=lambda: now[0])
        urcs = runner.subscribe(["+CEREG"])
        pending = asyncio.create_task(runner.command("AT+COPS?", timeout=10.0))
        await settle()
        pipe.feed(crlf('+COPS: 0,0,"I TIM",7'))
        await settle()
        assert not pending.done()
        now[0] += 10.5
        pipe.feed(crlf("+CEREG: 1"))  # any input makes the runner look at the clock
        with pytest.raises(ModemTimeout, match=r"no answer to AT\+COPS\? within 10 s"):
            await pending
        assert urcs.get_nowait() == UrcReceived("+CEREG: 1", "+CEREG")
        await runner.stop()

    run_bounded(scenario)


def test_port_vanishing_mid_command() -> None:
    async def scenario() -> None:
        pipe = ScriptedPipe()
        runner = await started(pipe)
        pending = asyncio.create_task(runner.command("AT+COPS?"))
        await settle()
        pipe.feed(b'\r\n+COPS: 0,0,"I T')
        pipe.vanish()
        with pytest.raises(PortClosed) as info:
            await pending
        assert str(info.value) == (f"port {PORT} vanished while waiting for the answer to AT+COPS?")
        with pytest.raises(PortClosed, match="vanished"):
            await runner.command("AT")
        with pytest.raises(PortClosed, match="vanished"):
            await runner.wait_urc(lambda urc: True, 1.0)
        await runner.stop()
        assert pipe.owner is None

    run_bounded(scenario)


def test_end_of_file_is_a_vanished_port() -> None:
    async def scenario() -> None:
        pipe = ScriptedPipe()
        runner = await started(pipe)
        pending = asyncio.create_task(runner.command("AT"))
        await settle()
        pipe.eof()
        with pytest.raises(PortClosed, match="vanished while waiting for the answer to AT"):
            await pending
        await runner.stop()

    run_bounded(scenario)


def test_write_failure_is_a_vanished_port() -> None:
    async def scenario() -> None:
        pipe = ScriptedPipe()
        pipe.fail_writes = True
        runner = await started(pipe)
        with pytest.raises(PortClosed, match=f"port {PORT} vanished while sending AT"):
            await runner.command("AT")
        pipe.fail_writes = False
        pipe.replies["AT"] = crlf("OK")
        assert (await runner.command("AT")).final.ok
        await runner.stop()

    run_bounded(scenario)


def test_commands_from_two_tasks_take_turns() -> None:
    async def scenario() -> None:
        pipe = ScriptedPipe({"AT+CGMI": crlf("u-blox", "OK"), "AT+CGMM": crlf("LARA-R6", "OK")})
        runner = await started(pipe)
        first, second = await asyncio.gather(runner.command("AT+CGMI"), runner.command("AT+CGMM"))
        assert (first.lines, second.lines) == (("u-blox",), ("LARA-R6",))
        assert pipe.commands == ["AT+CGMI", "AT+CGMM"]
        await runner.stop()

    run_bounded(scenario)


def test_runner_survives_garbage() -> None:
    async def scenario() -> None:
        pipe = ScriptedPipe({"AT": crlf("OK")})
        runner = await started(pipe)
        pipe.feed(b"\x00\xff\xfe\x7e\x7d" * 200 + b"\r\n\x00\r\xff")
        await settle()
        assert (await runner.command("AT")).final.ok
        await runner.stop()

    run_bounded(scenario)


def test_command_before_start_is_refused() -> None:
    async def scenario() -> None:
        runner = AtRunner(ScriptedPipe())
        with pytest.raises(PortError, match=r"call start\(\)"):
            await runner.command("AT")

    run_bounded(scenario)


def test_stop_is_idempotent_and_fails_a_pending_command() -> None:
    async def scenario() -> None:
        pipe = ScriptedPipe()
        runner = await started(pipe)
        pending = asyncio.create_task(runner.command("AT"))
        await settle()
        await runner.stop()
        with pytest.raises(PortError, match="stopped"):
            await pending
        await runner.stop()
        assert pipe.owner is None
        assert not runner.running

    run_bounded(scenario)


def test_start_refuses_a_pipe_held_by_someone_else() -> None:
    async def scenario() -> None:
        pipe = ScriptedPipe()
        pipe.attach("ppp")
        with pytest.raises(PortError, match="held by ppp"):
            await AtRunner(pipe).start()

    run_bounded(scenario)


# -- URCs ----------------------------------------------------------------------------


def test_subscribers_get_every_urc_or_the_named_ones() -> None:
    async def scenario() -> None:
        pipe = ScriptedPipe()
        runner = await started(pipe)
        everything = runner.subscribe()
        cereg = runner.subscribe(["+cereg"])
        pipe.feed(crlf("+CEREG: 2", "+CSCON: 1", "+CEREG: 1"))
        await settle()
        assert [everything.get_nowait().line for _ in range(3)] == [
            "+CEREG: 2",
            "+CSCON: 1",
            "+CEREG: 1",
        ]
        assert [cereg.get_nowait().line for _ in range(2)] == ["+CEREG: 2", "+CEREG: 1"]
        assert cereg.empty()
        everything.close()
        pipe.feed(crlf("+CEREG: 5"))
        await settle()
        assert everything.empty()
        assert cereg.get_nowait().line == "+CEREG: 5"
        await runner.stop()

    run_bounded(scenario)


def test_wait_urc_sees_urcs_that_came_with_the_ok() -> None:
    async def scenario() -> None:
        # app note §2.4.1: OK, then the +UUPING URCs, all in one chunk
        pipe = ScriptedPipe({'AT+UPING="www.google.com"': crlf("OK", *UUPINGS)})
        runner = await started(pipe)
        await runner.command('AT+UPING="www.google.com"')
        got = [(await runner.wait_urc(lambda u: u.name == "+UUPING", 1.0)).line for _ in UUPINGS]
        assert got == UUPINGS
        with pytest.raises(ModemTimeout, match="the ping result did not come within 0.01 s"):
            await runner.wait_urc(lambda u: u.name == "+UUPING", 0.01, what="the ping result")
        await runner.stop()

    run_bounded(scenario)


def test_wait_urc_waits_for_a_later_urc_and_backlog_keeps_the_others() -> None:
    async def scenario() -> None:
        pipe = ScriptedPipe()
        runner = await started(pipe)
        waiting = asyncio.create_task(runner.wait_urc(lambda u: u.line == "+CEREG: 1", 5.0))
        await settle()
        pipe.feed(crlf("+CEREG: 2", "+CEREG: 1"))
        assert (await waiting).line == "+CEREG: 1"
        backlog = await runner.wait_urc(lambda u: u.name == "+CEREG", 0.01)
        assert backlog.line == "+CEREG: 2"  # kept for a later wait_urc, taken once
        with pytest.raises(ModemTimeout):
            await runner.wait_urc(lambda u: u.name == "+CEREG", 0.01)
        await runner.stop()

    run_bounded(scenario)


# -- dial, hand-over, resume -----------------------------------------------------------


def test_dial_hands_leftover_and_pipe_to_ppp_then_resumes() -> None:
    async def scenario() -> None:
        pipe = ScriptedPipe(
            {"ATD*99***1#": crlf("+CGEV: ME PDN ACT 1") + b"\r\nCONNECT 150000000\r\n" + PPP_BYTES}
        )
        runner = await started(pipe)
        urcs = runner.subscribe()
        result = await runner.dial("ATD*99***1#")
        assert result == DialResult("150000000", PPP_BYTES)
        assert pipe.owner is None
        assert not runner.running
        assert urcs.get_nowait().line == "+CGEV: ME PDN ACT 1"

        # PPP owns the pipe now; bytes the module sends later are PPP's, not the runner's
        pipe.attach("ppp")
        pipe.feed(b"\x7e\x7e")
        assert await pipe.read() == b"\x7e\x7e"
        with pytest.raises(PortError, match="call start"):
            await runner.command("AT")
        with pytest.raises(PortError, match="held by ppp"):
            await runner.resume()
        pipe.release("ppp")

        await runner.resume()
        assert pipe.owner == "at"
        pipe.feed(crlf("NO CARRIER"))
        lost = await asyncio.wait_for(urcs.get(), 1.0)
        assert isinstance(lost, CarrierLost)
        pipe.replies["ATH"] = crlf("OK")
        assert (await runner.command("ATH")).final.ok
        await runner.stop()

    run_bounded(scenario)


def test_dial_failure_explains_no_carrier() -> None:
    async def scenario() -> None:
        pipe = ScriptedPipe({"ATD*99***2#": crlf("NO CARRIER")})
        runner = await started(pipe)
        with pytest.raises(AtCommandError, match=r"ATD\*99\*\*\*2# failed: NO CARRIER: check"):
            await runner.dial("ATD*99***2#")
        assert pipe.owner == "at"
        assert runner.running
        await runner.stop()

    run_bounded(scenario)


def test_connect_on_a_plain_command_still_releases_the_pipe() -> None:
    async def scenario() -> None:
        pipe = ScriptedPipe({"ATO": crlf("CONNECT")})
        runner = await started(pipe)
        with pytest.raises(AtCommandError, match=r"use dial\(\)"):
            await runner.command("ATO")
        assert pipe.owner is None
        await runner.resume()
        assert pipe.owner == "at"
        await runner.stop()

    run_bounded(scenario)


# -- chat scripts ----------------------------------------------------------------------

PROFILE_CHECK = ChatScript(
    "profile check",
    (
        ChatStep("AT+CFUN=0"),
        ChatStep("AT+UMNOPROF?", expect=r"^\+UMNOPROF: 100$"),  # app note §2.3.1
        ChatStep("AT+UEMBPF?", expect=r'"6000-6200"'),  # app note §4.3.1
    ),
    total_timeout=5.0,
)


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "byte-by-byte"])
def test_run_script_returns_every_response(bytewise: bool) -> None:
    async def scenario() -> None:
        pipe = ScriptedPipe(
            {
                "AT+CFUN=0": crlf("OK"),
                "AT+UMNOPROF?": crlf("+CEREG: 2", "+UMNOPROF: 100", "OK"),
                "AT+UEMBPF?": crlf('+UEMBPF: 1,"6000-6200"', "OK"),
            },
            bytewise=bytewise,
        )
        runner = await started(pipe)
        responses = await runner.run_script(PROFILE_CHECK)
        assert [r.lines for r in responses] == [
            (),
            ("+UMNOPROF: 100",),
            ('+UEMBPF: 1,"6000-6200"',),
        ]
        await runner.stop()

    run_bounded(scenario)


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "byte-by-byte"])
def test_run_script_stops_at_the_first_failing_step(bytewise: bool) -> None:
    async def scenario() -> None:
        pipe = ScriptedPipe(
            {"AT+CFUN=0": crlf("OK"), "AT+UMNOPROF?": crlf("+UMNOPROF: 90", "OK")},
            bytewise=bytewise,
        )
        runner = await started(pipe)
        with pytest.raises(AtCommandError, match=r"AT\+UMNOPROF\? failed: .*\(in profile check\)"):
            await runner.run_script(PROFILE_CHECK)
        assert pipe.commands == ["AT+CFUN=0", "AT+UMNOPROF?"]
        await runner.stop()

    run_bounded(scenario)


def test_run_script_total_timeout_by_fake_clock() -> None:
    now = [0.0]

    def slow_module(command: str) -> None:
        now[0] += 3.0  # each answer takes 3 s of (fake) time: the 5 s budget runs out

    async def scenario() -> None:
        pipe = ScriptedPipe({"AT+CFUN=0": crlf("OK"), "AT+UMNOPROF?": crlf("OK")})
        pipe.on_command = slow_module
        runner = await started(pipe, clock=lambda: now[0])
        with pytest.raises(ModemTimeout, match="profile check did not finish within 5 s"):
            await runner.run_script(PROFILE_CHECK)
        assert pipe.commands == ["AT+CFUN=0", "AT+UMNOPROF?"]
        await runner.stop()

    run_bounded(scenario)


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "byte-by-byte"])
def test_run_script_aborts_on_an_abort_match(bytewise: bool) -> None:
    async def scenario() -> None:
        pipe = ScriptedPipe(
            {"AT+CMEE=2": crlf("OK"), "AT&D2": crlf("+CME ERROR: operation not supported")},
            bytewise=bytewise,
        )
        runner = await started(pipe)
        with pytest.raises(AtCommandError, match=r"AT&D2 failed: \+CME ERROR: operation not supported"
                           r" \(in module init\)"):
            await runner.run_script(scripts.MODULE_INIT)
        await runner.stop()

    run_bounded(scenario)


def test_bring_up_scripts_against_a_module_that_answers_them() -> None:
    async def scenario() -> None:
        pipe = ScriptedPipe({
            "AT+CMEE=2": crlf("OK"), "AT&D2": crlf("OK"),
            "AT+COPS=3,2": crlf("OK"), "AT+COPS?": crlf('+COPS: 0,2,"310260",7', "OK"),
        })
        runner = await started(pipe)
        assert len(await runner.run_script(scripts.MODULE_INIT)) == 2
        _, cops = await runner.run_script(scripts.READ_OPERATOR)
        assert parsers.parse_cops(cops.lines).plmn == "310260"
        assert pipe.commands == ["AT+CMEE=2", "AT&D2", "AT+COPS=3,2", "AT+COPS?"]
        await runner.stop()

    run_bounded(scenario)


# -- per-command timeouts (u-blox AT manual bounds, lara_r6.rules) ----------------------


def test_each_command_gets_its_manuals_timeout_from_a_silent_module() -> None:
    now = [0.0]

    async def scenario() -> None:
        pipe = ScriptedPipe()  # silent: answers nothing
        runner = await started(
            pipe, clock=lambda: now[0], timeouts=rules.command_timeout, default_timeout=10.0
        )

        async def times_out_after(command: str, seconds: float) -> None:
            pending = asyncio.create_task(runner.command(command))
            await settle()
            now[0] += seconds - 0.5
            pipe.feed(crlf("+CSCON: 1"))  # any input makes the runner look at the clock
            await settle()
            assert not pending.done(), f"{command} gave up before {seconds} s"
            now[0] += 1.0
            pipe.feed(crlf("+CSCON: 0"))
            with pytest.raises(ModemTimeout, match=rf"within {seconds:g} s"):
                await pending

        await times_out_after("AT+CFUN=1", 180.0)  # radio on: up to 3 min
        await times_out_after("AT+COPS=0", 180.0)
        await times_out_after("AT+CGACT=1,2", 150.0)
        await times_out_after("ATH", 40.0)
        await times_out_after("AT+CMEE=2", 10.0)  # not in the table: the configured timeout
        await times_out_after("AT+CFUN?", 10.0)  # a read answers at once
        await runner.stop()

    run_bounded(scenario)


def test_a_chat_step_carries_its_manuals_timeout() -> None:
    now = [0.0]

    async def scenario() -> None:
        pipe = ScriptedPipe({"AT+CMEE=2": crlf("OK")})
        runner = await started(pipe, clock=lambda: now[0], default_timeout=10.0)
        radio_on = ChatScript("radio on", (ChatStep("AT+CMEE=2"), scripts.step("AT+CFUN=1")))
        pending = asyncio.create_task(runner.run_script(radio_on))
        await settle()
        now[0] += 100.0  # far past the 10 s default, within the 180 s of AT+CFUN
        pipe.feed(crlf("+CEREG: 2"))
        await settle()
        assert not pending.done()
        pipe.feed(crlf("OK"))
        assert [r.final.ok for r in await pending] == [True, True]
        await runner.stop()

    run_bounded(scenario)


# -- back from data mode ---------------------------------------------------------------


def test_first_command_after_data_mode_starts_on_a_clean_line() -> None:
    async def scenario() -> None:
        pipe = ScriptedPipe({"ATD*99***1#": crlf("CONNECT"), "AT": crlf("OK")})
        runner = await started(pipe)
        await runner.command("AT")
        await runner.dial("ATD*99***1#")
        pipe.attach("ppp")
        await pipe.write(PPP_BYTES[:5])  # PPP stops mid-frame: the module's line holds garbage
        pipe.release("ppp")
        await runner.resume()
        await runner.command("AT")
        await runner.command("AT")
        assert pipe.written[0] == b"AT\r"
        assert pipe.written[-2:] == [b"\rAT\r", b"AT\r"]  # a lone CR first, once
        # the CR ended the garbage line on its own, so the module saw a clean "AT"
        assert pipe.commands[-3:] == [PPP_BYTES[:5].decode("latin-1"), "AT", "AT"]
        await runner.stop()

    run_bounded(scenario)


def test_escape_accepts_ok_and_the_no_carrier_of_amp_d2() -> None:
    async def scenario() -> None:
        for answer, kind in (("OK", "ok"), ("NO CARRIER", "no_carrier")):
            pipe = ScriptedPipe({"ATD*99***1#": crlf("CONNECT"), "+++": crlf(answer),
                                 "ATH": crlf("OK")})
            runner = await started(pipe)
            await runner.dial("ATD*99***1#")
            assert (await runner.escape(guard=0.0, timeout=1.0)).final.kind == kind
            assert pipe.written[-1] == b"+++"  # alone: no clean-line CR before the escape
            assert (await runner.command("ATH")).final.ok
            assert pipe.written[-1] == b"\rATH\r"
            await runner.stop()
        pipe = ScriptedPipe({"ATD*99***1#": crlf("CONNECT"), "+++": crlf("ERROR")})
        runner = await started(pipe)
        await runner.dial("ATD*99***1#")
        with pytest.raises(AtCommandError, match=r"\+\+\+ failed: ERROR"):
            await runner.escape(guard=0.0, timeout=1.0)
        await runner.stop()

    run_bounded(scenario)


# -- URC subscriptions on the control port -----------------------------------------------


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "byte-by-byte"])
def test_control_port_subscription_gets_cgev_and_cereg_until_the_port_vanishes(
    bytewise: bool,
) -> None:
    async def scenario() -> None:
        pipe = ScriptedPipe({"AT+CGDCONT?": crlf('+CGDCONT: 2,"IP","a"', "+CGEV: NW DETACH", "OK")},
                            bytewise=bytewise)
        runner = await started(pipe)
        control = runner.subscribe([rules.URC_CGEV, rules.URC_CEREG])
        pipe.feed(crlf("+CGEV: NW DEACT 2", "+CSCON: 0", "+CEREG: 0"))
        await runner.command("AT+CGDCONT?")  # a URC inside an answer reaches the subscriber too
        got = [await control.get() for _ in range(3)]
        assert [u.line for u in got] == ["+CGEV: NW DEACT 2", "+CEREG: 0", "+CGEV: NW DETACH"]
        assert parsers.parse_cgev(got[0].line).deactivation
        assert not parsers.parse_cereg(got[1].line).registered
        pipe.feed(crlf("+CEREG: 1"))
        pipe.vanish()
        assert [u.line async for u in control] == ["+CEREG: 1"]  # then the port is gone
        with pytest.raises(PortClosed, match="vanished"):
            await control.get()
        late = runner.subscribe(["+CGEV"])
        with pytest.raises(PortClosed):
            await late.get()
        await runner.stop()

    run_bounded(scenario)


def test_subscription_ends_when_the_runner_stops_and_close_is_idempotent() -> None:
    async def scenario() -> None:
        pipe = ScriptedPipe()
        runner = await started(pipe)
        control = runner.subscribe(["+CGEV"])
        closed = runner.subscribe()
        closed.close()
        closed.close()
        waiting = asyncio.create_task(control.get())
        await settle()
        await runner.stop()
        with pytest.raises(PortError, match="was stopped"):
            await waiting
        pipe.feed(crlf("+CGEV: ME PDN ACT 1"))
        await settle()
        assert closed.empty()

    run_bounded(scenario)


def test_connect_in_a_chat_step_fails_the_script_and_releases_the_pipe() -> None:
    async def scenario() -> None:
        pipe = ScriptedPipe({"AT": crlf("OK"), "ATO": crlf("CONNECT")})
        runner = await started(pipe)
        resume_call = ChatScript("resume", (ChatStep("AT"), ChatStep("ATO")))
        with pytest.raises(AtCommandError, match=r"ATO failed: CONNECT in resume: dial with dial\(\)"):
            await runner.run_script(resume_call)
        assert pipe.owner is None  # the bytes after CONNECT belong to PPP
        await runner.stop()

    run_bounded(scenario)
