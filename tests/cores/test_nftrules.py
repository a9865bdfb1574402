"""The NAT port plan against UEMBPF (app note §4.3) and the nft JSON built and read from it."""

from __future__ import annotations

import random
from typing import Any

import pytest

from larappp import nftrules
from larappp.errors import ValidationError
from larappp.lara_r6.ports import (
    MAX_PORT,
    NAT_MIN_OWN_PORTS,
    PortRange,
    merge_ranges,
    nat_port_plan,
)
from tests.cores.test_no_io import FORBIDDEN, PACKAGE, imported_modules

RANGES = ["6000-6200", "6000-6049", "1025-1100", "1025-2048", "60000-65535", "1025-65535", "30000-40000",
          "1025-65000", "65486-65535"]


def test_the_rule_builder_does_no_io() -> None:
    modules = imported_modules(PACKAGE / "nftrules.py")
    assert not {m.split(".")[0] for m in modules} & FORBIDDEN, modules
    assert all(not m.startswith("larappp.") or m.startswith(("larappp.lara_r6", "larappp.errors"))
               for m in modules), modules


@pytest.mark.parametrize("text", RANGES)
def test_the_plan_covers_every_port_once_and_never_translates_into_the_range(text: str) -> None:
    embpf = PortRange.parse(text)
    plan = nat_port_plan(embpf)
    sources = [rule.sources for rule in plan]
    assert merge_ranges(sources) == (PortRange(1, MAX_PORT),)
    assert sum(s.size for s in sources) == MAX_PORT  # no port in two rules
    for rule in plan:
        assert not rule.translated.overlaps(embpf), rule
        # Linux's convention: a port below 1024 stays below 1024, and one above stays above.
        assert (rule.sources.last < 1024) == (rule.translated.last < 1024), rule
        if not rule.sources.overlaps(embpf) and rule.sources.size >= NAT_MIN_OWN_PORTS:
            assert rule.translated == rule.sources  # free ports map onto themselves: kept when unused


def test_the_app_notes_example_range_splits_in_four() -> None:
    plan = [(str(r.sources), str(r.translated)) for r in nat_port_plan(PortRange(6000, 6200))]
    assert plan == [("1-1023", "1-1023"), ("1024-5999", "1024-5999"), ("6000-6200", "6201-65535"),
                    ("6201-65535", "6201-65535")]


def test_a_narrow_free_range_hands_its_flows_to_the_largest() -> None:
    plan = {str(r.sources): str(r.translated) for r in nat_port_plan(PortRange(1025, 1100))}
    assert plan["1024-1024"] == "1101-65535"  # one port could hold one flow per server
    assert plan["1025-1100"] == "1101-65535"


def test_random_ranges_hold_the_same_properties() -> None:
    rng = random.Random(4)
    for _ in range(500):
        first = rng.randint(1025, MAX_PORT - 49)
        embpf = PortRange(first, rng.randint(first + 49, MAX_PORT))
        for rule in nat_port_plan(embpf):
            assert not rule.translated.overlaps(embpf)


def test_a_range_covering_every_port_is_refused() -> None:
    with pytest.raises(ValidationError, match="covers every port"):
        nat_port_plan(PortRange(1, MAX_PORT))


# -- the session's table ---------------------------------------------------------------------------


def _rules(commands: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [c["add"]["rule"]["expr"] for c in commands if "rule" in c.get("add", {})]


def test_the_table_replaces_a_stale_one_in_the_same_transaction() -> None:
    commands = nftrules.session_table("lara1", nat=True, embpf=PortRange(6000, 6200))
    table = {"table": {"family": "inet", "name": "larappp_lara1"}}
    assert commands[:3] == [{"add": table}, {"delete": table}, {"add": table}]
    chain = commands[3]["add"]["chain"]
    assert (chain["type"], chain["hook"], chain["prio"]) == ("nat", "postrouting", 99)
    assert nftrules.delete_table("lara1") == [{"add": table}, {"delete": table}]


def test_nat_rules_match_the_link_and_ipv4_and_translate_outside_the_range() -> None:
    embpf = PortRange(6000, 6200)
    rules = _rules(nftrules.session_table("lara1", nat=True, embpf=embpf))
    assert len(rules) == 5
    oif = {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "lara1"}}
    ipv4 = {"match": {"op": "==", "left": {"meta": {"key": "nfproto"}}, "right": "ipv4"}}
    assert all(rule[:2] == [oif, ipv4] for rule in rules)
    for rule in rules[:4]:
        assert rule[2]["match"]["right"] == {"set": ["tcp", "udp"]}
        first, last = rule[4]["masquerade"]["port"]["range"]
        assert not PortRange(first, last).overlaps(embpf)
    assert rules[1][3]["match"]["right"] == {"range": [1024, 5999]}
    assert rules[2][3:] == [
        {"match": {"op": "==", "left": {"payload": {"protocol": "th", "field": "sport"}},
                   "right": {"range": [6000, 6200]}}},
        {"masquerade": {"port": {"range": [6201, 65535]}}},
    ]
    assert rules[4] == [oif, ipv4, {"masquerade": None}]  # ICMP and the rest


def test_without_a_module_range_nat_is_one_plain_masquerade() -> None:
    assert len(_rules(nftrules.session_table("lara1", nat=True, embpf=None))) == 1


def test_no_setting_gives_an_empty_table() -> None:
    assert len(nftrules.session_table("lara1", nat=False, embpf=PortRange(6000, 6200))) == 3


# -- reading NAT rules from `nft -j list ruleset` -------------------------------------------------

EMBPF = PortRange(6000, 6200)


def _ruleset(*rules: list[dict[str, Any]], family: str = "ip", table: str = "nat") -> dict[str, Any]:
    items: list[dict[str, Any]] = [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}}]
    for handle, expr in enumerate(rules, start=2):
        items.append({"rule": {"family": family, "table": table, "chain": "POSTROUTING", "handle": handle,
                               "expr": expr}})
    return {"nftables": items}


def _oif(name: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": {"meta": {"key": "oifname"}}, "right": name}}


#: what Debian 12's `iptables-nft -t nat -A POSTROUTING -o lara1 -j MASQUERADE` lists as (nft -j)
IPTABLES_NFT_MASQUERADE = [_oif("lara1"), {"counter": {"packets": 0, "bytes": 0}},
                           {"xt": {"type": "target", "name": "MASQUERADE"}}]


@pytest.mark.parametrize(("expr", "hits"), [
    ([_oif("lara1"), {"masquerade": None}], True),  # keeps a LAN port of the range as it is
    ([{"masquerade": None}], True),  # every interface, so this one too
    ([_oif("lara*"), {"masquerade": None}], True),
    ([_oif({"set": ["eth0", "lara1"]}), {"masquerade": None}], True),
    ([_oif("lara1"), {"masquerade": {"port": {"range": [10000, 20000]}}}], False),
    ([_oif("lara1"), {"masquerade": {"port": {"range": [5000, 7000]}}}], True),
    ([_oif("lara1"), {"snat": {"addr": "100.64.1.2", "port": {"range": [6100, 6300]}}}], True),
    ([_oif("lara1"), {"snat": {"addr": "100.64.1.2"}}], True),
    ([_oif("lara1"), {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "icmp"}},
      {"masquerade": None}], False),  # no ports at all
    ([_oif("lara1"), {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "sport"}},
                                "right": {"range": [1, 1023]}}}, {"masquerade": None}], False),
    ([_oif("lara1"), {"masquerade": {"port": "@someset"}}], True),  # unreadable: assumed to hit
    (IPTABLES_NFT_MASQUERADE, True),  # its --to-ports is inside the xt blob
])
def test_a_nat_rule_reaching_the_link_is_judged_by_its_ports(expr: list[dict[str, Any]], hits: bool) -> None:
    found = nftrules.find_nat_rules(_ruleset(expr), "lara1")
    assert len(found) == 1
    assert found[0].hits(EMBPF) is hits, found[0]
    if hits:
        assert "6000-6200" in found[0].describe(EMBPF)


@pytest.mark.parametrize("expr", [
    [_oif("eth0"), {"masquerade": None}],
    [_oif("ppp*"), {"masquerade": None}],
    [_oif("lara1", op="!="), {"masquerade": None}],
    [_oif("lara1"), {"counter": None}, {"accept": None}],  # no NAT at all
])
def test_rules_that_do_not_nat_through_the_link_are_left_out(expr: list[dict[str, Any]]) -> None:
    assert nftrules.find_nat_rules(_ruleset(expr), "lara1") == []


def test_larappps_own_table_is_recognised() -> None:
    commands = nftrules.session_table("lara1", nat=True, embpf=EMBPF)
    listed = _ruleset(*_rules(commands), family="inet", table="larappp_lara1")
    found = nftrules.find_nat_rules(listed, "lara1")
    assert len(found) == 5 and all(rule.larappp for rule in found)
    port_rules = [rule for rule in found if rule.ports is not None]
    assert len(port_rules) == 4 and not any(rule.hits(EMBPF) for rule in port_rules)


def test_an_iptables_rule_says_so() -> None:
    rule = nftrules.find_nat_rules(_ruleset(IPTABLES_NFT_MASQUERADE), "lara1")[0]
    assert rule.iptables and not rule.larappp
    assert rule.describe(EMBPF).startswith("iptables MASQUERADE in ip nat chain POSTROUTING (handle 2)")



def test_nat_is_a_session_setting() -> None:
    from larappp.config import parse_config
    from larappp.errors import ConfigError

    base = '[modem]\nport = "sim"\n[[session]]\ncid = 1\napn = "internet"\n'
    assert parse_config(base + "nat = true\n").sessions[0].nat is True
    assert parse_config(base).sessions[0].nat is False
    with pytest.raises(ConfigError, match=r"session\[0\]\.nat must be true or false"):
        parse_config(base + 'nat = "yes"\n')


# -- the IPv6 inbound firewall (app note §4.1.2, RFC 4890) -----------------------------------------


def _chains(commands: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["add"]["chain"]["name"]: c["add"]["chain"] for c in commands if "chain" in c.get("add", {})}


def _chain_rules(commands: list[dict[str, Any]], chain: str) -> list[list[dict[str, Any]]]:
    return [c["add"]["rule"]["expr"] for c in commands
            if "rule" in c.get("add", {}) and c["add"]["rule"]["chain"] == chain]


def _icmpv6_types(rule: list[dict[str, Any]]) -> set[str]:
    return {t for e in rule if "match" in e and e["match"]["left"] == {"payload": {"protocol": "icmpv6", "field": "type"}}
            for t in e["match"]["right"]["set"]}


def test_the_firewall_hooks_input_and_forward_for_ipv6_from_the_link_only() -> None:
    commands = nftrules.session_table("lara1", nat=False, embpf=None, firewall_ipv6=True)
    chains = _chains(commands)
    assert {(c.get("hook"), c.get("policy")) for n, c in chains.items() if n in ("input", "forward")} == {
        ("input", "accept"), ("forward", "accept")}  # the rest of the host's traffic is not ours to judge
    for hook, target in (("input", "inbound"), ("forward", "inbound_forward")):
        assert _chain_rules(commands, hook) == [[
            {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "lara1"}},
            {"match": {"op": "==", "left": {"meta": {"key": "nfproto"}}, "right": "ipv6"}},
            {"jump": {"target": target}},
        ]]
        rules = _chain_rules(commands, target)
        assert rules[0] == [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}},
                            {"accept": None}]
        assert rules[-1] == [{"counter": None}, {"drop": None}]  # default deny, counted
        # the chain is complete before the base chain that jumps to it (one transaction either way)
        names = [c["add"]["chain"]["name"] for c in commands if "chain" in c.get("add", {})]
        assert names.index(target) < names.index(hook)


def test_the_firewall_lets_through_the_icmpv6_ipv6_needs() -> None:
    commands = nftrules.firewall_rules("lara1")
    inbound = set().union(*(_icmpv6_types(r) for r in _chain_rules(commands, "inbound")))
    forward = set().union(*(_icmpv6_types(r) for r in _chain_rules(commands, "inbound_forward")))
    # RFC 4890 §4.3.1/§4.4.1: errors (PMTUD's Packet Too Big above all) and echo, to and through
    always = {"destination-unreachable", "packet-too-big", "time-exceeded", "parameter-problem", "echo-request",
              "echo-reply"}
    assert always <= inbound and always <= forward
    # Neighbour Discovery (the module's RAs) and MLD: for the host only, never forwarded
    assert {"nd-router-advert", "nd-neighbor-solicit", "nd-neighbor-advert", "mld-listener-query"} <= inbound
    assert not forward & {"nd-router-advert", "nd-neighbor-solicit", "mld-listener-query"}
    assert "nd-redirect" not in inbound  # RFC 4890 §4.4.4: a redirect may be dropped
    nd = next(r for r in _chain_rules(commands, "inbound") if "nd-router-advert" in _icmpv6_types(r))
    assert {"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "hoplimit"}}, "right": 255}} in nd


def test_nat_and_firewall_share_the_sessions_one_table() -> None:
    commands = nftrules.session_table("lara1", nat=True, embpf=EMBPF, firewall_ipv6=True)
    objects = [obj for command in commands for verb in command.values() for obj in verb.items()]
    tables = {body["name"] if kind == "table" else body["table"] for kind, body in objects}
    assert tables == {"larappp_lara1"}
    assert set(_chains(commands)) == {"postrouting", "input", "inbound", "forward", "inbound_forward"}
