"""larappp's configuration: one TOML file for the modem and up to three PPP sessions.

Every mistake is reported as one ConfigError naming the file, the key and what to change.
The PDP rules of the app note (one APN per context, CID 1 is the LTE default bearer, at
most three PPP instances...) are checked by `larappp.vendor.rules.check_pdp_plan`.
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from larappp.errors import ConfigError
from larappp.proto.ppp.lcp import ECHO_FAILURES, ECHO_INTERVAL

SIM_PORT = "sim"
TEARDOWN_METHODS = ("lcp", "dtr", "escape", "ath")
BACKENDS = ("auto", "builtin", "pppd")
AUTH_METHODS = ("none", "pap", "chap")
PDP_TYPES = ("IP", "IPV6", "IPV4V6")
#: the IP families a PDP type carries (3GPP TS 27.007 +CGDCONT <PDP_type>)
FAMILIES_OF_PDP_TYPE: dict[str, tuple[int, ...]] = {"IP": (4,), "IPV6": (6,), "IPV4V6": (4, 6)}
DNS_MODES = ("auto", "file", "resolvconf", "resolved", "none")
XLAT_MODES = ("auto", "off")

DEFAULT_CONFIG_PATH = Path("/etc/larappp/larappp.toml")
#: the longest wait before a redial, however often it failed (the hold-off doubles up to this)
HOLDOFF_MAX_S = 60.0
#: the LCP echo interval's range in seconds (0 turns the keepalive off, as in pppd)
LCP_ECHO_INTERVAL_RANGE = (1.0, 3600.0)
LCP_ECHO_FAILURE_RANGE = (1, 100)


@dataclass(frozen=True)
class SimConfig:
    """Knobs of the built-in simulator used when `modem.port = "sim"`."""

    operator: str = "europe"
    grant: str = "IPV4V6"
    registration_delay: float = 1.0
    reboot_time: float = 1.0
    echo: bool = True
    urc_noise: float = 0.0
    #: the namespace that plays the operator network and the internet ("" for none: calls
    #: connect but carry nothing)
    network: str = "larappp-sim-inet"
    #: the simulated radio (larappp.sim.radio): kbit/s each way (0: no limit; LTE Cat 1 is
    #: 10300 down and 5200 up), one-way latency, the module's uplink buffer in bytes
    downlink_kbit: int = 0
    uplink_kbit: int = 0
    latency_ms: float = 0.0
    uplink_buffer: int = 16384
    #: every simulated port as a serial line at this baud rate, 8N1 (larappp.sim.line;
    #: 0: no line limit). The built-in simulator's ports are ptys: no CTS flow control there.
    baud: int = 0


@dataclass(frozen=True)
class ModemConfig:
    """How to reach the module and how to bring it up."""

    port: str = SIM_PORT
    baud: int = 115200
    rtscts: bool = False
    mno_profile: int | None = None
    embpf: str | None = None
    fix_host_ports: bool = False
    xlat: str = "auto"
    default_cid: int | None = None
    default_ip_type: int = 0
    disable_lwm2m: bool = True
    command_timeout: float = 10.0
    registration_timeout: float = 180.0
    reboot_timeout: float = 60.0
    state_dir: str = "/var/lib/larappp"
    runtime_dir: str = "/run/larappp"
    #: executables run when a link comes up, goes down or is lost (larappp.hooks)
    hooks_dir: str = "/etc/larappp/hooks.d"
    hooks_timeout: float = 30.0
    #: Prometheus text format (larappp.metrics): a textfile-collector file, an HTTP host:port
    metrics_file: str = ""
    metrics_listen: str = ""
    #: the radio's uplink in kbit/s, which the host paces all sessions together to (split in
    #: equal shares, larappp.transport.shaping); LTE Cat 1 by default; 0 turns pacing off
    uplink_kbit: int = 5200


@dataclass(frozen=True)
class SessionConfig:
    """One PDP context carried by one PPP session on one module port."""

    cid: int
    apn: str
    pdp_type: str = "IPV4V6"
    auth: str = "none"
    user: str = ""
    password: str = field(default="", repr=False)
    teardown: str = "lcp"
    backend: str = "auto"
    port: str | None = None
    ifname: str | None = None
    mtu: int | None = None
    default_route: bool = True
    metric: int | None = None
    dns: str = "auto"
    #: pppd's names and meaning: redial a lost link, wait `holdoff` s first (doubling with each
    #: failed attempt, up to HOLDOFF_MAX_S), give up after `maxfail` failed attempts in a row (0: never)
    persist: bool = True
    holdoff: float = 1.0
    maxfail: int = 10
    #: seconds between LCP Echo-Requests, 0 for none (pppd's lcp-echo-interval); the
    #: defaults suit a cellular module, see larappp.proto.ppp.lcp.ECHO_INTERVAL
    lcp_echo_interval: float = ECHO_INTERVAL
    #: unanswered Echo-Requests in a row that end the session (pppd's lcp-echo-failure)
    lcp_echo_failure: int = ECHO_FAILURES
    #: router mode: masquerade IPv4 leaving this link, translated ports outside modem.embpf
    #: (app note §4.3, figure 5; larappp.nftrules)
    nat: bool = False
    #: drop IPv6 arriving on this link except replies and the ICMPv6 IPv6 needs (app note
    #: §4.1.2: the global address is otherwise open to the internet; RFC 4890)
    firewall_ipv6: bool = False

    @property
    def families(self) -> tuple[int, ...]:
        return FAMILIES_OF_PDP_TYPE[self.pdp_type]

    @property
    def name(self) -> str:
        return self.ifname or f"lara{self.cid}"

    def holdoff_after(self, failures: int) -> float:
        """The wait before a redial: `holdoff`, doubled for each failed redial in a row, capped."""
        return float(min(self.holdoff * 2 ** min(failures, 16), max(self.holdoff, HOLDOFF_MAX_S)))


@dataclass(frozen=True)
class Config:
    """The whole configuration: modem, sessions, and the simulator's knobs."""

    modem: ModemConfig
    sessions: tuple[SessionConfig, ...]
    sim: SimConfig = SimConfig()
    source: str = "<defaults>"

    @property
    def uses_simulator(self) -> bool:
        return self.modem.port == SIM_PORT

    def secrets(self) -> list[str]:
        return [s.password for s in self.sessions if s.password] + [
            s.user for s in self.sessions if s.user
        ]


def toml_text(value: object) -> str:
    """A config value as it is written in TOML ("x", true, 1.5, [1, 2]), never a Python repr."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def default_config() -> Config:
    """The embedded default: one dual-stack session against the built-in simulator.

    No default route: run in the host's own namespace, it must not take the host's
    traffic to a simulated network (scripts/demo.py runs it in a namespace with one).
    """
    return Config(
        modem=ModemConfig(embpf="6000-6200"),
        sessions=(SessionConfig(cid=1, apn="internet", teardown="lcp", default_route=False),),
    )


def load_config(path: str | Path | None, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate a TOML file; None gives the embedded simulator default.

    The directories systemd made for the service win over the file (`with_service_directories`).
    """
    config = default_config() if path is None else _read_config(Path(path))
    return with_service_directories(config, os.environ if environ is None else environ)


def with_service_directories(config: Config, environ: Mapping[str, str]) -> Config:
    """`config` with runtime_dir and state_dir from $RUNTIME_DIRECTORY and $STATE_DIRECTORY when set.

    systemd sets them for RuntimeDirectory= and StateDirectory= (systemd.exec(5)), the only
    places a sandboxed unit may write; with several directories the paths are joined by ":",
    and larappp takes the first.
    """
    runtime = environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    state = environ.get("STATE_DIRECTORY", "").split(":")[0]
    if not runtime and not state:
        return config
    modem = replace(
        config.modem,
        runtime_dir=runtime or config.modem.runtime_dir,
        state_dir=state or config.modem.state_dir,
    )
    return replace(config, modem=modem)


def _read_config(p: Path) -> Config:
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {p} does not exist: create it or pass --config") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {p} cannot be read ({exc}): fix its permissions or encoding") from None
    return parse_config(text, source=str(p))


def parse_config(text: str, *, source: str = "<config>") -> Config:
    """Parse TOML text into a Config, naming `source` in every error."""
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        # ValueError: an integer past Python's int() digit limit (4300 digits)
        raise ConfigError(f"{source} is not valid TOML ({exc}): fix the syntax there") from None
    reader = _Reader(source)
    unknown = set(data) - {"modem", "session", "sim"}
    if unknown:
        raise ConfigError(
            f"{source}: unknown section [{min(unknown)}]; the sections are [modem], [[session]] and [sim]"
        )
    modem = reader.modem(reader.table(data, "modem"))
    sessions_raw = data.get("session", [])
    if not isinstance(sessions_raw, list) or not all(isinstance(s, dict) for s in sessions_raw):
        raise ConfigError(f"{source}: sessions are written as [[session]] tables")
    if not sessions_raw:
        raise ConfigError(f"{source}: no [[session]] is configured; add one with at least cid and apn")
    sessions = tuple(reader.session(i, s) for i, s in enumerate(sessions_raw))
    sim = reader.sim(reader.table(data, "sim"))
    config = Config(modem=modem, sessions=sessions, sim=sim, source=source)
    _check_cross(config)
    if config.uses_simulator:
        _check_sim(config)
    return config


def _check_sim(config: Config) -> None:
    """The simulator's network name (its scenario knobs: preflight.check_startable, which may
    import the simulator; loading a config must not)."""
    sim = config.sim
    if sim.network and not all(c.isalnum() or c in "-_." for c in sim.network):
        raise ConfigError(f"{config.source}: sim.network = {toml_text(sim.network)} is not a namespace name (letters, digits, - _ .)")


def _check_cross(config: Config) -> None:
    src = config.source
    cids = [str(s.cid) for s in config.sessions]
    if len(set(cids)) != len(cids):
        raise ConfigError(f"{src}: two sessions use cid {_dup(cids)}; give each session its own cid")
    names = [s.name for s in config.sessions]
    if len(set(names)) != len(names):
        raise ConfigError(f"{src}: two sessions use the interface name {_dup(names)}; give each its own ifname")
    # The embedded simulator gives each session a port of its own (session.port does not apply).
    if not config.uses_simulator:
        session_ports = [s.port or config.modem.port for s in config.sessions]
        if len(set(session_ports)) != len(session_ports):
            raise ConfigError(
                f"{src}: sessions share the port {_dup(session_ports)}; each PPP session needs its own module port "
                "(set session.port, e.g. /dev/ttyACM0, /dev/ttyACM2)"
            )
    from larappp.lara_r6 import ports, rules

    rules.check_pdp_plan(
        [
            rules.PdpPlan(
                cid=s.cid, apn=s.apn, pdp_type=s.pdp_type, auth=s.auth, user=s.user,
                password=s.password, mtu=s.mtu,
            )
            for s in config.sessions
        ],
        mno_profile=config.modem.mno_profile,
    )
    if config.modem.embpf is not None:
        try:
            ports.check_uembpf_range(ports.PortRange.parse(config.modem.embpf))
        except ConfigError as exc:
            raise ConfigError(f"{src}: modem.embpf: {exc}") from None


def _dup(items: list[str]) -> str:
    seen: set[str] = set()
    for item in items:
        if item in seen:
            return item
        seen.add(item)
    return ""


_KIND_NAMES: dict[type | tuple[type, ...], str] = {
    int: "a whole number", float: "a number", (int, float): "a number", str: "a string",
    bool: "true or false", list: "a list", dict: "a table",
}


class _Reader:
    """Typed access to TOML tables, with errors that name the key."""

    def __init__(self, source: str) -> None:
        self.source = source

    def table(self, data: dict[str, Any], key: str) -> dict[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{self.source}: [{key}] must be a table")
        return value

    def _get(self, where: str, table: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        if key not in table:
            return default
        value = table[key]
        if isinstance(value, bool) and kind in (int, float, (int, float)):
            raise ConfigError(f"{self.source}: {where}.{key} must be a number, not {toml_text(value)}")
        if not isinstance(value, kind):
            raise ConfigError(f"{self.source}: {where}.{key} must be {_KIND_NAMES.get(kind, 'of another type')}, not {toml_text(value)}")
        if kind == (int, float) and isinstance(value, int) and abs(value) > sys.float_info.max:
            raise ConfigError(f"{self.source}: {where}.{key} is far out of range: give a number such as 10")
        return value

    def _choice(self, where: str, table: dict[str, Any], key: str, choices: tuple[str, ...], default: str) -> str:
        value = self._get(where, table, key, str, default)
        if value not in choices:
            raise ConfigError(f"{self.source}: {where}.{key} = {toml_text(value)} is not one of {', '.join(choices)}")
        return str(value)

    def _unknown(self, where: str, table: dict[str, Any], allowed: set[str]) -> None:
        extra = sorted(set(table) - allowed)
        if extra:
            raise ConfigError(f"{self.source}: unknown key {where}.{extra[0]}; known keys: {', '.join(sorted(allowed))}")

    def _positive(self, where: str, key: str, value: float) -> float:
        if not value > 0:  # nan too
            raise ConfigError(f"{self.source}: {where}.{key} must be greater than 0")
        return value

    def modem(self, t: dict[str, Any]) -> ModemConfig:
        w = "modem"
        self._unknown(w, t, set(ModemConfig.__dataclass_fields__) | {"flow_control"})
        d = ModemConfig()
        port = self._get(w, t, "port", str, d.port)
        if port != SIM_PORT and not (port.startswith(("/", "rfc2217://"))):
            raise ConfigError(
                f"{self.source}: modem.port = {toml_text(port)}: use \"sim\", a device path such as /dev/ttyACM0, "
                "or rfc2217://host:port"
            )
        baud = self._get(w, t, "baud", int, d.baud)
        if baud not in (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 1000000, 3000000):
            raise ConfigError(f"{self.source}: modem.baud = {baud} is not a rate the module supports (e.g. 115200)")
        flow = self._get(w, t, "flow_control", str, None)
        rtscts = self._get(w, t, "rtscts", bool, d.rtscts)
        if flow is not None:
            if flow not in ("rtscts", "none"):
                raise ConfigError(f"{self.source}: modem.flow_control = {toml_text(flow)} is not one of rtscts, none")
            rtscts = flow == "rtscts"
        mno = self._get(w, t, "mno_profile", int, d.mno_profile)
        if mno is not None and not 0 <= mno <= 255:
            raise ConfigError(f"{self.source}: modem.mno_profile = {mno} is out of range 0..255")
        default_cid = self._get(w, t, "default_cid", int, d.default_cid)
        if default_cid is not None and not 1 <= default_cid <= 8:
            raise ConfigError(f"{self.source}: modem.default_cid = {default_cid} is out of range 1..8")
        ip_type = self._get(w, t, "default_ip_type", int, d.default_ip_type)
        if ip_type not in (0, 1, 2):
            raise ConfigError(f"{self.source}: modem.default_ip_type must be 0 (IPv4), 1 (IPv6) or 2 (IPv4v6)")
        return ModemConfig(
            port=port,
            baud=baud,
            rtscts=rtscts,
            mno_profile=mno,
            embpf=self._get(w, t, "embpf", str, d.embpf),
            fix_host_ports=self._get(w, t, "fix_host_ports", bool, d.fix_host_ports),
            xlat=self._choice(w, t, "xlat", XLAT_MODES, d.xlat),
            default_cid=default_cid,
            default_ip_type=ip_type,
            disable_lwm2m=self._get(w, t, "disable_lwm2m", bool, d.disable_lwm2m),
            command_timeout=self._positive(w, "command_timeout", float(self._get(w, t, "command_timeout", (int, float), d.command_timeout))),
            registration_timeout=self._positive(w, "registration_timeout", float(self._get(w, t, "registration_timeout", (int, float), d.registration_timeout))),
            reboot_timeout=self._positive(w, "reboot_timeout", float(self._get(w, t, "reboot_timeout", (int, float), d.reboot_timeout))),
            state_dir=self._get(w, t, "state_dir", str, d.state_dir),
            runtime_dir=self._get(w, t, "runtime_dir", str, d.runtime_dir),
            hooks_dir=self._get(w, t, "hooks_dir", str, d.hooks_dir),
            hooks_timeout=self._positive(w, "hooks_timeout", float(self._get(w, t, "hooks_timeout", (int, float), d.hooks_timeout))),
            metrics_file=self._get(w, t, "metrics_file", str, d.metrics_file),
            metrics_listen=self._listen(w, self._get(w, t, "metrics_listen", str, d.metrics_listen)),
            uplink_kbit=self._uplink_kbit(w, t, d.uplink_kbit),
        )

    def _listen(self, where: str, value: str) -> str:
        """"host:port" ("127.0.0.1:9578", "[::1]:9578", ":9578" for every address) or ""."""
        host, colon, port = value.rpartition(":")
        if value and not (colon and port.isdigit() and 0 <= int(port) <= 65535 and " " not in host):
            raise ConfigError(
                f"{self.source}: {where}.metrics_listen = \"{value}\" is not host:port: write it as \"127.0.0.1:9578\""
            )
        return value

    def _uplink_kbit(self, w: str, t: dict[str, Any], default: int) -> int:
        kbit = self._get(w, t, "uplink_kbit", int, default)
        if kbit < 0 or 0 < kbit < 8:
            raise ConfigError(
                f"{self.source}: {w}.uplink_kbit = {kbit}: give the radio's uplink in kbit/s "
                "(LTE Cat 1: 5200), or 0 to turn pacing off"
            )
        return int(kbit)

    def session(self, index: int, t: dict[str, Any]) -> SessionConfig:
        w = f"session[{index}]"
        self._unknown(w, t, set(SessionConfig.__dataclass_fields__))
        if "cid" not in t or "apn" not in t:
            raise ConfigError(f"{self.source}: {w} needs both cid and apn")
        cid = self._get(w, t, "cid", int, None)
        apn = self._get(w, t, "apn", str, None)
        auth = self._choice(w, t, "auth", AUTH_METHODS, "none")
        user = self._get(w, t, "user", str, "")
        password = self._get(w, t, "password", str, "")
        if auth != "none" and not user:
            raise ConfigError(f"{self.source}: {w}.auth = {toml_text(auth)} needs a user (and usually a password)")
        mtu = self._get(w, t, "mtu", int, None)
        if mtu is not None and not 576 <= mtu <= 1500:
            raise ConfigError(f"{self.source}: {w}.mtu = {mtu} is out of range 576..1500")
        port = self._get(w, t, "port", str, None)
        if port is not None and not (port.startswith(("/", "rfc2217://"))):
            raise ConfigError(f"{self.source}: {w}.port = {toml_text(port)}: use a device path or rfc2217://host:port")
        ifname = self._get(w, t, "ifname", str, None)
        if ifname is not None and (not 1 <= len(ifname) <= 15 or not all(c.isalnum() or c in "-_." for c in ifname)):
            raise ConfigError(f"{self.source}: {w}.ifname = {toml_text(ifname)} is not a valid interface name (1-15 letters, digits, - _ .)")
        metric = self._get(w, t, "metric", int, None)
        echo_interval = float(self._get(w, t, "lcp_echo_interval", (int, float), ECHO_INTERVAL))
        low, high = LCP_ECHO_INTERVAL_RANGE
        if echo_interval != 0 and not low <= echo_interval <= high:
            raise ConfigError(
                f"{self.source}: {w}.lcp_echo_interval = {echo_interval:g} is out of range: "
                f"use {low:g} to {high:g} seconds, or 0 to send no LCP echoes"
            )
        echo_failure = self._get(w, t, "lcp_echo_failure", int, ECHO_FAILURES)
        if not LCP_ECHO_FAILURE_RANGE[0] <= echo_failure <= LCP_ECHO_FAILURE_RANGE[1]:
            raise ConfigError(
                f"{self.source}: {w}.lcp_echo_failure = {echo_failure} is out of range "
                f"{LCP_ECHO_FAILURE_RANGE[0]}..{LCP_ECHO_FAILURE_RANGE[1]}"
            )
        pdp_type = self._get(w, t, "pdp_type", str, "IPV4V6").upper()
        if pdp_type == "IPV4":
            pdp_type = "IP"
        if pdp_type not in PDP_TYPES:
            raise ConfigError(f"{self.source}: {w}.pdp_type = {toml_text(t['pdp_type'])} is not one of IP, IPV6, IPV4V6")
        return SessionConfig(
            cid=cid,
            apn=apn,
            pdp_type=pdp_type,
            auth=auth,
            user=user,
            password=password,
            teardown=self._choice(w, t, "teardown", TEARDOWN_METHODS, "lcp"),
            backend=self._choice(w, t, "backend", BACKENDS, "auto"),
            port=port,
            ifname=ifname,
            mtu=mtu,
            default_route=self._get(w, t, "default_route", bool, True),
            metric=metric,
            dns=self._choice(w, t, "dns", DNS_MODES, "auto"),
            **self._redial_policy(w, t),
            lcp_echo_interval=echo_interval,
            lcp_echo_failure=echo_failure,
            nat=self._get(w, t, "nat", bool, False),
            firewall_ipv6=self._get(w, t, "firewall_ipv6", bool, False),
        )

    def _redial_policy(self, w: str, t: dict[str, Any]) -> dict[str, Any]:
        """persist, holdoff and maxfail, as pppd(8) means them."""
        d = SessionConfig(cid=1, apn="")
        holdoff = float(self._get(w, t, "holdoff", (int, float), d.holdoff))
        if not 0 <= holdoff <= HOLDOFF_MAX_S:
            raise ConfigError(
                f"{self.source}: {w}.holdoff = {holdoff:g} is out of range 0..{HOLDOFF_MAX_S:g}: "
                "the seconds to wait before redialling a lost link"
            )
        maxfail = self._get(w, t, "maxfail", int, d.maxfail)
        if maxfail < 0:
            raise ConfigError(
                f"{self.source}: {w}.maxfail = {maxfail} must be 0 (redial for ever) or the number of "
                "failed redials in a row after which larappp gives up"
            )
        return {"persist": self._get(w, t, "persist", bool, d.persist), "holdoff": holdoff, "maxfail": maxfail}

    def sim(self, t: dict[str, Any]) -> SimConfig:
        w = "sim"
        self._unknown(w, t, set(SimConfig.__dataclass_fields__))
        d = SimConfig()
        return SimConfig(
            operator=self._get(w, t, "operator", str, d.operator),
            grant=self._get(w, t, "grant", str, d.grant),
            registration_delay=float(self._get(w, t, "registration_delay", (int, float), d.registration_delay)),
            reboot_time=float(self._get(w, t, "reboot_time", (int, float), d.reboot_time)),
            echo=self._get(w, t, "echo", bool, d.echo),
            urc_noise=float(self._get(w, t, "urc_noise", (int, float), d.urc_noise)),
            network=self._get(w, t, "network", str, d.network),
            downlink_kbit=self._get(w, t, "downlink_kbit", int, d.downlink_kbit),
            uplink_kbit=self._get(w, t, "uplink_kbit", int, d.uplink_kbit),
            latency_ms=float(self._get(w, t, "latency_ms", (int, float), d.latency_ms)),
            uplink_buffer=self._get(w, t, "uplink_buffer", int, d.uplink_buffer),
            baud=self._get(w, t, "baud", int, d.baud),
        )
