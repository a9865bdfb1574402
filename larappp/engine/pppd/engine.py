"""`PppdEngine`: pppd on the dialled port, the host configured by larappp.

Where the port is a tty larappp opened (a serial device or a pty: `Pipe.tty_fd()`),
pppd gets that tty itself as its stdin: the kernel's async PPP frames, RTS/CTS is the
kernel's, and larappp leaves the data path. Elsewhere (RFC 2217, later CMUX) pppd gets
a pty bridged to the pipe (`bridge.py`). That is the one place the choice is made
(`owns_device`).

The end: `terminate()` sends pppd SIGTERM, on which it sends LCP Terminate-Request and
exits 5 once the module acked (app note §4.2). `stop()` of a pppd still running ends it
without a Terminate exchange (the escape, ATH and DTR teardowns follow): on the bridge
by hanging the pty up (pppd: "Modem hangup", exit 16), on the device by SIGKILL (a
hang-up there would drop DTR); either way the tty is then made larappp's again
(`transport.ttylend.reclaim`: a killed pppd leaves its line discipline on it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

import psutil

from larappp.engine.base import PppEngine, cancel_all
from larappp.engine.pppd.bridge import PtyBridge
from larappp.engine.pppd.observe import InterfaceObserver
from larappp.engine.pppd.options import BRIDGED, Line, PppdFolder
from larappp.engine.pppd.process import PppdProcess, describe_exit
from larappp.errors import LarapppError, PortClosed, PPPError
from larappp.transport import ttylend
from larappp.transport.pipe import Pipe
from larappp.transport.ptypair import PtyPair

__all__ = ["PppdEngine", "owns_device"]

log = logging.getLogger(__name__)

#: how often status()'s uplink queue counters are read
HOST_QUEUE_POLL_S = 1.0
#: pppd's log line for an Echo-Reply carrying its own magic number (lcp.c): the line loops its
#: frames back, as a module in command mode with echo on does after NO CARRIER on a line
#: without DCD; an echo failure after it is a looped-back line, not a silent one in data mode
OWN_ECHO_REPLY = "appear to have received our own echo-reply"


def owns_device(pipe: Pipe) -> bool:
    """Whether pppd takes the dialled device itself (a serial device or pty larappp opened),
    rather than a pty bridged to the pipe (RFC 2217, an in-memory pair, later CMUX)."""
    return pipe.tty_fd() is not None


class PppdEngine(PppEngine):
    """Runs Debian's pppd over a dialled port (through a pty bridge) and configures the host."""

    def _setup(self) -> None:
        options, clock = self.options, self._clock
        self.folder = PppdFolder(options.runtime_dir, options.ifname)
        self.pppd = PppdProcess(options.ifname, path=options.pppd.path, secrets=options.secrets())
        self.observer = InterfaceObserver(
            self.host, options, self.folder, clock=clock, note=self._note, family_up=self._family_up,
        )
        self.pty: PtyPair | None = None
        self.bridge: PtyBridge | None = None
        #: the dialled tty while pppd has it (None on the bridge)
        self.lent: ttylend.LentTty | None = None
        #: the tty pppd runs on: the module's device, or the bridge's pty
        self.device: str | None = None
        self.exit_status: int | None = None
        self._ending_requested = False
        self._tasks: list[asyncio.Task[None]] = []
        self._attached = False
        #: the uplink queue's counters (tc), read every HOST_QUEUE_POLL_S
        self._host_queue: dict[str, int] = {}

    @property
    def isolated(self) -> bool | None:
        """Whether pppd runs with larappp's private /etc/ppp (None until started)."""
        return self.pppd.isolated

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Take the pipe, write the runtime folder, start pppd on a pty bridged to the pipe."""
        self.pppd.check_installed()
        self.pipe.attach(self.OWNER)
        self._attached = True
        ifname = self.options.ifname
        try:
            await self.host.open()
            if await self.host.netlink.link(ifname) is not None:
                raise PPPError(
                    f"interface {ifname} exists already (another larappp or pppd?): "
                    "stop it or give the session another ifname"
                )
            line = self._take_line()
            try:
                binds = self.folder.write(self.options, line=line, debug=log.isEnabledFor(logging.DEBUG))
            except OSError as exc:
                raise PPPError(f"cannot prepare pppd's runtime folder {self.folder.path}: {exc}") from None
            assert self.device is not None
            await self.pppd.start(
                self.device, self.folder, binds, isolate=self.options.pppd.isolate,
                tty_fd=self.lent.fd if self.lent is not None else None,
            )
        except OSError as exc:
            await self.stop()
            raise PPPError(f"cannot start pppd for {ifname}: {exc}") from None
        except BaseException:
            await self.stop()
            raise
        how = "owns" if self.lent is not None else "bridged to"
        self._note(f"{ifname}: pppd {self.pppd.pid} started on {self.device} ({how} {self.pipe.name})"
                   + ("" if self.isolated else " (with the host's /etc/ppp)"))
        name = f"pppd {ifname}"
        if self.pty is not None:
            self.bridge = PtyBridge(
                self.pipe, self.pty, leftover=self._leftover, on_port_lost=self._port_lost,
                on_left_data_mode=self._left_data_mode,
            )
            self.bridge.start(name)
        elif self._leftover:
            # The module's first frames, read with CONNECT, cannot be handed to pppd's line
            # discipline: its LCP restart timer resends them (RFC 1661 §4.6).
            log.debug("%s: %d octets after CONNECT left to the module's LCP retransmission", ifname, len(self._leftover))
        self._leftover = b""
        self._watch_carrier()
        self._tasks = [
            asyncio.create_task(self._watch_process(), name=f"{name} exit"),
            asyncio.create_task(self._observe(), name=f"{name} observe"),
        ]
        if self.options.uplink_kbit > 0:
            self._tasks.append(asyncio.create_task(self._count_host_queue(), name=f"{name} queue-stats"))

    def _take_line(self) -> Line:
        """pppd's way to the module: the dialled tty itself where larappp holds one, else a pty."""
        if owns_device(self.pipe):
            fd = self.pipe.tty_fd()
            assert fd is not None
            self.lent = ttylend.lend(fd)
            try:
                self.device = os.ttyname(fd)
            except OSError:
                self.device = self.pipe.name
            return Line(owns_device=True, rtscts=self.lent.rtscts)
        self.pty = PtyPair.open()
        self.device = self.pty.slave_path
        return BRIDGED

    def _give_back_device(self) -> list[str]:
        """After pppd's exit: the tty larappp's again (line discipline, termios, exclusive)."""
        lent, self.lent = self.lent, None
        return ttylend.reclaim(lent) if lent is not None else []

    def _progress_text(self) -> str:
        return f"pppd {self._phase()}"

    async def terminate(self, timeout: float = 6.0) -> None:
        """Have pppd send LCP Terminate-Request (SIGTERM) and wait for it to end (app note §4.2)."""
        if self.pppd.running and not self.terminated.is_set():
            self._ending_requested = True
            self.pppd.signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exited(), timeout)

    async def stop(self) -> list[str]:
        """End pppd if it still runs, undo the host configuration, remove the runtime folder,
        give the pipe back; returns what could not be undone."""
        failures: list[str] = []
        self._ending_requested = True
        self.pipe.unwatch_carrier()
        if self.pppd.running and self.pty is not None:
            # A hang-up ends pppd at once, without a Terminate exchange (escape/ATH/DTR teardowns).
            self.pty.hang_up()
        await self.pppd.end(failures, hung_up=self.lent is None)
        failures += self._give_back_device()
        if self.bridge is not None:
            await self.bridge.stop()
            self.bridge = None
        await cancel_all(self._tasks)
        self.observer.close()
        failures += await self.host.close()
        if self.pty is not None:
            self.pty.close()
            self.pty = None
        failures += self.folder.remove()
        if self._attached:
            self.pipe.release(self.OWNER)
            self._attached = False
        self._finish("larappp stopped the session")
        return failures

    def status(self) -> dict[str, object]:
        counters = psutil.net_io_counters(pernic=True).get(self.options.ifname)
        return {
            **self.host.state.to_json(),
            "backend": "pppd",
            # "device": pppd owns the module's tty, larappp is off the data path; "pty bridge"
            "data_path": "device" if self.pty is None and self.device is not None else "pty bridge",
            "tty": self.device,
            "uplink": {
                "paced_kbit": self.options.uplink_kbit if self.host.shaper.bucket is not None else 0,
                "host_queue": self._host_queue,
            },
            # where a packet can be lost on the host's side (pppd keeps its own frame counters)
            "drops": {"host_queue": self._host_queue.get("dropped", 0)},
            "families_up": sorted(self.families_up),
            "phase": self._phase(),
            "pid": self.pppd.pid,
            "exit_status": self.exit_status,
            "packets_in": counters.packets_recv if counters else 0,
            "packets_out": counters.packets_sent if counters else 0,
            "bad_frames": counters.errin if counters else 0,
        }

    def _phase(self) -> str:
        if self.pppd.process is None:
            return "not started"
        if self.exit_status is not None:
            return f"exited ({self.exit_status})"
        if self._up.is_set():
            return "up"
        if self.bridge is None:
            return "negotiating"  # pppd owns the device: it speaks from its start
        return "negotiating" if self.bridge.pppd_spoke.is_set() else "starting"

    # -- ending ----------------------------------------------------------------------------
    async def _exited(self) -> None:
        while self.exit_status is None:
            await asyncio.sleep(0.02)

    def _port_lost(self, exc: PortClosed) -> None:
        self._finish(f"the module's port closed ({exc})")

    def _left_data_mode(self, result: str) -> None:
        self._note(f"{self.options.ifname}: the module sent {result} between the PPP frames")
        if not self._ending_requested:  # a NO CARRIER after our own Terminate is expected
            self.lost = "left-data-mode"
            self._finish(f"the module left data mode: it sent {result} between the PPP frames")

    async def _watch_process(self) -> None:
        bridge = self.bridge
        status = await self.pppd.wait()
        if bridge is not None:
            bridge.stop_reading_port()
            await bridge.forward_last_frames()
        for failure in self._give_back_device():
            log.warning("%s: %s", self.options.ifname, failure)
        self.exit_status = status
        if not self._ending_requested:
            self.lost = self._lost_by_exit(status)
        if self._ending_requested and status in (0, 5, 16):
            reason = f"larappp ended the link (pppd exited with status {status})"
        elif self.lost == "looped-back" and status == 15:
            reason = (f"pppd's LCP Echo-Requests came back to it (exit status {status}): the module left "
                      "data mode, its NO CARRIER unseen on a line without DCD")
        else:
            reason = describe_exit(status, self.pppd.last_line)
        self._note(f"{self.options.ifname}: {reason}")
        if status == 19:
            self._fail(PPPError(f"PPP on {self.options.ifname}: {reason}"))
        self._finish(reason)

    def _lost_by_exit(self, status: int) -> str | None:
        """How the link was lost (proto.ppp.events.LOST_CAUSES) by pppd's exit status, where
        that says it: 17 the module looped pppd's frames back (command mode), as does 15 after
        pppd saw its own Echo-Replies; otherwise 15 it stopped answering echoes, still in data
        mode only on the bridge, which would have seen a NO CARRIER (on the device, pppd's line
        discipline swallows it: the state is unknown)."""
        if status == 17 or (status == 15 and any(OWN_ECHO_REPLY in line for line in self.pppd.log_tail)):
            return "looped-back"
        if status == 15 and self.bridge is not None:
            return "echo-timeout"
        return None

    async def _count_host_queue(self) -> None:
        """The pacing qdisc's counters for status() (a netlink call, so not in status itself)."""
        while True:
            await asyncio.sleep(HOST_QUEUE_POLL_S)
            try:
                self._host_queue = await self.host.shaper.counters()
            except (OSError, LarapppError) as exc:
                log.debug("%s: no uplink queue counters this round: %s", self.options.ifname, exc)

    # -- what came up ----------------------------------------------------------------------------
    async def _observe(self) -> None:
        try:
            await self.observer.run()
        except LarapppError as exc:
            if self.exit_status is None and not self.terminated.is_set():
                self._fail(exc)
        except OSError as exc:
            if self.exit_status is None and not self.terminated.is_set():
                self._fail(PPPError(f"configuring {self.options.ifname} failed: {exc}"))
