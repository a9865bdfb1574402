"""The simulated module's packet domain: registration (+CEREG/+CSCON URCs) and PDP contexts.

Functions over a Module. Registration follows AT+CFUN/+COPS/+CGATT and the scenario's
delay; CID 1 comes up with the attach (app note §2.1); other contexts with AT+CGACT or
the dial (§4). Deactivating a context ends the call on it with NO CARRIER.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from larappp.sim import datamode
from larappp.sim.scenario import address_plan
from larappp.sim.state import MAX_ACTIVE_CONTEXTS, ActiveContext

if TYPE_CHECKING:
    from larappp.sim.module import Module


def grant_type(requested: str, network: str) -> str | None:
    """The PDP type the network grants for a request; None when it rejects it."""
    if requested == "IPV4V6":
        return network
    if requested == "IP":
        return "IP" if network in ("IP", "IPV4V6") else None
    return "IPV6" if network in ("IPV6", "IPV4V6") else None


def registration_text(m: Module, name: str, stat: int, n: int, *, read: bool) -> str:
    """The +CEREG/+CREG/+CGREG text for `stat` at report level `n` (URC or read answer)."""
    net = m.scenario.network
    head = f"{name}: {n},{stat}" if read else f"{name}: {stat}"
    if n >= 2 and stat in (1, 5):
        return f'{head},"{net.tac}","{net.cell_id}",7'
    return head


def set_stat(m: Module, stat: int) -> None:
    """Set the registration status, with a URC on every port that asked for one."""
    if stat == m.ram.stat:
        return
    m.ram.stat = stat
    for p in m.ports:
        for name, n in p.reg_urc.items():
            if n:
                m.urc(p, registration_text(m, name, stat, n, read=False))


def set_rrc(m: Module, connected: bool) -> None:
    """Set the RRC connection state, with +CSCON on every port that asked for it."""
    if connected == m.ram.rrc_connected:
        return
    m.ram.rrc_connected = connected
    for p in m.ports:
        if p.cscon:
            m.urc(p, f"+CSCON: {1 if connected else 0}")


def start_registration(m: Module, now: float) -> None:
    """Start searching (stat 2); registration completes after the scenario's delay."""
    if m.registered or m.ram.cfun != 1:
        return
    set_stat(m, 2)
    if not m.scenario.never_register and m.ram.registration_due is None:
        m.ram.registration_due = now + m.scenario.registration_delay


def complete_registration(m: Module, now: float) -> None:
    """Registered: stat 1 (or 5 roaming), RRC connected, CID 1 up with the attach."""
    set_stat(m, 5 if m.scenario.network.roaming else 1)
    set_rrc(m, True)
    # App note §2.1: CID 1 is the initial default EPS bearer, set up by the LTE attach.
    if 1 in m.nvm.contexts:
        activate(m, 1, now)


def deregister(m: Module, now: float, reason: str) -> None:
    """Lose registration (radio off, detach): every context goes, stat 0."""
    m.ram.registration_due = None
    for cid in list(m.ram.contexts):
        deactivate(m, cid, now, reason)
    set_stat(m, 0)
    set_rrc(m, False)


def activate(m: Module, cid: int, now: float) -> int | None:
    """Activate `cid`; None on success, else the +CME ERROR code."""
    if cid in m.ram.contexts:
        return None
    if m.ram.cfun != 1 or not m.registered:
        return 30
    definition = m.nvm.contexts.get(cid)
    if definition is None:
        return 50
    granted = grant_type(definition.pdp_type, m.scenario.grant)
    if granted is None:
        return 132
    # App note §4.1.3: a different and unique APN is required per PDP context.
    if any(ctx.apn.lower() == definition.apn.lower() for ctx in m.ram.contexts.values()):
        m.counters["activation_same_apn"] += 1
        return 148
    if len(m.ram.contexts) >= MAX_ACTIVE_CONTEXTS:
        return 148
    m.ram.contexts[cid] = ActiveContext(
        cid=cid,
        pdp_type=granted,
        apn=definition.apn,
        bearer_id=4 + cid if cid else 15,
        addresses=address_plan(cid),
        mtu=m.scenario.mtu,
    )
    m.counters["activations"] += 1
    for p in m.ports:
        if p.cgerep:
            m.urc(p, f"+CGEV: ME PDN ACT {cid}")
    return None


def deactivate(m: Module, cid: int, now: float, reason: str, *, urc: str = "ME PDN DEACT") -> None:
    """Deactivate `cid`: a call on it ends with NO CARRIER, +CGEV `urc` where reported
    ("ME PDN DEACT", or the network's "NW PDN DEACT" or "NW DEACT", 3GPP TS 27.007 §10.1.19)."""
    ctx = m.ram.contexts.pop(cid, None)
    if ctx is None:
        return
    m.counters["deactivations"] += 1
    for p in m.ports:
        if p.call is not None and p.call.cid == cid:
            datamode.end_call(m, p, reason, now, result="NO CARRIER", deactivate=False)
    for p in m.ports:
        if p.cgerep:
            m.urc(p, f"+CGEV: {cgev_deactivation(ctx, urc)}")


def cgev_deactivation(ctx: ActiveContext, urc: str) -> str:
    """What follows "+CGEV: " for the deactivation of `ctx` in the form `urc`."""
    if urc == "NW DEACT":
        # The form with <PDP_type>,<PDP_addr>,<cid> (the context's first address).
        address = ctx.addresses.ipv4 if ctx.pdp_type in ("IP", "IPV4V6") else ctx.addresses.ipv6
        return f'NW DEACT "{ctx.pdp_type}","{address}",{ctx.cid}'
    return f"{urc} {ctx.cid}"

