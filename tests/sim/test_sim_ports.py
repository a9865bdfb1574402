"""The simulator's port servers, driven with raw bytes over its ptys and RFC 2217 (pyserial)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest
import serial

from larappp.sim import Simulator
from larappp.sim.data import DiscardDataSession
from larappp.sim.scenario import Scenario
from larappp.sim.state import COMMAND, DATA, ONLINE_COMMAND

T = TypeVar("T")

FAST = Scenario(
    operator="europe", grant="IPV4V6", registration_delay=0.05, reboot_time=0.3,
    shutdown_delay=0.02, echo=False, escape_guard=0.2, escape_max_gap=0.1,
)


class SimThread:
    """A Simulator on its own event loop thread, so the test can use blocking pyserial."""

    def __init__(self, scenario: Scenario, pty_dir: Path | None, *, rfc2217: bool = True, ports: int = 3) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sim = Simulator(
            scenario, ports=ports, pty_dir=str(pty_dir) if pty_dir else None,
            rfc2217_base_port=0 if rfc2217 else None,
        )
        try:
            self.run(self.sim.start())
        except BaseException:
            self.close()
            raise

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], T]) -> T:
        async def wrapper() -> T:
            return fn()

        return self.run(wrapper())

    def close(self) -> None:
        if self.loop.is_closed():
            return
        try:
            self.run(self.sim.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()


@pytest.fixture
def make_sim(tmp_path: Path) -> Iterator[Callable[..., SimThread]]:
    started: list[SimThread] = []

    def make(scenario: Scenario = FAST, **kwargs: Any) -> SimThread:
        sim = SimThread(scenario, kwargs.pop("pty_dir", tmp_path / "sim"), **kwargs)
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.close()
    leftovers = list((tmp_path / "sim").glob("*")) if (tmp_path / "sim").exists() else []
    assert leftovers == []


@pytest.fixture
def serials() -> Iterator[list[serial.SerialBase]]:
    opened: list[serial.SerialBase] = []
    yield opened
    for ser in opened:
        with contextlib.suppress(Exception):  # a vanished port may fail to close
            ser.close()


def open_pty(path: str, serials: list[serial.SerialBase]) -> serial.Serial:
    ser = serial.Serial(path, 115200, timeout=0.05)
    serials.append(ser)
    return ser


def open_rfc2217(url: str, serials: list[serial.SerialBase]) -> serial.SerialBase:
    ser = serial.serial_for_url(url, timeout=0.05)
    serials.append(ser)
    return ser


def read_until(ser: serial.SerialBase, marker: bytes, timeout: float = 3.0) -> bytes:
    """Read until `marker` appears (raise AssertionError with what came, on timeout)."""
    buf = bytearray()
    deadline = time.monotonic() + timeout
    while marker not in buf:
        if time.monotonic() > deadline:
            raise AssertionError(f"no {marker!r} in {bytes(buf)!r}")
        buf += ser.read(ser.in_waiting or 1)
    return bytes(buf)


def read_for(ser: serial.SerialBase, seconds: float) -> bytes:
    buf = bytearray()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        buf += ser.read(256)
    return bytes(buf)


def wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def command(ser: serial.SerialBase, line: bytes, final: bytes = b"OK\r\n") -> bytes:
    ser.write(line + b"\r")
    return read_until(ser, final)


def wait_registered(sim: SimThread) -> None:
    wait_for(lambda: sim.call(lambda: sim.sim.module.registered))


# -- pty -----------------------------------------------------------------------------------------
def test_pty_at_and_byte_by_byte_echo(make_sim: Callable[..., SimThread], serials: list[serial.SerialBase]) -> None:
    sim = make_sim(replace(FAST, echo=True), rfc2217=False)
    assert [Path(p).name for p in sim.sim.pty_paths] == ["ttyLARA0", "ttyLARA1", "ttyLARA2"]
    ser = open_pty(sim.sim.pty_paths[0], serials)
    for byte in b"AT+CGMM\r":
        ser.write(bytes([byte]))
        time.sleep(0.002)
    assert read_until(ser, b"OK\r\n") == b"AT+CGMM\r\r\nLARA-R6001D\r\n\r\nOK\r\n"


def test_pty_vanishes_on_reboot_and_comes_back_at_same_path(
    make_sim: Callable[..., SimThread], serials: list[serial.SerialBase]
) -> None:
    sim = make_sim(rfc2217=False)
    path = sim.sim.pty_paths[1]
    ser = open_pty(path, serials)
    assert command(ser, b'AT+UEMBPF=1,"6000-6200"') == b"\r\nOK\r\n"
    ser.write(b"AT+CFUN=16\r")
    assert read_until(ser, b"OK\r\n") == b"\r\nOK\r\n"
    # Like a USB port going away: reads fail and the path disappears.
    with pytest.raises(serial.SerialException):
        read_for(ser, 1.0)
    ser.close()
    assert not os.path.lexists(path)
    wait_for(lambda: os.path.lexists(path))
    again = open_pty(path, serials)
    assert command(again, b"AT+UEMBPF?") == b'\r\n+UEMBPF: 1,"6000-6200"\r\n\r\nOK\r\n'
    assert sim.call(lambda: sim.sim.module.applied_range) == (6000, 6200)
    assert os.readlink(path).startswith("/dev/pts/")
    assert sim.call(lambda: sim.sim.module.counters["reboots"]) == 1


def dial(sim: SimThread, ser: serial.SerialBase, cid: int = 2) -> None:
    assert command(ser, f'AT+CGDCONT={cid},"IPV4V6","apn{cid}"'.encode()) == b"\r\nOK\r\n"
    wait_registered(sim)
    assert command(ser, f"ATD*99***{cid}#".encode(), b"CONNECT\r\n") == b"\r\nCONNECT\r\n"


def test_pty_speed_b0_is_a_dtr_drop(make_sim: Callable[..., SimThread], serials: list[serial.SerialBase]) -> None:
    sim = make_sim(rfc2217=False)
    ser = open_pty(sim.sim.pty_paths[0], serials)
    dial(sim, ser)
    ser.write(b"\x7e\x01\x02\x7e")
    wait_for(lambda: sim.call(lambda: _received(sim, 0)) == b"\x7e\x01\x02\x7e")
    # What pppd does to hang up a tty: speed B0.
    attrs = termios.tcgetattr(ser.fd)
    attrs[4] = attrs[5] = termios.B0
    termios.tcsetattr(ser.fd, termios.TCSANOW, attrs)
    assert read_until(ser, b"NO CARRIER\r\n") == b"\r\nNO CARRIER\r\n"
    assert sim.call(lambda: sim.sim.module.ports[0].mode) == COMMAND
    assert sim.call(lambda: 2 in sim.sim.module.ram.contexts) is False


def _received(sim: SimThread, port: int) -> bytes | None:
    call = sim.sim.module.ports[port].call
    if call is None or not isinstance(call.session, DiscardDataSession):
        return None
    return call.session.received


def test_pty_close_by_dte_ends_call(make_sim: Callable[..., SimThread], serials: list[serial.SerialBase]) -> None:
    sim = make_sim(rfc2217=False)
    ser = open_pty(sim.sim.pty_paths[2], serials)
    dial(sim, ser)
    assert sim.call(lambda: sim.sim.module.ports[2].mode) == DATA
    ser.close()
    wait_for(lambda: sim.call(lambda: sim.sim.module.ports[2].mode) == COMMAND)
    assert sim.call(lambda: sim.sim.module.counters["calls_ended_dtr"]) == 1


def test_pty_escape_ato_and_data(make_sim: Callable[..., SimThread], serials: list[serial.SerialBase]) -> None:
    sim = make_sim(rfc2217=False)
    ser = open_pty(sim.sim.pty_paths[0], serials)
    dial(sim, ser)
    ser.write(b"frame")
    time.sleep(0.3)  # guard silence (0.2 s in this scenario)
    ser.write(b"+++")
    assert read_until(ser, b"OK\r\n") == b"\r\nOK\r\n"
    assert sim.call(lambda: sim.sim.module.ports[0].mode) == ONLINE_COMMAND
    assert command(ser, b"ATO", b"CONNECT\r\n") == b"\r\nCONNECT\r\n"
    ser.write(b"more")
    wait_for(lambda: sim.call(lambda: _received(sim, 0)) == b"framemore")


def test_pty_plus_inside_data_is_not_an_escape(
    make_sim: Callable[..., SimThread], serials: list[serial.SerialBase]
) -> None:
    sim = make_sim(rfc2217=False)
    ser = open_pty(sim.sim.pty_paths[0], serials)
    dial(sim, ser)
    time.sleep(0.3)
    ser.write(b"+++x")
    assert read_for(ser, 0.5) == b""
    assert sim.call(lambda: _received(sim, 0)) == b"+++x"


def test_three_ports_dial_at_once(make_sim: Callable[..., SimThread], serials: list[serial.SerialBase]) -> None:
    sim = make_sim(rfc2217=False)
    sers = [open_pty(path, serials) for path in sim.sim.pty_paths]
    for cid, ser in enumerate(sers, start=1):
        assert command(ser, f'AT+CGDCONT={cid},"IP","apn{cid}"'.encode()) == b"\r\nOK\r\n"
    wait_registered(sim)
    for cid, ser in enumerate(sers, start=1):
        assert command(ser, f"ATD*99***{cid}#".encode(), b"CONNECT\r\n") == b"\r\nCONNECT\r\n"
    assert sim.call(lambda: len(sim.sim.module.calls)) == 3
    assert sim.call(lambda: sorted(sim.sim.module.ram.contexts)) == [1, 2, 3]


# -- RFC 2217 ------------------------------------------------------------------------------------
def test_rfc2217_dcd_follows_data_mode_and_dtr_drop_ends_it(
    make_sim: Callable[..., SimThread], serials: list[serial.SerialBase]
) -> None:
    sim = make_sim(pty_dir=None)
    assert sim.sim.pty_paths == []
    ser = open_rfc2217(sim.sim.rfc2217_urls[0], serials)
    assert command(ser, b"AT") == b"\r\nOK\r\n"
    wait_for(lambda: ser.cts)
    assert not ser.cd
    dial(sim, ser)
    wait_for(lambda: ser.cd)
    ser.write(b"\x7e\xff\x7d\x7e")  # IAC in data crosses the telnet layer intact
    wait_for(lambda: sim.call(lambda: _received(sim, 0)) == b"\x7e\xff\x7d\x7e")
    sim.call(lambda: _session(sim, 0).inject(b"\xff\xff\x7e"))
    assert read_until(ser, b"\x7e") == b"\xff\xff\x7e"
    ser.dtr = False
    assert read_until(ser, b"NO CARRIER\r\n") == b"\r\nNO CARRIER\r\n"
    wait_for(lambda: not ser.cd)
    assert sim.call(lambda: sim.sim.module.ports[0].mode) == COMMAND
    assert sim.call(lambda: 2 in sim.sim.module.ram.contexts) is False


def _session(sim: SimThread, port: int) -> DiscardDataSession:
    call = sim.sim.module.ports[port].call
    assert call is not None and isinstance(call.session, DiscardDataSession)
    return call.session


def test_rfc2217_refuses_during_reboot(make_sim: Callable[..., SimThread], serials: list[serial.SerialBase]) -> None:
    sim = make_sim(replace(FAST, reboot_time=0.5), pty_dir=None)
    url = sim.sim.rfc2217_urls[0]
    ser = open_rfc2217(url, serials)
    ser.write(b"AT+CFUN=16\r")
    assert read_until(ser, b"OK\r\n") == b"\r\nOK\r\n"
    with pytest.raises(serial.SerialException):
        read_for(ser, 1.0)
    wait_for(lambda: sim.call(lambda: sim.sim.module.state) == "rebooting")
    with pytest.raises(serial.SerialException):
        serial.serial_for_url(url, timeout=0.05).close()
    wait_for(lambda: sim.call(lambda: sim.sim.module.state) == "on")
    deadline = time.monotonic() + 3
    while True:  # the listener comes back right after the module (a host retries too)
        try:
            again = open_rfc2217(url, serials)
            break
        except serial.SerialException:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    assert command(again, b"AT") == b"\r\nOK\r\n"


def test_rfc2217_one_client_per_port(make_sim: Callable[..., SimThread], serials: list[serial.SerialBase]) -> None:
    sim = make_sim(pty_dir=None, ports=1)
    first = open_rfc2217(sim.sim.rfc2217_urls[0], serials)
    assert command(first, b"AT") == b"\r\nOK\r\n"
    # The second client is closed at once (pyserial may report it as a broken pipe).
    with pytest.raises((serial.SerialException, OSError)):
        second = serial.serial_for_url(sim.sim.rfc2217_urls[0], timeout=0.05)
        serials.append(second)
        second.write(b"AT\r")
        read_for(second, 0.5)
    assert command(first, b"AT") == b"\r\nOK\r\n"


# -- faults --------------------------------------------------------------------------------------
def test_faults_error_silence_garbage(make_sim: Callable[..., SimThread], serials: list[serial.SerialBase]) -> None:
    scenario = replace(FAST, error_on=frozenset({"+CGACT"}), silent_on=frozenset({"+CSQ"}))
    sim = make_sim(scenario, rfc2217=False)
    ser = open_pty(sim.sim.pty_paths[0], serials)
    assert command(ser, b"AT+CGACT=1,1", b"ERROR\r\n") == b"\r\nERROR\r\n"
    assert command(ser, b"AT+CMEE=2") == b"\r\nOK\r\n"
    assert command(ser, b"AT+CGACT?", b"unknown\r\n") == b"\r\n+CME ERROR: unknown\r\n"
    ser.write(b"AT+CSQ\r")
    assert read_for(ser, 0.3) == b""
    assert command(ser, b"AT") == b"\r\nOK\r\n"

    garbage_sim = make_sim(replace(FAST, garbage=1.0, seed=7), pty_dir=None)
    noisy_ser = open_rfc2217(garbage_sim.sim.rfc2217_urls[0], serials)
    answer = command(noisy_ser, b"AT")
    assert answer.endswith(b"\r\nOK\r\n")
    assert len(answer) > len(b"\r\nOK\r\n")


def test_fault_vanish_for_good(make_sim: Callable[..., SimThread], serials: list[serial.SerialBase]) -> None:
    sim = make_sim(replace(FAST, vanish_on=frozenset({"AT+CGMR"})))
    path, url = sim.sim.pty_paths[0], sim.sim.rfc2217_urls[1]
    ser = open_pty(path, serials)
    assert command(ser, b"AT+CGMR") == b"\r\n03.15\r\n\r\nOK\r\n"
    with pytest.raises(serial.SerialException):
        read_for(ser, 1.0)
    assert not os.path.lexists(path)
    time.sleep(FAST.reboot_time * 2)
    assert not os.path.lexists(path)
    with pytest.raises(serial.SerialException):
        serial.serial_for_url(url, timeout=0.05).close()


# -- the CLI -------------------------------------------------------------------------------------
def test_cli_announces_ports_and_cleans_up_on_sigterm(tmp_path: Path) -> None:
    pty_dir = tmp_path / "cli"
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from larappp.sim.cli import sim_main; sys.exit(sim_main(sys.argv[1:]))",
         "--pty-dir", str(pty_dir), "--rfc2217-port", "0", "--ports", "2", "--scenario", "roaming",
         "--registration-delay", "0.05"],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip() for _ in range(2)]
        for index, line in enumerate(lines):
            words = line.split()
            assert words[:3] == ["port", f"{index}:", "pty"]
            assert words[3] == str(pty_dir / f"ttyLARA{index}")
            assert words[4].startswith("rfc2217://127.0.0.1:")
            assert os.path.islink(words[3])
        with serial.Serial(lines[0].split()[3], timeout=0.05) as ser:
            wait_for(lambda: b"+CEREG: 0,5" in command(ser, b"AT+CEREG?"))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert not pty_dir.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_rejects_bad_knob(capsys: pytest.CaptureFixture[str]) -> None:
    from larappp.sim.cli import sim_main

    assert sim_main(["--rfc2217-port", "none", "--pty-dir", "none"]) == 1
    assert "no ports" in capsys.readouterr().err
    assert sim_main(["--scenario", "mars"]) == 2
    assert "scenario 'mars' is unknown" in capsys.readouterr().err
