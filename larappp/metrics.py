"""larappp's state, per-session counters and radio figures in the Prometheus text exposition
format (version 0.0.4), for a fleet of routers watched from one place.

Two ways out, both optional (`[modem]` in the config):
- `metrics_file`: a node_exporter textfile-collector file ("/var/lib/prometheus/node-exporter/
  larappp.prom"), replaced atomically every few seconds and once more after the teardown;
- `metrics_listen`: a small HTTP endpoint ("127.0.0.1:9578") answering GET /metrics.

The format is written by hand rather than with prometheus-client: it is a few lines of text,
larappp's metrics are all gauges and counters read from one snapshot, and a router should not
need one more package for it. The tests parse the output with prometheus_client's own parser.
`render()` is pure: a `status --json` snapshot in, text out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from larappp import __version__, runtime

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: how often the textfile is rewritten while the daemon runs
TEXTFILE_INTERVAL = 5.0
SESSION_STATES = ("connecting", "connected", "up", "lost", "waiting", "given-up", "hanging-up", "down", "failed", "dead")
DAEMON_STATES = ("starting", "up", "stopping", "down", "failed", "given-up", "dead")

# (name, help, unit suffix is part of the name) of the +CESQ figures (3GPP TS 27.007 §8.69)
_SIGNAL = (
    ("rsrp_dbm", "LTE reference signal received power (dBm), lower bound of the reported step"),
    ("rsrq_db", "LTE reference signal received quality (dB), lower bound of the reported step"),
    ("rscp_dbm", "UMTS received signal code power (dBm)"),
    ("ecno_db", "UMTS Ec/No (dB)"),
    ("rxlev_dbm", "GSM received signal level (dBm)"),
)
# session counters: (key in the session's status, metric name, help)
_SESSION_COUNTERS = (
    ("losses", "larappp_session_losses_total", "Links lost since the daemon started"),
    ("redials", "larappp_session_redials_total", "Redials since the daemon started"),
    ("packets_in", "larappp_session_ppp_packets_received_total", "PPP packets received from the module (built-in engine)"),
    ("packets_out", "larappp_session_ppp_packets_sent_total", "PPP packets sent to the module (built-in engine)"),
    ("bad_frames", "larappp_session_ppp_bad_frames_total", "PPP frames with a bad FCS or framing (built-in engine)"),
)
_INTERFACE_COUNTERS = (
    ("rx_bytes", "larappp_interface_receive_bytes_total", "Bytes received on the link's interface"),
    ("tx_bytes", "larappp_interface_transmit_bytes_total", "Bytes sent on the link's interface"),
    ("rx_packets", "larappp_interface_receive_packets_total", "Packets received on the link's interface"),
    ("tx_packets", "larappp_interface_transmit_packets_total", "Packets sent on the link's interface"),
    ("rx_dropped", "larappp_interface_receive_drop_total", "Received packets dropped on the link's interface"),
    ("tx_dropped", "larappp_interface_transmit_drop_total", "Packets to send dropped on the link's interface"),
)


def _escape(value: object) -> str:
    """A label value as the exposition format quotes it: backslash, double quote, newline."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: Mapping[str, object]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items()) + "}"


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class _Exposition:
    """Metric families in order, each with its HELP and TYPE once, then its samples."""

    def __init__(self) -> None:
        self._families: dict[str, tuple[str, str, list[str]]] = {}

    def add(self, name: str, kind: str, help_text: str, value: float, labels: Mapping[str, object] | None = None) -> None:
        family = self._families.setdefault(name, (kind, help_text, []))
        family[2].append(f"{name}{_labels(labels or {})} {_number(value)}")

    def lines(self) -> Iterator[str]:
        for name, (kind, help_text, samples) in self._families.items():
            yield f"# HELP {name} {help_text}"
            yield f"# TYPE {name} {kind}"
            yield from samples


def _int_or_none(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def render(snapshot: Mapping[str, Any], interfaces: Mapping[str, Mapping[str, int]] | None = None) -> str:
    """The exposition text of a state snapshot (as `status --json` holds it) and the link
    interfaces' kernel counters (`interface_counters`)."""
    out = _Exposition()
    out.add("larappp_info", "gauge", "larappp's version", 1, {"version": __version__})
    state = str(snapshot.get("state") or "down")
    out.add("larappp_up", "gauge", "1 when the daemon runs with every session up", 1 if state == "up" else 0)
    for name in DAEMON_STATES if state in DAEMON_STATES else (*DAEMON_STATES, state):
        out.add("larappp_state", "gauge", "The daemon's state, 1 for the current one", 1 if name == state else 0, {"state": name})
    modem = snapshot.get("modem") or {}
    if modem:
        out.add("larappp_module_info", "gauge", "The module and the network it is registered on", 1, {
            "model": modem.get("model") or "", "firmware": modem.get("firmware") or "", "imei": modem.get("imei") or "",
            "operator": modem.get("operator") or "", "plmn": modem.get("plmn") or "", "act": modem.get("act_text") or "",
        })
        out.add("larappp_module_roaming", "gauge", "1 when registered on a roaming network", 1 if modem.get("roaming") else 0)
        out.add("larappp_module_reboots_total", "counter", "Module reboots larappp asked for", modem.get("reboots") or 0)
        for key, help_text in _SIGNAL:
            value = (modem.get("signal") or {}).get(key)
            if isinstance(value, int | float):
                out.add(f"larappp_signal_{key}", "gauge", help_text, value)
    interfaces = interfaces or {}
    for session in snapshot.get("sessions") or []:
        labels = {"cid": session.get("cid"), "apn": session.get("apn") or ""}
        current = str(session.get("state") or "down")
        out.add("larappp_session_up", "gauge", "1 when the session's link is up", 1 if current == "up" else 0, labels)
        for name in SESSION_STATES if current in SESSION_STATES else (*SESSION_STATES, current):
            out.add("larappp_session_state", "gauge", "The session's state, 1 for the current one",
                    1 if name == current else 0, {**labels, "state": name})
        up_since = session.get("up_since")
        if isinstance(up_since, int | float):
            out.add("larappp_session_up_since_seconds", "gauge", "Unix time the link last came up", up_since, labels)
        for key, metric, help_text in _SESSION_COUNTERS:
            count = _int_or_none(session.get(key))
            if count is not None:
                out.add(metric, "counter", help_text, count, labels)
        ifname = session.get("ifname")
        for key, metric, help_text in _INTERFACE_COUNTERS:
            count = (interfaces.get(ifname) or {}).get(key) if isinstance(ifname, str) else None
            if count is not None:
                out.add(metric, "counter", help_text, count, {**labels, "interface": ifname})
    return "\n".join(out.lines()) + "\n"


def interface_counters(snapshot: Mapping[str, Any], sysfs: Path = Path("/sys/class/net")) -> dict[str, dict[str, int]]:
    """The kernel's counters of each session's interface that exists now."""
    counters: dict[str, dict[str, int]] = {}
    for session in snapshot.get("sessions") or []:
        ifname = session.get("ifname")
        if not isinstance(ifname, str) or not ifname or "/" in ifname:
            continue
        directory = sysfs / ifname / "statistics"
        values = {}
        for key, _, _ in _INTERFACE_COUNTERS:
            with contextlib.suppress(OSError, ValueError):
                values[key] = int((directory / key).read_text())
        if values:
            counters[ifname] = values
    return counters


def collect(snapshot: Mapping[str, Any]) -> str:
    return render(snapshot, interface_counters(snapshot))


def write_textfile(path: str | Path, snapshot: Mapping[str, Any]) -> None:
    """Replace the textfile-collector file at once (a scrape never sees half of it)."""
    runtime.write_atomic(path, collect(snapshot), 0o644)


class MetricsServer:
    """GET /metrics over HTTP/1.0-style exchanges: one request per connection, then close."""

    def __init__(self, listen: str, snapshot: Callable[[], Mapping[str, Any]]) -> None:
        host, _, port = listen.rpartition(":")
        self.host = host.strip("[]") or "127.0.0.1"
        self.port = int(port)
        self._snapshot = snapshot
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]  # the one picked for port 0

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            method, path, *_ = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ") + ["", ""]
            if method not in ("GET", "HEAD"):
                status, body, kind = "405 Method Not Allowed", "only GET\n", "text/plain"
            elif path.split("?", 1)[0] != "/metrics":
                status, body, kind = "404 Not Found", "see /metrics\n", "text/plain"
            else:
                status, body, kind = "200 OK", collect(self._snapshot()), CONTENT_TYPE
            data = body.encode()
            head = f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n"
            writer.write(head.encode() + (b"" if method == "HEAD" else data))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError) as exc:
            log.debug("metrics request dropped: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def publish(metrics_file: str, listen: str, snapshot: Callable[[], Mapping[str, Any]], stopped: asyncio.Event) -> None:
    """Until `stopped`: the textfile every TEXTFILE_INTERVAL s and the HTTP endpoint; the caller
    writes the last textfile after the teardown (`write_textfile`)."""
    server = MetricsServer(listen, snapshot) if listen else None
    if server is not None:
        try:
            await server.start()
            log.info("metrics on http://%s:%d/metrics", server.host, server.port)
        except OSError as exc:  # the address is taken: the links matter more than their metrics
            log.error("metrics endpoint %s not started: %s", listen, exc.strerror or exc)
            server = None
    try:
        while not stopped.is_set():
            if metrics_file:
                try:
                    write_textfile(metrics_file, snapshot())
                except OSError as exc:
                    log.warning("metrics file %s not written: %s", metrics_file, exc.strerror or exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopped.wait(), TEXTFILE_INTERVAL)
    finally:
        if server is not None:
            await server.close()
