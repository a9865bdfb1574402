"""What one PPP session needs on the host: the one options shape both engines take."""

from __future__ import annotations

from dataclasses import dataclass, field

from larappp.proto.ipv6 import slaac
from larappp.proto.ppp.lcp import ECHO_FAILURES, ECHO_INTERVAL


@dataclass(frozen=True)
class PppdOptions:
    """What only the pppd engine uses: which pppd, its unit number, its private /etc/ppp."""

    #: pppd's path (None: found on the system search path, as `larappp check` does)
    path: str | None = None
    #: pppd's `unit` (the N of pppN when no ifname applies; None: pppd picks)
    unit: int | None = None
    #: run pppd in a mount namespace where larappp's runtime folder is /etc/ppp
    isolate: bool = True


@dataclass(frozen=True)
class EngineOptions:
    """How one PPP session is set up on the host, for the built-in engine and for pppd alike."""

    ifname: str
    families: tuple[int, ...] = (4, 6)
    username: str = ""
    password: str = field(default="", repr=False)
    auth: str = "none"
    mru: int = 1500
    default_route: bool = True
    metric: int | None = None
    dns_mode: str = "auto"
    dns_dir: str = "/run/larappp/resolv.conf.d"
    #: seconds between LCP Echo-Requests (None: no keepalive) and how many may go unanswered
    echo_interval: float | None = ECHO_INTERVAL
    echo_failures: int = ECHO_FAILURES
    #: seconds between Router Solicitations while no RA came (RFC 4861 §10)
    rs_interval: float = slaac.RTR_SOLICITATION_INTERVAL
    #: larappp's runtime folder (pppd's options and hooks go below it)
    runtime_dir: str = "/run/larappp"
    #: this session's share of the radio's uplink in kbit/s, paced on the host (0: not paced)
    uplink_kbit: int = 0
    #: router mode: masquerade IPv4 leaving the link into ports outside the module's +UEMBPF
    #: range `embpf` ("6000-6200"; None: any port) (larappp.nftrules)
    nat: bool = False
    embpf: str | None = None
    #: drop IPv6 arriving on the link except replies and the ICMPv6 IPv6 needs (larappp.nftrules)
    firewall_ipv6: bool = False
    pppd: PppdOptions = PppdOptions()

    def secrets(self) -> list[str]:
        """What never appears in a log: the password and the user name."""
        return [s for s in (self.password, self.username) if s]
