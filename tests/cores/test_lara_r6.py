"""larappp.lara_r6 from tables of literal strings, most of them the app note's own.

App note literals are marked with their section. Where the PDF text breaks a field
across table columns ("apn_nam e", "www.google .com") the break is removed; the
values are otherwise as printed, including the impossible "10.40.50.500" of §2.3.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import pytest

from larappp.errors import ConfigError, ModemError, ValidationError
from larappp.lara_r6 import commands, parsers, ports, rules, scripts, xlat
from larappp.lara_r6.commands import AuthType
from larappp.lara_r6.parsers import (
    CgevEvent,
    Operator,
    PdpContext,
    Registration,
)
from larappp.lara_r6.ports import BoundSocket, PortRange
from larappp.lara_r6.rules import PdpPlan
from larappp.lara_r6.xlat import XlatHistory

V4 = IPv4Address
V6 = IPv6Address


def feeds(lines: list[str]) -> list[Any]:
    """The same response as the AT layer may hand it over: list, with noise, generator."""
    noisy = ["AT+X", "", *lines, "", "OK"]
    return [lines, noisy, (line for line in lines), [f"  {line}  " for line in lines]]


# -- docstrings -----------------------------------------------------------------------------


@pytest.mark.parametrize("module", [commands, parsers, ports, rules, scripts, xlat], ids=lambda m: m.__name__)
def test_every_public_class_has_a_one_line_docstring(module: Any) -> None:
    for name in module.__all__:
        obj = getattr(module, name)
        if isinstance(obj, type) and obj.__module__ == module.__name__:
            assert obj.__doc__ and obj.__doc__.strip(), name
            assert obj.__doc__.strip().splitlines()[0].strip(), name


# -- builders -------------------------------------------------------------------------------

BUILDERS: list[tuple[Callable[..., str], tuple[Any, ...], str]] = [
    (commands.cmee, (2,), "AT+CMEE=2"),
    (commands.cmee, (1,), "AT+CMEE=1"),
    (commands.amp_c, (1,), "AT&C1"),  # ITU-T V.250 §6.2.8
    (commands.amp_d, (2,), "AT&D2"),  # ITU-T V.250 §6.2.9
    (commands.amp_d, (0,), "AT&D0"),
    (commands.cgerep, (2,), "AT+CGEREP=2"),  # 3GPP TS 27.007 §10.1.19
    (commands.cfun, (0,), "AT+CFUN=0"),  # app note §2.3.1
    (commands.cfun, (1,), "AT+CFUN=1"),  # app note §2.3
    (commands.cfun, (4,), "AT+CFUN=4"),
    (commands.cfun, (16,), "AT+CFUN=16"),  # app note §2.3.1
    (commands.umnoprof_set, (100,), "AT+UMNOPROF=100"),  # app note §2.3.1
    (commands.umnoprof_read, (), "AT+UMNOPROF?"),
    (commands.cgdcont_set, (1, "IPV4V6", "apn_name"), 'AT+CGDCONT=1,"IPV4V6","apn_name"'),  # §2.3.1
    (commands.cgdcont_set, (2, "IPV4V6", "apn2"), 'AT+CGDCONT=2,"IPV4V6","apn2"'),
    (commands.cgdcont_set, (3, "IP", ""), 'AT+CGDCONT=3,"IP",""'),
    (commands.cgdcont_set, (8, "IPV6", "fast.t-mobile.com"), 'AT+CGDCONT=8,"IPV6","fast.t-mobile.com"'),
    (commands.cgdcont_set, (4, "NONIP", "nidd"), 'AT+CGDCONT=4,"NONIP","nidd"'),
    (commands.cgdcont_read, (), "AT+CGDCONT?"),
    (commands.cgcontrdp, (), "AT+CGCONTRDP"),
    (commands.cgcontrdp, (None,), "AT+CGCONTRDP"),
    (commands.cgcontrdp, (2,), "AT+CGCONTRDP=2"),  # app note §4
    (commands.cgact, (1, 1), "AT+CGACT=1,1"),  # app note §2.3
    (commands.cgact, (0, 3), "AT+CGACT=0,3"),
    (commands.cops_read, (), "AT+COPS?"),  # app note §2.3
    (commands.cops_format_numeric, (), "AT+COPS=3,2"),
    (commands.cereg_set, (2,), "AT+CEREG=2"),
    (commands.cereg_read, (), "AT+CEREG?"),
    (commands.cvhu, (0,), "AT+CVHU=0"),  # app note §4.2
    (commands.udconf19_set, (2, 0), "AT+UDCONF=19,2,0"),  # app note §2.3.1
    (commands.udconf19_set, (3, commands.DefaultIpType.IPV6), "AT+UDCONF=19,3,1"),
    (commands.udconf19_read, (), "AT+UDCONF=19"),
    (commands.udconf66_set, (True,), "AT+UDCONF=66,4,1"),  # app note §2.5
    (commands.udconf66_set, (False,), "AT+UDCONF=66,4,0"),
    (commands.udconf66_read, (), "AT+UDCONF=66"),
    (commands.uembpf_set, (6000, 6200), 'AT+UEMBPF=1,"6000-6200"'),  # app note §4.3.1
    (commands.uembpf_set, (6000, 6049), 'AT+UEMBPF=1,"6000-6049"'),  # 50 ports, app note §4.3.1
    (commands.uembpf_read, (), "AT+UEMBPF?"),  # app note §4.3.1
    (commands.dial, (1,), "ATD*99***1#"),  # app note §4.1
    (commands.dial, (2,), "ATD*99***2#"),
    (commands.ulwm2m_disable, (), "AT+ULWM2M=1"),
    (commands.cgmm, (), "AT+CGMM"),
    (commands.ath, (), "ATH"),  # app note §4.2
]


@pytest.mark.parametrize(("builder", "args", "expected"), BUILDERS,
                         ids=[f"{b.__name__}{a}" for b, a, _ in BUILDERS])
def test_builder(builder: Callable[..., str], args: tuple[Any, ...], expected: str) -> None:
    command = builder(*args)
    assert command == expected
    assert "\r" not in command and "\n" not in command


def test_brief_example_message_for_a_quote_in_an_apn() -> None:
    with pytest.raises(ValidationError) as info:
        commands.cgdcont_set(2, "IPV4V6", 'a"b')
    assert str(info.value) == (
        'APN "a"b" of cid 2 contains a double quote (character 2); the module cannot accept '
        "it in AT+CGDCONT: remove it"
    )


def credentials(cid: int, auth: int | str, user: str, password: str) -> tuple[AuthType, str, str]:
    """The checks a session's auth, user and password pass (rules.check_pdp_plan runs them)."""
    owner = f"cid {cid}"
    return (commands.auth_type(auth, owner=owner), commands.check_user(user, owner=owner),
            commands.check_password(password, owner=owner))


REFUSED: list[tuple[Callable[..., str], tuple[Any, ...], str]] = [
    (commands.cgdcont_set, (2, "IPV4V6", "a\\b"), "contains a backslash (character 2)"),
    (commands.cgdcont_set, (2, "IPV4V6", "ab\r"), "contains a carriage return (character 3)"),
    (commands.cgdcont_set, (2, "IPV4V6", "a\nb"), "contains a line feed (character 2)"),
    (commands.cgdcont_set, (2, "IPV4V6", "a\x07b"), "contains the control character '\\x07'"),
    (commands.cgdcont_set, (2, "IPV4V6", "a\x7fb"), "contains the control character '\\x7f'"),
    (commands.cgdcont_set, (2, "IPV4V6", "intérnet"), 'contains the non-ASCII character "é"'),
    (commands.cgdcont_set, (2, "IPV4V6", "a" * 100), ("is 100 characters long; the module accepts at "
     "most 99 in AT+CGDCONT: shorten it")),
    (commands.cgdcont_set, (2, "IPV4V6", "a" * 64), "has the label"),
    (commands.cgdcont_set, (2, "IPV4V6", "a..b"), "has an empty label"),
    (commands.cgdcont_set, (2, "IPV4V6", ".ab"), "has an empty label"),
    (commands.cgdcont_set, (2, "IPV4V6", "ab."), "has an empty label"),
    (commands.cgdcont_set, (2, "IPV4V6", "my apn"), "contains a space"),
    (commands.cgdcont_set, (2, "PPP", "apn"), 'PDP type "PPP" of cid 2 is not one LARA-R6 knows'),
    (commands.cgdcont_set, (2, "ipv4v6", "apn"), "is not one LARA-R6 knows"),
    (commands.cgdcont_set, (0, "IP", "apn"), "cid 0 is not a LARA-R6 context id"),
    (commands.cgdcont_set, (9, "IP", "apn"), "takes 1 to 8 (app note §2.1)"),
    (commands.cgdcont_set, (True, "IP", "apn"), "cid True is not"),
    (commands.cgcontrdp, (9,), "cid 9"),
    (commands.cgact, (2, 1), "CGACT state 2 is not accepted by AT+CGACT: use one of 0, 1"),
    (commands.cgact, (1, 9), "cid 9"),
    (commands.cfun, (15,), "CFUN mode 15 is not accepted by AT+CFUN: use one of 0, 1, 4, 16"),
    (commands.cmee, (3,), "CMEE mode 3"),
    (commands.amp_c, (2,), "&C mode 2 is not accepted by AT&C: use one of 0, 1"),
    (commands.amp_d, (3,), "&D mode 3 is not accepted by AT&D: use one of 0, 1, 2"),
    (commands.cgerep, (3,), "CGEREP mode 3"),
    (commands.cereg_set, (6,), "CEREG mode 6"),
    (commands.cvhu, (3,), "CVHU mode 3"),
    (commands.umnoprof_set, (-1,), "MNO profile -1"),
    (commands.udconf19_set, (2, 4), "IP type 4 is not accepted by AT+UDCONF=19"),
    (commands.udconf19_set, (0, 0), "cid 0"),
    (commands.uembpf_set, (1000, 1100), "starts at or below port 1024"),
    (commands.uembpf_set, (1024, 1100), "starts at or below port 1024"),
    (commands.uembpf_set, (6000, 6048), ('holds only 49 ports, fewer than the 50 the app note §4.3 '
     'recommends: widen it (e.g. "6000-6049")')),
    (commands.uembpf_set, (6200, 6000), 'is reversed: write it as "6000-6200"'),
    (commands.uembpf_set, (65500, 65536), "outside 1-65535"),
    (credentials, (2, 4, "u", "p"), "authentication type 4 of cid 2 is unknown: use none (0)"),
    (credentials, (2, "md5", "u", "p"), "authentication type 'md5' of cid 2 is unknown"),
    (credentials, (2, True, "u", "p"), "authentication type True of cid 2 is unknown"),
    (credentials, (2, 1, 'us"er', "p"), 'user name "us"er" of cid 2 contains a double quote'),
    (credentials, (2, 1, "u" * 65, "p"), "is 65 characters long; the module accepts at most 64"),
    (credentials, (2, 1, "u", "p" * 65), "password of cid 2 is 65 characters long"),
    (credentials, (2, 1, "u", "pä"), 'password of cid 2 contains the non-ASCII character "ä"'),
    (commands.dial, (0,), "cid 0"),
]


@pytest.mark.parametrize(("builder", "args", "message"), REFUSED,
                         ids=[f"{b.__name__}-{i}" for i, (b, _, _) in enumerate(REFUSED)])
def test_builder_refuses(builder: Callable[..., str], args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        builder(*args)
    text = str(info.value)
    assert message in text
    assert "\n" not in text and "\r" not in text
    assert ":" in text  # "...: what to change"


@pytest.mark.parametrize("password", ['sec"ret', "sec\\ret", "sec\rret", "s" * 65, "séc"])
def test_password_never_appears_in_the_error(password: str) -> None:
    with pytest.raises(ValidationError) as info:
        credentials(2, 1, "user", password)
    assert password not in str(info.value)
    assert "sec" not in str(info.value) and "sss" not in str(info.value)


def test_limits_are_accepted_at_the_edge() -> None:
    apn = ".".join(["a" * 63, "b" * 35])
    assert len(apn) == commands.APN_MAX_LEN
    assert commands.cgdcont_set(1, "IP", apn) == f'AT+CGDCONT=1,"IP","{apn}"'
    assert credentials(2, 2, "u" * 64, "p" * 64) == (AuthType.CHAP, "u" * 64, "p" * 64)


# -- field splitting and addresses -------------------------------------------------------------


SPLITS = [
    ('1,"IP","a,b"', [("1", False), ("IP", True), ("a,b", True)]),
    ("", [("", False)]),
    ("1,,3", [("1", False), ("", False), ("3", False)]),
    ('1,""', [("1", False), ("", True)]),
    ("  1 ,  2 ", [("1", False), ("2", False)]),
    ('"a" "b",2', [("a b", True), ("2", False)]),
    ("0,0,0,", [("0", False), ("0", False), ("0", False), ("", False)]),
    ('"I TIM"', [("I TIM", True)]),
]


@pytest.mark.parametrize(("payload", "expected"), SPLITS)
def test_split_fields(payload: str, expected: list[tuple[str, bool]]) -> None:
    assert [(f.text, f.quoted) for f in parsers.split_fields(payload)] == expected


@pytest.mark.parametrize("payload", ['"abc', '"a"x,1', '1,"b'])
def test_split_fields_refuses_broken_quotes(payload: str) -> None:
    with pytest.raises(ValueError):
        parsers.split_fields(payload)


DOTTED = [
    ("166.130.71.189", V4("166.130.71.189")),
    ("38.0.3.128.178.65.129.209.0.0.0.74.87.68.176.1", V6("2600:380:b241:81d1:0:4a:5744:b001")),
    ("2001:db8::1", V6("2001:db8::1")),
    ("fe80::1%ppp0", V6("fe80::1")),
    ("10.40.50.500", None),  # app note §2.3 prints this impossible address
    ("1.2.3", None),
    ("1.2.3.4.5.6.7.8", None),
    ("", None),
    ("a.b.c.d", None),
    ("2001:zz::1", None),
]


@pytest.mark.parametrize(("text", "expected"), DOTTED)
def test_parse_dotted_address(text: str, expected: object) -> None:
    assert parsers.parse_dotted_address(text) == expected


PDP_ADDRESSES = [
    ("10.117.32.103 38.0.3.128.178.65.129.209.0.0.0.74.87.68.176.1",  # app note §4.1.3
     V4("10.117.32.103"), V6("2600:380:b241:81d1:0:4a:5744:b001")),
    ("38.0.3.128.178.65.129.209.0.0.0.74.87.68.176.1", None, V6("2600:380:b241:81d1:0:4a:5744:b001")),
    ("166.130.71.189", V4("166.130.71.189"), None),
    ("", None, None),
    ("0.0.0.0", None, None),
    ("0.0.0.0 0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0", None, None),
    ("0.0.0.0 32.1.13.184.0.0.0.0.0.0.0.0.0.0.0.5", None, V6("2001:db8::5")),
    ("2001:db8::5", None, V6("2001:db8::5")),
    ("10.1.2.3  2001:db8::5", V4("10.1.2.3"), V6("2001:db8::5")),
]


@pytest.mark.parametrize(("text", "ipv4", "ipv6"), PDP_ADDRESSES)
def test_parse_pdp_address(text: str, ipv4: V4 | None, ipv6: V6 | None) -> None:
    assert parsers.parse_pdp_address(text) == (ipv4, ipv6)


# -- +CGDCONT ---------------------------------------------------------------------------------

APP_NOTE_CGDCONT = [  # app note §4.1.3, the IPv6 field's line break joined
    '+CGDCONT: 1,"IP","APN1","166.130.71.189",0,0,0,0',
    '+CGDCONT: 2,"IPV4V6","APN2","10.117.32.103 38.0.3.128.178.65.129.209.0.0.0.74.87.68.176.1",0,0,0,0',
]


@pytest.mark.parametrize("feed", feeds(APP_NOTE_CGDCONT), ids=["list", "noisy", "gen", "spaced"])
def test_parse_cgdcont_app_note_two_contexts(feed: Any) -> None:
    assert parsers.parse_cgdcont(feed) == [
        PdpContext(1, "IP", "APN1", V4("166.130.71.189"), None, "166.130.71.189"),
        PdpContext(2, "IPV4V6", "APN2", V4("10.117.32.103"),
                   V6("2600:380:b241:81d1:0:4a:5744:b001"),
                   "10.117.32.103 38.0.3.128.178.65.129.209.0.0.0.74.87.68.176.1"),
    ]


CGDCONT_LINES = [
    # app note §2.3, 2G/3G: more trailing fields
    ('+CGDCONT: 1,"IP","apn_name","100.108.232.233",0,0,0,0,0,0',
     (1, "IP", "apn_name", V4("100.108.232.233"), None)),
    # app note §2.3, LTE: its address is impossible, so none is reported
    ('+CGDCONT: 1,"IP","apn_name","10.40.50.500",0,0,0,',
     (1, "IP", "apn_name", None, None)),
    ('+CGDCONT: 1,"IPV6","fast.t-mobile.com","38.7.251.144.0.0.0.0.0.0.0.0.0.0.0.1",0,0',
     (1, "IPV6", "fast.t-mobile.com", None, V6("2607:fb90::1"))),
    ('+CGDCONT: 3,"IPV4V6","apn3","",0,0', (3, "IPV4V6", "apn3", None, None)),
    ('+CGDCONT: 1,"IPV4V6","internet","0.0.0.0",0,0', (1, "IPV4V6", "internet", None, None)),
    ('+CGDCONT: 1,"IPV6","ims","2001:db8::5",0,0', (1, "IPV6", "ims", None, V6("2001:db8::5"))),
    ('+CGDCONT:  2 , "IPV4V6" , "APN2" , "10.1.2.3 32.1.13.184.0.0.0.0.0.0.0.0.0.0.0.5" , 0 ,0',
     (2, "IPV4V6", "APN2", V4("10.1.2.3"), V6("2001:db8::5"))),
    ('+CGDCONT: 4,"IP","x"', (4, "IP", "x", None, None)),
    ("+CGDCONT: 1,IP,internet,10.0.0.1,0,0", (1, "IP", "internet", V4("10.0.0.1"), None)),
    ('+CGDCONT: 1,"ipv4v6","",,0,0', (1, "IPV4V6", "", None, None)),
]


@pytest.mark.parametrize(("line", "expected"), CGDCONT_LINES)
def test_parse_cgdcont_line(line: str, expected: tuple[Any, ...]) -> None:
    for feed in (line, [line], ["AT+CGDCONT?", line, "OK"]):
        (context,) = parsers.parse_cgdcont(feed)
        assert (context.cid, context.pdp_type, context.apn, context.ipv4, context.ipv6) == expected


def test_parse_cgdcont_empty_answer() -> None:
    assert parsers.parse_cgdcont(["OK"]) == []


@pytest.mark.parametrize("line", ['+CGDCONT: 1,"IP"', '+CGDCONT: x,"IP","a"',
                                  '+CGDCONT: 1,"IP,"a"'])
def test_parse_cgdcont_refuses_broken_lines(line: str) -> None:
    with pytest.raises(ModemError) as info:
        parsers.parse_cgdcont([line])
    assert line.strip() in str(info.value)


# -- +CGCONTRDP -------------------------------------------------------------------------------

DUAL_STACK_CGCONTRDP = [
    ('+CGCONTRDP: 2,6,"apn2","10.117.32.103.255.255.255.0","10.117.32.1",'
    '"198.51.100.53","198.51.100.54","","",0,0,1430'),
    ('+CGCONTRDP: 2,6,"apn2","32.1.13.184.0.0.0.0.0.0.0.0.0.0.0.5.255.255.255.255.255.255.255.255.'
    '0.0.0.0.0.0.0.0","","32.1.13.184.0.0.0.0.0.0.0.0.0.0.0.83","0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0"'),
    '+CGCONTRDP: 1,5,"internet","100.64.1.2.255.255.255.255","","192.0.2.53","","","",0,0,1500',
]


@pytest.mark.parametrize("feed", feeds(DUAL_STACK_CGCONTRDP), ids=["list", "noisy", "gen", "spaced"])
def test_parse_cgcontrdp_dual_stack(feed: Any) -> None:
    v4, v6, other = parsers.parse_cgcontrdp(feed)
    assert v4 == parsers.ContextParams(
        cid=2, bearer_id=6, apn="apn2", address=V4("10.117.32.103"),
        subnet_mask=V4("255.255.255.0"), prefix_len=24, gateway=V4("10.117.32.1"),
        dns=(V4("198.51.100.53"), V4("198.51.100.54")), pcscf=(), im_cn_signalling=0, lipa=0,
        ipv4_mtu=1430,
    )
    assert v4.version == 4
    assert (v6.address, v6.prefix_len, v6.gateway, v6.dns, v6.ipv4_mtu, v6.version) == (
        V6("2001:db8::5"), 64, None, (V6("2001:db8::53"),), None, 6)
    assert (other.cid, other.address, other.prefix_len, other.dns, other.ipv4_mtu) == (
        1, V4("100.64.1.2"), 32, (V4("192.0.2.53"),), 1500)


def test_merge_context_params_joins_families() -> None:
    merged = parsers.merge_context_params(parsers.parse_cgcontrdp(DUAL_STACK_CGCONTRDP))
    assert set(merged) == {1, 2}
    assert merged[2] == parsers.MergedContextParams(
        cid=2, bearer_id=6, apn="apn2", ipv4=V4("10.117.32.103"), ipv4_prefix_len=24,
        ipv6=V6("2001:db8::5"), ipv6_prefix_len=64, gateway_v4=V4("10.117.32.1"),
        gateway_v6=None, dns_v4=(V4("198.51.100.53"), V4("198.51.100.54")),
        dns_v6=(V6("2001:db8::53"),), ipv4_mtu=1430,
    )
    assert merged[1].ipv6 is None and merged[1].ipv4_mtu == 1500


def test_merge_prefers_the_ipv4_lines_mtu_and_dedups_dns() -> None:
    lines = [
        '+CGCONTRDP: 3,7,"a","32.1.13.184.0.0.0.0.0.0.0.0.0.0.0.5","","198.51.100.53","",,,,,1280',
        '+CGCONTRDP: 3,7,"a","10.0.0.2","","198.51.100.53","198.51.100.53",,,,,1400',
    ]
    merged = parsers.merge_context_params(parsers.parse_cgcontrdp(lines))[3]
    assert merged.ipv4_mtu == 1400
    assert merged.dns_v4 == (V4("198.51.100.53"),)
    assert (merged.ipv4, merged.ipv4_prefix_len) == (V4("10.0.0.2"), None)
    only_v6 = parsers.merge_context_params(parsers.parse_cgcontrdp(lines[:1]))[3]
    assert only_v6.ipv4_mtu == 1280


CGCONTRDP_LINES = [
    # unquoted fields, as some firmware writes them; /27
    (('+CGCONTRDP: 1,5,"apn.example",10.40.54.48.255.255.255.224,10.40.54.33,192.0.2.1,'
     "192.0.2.2,,,"), (V4("10.40.54.48"), 27, V4("10.40.54.33"), (V4("192.0.2.1"), V4("192.0.2.2")),
                      None)),
    # address without a mask
    ('+CGCONTRDP: 1,5,"internet","10.0.0.2",,"8.8.8.8"', (V4("10.0.0.2"), None, None,
                                                        (V4("8.8.8.8"),), None)),
    # +CGPIAF colon notation, mask after a space
    ('+CGCONTRDP: 1,5,"ims","2001:db8::5 ffff:ffff:ffff:ffff::","","2001:db8::53"',
     (V6("2001:db8::5"), 64, None, (V6("2001:db8::53"),), None)),
    # +CGPIAF slash notation
    ('+CGCONTRDP: 1,5,"ims","2001:db8::5/56"', (V6("2001:db8::5"), 56, None, (), None)),
    ('+CGCONTRDP: 1,5,"v4","10.0.0.2/24"', (V4("10.0.0.2"), 24, None, (), None)),
    # nothing but the APN
    ('+CGCONTRDP: 1,5,"internet"', (None, None, None, (), None)),
    # MTU 0 means "not given"
    ('+CGCONTRDP: 1,5,"internet","10.0.0.2.255.0.0.0","","","","","",0,0,0',
     (V4("10.0.0.2"), 8, None, (), None)),
    # a non-contiguous mask has no prefix length
    ('+CGCONTRDP: 1,5,"x","10.0.0.2.255.0.255.0"', (V4("10.0.0.2"), None, None, (), None)),
    # all zeros: no address, no DNS
    ('+CGCONTRDP: 1,5,"x","0.0.0.0.0.0.0.0","0.0.0.0","0.0.0.0","0.0.0.0"',
     (None, None, None, (), None)),
    # an IPv4 and an IPv6 DNS in one field
    ('+CGCONTRDP: 1,5,"x","10.0.0.2.255.255.255.255",,"192.0.2.53" "2001:db8::53",,,,,,1450',
     (V4("10.0.0.2"), 32, None, (V4("192.0.2.53"), V6("2001:db8::53")), 1450)),
]


@pytest.mark.parametrize(("line", "expected"), CGCONTRDP_LINES)
def test_parse_cgcontrdp_line(line: str, expected: tuple[Any, ...]) -> None:
    (params,) = parsers.parse_cgcontrdp(["AT+CGCONTRDP=1", line, "", "OK"])
    assert (params.address, params.prefix_len, params.gateway, params.dns,
            params.ipv4_mtu) == expected
    assert params.cid == 1 and params.bearer_id == 5


@pytest.mark.parametrize("line", ['+CGCONTRDP: 1,5', '+CGCONTRDP: a,5,"x"',
                                  '+CGCONTRDP: 1,5,"x","10.0.0.1",,,,,,,,big'])
def test_parse_cgcontrdp_refuses_broken_lines(line: str) -> None:
    with pytest.raises(ModemError):
        parsers.parse_cgcontrdp(line)


# -- +CGACT, +COPS, +UMNOPROF, +UEMBPF, +UDCONF -----------------------------------------------


COPS = [
    ('+COPS: 0,0,"I TIM",7', Operator(0, 0, "I TIM", 7), None),  # app note §2.3
    ('+COPS: 0,0,"I TIM",2', Operator(0, 0, "I TIM", 2), None),  # app note §2.3, UTRAN
    ("+COPS: 2", Operator(2), None),  # app note §2.3: then AT+COPS=0
    ('+COPS: 0,2,"310260",7', Operator(0, 2, "310260", 7), "310260"),
    ('+COPS: 1,2,"22201",7', Operator(1, 2, "22201", 7), "22201"),
    ("+COPS: 0", Operator(0), None),
    ('+COPS:0 , 2 , "310260" , 7', Operator(0, 2, "310260", 7), "310260"),
    ('+COPS: 0,0,"310260",7', Operator(0, 0, "310260", 7), None),
]


@pytest.mark.parametrize(("line", "expected", "plmn"), COPS)
def test_parse_cops(line: str, expected: Operator, plmn: str | None) -> None:
    for feed in (line, [line, "OK"], ["AT+COPS?", "", line]):
        operator = parsers.parse_cops(feed)
        assert operator == expected
        assert operator.plmn == plmn


@pytest.mark.parametrize("feed", [["OK"], '+COPS: x', "+COPS: 0,z"])
def test_parse_cops_refuses(feed: Any) -> None:
    with pytest.raises(ModemError) as info:
        parsers.parse_cops(feed)
    assert str(info.value).count(".") <= 2  # one sentence, however many dots the line holds


@pytest.mark.parametrize(("feed", "expected"), [
    ("+UMNOPROF: 100", 100),  # app note §2.3.1
    (["AT+UMNOPROF?", "+UMNOPROF: 3", "OK"], 3),
    ("+UMNOPROF:90", 90),
])
def test_parse_umnoprof(feed: Any, expected: int) -> None:
    assert parsers.parse_umnoprof(feed) == expected


@pytest.mark.parametrize(("feed", "expected"), [
    ('+UEMBPF: 1,"6000-6200"', PortRange(6000, 6200)),  # app note §4.3.1
    (["AT+UEMBPF?", '+UEMBPF: 1,"6000-6050"', "OK"], PortRange(6000, 6050)),
    ('+UEMBPF: 1, "6000 - 6200"', PortRange(6000, 6200)),
    ("+UEMBPF: 0", None),  # app note §4.3.2
    ('+UEMBPF: 0,""', None),
])
def test_parse_uembpf(feed: Any, expected: PortRange | None) -> None:
    assert parsers.parse_uembpf(feed) == expected


@pytest.mark.parametrize("line", ["+UEMBPF: 1", '+UEMBPF: 1,""', '+UEMBPF: 1,"a-b"',
                                  '+UEMBPF: 1,"7000-6000"'])
def test_parse_uembpf_refuses(line: str) -> None:
    with pytest.raises(ModemError):
        parsers.parse_uembpf(line)


def test_parse_udconf() -> None:
    assert parsers.parse_udconf("+UDCONF: 19,2,0") == (19, 2, 0)  # app note §2.3.1
    assert parsers.parse_udconf(["+UDCONF: 66,4,1", "OK"]) == (66, 4, 1)  # app note §2.5
    lines = ["+UDCONF: 66,1,0", "+UDCONF: 66,4,1", "OK"]
    assert parsers.parse_udconf(lines) == (66, 1, 0)
    assert parsers.parse_udconf(lines, op=66) == (66, 1, 0)
    assert parsers.parse_udconf(["+UDCONF: 19,3,0", "+UDCONF: 66,4,0"], op=66) == (66, 4, 0)
    with pytest.raises(ModemError):
        parsers.parse_udconf(["OK"], op=19)


# -- +CEREG -----------------------------------------------------------------------------------

CEREG = [
    ('+CEREG: 2,1,"1A2B","01A2B3C4",7', Registration(1, "1A2B", "01A2B3C4", 7, n=2), True, False),
    ('+CEREG: 5,"1A2B","01A2B3C4",7', Registration(5, "1A2B", "01A2B3C4", 7), True, True),
    ("+CEREG: 1", Registration(1), True, False),
    ("+CEREG: 2", Registration(2), False, False),
    ("+CEREG: 0,1", Registration(1, n=0), True, False),
    ("+CEREG: 2,5", Registration(5, n=2), True, True),
    ("+CEREG: 2,3", Registration(3, n=2), False, False),
    ('+CEREG: 4,"1A2B","01A2B3C4",7', Registration(4, "1A2B", "01A2B3C4", 7), False, False),
    ("+CEREG: 1,,,7", Registration(1, act=7), True, False),
    ('+CEREG: 3,"1A2B","01A2B3C4",7,0,15', Registration(3, "1A2B", "01A2B3C4", 7, None, 0, 15),
     False, False),
    ('+CEREG: 3,3,"1A2B","01A2B3C4",7,0,15', Registration(3, "1A2B", "01A2B3C4", 7, 3, 0, 15),
     False, False),
    ('+CEREG:  2 , 1 , "1A2B" , "01A2B3C4" , 7', Registration(1, "1A2B", "01A2B3C4", 7, n=2), True,
     False),
]


@pytest.mark.parametrize(("line", "expected", "registered", "roaming"), CEREG)
def test_parse_cereg(line: str, expected: Registration, registered: bool, roaming: bool) -> None:
    registration = parsers.parse_cereg(line)
    assert registration == expected
    assert registration.registered is registered
    assert registration.roaming is roaming


@pytest.mark.parametrize(("stat", "text"), [
    (0, "not registered, not searching"), (1, "registered, home network"),
    (2, "not registered, searching"), (3, "registration denied"),
    (5, "registered, roaming"), (42, "unknown registration state 42"),
])
def test_registration_stat_text(stat: int, text: str) -> None:
    assert parsers.registration_stat_text(stat) == text


@pytest.mark.parametrize("line", ["+CEREG: x", "+CEREG: ", "+CREG: 1"])
def test_parse_cereg_refuses(line: str) -> None:
    with pytest.raises(ModemError):
        parsers.parse_cereg(line)


# -- +CGEV ------------------------------------------------------------------------------------

CGEV = [
    ("+CGEV: ME PDN ACT 1", CgevEvent("ME", "PDN ACT", cid=1, params=("1",)), True, False),
    ("+CGEV: ME PDN ACT 1,0", CgevEvent("ME", "PDN ACT", cid=1, params=("1", "0")), True, False),
    ("+CGEV: NW PDN ACT 2", CgevEvent("NW", "PDN ACT", cid=2, params=("2",)), True, False),
    ("+CGEV: ME PDN DEACT 2", CgevEvent("ME", "PDN DEACT", cid=2, params=("2",)), False, True),
    ("+CGEV: NW PDN DEACT 1", CgevEvent("NW", "PDN DEACT", cid=1, params=("1",)), False, True),
    ("+CGEV: NW DEACT 1,2,0", CgevEvent("NW", "DEACT", cid=2, primary_cid=1,
                                        params=("1", "2", "0")), False, True),
    ("+CGEV: ME ACT 1,4,1", CgevEvent("ME", "ACT", cid=4, primary_cid=1, params=("1", "4", "1")),
     True, False),
    ('+CGEV: NW DEACT "IP","10.1.2.3",1', CgevEvent("NW", "DEACT", cid=1, pdp_type="IP",
                                                    pdp_address="10.1.2.3",
                                                    params=("IP", "10.1.2.3", "1")), False, True),
    ('+CGEV: REJECT "IP","10.1.2.3"', CgevEvent(None, "REJECT", pdp_type="IP",
                                                pdp_address="10.1.2.3",
                                                params=("IP", "10.1.2.3")), False, False),
    ("+CGEV: NW MODIFY 1,2,0", CgevEvent("NW", "MODIFY", cid=1, params=("1", "2", "0")), False,
     False),
    ("+CGEV: NW DETACH", CgevEvent("NW", "DETACH"), False, True),
    ("+CGEV: ME DETACH", CgevEvent("ME", "DETACH"), False, True),
    ("+CGEV: ME CLASS B", CgevEvent("ME", "CLASS", params=("B",)), False, False),
    ("+CGEV:  me  pdn  act 3", CgevEvent("ME", "PDN ACT", cid=3, params=("3",)), True, False),
]


@pytest.mark.parametrize(("line", "expected", "activation", "deactivation"), CGEV)
def test_parse_cgev(line: str, expected: CgevEvent, activation: bool, deactivation: bool) -> None:
    event = parsers.parse_cgev(line)
    assert event == expected
    assert event.activation is activation
    assert event.deactivation is deactivation


@pytest.mark.parametrize("line", ["+CGEV: NW SOMETHING 1", "+CGEV: ME PDN ACT x", "+CGEV:"])
def test_parse_cgev_refuses(line: str) -> None:
    with pytest.raises(ModemError):
        parsers.parse_cgev(line)


# -- +UUPING, +UUPINGER, +UDNSRN, +CME ERROR --------------------------------------------------

# -- rules ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("command", "seconds"), [
    ("AT+CFUN=0", 180.0), ("AT+CFUN=1", 180.0), ("AT+CFUN=16", 180.0), ("at+cfun=4", 180.0),
    ("AT+COPS=0", 180.0), ("AT+COPS=3,2", 180.0), ("AT+CGATT=1", 180.0),
    ("AT+CGACT=1,2", 150.0), ("AT+CGACT=0,2", 150.0),
    ("ATD*99***2#", 180.0), ("ATH", 40.0),
    # read and test forms, and commands that answer at once: the configured timeout
    ("AT+CFUN?", None), ("AT+COPS?", None), ("AT+COPS=?", None), ("AT+CGACT?", None),
    ("AT", None), ("AT&D2", None), ("AT+CMEE=2", None), ('AT+CGDCONT=2,"IP","apn"', None),
    ("AT+CGDCONT?", None), ("AT+UMNOPROF=100", None), ("ATE0", None),
])
def test_command_timeout_is_the_at_manuals_bound(command: str, seconds: float | None) -> None:
    assert rules.command_timeout(command) == seconds


ALL_SCRIPTS = [scripts.MODULE_INIT, scripts.NETWORK_REPORTING, scripts.READ_OPERATOR,
               scripts.DIAL_PORT_SETUP]


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda s: s.name)
def test_scripts_are_data_with_the_manuals_timeouts(script: Any) -> None:
    assert script.steps and isinstance(script.steps, tuple)
    for step in script.steps:
        assert step.command.startswith("AT")
        assert step.timeout == rules.command_timeout(step.command)
    with pytest.raises(AttributeError):
        script.steps[0].command = "AT+CFUN=0"


def test_every_port_that_can_carry_a_call_clears_it_on_dtr_drop() -> None:
    # AT&D2 on the control port at bring-up and on each dial port before ATD (per port).
    init = [step.command for step in scripts.MODULE_INIT.steps]
    dial = [step.command for step in scripts.DIAL_PORT_SETUP.steps]
    assert "AT&D2" in init and "AT+CMEE=2" in init
    assert dial[0] == "AT" and "AT&D2" in dial and "AT+CVHU=0" in dial
    reporting = [step.command for step in scripts.NETWORK_REPORTING.steps]
    assert reporting == ["AT+CVHU=0", "AT+CEREG=2", "AT+CGEREP=2"]
    assert scripts.READ_OPERATOR.steps[-1].expect == r"^\+COPS:"


def test_constants_carry_the_app_note_numbers() -> None:
    assert (commands.MIN_CID, commands.MAX_CID) == (1, 8)
    assert rules.MAX_PRIMARY_CONTEXTS == 5
    assert rules.MAX_ACTIVE_CONTEXTS == 8
    assert rules.MAX_PPP_INSTANCES == 3
    assert (rules.MNO_PROFILE_VERIZON, rules.VERIZON_DATA_CID) == (3, 3)
    assert rules.LTE_DEFAULT_BEARER_CID == 1
    assert rules.ESCAPE_GUARD_S == 2.0
    assert (ports.UEMBPF_MIN_FIRST_PORT, ports.UEMBPF_MIN_PORTS) == (1025, 50)
    assert (rules.URC_CEREG, rules.URC_CGEV) == ("+CEREG", "+CGEV")


@pytest.mark.parametrize(("act", "expected"), [
    (0, True), (2, True), (3, True), (6, True),  # 2G/3G: app note §2.3
    (7, False), (9, False),  # LTE
])
def test_needs_cgact_before_use(act: int, expected: bool) -> None:
    assert rules.needs_cgact_before_use(act) is expected


GOOD_PLANS: list[tuple[list[PdpPlan], int | None]] = [
    ([PdpPlan(1, "internet")], None),
    ([PdpPlan(1, "internet", "IP")], 100),
    ([PdpPlan(1, "APN1", "IP"), PdpPlan(2, "APN2")], 100),  # app note §4.1.3
    ([PdpPlan(2, "a", auth=AuthType.PAP, user="u", password="p", mtu=1400), PdpPlan(3, "b"),
      PdpPlan(4, "c", "IP", mtu=576)], None),
    ([PdpPlan(3, "vzwinternet")], 3),
    ([PdpPlan(1, "ims", ppp=False), PdpPlan(3, "vzwinternet")], 3),
    ([PdpPlan(1, "", ppp=False, auth=AuthType.CHAP, user="u", password="p"), PdpPlan(2, "x")],
     None),
    ([PdpPlan(c, f"apn{c}", ppp=c <= 3) for c in (1, 2, 3, 4, 5)], None),
    ([PdpPlan(8, "a.b.c", auth=AuthType.AUTO, user="u")], None),
    ([PdpPlan(4, "nidd", "NONIP", ppp=False)], None),
    ([PdpPlan(1, "internet", auth="none"), PdpPlan(2, "b", auth="pap", user="u", password="p")],
     None),
]


@pytest.mark.parametrize(("plans", "profile"), GOOD_PLANS)
def test_check_pdp_plan_accepts(plans: list[PdpPlan], profile: int | None) -> None:
    # It raises ConfigError on refusal and returns nothing otherwise.
    assert rules.check_pdp_plan(plans, mno_profile=profile) is None  # type: ignore[func-returns-value]


BAD_PLANS: list[tuple[list[PdpPlan], int | None, str]] = [
    ([], None, "no PDP context is configured"),
    ([PdpPlan(0, "a")], None, ("cid 0 is out of range; LARA-R6 has PDP contexts 1 to 8 "
     "(app note §2.1)")),
    ([PdpPlan(9, "a")], None, "use a cid from 1 to 8"),
    ([PdpPlan(2, "a"), PdpPlan(2, "b")], None, "cid 2 is configured 2 times"),
    ([PdpPlan(c, f"apn{c}", ppp=False) for c in range(1, 7)], None,
     "at most 5 primary contexts (app note §2.1)"),
    ([PdpPlan(c, f"apn{c}") for c in range(2, 6)], None,
     ("4 PPP sessions are configured, but LARA-R6 runs at most 3 PPP instances at once "
     "(app note §4.1.3): remove 1")),
    ([PdpPlan(2, "same"), PdpPlan(3, "SAME")], None,
     ('cids 2 and 3 both use APN "SAME", but each PDP context needs a different APN '
     "(app note §4.1.3): give cid 3 another APN")),
    ([PdpPlan(1, "", ppp=False), PdpPlan(2, "")], None, "both use the empty APN"),
    ([PdpPlan(1, "internet", auth=AuthType.PAP, user="u", password="p")], None,
     ("cid 1 is the LTE default EPS bearer, set up at attach, so the host cannot authenticate "
     "it through PPP (app note §4)")),
    ([PdpPlan(1, "internet", mtu=1400)], None, "remove mtu from cid 1"),
    ([PdpPlan(1, "vzwinternet")], 3,
     ("cid 1 is reserved for IMS under the Verizon MNO profile (AT+UMNOPROF=3), which maps data "
     "to cid 3 (app note §2.3.1): use cid 3 for this session")),
    ([PdpPlan(1, "vzwinternet", auth=AuthType.PAP, user="u")], 3, "use cid 3"),
    ([PdpPlan(2, "a", "PPP")], None, 'PDP type "PPP" of cid 2 is not one LARA-R6 knows'),
    ([PdpPlan(2, "a", "NONIP")], None, "which PPP cannot carry"),
    ([PdpPlan(2, 'a"b')], None, 'APN "a"b" of cid 2 contains a double quote'),
    ([PdpPlan(2, "a", auth=AuthType.PAP, user="u", password="x\ny")], None,
     "password of cid 2 contains a line feed"),
    ([PdpPlan(2, "a", auth=7)], None, "authentication type 7 of cid 2 is unknown"),
    ([PdpPlan(2, "a", user="u")], None, "has a user name or password but no authentication"),
    ([PdpPlan(2, "a", auth="none", password="p")], None, "but no authentication type"),
    ([PdpPlan(2, "a", auth="kerberos")], None, "authentication type 'kerberos' of cid 2"),
    ([PdpPlan(1, "a", auth="chap", user="u")], None, "cid 1 is the LTE default EPS bearer"),
    ([PdpPlan(2, "a", "IP", mtu=500)], None, "mtu 500 of cid 2 is outside 576-1500 (RFC 791)"),
    ([PdpPlan(2, "a", "IPV4V6", mtu=1000)], None, "outside 1280-1500"),
    ([PdpPlan(2, "a", mtu=9000)], None, "outside 1280-1500"),
]


@pytest.mark.parametrize(("plans", "profile", "message"), BAD_PLANS)
def test_check_pdp_plan_refuses(plans: list[PdpPlan], profile: int | None, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        rules.check_pdp_plan(plans, mno_profile=profile)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_pdp_plan_hides_its_password() -> None:
    plan = PdpPlan(2, "apn", auth=AuthType.CHAP, user="me", password="hunter2")
    assert "hunter2" not in repr(plan)
    assert plan.secrets == ("hunter2",)
    assert PdpPlan(2, "apn").secrets == ()


# -- ports ------------------------------------------------------------------------------------

RANGES = [
    ("6000-6200", PortRange(6000, 6200), 201),
    (" 6000 - 6200 ", PortRange(6000, 6200), 201),
    ("8080", PortRange(8080, 8080), 1),
    ("1-65535", PortRange(1, 65535), 65535),
]


@pytest.mark.parametrize(("text", "expected", "size"), RANGES)
def test_port_range_parse(text: str, expected: PortRange, size: int) -> None:
    port_range = PortRange.parse(text)
    assert port_range == expected
    assert len(port_range) == port_range.size == size
    assert PortRange.parse(str(port_range)) == port_range


@pytest.mark.parametrize(("text", "message"), [
    ("6000-", "is not of the form FIRST-LAST"),
    ("a-b", "is not of the form FIRST-LAST"),
    ("-5", "is not of the form"),
    ("0-10", "port 0 of range 0-10 is outside 1-65535"),
    ("6200-6000", 'is reversed: write it as "6000-6200"'),
    ("6000-70000", "outside 1-65535"),
    ("６０００-6200", "is not of the form"),
])
def test_port_range_parse_refuses(text: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        PortRange.parse(text)
    assert message in str(info.value)


def test_port_range_operations() -> None:
    a = PortRange(6000, 6200)
    assert 6000 in a and 6200 in a and 5999 not in a and "6000" not in a
    assert a.overlaps(PortRange(6200, 7000)) and not a.overlaps(PortRange(6201, 7000))
    assert a.intersection(PortRange(6100, 7000)) == PortRange(6100, 6200)
    assert a.intersection(PortRange(1, 100)) is None
    assert list(PortRange(5, 7).ports()) == [5, 6, 7]
    assert PortRange(80, 80).sysctl_text() == "80" and a.sysctl_text() == "6000-6200"
    with pytest.raises(ValidationError):
        PortRange(True, 5)


def test_check_uembpf_range() -> None:
    assert ports.check_uembpf_range(PortRange.parse("6000-6200"))  # app note §4.3.1 == PortRange(6000, 6200)
    assert ports.check_uembpf_range(PortRange(1025, 1074)) == PortRange(1025, 1074)
    with pytest.raises(ValidationError, match="at or below port 1024"):
        ports.check_uembpf_range(PortRange(1024, 1200))
    with pytest.raises(ValidationError, match=r'widen it \(e.g. "65486-65535"\)'):
        ports.check_uembpf_range(PortRange(65500, 65535))


@pytest.mark.parametrize(("ranges", "merged"), [
    ([], ()),
    ([PortRange(5, 9), PortRange(1, 3)], (PortRange(1, 3), PortRange(5, 9))),
    ([PortRange(1, 3), PortRange(4, 9)], (PortRange(1, 9),)),
    ([PortRange(1, 10), PortRange(2, 3)], (PortRange(1, 10),)),
    ([PortRange(1, 5), PortRange(3, 8), PortRange(8, 8)], (PortRange(1, 8),)),
])
def test_merge_ranges(ranges: list[PortRange], merged: tuple[PortRange, ...]) -> None:
    assert ports.merge_ranges(ranges) == merged


@pytest.mark.parametrize(("ranges", "removed", "left"), [
    ([PortRange(1, 10)], [PortRange(3, 4)], (PortRange(1, 2), PortRange(5, 10))),
    ([PortRange(1, 10)], [PortRange(1, 10)], ()),
    ([PortRange(1, 10)], [PortRange(0 + 20, 30)], (PortRange(1, 10),)),
    ([PortRange(1, 10), PortRange(20, 30)], [PortRange(5, 25)], (PortRange(1, 4), PortRange(26, 30))),
    ([PortRange(1, 10)], [PortRange(1, 1), PortRange(10, 10)], (PortRange(2, 9),)),
])
def test_subtract_ranges(ranges: list[PortRange], removed: list[PortRange],
                         left: tuple[PortRange, ...]) -> None:
    assert ports.subtract_ranges(ranges, removed) == left


def test_compact_ports() -> None:
    assert ports.compact_ports([5, 6, 7, 9, PortRange(10, 12), 1]) == (
        PortRange(1, 1), PortRange(5, 7), PortRange(9, 12))
    assert ports.format_ranges(ports.compact_ports([5, 6, 7, 9])) == "5-7,9"


RESERVED = [
    ("", ()),
    ("\n", ()),
    ("1000-1005,6000-6200\n", (PortRange(1000, 1005), PortRange(6000, 6200))),
    ("8080", (PortRange(8080, 8080),)),
    ("6000-6100,6050-6200,8080,8081", (PortRange(6000, 6200), PortRange(8080, 8081))),
    (" 9000 , 1000-1005 ", (PortRange(1000, 1005), PortRange(9000, 9000))),
]


@pytest.mark.parametrize(("text", "expected"), RESERVED)
def test_parse_reserved_ports(text: str, expected: tuple[PortRange, ...]) -> None:
    assert ports.parse_reserved_ports(text) == expected
    assert ports.parse_reserved_ports(ports.format_reserved_ports(expected)) == expected


@pytest.mark.parametrize(("current", "embpf", "expected"), [
    ("", PortRange(6000, 6200), "6000-6200"),
    ("\n", PortRange(6000, 6200), "6000-6200"),
    ("1000-1005", PortRange(6000, 6200), "1000-1005,6000-6200"),
    ("1000-1005,6000-6200\n", PortRange(6000, 6200), "1000-1005,6000-6200"),
    ("6100-6300", PortRange(6000, 6200), "6000-6300"),
    ("6201", PortRange(6000, 6200), "6000-6201"),
    ("8080,6050", PortRange(6000, 6200), "6000-6200,8080"),
    ("7000-7100", PortRange(6000, 6200), "6000-6200,7000-7100"),
])
def test_reserved_ports_with(current: str, embpf: PortRange, expected: str) -> None:
    assert ports.reserved_ports_with(current, embpf) == expected
    assert ports.reserved_ports_with(expected, embpf) == expected  # idempotent


def test_reserved_ports_refuses_garbage() -> None:
    with pytest.raises(ValidationError, match="ip_local_reserved_ports entry"):
        ports.reserved_ports_with("1000-abc", PortRange(6000, 6200))


EMBPF = PortRange(6000, 6200)
DNSMASQ = BoundSocket("udp", 6150, 812, "dnsmasq", "0.0.0.0")
HOST_PORT_CASES: list[tuple[PortRange, list[int | PortRange], list[BoundSocket],
                            tuple[PortRange, ...], tuple[BoundSocket, ...]]] = [
    # Linux default ephemeral range does not reach 6000-6200
    (PortRange(32768, 60999), [], [], (), ()),
    # a wide ephemeral range covers it all
    (PortRange(1024, 65000), [], [], (EMBPF,), ()),
    # ... unless reserved
    (PortRange(1024, 65000), [EMBPF], [], (), ()),
    (PortRange(1024, 65000), [PortRange(1000, 7000)], [], (), ()),
    # partly reserved, single ports too
    (PortRange(1024, 65000), [PortRange(6100, 6120), 6200], [],
     (PortRange(6000, 6099), PortRange(6121, 6199)), ()),
    # ephemeral range overlaps one end
    (PortRange(6150, 60999), [], [], (PortRange(6150, 6200),), ()),
    # bound sockets: inside counts, outside does not
    (PortRange(32768, 60999), [], [DNSMASQ, BoundSocket("tcp", 22, 1, "sshd")], (), (DNSMASQ,)),
]


@pytest.mark.parametrize(("ephemeral", "reserved", "bound", "pickable", "inside"), HOST_PORT_CASES)
def test_check_host_ports(ephemeral: PortRange, reserved: list[int | PortRange],
                          bound: list[BoundSocket], pickable: tuple[PortRange, ...],
                          inside: tuple[BoundSocket, ...]) -> None:
    report = ports.check_host_ports(EMBPF, ephemeral, reserved, bound)
    assert report.pickable == pickable
    assert report.bound == inside
    assert report.ok is (not pickable and not inside)
    lines = report.describe()
    assert lines and all("\n" not in line for line in lines)
    assert len(lines) == (1 if report.ok else bool(pickable) + len(inside))


def test_check_host_ports_describe_names_ports_and_fix() -> None:
    report = ports.check_host_ports(
        EMBPF, PortRange(1024, 65000), ports.parse_reserved_ports("6100-6120"),
        [DNSMASQ, BoundSocket("tcp", 6001, None, None), BoundSocket("tcp", 6002, 9, None)],
    )
    first, *sockets = report.describe()
    assert "ports 6000-6099,6121-6200 of the module's range 6000-6200" in first
    assert "ip_local_port_range 1024-65000" in first
    assert "app note §4.3" in first
    assert first.endswith("add 6000-6200 to net.ipv4.ip_local_reserved_ports")
    assert sockets[0].startswith("tcp port 6001 is bound by an unknown process")
    assert sockets[1].startswith("tcp port 6002 is bound by pid 9 inside")
    assert sockets[2].startswith("udp port 6150 on 0.0.0.0 is bound by pid 812 (dnsmasq)")
    assert "choose another +UEMBPF range" in sockets[2]


def test_check_host_ports_ok_sentence() -> None:
    (line,) = ports.check_host_ports(EMBPF, PortRange(32768, 60999), [], []).describe()
    assert line.startswith("no host socket can use the module's port range 6000-6200")


# -- XLAT -------------------------------------------------------------------------------------


def test_xlat_switch_commands() -> None:  # app note §2.5
    assert xlat.xlat_switch_commands(True) == ["AT+CFUN=0", "AT+UDCONF=66,4,1", "AT+CFUN=16"]
    assert xlat.xlat_switch_commands(False) == ["AT+CFUN=0", "AT+UDCONF=66,4,0", "AT+CFUN=16"]


def test_t_mobile_plmns() -> None:
    assert "310260" in xlat.T_MOBILE_US_PLMNS
    assert xlat.is_t_mobile_us(" 310260 ")
    assert not xlat.is_t_mobile_us("310410")  # AT&T
    assert all(p.isdigit() and len(p) == 6 and p.startswith("310") for p in xlat.T_MOBILE_US_PLMNS)


NOW = 1_700_000_000.0
XLAT_CASES: list[tuple[str, str, bool, str, str]] = [
    # (plmn, granted, xlat on, action, words in reason)
    ("310260", "IPV6", False, "enable", "T-Mobile US (310260) granted IPv6 only"),
    ("310260", "ipv6", False, "enable", "app note §2.5"),
    ("310260", "IPV4V6", False, "none", "needs no XLAT change"),
    ("310260", "IP", False, "none", "needs no XLAT change"),
    ("310260", "IPV6", True, "none", "already on"),
    ("310260", "IPV4V6", True, "none", "needs no XLAT change"),
    ("22201", "IP", True, "disable", "roaming network 22201 granted IPv4 (IP) while XLAT is on"),
    ("23410", "IPV4V6", True, "disable", "only on T-Mobile US"),
    ("23410", "IPV6", True, "none", "no IPv4 yet"),
    ("23410", "IPV6", False, "none", "is not T-Mobile US and XLAT is off"),
    ("23410", "IP", False, "none", "is not T-Mobile US"),
    ("T-Mobile", "IPV6", False, "none", "is not a numeric PLMN"),
    ("", "IPV6", False, "none", "AT+COPS=3,2"),
]


@pytest.mark.parametrize(("plmn", "granted", "xlat_on", "action", "words"), XLAT_CASES)
def test_decide_xlat(plmn: str, granted: str, xlat_on: bool, action: str, words: str) -> None:
    decision = xlat.decide_xlat(plmn=plmn, granted_pdp_type=granted, xlat_enabled=xlat_on,
                              history=XlatHistory(), now=NOW)
    assert decision.action == action
    assert words in decision.reason
    assert decision.commands == ([] if action == "none"
                                 else xlat.xlat_switch_commands(action == "enable"))


def test_decide_xlat_custom_home_plmns() -> None:
    decision = xlat.decide_xlat(plmn="99999", granted_pdp_type="IPV6", xlat_enabled=False,
                              history=XlatHistory(), now=NOW, home_plmns=frozenset({"99999"}))
    assert decision.action == "enable"


def enable_now(history: XlatHistory, now: float) -> xlat.XlatDecision:
    return xlat.decide_xlat(plmn="310260", granted_pdp_type="IPV6", xlat_enabled=False,
                          history=history, now=now)


def disable_now(history: XlatHistory, now: float) -> xlat.XlatDecision:
    return xlat.decide_xlat(plmn="22201", granted_pdp_type="IP", xlat_enabled=True,
                          history=history, now=now)


def test_xlat_refuses_to_undo_a_recent_switch() -> None:
    history = XlatHistory().record("enable", NOW)
    decision = disable_now(history, NOW + 120)
    assert decision.action == "none"
    assert "switched to enable only 120 s ago" in decision.reason
    assert "loop" in decision.reason
    assert disable_now(history, NOW + 599).action == "none"
    assert disable_now(history, NOW + 600).action == "disable"
    # the same direction again is not an undo (e.g. the first switch did not stick)
    assert enable_now(history, NOW + 60).action == "enable"


def test_xlat_at_most_two_switches_an_hour() -> None:
    history = XlatHistory().record("enable", NOW).record("disable", NOW + 700)
    assert history.count_within(NOW + 1400) == 2
    decision = enable_now(history, NOW + 1400)
    assert decision.action == "none"
    assert "already switched 2 times in the last 60 minutes" in decision.reason
    assert enable_now(history, NOW + 3601).action == "enable"  # the first one left the window


def test_xlat_clock_going_back_counts_as_recent() -> None:
    history = XlatHistory().record("enable", NOW)
    assert disable_now(history, NOW - 30).action == "none"
    assert disable_now(history, NOW - 10 * 3600).action == "disable"  # far past: stale entry


def test_xlat_history_record_prunes_and_json_round_trips() -> None:
    history = XlatHistory().record("enable", NOW).record("disable", NOW + 4000)
    assert history.switch_times == (NOW + 4000,)
    assert (history.last_action, history.last_time) == ("disable", NOW + 4000)
    assert XlatHistory.from_json(history.to_json()) == history
    assert XlatHistory.from_json(XlatHistory().to_json()) == XlatHistory()
    assert XlatHistory().last_time is None
    assert json.loads(history.to_json()) == {"last_action": "disable",
                                             "switch_times": [NOW + 4000]}
    assert XlatHistory.from_json('{"last_action": "enable", "switch_times": [3, 1]}') == (
        XlatHistory("enable", (1.0, 3.0)))


@pytest.mark.parametrize("text", ["", "[]", "{", '{"last_action": "maybe"}',
                                  '{"switch_times": "x"}', '{"switch_times": [true]}',
                                  '{"switch_times": ["1"]}', "null"])
def test_xlat_history_from_bad_json(text: str) -> None:
    with pytest.raises(ConfigError, match="delete the file"):
        XlatHistory.from_json(text)
