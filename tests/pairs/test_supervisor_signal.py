"""The supervisor reads +CESQ again on the idle control port, and stops when the port goes."""

from __future__ import annotations

import pytest

from larappp import supervisor
from larappp.config import default_config
from larappp.errors import PortClosed
from larappp.lara_r6.identity import SignalQuality
from tests.aio import run_bounded


class CountingModem:
    """Answers AT+CESQ twice, then its port is gone."""

    def __init__(self) -> None:
        self.reads = 0

    async def read_signal(self) -> SignalQuality:
        self.reads += 1
        if self.reads > 2:
            raise PortClosed("the control port went away")
        return SignalQuality(rsrp_dbm=-100 + self.reads)


def test_the_signal_is_refreshed_until_the_control_port_goes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor, "SIGNAL_REFRESH_INTERVAL", 0.01)
    modem = CountingModem()

    async def scenario() -> None:
        sup = supervisor.Supervisor(default_config())
        await sup._refresh_signal(modem)  # type: ignore[arg-type]  # returns once the port is gone

    run_bounded(scenario, timeout=5)
    assert modem.reads == 3
