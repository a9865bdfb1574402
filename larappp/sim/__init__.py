"""The LARA-R6 simulator: larappp's embedded default target.

One simulated module (larappp.sim.module, sans-IO) with several AT ports, each published
as a pty with a stable path and, optionally, as an RFC 2217 server. It is the module
side only and does not use larappp's host code.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Self

from larappp.errors import ConfigError, PortError
from larappp.sim.control import ControlServer, SimControl
from larappp.sim.data import DataSession, DataSessionFactory, DiscardDataSession
from larappp.sim.module import Module
from larappp.sim.ports import PtyPortServer, Rfc2217PortServer
from larappp.sim.ppp import ppp_session_factory
from larappp.sim.radio import Radio
from larappp.sim.runner import ModuleDriver
from larappp.sim.scenario import Scenario
from larappp.sim.state import Nvm

if TYPE_CHECKING:
    from larappp.sim.network import SimNetwork

__all__ = [
    "DEFAULT_PTY_DIR",
    "DataSession",
    "DiscardDataSession",
    "Module",
    "Scenario",
    "Simulator",
    "run_simulator",
]

DEFAULT_PTY_DIR = "/run/larappp-sim"
LINK_NAME = "ttyLARA{index}"
#: What a simulator leaves in its pty dir: port links (and their temporary names).
_STALE = re.compile(r"ttyLARA\d+(\.\d+\.tmp)?")
#: Held (flock) by the simulator using a pty dir; a killed one releases it.
LOCK_NAME = ".lock"
CONTROL_NAME = "control.sock"
#: Simulator(control_path=AUTO): the control socket in the pty dir.
AUTO = "auto"


def default_control_path(pty_dir: str | None) -> str | None:
    """`<pty_dir>/control.sock`; None without a pty dir or where that path is too long
    for a unix socket (sun_path holds 108 bytes)."""
    if pty_dir is None:
        return None
    path = os.path.join(pty_dir, CONTROL_NAME)
    return path if len(os.fsencode(path)) < 100 else None


class Simulator:
    """One simulated LARA-R6 whose ports are ptys (stable symlinks) and/or RFC 2217 servers."""

    def __init__(
        self,
        scenario: Scenario | None = None,
        *,
        ports: int = 3,
        pty_dir: str | None = DEFAULT_PTY_DIR,
        rfc2217_base_port: int | None = None,
        host: str = "127.0.0.1",
        session_factory: DataSessionFactory = DiscardDataSession,
        log: Callable[[str], None] | None = None,
        nvm_path: str | None = None,
        network: SimNetwork | None = None,
        control_path: str | None = AUTO,
    ) -> None:
        """`rfc2217_base_port`: None for no RFC 2217, 0 for free ports, N for N, N+1, ...

        `nvm_path`: a JSON file holding the module's NVM across simulator runs (power cycles).
        `network`: the simulated operator network; with it, data calls run module-side PPP.
        `control_path`: a unix socket taking faults (larappp.sim.control), by default
        `<pty_dir>/control.sock`; None for none. `self.control` takes the same faults
        in-process either way.
        """
        self.scenario = scenario or Scenario()
        self.module = Module(self.scenario, ports=ports, session_factory=session_factory)
        self.nvm_path = nvm_path
        self.network = network
        #: the module's one radio, shared by its data calls (rates, latency, uplink buffer)
        self.radio: Radio = self.module.radio
        if nvm_path is not None and os.path.exists(nvm_path):
            try:
                with open(nvm_path, encoding="utf-8") as f:
                    self.module.nvm = Nvm.from_json(f.read())
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ConfigError(f"simulator NVM file {nvm_path} is unreadable ({exc}): delete it") from None
        self.ports = ports
        self.pty_dir = pty_dir
        self.rfc2217_base_port = rfc2217_base_port
        self.host = host
        self.log = log
        self.driver: ModuleDriver | None = None
        self.pty_servers: list[PtyPortServer] = []
        self.rfc2217_servers: list[Rfc2217PortServer] = []
        self._made_pty_dir = False
        self._pty_dir_lock: int | None = None
        #: Faults while it runs (larappp.sim.control), usable once started.
        self.control = SimControl(self)
        self.control_path = default_control_path(pty_dir) if control_path == AUTO else control_path
        self._control_server: ControlServer | None = None

    @property
    def pty_paths(self) -> list[str]:
        """The stable paths of the ports (symlinks to the current /dev/pts/N)."""
        return [server.path for server in self.pty_servers]

    @property
    def rfc2217_urls(self) -> list[str]:
        return [server.url for server in self.rfc2217_servers]

    def describe(self) -> list[str]:
        """One line per port: "port 0: pty /run/larappp-sim/ttyLARA0 rfc2217://127.0.0.1:7000"."""
        lines = []
        for index in range(self.ports):
            parts = [f"port {index}:"]
            if self.pty_servers:
                parts.append(f"pty {self.pty_servers[index].path}")
            if self.rfc2217_servers:
                parts.append(self.rfc2217_servers[index].url)
            lines.append(" ".join(parts))
        return lines

    async def start(self) -> None:
        """Boot the module and publish its ports; PortError naming what to change on failure."""
        self.driver = driver = ModuleDriver(self.module, log=self.log)
        if self.network is not None:
            self.module.session_factory = ppp_session_factory(self.network, lambda: driver.now, driver.wake,
                                                              self.radio)
        self.driver.power_on()
        try:
            if self.pty_dir is not None:
                made = not os.path.isdir(self.pty_dir)
                self._pty_dir_lock, left_by_a_killed_one = _claim_pty_dir(self.pty_dir)
                # A folder holding only a killed simulator's links was a simulator's too.
                self._made_pty_dir = made or left_by_a_killed_one
                for index in range(self.ports):
                    link = os.path.join(self.pty_dir, LINK_NAME.format(index=index))
                    pty_server = PtyPortServer(self.driver, index, link)
                    await pty_server.start()
                    self.pty_servers.append(pty_server)
            if self.rfc2217_base_port is not None:
                for index in range(self.ports):
                    tcp_port = self.rfc2217_base_port + index if self.rfc2217_base_port else 0
                    rfc_server = Rfc2217PortServer(self.driver, index, host=self.host, tcp_port=tcp_port)
                    await rfc_server.start()
                    self.rfc2217_servers.append(rfc_server)
            if self.control_path is not None:
                self._control_server = ControlServer(self.control, self.control_path)
                await self._control_server.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Unpublish every port (ptys closed, symlinks removed, sockets closed) and power off."""
        if self._control_server is not None:
            await self._control_server.stop()
            self._control_server = None
        for rfc_server in self.rfc2217_servers:
            await rfc_server.stop()
        for pty_server in self.pty_servers:
            await pty_server.stop()
        if self.driver is not None:
            self.driver.close()
        if self.nvm_path is not None:
            tmp = self.nvm_path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:  # noqa: ASYNC230 - a few hundred bytes at shutdown
                f.write(self.module.nvm.to_json())
            os.replace(tmp, self.nvm_path)
        self.pty_servers.clear()
        self.rfc2217_servers.clear()
        if self.pty_dir is not None and self._pty_dir_lock is not None:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.pty_dir, LOCK_NAME))
            os.close(self._pty_dir_lock)
            self._pty_dir_lock = None
        if self.pty_dir is not None and self._made_pty_dir:
            self._made_pty_dir = False
            with contextlib.suppress(OSError):
                os.rmdir(self.pty_dir)  # ours, and only when empty

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _claim_pty_dir(pty_dir: str) -> tuple[int, bool]:
    """Lock `pty_dir` for this simulator and remove what a killed one left there (port
    links, temporary links): (the lock's fd, whether anything was left); PortError when a
    live simulator holds it."""
    try:
        os.makedirs(pty_dir, exist_ok=True)
        fd = os.open(os.path.join(pty_dir, LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise PortError(f"cannot use {pty_dir} for the simulator's ptys ({exc.strerror}): "
                        "choose another --pty-dir") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise PortError(f"another simulator has its ports in {pty_dir}: stop it or choose another --pty-dir") from None
    left = False
    for name in os.listdir(pty_dir):
        path = os.path.join(pty_dir, name)
        if _STALE.fullmatch(name) and os.path.islink(path):
            left = True
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    return fd, left


async def run_simulator(
    scenario: Scenario,
    *,
    pty_dir: str | None,
    rfc2217_base_port: int | None,
    ports: int = 3,
    announce: Callable[[str], None],
    log: Callable[[str], None] | None = None,
    nvm_path: str | None = None,
    network_netns: str | None = None,
    control_path: str | None = AUTO,
) -> None:
    """Run a simulator until cancelled, announcing one line per port once it is up.

    With `network_netns`, data calls run PPP into that network namespace, which plays
    the operator's network and the internet (created if missing, removed if created).
    """
    network = None
    if network_netns is not None:
        from larappp.sim.network import SimNetwork

        network = await SimNetwork.start(network_netns or None)
    try:
        simulator = Simulator(scenario, ports=ports, pty_dir=pty_dir, rfc2217_base_port=rfc2217_base_port, log=log,
                              nvm_path=nvm_path, network=network, control_path=control_path)
        await simulator.start()
        try:
            for line in simulator.describe():
                announce(line)
            if simulator.control_path is not None:
                announce(f"control: {simulator.control_path}")
            if network is not None:
                announce(f"network: namespace {network_netns}, servers {', '.join(map(str, network.plan.internet_addresses))}")
            await asyncio.Event().wait()
        finally:
            await simulator.stop()
    finally:
        if network is not None:
            await network.stop()
