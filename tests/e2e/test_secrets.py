"""Secrets: with a PAP or CHAP session up, the configured user and password appear in no
process's command line or environment and in no file or output larappp writes.

The built-in engine runs here against the simulator, which checks the credentials (its
NVM holds them, as AT+UAUTHREQ would have stored them, and it authenticates the host
with them). The pppd backend needs
a kernel with PPP: tests/kernel/test_ppp_pppd.py runs its engine with a stand-in pppd
(every process checked the same way) and tests/vm/test_vm_pppd_backend.py the real pppd.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from larappp.sim.cli import build_parser
from larappp.sim.scenario import Scenario
from larappp.sim.state import AuthSetting, Nvm
from tests.e2e.conftest import Cli
from tests.e2e.soak import simulator_and_dte, write_config
from tests.secretscan import files_showing, processes_showing

pytestmark = pytest.mark.root


@pytest.mark.parametrize("auth", ["pap", "chap"])
def test_no_process_or_log_shows_the_user_or_password(tmp_path: Path, auth: str) -> None:
    tag = uuid.uuid4().hex[:8]
    # unique strings, so nothing else on the machine matches; a password with spaces and
    # shell characters, as in real life
    user = f"larauser-{tag}"
    password = f"pw {tag}#$!x"
    secrets = [user, password, tag]
    cli = Cli(tmp_path)
    outputs: dict[str, str] = {}
    # The module checks what the host answers against the credentials in its NVM (as if
    # AT+UAUTHREQ had stored them): the PPP authentication really happens. That file is
    # the module's, not larappp's: the only file besides the config allowed to hold them.
    nvm = tmp_path / "module-nvm.json"
    scenario = Scenario.from_args(build_parser().parse_args([]))
    auth_type = {"pap": 1, "chap": 2}[auth]
    nvm.write_text(
        Nvm(scenario.mno_profile, auth={2: AuthSetting(auth_type, user, password)}).to_json()
    )
    with simulator_and_dte(tmp_path, "--nvm", str(nvm)) as (dte, sim):
        # cid 2: cid 1 is the default EPS bearer, which the host cannot authenticate (app note §4)
        credentials = f'auth = "{auth}"\nuser = "{user}"\npassword = "{password}"\n'
        config = write_config(cli, sim, credentials, cid=2)
        try:
            # -v: the AT trace (AT+UAUTHREQ carries both) goes to the output and the log
            up = cli.run(config, "-v", "up", netns=dte, ppp=True, timeout=120)
            outputs["up"] = up.stdout + up.stderr
            assert up.returncode == 0, outputs["up"]
            status = cli.run(config, "status", "--json", netns=dte)
            outputs["status"] = status.stdout + status.stderr
            state = json.loads(status.stdout)
            assert state["state"] == "up" and state["sessions"][0]["state"] == "up", state
            runtime, state_dir = tmp_path / "run", tmp_path / "state"
            log = (runtime / "larappp.log").read_text()
            assert "AT >> ATD*99***2#" in log  # the -v trace is in the daemon's log
            assert f"authenticated ({auth})" in outputs["up"]  # the module checked the credentials

            assert processes_showing(secrets) == []

            assert processes_showing(secrets) == []
            assert files_showing(secrets, [runtime, state_dir], skip={config}) == []

            down = cli.run(config, "-v", "down", netns=dte, timeout=90)
            outputs["down"] = down.stdout + down.stderr
            assert down.returncode == 0, outputs["down"]
        finally:
            cli.cleanup()
    assert files_showing(secrets, [tmp_path], skip={config, nvm}) == []
    for name, text in outputs.items():
        assert not any(secret in text for secret in secrets), f"a secret in the output of {name}"


def test_the_checks_find_a_secret(tmp_path: Path) -> None:
    (tmp_path / "log").write_text("user larauser-0 logged in")
    assert files_showing(["larauser-0"], [tmp_path], skip=set()) == [
        f"{tmp_path / 'log'}: 'larauser-0'"
    ]
    marker = f"marker-{uuid.uuid4().hex}"
    assert processes_showing([marker]) == []
    argv = [sys.executable, "-c", "import sys; sys.stdin.read()", marker]
    with subprocess.Popen(argv, stdin=subprocess.PIPE, env={"LARAPPP_TEST_MARKER": marker}) as proc:
        try:
            deadline = time.monotonic() + 10
            while len(found := processes_showing([marker])) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert found == [f"{proc.pid} cmdline", f"{proc.pid} environ"]
        finally:
            proc.communicate(b"")
