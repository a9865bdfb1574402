"""LARA-R6 limits, timing, URC names and the rules a set of PPP sessions must follow.

Every number carries its source: the app note (UBX-22001854) section, a 3GPP
specification, or "larappp" where the app note gives no figure and larappp chose one.

Standard library only; no I/O.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from larappp.errors import ConfigError
from larappp.lara_r6.commands import (
    MAX_CID,
    MIN_CID,
    PDP_TYPES,
    PPP_PDP_TYPES,
    AuthType,
    auth_type,
    check_apn,
    check_password,
    check_user,
)

__all__ = [
    "COMMAND_TIMEOUTS_S",
    "ESCAPE_GUARD_S",
    "LTE_DEFAULT_BEARER_CID",
    "MAX_ACTIVE_CONTEXTS",
    "MAX_PPP_INSTANCES",
    "MAX_PRIMARY_CONTEXTS",
    "MNO_PROFILE_VERIZON",
    "MTU_MAX",
    "MTU_MIN_IPV4",
    "MTU_MIN_IPV6",
    "URC_CEREG",
    "URC_CGEV",
    "VERIZON_DATA_CID",
    "PdpPlan",
    "check_pdp_plan",
    "command_timeout",
    "needs_cgact_before_use",
]

# -- contexts ------------------------------------------------------------------------------

LTE_DEFAULT_BEARER_CID = 1  # app note §2.1: cid 1 is the initial default EPS bearer
MAX_PRIMARY_CONTEXTS = 5  # app note §2.1
MAX_ACTIVE_CONTEXTS = 8  # app note §2.1: primary and secondary together
MAX_PPP_INSTANCES = 3  # app note §4.1.3
MNO_PROFILE_VERIZON = 3  # app note §2.3.1: +UMNOPROF=3
VERIZON_DATA_CID = 3  # app note §2.3.1: under profile 3, data (APN class 3) is on cid 3

# MTU the host may ask for through PPP on cids other than 1 (app note §4).
MTU_MIN_IPV4 = 576  # RFC 791: every IPv4 host must take 576-octet datagrams
MTU_MIN_IPV6 = 1280  # RFC 8200 §5
MTU_MAX = 1500  # larappp: the largest MTU a cellular PDN offers in practice

# -- timing --------------------------------------------------------------------------------
# How long a command may take before its final result code, from the "Response time" of its
# entry in the u-blox LARA-R6 AT commands manual (UBX-21046719; the same bounds u-blox gives
# for its other cellular modules). Commands that wait for the network or the radio take
# minutes; a command not in this table answers at once, and gets the configured
# modem.command_timeout. Read ("?") and test ("=?") forms never wait for the network.
COMMAND_TIMEOUTS_S: dict[str, float] = {
    "+CFUN": 180.0,  # up to 3 min: the radio is switched (and the module resets for 16)
    "+COPS": 180.0,  # up to 3 min: network selection and registration
    "+CGATT": 180.0,  # up to 3 min: PS attach or detach
    "+CGACT": 150.0,  # up to 150 s to activate a context (40 s to deactivate one)
    "D": 180.0,  # ATD*99***<cid>#: up to 3 min: PS attach and context activation, then CONNECT
    # ATH in online command mode ends PPP and deactivates the context (app note §4.2): the
    # network side of AT+CGACT=0, so it gets the manual's 40 s deactivation bound.
    "H": 40.0,
}

_COMMAND_NAME = re.compile(r"AT(\+[A-Z0-9]+|&?[A-Z])", re.IGNORECASE)


def command_timeout(command: str) -> float | None:
    """The seconds the AT manual allows `command` ("AT+CFUN=1", "ATD*99***2#"), or None.

    None means the command answers at once: use the configured command timeout.
    """
    text = command.strip()
    if text.endswith("?"):
        return None
    match = _COMMAND_NAME.match(text)
    if match is None:
        return None
    return COMMAND_TIMEOUTS_S.get(match.group(1).upper())


# app note §9.1.4: "+++" is seen only as a separate 3-byte frame after 2 s of silence.
ESCAPE_GUARD_S = 2.0

# -- URCs ----------------------------------------------------------------------------------
# +CEREG: is also the answer to AT+CEREG? (parse_cereg tells the forms apart).
URC_CEREG = "+CEREG"  # 3GPP TS 27.007 §10.1.22, enabled by AT+CEREG=<n>
URC_CGEV = "+CGEV"  # 3GPP TS 27.007 §10.1.19: context activated/deactivated, detach


def needs_cgact_before_use(act: int) -> bool:
    """In 2G/3G, send AT+CGACT=1,<cid> even if the context looks active (app note §2.3).

    Embedded applications may have activated it and would deactivate it silently.
    """
    return 0 <= act <= 6  # 3GPP TS 27.007 §7.3: GSM and UTRAN variants; 7 and 9 are LTE


# -- the session plan ----------------------------------------------------------------------


@dataclass(frozen=True)
class PdpPlan:
    """One PDP context larappp is asked to set up: what goes into +CGDCONT, auth and MTU."""

    cid: int
    apn: str
    pdp_type: str = "IPV4V6"
    auth: int | str = AuthType.NONE  # a number 0-3 or "none", "pap", "chap", "auto"
    user: str = ""
    password: str = field(default="", repr=False)
    mtu: int | None = None
    #: False for a context only defined (e.g. cid 1 for the attach), not dialled over PPP.
    ppp: bool = True

    @property
    def secrets(self) -> tuple[str, ...]:
        """Strings to mask in every log and trace."""
        return (self.password,) if self.password else ()


def check_pdp_plan(plans: Sequence[PdpPlan], *, mno_profile: int | None) -> None:
    """Refuse a set of contexts LARA-R6 cannot run, naming the rule and its source."""
    if not plans:
        raise ConfigError("no PDP context is configured: add at least one session with a cid")
    for plan in plans:
        _check_one(plan, mno_profile=mno_profile)

    for cid, count in Counter(p.cid for p in plans).items():
        if count > 1:
            raise ConfigError(
                f"cid {cid} is configured {count} times; each PDP context can be used once: "
                "give each session its own cid"
            )
    if len(plans) > MAX_PRIMARY_CONTEXTS:
        raise ConfigError(
            f"{len(plans)} PDP contexts are configured, but LARA-R6 activates at most "
            f"{MAX_PRIMARY_CONTEXTS} primary contexts (app note §2.1): remove "
            f"{len(plans) - MAX_PRIMARY_CONTEXTS}"
        )
    ppp = [p for p in plans if p.ppp]
    if len(ppp) > MAX_PPP_INSTANCES:
        raise ConfigError(
            f"{len(ppp)} PPP sessions are configured, but LARA-R6 runs at most "
            f"{MAX_PPP_INSTANCES} PPP instances at once (app note §4.1.3): remove "
            f"{len(ppp) - MAX_PPP_INSTANCES}"
        )
    if len(plans) > 1:
        seen: dict[str, int] = {}
        for plan in plans:
            key = plan.apn.lower()  # APNs compare case-insensitively (3GPP TS 23.003 §9.1)
            if key in seen:
                shown = f'APN "{plan.apn}"' if plan.apn else "the empty APN"
                raise ConfigError(
                    f"cids {seen[key]} and {plan.cid} both use {shown}, but each PDP context "
                    "needs a different APN (app note §4.1.3): give "
                    f"cid {plan.cid} another APN"
                )
            seen[key] = plan.cid


def _check_one(plan: PdpPlan, *, mno_profile: int | None) -> None:
    cid = plan.cid
    if isinstance(cid, bool) or not isinstance(cid, int) or not MIN_CID <= cid <= MAX_CID:
        raise ConfigError(
            f"cid {cid!r} is out of range; LARA-R6 has PDP contexts {MIN_CID} to {MAX_CID} "
            f"(app note §2.1): use a cid from {MIN_CID} to {MAX_CID}"
        )
    owner = f"cid {cid}"
    if plan.pdp_type not in PDP_TYPES:
        raise ConfigError(
            f'PDP type "{plan.pdp_type}" of {owner} is not one LARA-R6 knows: use one of '
            + ", ".join(sorted(PDP_TYPES))
        )
    if plan.ppp and plan.pdp_type not in PPP_PDP_TYPES:
        raise ConfigError(
            f'{owner} has PDP type "{plan.pdp_type}", which PPP cannot carry: use IP, IPV6 or '
            "IPV4V6"
        )
    check_apn(plan.apn, owner=owner)
    check_user(plan.user, owner=owner)
    check_password(plan.password, owner=owner)
    auth = auth_type(plan.auth, owner=owner)
    if mno_profile == MNO_PROFILE_VERIZON and cid == LTE_DEFAULT_BEARER_CID and plan.ppp:
        raise ConfigError(
            "cid 1 is reserved for IMS under the Verizon MNO profile (AT+UMNOPROF=3), which maps "
            f"data to cid {VERIZON_DATA_CID} (app note §2.3.1): use cid {VERIZON_DATA_CID} for "
            "this session"
        )
    if cid == LTE_DEFAULT_BEARER_CID and plan.ppp:
        if auth != AuthType.NONE or plan.user or plan.password:
            raise ConfigError(
                "cid 1 is the LTE default EPS bearer, set up at attach, so the host cannot "
                "authenticate it through PPP (app note §4): remove auth, user and password "
                "from cid 1, or use a cid from 2 to 8"
            )
        if plan.mtu is not None:
            raise ConfigError(
                "cid 1 is the LTE default EPS bearer, whose MTU the network sets, so the host "
                "cannot set it through PPP (app note §4): remove mtu from cid 1 (read it with "
                "AT+CGCONTRDP=1), or use a cid from 2 to 8"
            )
    if auth == AuthType.NONE and (plan.user or plan.password):
        raise ConfigError(
            f"{owner} has a user name or password but no authentication type: set auth to PAP "
            "or CHAP, or remove the credentials"
        )

    if plan.mtu is not None:
        low = MTU_MIN_IPV4 if plan.pdp_type == "IP" else MTU_MIN_IPV6
        if isinstance(plan.mtu, bool) or not isinstance(plan.mtu, int) or not (
            low <= plan.mtu <= MTU_MAX
        ):
            why = "RFC 791" if low == MTU_MIN_IPV4 else "IPv6 needs 1280, RFC 8200 §5"
            raise ConfigError(
                f"mtu {plan.mtu!r} of {owner} is outside {low}-{MTU_MAX} ({why}): choose an "
                f"MTU from {low} to {MTU_MAX}, or leave it unset to use the network's"
            )
