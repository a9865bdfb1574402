"""Modem bring-up (chat scripts, AT&D, per-command timeouts) against the simulated module, in process.

The simulator's sans-IO Module runs on the test's loop through its ModuleDriver; each
module port is a Pipe here, as a pty would be, so no kernel object is involved.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from larappp.config import ModemConfig, SessionConfig
from larappp.engine.at import AtRunner
from larappp.errors import PortClosed
from larappp.lara_r6 import commands, parsers
from larappp.modem import Modem
from larappp.sim.commands.identity import ICCID, IMEI
from larappp.sim.events import ModemLinesChanged
from larappp.sim.module import Module
from larappp.sim.runner import ModuleDriver
from larappp.sim.scenario import Scenario
from larappp.transport.pipe import Pipe
from tests.aio import run_bounded

SCENARIO = Scenario(operator="europe", grant="IPV4V6", registration_delay=0.2, reboot_time=0.5,
                    shutdown_delay=0.05, echo=True)


class SimPortPipe(Pipe):
    """One port of the in-process simulated module, seen from the host like a pty."""

    def __init__(self, driver: ModuleDriver, port: int) -> None:
        super().__init__()
        self.name = f"sim-port-{port}"
        self._driver = driver
        self._port = port
        self._incoming: asyncio.Queue[bytes] = asyncio.Queue()
        self._sink = _Sink(self._incoming)

    async def open(self) -> None:
        self._driver.attach(self._port, self._sink)
        self._driver.set_dtr(self._port, self._sink, True)

    async def read(self, max_bytes: int = 65536) -> bytes:
        data = await self._incoming.get()
        if not data:
            self._incoming.put_nowait(b"")
            raise PortClosed(f"{self.name} went away")
        return data

    async def write(self, data: bytes) -> None:
        self._driver.receive(self._port, data)

    async def close(self) -> None:
        self._driver.detach(self._port, self._sink)


class _Sink:
    """The driver's side of a SimPortPipe: module output goes into the pipe's read queue."""

    def __init__(self, incoming: asyncio.Queue[bytes]) -> None:
        self._incoming = incoming

    def write(self, data: bytes) -> None:
        self._incoming.put_nowait(data)

    def lines_changed(self, lines: ModemLinesChanged) -> None:
        pass

    def ports_closed(self, reopen_at: float | None) -> None:
        self._incoming.put_nowait(b"")

    def ports_reopened(self) -> None:
        pass


async def powered_module() -> tuple[Module, ModuleDriver]:
    module = Module(SCENARIO, ports=3, now=asyncio.get_running_loop().time())
    driver = ModuleDriver(module)
    driver.power_on()
    return module, driver


def control_opener(driver: ModuleDriver) -> Callable[[], Awaitable[Pipe]]:
    """Opens the module's control port (port 0) as a pipe, each time anew."""

    async def open_control() -> Pipe:
        pipe = SimPortPipe(driver, 0)
        await pipe.open()
        return pipe

    return open_control


def test_bring_up_runs_the_scripts_and_sets_amp_d2_and_cgev_reporting(tmp_path: Path) -> None:
    async def scenario() -> None:
        module, driver = await powered_module()
        open_control = control_opener(driver)
        config = ModemConfig(port="sim", xlat="off", state_dir=str(tmp_path), command_timeout=2.0)
        modem = Modem(config, open_control)
        try:
            await modem.connect()
            status = await modem.bring_up([SessionConfig(cid=2, apn="iot.example")])
            assert status.contexts[2].apn == "iot.example"
            control = module.ports[0]
            # AT&D2: a DTR drop clears the call; +CGEV and +CEREG URCs reach the control port.
            assert (control.amp_d, control.cvhu, control.cgerep) == (2, 0, 2)
            sent = [text for port, text, _ in module.history if port == 0]
            assert sent[:3] == ["", "+CMEE=2", "&D2"]  # AT answers, then MODULE_INIT in order
            assert sent.index("+CFUN=0") < sent.index('+CGDCONT=2,"IPV4V6","iot.example"')
            assert sent.index("+CGEREP=2") < sent.index("+CFUN=1")  # reporting before radio on

            # The network side ends a context: the control port's subscriber hears it.
            events = modem.network_events()
            other = SimPortPipe(driver, 1)
            await other.open()
            runner = AtRunner(other)
            await runner.start()
            await runner.command(commands.cgact(1, 2))
            await runner.command(commands.cgact(0, 2))
            seen = [parsers.parse_cgev((await asyncio.wait_for(events.get(), 2)).line)
                    for _ in range(2)]
            assert [(e.event, e.cid) for e in seen] == [("PDN ACT", 2), ("PDN DEACT", 2)]
            assert seen[1].deactivation
            await runner.stop()
            await other.close()
        finally:
            await modem.close()
            driver.close()

    run_bounded(scenario)


def test_a_reboot_brings_amp_d2_back(tmp_path: Path) -> None:
    async def scenario() -> None:
        module, driver = await powered_module()

        async def open_control() -> Pipe:
            if module.state != "on":
                raise PortClosed("the module is rebooting")
            pipe = SimPortPipe(driver, 0)
            await pipe.open()
            return pipe

        config = ModemConfig(port="sim", xlat="off", state_dir=str(tmp_path), command_timeout=2.0,
                             reboot_timeout=10.0)
        modem = Modem(config, open_control)
        try:
            await modem.connect()
            await modem.bring_up([SessionConfig(cid=2, apn="iot.example")])
            await modem.reboot()  # AT+CFUN=16: the stored profile (&D1) comes back with the boot
            assert module.counters["boots"] == 2
            assert module.ports[0].amp_d == 2  # MODULE_INIT ran again on the new port
        finally:
            await modem.close()
            driver.close()

    run_bounded(scenario)


def test_bring_up_reads_the_module_identity_operator_and_signal(tmp_path: Path) -> None:
    async def scenario() -> None:
        module, driver = await powered_module()
        open_control = control_opener(driver)
        modem = Modem(ModemConfig(port="sim", xlat="off", state_dir=str(tmp_path), command_timeout=2.0), open_control)
        try:
            await modem.connect()
            status = await modem.bring_up([SessionConfig(cid=1, apn="internet")])
            network = module.scenario.network
            assert (status.model, status.firmware) == (module.scenario.model, module.scenario.firmware)
            assert (status.imei, status.iccid) == (IMEI, ICCID)
            assert (status.plmn, status.operator) == (network.plmn, network.long_name)
            assert status.to_json()["act_text"] == "LTE"
            assert status.signal is not None and (status.signal.rsrp_dbm, status.signal.rsrq_db) == (-96, -10.0)
            # The operator format is numeric again for whatever reads +COPS next.
            assert module.ram.cops_format == 2
            assert (await modem.read_signal()) == status.signal
        finally:
            await modem.close()
            driver.close()

    run_bounded(scenario)
