"""The AT runner: a thin asyncio pump between a Pipe and the sans-IO `AtClient`.

It reads the pipe, feeds the core, hands the core's events to whoever waits for them
and makes no protocol decision of its own. One reader task owns the pipe's reads while
the runner holds the pipe; after CONNECT it stops reading and releases the pipe, so the
PPP engine can attach it (STYLE.md §2), and `resume()` takes it back after hang-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from larappp.errors import ModemError, ModemTimeout, PortClosed, PortError
from larappp.proto.at.chat import ChatScript, ChatStep, check_step
from larappp.proto.at.core import (
    AtClient,
    CommandTimedOut,
    FinalResult,
    LineReceived,
    ResponseReceived,
    UrcReceived,
    connect_text,
    describe_final,
    hint_for,
)
from larappp.proto.at.masking import mask
from larappp.transport.pipe import Pipe

#: Unclaimed URCs kept for `wait_urc`; the oldest go first beyond this.
URC_BACKLOG = 1024

#: How long a command may take when neither the caller nor the runner's table says.
DEFAULT_COMMAND_TIMEOUT_S = 10.0


def _no_table(_command: str) -> float | None:
    return None


@dataclass(frozen=True)
class DialResult:
    """A dial that reached CONNECT: the text after CONNECT and the bytes that followed it."""

    text: str
    leftover: bytes


class AtCommandError(ModemError):
    """The module answered a command with ERROR, +CME ERROR, NO CARRIER or another failure."""

    def __init__(
        self,
        command: str,
        final: FinalResult,
        lines: tuple[str, ...] = (),
        *,
        reason: str | None = None,
        secrets: Sequence[str] = (),
    ) -> None:
        if reason is None:
            reason = describe_final(final)
            hint = hint_for(final)
            if hint:
                reason = f"{reason}: {hint}"
        super().__init__(mask(f"{command} failed: {reason}", secrets))
        self.command = command
        self.final = final
        self.lines = lines


class UrcSubscription:
    """The URCs a subscriber asked for, oldest first, until it closes or the port goes.

    `get()` waits for the next one; once the runner stops or its port vanishes, every
    later `get()` raises that PortError (after the URCs that came before it).
    """

    def __init__(self, names: frozenset[str] | None, on_close: Callable[[UrcSubscription], None]) -> None:
        self.names = names
        self._queue: asyncio.Queue[UrcReceived | PortError] = asyncio.Queue()
        self._on_close = on_close
        self._end: PortError | None = None

    def wants(self, urc: UrcReceived) -> bool:
        return self.names is None or urc.name in self.names

    def put(self, urc: UrcReceived) -> None:
        self._queue.put_nowait(urc)

    def end(self, error: PortError) -> None:
        """No URC will come any more: `get()` raises `error` once the queue is empty."""
        self._queue.put_nowait(error)

    async def get(self) -> UrcReceived:
        if self._end is not None:
            raise self._end
        return self._unwrap(await self._queue.get())

    def get_nowait(self) -> UrcReceived:
        """The next URC already received; asyncio.QueueEmpty when there is none."""
        if self._end is not None:
            raise self._end
        return self._unwrap(self._queue.get_nowait())

    def empty(self) -> bool:
        return self._queue.empty()

    def close(self) -> None:
        """Stop receiving URCs (safe to call twice)."""
        self._on_close(self)

    def __aiter__(self) -> UrcSubscription:
        return self

    async def __anext__(self) -> UrcReceived:
        try:
            return await self.get()
        except PortError:
            raise StopAsyncIteration from None

    def _unwrap(self, item: UrcReceived | PortError) -> UrcReceived:
        if isinstance(item, PortError):
            self._end = item
            raise item
        return item


class AtRunner:
    """Runs AT commands, dials and chat scripts over a Pipe; delivers every URC to subscribers.

    A command without an explicit timeout gets `timeouts(command)`, the module's table of
    how long each command may take (for LARA-R6, `lara_r6.rules.command_timeout`), or
    `default_timeout` for a command the table does not list.
    """

    OWNER = "at"

    def __init__(
        self,
        pipe: Pipe,
        *,
        clock: Callable[[], float] = time.monotonic,
        trace: Callable[[str], None] | None = None,
        secrets: Sequence[str] = (),
        timeouts: Callable[[str], float | None] = _no_table,
        default_timeout: float = DEFAULT_COMMAND_TIMEOUT_S,
    ) -> None:
        self._pipe = pipe
        self._clock = clock
        self._timeouts = timeouts
        self._default_timeout = default_timeout
        self._trace_sink = trace
        self._secrets = tuple(s for s in secrets if s)
        self._client = AtClient(report_lines=True)
        self._reader: asyncio.Task[None] | None = None
        self._attached = False
        self._lock = asyncio.Lock()
        self._pending: asyncio.Future[ResponseReceived | CommandTimedOut] | None = None
        self._pending_command = ""
        self._port_error: PortError | None = None
        self._subscribers: list[UrcSubscription] = []
        # After data mode the module's command line may hold PPP bytes: the next command
        # starts with a lone CR, which ends that line (no "AT" prefix: the module ignores it).
        self._clean_line_first = False
        self._waiters: list[tuple[Callable[[UrcReceived], bool], asyncio.Future[UrcReceived]]] = []
        self._ticks: set[asyncio.Future[None]] = set()
        self._backlog: deque[UrcReceived] = deque()

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def pipe(self) -> Pipe:
        return self._pipe

    @property
    def running(self) -> bool:
        """True while the runner holds the pipe and reads it."""
        return self._reader is not None and not self._reader.done()

    async def start(self) -> None:
        """Take the pipe (already open) and start reading it."""
        if not self.running:
            self._take_pipe()

    async def stop(self) -> None:
        """Stop reading and give the pipe back; safe to call twice."""
        await self._stop_reader()
        stopped = PortError(
            f"the AT runner on {self._pipe.name} was stopped while a caller still waited on it"
        )
        self._fail_waiters(stopped)
        self._end_subscriptions(stopped)
        self._client.cancel_command()
        if self._attached:
            self._pipe.release(self.OWNER)
            self._attached = False

    async def resume(self) -> None:
        """Take the pipe back after PPP released it, parse lines again and restart reading.

        The first command after this starts on a clean line (a lone CR first).
        """
        if self.running:
            return
        self._client.resume_command_mode()
        self._clean_line_first = True
        self._take_pipe()

    def _take_pipe(self) -> None:
        self._pipe.attach(self.OWNER)
        self._attached = True
        self._port_error = None
        self._reader = asyncio.create_task(self._read_loop(), name=f"at-reader {self._pipe.name}")

    # -- commands ----------------------------------------------------------------------
    def _timeout_for(self, command: str) -> float:
        return self._timeouts(command) or self._default_timeout

    async def command(
        self, cmd: str, *, timeout: float | None = None, prefixes: tuple[str, ...] | None = None
    ) -> ResponseReceived:
        """Send `cmd` and return its answer; AtCommandError when the final result is a failure."""
        event = await self._exchange(cmd, timeout or self._timeout_for(cmd), prefixes)
        if event.final.kind == "connect":
            await self._hand_over()
            raise AtCommandError(
                cmd,
                event.final,
                event.lines,
                reason=f"{event.final.text}: the module entered data mode; use dial() for this command",
                secrets=self._secrets,
            )
        if not event.final.ok:
            raise AtCommandError(cmd, event.final, event.lines, secrets=self._secrets)
        return event

    async def dial(self, cmd: str, *, timeout: float | None = None) -> DialResult:
        """Dial (e.g. ATD*99***1#); on CONNECT stop reading and release the pipe for PPP."""
        event = await self._exchange(cmd, timeout or self._timeout_for(cmd), None)
        if event.final.kind != "connect":
            reason = None
            if event.final.ok:
                reason = "the module answered OK instead of CONNECT; check the dial string"
            elif event.final.kind == "no_carrier":
                reason = (
                    "NO CARRIER: check that the PDP context of this dial string is defined"
                    " (AT+CGDCONT?) and its APN is right"
                )
            raise AtCommandError(
                cmd, event.final, event.lines, reason=reason, secrets=self._secrets
            )
        leftover = await self._hand_over()
        return DialResult(connect_text(event.final), leftover)

    async def run_script(self, script: ChatScript) -> list[ResponseReceived]:
        """Run every step of `script` in order and return their answers; stop at the first failure.

        A step without its own timeout gets the runner's timeout for it; a script with a
        `total_timeout` also stops when that runs out.
        """
        deadline = None if script.total_timeout is None else self._clock() + script.total_timeout
        responses: list[ResponseReceived] = []
        for step in script.steps:
            event = await self._step_exchange(script, step, deadline)
            if event.final.kind == "connect":
                await self._hand_over()
                reason = f"{event.final.text} in {script.name}: dial with dial(), not a chat step"
            else:
                check = check_step(step, event.lines, event.final, script.aborts)
                if check.passed:
                    responses.append(event)
                    continue
                reason = f"{check.reason} (in {script.name})"
            raise AtCommandError(
                step.command, event.final, event.lines, reason=reason, secrets=self._secrets
            )
        return responses

    async def _step_exchange(
        self, script: ChatScript, step: ChatStep, deadline: float | None
    ) -> ResponseReceived:
        timeout = step.timeout or self._timeout_for(step.command)
        if deadline is None or deadline - self._clock() >= timeout:
            return await self._exchange(step.command, timeout, step.prefixes)
        try:  # the script's own deadline comes first
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise ModemTimeout(f"no time left for {step.command}")
            return await self._exchange(step.command, remaining, step.prefixes)
        except ModemTimeout as exc:
            raise ModemTimeout(
                f"{script.name} did not finish within {script.total_timeout:g} s (no answer"
                f" to {self._mask(step.command)} in the time left); check that the module"
                " answers on this port, or raise the script's total_timeout"
            ) from exc

    # -- URCs --------------------------------------------------------------------------
    def subscribe(self, names: Iterable[str] | None = None) -> UrcSubscription:
        """Every URC from now on, or only those named (e.g. "+CGEV", "+CEREG"), until closed.

        Subscribers see every URC, also those a `wait_urc` takes.
        """
        wanted = None if names is None else frozenset(n.strip().upper() for n in names)
        subscription = UrcSubscription(wanted, self._unsubscribe)
        if self._port_error is not None:
            subscription.end(self._port_error)
        self._subscribers.append(subscription)
        return subscription

    def _unsubscribe(self, subscription: UrcSubscription) -> None:
        if subscription in self._subscribers:
            self._subscribers.remove(subscription)

    def _end_subscriptions(self, error: PortError) -> None:
        for subscription in self._subscribers:
            subscription.end(error)
        self._subscribers.clear()

    async def wait_urc(
        self,
        predicate: Callable[[UrcReceived], bool],
        timeout: float,
        *,
        what: str = "the expected unsolicited result",
    ) -> UrcReceived:
        """The oldest URC matching `predicate` that no wait_urc took yet, waiting for one.

        URCs that arrived before the call count (one that came right after a command's
        OK is not missed); each URC satisfies at most one wait_urc.
        """
        for urc in self._backlog:
            if predicate(urc):
                self._backlog.remove(urc)
                return urc
        if self._port_error is not None:
            raise PortClosed(f"port {self._pipe.name} vanished while waiting for {what}")
        future: asyncio.Future[UrcReceived] = asyncio.get_running_loop().create_future()
        waiter = (predicate, future)
        self._waiters.append(waiter)
        try:
            if not await self._wait_until(future, self._clock() + timeout):
                raise ModemTimeout(
                    f"{what} did not come within {timeout:g} s from {self._pipe.name}"
                )
            return future.result()
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    # -- the pump ----------------------------------------------------------------------
    async def escape(self, *, guard: float, timeout: float = 5.0) -> ResponseReceived:
        """Leave online data mode with "+++" and return to command mode (app note §9.1.4).

        Takes the pipe back if PPP released it, keeps `guard` seconds of silence before
        the three characters (sent as one write, so they travel in one frame) and waits
        for the module's answer. OK: the call is in online command mode (ATO / ATH).
        NO CARRIER: the escape ended the call, as u-blox modules do during a PPP call with
        AT&D0 or AT&D2 (the "+++" behaviour of their &D entry); the port is in command mode.
        """
        await self.resume()
        await asyncio.sleep(guard)
        event = await self._exchange("+++", timeout, None, escape=True)
        if event.final.kind not in ("ok", "no_carrier"):
            raise AtCommandError("+++", event.final, event.lines, secrets=self._secrets)
        return event

    async def _exchange(
        self, cmd: str, timeout: float, prefixes: tuple[str, ...] | None, *, escape: bool = False
    ) -> ResponseReceived:
        async with self._lock:
            if self._port_error is not None:
                raise PortClosed(f"port {self._pipe.name} vanished; cannot send {self._mask(cmd)}")
            if not self.running:
                raise PortError(
                    f"the AT runner does not hold {self._pipe.name}; call start() (or resume()"
                    f" after PPP) before sending {self._mask(cmd)}"
                )
            future: asyncio.Future[ResponseReceived | CommandTimedOut]
            future = asyncio.get_running_loop().create_future()
            if escape:
                # "+++" must travel alone (app note §9.1.4): no clean-line CR before it.
                payload = self._client.send_escape(now=self._clock(), timeout=timeout, sequence=cmd)
            else:
                payload = self._client.send(
                    cmd, now=self._clock(), timeout=timeout, response_prefixes=prefixes
                )
                if self._clean_line_first:
                    payload = b"\r" + payload
                    self._clean_line_first = False
            self._pending, self._pending_command = future, cmd
            self._trace(f">> {cmd}")
            try:
                try:
                    await self._pipe.write(payload)
                except PortClosed as exc:
                    raise PortClosed(
                        f"port {self._pipe.name} vanished while sending {self._mask(cmd)}"
                    ) from exc
                while not future.done():
                    deadline = self._client.get_timer()
                    if deadline is None:  # the core finished it: dispatch delivers the event
                        self._dispatch()
                        if not future.done():
                            future.set_exception(
                                PortError(f"the answer to {self._mask(cmd)} was lost")
                            )
                        break
                    if not await self._wait_until(future, deadline):
                        self._client.handle_timer(self._clock())
                        self._dispatch()
                event = future.result()
            finally:
                if self._pending is future:
                    self._pending = None
                    if self._client.pending_command is not None:
                        self._client.cancel_command()
        if isinstance(event, CommandTimedOut):
            raise ModemTimeout(
                f"no answer to {self._mask(cmd)} within {timeout:g} s from {self._pipe.name}:"
                " check that the module is powered on and that this is its AT port"
            )
        return event

    async def _hand_over(self) -> bytes:
        """After CONNECT: let the reader finish, keep its leftover, release the pipe."""
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        leftover = self._client.take_leftover()
        if self._attached:
            self._pipe.release(self.OWNER)
            self._attached = False
        return leftover

    async def _wait_until(self, future: asyncio.Future[Any], deadline: float) -> bool:
        """Wait for `future` until `deadline` by the runner's clock; True if it is done.

        Every chunk the reader feeds wakes this up too, so a clock that jumps (a test's
        fake clock) is noticed as soon as input arrives.
        """
        while not future.done():
            remaining = deadline - self._clock()
            if remaining <= 0:
                return False
            tick: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._ticks.add(tick)
            try:
                await asyncio.wait(
                    {future, tick}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                self._ticks.discard(tick)
                tick.cancel()
        return True

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self._pipe.read()
                if not data:
                    raise PortClosed(f"{self._pipe.name} reached end of file")
                self._client.receive_data(data)
                self._client.handle_timer(self._clock())
                self._dispatch()
                self._wake_timers()
                if self._client.data_mode:
                    return  # the bytes after CONNECT belong to PPP: stop reading here
        except PortClosed:
            self._lost_port()
        except OSError as exc:
            self._lost_port(exc)
        except Exception as exc:  # noqa: BLE001 - a bug: fail the waiters instead of hanging them
            self._port_error = PortError(f"the AT reader on {self._pipe.name} failed: {type(exc).__name__}: {exc}")
            self._trace(f"-- {self._port_error}")
            self._fail_waiters(exc)
            self._end_subscriptions(self._port_error)

    def _lost_port(self, cause: BaseException | None = None) -> None:
        detail = f" ({cause})" if cause is not None else ""
        self._port_error = PortClosed(f"port {self._pipe.name} vanished{detail}")
        self._trace(f"-- port {self._pipe.name} vanished{detail}")
        self._client.cancel_command()
        if self._pending is not None and not self._pending.done():
            self._pending.set_exception(
                PortClosed(
                    f"port {self._pipe.name} vanished while waiting for the answer to"
                    f" {self._mask(self._pending_command)}"
                )
            )
        for _, future in self._waiters:
            if not future.done():
                future.set_exception(
                    PortClosed(f"port {self._pipe.name} vanished while waiting for a URC")
                )
        self._end_subscriptions(self._port_error)

    def _fail_waiters(self, error: Exception) -> None:
        if self._pending is not None and not self._pending.done():
            self._pending.set_exception(error)
        for _, future in self._waiters:
            if not future.done():
                future.set_exception(error)

    def _dispatch(self) -> None:
        while (event := self._client.next_event()) is not None:
            if isinstance(event, LineReceived):
                self._trace(f"<< {event.line}")
            elif isinstance(event, UrcReceived):
                self._deliver_urc(event)
            elif isinstance(event, CommandTimedOut):
                self._trace(f"-- no answer to {event.command}")
                self._finish(event)
            else:
                self._finish(event)

    def _finish(self, event: ResponseReceived | CommandTimedOut) -> None:
        if self._pending is not None and not self._pending.done():
            self._pending.set_result(event)

    def _deliver_urc(self, urc: UrcReceived) -> None:
        for subscription in self._subscribers:
            if subscription.wants(urc):
                subscription.put(urc)
        for predicate, future in self._waiters:
            if future.done():
                continue
            try:
                matched = predicate(urc)
            except Exception as exc:  # noqa: BLE001 - a broken predicate fails its own waiter
                future.set_exception(exc)
                continue
            if matched:
                future.set_result(urc)
                return
        if len(self._backlog) >= URC_BACKLOG:
            self._backlog.popleft()
        self._backlog.append(urc)

    def _wake_timers(self) -> None:
        for tick in self._ticks:
            if not tick.done():
                tick.set_result(None)

    async def _stop_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None and not reader.done():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    def _mask(self, text: str) -> str:
        return mask(text, self._secrets)

    def _trace(self, text: str) -> None:
        if self._trace_sink is not None:
            self._trace_sink(self._mask(text))
