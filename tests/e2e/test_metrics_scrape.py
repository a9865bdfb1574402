"""The daemon's metrics scraped as Prometheus would: the HTTP endpoint while it runs, the
textfile-collector file while it runs and after `down`."""

from __future__ import annotations

import os
import socket
import time
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.test_daemon_life import Larappp

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
parser = pytest.importorskip("prometheus_client.parser")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _values(text: str) -> dict[str, float]:
    """name{labels} -> value, labels in the parser's order."""
    return {
        sample.name + str(sorted(sample.labels.items())): sample.value
        for family in parser.text_string_to_metric_families(text) for sample in family.samples
    }


def test_the_running_daemon_is_scraped_over_http_and_leaves_a_final_textfile(tmp_path: Path) -> None:
    port, textfile = _free_port(), tmp_path / "textfile" / "larappp.prom"
    textfile.parent.mkdir()
    instance = Larappp(tmp_path)
    config = instance.config.read_text().replace(
        "[modem]\n", f'[modem]\nmetrics_file = "{textfile}"\nmetrics_listen = "127.0.0.1:{port}"\n', 1)
    instance.config.write_text(config)
    try:
        up = instance.run("up", "-q")
        assert up.returncode == 0, up.stderr
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            scraped = _values(answer.read().decode())
        cid1 = "[('apn', 'internet'), ('cid', '1')]"
        assert scraped["larappp_state[('state', 'up')]"] == 1
        assert scraped["larappp_signal_rsrp_dbm[]"] == -96
        assert scraped[f"larappp_session_state{cid1[:-1]}, ('state', 'connected')]"] == 1  # PPP off here
        assert scraped[f"larappp_session_losses_total{cid1}"] == 0
        # Rewritten every few seconds: from "starting" (written at once) to "up".
        deadline = time.monotonic() + 15
        while not (textfile.exists() and _values(textfile.read_text())["larappp_state[('state', 'up')]"] == 1):
            assert time.monotonic() < deadline, "the textfile never said up"
            time.sleep(0.2)
        assert instance.run("down").returncode == 0
        final = _values(textfile.read_text())
        assert final["larappp_up[]"] == 0 and final["larappp_state[('state', 'down')]"] == 1
        assert sorted(p.name for p in textfile.parent.iterdir()) == ["larappp.prom"]
    finally:
        instance.cleanup()
