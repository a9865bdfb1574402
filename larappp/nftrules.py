"""nftables rules for one session's link, as nft's JSON commands, and a reader of the NAT
rules already in a ruleset (`nft -j list ruleset`). Pure: larappp.transport.nft runs nft.

Router mode (app note §4.3, figure 5): LAN clients reach the network through NAT on the
link, and Linux NAT picks their translated source ports without looking at
ip_local_reserved_ports, so a reply to a port of the module's +UEMBPF range would go to
the module's embedded applications. `session_table` masquerades what leaves the link
with explicit port ranges outside that range (lara_r6.ports.nat_port_plan).

App note §4.1.2: the DTE's global IPv6 address is reachable from the whole internet and
nothing filters what comes in. `firewall_rules` drops IPv6 arriving on the link (for the
host and for what it forwards) except replies to its own flows and the ICMPv6 that IPv6
cannot work without (RFC 4890).

Each session gets one table of its own, `inet larappp_<ifname>`: created and replaced
in one transaction, removed whole.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from larappp.lara_r6.ports import (
    MAX_PORT,
    NAT_PORT_CLASSES,
    NatPortRule,
    PortRange,
    format_ranges,
    merge_ranges,
    nat_port_plan,
    subtract_ranges,
)

__all__ = [
    "FAMILY",
    "NAT_PRIORITY",
    "TABLE_PREFIX",
    "NatRule",
    "delete_table",
    "find_nat_rules",
    "firewall_rules",
    "session_table",
    "table_name",
]

FAMILY = "inet"
TABLE_PREFIX = "larappp_"
#: One before srcnat (100). Linux runs the NAT chains of a hook in priority order and the
#: first that binds a flow wins (nf_nat_inet_fn), so larappp's port ranges hold even
#: beside another masquerade on the link, iptables' included (also at 100).
NAT_PRIORITY = 99
#: the transport protocols whose ports the module's filter looks at (app note §4.3)
PORT_PROTOCOLS = ("tcp", "udp")
_PROTOCOL_NUMBERS = {"tcp": 6, "udp": 17}

Command = dict[str, Any]


def table_name(ifname: str) -> str:
    """The session's table: larappp_<ifname> (nft takes the interface's - and . as they are)."""
    return TABLE_PREFIX + ifname


def _table(ifname: str) -> dict[str, Any]:
    return {"table": {"family": FAMILY, "name": table_name(ifname)}}


def delete_table(ifname: str) -> list[Command]:
    """Remove the session's table; no error when it is gone already (add, then delete)."""
    return [{"add": _table(ifname)}, {"delete": _table(ifname)}]


def _match(left: dict[str, Any], right: Any, op: str = "==") -> Command:
    return {"match": {"op": op, "left": left, "right": right}}


def _meta(key: str) -> dict[str, Any]:
    return {"meta": {"key": key}}


def _port_value(ports: PortRange) -> Any:
    return ports.first if ports.first == ports.last else {"range": [ports.first, ports.last]}


def _rule(ifname: str, chain: str, expr: list[Command]) -> Command:
    return {"add": {"rule": {"family": FAMILY, "table": table_name(ifname), "chain": chain, "expr": expr}}}


def nat_rules(ifname: str, embpf: PortRange | None) -> list[Command]:
    """The postrouting chain: IPv4 leaving `ifname` is masqueraded, TCP and UDP into the
    ports `nat_port_plan` gives (all of them when there is no UEMBPF range)."""
    name = table_name(ifname)
    commands: list[Command] = [{"add": {"chain": {
        "family": FAMILY, "table": name, "name": "postrouting", "type": "nat", "hook": "postrouting",
        "prio": NAT_PRIORITY, "policy": "accept",
    }}}]
    leaving = [_match(_meta("oifname"), ifname), _match(_meta("nfproto"), "ipv4")]
    plan: Sequence[NatPortRule] = nat_port_plan(embpf) if embpf is not None else ()
    for rule in plan:
        commands.append(_rule(ifname, "postrouting", [
            *leaving,
            _match(_meta("l4proto"), {"set": list(PORT_PROTOCOLS)}),
            _match({"payload": {"protocol": "th", "field": "sport"}}, _port_value(rule.sources)),
            {"masquerade": {"port": _port_value(rule.translated)}},
        ]))
    # The rest: no TCP/UDP ports for the module's filter to match (app note §4.3 names TCP
    # and UDP; ICMP has identifiers), or, without a UEMBPF range, any port will do.
    commands.append(_rule(ifname, "postrouting", [*leaving, {"masquerade": None}]))
    return commands


#: ICMPv6 errors and echo, which RFC 4890 §4.3.1 and §4.4.1 say must (errors) or should
#: (echo) not be dropped, to the host or through it; unrelated errors too (Path MTU
#: Discovery needs Packet Too Big from any router on the way)
ICMPV6_ALWAYS = ("destination-unreachable", "packet-too-big", "time-exceeded", "parameter-problem",
                 "echo-request", "echo-reply")
#: Neighbour Discovery from the link: the module's Router Advertisements above all (the
#: kernel takes them with a hop limit of 255 only, RFC 4861 §6.1.2, §7.1)
ICMPV6_ND = ("nd-router-advert", "nd-neighbor-solicit", "nd-neighbor-advert")
#: Multicast Listener Discovery, link-local only (RFC 4890 §4.4.1)
ICMPV6_MLD = ("mld-listener-query", "mld-listener-report", "mld-listener-done", "mld2-listener-report")
#: hook -> the regular chain its base chain sends IPv6 from the link to
FIREWALL_CHAINS = {"input": "inbound", "forward": "inbound_forward"}


def _icmpv6(types: Sequence[str]) -> Command:
    return _match({"payload": {"protocol": "icmpv6", "field": "type"}}, {"set": list(types)})


def firewall_rules(ifname: str) -> list[Command]:
    """IPv6 arriving on `ifname`, to the host (input) and through it (forward): replies to its
    own flows and the ICMPv6 IPv6 needs pass, the rest is counted and dropped."""
    name = table_name(ifname)
    replies = [_match({"ct": {"key": "state"}}, ["established", "related"], op="in"), {"accept": None}]
    commands: list[Command] = []
    for hook, chain in FIREWALL_CHAINS.items():
        commands.append({"add": {"chain": {"family": FAMILY, "table": name, "name": chain}}})
        commands.append(_rule(ifname, chain, replies))
        commands.append(_rule(ifname, chain, [_icmpv6(ICMPV6_ALWAYS), {"accept": None}]))
        if hook == "input":  # link-local signalling is for the host, never forwarded
            hop_limit = _match({"payload": {"protocol": "ip6", "field": "hoplimit"}}, 255)
            link_local = _match({"payload": {"protocol": "ip6", "field": "saddr"}},
                                {"prefix": {"addr": "fe80::", "len": 10}})
            commands.append(_rule(ifname, chain, [hop_limit, _icmpv6(ICMPV6_ND), {"accept": None}]))
            commands.append(_rule(ifname, chain, [link_local, _icmpv6(ICMPV6_MLD), {"accept": None}]))
        commands.append(_rule(ifname, chain, [{"counter": None}, {"drop": None}]))
        commands.append({"add": {"chain": {
            "family": FAMILY, "table": name, "name": hook, "type": "filter", "hook": hook, "prio": 0,
            "policy": "accept",
        }}})
        commands.append(_rule(ifname, hook, [
            _match(_meta("iifname"), ifname), _match(_meta("nfproto"), "ipv6"), {"jump": {"target": chain}},
        ]))
    return commands


def session_table(ifname: str, *, nat: bool, embpf: PortRange | None, firewall_ipv6: bool = False) -> list[Command]:
    """Commands that create the session's table, replacing one a killed larappp left, in one
    transaction (nothing half-made stays when nft refuses a rule)."""
    commands: list[Command] = [*delete_table(ifname), {"add": _table(ifname)}]
    if nat:
        commands += nat_rules(ifname, embpf)
    if firewall_ipv6:
        commands += firewall_rules(ifname)
    return commands


# -- reading a ruleset ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NatRule:
    """A source NAT rule found in the ruleset that reaches the link interface."""

    family: str
    table: str
    chain: str
    handle: int | None
    #: "masquerade", "snat", or the iptables target ("MASQUERADE", "SNAT") of an iptables-nft rule
    statement: str
    #: the ports it translates into; None: as Linux picks (the original port when free)
    ports: PortRange | None
    #: the source ports of the flows it applies to (TCP and UDP only; () when neither)
    sources: tuple[PortRange, ...]
    #: an iptables-nft rule: its port range is inside the iptables target, unreadable to nft's JSON
    iptables: bool = False

    @property
    def larappp(self) -> bool:
        """One of larappp's own session tables."""
        return self.family == FAMILY and self.table.startswith(TABLE_PREFIX)

    def where(self) -> str:
        handle = f" (handle {self.handle})" if self.handle is not None else ""
        return f"{self.family} {self.table} chain {self.chain}{handle}"

    def translated_ports(self) -> tuple[PortRange, ...]:
        """Every port this rule may give a flow: its own range, else the flow's own port or
        another of its class (below 1024 or not); () for a rule without TCP or UDP."""
        if not self.sources:
            return ()
        if self.ports is not None:
            return (self.ports,)
        classes = [c for c in NAT_PORT_CLASSES if any(c.overlaps(s) for s in self.sources)]
        return merge_ranges([*self.sources, *classes])

    def hits(self, embpf: PortRange) -> bool:
        """Whether a flow through this rule can get a port of `embpf` (unknown counts as yes)."""
        if self.iptables:
            return bool(self.sources)
        return any(r.overlaps(embpf) for r in self.translated_ports())

    def describe(self, embpf: PortRange) -> str:
        """What the rule does with the ports, in one clause."""
        if self.iptables:
            return (f"iptables {self.statement} in {self.where()}, whose port range nft cannot read, "
                    f"may give flows source ports in {embpf}")
        inside = [r.intersection(embpf) for r in self.translated_ports()]
        ports = format_ranges(r for r in inside if r is not None)
        how = f"translates into {self.ports}" if self.ports else "keeps a flow's own source port when free"
        return f"{self.statement} in {self.where()} {how}, so flows can get ports {ports} of {embpf}"


def find_nat_rules(ruleset: Mapping[str, Any], ifname: str) -> list[NatRule]:
    """Source NAT rules (masquerade, snat, iptables-nft MASQUERADE/SNAT) of `ruleset` that do
    not exclude `ifname` by their output interface match."""
    found = []
    for item in ruleset.get("nftables", []):
        rule = item.get("rule") if isinstance(item, dict) else None
        if not isinstance(rule, dict):
            continue
        parsed = _nat_rule(rule, ifname)
        if parsed is not None:
            found.append(parsed)
    return found


def _nat_rule(rule: Mapping[str, Any], ifname: str) -> NatRule | None:
    statement: str | None = None
    ports: PortRange | None = None
    iptables = False
    sources: tuple[PortRange, ...] = (PortRange(1, MAX_PORT),)
    protocols_with_ports = True
    for expr in rule.get("expr", []):
        if not isinstance(expr, dict):
            continue
        for name in ("masquerade", "snat"):
            if name in expr:
                statement = name
                ports = _translated_range((expr[name] or {}).get("port"))
        xt = expr.get("xt")
        if isinstance(xt, dict) and xt.get("type") == "target" and xt.get("name") in ("MASQUERADE", "SNAT"):
            statement, iptables = str(xt["name"]), True
        match = expr.get("match")
        if not isinstance(match, dict):
            continue
        left, right, op = match.get("left"), match.get("right"), match.get("op", "==")
        meta = left.get("meta") if isinstance(left, dict) else None
        key = meta.get("key") if isinstance(meta, dict) else None
        if key in ("oifname", "oif") and not _interface_matches(ifname, right, op):
            return None
        if _is_protocol_match(left, key) and not _has_port_protocol(right, op):
            protocols_with_ports = False
        if _is_sport(left):
            wanted = _port_ranges(right)
            if wanted is not None:
                sources = wanted if op == "==" else subtract_ranges(sources, wanted)
    if statement is None:
        return None
    handle = rule.get("handle")
    return NatRule(
        family=str(rule.get("family", "")), table=str(rule.get("table", "")), chain=str(rule.get("chain", "")),
        handle=handle if isinstance(handle, int) else None, statement=statement, ports=ports,
        sources=sources if protocols_with_ports else (), iptables=iptables,
    )


def _values(right: Any) -> list[Any]:
    if isinstance(right, dict) and "set" in right:
        return list(right["set"]) if isinstance(right["set"], list) else [right["set"]]
    return [right]


def _interface_matches(ifname: str, right: Any, op: str) -> bool:
    """Whether an oifname/oif match lets packets to `ifname` through (a named set: assumed)."""
    names = _values(right)
    if any(not isinstance(n, str) or n.startswith("@") for n in names):
        return True
    # nft's only wildcard is a trailing "*" ("ppp*"); fnmatch reads it the same way
    hit = any(fnmatch.fnmatchcase(ifname, n) for n in names)
    return hit if op in ("==", "in") else not hit


def _is_protocol_match(left: Any, key: str | None) -> bool:
    if key == "l4proto":
        return True
    payload = left.get("payload", {}) if isinstance(left, dict) else {}
    return isinstance(payload, dict) and (payload.get("protocol"), payload.get("field")) in (
        ("ip", "protocol"), ("ip6", "nexthdr"))


def _has_port_protocol(right: Any, op: str) -> bool:
    """Whether a protocol match can let TCP or UDP through (unknown forms: assumed)."""
    values = _values(right)
    if any(not isinstance(v, (str, int)) or (isinstance(v, str) and v.startswith("@")) for v in values):
        return True
    ours = {p for p in values if p in PORT_PROTOCOLS or p in _PROTOCOL_NUMBERS.values()}
    if op in ("==", "in"):
        return bool(ours)
    return len(ours) < len(PORT_PROTOCOLS)


def _is_sport(left: Any) -> bool:
    payload = left.get("payload", {}) if isinstance(left, dict) else {}
    return (isinstance(payload, dict) and payload.get("field") == "sport"
            and payload.get("protocol") in ("th", *PORT_PROTOCOLS))


def _translated_range(value: Any) -> PortRange | None:
    """A NAT statement's port range: None when it has none; every port when unreadable."""
    if value is None:
        return None
    ranges = _port_ranges(value)
    if not ranges:
        return PortRange(1, MAX_PORT)
    return PortRange(ranges[0].first, ranges[-1].last)


def _port_ranges(value: Any) -> tuple[PortRange, ...] | None:
    """Ports of a JSON value: 80, {"range": [a, b]}, a set of those; None when unreadable."""
    items: Iterable[Any] = _values(value)
    ranges: list[PortRange] = []
    for item in items:
        if isinstance(item, bool):
            return None
        if isinstance(item, int) and 1 <= item <= MAX_PORT:
            ranges.append(PortRange(item, item))
        elif isinstance(item, dict) and isinstance(item.get("range"), list) and len(item["range"]) == 2:
            first, last = item["range"]
            if not (isinstance(first, int) and isinstance(last, int) and 1 <= first <= last <= MAX_PORT):
                return None
            ranges.append(PortRange(first, last))
        else:
            return None
    return merge_ranges(ranges) if ranges else None
