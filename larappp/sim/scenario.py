"""Knobs of the LARA-R6 simulator: network, timings, echo, noise and faults.

A `Scenario` is constant data. Named presets cover the app note's cases: a T-Mobile US
SIM at home (dual stack, or IPv6 only where 464XLAT matters, app note §2.5), a European
network, and the T-Mobile SIM roaming in Germany (IPv4 only, stat 5).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from larappp.errors import ConfigError
from larappp.sim.radio import (
    CAT1_DOWNLINK_KBIT,
    CAT1_UPLINK_KBIT,
    DEFAULT_UPLINK_BUFFER,
    RadioSettings,
)

PDP_TYPES = ("IP", "IPV6", "IPV4V6")


@dataclass(frozen=True)
class Operator:
    """A network the simulated module registers on (PLMN, names, home or roaming)."""

    key: str
    plmn: str
    long_name: str
    short_name: str
    roaming: bool
    #: PLMN of the SIM's home network (the IMSI prefix).
    home_plmn: str
    tac: str = "1A2B"
    cell_id: str = "01A2B3C4"

    @property
    def is_tmobile_us_home(self) -> bool:
        """464XLAT only works here: T-Mobile US, not roaming (app note §2.5)."""
        return self.plmn == "310260" and not self.roaming


OPERATORS: dict[str, Operator] = {
    "tmobile-us": Operator("tmobile-us", "310260", "T-Mobile", "T-Mobile", False, "310260", "2F01", "0A1B2C01"),
    # app note §2.3: `+COPS: 0,0,"I TIM",7`
    "europe": Operator("europe", "22201", "I TIM", "TIM", False, "22201", "5C0D", "01F4A203"),
    "roaming": Operator("roaming", "26201", "Telekom.de", "Telekom.de", True, "310260", "A2C4", "02B81E55"),
}


@dataclass(frozen=True)
class Scenario:
    """Every knob of one simulated module and its network; frozen, built by presets or from_dict."""

    name: str = "tmobile-us"
    operator: str = "tmobile-us"
    #: What the network grants for the APNs: "IPV4V6", "IPV6" or "IP".
    grant: str = "IPV4V6"
    registration_delay: float = 0.5
    reboot_time: float = 2.0
    #: Between the OK of AT+CFUN=16 (or a vanishing command) and the ports going away.
    shutdown_delay: float = 0.05
    #: Echo after a reboot (a real module boots with ATE1).
    echo: bool = True
    #: Probability that a random URC (+CEREG, +CSCON, +CIEV) follows a final result code.
    urc_noise: float = 0.0
    #: Probability that a few garbage bytes precede a response.
    garbage: float = 0.0
    #: Command prefixes ("+CGACT", "D", ...) answered with an error.
    error_on: frozenset[str] = frozenset()
    #: Command prefixes never answered.
    silent_on: frozenset[str] = frozenset()
    #: Command prefixes after whose answer the module vanishes for good.
    vanish_on: frozenset[str] = frozenset()
    never_register: bool = False
    #: Silence needed before and after "+++" (app note §9.1.4: the host waits 2 s).
    escape_guard: float = 1.0
    #: Largest gap between the three "+" (app note §9.1.4: 500 ms).
    escape_max_gap: float = 0.5
    #: PPP instances at once (app note §4.1.3).
    max_ppp: int = 3
    mtu: int = 1500
    mno_profile: int = 90
    model: str = "LARA-R6001D"
    firmware: str = "03.15"
    ping_interval: float = 0.1
    seed: int = 0
    #: The radio (larappp.sim.radio), shared by all calls: rates in kbit/s (0: no limit; LTE
    #: Cat 1 is 10300 down, 5200 up), one-way latency in ms, the module's uplink buffer in
    #: bytes (app note §4: what overflows it is dropped). Off by default, so that tests and
    #: the throughput benchmark measure larappp, not the radio.
    downlink_kbit: int = 0
    uplink_kbit: int = 0
    latency_ms: float = 0.0
    uplink_buffer: int = DEFAULT_UPLINK_BUFFER
    #: CTS goes off on a port in data mode while the uplink buffer is nearly full (a DTE
    #: with RTS/CTS then holds its bytes; RFC 2217 carries CTS, a pty has none). App note
    #: §4 warns a real module may drop even with flow control: off shows that case.
    cts_flow: bool = True
    #: The serial line of every port (larappp.sim.line): bytes go each way at baud/10 per
    #: second (8N1), as over a UART; 0: no line limit (a USB port, the default).
    baud: int = 0

    def __post_init__(self) -> None:
        if self.operator not in OPERATORS:
            raise ConfigError(
                f"simulator operator {self.operator!r} is unknown: use one of {', '.join(OPERATORS)}"
            )
        if self.grant not in PDP_TYPES:
            raise ConfigError(f"simulator grant {self.grant!r} is unknown: use one of {', '.join(PDP_TYPES)}")
        for name in ("registration_delay", "reboot_time", "shutdown_delay", "escape_guard",
                     "escape_max_gap", "ping_interval"):
            if getattr(self, name) < 0:
                raise ConfigError(f"simulator {name} is negative: give a time in seconds >= 0")
        for name in ("downlink_kbit", "uplink_kbit", "latency_ms"):
            if getattr(self, name) < 0:
                raise ConfigError(f"simulator {name} is negative: give 0 (no limit) or more")
        if self.baud < 0:
            raise ConfigError("simulator baud is negative: give the line's rate (e.g. 115200) or 0 for no limit")
        if self.uplink_buffer < 1500:
            raise ConfigError("simulator uplink_buffer must hold one packet: give at least 1500 bytes")
        for name in ("urc_noise", "garbage"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"simulator {name} must be a probability between 0 and 1")
        if not 1 <= self.max_ppp <= 8:
            raise ConfigError("simulator max_ppp must be between 1 and 8")
        if not 576 <= self.mtu <= 9000:
            raise ConfigError("simulator mtu must be between 576 and 9000")

    @property
    def network(self) -> Operator:
        return OPERATORS[self.operator]

    @property
    def radio(self) -> RadioSettings:
        return RadioSettings(uplink_kbit=self.uplink_kbit, downlink_kbit=self.downlink_kbit,
                             latency=self.latency_ms / 1000, uplink_buffer=self.uplink_buffer,
                             flow_control=self.cts_flow)

    # -- construction ---------------------------------------------------------------
    @classmethod
    def preset(cls, name: str) -> Scenario:
        """The named preset (see PRESETS); ConfigError naming the choices otherwise."""
        try:
            return PRESETS[name]
        except KeyError:
            raise ConfigError(
                f"simulator scenario {name!r} is unknown: use one of {', '.join(PRESETS)}"
            ) from None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scenario:
        """Build from a mapping: optional "scenario" (a preset name) then any field overrides.

        "granted" is accepted for "grant"; lists become frozensets; None values are skipped.
        """
        values = dict(data)
        base_name = values.pop("scenario", None) or values.pop("preset", None)
        base = cls.preset(str(base_name)) if base_name else cls()
        if "granted" in values:
            values["grant"] = values.pop("granted")
        known = {f.name: f for f in fields(cls)}
        overrides: dict[str, Any] = {}
        for key, value in values.items():
            if value is None:
                continue
            if key not in known:
                raise ConfigError(
                    f"simulator knob {key!r} is unknown: use one of {', '.join(sorted(known))}"
                )
            overrides[key] = _coerce(key, known[key].type, value)
        if "operator" in overrides and "name" not in overrides and not base_name:
            overrides["name"] = overrides["operator"]
        return replace(base, **overrides)

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """Add the scenario's command-line options (used by `larappp sim`)."""
        parser.add_argument("--scenario", help=f"preset: {', '.join(PRESETS)}")
        parser.add_argument("--operator", choices=sorted(OPERATORS))
        parser.add_argument("--grant", choices=PDP_TYPES, help="PDP type the network grants")
        parser.add_argument("--registration-delay", type=float, metavar="S")
        parser.add_argument("--reboot-time", type=float, metavar="S")
        parser.add_argument("--escape-guard", type=float, metavar="S")
        parser.add_argument("--urc-noise", type=float, metavar="P")
        parser.add_argument("--garbage", type=float, metavar="P")
        parser.add_argument("--error-on", action="append", metavar="CMD",
                            help="answer this command prefix with an error (repeatable)")
        parser.add_argument("--silent-on", action="append", metavar="CMD",
                            help="never answer this command prefix (repeatable)")
        parser.add_argument("--vanish-on", action="append", metavar="CMD",
                            help="vanish for good after answering this command prefix (repeatable)")
        parser.add_argument("--never-register", action="store_true", default=None)
        parser.add_argument("--echo", choices=("on", "off"), help="echo after boot (default on)")
        parser.add_argument("--seed", type=int)
        parser.add_argument("--radio", choices=("cat1", "off"),
                            help=f"cat1: LTE Cat 1 rates ({CAT1_DOWNLINK_KBIT} kbit/s down, {CAT1_UPLINK_KBIT} up); "
                                 "off: no limit (default)")
        parser.add_argument("--downlink-kbit", type=int, metavar="KBIT", help="radio downlink rate (0: no limit)")
        parser.add_argument("--uplink-kbit", type=int, metavar="KBIT", help="radio uplink rate (0: no limit)")
        parser.add_argument("--latency-ms", type=float, metavar="MS", help="one-way radio latency")
        parser.add_argument("--uplink-buffer", type=int, metavar="BYTES",
                            help=f"the module's uplink buffer (default {DEFAULT_UPLINK_BUFFER}); "
                                 "what overflows it is dropped and counted")
        parser.add_argument("--baud", type=int, metavar="N",
                            help="every port is a serial line at N baud, 8N1: N/10 bytes per second each way "
                                 "(default 0: no line limit, as USB)")
        parser.add_argument("--cts-flow", choices=("on", "off"),
                            help="on (default): CTS off while the uplink buffer is nearly full (RFC 2217 carries "
                                 "it; a pty has no CTS); off: never, as app note §4 warns")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Scenario:
        """Build from options added by add_arguments."""
        data: dict[str, Any] = {
            "scenario": args.scenario,
            "operator": args.operator,
            "grant": args.grant,
            "registration_delay": args.registration_delay,
            "reboot_time": args.reboot_time,
            "escape_guard": args.escape_guard,
            "urc_noise": args.urc_noise,
            "garbage": args.garbage,
            "error_on": args.error_on,
            "silent_on": args.silent_on,
            "vanish_on": args.vanish_on,
            "never_register": args.never_register,
            "echo": None if args.echo is None else args.echo == "on",
            "seed": args.seed,
            "latency_ms": args.latency_ms,
            "uplink_buffer": args.uplink_buffer,
            "baud": args.baud,
            "cts_flow": None if args.cts_flow is None else args.cts_flow == "on",
        }
        cat1 = args.radio == "cat1"
        for key, given, preset in (("downlink_kbit", args.downlink_kbit, CAT1_DOWNLINK_KBIT),
                                   ("uplink_kbit", args.uplink_kbit, CAT1_UPLINK_KBIT)):
            data[key] = given if given is not None else preset if cat1 else None
        return cls.from_dict(data)

    # -- faults -------------------------------------------------------------------
    def fault_for(self, command: str) -> str | None:
        """"error", "silent" or "vanish" when `command` (without "AT") matches a fault prefix."""
        text = command.upper()
        for kind, prefixes in (("silent", self.silent_on), ("error", self.error_on),
                               ("vanish", self.vanish_on)):
            for prefix in prefixes:
                if text.startswith(normalize_command_prefix(prefix)):
                    return kind
        return None


def normalize_command_prefix(prefix: str) -> str:
    """"AT+CGACT" and "+cgact" both become "+CGACT"; "ATD" becomes "D"."""
    text = prefix.strip().upper()
    if text.startswith("AT") and len(text) > 2:
        text = text[2:]
    return text


def _coerce(key: str, type_name: Any, value: Any) -> Any:
    kind = str(type_name)
    try:
        if "frozenset" in kind:
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, Iterable):
                raise TypeError
            return frozenset(normalize_command_prefix(str(v)) for v in value)
        if kind == "bool":
            if isinstance(value, str):
                if value.lower() in ("1", "on", "true", "yes"):
                    return True
                if value.lower() in ("0", "off", "false", "no"):
                    return False
                raise ValueError
            return bool(value)
        if kind == "float":
            return float(value)
        if kind == "int":
            return int(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"simulator knob {key!r} has the wrong type ({value!r}): expected {kind}") from None


PRESETS: dict[str, Scenario] = {
    "tmobile-us": Scenario(name="tmobile-us", operator="tmobile-us", grant="IPV4V6", mno_profile=5),
    # The IPv6-only T-Mobile subscription where the app note asks for XLAT (§2.5).
    "tmobile-us-ipv6": Scenario(name="tmobile-us-ipv6", operator="tmobile-us", grant="IPV6", mno_profile=5),
    "europe": Scenario(name="europe", operator="europe", grant="IPV4V6", mno_profile=100),
    # A T-Mobile US SIM roaming in Germany: registered with stat 5, IPv4 only.
    "roaming": Scenario(name="roaming", operator="roaming", grant="IP", mno_profile=5),
    "flaky": Scenario(name="flaky", operator="europe", grant="IPV4V6", mno_profile=100,
                      urc_noise=0.3, garbage=0.2),
    "no-network": Scenario(name="no-network", operator="europe", never_register=True, mno_profile=100),
}


@dataclass(frozen=True)
class ContextAddresses:
    """What the simulated network assigns to one PDP context (all as text)."""

    ipv4: str
    ipv4_mask: str
    ipv4_gateway: str
    ipv4_dns: tuple[str, str]
    ipv6_prefix: str
    ipv6_prefix_len: int
    #: The module's own address in the prefix (app note §4.1.2: the DTE picks another IID).
    ipv6: str
    ipv6_dns: tuple[str, str]
    ipv6_gateway: str = "fe80::1"


def address_plan(cid: int) -> ContextAddresses:
    """The deterministic addresses the simulated network gives context `cid`: the same
    plan the network side (larappp.sim.network) routes, so +CGCONTRDP and PPP agree."""
    from larappp.sim.addressing import AddressPlan

    return AddressPlan().context_addresses(cid)
