"""larappp.metrics: the exposition text parsed back with prometheus_client's own parser, the
textfile replaced atomically, the HTTP endpoint scraped."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from larappp import metrics
from tests.aio import run_bounded

parser = pytest.importorskip("prometheus_client.parser")

SNAPSHOT: dict[str, Any] = {
    "state": "up",
    "modem": {
        "model": "LARA-R6001D", "firmware": "03.15", "imei": "352753090000001", "operator": 'Op "quoted"\\ne',
        "plmn": "22201", "act_text": "LTE", "roaming": True, "reboots": 1,
        "signal": {"rsrp_dbm": -96, "rsrq_db": -10.5, "rscp_dbm": None, "ecno_db": None, "rxlev_dbm": None},
    },
    "sessions": [
        {"cid": 1, "apn": "internet", "state": "up", "ifname": "lara1", "up_since": 1764620000.5, "losses": 2,
         "redials": 3, "packets_in": 10, "packets_out": 12, "bad_frames": 0},
        {"cid": 2, "apn": "ims", "state": "waiting", "losses": 1, "redials": 1},
    ],
}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_the_exposition_parses_and_holds_state_radio_and_session_counters() -> None:
    text = metrics.render(SNAPSHOT, {"lara1": {"rx_bytes": 1500, "tx_bytes": 900}})
    got = samples(text)
    one, two = (("apn", "internet"), ("cid", "1")), (("apn", "ims"), ("cid", "2"))
    assert got[("larappp_up", ())] == 1
    assert got[("larappp_state", (("state", "up"),))] == 1 and got[("larappp_state", (("state", "stopping"),))] == 0
    assert got[("larappp_signal_rsrp_dbm", ())] == -96 and got[("larappp_signal_rsrq_db", ())] == -10.5
    assert ("larappp_signal_rscp_dbm", ()) not in got  # unknown figures are left out, not 0
    assert got[("larappp_module_roaming", ())] == 1 and got[("larappp_module_reboots_total", ())] == 1
    info = next(dict(labels) for (name, labels) in got if name == "larappp_module_info")
    assert info["operator"] == 'Op "quoted"\\ne' and info["imei"] == "352753090000001" and info["act"] == "LTE"
    assert got[("larappp_session_up", one)] == 1 and got[("larappp_session_up", two)] == 0
    assert got[("larappp_session_state", (*two, ("state", "waiting")))] == 1
    assert got[("larappp_session_losses_total", one)] == 2 and got[("larappp_session_redials_total", two)] == 1
    assert got[("larappp_session_ppp_packets_received_total", one)] == 10
    assert got[("larappp_session_up_since_seconds", one)] == 1764620000.5
    assert got[("larappp_interface_receive_bytes_total", (*one, ("interface", "lara1")))] == 1500
    families = {f.name: f.type for f in parser.text_string_to_metric_families(text)}
    assert families["larappp_session_losses"] == "counter" and families["larappp_up"] == "gauge"
    assert text.count("# TYPE larappp_session_up gauge") == 1  # one HELP/TYPE per family


def test_a_daemon_that_is_down_exports_zeros() -> None:
    got = samples(metrics.render({"state": "down", "sessions": []}))
    assert got[("larappp_up", ())] == 0 and got[("larappp_state", (("state", "down"),))] == 1
    assert not any(name.startswith("larappp_session") for name, _ in got)


def test_interface_counters_come_from_sysfs(tmp_path: Path) -> None:
    stats = tmp_path / "lara1" / "statistics"
    stats.mkdir(parents=True)
    (stats / "rx_bytes").write_text("1234\n")
    (stats / "tx_bytes").write_text("99\n")
    snapshot = {"sessions": [{"ifname": "lara1"}, {"ifname": "gone0"}, {"ifname": "../x"}]}
    assert metrics.interface_counters(snapshot, tmp_path) == {"lara1": {"rx_bytes": 1234, "tx_bytes": 99}}


def test_the_textfile_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "larappp.prom"
    path.write_text("old")
    metrics.write_textfile(path, SNAPSHOT)
    assert samples(path.read_text())[("larappp_up", ())] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["larappp.prom"]  # no temporary file left


def test_the_http_endpoint_serves_metrics_and_nothing_else() -> None:
    async def get(port: int, path: str, method: str = "GET") -> tuple[str, str]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        answer = (await reader.read()).decode()
        writer.close()
        head, _, body = answer.partition("\r\n\r\n")
        return head, body

    async def scenario() -> None:
        server = metrics.MetricsServer("127.0.0.1:0", lambda: SNAPSHOT)
        await server.start()
        try:
            head, body = await get(server.port, "/metrics")
            assert head.startswith("HTTP/1.1 200 OK") and f"Content-Type: {metrics.CONTENT_TYPE}" in head
            assert samples(body)[("larappp_up", ())] == 1
            assert (await get(server.port, "/"))[0].startswith("HTTP/1.1 404")
            assert (await get(server.port, "/metrics", "POST"))[0].startswith("HTTP/1.1 405")
        finally:
            await server.close()

    run_bounded(scenario)


@pytest.mark.parametrize(("listen", "ok"), [
    ("127.0.0.1:9578", True), ("[::1]:9578", True), (":9578", True), ("", True),
    ("9578", False), ("localhost:http", False), ("host:99999", False),
])
def test_metrics_listen_is_host_and_port(tmp_path: Path, listen: str, ok: bool) -> None:
    from larappp.config import load_config
    from larappp.errors import ConfigError

    path = tmp_path / "larappp.toml"
    path.write_text(f'[modem]\nport = "sim"\nmetrics_listen = "{listen}"\n[[session]]\ncid = 1\napn = "internet"\n')
    if ok:
        assert load_config(str(path)).modem.metrics_listen == listen
    else:
        with pytest.raises(ConfigError, match="metrics_listen"):
            load_config(str(path))
