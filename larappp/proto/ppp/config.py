"""What one PPP link negotiates (`LinkConfig`) and the per-protocol configurations that
follow from it for the host role and the module role."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Literal

from larappp.errors import ConfigError
from larappp.proto.ppp.auth import SecretLookup
from larappp.proto.ppp.fsm import MAX_CONFIGURE, MAX_FAILURE, MAX_TERMINATE, RESTART_INTERVAL
from larappp.proto.ppp.ipcp import IpcpConfig
from larappp.proto.ppp.ipv6cp import IID_LENGTH, Ipv6cpConfig
from larappp.proto.ppp.lcp import (
    AUTH_METHODS,
    ECHO_FAILURES,
    ECHO_INTERVAL,
    LOOPBACK_LIMIT,
    MAX_MRU,
    MIN_MRU,
    LcpConfig,
)

Role = Literal["host", "module"]


@dataclass(frozen=True)
class LinkConfig:
    """What one PPP link negotiates and how patient it is; the password never shows in repr."""

    mru: int = 1500
    #: control characters the peer must escape towards us (RFC 1662 §7.1); 0 for a clean line
    accm: int = 0
    magic_number: bool = True
    pfc: bool = True
    acfc: bool = True
    # answering the peer's authentication request (host role)
    username: str = ""
    password: str = field(default="", repr=False)
    answer_auth: tuple[str, ...] = ("chap", "pap")
    # authenticating the peer (module role)
    authenticate_peer: tuple[str, ...] = ()
    secret_for: SecretLookup | None = field(default=None, repr=False)
    auth_name: str = "larappp"
    # network protocols
    ipv4: bool = True
    ipv6: bool = True
    #: our IPv4 address (host: what to request, None: ask for one; module: its own)
    ipv4_address: IPv4Address | None = None
    #: module role: the IPv4 address handed to the host
    ipv4_peer_address: IPv4Address | None = None
    #: module role: the DNS servers handed to the host (RFC 1877)
    dns_servers: tuple[IPv4Address, ...] = ()
    #: host role: ask the peer for DNS servers
    request_dns: bool = True
    #: our IPv6 interface identifier (None: random; 8 zero octets: ask the peer for one)
    ipv6_interface_id: bytes | None = None
    #: module role: the interface identifier the host must use (None: any unique one)
    ipv6_peer_interface_id: bytes | None = None
    # timers and counters (RFC 1661 §4.6)
    restart_interval: float = RESTART_INTERVAL
    max_configure: int = MAX_CONFIGURE
    max_terminate: int = MAX_TERMINATE
    max_failure: int = MAX_FAILURE
    #: LCP keepalive (pppd's lcp-echo-interval and lcp-echo-failure); None: no echoes
    echo_interval: float | None = ECHO_INTERVAL
    echo_failures: int = ECHO_FAILURES
    loopback_limit: int = LOOPBACK_LIMIT
    #: look for the module's result codes between frames (host role only: a DTE gets them)
    watch_result_codes: bool = True

    def __post_init__(self) -> None:
        if not MIN_MRU <= self.mru <= MAX_MRU:
            raise ConfigError(f"PPP mru must be between {MIN_MRU} and {MAX_MRU}, not {self.mru}")
        if not 0 <= self.accm <= 0xFFFFFFFF:
            raise ConfigError("PPP accm must be a 32-bit value such as 0x00000000")
        for name in (*self.answer_auth, *self.authenticate_peer):
            if name not in AUTH_METHODS:
                raise ConfigError(f"PPP authentication method {name!r} is not 'chap' or 'pap'")
        if self.authenticate_peer and self.secret_for is None:
            raise ConfigError("PPP authenticate_peer needs secret_for to look up the peer's secret")
        if not self.ipv4 and not self.ipv6:
            raise ConfigError("PPP needs ipv4 or ipv6 enabled; enable at least one")
        if len(self.dns_servers) > 2:
            raise ConfigError("PPP can hand out at most 2 DNS servers (primary and secondary)")
        for name in ("ipv6_interface_id", "ipv6_peer_interface_id"):
            value = getattr(self, name)
            if value is not None and len(value) != IID_LENGTH:
                raise ConfigError(f"PPP {name} must be {IID_LENGTH} octets")
        if self.restart_interval <= 0 or self.max_configure < 1 or self.max_terminate < 1:
            raise ConfigError("PPP restart_interval, max_configure and max_terminate must be > 0")
        if self.echo_interval is not None and self.echo_interval <= 0:
            raise ConfigError("PPP echo_interval must be positive, or None to disable echoes")
        if self.echo_failures < 1:
            raise ConfigError("PPP echo_failures must be at least 1")


def lcp_config(config: LinkConfig) -> LcpConfig:
    return LcpConfig(
        mru=config.mru,
        accm=config.accm,
        magic_number=config.magic_number,
        pfc=config.pfc,
        acfc=config.acfc,
        authenticate_peer=config.authenticate_peer,
        answer_auth=config.answer_auth,
        loopback_limit=config.loopback_limit,
        echo_interval=config.echo_interval,
        echo_failures=config.echo_failures,
    )


def ipcp_config(role: Role, config: LinkConfig) -> IpcpConfig:
    if role == "host":
        return IpcpConfig(
            local_address=config.ipv4_address,
            request_dns=config.request_dns,
            request_address=True,
        )
    return IpcpConfig(
        local_address=config.ipv4_address,
        peer_address=config.ipv4_peer_address,
        dns_servers=config.dns_servers,
        request_dns=False,
        request_address=False,
    )


def ipv6cp_config(role: Role, config: LinkConfig) -> Ipv6cpConfig:
    return Ipv6cpConfig(
        interface_id=config.ipv6_interface_id,
        peer_interface_id=config.ipv6_peer_interface_id if role == "module" else None,
    )
