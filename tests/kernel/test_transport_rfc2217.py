"""Rfc2217Pipe against a tiny RFC 2217 server on 127.0.0.1 (pyserial's PortManager)."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
import serial.rfc2217

from larappp.errors import ConfigError, PortClosed, PortError
from larappp.transport.pipe import ModemLines
from larappp.transport.rfc2217 import Rfc2217Pipe, parse_rfc2217_url
from tests.aio import run_bounded


class FakePort:
    """The serial port PortManager drives: it records DTR/RTS, the test sets CTS/DSR/CD/RI."""

    def __init__(self, changed: threading.Condition) -> None:
        self._changed = changed
        self.baudrate = 9600
        self.bytesize = 8
        self.parity = "N"
        self.stopbits = 1
        self.xonxoff = False
        self.rtscts = False
        self.break_condition = False
        self.cts = True
        self.dsr = True
        self.cd = False
        self.ri = False
        self.dtr_history: list[bool] = []
        self.rts_history: list[bool] = []

    @property
    def dtr(self) -> bool | None:
        return self.dtr_history[-1] if self.dtr_history else None

    @dtr.setter
    def dtr(self, on: bool) -> None:
        with self._changed:
            self.dtr_history.append(on)
            self._changed.notify_all()

    @property
    def rts(self) -> bool | None:
        return self.rts_history[-1] if self.rts_history else None

    @rts.setter
    def rts(self, on: bool) -> None:
        with self._changed:
            self.rts_history.append(on)
            self._changed.notify_all()

    def reset_input_buffer(self) -> None:
        pass

    def reset_output_buffer(self) -> None:
        pass


class LockedConnection:
    """PortManager's `connection`: a thread-safe write to the client socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self.lock:
            self.sock.sendall(data)


class Rfc2217Server:
    """One-client RFC 2217 server on an ephemeral loopback port, run in a thread."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.port_object = FakePort(self.changed)
        self.received = bytearray()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.url = f"rfc2217://127.0.0.1:{self.port}"
        self.connection: LockedConnection | None = None
        self.manager: serial.rfc2217.PortManager | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="test-rfc2217-server")
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            sock.settimeout(0.05)
            with self.changed:
                self.connection = LockedConnection(sock)
                self.manager = serial.rfc2217.PortManager(self.port_object, self.connection)
            try:
                self._pump(sock, self.manager)
            finally:
                sock.close()

    def _pump(self, sock: socket.socket, manager: serial.rfc2217.PortManager) -> None:
        while not self.stop.is_set():
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            data = b"".join(manager.filter(chunk))
            with self.changed:
                self.received += data
                self.changed.notify_all()

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        with self.changed:
            return self.changed.wait_for(predicate, timeout)

    def send(self, data: bytes) -> None:
        assert self.connection is not None
        # PortManager.escape() is slow byte by byte; this is the same escaping (FACTS)
        self.connection.write(data.replace(b"\xff", b"\xff\xff"))

    def set_lines(self, **lines: bool) -> None:
        assert self.manager is not None
        for name, value in lines.items():
            setattr(self.port_object, name, value)
        self.manager.check_modem_lines()

    def drop_client(self) -> None:
        assert self.connection is not None
        self.connection.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.listener.close()


@pytest.fixture(autouse=True)
def no_threads_left_behind() -> Iterator[None]:
    yield
    names = [t.name for t in threading.enumerate()]
    assert not [n for n in names if "rfc2217" in n.lower()], names


@pytest.fixture
def server() -> Iterator[Rfc2217Server]:
    srv = Rfc2217Server()
    try:
        yield srv
    finally:
        srv.close()


async def read_exact(pipe: Rfc2217Pipe, count: int) -> bytes:
    data = bytearray()
    while len(data) < count:
        data += await pipe.read(count - len(data))
    return bytes(data)


async def lines_matching(
    pipe: Rfc2217Pipe, predicate: Callable[[ModemLines], bool], timeout: float = 5.0
) -> ModemLines:
    matched = asyncio.Event()

    def changed(lines: ModemLines) -> None:
        if predicate(lines):
            matched.set()

    pipe.watch_modem_lines(changed)
    try:
        if not predicate(pipe.modem_lines()):
            await asyncio.wait_for(matched.wait(), timeout)
    finally:
        pipe.watch_modem_lines(None)
    return pipe.modem_lines()


def test_data_flows_both_ways_with_telnet_escapes(server: Rfc2217Server) -> None:
    to_module = os.urandom(65536) + b"\xff\xff\xffAT\r"
    from_module = os.urandom(8192) + b"\xff\r\nOK\r\n"

    async def scenario() -> bytes:
        pipe = Rfc2217Pipe(server.url, baud=921600)
        await pipe.open()
        try:
            await pipe.write(to_module)
            assert await asyncio.to_thread(
                server.wait_until, lambda: len(server.received) >= len(to_module)
            )
            server.send(from_module)
            return await read_exact(pipe, len(from_module))
        finally:
            await pipe.close()

    assert run_bounded(scenario) == from_module
    assert bytes(server.received) == to_module
    assert server.port_object.baudrate == 921600


def test_dtr_and_rts_changes_reach_the_server_in_order(server: Rfc2217Server) -> None:
    async def scenario() -> None:
        pipe = Rfc2217Pipe(server.url)
        await pipe.open()
        try:
            assert server.port_object.dtr_history == [True]  # pyserial raises DTR on open
            await pipe.write(b"+++")
            pipe.set_dtr(False)
            pipe.set_rts(False)
            pipe.set_dtr(True)
            await pipe.drain()
            assert server.port_object.dtr_history == [True, False, True]
            assert server.port_object.rts_history[-1] is False
            assert bytes(server.received) == b"+++"
            await pipe.hangup(hold_s=0)
            assert server.port_object.dtr_history == [True, False, True, False, True]
        finally:
            await pipe.close()

    run_bounded(scenario)


def test_cts_and_dcd_changes_reach_the_client(server: Rfc2217Server) -> None:
    async def scenario() -> None:
        pipe = Rfc2217Pipe(server.url)
        await pipe.open()
        try:
            assert pipe.has_modem_lines
            first = await lines_matching(pipe, lambda lines: lines.cts is not None)
            assert first == ModemLines(cts=True, dsr=True, dcd=False, ri=False)
            server.set_lines(cts=False, cd=True)
            lines = await lines_matching(pipe, lambda lines: lines.dcd is True)
            assert lines == ModemLines(cts=False, dsr=True, dcd=True, ri=False)
            server.set_lines(cd=False, ri=True)
            lines = await lines_matching(pipe, lambda lines: lines.ri is True)
            assert lines.dcd is False
        finally:
            await pipe.close()

    run_bounded(scenario)


def test_server_dropping_the_connection_raises_port_closed(server: Rfc2217Server) -> None:
    async def scenario() -> None:
        pipe = Rfc2217Pipe(server.url)
        await pipe.open()
        try:
            pending = asyncio.ensure_future(pipe.read())
            await asyncio.sleep(0)
            server.drop_client()
            with pytest.raises(PortClosed, match="connection to rfc2217://127.0.0.1"):
                await pending
            with pytest.raises(PortClosed):
                await pipe.write(b"AT\r")
            with pytest.raises(PortClosed):
                pipe.set_dtr(False)
        finally:
            await pipe.close()
        await pipe.close()  # twice is fine
        with pytest.raises(PortClosed, match="is not open"):
            await pipe.read()

    run_bounded(scenario)


def test_close_wakes_a_waiting_read(server: Rfc2217Server) -> None:
    async def scenario() -> None:
        pipe = Rfc2217Pipe(server.url)
        await pipe.open()
        pending = asyncio.ensure_future(pipe.read())
        await asyncio.sleep(0)
        await pipe.close()
        with pytest.raises(PortClosed, match="closed by larappp"):
            await pending

    run_bounded(scenario)


def test_connection_refused_names_the_url() -> None:
    with socket.socket() as idle:  # bound, not listening: connecting is refused
        idle.bind(("127.0.0.1", 0))
        url = f"rfc2217://127.0.0.1:{idle.getsockname()[1]}"

        async def scenario() -> None:
            with pytest.raises(PortError, match=f"cannot connect to {url} .*refused"):
                await Rfc2217Pipe(url).open()

        run_bounded(scenario)


def test_a_server_that_does_not_speak_rfc2217_is_named() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # connects, never answers
        url = f"rfc2217://127.0.0.1:{silent.getsockname()[1]}?timeout=0.3"

        async def scenario() -> None:
            with pytest.raises(PortError, match="does not speak RFC 2217"):
                await Rfc2217Pipe(url).open()

        run_bounded(scenario)


@pytest.mark.parametrize(
    "url", ["rfc2217://", "rfc2217://host", "rfc2217://host:0", "rfc2217://host:99999", "tcp://h:1"]
)
def test_malformed_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="rfc2217://HOST:PORT"):
        parse_rfc2217_url(url)


def test_url_parsing() -> None:
    assert parse_rfc2217_url("rfc2217://192.0.2.1:3333") == ("192.0.2.1", 3333)
    assert parse_rfc2217_url("rfc2217://[::1]:7000?timeout=1") == ("::1", 7000)


@pytest.mark.parametrize("rtscts", [True, False])
def test_writes_hold_while_cts_is_off_with_rtscts(server: Rfc2217Server, rtscts: bool) -> None:
    """With RTS/CTS the pipe writes nothing while the server reports CTS off and resumes
    when it is on again; without, CTS is only reported."""
    payload = os.urandom(20000)

    async def scenario() -> dict[str, float | int]:
        pipe = Rfc2217Pipe(server.url, rtscts=rtscts)
        await pipe.open()
        try:
            assert server.port_object.rtscts is rtscts  # asked of the server (SET-CONTROL)
            await lines_matching(pipe, lambda lines: lines.cts is True)
            server.set_lines(cts=False)
            await lines_matching(pipe, lambda lines: lines.cts is False)
            writing = asyncio.ensure_future(pipe.write(payload))
            await asyncio.sleep(0.5)
            if not rtscts:
                await asyncio.wait_for(writing, 5)
                assert bytes(server.received) == payload
                return pipe.flow_counters()
            assert not writing.done() and bytes(server.received) == b""
            assert pipe.flow_counters()["cts_offs"] == 1
            server.set_lines(cts=True)
            await asyncio.wait_for(writing, 5)
            assert await asyncio.to_thread(server.wait_until, lambda: len(server.received) >= len(payload))
            assert bytes(server.received) == payload
            return pipe.flow_counters()
        finally:
            await pipe.close()

    counters = run_bounded(scenario)
    if rtscts:
        assert counters["cts_offs"] == 1 and 0.5 <= counters["cts_off_s"] < 5, counters
    else:
        assert counters == {}


def test_close_wakes_a_write_waiting_for_cts(server: Rfc2217Server) -> None:
    async def scenario() -> None:
        pipe = Rfc2217Pipe(server.url, rtscts=True)
        await pipe.open()
        await lines_matching(pipe, lambda lines: lines.cts is True)
        server.set_lines(cts=False)
        await lines_matching(pipe, lambda lines: lines.cts is False)
        writing = asyncio.ensure_future(pipe.write(b"held"))
        await asyncio.sleep(0.1)
        await pipe.close()
        with pytest.raises(PortClosed):
            await asyncio.wait_for(writing, 5)

    run_bounded(scenario)
