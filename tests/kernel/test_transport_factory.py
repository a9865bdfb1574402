"""open_pipe() spec parsing and wait_for_port() on paths and TCP ports."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from larappp.errors import ConfigError, PortError
from larappp.transport import open_pipe, wait_for_port
from larappp.transport.rfc2217 import Rfc2217Pipe
from larappp.transport.serial import SerialPipe
from tests.aio import run_bounded


def test_a_path_gives_a_serial_pipe_and_a_url_an_rfc2217_pipe() -> None:
    pipe = open_pipe(" /dev/ttyACM0 ", baud=3_000_000, rtscts=True)
    assert isinstance(pipe, SerialPipe)
    assert (pipe.device, pipe.baud, pipe.rtscts, pipe.is_open) == (
        "/dev/ttyACM0",
        3_000_000,
        True,
        False,
    )
    remote = open_pipe("rfc2217://192.0.2.7:3333")
    assert isinstance(remote, Rfc2217Pipe)
    assert (remote.host, remote.port, remote.baud) == ("192.0.2.7", 3333, 115200)


@pytest.mark.parametrize(
    ("spec", "hint"),
    [
        ("ttyUSB2", "/dev/ttyUSB2"),
        ("socket://127.0.0.1:7000", "/dev/ttyACM0"),
        ("", "/dev/ttyACM0"),
        ("dev/ttyACM0", "/dev/ttyACM0"),
    ],
)
def test_other_forms_are_config_errors_naming_the_accepted_ones(spec: str, hint: str) -> None:
    with pytest.raises(
        ConfigError, match=f"such as {hint} or an RFC 2217 URL such as rfc2217://HOST:PORT"
    ):
        open_pipe(spec)


def test_a_malformed_rfc2217_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a valid RFC 2217 URL"):
        open_pipe("rfc2217://modem-host")


def test_wait_for_port_returns_when_the_path_appears(tmp_path: Path) -> None:
    device = tmp_path / "ttyACM0"

    async def scenario() -> None:
        asyncio.get_running_loop().call_later(0.05, device.write_bytes, b"")
        await wait_for_port(str(device), timeout=5, interval=0.01)
        await wait_for_port(str(device), timeout=0)  # already there: no wait at all

    run_bounded(scenario)
    assert device.exists()


def test_wait_for_port_times_out_on_a_path_that_stays_away(tmp_path: Path) -> None:
    missing = tmp_path / "ttyACM0"
    dangling = tmp_path / "ttyLARA"
    dangling.symlink_to(missing)

    async def scenario() -> None:
        with pytest.raises(PortError, match=f"{missing} did not come back within 0.05 s"):
            await wait_for_port(str(missing), timeout=0.05, interval=0.01)
        with pytest.raises(PortError, match="did not come back"):
            await wait_for_port(str(dangling), timeout=0.02, interval=0.01)

    run_bounded(scenario)


def test_wait_for_port_returns_when_the_tcp_port_accepts_again() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))  # bound but refusing until listen()
        url = f"rfc2217://127.0.0.1:{server.getsockname()[1]}"

        async def scenario() -> None:
            with pytest.raises(PortError, match="did not come back.*RFC 2217 server"):
                await wait_for_port(url, timeout=0.05, interval=0.01)
            asyncio.get_running_loop().call_later(0.05, server.listen)
            await wait_for_port(url, timeout=5, interval=0.01)

        run_bounded(scenario)


def test_wait_for_port_rejects_unknown_forms() -> None:
    with pytest.raises(ConfigError, match="not understood"):
        run_bounded(lambda: wait_for_port("COM3", timeout=1))
