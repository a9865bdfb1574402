"""Who the module is and how it hears the network: model, firmware, IMEI, ICCID, access
technology names and the +CESQ signal quality, parsed from the module's answers.

Standard library only; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from larappp.errors import ModemError
from larappp.lara_r6.parsers import Lines, _bad_line, _fields, _first_payload, _int, _iter_lines

__all__ = [
    "ACT_TEXT",
    "SignalQuality",
    "act_text",
    "parse_ccid",
    "parse_cesq",
    "parse_imei",
    "parse_text_answer",
]

# 3GPP TS 27.007 §7.3 <AcT> of +COPS and +CEREG, as people name them.
ACT_TEXT: dict[int, str] = {
    0: "GSM",
    1: "GSM Compact",
    2: "UMTS",
    3: "EDGE",
    4: "UMTS HSDPA",
    5: "UMTS HSUPA",
    6: "UMTS HSPA",
    7: "LTE",
    8: "EC-GSM-IoT",
    9: "LTE NB-IoT",
}


def act_text(act: int | None) -> str:
    """"LTE" for 7; "" when the module did not say."""
    if act is None:
        return ""
    return ACT_TEXT.get(act, f"access technology {act}")


def _answer_lines(lines: Lines) -> list[str]:
    """The information lines of a plain answer: no echo ("AT..."), no blank, no final code."""
    return [
        line.strip() for line in _iter_lines(lines)
        if line.strip() and not line.strip().upper().startswith("AT") and line.strip() not in ("OK", "ERROR")
    ]


def parse_text_answer(lines: Lines, command: str) -> str:
    """The one information line of AT+CGMM ("LARA-R6401") or AT+CGMR ("05.12")."""
    answer = _answer_lines(lines)
    if not answer:
        raise ModemError(f"the module answered {command} with no text; check that it is a LARA-R6")
    return answer[0]


def parse_imei(lines: Lines) -> str:
    """The IMEI of AT+CGSN: 15 digits ("352753090000001"), also as "+CGSN: 3527...")."""
    for line in _answer_lines(lines):
        imei = line.partition(":")[2].strip().strip('"') if line.upper().startswith("+CGSN") else line
        if len(imei) == 15 and imei.isascii() and imei.isdigit():
            return imei
        raise _bad_line(line, "an IMEI has 15 digits")
    raise ModemError("the module answered AT+CGSN with no IMEI; check that it is a LARA-R6")


def parse_ccid(lines: Lines) -> str:
    """The SIM's ICCID of AT+CCID: '+CCID: 8939107800023416395' (19 or 20 digits, maybe an F)."""
    line, payload = _first_payload(lines, "+CCID", "AT+CCID")
    iccid = payload.strip().strip('"')
    if not (18 <= len(iccid) <= 22 and iccid.isascii() and iccid.rstrip("Ff").isdigit()):
        raise _bad_line(line, "an ICCID is 18 to 22 digits")
    return iccid


@dataclass(frozen=True)
class SignalQuality:
    """The AT+CESQ answer (3GPP TS 27.007 §8.69) in units; None where the module does not know
    (99 or 255) or the radio is another one's (LTE has RSRQ and RSRP, UMTS RSCP, GSM RXLEV)."""

    rxlev_dbm: int | None = None
    ber: int | None = None
    rscp_dbm: int | None = None
    ecno_db: float | None = None
    rsrq_db: float | None = None
    rsrp_dbm: int | None = None

    def to_json(self) -> dict[str, int | float | None]:
        return {
            "rxlev_dbm": self.rxlev_dbm, "ber": self.ber, "rscp_dbm": self.rscp_dbm,
            "ecno_db": self.ecno_db, "rsrq_db": self.rsrq_db, "rsrp_dbm": self.rsrp_dbm,
        }

    def text(self) -> str:
        """"RSRP -96 dBm, RSRQ -10.0 dB" for LTE; "no signal figures" when nothing is known."""
        parts = [
            f"{name} {value} {unit}"
            for name, value, unit in (
                ("RSRP", self.rsrp_dbm, "dBm"), ("RSRQ", self.rsrq_db, "dB"), ("RSCP", self.rscp_dbm, "dBm"),
                ("Ec/No", self.ecno_db, "dB"), ("RXLEV", self.rxlev_dbm, "dBm"),
            )
            if value is not None
        ]
        return ", ".join(parts) or "no signal figures"


# (unknown code, highest code, value of code 0, step): the lowest and highest codes stand for
# "below" and "at or above" their value (3GPP TS 27.007 §8.69, TS 36.133 §9.1, TS 25.133 §9.1).
_RXLEV = (99, 63, -111, 1)
_BER = (99, 7, 0, 1)
_RSCP = (255, 96, -121, 1)
_ECNO = (255, 49, -24.5, 0.5)
_RSRQ = (255, 34, -20.0, 0.5)
_RSRP = (255, 97, -141, 1)


def _scaled(line: str, code: int, scale: tuple[int, int, float, float], name: str) -> float | None:
    unknown, highest, base, step = scale
    if code == unknown:
        return None
    if not 0 <= code <= highest:
        raise _bad_line(line, f"{name} {code} is outside 0-{highest} and not {unknown}")
    return base + code * step


def parse_cesq(lines: Lines) -> SignalQuality:
    """Read '+CESQ: 99,99,255,255,20,45' (LTE: RSRQ -10 dB, RSRP -96 dBm)."""
    line, payload = _first_payload(lines, "+CESQ", "AT+CESQ")
    fields = _fields(line, payload)
    if len(fields) != 6:
        raise _bad_line(line, "+CESQ has six fields")
    names = ("rxlev", "ber", "rscp", "ecno", "rsrq", "rsrp")
    codes = [_int(line, field, name) for field, name in zip(fields, names, strict=True)]
    values = [
        _scaled(line, code, scale, name)
        for code, scale, name in zip(codes, (_RXLEV, _BER, _RSCP, _ECNO, _RSRQ, _RSRP), names, strict=True)
    ]
    rxlev, ber, rscp, ecno, rsrq, rsrp = values
    return SignalQuality(
        rxlev_dbm=None if rxlev is None else int(rxlev),
        ber=None if ber is None else int(ber),
        rscp_dbm=None if rscp is None else int(rscp),
        ecno_db=ecno,
        rsrq_db=rsrq,
        rsrp_dbm=None if rsrp is None else int(rsrp),
    )
