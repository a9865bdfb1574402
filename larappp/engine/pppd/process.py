"""One pppd run: started with larappp's options on a tty, its log read masked, ended in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from larappp.engine.pppd.options import SEARCH_PATH, PppdFolder, host_options_in_effect
from larappp.errors import PPPError
from larappp.proto.at.masking import mask
from larappp.transport import mountns

__all__ = ["PPPD", "PPPD_EXIT_REASONS", "PppdProcess", "describe_exit"]

log = logging.getLogger(__name__)

PPPD = "/usr/sbin/pppd"
#: how long `end()` waits for pppd after a hang-up, then after SIGTERM, before SIGKILL
HANGUP_WAIT_S = 3.0
SIGTERM_WAIT_S = 3.0
SIGKILL_WAIT_S = 5.0

#: pppd(8), EXIT STATUS: what each status means for a larappp user, and what to change
PPPD_EXIT_REASONS: dict[int, str] = {
    0: "pppd ended the link at the module's request",
    1: "pppd hit a fatal error",
    2: "pppd refused its options (larappp and this pppd version disagree: use backend = \"builtin\")",
    3: "pppd must run as root: run larappp as root",
    4: "the kernel has no PPP support (/dev/ppp cannot be opened): load ppp_generic and ppp_async, "
       "or set backend = \"builtin\"",
    5: "pppd ended the link on larappp's request (LCP Terminate-Request)",
    6: "pppd could not lock its tty",
    7: "pppd could not open its tty",
    8: "pppd's connect script failed",
    9: "pppd's pty command failed",
    10: "PPP negotiation failed: no network protocol (IPCP, IPV6CP) came up; check the APN and pdp_type",
    11: "the module failed to authenticate itself to pppd",
    12: "pppd ended the idle link",
    13: "pppd ended the link at its connect time limit",
    14: "pppd expects a callback",
    15: "the module stopped answering LCP Echo-Requests: check the radio signal and the module",
    16: "the line hung up: the module's port closed or the module ended the call",
    17: "pppd saw its own frames come back (loopback): the module is not in data mode",
    18: "pppd's init script failed",
    19: "PPP authentication to the network failed: check the session's user, password and auth",
}


def describe_exit(status: int, last_line: str = "") -> str:
    """A reason for pppd's exit `status` (negative: killed by that signal), for users."""
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"pppd was killed by {name}"
    if status == mountns.BIND_FAILED:
        text = "larappp could not give pppd a private /etc/ppp (a bind mount failed)"
    else:
        text = PPPD_EXIT_REASONS.get(status, "pppd ended for a reason pppd(8) does not list")
    detail = f": pppd said \"{last_line}\"" if last_line and status in (1, 2, 4, 6, 7, mountns.BIND_FAILED) else ""
    return f"pppd exited with status {status}: {text}{detail}"


class PppdProcess:
    """Starts pppd on a tty with a session's runtime folder, keeps its log, ends it."""

    def __init__(self, ifname: str, *, path: str | None = None, secrets: Sequence[str] = ()) -> None:
        self.ifname = ifname
        #: pppd's path: given, else found on the system search path (as `larappp check` does)
        self.path = path or shutil.which("pppd", path=SEARCH_PATH) or PPPD
        self._secrets = [s for s in secrets if s]
        self.process: asyncio.subprocess.Process | None = None
        #: whether pppd runs with larappp's private /etc/ppp (None until started)
        self.isolated: bool | None = None
        self.log_tail: deque[str] = deque(maxlen=40)
        self._log_reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def check_installed(self) -> None:
        if not os.access(self.path, os.X_OK):
            raise PPPError(f"{self.path} is missing: install Debian's ppp package, or set backend = \"builtin\"")

    async def start(
        self, tty: str, folder: PppdFolder, binds: list[tuple[str, str]], *, isolate: bool, tty_fd: int | None = None,
    ) -> None:
        """Run pppd on `tty` with the folder's options file, isolated where possible.

        `tty_fd`: larappp's open fd of `tty`, given to pppd as its stdin. pppd(8): "if the
        name of the terminal connected to the standard input is given, pppd will use that
        terminal": it then takes the tty as its default device, which it never hangs up
        (no DTR drop when it ends), and needs neither a lock nor a fresh open's DTR raise.
        """
        argv = [self.path, tty, "file", str(folder.options_file)]
        command = await self._isolated(argv, binds, isolate)
        try:
            self.process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL if tty_fd is None else tty_fd,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env={"PATH": SEARCH_PATH, "LANG": "C"},
                # Its own process group: the terminal's signals are larappp's, which ends pppd
                # in order. Not its own session: a session leader's open of the tty makes it
                # its controlling terminal, and the kernel hangs a controlling serial tty up
                # when its session leader exits (DTR drops, the call ends, larappp's fd dies).
                process_group=0,
                cwd=str(folder.path),
            )
        except OSError as exc:
            raise PPPError(f"cannot start {command[0]} ({exc.strerror or exc}): check the ppp package") from None
        self._log_reader = asyncio.create_task(self._read_log(), name=f"pppd {self.ifname} log")

    async def _isolated(self, argv: list[str], binds: list[tuple[str, str]], isolate: bool) -> list[str]:
        """`argv` wrapped so that pppd sees the runtime folder as /etc/ppp, where possible."""
        why = "isolation is off" if not isolate else await mountns.available()
        if why is None:
            self.isolated = True
            return mountns.wrap(argv, binds) if binds else argv
        self.isolated = False
        extra = host_options_in_effect()
        log.warning(
            "%s: pppd reads the host's /etc/ppp (options, ip-pre-up, ipv6-up) because larappp cannot "
            "give it a private one (%s)%s", self.ifname, why,
            f"; /etc/ppp/options adds: {', '.join(extra)}" if extra else "",
        )
        return argv

    async def _read_log(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        async for raw in self.process.stderr:
            line = mask(raw.decode("utf-8", "replace").rstrip(), self._secrets)
            if line:
                self.log_tail.append(line)
                log.debug("pppd %s: %s", self.ifname, line)

    async def wait(self) -> int:
        """Until pppd exits; its exit status (negative: the signal that killed it)."""
        assert self.process is not None
        status = await self.process.wait()
        if status == -signal.SIGKILL:  # by larappp's end() or anyone else
            self._remove_pid_file(self.process.pid)
        await asyncio.sleep(0)  # let the log reader take pppd's last lines
        return status

    @property
    def last_line(self) -> str:
        return self.log_tail[-1] if self.log_tail else ""

    def signal(self, signum: int) -> None:
        if self.running:
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)

    async def end(self, failures: list[str], *, hung_up: bool = True) -> None:
        """After the caller hung pppd's tty up: wait, then SIGTERM, then SIGKILL.

        `hung_up=False` (pppd owns the module's device, which cannot be hung up without
        ending the call): SIGKILL at once, so that no Terminate-Request reaches the module
        and the teardown that follows ("+++", DTR) finds it in data mode.
        """
        process = self.process
        steps: tuple[tuple[signal.Signals | None, float], ...] = (
            ((None, HANGUP_WAIT_S), (signal.SIGTERM, SIGTERM_WAIT_S), (signal.SIGKILL, SIGKILL_WAIT_S))
            if hung_up else ((signal.SIGKILL, SIGKILL_WAIT_S),)
        )
        if process is not None and process.returncode is None:
            for action, wait in steps:
                if action is not None:
                    self.signal(action)
                try:
                    await asyncio.wait_for(process.wait(), wait)
                    break
                except TimeoutError:
                    continue
            else:
                failures.append(f"pppd {process.pid} did not end, even on SIGKILL")
            if process.returncode == -signal.SIGKILL:  # wait() may not have run (engine stopped)
                self._remove_pid_file(process.pid)
        if self._log_reader is not None:
            self._log_reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._log_reader
            self._log_reader = None

    def _remove_pid_file(self, pid: int) -> None:
        """pppd killed by SIGKILL had no chance to remove /run/<ifname>.pid."""
        pidfile = Path(f"/run/{self.ifname}.pid")
        with contextlib.suppress(OSError):
            if pidfile.read_text().split()[0] == str(pid):
                pidfile.unlink()
