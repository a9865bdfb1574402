"""Config parsing: every mistake is one ConfigError naming the key and what to change."""

from __future__ import annotations

from dataclasses import replace

import pytest

from larappp.config import HOLDOFF_MAX_S, SessionConfig, default_config, load_config, parse_config
from larappp.errors import ConfigError

GOOD = """
[modem]
port = "/dev/ttyACM0"
baud = 115200
flow_control = "rtscts"
embpf = "6000-6200"

[[session]]
cid = 1
apn = "internet"

[[session]]
cid = 2
apn = "iot.example"
auth = "chap"
user = "me"
password = "s3cret"
port = "/dev/ttyACM2"
teardown = "dtr"
"""


def test_good_config_parses() -> None:
    cfg = parse_config(GOOD, source="good.toml")
    assert cfg.modem.rtscts is True
    assert cfg.modem.embpf == "6000-6200"
    assert [s.cid for s in cfg.sessions] == [1, 2]
    assert cfg.sessions[1].teardown == "dtr"
    assert cfg.sessions[0].families == (4, 6)
    assert "s3cret" not in repr(cfg.sessions[1])
    assert "s3cret" in cfg.secrets()


def test_redial_policy_has_pppds_names_and_defaults() -> None:
    cfg = parse_config(GOOD + "persist = false\nholdoff = 2.5\nmaxfail = 0\n", source="good.toml")
    first, second = cfg.sessions
    assert (first.persist, first.holdoff, first.maxfail) == (True, 1.0, 10)  # pppd: maxfail 10
    assert (second.persist, second.holdoff, second.maxfail) == (False, 2.5, 0)


def test_holdoff_doubles_with_each_failed_redial_up_to_the_cap() -> None:
    session = SessionConfig(cid=1, apn="a")
    assert [session.holdoff_after(n) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert replace(session, holdoff=0.0).holdoff_after(5) == 0.0
    assert session.holdoff_after(10_000) == HOLDOFF_MAX_S


def test_lcp_echo_settings_default_to_a_cellular_keepalive() -> None:
    cfg = parse_config(GOOD + "lcp_echo_interval = 2\nlcp_echo_failure = 4\n", source="good.toml")
    first, second = cfg.sessions
    assert (first.lcp_echo_interval, first.lcp_echo_failure) == (5.0, 3)  # 15 s to notice
    assert (second.lcp_echo_interval, second.lcp_echo_failure) == (2.0, 4)
    off = parse_config('[[session]]\ncid=2\napn="a"\nlcp_echo_interval = 0\n')
    assert off.sessions[0].lcp_echo_interval == 0.0


def test_default_config_is_the_simulator() -> None:
    cfg = default_config()
    assert cfg.uses_simulator
    assert len(cfg.sessions) == 1


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[modem\nport=1", "not valid TOML"),
        ('[modem]\nport = "COM3"\n[[session]]\ncid=1\napn="a"', "modem.port"),
        ('[modem]\nbaud = 12345\n[[session]]\ncid=1\napn="a"', "modem.baud"),
        ('[modem]\nbogus = 1\n[[session]]\ncid=1\napn="a"', "unknown key modem.bogus"),
        ("[modem]\n", "no [[session]]"),
        ('[[session]]\ncid=1', "needs both cid and apn"),
        ('[[session]]\ncid="one"\napn="a"', "session[0].cid must be a whole number, not \"one\""),
        ('[modem]\ncommand_timeout="x"\n[[session]]\ncid=1\napn="a"', "modem.command_timeout must be a number, not \"x\""),
        ('[[session]]\ncid=1\napn="a"\n[[session]]\ncid=1\napn="b"', "two sessions use cid 1; give each session its own cid"),
        ('[modem]\nport="sim"\n[[session]]\ncid=1\napn="a"\n[sim]\nnetwork="a/b"', "sim.network = \"a/b\" is not a namespace name"),
        ('[[session]]\ncid=2\napn="a"\nteardown="pull-plug"', "session[0].teardown"),
        ('[[session]]\ncid=2\napn="a"\nauth="pap"', "needs a user"),
        ('[[session]]\ncid=2\napn="a"\nifname="this-name-is-far-too-long"', "ifname"),
        ('[[session]]\ncid=2\napn="a"\npdp_type="X25"', "pdp_type"),
        ('[[session]]\ncid=2\napn="a"\n[[session]]\ncid=3\napn="b"\nifname="lara2"', "interface name lara2"),
        ('[modem]\nport="/dev/ttyACM0"\n[[session]]\ncid=2\napn="a"\n[[session]]\ncid=3\napn="b"', "share the port"),
        ('[[session]]\ncid=2\napn="a"\npersist="yes"', "session[0].persist must be true or false, not \"yes\""),
        ('[[session]]\ncid=2\napn="a"\nholdoff=-1', "session[0].holdoff = -1 is out of range 0..60"),
        ('[[session]]\ncid=2\napn="a"\nholdoff=true', "session[0].holdoff must be a number"),
        ('[[session]]\ncid=2\napn="a"\nmaxfail=-3', "session[0].maxfail = -3 must be 0 (redial for ever)"),
        ('[[session]]\ncid=2\napn="a"\nmaxfail=1.5', "session[0].maxfail must be a whole number"),
        ('[[session]]\ncid=2\napn="a"\nlcp_echo_interval=0.1', "lcp_echo_interval = 0.1 is out of range"),
        ('[[session]]\ncid=2\napn="a"\nlcp_echo_interval=-5', "or 0 to send no LCP echoes"),
        ('[[session]]\ncid=2\napn="a"\nlcp_echo_interval="5s"', "lcp_echo_interval must be a number"),
        ('[[session]]\ncid=2\napn="a"\nlcp_echo_failure=0', "lcp_echo_failure = 0 is out of range 1..100"),
        ('[[session]]\ncid=2\napn="a"\nlcp_echo_failure=2.5', "lcp_echo_failure must be a whole number"),
    ],
)
def test_bad_config_names_the_key(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="bad.toml")
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("sessions", "needle"),
    [
        ('[[session]]\ncid=2\napn="a\\"b"', "quote"),
        ('[[session]]\ncid=2\napn="same"\n[[session]]\ncid=3\napn="same"\nport="/dev/x"', "APN"),
        (
            "".join(f'[[session]]\ncid={c}\napn="a{c}"\nport="/dev/p{c}"\n' for c in (2, 3, 4, 5)),
            "3",
        ),
        ('[[session]]\ncid=1\napn="a"\nauth="pap"\nuser="u"', "CID 1"),
        ('[[session]]\ncid=9\napn="a"', "9"),
    ],
)
def test_pdp_rules_are_enforced(sessions: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config('[modem]\nport="/dev/ttyACM0"\n' + sessions, source="rules.toml")
    assert needle.lower() in str(info.value).lower()


def test_embpf_range_is_validated() -> None:
    with pytest.raises(ConfigError, match="embpf"):
        parse_config('[modem]\nembpf = "1000-1010"\n[[session]]\ncid=1\napn="a"')


def test_missing_file_is_named(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


# Found by fuzzing (scripts/fuzz.py config): each was an uncaught exception, not one line.
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[modem]\nbaud = 1" + "0" * 4400, "is not valid TOML"),  # ValueError: int() digit limit
        ("[modem]\ncommand_timeout = -" + "9" * 400, "modem.command_timeout is far out of range"),
        ("[sim]\nregistration_delay = 1" + "0" * 400, "sim.registration_delay is far out of range"),
        ("[modem]\nreboot_timeout = nan", "modem.reboot_timeout must be greater than 0"),
    ],
)
def test_numbers_no_float_holds_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(text + '\n[[session]]\ncid = 1\napn = "internet"\n')
