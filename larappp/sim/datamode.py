"""The simulated module's data calls: CONNECT into data mode, the end of a call (NO CARRIER,
DCD off, the context deactivated), and the "+++" escape into online command mode.

Functions over a Module; the bytes of a call go to its DataSession (larappp.sim.data).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from larappp.sim import packet
from larappp.sim.data import DataCall
from larappp.sim.events import CallEnded, CallStarted
from larappp.sim.state import (
    CLAT_IPV4,
    COMMAND,
    DATA,
    ONLINE_COMMAND,
    ActiveContext,
    AuthSetting,
    Call,
    PortState,
)

if TYPE_CHECKING:
    from larappp.sim.module import Module


def start_call(m: Module, p: PortState, ctx: ActiveContext, now: float) -> None:
    """CONNECT was sent: `p` enters data mode and a data session serves the call."""
    auth = m.nvm.auth.get(ctx.cid, AuthSetting(0, "", ""))
    call_info = DataCall(
        port=p.index,
        cid=ctx.cid,
        apn=ctx.apn,
        pdp_type=ctx.pdp_type,
        addresses=ctx.addresses,
        mtu=ctx.mtu,
        auth_type=auth.auth_type,
        user=auth.user,
        password=auth.password,
        xlat_ipv4=CLAT_IPV4 if m.xlat_active and ctx.pdp_type == "IPV6" else None,
        embedded_port_range=m.ram.applied_range,
    )
    holder: list[Call] = []

    def send(data: bytes) -> None:
        if holder and p.call is holder[0]:
            if holder[0].silent(m.now):
                m.counters["bytes_lost_silent"] += len(data)
            elif p.mode == DATA:
                m.counters["bytes_to_dte"] += len(data)
                m.write(p, data)
            else:
                m.counters["bytes_dropped_in_command_mode"] += len(data)

    def hangup(reason: str = "hangup") -> None:
        if holder and p.call is holder[0]:
            end_call(m, p, reason, m.now, result="NO CARRIER", deactivate=True)

    p.mode = DATA
    p.detector.reset(now)
    p.assembler.clear()
    session = m.session_factory(call_info, send, hangup)
    call = Call(p.index, ctx.cid, session, now)
    holder.append(call)
    p.call = call
    m.counters["connects"] += 1
    packet.set_rrc(m, True)
    m.emit(CallStarted(p.index, ctx.cid))
    m.emit(m.modem_lines(p.index))


def end_call(m: Module, p: PortState, reason: str, now: float, *, result: str | None, deactivate: bool) -> None:
    """End the call on `p`: command mode, DCD off, `result` sent, the context maybe deactivated."""
    call = p.call
    if call is None:
        return
    p.call = None
    p.mode = COMMAND
    p.assembler.clear()
    m.counters[f"calls_ended_{reason}"] += 1
    call.session.close(reason)
    m.emit(CallEnded(p.index, call.cid, reason))
    m.emit(m.modem_lines(p.index))
    if result is not None:
        m.write(p, m.final_bytes(p, result))
    # App note §4.1.3: ending the PPP deactivates the context it dialled, except CID 1,
    # the default EPS bearer, which stays up while attached (§2.1; "if possible", §4.2).
    if deactivate and call.cid != 1:
        packet.deactivate(m, call.cid, now, reason)


def escape_detected(m: Module, p: PortState, now: float) -> None:
    """"+++" was recognised on `p`: online command mode (&D1) or the call ends."""
    m.counters["escapes"] += 1
    if p.amp_d == 1:
        # App note §9.1.4 and &D1 (default): online command mode; ATO resumes the call.
        p.mode = ONLINE_COMMAND
        p.assembler.clear()
        m.write(p, m.final_bytes(p, "OK"))
        return
    # With &D0/&D2, "+++" during a PPP call deactivates the context (u-blox &D notes).
    end_call(m, p, "escape", now, result="NO CARRIER", deactivate=True)
