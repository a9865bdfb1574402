"""The simulated module's state: NVM (kept across reboots), RAM (reset by a reboot) and ports.

Plain data with the app note's limits next to it; what changes it lives in the
modules named after each concern (commands/, packet.py, calls.py, power.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from larappp.sim.atcmd import LineAssembler
from larappp.sim.data import DataSession
from larappp.sim.escape import EscapeDetector
from larappp.sim.scenario import ContextAddresses, Scenario

#: The modes of one port (V.250): commands, data (a call), online command (after "+++").
COMMAND = "command"
DATA = "data"
ONLINE_COMMAND = "online-command"

#: The CLAT address offered to the DTE when 464XLAT is active (RFC 7335).
CLAT_IPV4 = "192.0.0.2"
#: App note §2.1: at most 5 active primary PDP contexts.
MAX_ACTIVE_CONTEXTS = 5
#: CIDs the module accepts.
CID_RANGE = (0, 11)

#: Power-on values of the S registers (V.250 §6.2; S2 "+" escape, S3 CR, S4 LF, S5 BS).
S_DEFAULTS = {0: 0, 2: 43, 3: 13, 4: 10, 5: 8, 6: 2, 7: 60, 8: 2, 10: 1, 12: 50}


@dataclass
class PdpDefinition:
    """One AT+CGDCONT definition (kept in NVM)."""

    pdp_type: str
    apn: str


@dataclass
class AuthSetting:
    """One AT+UAUTHREQ setting (kept in NVM)."""

    auth_type: int
    user: str
    password: str


@dataclass
class Nvm:
    """What survives AT+CFUN=16: profile, contexts, UDCONF, UEMBPF, LwM2M."""

    mno_profile: int
    contexts: dict[int, PdpDefinition] = field(default_factory=lambda: {1: PdpDefinition("IPV4V6", "")})
    auth: dict[int, AuthSetting] = field(default_factory=dict)
    #: AT+UEMBPF range as configured (applied at the next boot, app note §4.3.1).
    embpf: tuple[int, int] | None = None
    #: AT+UDCONF=19: default context and preferred IP type (effective after reboot, §2.3.1).
    default_context: tuple[int, int] = (1, 0)
    #: AT+UDCONF=66,4: 464XLAT (effective after reboot, only on T-Mobile US, §2.5).
    xlat: int = 0
    #: AT+ULWM2M: 0 LwM2M client enabled, 1 disabled.
    lwm2m: int = 0
    udconf: dict[int, str] = field(default_factory=dict)

    def to_json(self) -> str:
        """The NVM as JSON, so a simulator restart (a power cycle) keeps it."""
        return json.dumps(
            {
                "mno_profile": self.mno_profile,
                "contexts": {str(c): [d.pdp_type, d.apn] for c, d in self.contexts.items()},
                "auth": {str(c): [a.auth_type, a.user, a.password] for c, a in self.auth.items()},
                "embpf": list(self.embpf) if self.embpf else None,
                "default_context": list(self.default_context),
                "xlat": self.xlat,
                "lwm2m": self.lwm2m,
                "udconf": {str(k): v for k, v in self.udconf.items()},
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Nvm:
        data = json.loads(text)
        embpf = data.get("embpf")
        default_context = data.get("default_context", [1, 0])
        return cls(
            mno_profile=int(data["mno_profile"]),
            contexts={int(c): PdpDefinition(t, a) for c, (t, a) in data.get("contexts", {}).items()},
            auth={int(c): AuthSetting(int(t), u, p) for c, (t, u, p) in data.get("auth", {}).items()},
            embpf=(int(embpf[0]), int(embpf[1])) if embpf else None,
            default_context=(int(default_context[0]), int(default_context[1])),
            xlat=int(data.get("xlat", 0)),
            lwm2m=int(data.get("lwm2m", 0)),
            udconf={int(k): str(v) for k, v in data.get("udconf", {}).items()},
        )


@dataclass
class ActiveContext:
    """An active PDP context with what the network granted."""

    cid: int
    pdp_type: str
    apn: str
    bearer_id: int
    addresses: ContextAddresses
    mtu: int


@dataclass
class Ram:
    """What AT+CFUN=16 resets."""

    cfun: int = 1
    stat: int = 0
    cops_mode: int = 0
    cops_format: int = 0
    rrc_connected: bool = False
    contexts: dict[int, ActiveContext] = field(default_factory=dict)
    #: Settings read from NVM at boot.
    applied_range: tuple[int, int] | None = None
    applied_xlat: bool = False
    applied_default_context: tuple[int, int] = (1, 0)
    registration_due: float | None = None


@dataclass
class Call:
    """A data call on one port: the dialled cid and the data session serving it."""

    port: int
    cid: int
    session: DataSession
    started_at: float
    #: A silent peer (a fault): nothing passes between the port and the session until then.
    silent_until: float | None = None
    #: DCD held off while the call goes on (a fault: the line, not the call, failed)
    dcd_off: bool = False

    def silent(self, now: float) -> bool:
        return self.silent_until is not None and now < self.silent_until


class PortState:
    """One AT interface of the module (each USB CDC-ACM port is one), with its own settings."""

    def __init__(self, index: int, scenario: Scenario, now: float) -> None:
        self.index = index
        self.assembler = LineAssembler()
        self.out = bytearray()
        self.dtr = False
        self.call: Call | None = None
        self.mode = COMMAND
        self.detector = EscapeDetector(guard=scenario.escape_guard, max_gap=scenario.escape_max_gap, now=now)
        self.reset_profile(scenario)

    def reset_profile(self, scenario: Scenario) -> None:
        """Power-on (and ATZ) values of the per-interface settings."""
        self.echo = scenario.echo
        self.verbose = True
        self.quiet = False
        self.cmee = 0
        self.cvhu = 1
        self.amp_d = 1
        self.amp_c = 1
        self.s_regs = dict(S_DEFAULTS)
        self.reg_urc = {"+CEREG": 0, "+CREG": 0, "+CGREG": 0}
        self.cscon = 0
        self.cgerep = 0
        self.detector.char = self.s_regs[2]

    @property
    def in_call(self) -> bool:
        return self.call is not None
