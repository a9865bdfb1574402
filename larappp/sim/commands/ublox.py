"""u-blox commands of the simulated module: MNO profile (+UMNOPROF), +UDCONF (default
context, 464XLAT), the embedded port filter (+UEMBPF), LwM2M (+ULWM2M), and the embedded
clients +UPING and +UDNSRN."""

from __future__ import annotations

import ipaddress
import zlib
from typing import TYPE_CHECKING

from larappp.sim.atcmd import Command
from larappp.sim.commands.base import Failure, Handler, Reply, int_param, parse_params, str_param
from larappp.sim.state import CID_RANGE, ActiveContext, PortState

if TYPE_CHECKING:
    from larappp.sim.module import Module

#: The names the simulated network's DNS knows.
FAKE_DNS = {
    "www.google.com": "216.239.59.147",
    "www.u-blox.com": "104.18.28.200",
    "lwm2m-fota.services.u-blox.com": "18.185.213.33",
}


def umnoprof(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    if cmd.kind == "read":
        return Reply([f"+UMNOPROF: {m.nvm.mno_profile}"])
    profile = int_param(parse_params(cmd), 0, 0, 255)
    # App note §2.3: the radio must be off while the MNO profile is set.
    if m.ram.cfun not in (0, 4):
        raise Failure(cme=3)
    m.nvm.mno_profile = profile
    return Reply()


def udconf(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    if cmd.kind != "set":
        raise Failure(cme=50)
    params = parse_params(cmd)
    op = int_param(params, 0, 0, 255)
    if op == 19:
        # App note §2.3.1: default context and preferred IP type, NVM, effective after reboot.
        if len(params) == 1:
            cid, ip_type = m.nvm.default_context
            return Reply([f"+UDCONF: 19,{cid},{ip_type}"])
        m.nvm.default_context = (int_param(params, 1, *CID_RANGE), int_param(params, 2, 0, 2))
        return Reply()
    if op == 66:
        # App note §2.5: AT+UDCONF=66,4,1 enables 464XLAT from the next boot.
        if len(params) >= 2:
            int_param(params, 1, 4, 4)
        if len(params) <= 2:
            return Reply([f"+UDCONF: 66,4,{m.nvm.xlat}"])
        m.nvm.xlat = int_param(params, 2, 0, 1)
        return Reply()
    if len(params) == 1:
        return Reply([f"+UDCONF: {op},{m.nvm.udconf.get(op, '0')}"])
    m.nvm.udconf[op] = cmd.args.split(",", 1)[1]
    return Reply()


def uembpf(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    if cmd.kind == "read":
        # The configured range (app note §4.3.1 reads it after the reboot that applies it).
        if m.nvm.embpf is None:
            return Reply(["+UEMBPF: 0"])
        first, last = m.nvm.embpf
        return Reply([f'+UEMBPF: 1,"{first}-{last}"'])
    params = parse_params(cmd)
    mode = int_param(params, 0, 0, 1)
    if mode == 0:
        m.nvm.embpf = None
        return Reply()
    text = str_param(params, 1)
    first_text, sep, last_text = text.partition("-")
    if not sep or not first_text.isdigit() or not last_text.isdigit():
        raise Failure(cme=50)
    first, last = int(first_text), int(last_text)
    if not 1 <= first <= last <= 65535:
        raise Failure(cme=50)
    m.nvm.embpf = (first, last)
    return Reply()


def ulwm2m(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    if cmd.kind == "read":
        return Reply([f"+ULWM2M: {m.nvm.lwm2m}"])
    m.nvm.lwm2m = int_param(parse_params(cmd), 0, 0, 1)
    return Reply()


def default_ipv4_context(m: Module) -> ActiveContext:
    """Embedded clients use CID 1 (app note §2.3.1); they need IPv4 (or XLAT)."""
    if not m.registered:
        raise Failure(cme=30)
    ctx = m.ram.contexts.get(1)
    if ctx is None:
        raise Failure(cme=30)
    if ctx.pdp_type == "IPV6" and not m.xlat_active:
        # App note §2.4.1: +UPING is not supported in a context of IPv6 type.
        raise Failure(cme=3)
    return ctx


def uping(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    params = parse_params(cmd)
    host = str_param(params, 0)
    count = int_param(params, 1, 1, 64, default=4)
    size = int_param(params, 2, 4, 1460, default=32)
    int_param(params, 3, 10, 60000, default=5000)
    int_param(params, 4, 1, 255, default=32)
    default_ipv4_context(m)
    address = resolve(host)
    for i in range(1, count + 1):
        rtt = m.rng.randint(40, 70)
        text = f'+UUPING: {i},{size},"{host}","{address}",55,{rtt}'
        m.schedule_urc(now + i * m.scenario.ping_interval, p, text)
    return Reply()


def udnsrn(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    params = parse_params(cmd)
    mode = int_param(params, 0, 0, 1)
    query = str_param(params, 1)
    default_ipv4_context(m)
    if mode == 0:
        return Reply([f'+UDNSRN: "{resolve(query)}"'])
    try:
        ipaddress.ip_address(query)
    except ValueError:
        raise Failure(cme=50) from None
    names = [name for name, addr in FAKE_DNS.items() if addr == query]
    return Reply([f'+UDNSRN: "{names[0] if names else "host.example.net"}"'])


def resolve(host: str) -> str:
    """The simulated network's DNS: a few known names, else a stable TEST-NET-3 address."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if host.lower() in FAKE_DNS:
        return FAKE_DNS[host.lower()]
    return f"203.0.113.{1 + zlib.crc32(host.lower().encode()) % 254}"


HANDLERS: dict[str, Handler] = {
    "+UMNOPROF": umnoprof,
    "+UDCONF": udconf,
    "+UEMBPF": uembpf,
    "+ULWM2M": ulwm2m,
    "+UPING": uping,
    "+UDNSRN": udnsrn,
}
