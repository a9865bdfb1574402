"""End to end over RFC 2217: DCD dropping on the session's port ends the session as lost
("DCD dropped"), the host is undone and the call redialled, as for any other loss.

The simulator runs in the DTE's namespace so that larappp reaches its RFC 2217 ports on
that namespace's lo. `dcd-off` drops DCD alone (PPP still answers: only the line tells);
`drop` also sends NO CARRIER, so either signal may be the first larappp sees.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from larappp.sim.control import request
from tests.e2e import test_ppp_e2e
from tests.e2e.conftest import Cli
from tests.e2e.test_ppp_e2e import SERVER_V4, Net, _assert_clean_after_down, _config, _session
from tests.e2e.test_recovery import _status, _wait_for

net = test_ppp_e2e.net

pytestmark = pytest.mark.root

#: the fault, and what the loss cause may name
FAULTS = {"dcd-off": ("DCD dropped",), "drop": ("DCD dropped", "NO CARRIER")}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_dcd_drop_over_rfc2217_is_a_loss_and_redialled(cli: Cli, net, fault: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    n: Net = net(sim_in_dte=True)
    url = n.sim.urls[1]
    cfg = _config(cli, n, _session(url, 1, "internet", extra="holdoff = 0.3\n"))
    up = cli.run(cfg, "up", netns=n.dte, timeout=120)
    assert up.returncode == 0, up.stderr + up.stdout
    log = cfg.parent / "run" / "larappp.log"
    injected, injected_wall = time.monotonic(), time.time()
    answer = request(str(tmp_path / "sim" / "control.sock"), {"fault": fault, "cid": 1})
    assert answer["ok"], answer
    lost = _wait_for("the loss", lambda: (s := _status(cli, cfg, n)["sessions"][0])["losses"] >= 1 and s, 15, log)
    detected = lost["last_loss"] - injected_wall  # the session's own time of the loss
    assert any(c in lost["last_loss_cause"] for c in FAULTS[fault]), lost
    back = _wait_for("the redial", lambda: (s := _status(cli, cfg, n)["sessions"][0])["state"] == "up" and s, 60, log)
    recovered = time.monotonic() - injected
    assert back["losses"] == 1 and back["redials"] >= 1, back
    n.dte_run("ping", "-c", "1", "-W", "3", SERVER_V4)
    print(f"{fault}: lost ({lost['last_loss_cause']}) {detected * 1000:.0f} ms after the fault,"
          f" usable again after {recovered:.2f} s")
    assert detected < 3  # generous: well under 1 s here
    # the same module port through its pty: back in command mode after `down`
    _assert_clean_after_down(cli, cfg, n, [n.sim.ptys[1]])
