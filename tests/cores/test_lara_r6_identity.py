"""larappp.lara_r6.identity from literal answer lines: model, firmware, IMEI, ICCID, AcT, +CESQ."""

from __future__ import annotations

from typing import Any

import pytest

from larappp.errors import ModemError
from larappp.lara_r6 import commands, identity
from larappp.lara_r6.identity import SignalQuality


def feeds(lines: list[str]) -> list[Any]:
    """The answer as the AT layer may hand it over: bare, with echo and OK, padded."""
    return [lines, ["AT+X", "", *lines, "", "OK"], [f"  {line}  " for line in lines]]


def test_builders() -> None:
    assert (commands.cgmr(), commands.cgsn(), commands.ccid(), commands.cesq(), commands.cops_format_long()) == (
        "AT+CGMR", "AT+CGSN", "AT+CCID", "AT+CESQ", "AT+COPS=3,0"
    )


@pytest.mark.parametrize(("lines", "expected"), [(["LARA-R6401"], "LARA-R6401"), (["05.12"], "05.12")])
def test_parse_text_answer(lines: list[str], expected: str) -> None:
    for feed in feeds(lines):
        assert identity.parse_text_answer(feed, "AT+CGMM") == expected


def test_parse_text_answer_refuses_an_empty_answer() -> None:
    with pytest.raises(ModemError, match="AT\\+CGMR"):
        identity.parse_text_answer(["AT+CGMR", "OK"], "AT+CGMR")


@pytest.mark.parametrize("line", ["352753090000001", '+CGSN: "352753090000001"', "+CGSN: 352753090000001"])
def test_parse_imei(line: str) -> None:
    for feed in feeds([line]):
        assert identity.parse_imei(feed) == "352753090000001"


@pytest.mark.parametrize("feed", [["35275309"], ["OK"], ["35275309000000x"]])
def test_parse_imei_refuses(feed: list[str]) -> None:
    with pytest.raises(ModemError):
        identity.parse_imei(feed)


@pytest.mark.parametrize(("line", "expected"), [
    ("+CCID: 8939107800023416395", "8939107800023416395"),  # u-blox AT manual, +CCID
    ("+CCID: 89011703278100321234", "89011703278100321234"),
    ("+CCID:8944110068256270054F", "8944110068256270054F"),
])
def test_parse_ccid(line: str, expected: str) -> None:
    for feed in feeds([line]):
        assert identity.parse_ccid(feed) == expected


@pytest.mark.parametrize("feed", [["+CCID: 1234"], ["OK"], ["+CCID: 89391078000234163xx"]])
def test_parse_ccid_refuses(feed: list[str]) -> None:
    with pytest.raises(ModemError):
        identity.parse_ccid(feed)


@pytest.mark.parametrize(("line", "expected"), [
    # LTE: RXLEV, BER, RSCP and Ec/No unknown; RSRQ 20 -> -10 dB, RSRP 45 -> -96 dBm.
    ("+CESQ: 99,99,255,255,20,45", SignalQuality(rsrq_db=-10.0, rsrp_dbm=-96)),
    # The edges: 0 is "below" the first step, the highest code "at or above" the last.
    ("+CESQ: 99,99,255,255,0,0", SignalQuality(rsrq_db=-20.0, rsrp_dbm=-141)),
    ("+CESQ: 99,99,255,255,34,97", SignalQuality(rsrq_db=-3.0, rsrp_dbm=-44)),
    # UMTS and GSM figures.
    ("+CESQ: 99,99,40,30,255,255", SignalQuality(rscp_dbm=-81, ecno_db=-9.5)),
    ("+CESQ: 30,0,255,255,255,255", SignalQuality(rxlev_dbm=-81, ber=0)),
    ("+CESQ: 99,99,255,255,255,255", SignalQuality()),
])
def test_parse_cesq(line: str, expected: SignalQuality) -> None:
    for feed in feeds([line]):
        assert identity.parse_cesq(feed) == expected


@pytest.mark.parametrize("feed", [
    ["+CESQ: 99,99,255,255,20"], ["+CESQ: 99,99,255,255,35,45"], ["+CESQ: 99,99,255,255,x,45"], ["OK"],
])
def test_parse_cesq_refuses(feed: list[str]) -> None:
    with pytest.raises(ModemError):
        identity.parse_cesq(feed)


def test_signal_text_and_json() -> None:
    lte = identity.parse_cesq("+CESQ: 99,99,255,255,20,45")
    assert lte.text() == "RSRP -96 dBm, RSRQ -10.0 dB"
    assert lte.to_json()["rsrp_dbm"] == -96 and lte.to_json()["rxlev_dbm"] is None
    assert SignalQuality().text() == "no signal figures"


def test_act_text() -> None:
    assert [identity.act_text(act) for act in (7, 0, 2, 9, None, 42)] == [
        "LTE", "GSM", "UMTS", "LTE NB-IoT", "", "access technology 42"
    ]
