"""End to end: CTS flow control over RFC 2217 (issue 10 item 1). The simulator's ports are
serial lines faster than its radio uplink; with larappp's pacing off, a UDP flood through
a session loses nothing inside the module when RTS/CTS is on (the module turns CTS off
while its uplink buffer is nearly full, larappp's pipe holds its writes, the loss happens
on the host where it is counted), and overflows the module's buffer when it is off.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from larappp.sim import CONTROL_NAME
from larappp.sim.control import request
from tests.e2e.conftest import Cli
from tests.e2e.test_ppp_e2e import SERVER_V4, Net, _config, _session, _up, net  # noqa: F401

pytestmark = pytest.mark.root

#: a 460 800 baud line (46 080 bytes/s, 369 kbit/s) in front of a 200 kbit/s radio uplink
BAUD = 460800
RADIO_UPLINK_KBIT = 200
MODULE_BUFFER = 16384


def _sim_status(tmp_path: Path) -> dict[str, Any]:
    answer = request(str(tmp_path / "sim" / CONTROL_NAME), {"fault": "status"})
    assert answer["ok"], answer
    return answer


@pytest.mark.parametrize("rtscts", [True, False])
def test_udp_flood_over_rfc2217_loses_nothing_in_the_module_with_cts(
    cli: Cli, net, tmp_path: Path, rtscts: bool,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    n: Net = net("--baud", str(BAUD), "--uplink-kbit", str(RADIO_UPLINK_KBIT),
                 "--uplink-buffer", str(MODULE_BUFFER), sim_in_dte=True)
    flow = 'flow_control = "rtscts"\n' if rtscts else 'flow_control = "none"\n'
    cfg = _config(cli, n, _session(n.sim.urls[1], 1, "internet"), modem_extra=f"uplink_kbit = 0\n{flow}")
    _up(cli, cfg, n)
    before = _sim_status(tmp_path)
    result = n.iperf("-u", "-b", f"{4 * RADIO_UPLINK_KBIT}K", "-l", "1200", seconds=4)
    time.sleep(1.0)  # what the line and the radio still hold
    after = _sim_status(tmp_path)
    time.sleep(2.5)  # the daemon writes its state every 2 s
    session = json.loads(cli.run(cfg, "status", "--json", netns=n.dte).stdout)["sessions"][0]
    dropped = after["radio"]["uplink"]["dropped"] - before["radio"]["uplink"]["dropped"]
    carried = after["radio"]["uplink"]["packets"] - before["radio"]["uplink"]["packets"]
    line = after["lines"][1]["from_dte"]
    received = result["end"]["sum"]
    print(f"rtscts {rtscts}: UDP at {4 * RADIO_UPLINK_KBIT} kbit/s over a {BAUD} baud line into a "
          f"{RADIO_UPLINK_KBIT} kbit/s radio: module carried {carried}, dropped {dropped} "
          f"(peak backlog {after['radio']['uplink']['peak_backlog']}); iperf lost {received['lost_percent']:.0f}%; "
          f"line held {line['held_s']} s ({line['holds']} times); pipe {session['uplink']['port_flow']}; "
          f"host drops {session['drops']}")
    assert carried > 50, after
    if rtscts:
        assert dropped == 0, (before["radio"], after["radio"])
        assert line["holds"] > 0 and session["uplink"]["port_flow"]["cts_offs"] > 0, (line, session["uplink"])
    else:
        assert dropped > 10, (before["radio"], after["radio"])
        assert line["holds"] == 0 and session["uplink"]["port_flow"] == {}, (line, session["uplink"])
