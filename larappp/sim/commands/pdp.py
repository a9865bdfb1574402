"""PDP context commands of the simulated module: +CGDCONT, +CGACT, +CGCONTRDP, +CGPADDR,
+UAUTHREQ, +CGEREP."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from larappp.sim import packet
from larappp.sim.atcmd import Command
from larappp.sim.commands.base import (
    Failure,
    Handler,
    Reply,
    int_param,
    parse_params,
    port_setting,
    str_param,
)
from larappp.sim.scenario import PDP_TYPES
from larappp.sim.state import CID_RANGE, ActiveContext, AuthSetting, PdpDefinition, PortState

if TYPE_CHECKING:
    from larappp.sim.module import Module


def dotted_ipv6(address: str) -> str:
    """"2001:db8::1" as the 16 dotted decimals LARA-R6 prints (app note §4.1.3)."""
    return ".".join(str(b) for b in ipaddress.IPv6Address(address).packed)


def dotted_ipv6_mask(prefix_len: int) -> str:
    return dotted_ipv6(str(ipaddress.IPv6Network(f"::/{prefix_len}").netmask))


def context_address_text(ctx: ActiveContext) -> str:
    a = ctx.addresses
    if ctx.pdp_type == "IP":
        return a.ipv4
    if ctx.pdp_type == "IPV6":
        return dotted_ipv6(a.ipv6)
    # App note §4.1.3: "10.117.32.103 38.0.3.128...": IPv4, a space, the dotted IPv6.
    return f"{a.ipv4} {dotted_ipv6(a.ipv6)}"


def cgdcont(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    if cmd.kind == "read":
        lines = []
        for cid in sorted(m.nvm.contexts):
            definition = m.nvm.contexts[cid]
            ctx = m.ram.contexts.get(cid)
            pdp_type = ctx.pdp_type if ctx else definition.pdp_type
            address = context_address_text(ctx) if ctx else ""
            lines.append(f'+CGDCONT: {cid},"{pdp_type}","{definition.apn}","{address}",0,0,0,0')
        return Reply(lines)
    if cmd.kind != "set":
        raise Failure(cme=50)
    params = parse_params(cmd)
    cid = int_param(params, 0, *CID_RANGE)
    if cid in m.ram.contexts:
        raise Failure(cme=3)
    if len(params) == 1:
        m.nvm.contexts.pop(cid, None)
        return Reply()
    pdp_type = str_param(params, 1).upper()
    if pdp_type not in PDP_TYPES:
        raise Failure(cme=50)
    apn = str_param(params, 2, default="")
    if len(apn) > 99:
        raise Failure(cme=50)
    m.nvm.contexts[cid] = PdpDefinition(pdp_type, apn)
    return Reply()


def cgact(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    if cmd.kind == "read":
        return Reply([f"+CGACT: {cid},{1 if cid in m.ram.contexts else 0}" for cid in sorted(m.nvm.contexts)])
    if cmd.kind != "set":
        raise Failure(cme=50)
    params = parse_params(cmd)
    state = int_param(params, 0, 0, 1)
    cids = [int_param(params, i, *CID_RANGE) for i in range(1, len(params))]
    if not cids:
        cids = sorted(m.nvm.contexts)
    for cid in cids:
        if cid not in m.nvm.contexts:
            raise Failure(cme=50)
        if state == 1:
            error = packet.activate(m, cid, now)
            if error is not None:
                raise Failure(cme=error)
        else:
            packet.deactivate(m, cid, now, "cgact")
    return Reply()


def cgcontrdp(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    params = parse_params(cmd) if cmd.kind == "set" else []
    if params:
        cid = int_param(params, 0, *CID_RANGE)
        contexts = [m.ram.contexts[cid]] if cid in m.ram.contexts else []
    else:
        contexts = [m.ram.contexts[c] for c in sorted(m.ram.contexts)]
    lines = []
    for ctx in contexts:
        a = ctx.addresses
        head = f'+CGCONTRDP: {ctx.cid},{ctx.bearer_id},"{ctx.apn}"'
        tail = f',"","",0,0,{ctx.mtu}'
        if ctx.pdp_type in ("IP", "IPV4V6"):
            lines.append(
                f'{head},"{a.ipv4}.{a.ipv4_mask}","{a.ipv4_gateway}",'
                f'"{a.ipv4_dns[0]}","{a.ipv4_dns[1]}"{tail}'
            )
        if ctx.pdp_type in ("IPV6", "IPV4V6"):
            lines.append(
                f'{head},"{dotted_ipv6(a.ipv6)}.{dotted_ipv6_mask(a.ipv6_prefix_len)}","",'
                f'"{dotted_ipv6(a.ipv6_dns[0])}","{dotted_ipv6(a.ipv6_dns[1])}"{tail}'
            )
    return Reply(lines)


def cgpaddr(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    params = parse_params(cmd) if cmd.kind == "set" else []
    cids = [int_param(params, i, *CID_RANGE) for i in range(len(params))] or sorted(m.nvm.contexts)
    lines = []
    for cid in cids:
        ctx = m.ram.contexts.get(cid)
        if ctx is None:
            lines.append(f"+CGPADDR: {cid}")
            continue
        parts = []
        if ctx.pdp_type in ("IP", "IPV4V6"):
            parts.append(f'"{ctx.addresses.ipv4}"')
        if ctx.pdp_type in ("IPV6", "IPV4V6"):
            parts.append(f'"{dotted_ipv6(ctx.addresses.ipv6)}"')
        lines.append(f"+CGPADDR: {cid}," + ",".join(parts))
    return Reply(lines)


def uauthreq(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    if cmd.kind == "read":
        return Reply([f'+UAUTHREQ: {cid},{a.auth_type},"{a.user}"' for cid, a in sorted(m.nvm.auth.items())])
    params = parse_params(cmd)
    cid = int_param(params, 0, *CID_RANGE)
    auth_type = int_param(params, 1, 0, 3)
    user = str_param(params, 2, default="")
    password = str_param(params, 3, default="")
    m.nvm.auth[cid] = AuthSetting(auth_type, user, password)
    return Reply()


HANDLERS: dict[str, Handler] = {
    "+CGDCONT": cgdcont,
    "+CGACT": cgact,
    "+CGCONTRDP": cgcontrdp,
    "+CGPADDR": cgpaddr,
    "+UAUTHREQ": uauthreq,
    "+CGEREP": port_setting("+CGEREP", "cgerep", 2, status=lambda _m: "0"),  # <bfr> 0
}
