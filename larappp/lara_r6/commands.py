"""LARA-R6 AT command builders: validated, quoted command strings without the final CR.

Every string argument goes between double quotes, and the module's AT parser has no
escape for a quote inside one, so builders refuse quote, backslash, control characters
and non-ASCII text instead of sending something the module would cut or misread.

Standard library only; no I/O.
"""

from __future__ import annotations

from collections.abc import Collection
from enum import IntEnum

from larappp.errors import ValidationError
from larappp.lara_r6.ports import PortRange, check_uembpf_range

__all__ = [
    "APN_LABEL_MAX_LEN",
    "APN_MAX_LEN",
    "CFUN_MODES",
    "MAX_CID",
    "MIN_CID",
    "PASSWORD_MAX_LEN",
    "PDP_TYPES",
    "PPP_PDP_TYPES",
    "USER_MAX_LEN",
    "AuthType",
    "DefaultIpType",
    "amp_c",
    "amp_d",
    "ath",
    "auth_type",
    "cereg_read",
    "cereg_set",
    "cfun",
    "cgact",
    "cgcontrdp",
    "cgdcont_read",
    "cgdcont_set",
    "cgerep",
    "cgmm",
    "check_apn",
    "check_at_string",
    "check_cid",
    "check_password",
    "check_user",
    "cmee",
    "cops_format_numeric",
    "cops_read",
    "cvhu",
    "dial",
    "quote",
    "udconf19_read",
    "udconf19_set",
    "udconf66_read",
    "udconf66_set",
    "uembpf_read",
    "uembpf_set",
    "ulwm2m_disable",
    "umnoprof_read",
    "umnoprof_set",
]

# app note §2.1: at most 8 PDP contexts in all; the u-blox +UAUTHREQ test command lists cids (1-8).
MIN_CID = 1
MAX_CID = 8
# 3GPP TS 23.003 §9.1: an APN is at most 100 octets in its length-prefixed label encoding,
# which is 99 characters written with dots; u-blox manuals give the same 99 for APN strings.
APN_MAX_LEN = 99
# 3GPP TS 23.003 §9.1 follows DNS naming (RFC 1035 §2.3.4): a label is at most 63 octets.
APN_LABEL_MAX_LEN = 63
# u-blox AT manuals give 64 characters for the +UAUTHREQ user name and password (the
# SARA-R4 manual states it; larappp applies the same limit to LARA-R6 rather than send
# more than the module is documented to take).
USER_MAX_LEN = 64
PASSWORD_MAX_LEN = 64

# 3GPP TS 27.007 §10.1.1 PDP types, in the spelling LARA-R6 uses ("NONIP" as u-blox writes it).
PDP_TYPES = frozenset({"IP", "IPV6", "IPV4V6", "NONIP"})
# PPP (IPCP/IPV6CP) carries IP only.
PPP_PDP_TYPES = frozenset({"IP", "IPV6", "IPV4V6"})
# 3GPP TS 27.007 §8.2 plus u-blox: 0 minimum (radio off), 1 full, 4 airplane, 16 reboot
# with SIM reset (app note §2.3.1 uses it to apply NVM settings).
CFUN_MODES = frozenset({0, 1, 4, 16})


class AuthType(IntEnum):
    """+UAUTHREQ <auth_type>: how the module authenticates the context to the network."""

    NONE = 0
    PAP = 1
    CHAP = 2
    AUTO = 3  # none, then PAP, then CHAP (u-blox +UAUTHREQ)


_AUTH_NAMES = {"none": AuthType.NONE, "pap": AuthType.PAP, "chap": AuthType.CHAP,
               "auto": AuthType.AUTO}


def auth_type(value: int | str, *, owner: str = "") -> AuthType:
    """An AuthType from its number (0-3) or name ("none", "pap", "chap", "auto")."""
    if isinstance(value, str) and value.strip().lower() in _AUTH_NAMES:
        return _AUTH_NAMES[value.strip().lower()]
    if isinstance(value, int) and not isinstance(value, bool) and value in set(AuthType):
        return AuthType(value)
    of = f" of {owner}" if owner else ""
    raise ValidationError(
        f"authentication type {value!r}{of} is unknown: use none (0), pap (1), chap (2) or "
        "auto (3)"
    )


class DefaultIpType(IntEnum):
    """+UDCONF=19 preferred IP type of the default context (0 is from app note §2.3.1).

    1 to 3 follow the u-blox +UPSD protocol-type numbering; only 0 is shown by the app note.
    """

    IPV4 = 0
    IPV6 = 1
    IPV4V6_PREFER_IPV4 = 2
    IPV4V6_PREFER_IPV6 = 3


# -- argument checks -----------------------------------------------------------------------


def _char_problem(value: str) -> str | None:
    """Why `value` cannot go between double quotes on the AT line, or None."""
    for position, char in enumerate(value, start=1):
        if char == '"':
            return f"contains a double quote (character {position})"
        if char == "\\":
            return f"contains a backslash (character {position})"
        if char == "\r":
            return f"contains a carriage return (character {position})"
        if char == "\n":
            return f"contains a line feed (character {position})"
        if ord(char) < 0x20 or ord(char) == 0x7F:
            return f"contains the control character {char!r} (character {position})"
        if not char.isascii():
            return f'contains the non-ASCII character "{char}" (character {position})'
    return None


def _subject(field: str, value: str, owner: str, secret: bool) -> str:
    shown = field if secret else f'{field} "{_printable(value)}"'
    return f"{shown} of {owner}" if owner else shown


def _printable(value: str) -> str:
    # Keep the message one clean line even when the value holds CR/LF or control bytes.
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in value)


def check_at_string(
    value: str,
    *,
    field: str,
    command: str,
    max_len: int,
    owner: str = "",
    secret: bool = False,
) -> str:
    """Refuse what cannot go in a quoted AT argument; returns `value` unchanged.

    `field` and `owner` name the setting in the message ('APN "x" of cid 2 ...'); a
    `secret` value is never repeated in it.
    """
    if not isinstance(value, str):
        raise ValidationError(
            f"{field}{' of ' + owner if owner else ''} must be text, not {type(value).__name__}: "
            "write it as a quoted string"
        )
    problem = _char_problem(value)
    if problem:
        raise ValidationError(
            f"{_subject(field, value, owner, secret)} {problem}; the module cannot accept it "
            f"in {command}: remove it"
        )
    if len(value) > max_len:
        raise ValidationError(
            f"{_subject(field, value, owner, secret)} is {len(value)} characters long; the "
            f"module accepts at most {max_len} in {command}: shorten it"
        )
    return value


def check_apn(apn: str, *, owner: str = "", command: str = "AT+CGDCONT") -> str:
    """An APN the module can take: quotable, at most 99 characters, no empty label."""
    check_at_string(apn, field="APN", command=command, max_len=APN_MAX_LEN, owner=owner)
    if apn == "":
        return apn  # empty: the network chooses (app note §2.1 warns it may give no service)
    subject = _subject("APN", apn, owner, secret=False)
    if any(c.isspace() for c in apn):
        raise ValidationError(
            f"{subject} contains a space, which an APN cannot hold (3GPP TS 23.003 §9.1): "
            "remove it"
        )
    for label in apn.split("."):
        if label == "":
            raise ValidationError(
                f"{subject} has an empty label (a leading, trailing or doubled dot), which an "
                "APN cannot hold (3GPP TS 23.003 §9.1): remove the extra dot"
            )
        if len(label) > APN_LABEL_MAX_LEN:
            raise ValidationError(
                f'{subject} has the label "{label[:20]}..." of {len(label)} characters; '
                f"3GPP TS 23.003 §9.1 allows at most {APN_LABEL_MAX_LEN}: shorten it"
            )
    return apn


def check_user(user: str, *, owner: str = "", command: str = "AT+UAUTHREQ") -> str:
    return check_at_string(
        user, field="user name", command=command, max_len=USER_MAX_LEN, owner=owner
    )


def check_password(password: str, *, owner: str = "", command: str = "AT+UAUTHREQ") -> str:
    return check_at_string(
        password,
        field="password",
        command=command,
        max_len=PASSWORD_MAX_LEN,
        owner=owner,
        secret=True,
    )


def check_cid(cid: int, *, command: str) -> int:
    if isinstance(cid, bool) or not isinstance(cid, int) or not MIN_CID <= cid <= MAX_CID:
        raise ValidationError(
            f"cid {cid!r} is not a LARA-R6 context id; {command} takes {MIN_CID} to {MAX_CID} "
            "(app note §2.1): use one of those"
        )
    return cid


def _check_choice(value: int, allowed: Collection[int], *, field: str, command: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
        choices = ", ".join(str(v) for v in sorted(allowed))
        raise ValidationError(
            f"{field} {value!r} is not accepted by {command}: use one of {choices}"
        )
    return value


def quote(value: str) -> str:
    """`value` between double quotes; callers check it first."""
    return f'"{value}"'


# -- builders ------------------------------------------------------------------------------


def cgmm() -> str:
    """AT+CGMM: the model ("LARA-R6401" ...), to check the module is a LARA-R6."""
    return "AT+CGMM"


def cgmr() -> str:
    """AT+CGMR: the firmware version ("05.12")."""
    return "AT+CGMR"


def cgsn() -> str:
    """AT+CGSN: the IMEI."""
    return "AT+CGSN"


def ccid() -> str:
    """AT+CCID: the SIM's ICCID."""
    return "AT+CCID"


def cesq() -> str:
    """AT+CESQ: extended signal quality (3GPP TS 27.007 §8.69), RSRP and RSRQ on LTE."""
    return "AT+CESQ"


def cops_format_long() -> str:
    """AT+COPS=3,0: report the operator by its long alphanumeric name ("Vodafone IT")."""
    return "AT+COPS=3,0"


def ath() -> str:
    """ATH: in online command mode (after "+++") ends PPP and its context, with AT+CVHU=0 (§4.2)."""
    return "ATH"


def amp_c(mode: int) -> str:
    """AT&C<n> (ITU-T V.250 §6.2.8): 0 keeps DCD always on, 1 has DCD follow the data call."""
    return f"AT&C{_check_choice(mode, (0, 1), field='&C mode', command='AT&C')}"


def amp_d(mode: int) -> str:
    """AT&D<n> (ITU-T V.250 §6.2.9): what a DTR ON-to-OFF transition does on this port.

    0 ignores DTR, 1 switches to online command mode, 2 clears the call; u-blox modules
    also tie what "+++" does during a PPP call to it (app note §4.2 points there).
    """
    return f"AT&D{_check_choice(mode, (0, 1, 2), field='&D mode', command='AT&D')}"


def cmee(mode: int) -> str:
    """AT+CMEE=<n>: 0 plain ERROR, 1 numeric +CME ERROR codes, 2 verbose text."""
    return f"AT+CMEE={_check_choice(mode, (0, 1, 2), field='CMEE mode', command='AT+CMEE')}"


def cfun(fun: int) -> str:
    """AT+CFUN=<fun>: 0 radio off, 1 on, 4 airplane, 16 reboot (applies NVM settings)."""
    return f"AT+CFUN={_check_choice(fun, CFUN_MODES, field='CFUN mode', command='AT+CFUN')}"


def umnoprof_set(profile: int) -> str:
    """AT+UMNOPROF=<profile>: stored in NVM, takes effect after AT+CFUN=16 (app note §2.3.1)."""
    if isinstance(profile, bool) or not isinstance(profile, int) or not 0 <= profile <= 999:
        raise ValidationError(
            f"MNO profile {profile!r} is not a +UMNOPROF number: use the number from the "
            "AT commands manual (e.g. 100 for Europe, app note §2.3.1)"
        )
    return f"AT+UMNOPROF={profile}"


def umnoprof_read() -> str:
    return "AT+UMNOPROF?"


def cgdcont_set(cid: int, pdp_type: str, apn: str) -> str:
    """AT+CGDCONT=<cid>,"<PDP_type>","<APN>" (define a context; radio off: app note §2.3.1)."""
    check_cid(cid, command="AT+CGDCONT")
    if pdp_type not in PDP_TYPES:
        raise ValidationError(
            f'PDP type "{pdp_type}" of cid {cid} is not one LARA-R6 knows: use one of '
            + ", ".join(sorted(PDP_TYPES))
        )
    check_apn(apn, owner=f"cid {cid}", command="AT+CGDCONT")
    return f"AT+CGDCONT={cid},{quote(pdp_type)},{quote(apn)}"


def cgdcont_read() -> str:
    return "AT+CGDCONT?"


def cgcontrdp(cid: int | None = None) -> str:
    """AT+CGCONTRDP[=<cid>]: dynamic parameters, including the IPv4 MTU (app note §4)."""
    if cid is None:
        return "AT+CGCONTRDP"
    return f"AT+CGCONTRDP={check_cid(cid, command='AT+CGCONTRDP')}"


def cgact(state: int, cid: int) -> str:
    """AT+CGACT=<state>,<cid>; in 2G/3G issue it before using a context (app note §2.3)."""
    _check_choice(state, (0, 1), field="CGACT state", command="AT+CGACT")
    return f"AT+CGACT={state},{check_cid(cid, command='AT+CGACT')}"


def cops_read() -> str:
    return "AT+COPS?"


def cops_format_numeric() -> str:
    """AT+COPS=3,2: report the operator as a numeric PLMN ("310260"), for XLAT decisions."""
    return "AT+COPS=3,2"


def cereg_set(mode: int) -> str:
    """AT+CEREG=<n> (3GPP TS 27.007 §10.1.22): 2 adds TAC, cell id and AcT to the URC."""
    return f"AT+CEREG={_check_choice(mode, range(6), field='CEREG mode', command='AT+CEREG')}"


def cgerep(mode: int) -> str:
    """AT+CGEREP=<mode> (3GPP TS 27.007 §10.1.19): send +CGEV URCs; 2 buffers them in data mode."""
    return f"AT+CGEREP={_check_choice(mode, (0, 1, 2), field='CGEREP mode', command='AT+CGEREP')}"


def cereg_read() -> str:
    return "AT+CEREG?"


def cvhu(mode: int) -> str:
    """AT+CVHU=<mode>; 0 makes ATH in online command mode end PPP (app note §4.2)."""
    return f"AT+CVHU={_check_choice(mode, (0, 1, 2), field='CVHU mode', command='AT+CVHU')}"


def udconf19_set(cid: int, ip_type: int) -> str:
    """AT+UDCONF=19,<cid>,<ip_type>: default context for internal apps; needs a reboot (§2.3.1)."""
    check_cid(cid, command="AT+UDCONF=19")
    _check_choice(ip_type, set(DefaultIpType), field="IP type", command="AT+UDCONF=19")
    return f"AT+UDCONF=19,{cid},{int(ip_type)}"


def udconf19_read() -> str:
    return "AT+UDCONF=19"


def udconf66_set(enable: bool) -> str:
    """AT+UDCONF=66,4,<0|1>: XLAT (464XLAT) off or on; needs CFUN=0 before, CFUN=16 after (§2.5)."""
    return f"AT+UDCONF=66,4,{1 if enable else 0}"


def udconf66_read() -> str:
    return "AT+UDCONF=66"


def uembpf_set(first: int, last: int) -> str:
    """AT+UEMBPF=1,"<first>-<last>": source ports for embedded apps; reboot to apply (§4.3)."""
    port_range = check_uembpf_range(PortRange(first, last))
    return f"AT+UEMBPF=1,{quote(str(port_range))}"


def uembpf_read() -> str:
    return "AT+UEMBPF?"


def dial(cid: int) -> str:
    """ATD*99***<cid>#: start PPP on the context; the module answers CONNECT (app note §4.1)."""
    return f"ATD*99***{check_cid(cid, command='ATD*99***<cid>#')}#"


def ulwm2m_disable() -> str:
    """AT+ULWM2M=1: stop the embedded LwM2M client, which otherwise answers host DNS replies
    with ICMP "destination unreachable" while PPP is up (FACTS.md; app note §4.3 advises
    disabling embedded applications the host does not use)."""
    return "AT+ULWM2M=1"
