"""Faults injected into a running simulator: a Python object and a control socket for it.

Each fault, what it does on the wire, and how to call it (Python on a started
`Simulator`, from its event loop: `sim.control.<method>`, e.g. the supervisor's
in-process simulator as `supervisor.simulator.control`; the socket: one JSON object per line to
`larappp sim --control PATH` (default `<pty dir>/control.sock`; the daemon's
in-process simulator: `<runtime_dir>/sim/control.sock`), answered by one JSON
line `{"ok": true, ...}` or `{"ok": false, "error": "..."}`; the command line:
`larappp sim fault [--socket PATH] <fault> [options]`):

- drop: the network drops a call. Its port leaves data mode at once and sends
  `NO CARRIER` (no LCP Terminate-Request, DCD off on RFC 2217); the context stays
  active. The port is in command mode: it answers AT and echoes what it receives
  (PPP frames included) when echo is on.
  `control.drop(cid=1)` / `{"fault": "drop", "cid": 1}` / `fault drop --cid 1`
  (or `port=N` / `--port N` for the call on port N; neither: the first call).
- dcd-off: DCD goes off on a call's port (RFC 2217 NOTIFY-MODEMSTATE) while the
  call goes on: no NO CARRIER, PPP still answered; only the carrier line tells.
  `control.dcd_off(cid=1)` / `{"fault": "dcd-off", "cid": 1}` / `fault dcd-off --cid 1`
- deactivate: the network deactivates a PDP context. `+CGEV: NW PDN DEACT <cid>`
  (or `NW DEACT "<type>","<address>",<cid>`, `ME PDN DEACT <cid>` with `urc`) on every
  port in command mode that enabled AT+CGEREP, and `NO CARRIER` on the port of a call
  on that context, which leaves data mode.
  `control.deactivate(2, urc="NW PDN DEACT")` / `{"fault": "deactivate", "cid": 2}` /
  `fault deactivate --cid 2 [--urc "ME PDN DEACT"]`
- silence: the call's PPP peer falls silent: no LCP Echo-Reply, no packets either
  way, no NO CARRIER; the port stays in data mode ("+++" still works). For `seconds`,
  or until `on=False`.
  `control.silence(cid=1, seconds=10)` / `{"fault": "silence", "cid": 1, "seconds": 10}` /
  `fault silence --cid 1 [--seconds 10 | --off]`
- reboot: the module resets: calls end without a word, every port vanishes (ptys and
  their symlinks go, RFC 2217 refuses), and after `seconds` (default: the scenario's
  reboot time) the ports come back under the same names; the module boots
  unregistered (`AT+CEREG?` reads 0, then 2, then 1), echo on, contexts down.
  `control.reboot(seconds=2)` / `{"fault": "reboot", "seconds": 2}` / `fault reboot`
- unplug: the ports vanish for `seconds` (USB re-enumeration) and come back under
  the same names; the module itself stays registered. Calls end without a word
  (their contexts deactivated as on a DTR drop, except CID 1, the default bearer).
  `control.unplug(3)` / `{"fault": "unplug", "seconds": 3}` / `fault unplug --seconds 3`
- renegotiate: an NCP renegotiates while LCP stays up: the module sends an IPCP (4)
  or IPV6CP (6) Configure-Request on the call's port (its side of the NCP goes
  down and negotiates again; the host sees Configure-Request in Opened).
  `control.renegotiate(cid=1, family=6)` / `{"fault": "renegotiate", "cid": 1,
  "family": 6}` / `fault renegotiate --cid 1 --family 6`
- ra: the network sends a Router Advertisement at once on the call's context:
  with `prefix`, the context is renumbered (the old prefix is announced with
  lifetimes 0 in the same RA, later RAs carry only the new one, routing follows);
  with `lifetime`, the router and prefix lifetimes (0: withdrawn) of this and later RAs.
  `control.ra(1, prefix="2001:db8:0:99::/64")`, `control.ra(1, lifetime=0)` /
  `{"fault": "ra", "cid": 1, "lifetime": 0}` / `fault ra --cid 1 --prefix P --lifetime S`
- radio-off / radio-on: as AT+CFUN=0 / AT+CFUN=1 from another port: `+CEREG: 0`
  where reported, every context deactivated (`+CGEV: ME PDN DEACT`, `NO CARRIER` on
  calls); radio-on registers again.
  `control.radio_off()` / `{"fault": "radio-off"}` / `fault radio-off`
- status (not a fault): the module's state, ports, calls and contexts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import Callable
from ipaddress import IPv6Network
from typing import TYPE_CHECKING, Any, TypeVar

from larappp.errors import NetworkSetupError, PortError
from larappp.sim import faults
from larappp.sim.faults import FaultError
from larappp.sim.ppp import ModulePppSession
from larappp.sim.state import Call

if TYPE_CHECKING:
    from larappp.sim import Simulator
    from larappp.sim.module import Module
    from larappp.sim.runner import ModuleDriver

R = TypeVar("R")

#: Longest request line the control socket reads.
MAX_REQUEST = 4096


class SimControl:
    """The faults of one running Simulator as Python calls (see the module docstring).

    Each method returns what the socket answers besides "ok" and raises FaultError when
    the fault cannot apply now (no such call, module not running, no network...)."""

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator

    # -- the faults -------------------------------------------------------------------
    def drop(self, *, cid: int | None = None, port: int | None = None) -> dict[str, Any]:
        call = self._apply(lambda m, now: faults.drop_call(m, now, cid=cid, port=port))
        return {"port": call.port, "cid": call.cid}

    def dcd_off(self, *, cid: int | None = None, port: int | None = None) -> dict[str, Any]:
        call = self._apply(lambda m, now: faults.dcd_off(m, now, cid=cid, port=port))
        return {"port": call.port, "cid": call.cid}

    def deactivate(self, cid: int, *, urc: str = "NW PDN DEACT") -> dict[str, Any]:
        self._apply(lambda m, now: faults.deactivate_context(m, now, cid, urc=urc))
        return {"cid": cid}

    def silence(self, *, cid: int | None = None, port: int | None = None,
                seconds: float | None = None, on: bool = True) -> dict[str, Any]:
        call = self._apply(lambda m, now: faults.silence(m, now, cid=cid, port=port, seconds=seconds, on=on))
        return {"port": call.port, "cid": call.cid}

    def reboot(self, *, seconds: float | None = None) -> dict[str, Any]:
        self._apply(lambda m, now: faults.reboot(m, now, down_for=seconds))
        return {}

    def unplug(self, seconds: float) -> dict[str, Any]:
        self._apply(lambda m, now: faults.unplug(m, now, seconds))
        return {}

    def radio_off(self) -> dict[str, Any]:
        self._apply(faults.radio_off)
        return {}

    def radio_on(self) -> dict[str, Any]:
        self._apply(faults.radio_on)
        return {}

    def renegotiate(self, *, cid: int | None = None, port: int | None = None, family: int = 6) -> dict[str, Any]:
        if family not in (4, 6):
            raise FaultError(f"family {family} is not an IP version: give 4 (IPCP) or 6 (IPV6CP)")

        def apply(m: Module, now: float) -> Call:
            call = faults.call_port(m, cid=cid, port=port).call
            assert call is not None
            session = call.session
            if not isinstance(session, ModulePppSession):
                raise FaultError("the call runs no PPP: start the simulator with a network (--network)")
            if (session.link.ipcp if family == 4 else session.link.ipv6cp) is None:
                raise FaultError(f"the call on cid {call.cid} negotiates no {'IPCP' if family == 4 else 'IPV6CP'}")
            session.renegotiate(family, now)
            return call

        call = self._apply(apply)
        return {"port": call.port, "cid": call.cid, "family": family}

    def ra(self, cid: int, *, prefix: str | None = None, lifetime: int | None = None) -> dict[str, Any]:
        network = self.simulator.network
        if network is None:
            raise FaultError("the simulator has no network: start it with a network (--network)")
        try:
            new_prefix = IPv6Network(prefix) if prefix is not None else None
        except ValueError as exc:
            raise FaultError(f"prefix {prefix!r} is not an IPv6 prefix ({exc})") from None
        if lifetime is not None and not 0 <= lifetime <= 0xFFFFFFFF:
            raise FaultError("lifetime must be 0-4294967295 s")
        driver = self._driver()
        try:
            network.readvertise(cid, prefix=new_prefix, lifetime=lifetime)
        except NetworkSetupError as exc:
            raise FaultError(str(exc)) from None
        driver.wake()
        session = network.session(cid)
        return {"cid": cid, "prefix": str(session.ipv6_prefix if session else None)}

    def status(self) -> dict[str, Any]:
        m = self.simulator.module
        return {
            "state": m.state,
            "unplugged": m.unplugged_until is not None,
            "registered": m.registered,
            "cfun": m.ram.cfun,
            "contexts": sorted(m.ram.contexts),
            "ports": [
                {"port": p.index, "mode": p.mode, "cid": p.call.cid if p.call else None,
                 "silent": bool(p.call and p.call.silent_until is not None)}
                for p in m.ports
            ],
            # the radio's counters: radio.uplink.dropped are packets the module's uplink
            # buffer could not hold (app note §4)
            "radio": self.simulator.radio.to_json(),
            # each port's serial line (--baud): bytes carried, time the DTE was held by CTS
            "lines": [line.to_json(driver.now) for line in driver.lines] if (driver := self.simulator.driver) else [],
        }

    # -- requests as data (the control socket) ------------------------------------------
    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run one request `{"fault": NAME, ...}`; the answer `{"ok": ...}` never raises."""
        try:
            name = request.get("fault")
            handler = self._requests().get(str(name))
            if handler is None:
                raise FaultError(f"fault {name!r} is unknown: use one of {', '.join(self._requests())}")
            return {"ok": True, **handler(request)}
        except FaultError as exc:
            return {"ok": False, "error": str(exc)}
        except KeyError as exc:
            return {"ok": False, "error": f"bad request (it needs {exc})"}
        except (TypeError, ValueError) as exc:
            return {"ok": False, "error": f"bad request ({exc})"}

    def _requests(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {
            "drop": lambda r: self.drop(cid=_opt_int(r, "cid"), port=_opt_int(r, "port")),
            "dcd-off": lambda r: self.dcd_off(cid=_opt_int(r, "cid"), port=_opt_int(r, "port")),
            "deactivate": lambda r: self.deactivate(int(r["cid"]), urc=str(r.get("urc", "NW PDN DEACT"))),
            "silence": lambda r: self.silence(cid=_opt_int(r, "cid"), port=_opt_int(r, "port"),
                                              seconds=_opt_float(r, "seconds"), on=not r.get("off", False)),
            "reboot": lambda r: self.reboot(seconds=_opt_float(r, "seconds")),
            "unplug": lambda r: self.unplug(float(r["seconds"])),
            "renegotiate": lambda r: self.renegotiate(cid=_opt_int(r, "cid"), port=_opt_int(r, "port"),
                                                      family=int(r.get("family", 6))),
            "ra": lambda r: self.ra(int(r["cid"]), prefix=r.get("prefix"), lifetime=_opt_int(r, "lifetime")),
            "radio-off": lambda r: self.radio_off(),
            "radio-on": lambda r: self.radio_on(),
            "status": lambda r: self.status(),
        }

    # -- plumbing ------------------------------------------------------------------------
    def _driver(self) -> ModuleDriver:
        driver = self.simulator.driver
        if driver is None:
            raise FaultError("the simulator is not started")
        return driver

    def _apply(self, fault: Callable[[Module, float], R]) -> R:
        driver = self._driver()
        driver.module.handle_timer(driver.now)  # what was due happens first
        result = fault(driver.module, driver.now)
        driver.wake()
        return result


def _opt_int(request: dict[str, Any], key: str) -> int | None:
    value = request.get(key)
    return None if value is None else int(value)


def _opt_float(request: dict[str, Any], key: str) -> float | None:
    value = request.get(key)
    return None if value is None else float(value)


class ControlServer:
    """The control socket of a simulator: a unix stream socket, one JSON request per line."""

    def __init__(self, control: SimControl, path: str) -> None:
        self.control = control
        self.path = path
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Listen at `path`; a socket left by a killed simulator is replaced, a live one is an error."""
        if os.path.exists(self.path):
            if _answers(self.path):
                raise PortError(f"another simulator answers on {self.path}: stop it or choose another --control")
            os.unlink(self.path)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=self.path, limit=MAX_REQUEST)
        except OSError as exc:
            raise PortError(f"cannot listen on {self.path} ({exc.strerror or exc}): choose another --control") from None
        os.chmod(self.path, 0o600)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    request = json.loads(line)
                except ValueError as exc:
                    answer: dict[str, Any] = {"ok": False, "error": f"bad request ({exc})"}
                else:
                    answer = (self.control.handle(request) if isinstance(request, dict)
                              else {"ok": False, "error": "bad request (not a JSON object)"})
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


def _answers(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def request(path: str, message: dict[str, Any], *, timeout: float = 5.0) -> dict[str, Any]:
    """Send one request to the control socket at `path` and return its answer (blocking)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except OSError as exc:
            raise PortError(f"no simulator answers on {path} ({exc.strerror or exc}): is `larappp sim` running?") from None
        sock.sendall(json.dumps(message).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    try:
        answer = json.loads(data)
    except ValueError:
        raise PortError(f"the simulator on {path} answered no JSON: {data[:80]!r}") from None
    if not isinstance(answer, dict):
        raise PortError(f"the simulator on {path} answered {answer!r}")
    return answer
