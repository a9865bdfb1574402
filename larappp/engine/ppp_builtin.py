"""The built-in PPP engine: a thin pump between the module's port (a Pipe), the sans-IO
PppLink (host role), a SlaacClient and a TUN interface. It makes no protocol decisions:
it feeds bytes, packets and time in, and carries out what comes out.

The data path costs per wakeup, not per packet, and wakes seldom: the port and the TUN
are read from the loop's own reader callbacks (no task, future or epoll_ctl per chunk), a
wakeup takes all the port and the TUN have queued, and what it framed for the port leaves
in one non-blocking write from the same callback (`_flush`; the writer task only takes
over while the port is full). After a wakeup that found little, both rest COALESCE_S
before they are read again, so a Cat 1 stream costs a few hundred wakeups a second, not
one per packet, for at most COALESCE_S more latency each way. Timers are one loop timer,
moved only when a deadline moves earlier.

Flow control: the uplink (TUN -> module) is paced by the kernel's tc on the TUN
(HostInterface.pace_uplink), so the host's queue is where packets wait and drop (app note
§4: the module drops what the radio cannot send, even with RTS/CTS). The engine keeps one
budget at the paced rate, checked once per write rather than per frame: behind tc it only
stops a backlog that piled up while the engine was starved of CPU from leaving in one
burst; where tc could not shape, it is the pacing. The engine's own queue is bounded in
octets (`UplinkQueue`: QUEUE_TIME at the paced rate) and in time (IP frames that could
not leave for MAX_WAIT are dropped and counted): the TUN is not read while it is full, so the kernel queues, not larappp.
Control frames (LCP, authentication, NCP) never wait behind IP frames: the link sends
them first, and IP frames leave in chunks, so at most one chunk is ahead of a control frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from larappp.engine.base import PppEngine, cancel_all, no_router_advertisement
from larappp.errors import LarapppError, PortClosed, PPPError
from larappp.proto.ipv6 import slaac
from larappp.proto.ppp import events as ev
from larappp.proto.ppp.config import LinkConfig
from larappp.proto.ppp.link import PppLink
from larappp.transport.shaping import BURST_TIME
from larappp.transport.tun import TUN_BATCH, Tun

log = logging.getLogger(__name__)

#: the engine's uplink queue, in time at the paced rate
QUEUE_TIME = 0.1
#: ...and in octets when the uplink is not paced
UNPACED_QUEUE_OCTETS = 64 * 1024
#: IP frames that could not leave for this long (the port stalled: CTS, a slow line) are dropped
MAX_WAIT = 1.0
#: a frame of the largest MRU, escaped in the worst case
_LARGEST_FRAME = 2 * 1500 + 16
#: after a wakeup that found little to carry, the port and the TUN rest this long: a Cat 1
#: stream (a packet every ~1 ms) then wakes the engine every few ms, not per packet, and a
#: packet waits at most this much longer (issue 10: < 100 ms added under load)
COALESCE_S = 0.004
#: a read of at least COALESCE_BELOW octets arriving faster than BULK_RATE shows a link
#: busier than rests allow (a pty holds about 18 kB: 4 ms of 36 Mbit/s): no rest for
#: BUSY_HOLD after it, so bulk downloads run at the pty's pace, not the rests'. The rate,
#: not the size alone, decides: a rest that ends late (a loaded host) finds more waiting.
COALESCE_BELOW = 8192
BULK_RATE = 3_000_000  # octets/s: 24 Mbit/s, twice the Cat 1 downlink
BUSY_HOLD = 0.05


@dataclass(frozen=True)
class UplinkQueue:
    """The engine's uplink bound: at most `limit` octets of IP frames queued for the port
    (plus one batch read from the TUN), taken `chunk` octets per write (what a control
    frame may wait behind); paced, at most `burst` octets back to back above the rate."""

    limit: int
    chunk: int
    burst: int

    @classmethod
    def for_rate(cls, kbit: int) -> UplinkQueue:
        """QUEUE_TIME at `kbit` kbit/s (0: not paced, UNPACED_QUEUE_OCTETS); never less
        than two frames, written a quarter at a time; the burst as the host's tbf allows
        (BURST_TIME at the rate, at least one frame), far below a module's small buffer."""
        limit = int(kbit * 1000 / 8 * QUEUE_TIME) if kbit > 0 else UNPACED_QUEUE_OCTETS
        limit = max(2 * _LARGEST_FRAME, limit)
        chunk = max(_LARGEST_FRAME, limit // 4)
        return cls(limit, chunk, min(chunk, max(_LARGEST_FRAME, int(kbit * 1000 / 8 * BURST_TIME))))


class BuiltinPppEngine(PppEngine):
    """Runs PPP over a dialled port and carries IP packets to and from a TUN interface."""

    def _setup(self) -> None:
        options, clock = self.options, self._clock
        answer = ("chap", "pap") if options.auth == "none" else (options.auth,)
        self.link = PppLink(
            "host",
            LinkConfig(
                mru=options.mru,
                username=options.username,
                password=options.password,
                answer_auth=answer,
                ipv4=4 in options.families,
                ipv6=6 in options.families,
                echo_interval=options.echo_interval,
                echo_failures=options.echo_failures,
            ),
            now=clock(),
        )
        self.slaac: slaac.SlaacClient | None = None
        self.tun: Tun | None = None
        #: why each expected family was given up (the NCP's own reason), for the error
        self._kick = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0
        self.uplink = UplinkQueue.for_rate(self.options.uplink_kbit)
        #: octets of the write in progress (taken from the link, not yet on the port)
        self._writing = 0
        #: what a non-blocking write left over (the port was full): the writer task sends it
        self._unsent = b""
        #: while the writer task holds the port (a write the port did not take at once)
        self._writer_busy = False
        #: the paced rate in octets/s (0: not paced) and the octets it allows now, refilled
        #: once per write, not per frame: where tc paces, what piled up while the engine was
        #: starved of CPU still leaves at the rate, not in one burst; where tc could not,
        #: this is the pacing. It holds one rest's worth at the rate (the engine writes
        #: once a rest) and the tbf burst (`UplinkQueue.burst`) above that, no more.
        self._rate = self.options.uplink_kbit * 1000 / 8
        self._burst = self.uplink.burst + self._rate * COALESCE_S
        self._tokens = self._burst
        self._tokens_at = self._clock()
        #: while IP frames wait for the rate to allow them: the flush that sends them
        self._paced: asyncio.TimerHandle | None = None
        #: while the TUN is not read because the queue is full: the MAX_WAIT timer
        self._stalled: asyncio.TimerHandle | None = None
        #: while the port and the TUN rest after a wakeup that found little (COALESCE_S)
        self._resting: asyncio.TimerHandle | None = None
        #: while a rest's end delivers what waited: one write to the port for all of it
        self._holding_writes = False
        #: no rest before this (BUSY_HOLD after a bulk read of the port)
        self._busy_until = 0.0
        #: when the port's previous delivery came (the rate of the next one)
        self._port_read_at = 0.0
        #: the TUN rests too only where the uplink is paced: its rate is bounded then, and
        #: tc hands packets over one at a time. Unpaced, TCP's small-queue limit keeps a
        #: bulk upload's packets few per wakeup, so resting the TUN would throttle it.
        self._tun_rests = self.options.uplink_kbit > 0
        #: the host queue's counters (tc), refreshed while the session runs
        self._host_queue: dict[str, int] = {}
        self._actions: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        #: the callback pumps still running (the task pumps are in _tasks)
        self._callbacks: set[str] = set()
        self._attached = False
        #: received packets the TUN refused (not IP, or the interface not up yet)
        self.tun_write_errors = 0

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Take the pipe, create the TUN, and start negotiating."""
        self.pipe.attach(self.OWNER)
        self._attached = True
        self.tun = Tun.open(self.options.ifname, mtu=self.options.mru)
        await self.host.open()
        await self.host.prepare(ipv6=6 in self.options.families)
        self._callbacks = {"serial-in", "tun-in", "timers"}
        self.link.open(self._clock())
        if self._leftover:
            self.link.receive_data(self._leftover, self._clock())
            self._leftover = b""
        self._process_events()
        self.pipe.start_reading(self._serial_data, self._port_closed)
        self._watch_carrier()
        self.tun.start_reading(self._tun_packets, self._tun_failed)
        pumps = [(self._writer(), "serial-out"), (self._configurator(), "configure")]
        if self.options.uplink_kbit > 0:
            pumps.append((self._queue_watch(), "queue-stats"))
        for coro, name in pumps:
            task = asyncio.create_task(coro, name=f"ppp {self.options.ifname} {name}")
            task.add_done_callback(self._task_ended)
            self._tasks.append(task)
        self._kick.set()

    def _progress_text(self) -> str:
        return f"LCP phase {self.link.phase.value}"

    @property
    def terminate_acknowledged(self) -> bool:
        """The module answered our LCP Terminate-Request: it leaves data mode on its own."""
        return self.link.lcp.terminate_acknowledged

    async def terminate(self, timeout: float = 6.0) -> None:
        """Send LCP Terminate-Request and wait for the link to finish (app note §4.2)."""
        if not self.terminated.is_set():
            self.link.close(self._clock(), "larappp down")
            self._process_events()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.terminated.wait(), timeout)
        # Let the writer flush the last Terminate-Ack / Request before the pipe changes hands.
        await asyncio.sleep(0.05)

    async def stop(self) -> list[str]:
        """Stop pumping, undo the host configuration, remove the TUN, give the pipe back."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None
        for handle in (self._resting, self._paced):
            if handle is not None:
                handle.cancel()
        self._resting = self._paced = None
        self.pipe.unwatch_carrier()
        await self.pipe.stop_reading()
        if self.tun is not None:
            self.tun.stop_reading()
        await cancel_all(self._tasks)
        failures = await self.host.close()
        if self.tun is not None:
            self.tun.close()
            self.tun = None
        if self._attached:
            self.pipe.release(self.OWNER)
            self._attached = False
        return failures

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        """A pump that dies of an unforeseen error ends the session instead of stalling it."""
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        assert exc is not None
        log.error("%s failed", task.get_name(), exc_info=exc)
        self._finish(f"larappp's {task.get_name()} pump failed: {type(exc).__name__}: {exc}")

    def _pump_failed(self, pump: str, exc: BaseException) -> None:
        """A callback pump that met an unforeseen error stops and ends the session."""
        self._callbacks.discard(pump)
        name = f"ppp {self.options.ifname} {pump}"
        log.error("%s failed", name, exc_info=exc)
        self._finish(f"larappp's {name} pump failed: {type(exc).__name__}: {exc}")

    def running_pumps(self) -> set[str]:
        """The pumps still running: serial-in, tun-in, timers, serial-out, configure."""
        prefix = f"ppp {self.options.ifname} "
        tasks = {task.get_name().removeprefix(prefix) for task in self._tasks if not task.done()}
        return tasks | self._callbacks

    def status(self) -> dict[str, object]:
        stats = self.link.stats
        return {
            **self.host.state.to_json(),
            "families_up": sorted(self.families_up),
            "phase": self.link.phase.value,
            "packets_in": stats.packets_received,
            "packets_out": stats.packets_sent,
            "bad_frames": stats.bad_frames,
            "tun_write_errors": self.tun_write_errors,
            "uplink": {
                "paced_kbit": self.options.uplink_kbit,
                # who paces: the kernel's tc on the interface, the engine itself where tc
                # could not, or nobody (pacing off)
                "paced_by": self._paced_by,
                "host_queue": self._host_queue,
                "engine_queue_limit": self.uplink.limit,
                "engine_queued": self._backlog(),
                # the module holding the port with CTS (RFC 2217 with RTS/CTS: cts_off_s, cts_offs)
                "port_flow": self.pipe.flow_counters(),
            },
            # every place a packet can be lost on its way, counted
            "drops": {
                "host_queue": self._host_queue.get("dropped", 0),  # the kernel's tc on the interface
                "engine_queue": stats.queue_dropped,  # IP frames that waited MAX_WAIT for the port
                "ncp_not_open": stats.packets_dropped,  # IP for a family whose NCP is not open
                "bad_frames": stats.bad_frames,  # FCS errors and malformed frames from the module
                "tun_refused": self.tun_write_errors,  # received packets the kernel refused
            },
        }

    # -- pumps ---------------------------------------------------------------------------
    def _serial_data(self, data: bytes) -> None:
        """All the port had (called by the loop's reader): every frame in it at once."""
        if "serial-in" not in self._callbacks:
            return
        try:
            now = self._clock()
            self.link.receive_data(data, now)
            self._process_events()
            if len(data) >= COALESCE_BELOW and len(data) > BULK_RATE * (now - self._port_read_at):
                self._busy_until = now + BUSY_HOLD
            self._port_read_at = now
            self._rest()
        except Exception as exc:  # noqa: BLE001 - a callback's error would only reach the loop's log
            self._pump_failed("serial-in", exc)

    def _port_closed(self, exc: PortClosed) -> None:
        self._callbacks.discard("serial-in")
        self._finish(f"the module's port closed ({exc})")

    def _tun_packets(self, packets: list[bytes]) -> None:
        """Packets from the TUN (all it had queued): framed and written at once."""
        try:
            link, queued = self.link, 0
            for packet in packets:
                family = packet[0] >> 4 if packet else 0
                if (family == 4 or family == 6) and link.send_packet(family, packet):
                    queued += 1
            if queued:
                self._flush()
                if self._backlog() >= self.uplink.limit and self.tun is not None and self._stalled is None:
                    # Full: leave packets in the kernel's queue until the port takes some.
                    self.tun.pause_reading()
                    self._stalled = asyncio.get_running_loop().call_later(MAX_WAIT, self._queue_stalled)
            if self._tun_rests and len(packets) < TUN_BATCH:
                self._rest()
        except Exception as exc:  # noqa: BLE001 - a callback's error would only reach the loop's log
            self._pump_failed("tun-in", exc)

    def _tun_failed(self, exc: OSError) -> None:
        self._pump_failed("tun-in", exc)

    def _backlog(self) -> int:
        """Octets of IP frames between the TUN and the port: queued in the link and being written."""
        return self.link.queued_data_octets + self._writing

    def _rest(self) -> None:
        """Unless either is busy, read neither the port nor the TUN for COALESCE_S: what
        arrives meanwhile waits in the kernel and is taken by one wakeup."""
        if self._resting is not None or self._clock() < self._busy_until:
            return
        self.pipe.pause_reading()
        if self.tun is not None and self._tun_rests:
            self.tun.pause_reading()
        self._resting = asyncio.get_running_loop().call_later(COALESCE_S, self._rested)

    def _rested(self) -> None:
        """The rest is over: take what waited in the port and the TUN now (no loop round
        trip, one write for both). A stream that is still small rests again at once
        without the readers ever being registered; otherwise the readers wait again."""
        self._resting = None
        tun = self.tun if self._stalled is None and self._tun_rests else None
        self._holding_writes = True
        try:
            self.pipe.deliver_waiting()
            if tun is not None:
                tun.deliver_waiting()
        finally:
            self._holding_writes = False
        self._flush()
        if self._resting is None:  # nothing came, or a lot: back to the loop's readers
            self.pipe.resume_reading()
            if tun is not None and self._stalled is None:
                tun.resume_reading()

    @property
    def _paced_by(self) -> str:
        """Who paces the uplink: the kernel's tc on the interface, the engine alone where tc
        could not (not set up yet, or refused), or nobody (pacing off)."""
        if not self._rate:
            return "off"
        return "tc" if self.host.shaper.bucket is not None else "engine"

    def _take(self) -> bytes:
        """What goes to the port now: the control frames, and the IP frames the paced rate
        allows (at least one frame once any is allowed; the debt is paid before the next)."""
        link = self.link
        rate = self._rate
        if not rate:
            return link.data_to_send(self.uplink.chunk)
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now
        if self._tokens < 1.0 and not link.has_control_to_send:
            # the end of a rest flushes anyway: no timer of its own then
            if link.has_data_to_send and self._paced is None and self._resting is None:
                self._paced = asyncio.get_running_loop().call_later((1.0 - self._tokens) / rate, self._pace_due)
            return b""
        data = link.data_to_send(max(int(self._tokens), 1))
        self._tokens -= len(data)
        return data

    def _pace_due(self) -> None:
        self._paced = None
        self._flush()

    def _flush(self) -> None:
        """Write what the link has for the port now, without waiting, while the port takes
        it; the writer task takes over when the port is full or writes only by awaiting."""
        if self._holding_writes:
            return  # _rested flushes once for everything it delivered
        if self._writer_busy or self._unsent:
            self._kick.set()
            return
        try:
            while data := self._take():
                written = self.pipe.try_write(data)
                if written is None or written < len(data):
                    self._unsent = data[written or 0 :]
                    self._writing = len(self._unsent)
                    self._kick.set()
                    return
        except PortClosed as exc:
            self._finish(f"the module's port closed ({exc})")
            return
        if self._stalled is not None and self._backlog() < self.uplink.limit:
            self._resume_tun()

    def _resume_tun(self) -> None:
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None
            if self.tun is not None:
                self.tun.resume_reading()

    def _queue_stalled(self) -> None:
        """The port took nothing for MAX_WAIT: what waits is stale, drop it (counted)."""
        self._stalled = None
        dropped = self.link.drop_queued_data()
        log.debug("%s: the port took nothing for %.1f s: %d queued IP frames dropped",
                  self.options.ifname, MAX_WAIT, dropped)
        if self.tun is not None:
            self.tun.resume_reading()

    async def _writer(self) -> None:
        """Writes what `_flush` could not: the rest of a write the port did not take at
        once, and every write where the pipe cannot write without waiting."""
        while True:
            await self._kick.wait()
            self._kick.clear()
            self._writer_busy = True
            try:
                # Control frames queued during a write go first in the next one (PppLink).
                while data := self._unsent or self._take():
                    self._unsent = b""
                    self._writing = len(data)
                    try:
                        await self.pipe.write(data)
                    except PortClosed as exc:
                        self._finish(f"the module's port closed ({exc})")
                        return
                    finally:
                        self._writing = 0
                    if self._backlog() < self.uplink.limit:
                        self._resume_tun()
            finally:
                self._writer_busy = False

    async def _queue_watch(self) -> None:
        """Keeps the host queue's counters (tc) for status(); they need a netlink call."""
        while True:
            try:
                self._host_queue = await self.host.shaper.counters()
            except (OSError, LarapppError) as exc:  # the counters wait for the next round
                log.debug("%s: reading the host queue's counters failed: %s", self.options.ifname, exc)
            await asyncio.sleep(1.0)

    def _schedule_timer(self) -> None:
        """Keep one loop timer at the earliest deadline (at most 1 s away); moved only earlier."""
        if "timers" not in self._callbacks:
            return
        now = self._clock()
        due = now + 1.0
        for deadline in (self.link.get_timer(), self.slaac.get_timer() if self.slaac else None):
            if deadline is not None and deadline < due:
                due = deadline
        if self._timer is not None:
            if self._timer_due <= due:
                return
            self._timer.cancel()
        self._timer_due = due
        self._timer = asyncio.get_running_loop().call_later(max(due - now, 0.0), self._timer_fired)

    def _timer_fired(self) -> None:
        self._timer = None
        try:
            now = self._clock()
            self.link.handle_timer(now)
            if self.slaac is not None:
                self.slaac.handle_timer(now)
            self._process_events()
        except Exception as exc:  # noqa: BLE001 - a callback's error would only reach the loop's log
            self._pump_failed("timers", exc)

    async def _configurator(self) -> None:
        """Applies host configuration in order (netlink calls are async, events are not)."""
        while True:
            kind, value = await self._actions.get()
            try:
                await self._apply(kind, value)
            except LarapppError as exc:
                self._fail(exc)
            except OSError as exc:
                self._fail(PPPError(f"configuring {self.options.ifname} failed: {exc}"))

    # -- events --------------------------------------------------------------------------
    def _process_events(self) -> None:
        # Only control traffic moves a deadline earlier (every timer starts with a control
        # frame sent or an event): a wakeup that carried IP packets alone leaves it be.
        control = False
        while (event := self.link.next_event()) is not None:
            if isinstance(event, ev.PacketReceived):
                control |= self._deliver(event.family, event.packet)
                continue
            control = True
            if isinstance(event, ev.LinkOpened):
                self._actions.put_nowait(("link-up", event.remote_mru))
            elif isinstance(event, ev.IpcpOpened):
                self._actions.put_nowait(("ipv4", event))
            elif isinstance(event, ev.Ipv6cpOpened):
                self._actions.put_nowait(("ipv6", event))
                self._start_slaac(event.local_iid)
            elif isinstance(event, (ev.NetworkProtocolClosed, ev.ProtocolRejected)):
                name = (event.protocol if isinstance(event, ev.NetworkProtocolClosed) else event.name).upper()
                family = 6 if "IPV6" in name else 4 if "IPCP" in name else 0
                self._note(f"{self.options.ifname}: {ev.describe(event)}")
                if family in self.families_up and not self.link.terminated:
                    # This family alone went down (renegotiated, or closed by the network):
                    # nothing of it may stay on the host; it is set again when it reopens.
                    self.families_up.discard(family)
                    if family == 6:
                        self.slaac = None
                    self._actions.put_nowait(("withdraw", family))
                elif family in self.families_expected and family not in self.families_up:
                    if isinstance(event, ev.ProtocolRejected):
                        # The network does not offer this family (IPV6CP rejected on IPv4-only).
                        self.families_expected.discard(family)
                        self._families_dropped.append(f"the peer Protocol-Rejected {event.name}")
                        self._check_up()
                    else:
                        # Offered but never agreed: the session is up only with every
                        # configured family usable.
                        self._fail(PPPError(
                            f"PPP on {self.options.ifname} did not open {event.protocol} ({event.reason}): "
                            "check the APN and the PDP type"
                        ))
            elif isinstance(event, (ev.LinkTerminated, ev.EchoTimedOut)):
                self._note(f"{self.options.ifname}: {ev.describe(event)}")
                if isinstance(event, ev.LinkTerminated):
                    self.lost = event.lost
                    self._finish(event.reason)
            elif isinstance(event, ev.AuthFailed):
                # The user name counts as a secret in logs: never print the event itself.
                self._note(f"{self.options.ifname}: {ev.describe(event)}")
                self._fail(PPPError(f"PPP authentication ({event.method}) failed: {event.reason}: check user and password"))
            elif isinstance(event, ev.AuthSucceeded):
                self._note(f"{self.options.ifname}: {ev.describe(event)}")
            else:
                self._note(f"{self.options.ifname}: {ev.describe(event)}")
        if self.slaac is not None:
            for packet in self.slaac.packets_to_send():
                control = True
                self.link.send_packet(6, packet)
            while (sev := self.slaac.next_event()) is not None:
                control = True
                if isinstance(sev, slaac.RaTimedOut):
                    self._fail(no_router_advertisement(self.options.ifname, sev.reason))
                else:
                    self._actions.put_nowait(("slaac", sev))
        if self.link.has_control_to_send:
            control = True
        if self.link.has_data_to_send:
            self._flush()
        if control or self._timer is None:
            self._schedule_timer()

    def _start_slaac(self, local_iid: bytes) -> None:
        """Router discovery from the moment IPV6CP opens, while the link-local address is
        still being added: the RS leaves now and an RA the network sends unasked at once is
        not lost (its events queue behind the link-local address)."""
        now = self._clock()
        # The host's global address uses its own IID, not the module's (app note §4.1.2).
        # Only the network sends RAs on a PPP link: its lifetimes hold, even short ones.
        self.slaac = slaac.SlaacClient(
            local_iid, now, rs_interval=self.options.rs_interval,
            max_mtu=self.options.mru, two_hour_rule=False,
        )
        self.slaac.start(now)
        self.slaac.handle_timer(now)

    def _deliver(self, family: int, packet: bytes) -> bool:
        """Hand a received packet to the kernel (or an RA to SLAAC: True)."""
        if family == 6 and self.slaac is not None and slaac.is_router_advertisement(packet):
            self.slaac.receive_packet(packet, self._clock())
            return True
        if self.tun is not None:
            try:
                self.tun.write_packet(packet)  # a full TUN queue drops, as a NIC would
            except OSError as exc:
                # The kernel refuses a payload that is no IP packet (EINVAL) and packets
                # arriving before the interface is up (EIO): drop it, keep the link.
                self.tun_write_errors += 1
                log.debug("%s: the kernel refused a received IPv%d packet: %s", self.options.ifname, family, exc)
        return False

    async def _apply(self, kind: str, value: Any) -> None:
        if kind == "withdraw":
            failures = await self.host.withdraw(value)
            self._note(f"{self.options.ifname}: IPv{value} withdrawn from the host"
                       + (f" (not undone: {'; '.join(failures)})" if failures else ""))
        elif kind == "link-up":
            mtu = min(int(value), self.options.mru) if value else None
            await self.host.link_up(mtu)
            await self.host.pace_uplink(self.options.uplink_kbit, mtu or self.options.mru)
        elif kind == "ipv4":
            await self.host.apply_ipv4(value.local, value.peer, value.dns)
            self._note(f"{self.options.ifname}: IPv4 {value.local} peer {value.peer} DNS {', '.join(map(str, value.dns))}")
            self._family_up(4)
        elif kind == "ipv6":
            await self.host.apply_ipv6_link_local(value.local_iid)
        elif kind == "slaac":
            line = await self.host.apply_slaac(value, self._clock())
            if line:
                self._note(line)
            if isinstance(value, slaac.AddressConfigured):
                self._family_up(6)
