"""Chat scripts as data, the pure step check, and secret masking."""

from __future__ import annotations

import pytest

from larappp.proto.at.chat import DEFAULT_ABORTS, ChatScript, ChatStep, check_step
from larappp.proto.at.core import FinalResult
from larappp.proto.at.masking import mask

OK = FinalResult("ok", "OK", 0)


def test_ok_without_expect_passes() -> None:
    check = check_step(ChatStep("AT+CFUN=0"), (), OK)
    assert check.passed
    assert check.reason == ""


def test_expect_is_searched_in_the_response_lines() -> None:
    step = ChatStep("AT+UMNOPROF?", expect=r"^\+UMNOPROF: 100$")  # app note §2.3.1
    check = check_step(step, ("+UMNOPROF: 100",), OK)
    assert check.passed
    assert check.matched == "+UMNOPROF: 100"


def test_expect_missing_fails_with_the_pattern() -> None:
    step = ChatStep("AT+UMNOPROF?", expect=r"\+UMNOPROF: 100")
    check = check_step(step, ("+UMNOPROF: 90",), OK)
    assert not check.passed
    assert "did not match" in check.reason


@pytest.mark.parametrize(
    ("final", "reason"),
    [
        (FinalResult("error", "ERROR", 4), "ERROR"),
        (FinalResult("cme_error", "+CME ERROR: 3", 3), "+CME ERROR: 3 (operation not allowed)"),
        (
            FinalResult("cme_error", "+CME ERROR: 10", 10),
            "+CME ERROR: 10 (SIM not inserted): insert a SIM card",
        ),
        (FinalResult("no_carrier", "NO CARRIER", 3), "NO CARRIER"),
        (FinalResult("busy", "BUSY", 7), "BUSY"),
    ],
)
def test_abort_finals_fail_the_step(final: FinalResult, reason: str) -> None:
    check = check_step(ChatStep("AT+CGDCONT?"), (), final)
    assert not check.passed
    assert check.reason == reason


def test_custom_abort_matches_a_response_line() -> None:
    step = ChatStep("AT+CPIN?", expect=r"\+CPIN: READY")
    check = check_step(step, ("+CPIN: SIM PIN",), OK, (*DEFAULT_ABORTS, "+CPIN: SIM PIN"))
    assert not check.passed
    assert check.reason == "+CPIN: SIM PIN"


def test_failure_not_in_aborts_still_fails() -> None:
    check = check_step(ChatStep("AT+X"), (), FinalResult("error", "ERROR", 4), aborts=())
    assert not check.passed
    assert check.reason == "ERROR"


def test_connect_passes_only_when_expected() -> None:
    connect = FinalResult("connect", "CONNECT 150000000", 1)
    assert check_step(ChatStep("ATD*99***1#", expect="CONNECT"), (), connect).passed
    plain = check_step(ChatStep("ATD*99***1#"), (), connect)
    assert not plain.passed
    assert "where OK was expected" in plain.reason


def test_script_is_frozen_data() -> None:
    script = ChatScript(
        "profile check",
        [ChatStep("AT+CFUN=0"), ChatStep("AT+UMNOPROF?", expect=r"\+UMNOPROF: 100")],  # type: ignore[arg-type]
        total_timeout=30.0,
    )
    assert isinstance(script.steps, tuple)
    assert script.aborts == DEFAULT_ABORTS
    assert script.steps[0].timeout is None  # the runner's per-command table decides
    with pytest.raises(AttributeError):
        script.total_timeout = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"command": "CFUN=0"}, "not an AT command"),
        ({"command": "AT", "timeout": 0}, "positive timeout"),
        ({"command": "AT", "expect": "("}, "not a valid regular expression"),
    ],
)
def test_bad_steps_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ChatStep(**kwargs)  # type: ignore[arg-type]


def test_bad_script_is_refused() -> None:
    with pytest.raises(ValueError, match="positive total_timeout"):
        ChatScript("sync", (ChatStep("AT"),), total_timeout=0)


def test_mask() -> None:
    line = 'AT+CGAUTH=1,1,"user","pass-word"'
    assert mask(line, ["pass-word", ""]) == 'AT+CGAUTH=1,1,"user","***"'
    assert mask(line, []) == line
    # A secret containing another is masked whole.
    assert mask("pin 1234 puk 12345678", ["1234", "12345678"]) == "pin *** puk ***"
