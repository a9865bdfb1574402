"""The pppd backend: Debian's pppd carries one session's PPP, larappp does the rest.

Same interface as the built-in engine (`BuiltinPppEngine`): built from the dialled pipe,
`EngineOptions` and the bytes that followed CONNECT; `start()`, `wait_up()`,
`terminate()`, `stop()`, `status()`, `terminated`, `reason`.

- **The port.** pppd gets the slave of a pty pair (`larappp.transport.ptypair`); a thin
  pump copies bytes between the pty master and the dialled pipe. So pppd works the same
  over a serial device, an RFC 2217 URL and (later) a CMUX channel, none of which it
  could open itself, and the pipe goes back to the AT runner at hang-up. The pump holds
  the module's bytes until pppd has spoken (its first LCP Configure-Request): bytes
  written before pppd opened the tty would be flushed. Flow control (RTS/CTS per
  `modem.rtscts`) and the port's lock are the pipe's: pppd gets `nocrtscts`, `nolock`,
  `local` on its pty.
- **The options.** One options file in a private runtime folder (0700), written 0600
  because it holds `user` and `password`: secrets are never in argv, the environment or
  a log (`hide-password`; pppd's output is logged masked). pppd 2.4.9 always reads
  /etc/ppp/options and runs /etc/ppp/ip-pre-up and ipv6-up, and `usepeerdns` writes
  /etc/ppp/resolv.conf: pppd runs in a mount namespace of its own where the runtime
  folder is /etc/ppp (`larappp.transport.mountns`). Where that is impossible (no
  CAP_SYS_ADMIN) it runs without, and the options file states every setting that
  Debian's /etc/ppp/options changes, so only additions there would still apply (logged).
- **What came up** is observed through netlink, not pppd's log: the interface
  (`ifname`), the IPCP address, the IPV6CP link-local. IPCP's DNS servers come from a
  tiny `ip-up-script` in the runtime folder that writes pppd's DNS1/DNS2 to a file.
- **Routes, DNS, SLAAC** are larappp's, exactly as with the built-in engine
  (`HostInterface`): pppd gets `nodefaultroute`, and larappp adds the default route
  with the session's metric. SLAAC runs in user space (`SlaacClient`, accept_ra=0), its
  RS and RA over a raw ICMPv6 socket on the ppp interface (`larappp.transport.ndsocket`):
  the same RS retries, RA timeout, RDNSS (which the kernel ignores), lifetimes and undo
  as the built-in engine.
- **The end.** `terminate()` sends pppd SIGTERM, on which it sends LCP Terminate-Request
  and exits 5 once the module acked (app note §4.2). `stop()` of a pppd still running
  hangs the pty up (pppd: "Modem hangup", no Terminate exchange, exit 16: the escape,
  ATH and DTR teardowns) and kills it if it lingers. pppd's exit status is mapped to a
  reason (pppd(8), EXIT STATUS).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import shlex
import shutil
import signal
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

import psutil

from larappp.engine.ppp_builtin import EngineOptions
from larappp.engine.ppp_outcome import EngineOutcome
from larappp.errors import LarapppError, PortClosed, PPPError
from larappp.hostnet import HostInterface
from larappp.proto.at.masking import mask
from larappp.proto.ipv6 import slaac
from larappp.transport import mountns
from larappp.transport.ndsocket import NdpSocket
from larappp.transport.pipe import Pipe
from larappp.transport.ptypair import PtyPair

__all__ = [
    "PPPD",
    "PPPD_EXIT_REASONS",
    "IpcpReport",
    "PppdEngine",
    "describe_exit",
    "options_file_text",
    "parse_ipcp_report",
    "pppd_word",
]

log = logging.getLogger(__name__)

PPPD = "/usr/sbin/pppd"
ETC_PPP = "/etc/ppp"
#: pppd's own default (pppd(8), lcp-echo-failure); larappp's LCP echo interval is the session's
ECHO_FAILURES = 4
#: how long `stop()` waits for pppd after a hang-up, then after SIGTERM, before SIGKILL
HANGUP_WAIT_S = 3.0
SIGTERM_WAIT_S = 3.0
#: how long after the IPCP address appears the ip-up report (DNS) may take
IPCP_REPORT_WAIT_S = 5.0
REPORT_NAME = "ipcp"
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

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


# -- the options file ---------------------------------------------------------------------

def pppd_word(text: str) -> str:
    """`text` as one word of a pppd options file: quoted, with `\\`, `"` and controls escaped."""
    out = ['"']
    for char in text:
        if char in '\\"':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\{ord(char):03o}")  # always 3 octal digits: unambiguous (pppd's getword)
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def options_file_text(
    options: EngineOptions,
    *,
    ip_up: Path,
    ip_down: Path,
    unit: int | None = None,
    echo_failures: int = ECHO_FAILURES,
    debug: bool = False,
) -> str:
    """The whole option set for one session's pppd (the device goes on the command line)."""
    families = set(options.families)
    echo = 0 if not options.echo_interval else max(1, round(options.echo_interval))
    lines = [
        f"# larappp: pppd options for {options.ifname}; written at each start, removed at the end.",
        "# Every setting Debian's /etc/ppp/options changes is stated here.",
        "nodetach",
        "logfd 2",
        "# the pty bridge to the module's port: the port's lock, modem lines and RTS/CTS are larappp's",
        "local",
        "nocrtscts",
        "nolock",
        "nopersist",
        "asyncmap 0",
        "noccp",
        "novj",
        f"mru {options.mru}",
        f"mtu {options.mru}",
        f"lcp-echo-interval {echo}",
        f"lcp-echo-failure {echo_failures}",
        "# authentication: the module is not asked to authenticate itself",
        "noauth",
        "refuse-eap",
        "refuse-mschap",
        "refuse-mschap-v2",
    ]
    if options.auth == "pap":
        lines.append("refuse-chap")
    elif options.auth == "chap":
        lines.append("refuse-pap")
    lines += [
        f"user {pppd_word(options.username)}",
        f"password {pppd_word(options.password)}",
        "hide-password",
        "# IP: addresses from the network; routes and DNS are larappp's",
        "noipdefault",
        "ipcp-accept-local",
        "ipcp-accept-remote",
        "noremoteip",
        "usepeerdns",
        "nodefaultroute",
        "noreplacedefaultroute",
        "nodefaultroute6",
        "noproxyarp",
    ]
    if 4 not in families:
        lines.append("noip")
    lines.append("+ipv6" if 6 in families else "noipv6")
    lines += [f"ifname {options.ifname}", f"ip-up-script {pppd_word(str(ip_up))}", f"ip-down-script {pppd_word(str(ip_down))}"]
    if unit is not None:
        lines.append(f"unit {unit}")
    if debug:
        lines.append("debug")
    return "\n".join(lines) + "\n"


def _ip_up_script(report: Path) -> str:
    target = shlex.quote(str(report))
    return (
        "#!/bin/sh\n"
        "# larappp: pppd runs this when IPCP is up; it only reports what IPCP negotiated.\n"
        f"PATH={_PATH}\n"
        "umask 077\n"
        "printf 'IFNAME=%s\\nIPLOCAL=%s\\nIPREMOTE=%s\\nDNS1=%s\\nDNS2=%s\\n' "
        '"$IFNAME" "$IPLOCAL" "$IPREMOTE" "$DNS1" "$DNS2"'
        f" >{target}.tmp && mv -f {target}.tmp {target}\n"
    )


def _ip_down_script(report: Path) -> str:
    return (
        "#!/bin/sh\n"
        "# larappp: pppd runs this when IPCP is down.\n"
        f"PATH={_PATH}\n"
        f"rm -f {shlex.quote(str(report))}\n"
    )


@dataclass(frozen=True)
class IpcpReport:
    """What the ip-up hook reported: pppd's view of IPCP (DNS from the network)."""

    ifname: str
    local: IPv4Address | None
    peer: IPv4Address | None
    dns: tuple[IPv4Address, ...]


def parse_ipcp_report(text: str) -> IpcpReport:
    """Parse the ip-up hook's KEY=value lines; unknown keys and empty values are skipped."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and value.strip():
            values[key.strip()] = value.strip()

    def v4(key: str) -> IPv4Address | None:
        try:
            address = ip_address(values.get(key, ""))
        except ValueError:
            return None
        return address if isinstance(address, IPv4Address) else None

    dns = tuple(a for a in (v4("DNS1"), v4("DNS2")) if a is not None)
    return IpcpReport(values.get("IFNAME", ""), v4("IPLOCAL"), v4("IPREMOTE"), tuple(dict.fromkeys(dns)))


def _write(path: Path, text: str, mode: int) -> None:
    """Create `path` with `mode` from the start (never readable by others, even briefly)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, mode)  # the umask may have narrowed it


# -- the engine -----------------------------------------------------------------------------

class PppdEngine(EngineOutcome):
    """Runs Debian's pppd over a dialled port (through a pty bridge) and configures the host."""

    OWNER = "ppp"

    def __init__(
        self,
        pipe: Pipe,
        options: EngineOptions,
        *,
        leftover: bytes = b"",
        clock: Callable[[], float] = time.monotonic,
        on_event: Callable[[str], None] | None = None,
        runtime_dir: str | Path = "/run/larappp",
        pppd: str | None = None,
        unit: int | None = None,
        echo_failures: int = ECHO_FAILURES,
        isolate: bool = True,
        secrets: Sequence[str] = (),
    ) -> None:
        super().__init__(options.ifname, options.families)
        self.pipe = pipe
        self.options = options
        self._leftover = leftover
        self._clock = clock
        self._note = on_event or (lambda _m: None)
        #: pppd's path: given, else found on the system search path (as `larappp check` does)
        self.pppd = pppd or shutil.which("pppd", path=_PATH) or PPPD
        self.unit = unit
        self.echo_failures = echo_failures
        self.isolate = isolate
        self._secrets = [s for s in (*secrets, options.password, options.username) if s]
        self.folder = Path(runtime_dir) / "pppd" / options.ifname
        self.host = HostInterface(
            options.ifname, default_route=options.default_route, metric=options.metric,
            dns_mode=options.dns_mode, dns_dir=options.dns_dir,
        )
        self.pty: PtyPair | None = None
        self.process: asyncio.subprocess.Process | None = None
        self.exit_status: int | None = None
        #: whether pppd runs with larappp's private /etc/ppp (None until started)
        self.isolated: bool | None = None
        self.ndp: NdpSocket | None = None
        self.slaac: slaac.SlaacClient | None = None
        self._pppd_spoke = asyncio.Event()
        self._log_tail: deque[str] = deque(maxlen=40)
        self._ending_requested = False
        self._forwarding = False
        self._pump_tasks: list[asyncio.Task[None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._attached = False
        self._folder_made = False

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Take the pipe, write the runtime folder, start pppd on a pty bridged to the pipe."""
        if not os.access(self.pppd, os.X_OK):
            raise PPPError(f"{self.pppd} is missing: install Debian's ppp package, or set backend = \"builtin\"")
        self.pipe.attach(self.OWNER)
        self._attached = True
        try:
            await self.host.open()
            if await self.host.netlink.link(self.options.ifname) is not None:
                raise PPPError(
                    f"interface {self.options.ifname} exists already (another larappp or pppd?): "
                    "stop it or give the session another ifname"
                )
            binds = self._prepare_folder()
            self.pty = PtyPair.open()
            argv = [self.pppd, self.pty.slave_path, "file", str(self.folder / "larappp.options")]
            command = await self._isolated(argv, binds)
            try:
                self.process = await asyncio.create_subprocess_exec(
                    *command,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                    env={"PATH": _PATH, "LANG": "C"},
                    start_new_session=True,  # the terminal's signals are larappp's; it ends pppd in order
                    cwd=str(self.folder),
                )
            except OSError as exc:
                raise PPPError(f"cannot start {command[0]} ({exc.strerror or exc}): check the ppp package") from None
        except OSError as exc:
            await self.stop()
            raise PPPError(f"cannot prepare pppd's runtime folder {self.folder}: {exc}") from None
        except BaseException:
            await self.stop()
            raise
        self._note(f"{self.options.ifname}: pppd {self.process.pid} started on {self.pty.slave_path}"
                   + ("" if self.isolated else " (with the host's /etc/ppp)"))
        name = f"pppd {self.options.ifname}"
        self._pump_tasks = [
            asyncio.create_task(self._from_pppd(), name=f"{name} pty-in"),
            asyncio.create_task(self._to_pppd(), name=f"{name} pty-out"),
        ]
        self._tasks = [
            asyncio.create_task(self._read_log(), name=f"{name} log"),
            asyncio.create_task(self._watch_process(), name=f"{name} exit"),
            asyncio.create_task(self._observe(), name=f"{name} observe"),
        ]

    def _prepare_folder(self) -> list[tuple[str, str]]:
        """Write the runtime folder; returns the bind mounts that make it pppd's /etc/ppp."""
        folder = self.folder
        if folder.is_symlink():
            folder.unlink()
        elif folder.exists():
            shutil.rmtree(folder, ignore_errors=True)  # left by a larappp that was killed
        folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.mkdir(mode=0o700)
        self._folder_made = True
        os.chmod(folder, 0o700)
        os.chmod(folder.parent, 0o700)
        report = folder / REPORT_NAME
        ip_up, ip_down = folder / "ip-up", folder / "ip-down"
        _write(ip_up, _ip_up_script(report), 0o700)
        _write(ip_down, _ip_down_script(report), 0o700)
        text = options_file_text(
            self.options, ip_up=ip_up, ip_down=ip_down, unit=self.unit,
            echo_failures=self.echo_failures, debug=log.isEnabledFor(logging.DEBUG),
        )
        _write(folder / "larappp.options", text, 0o600)
        # pppd's view of /etc/ppp/options when isolated: nothing beyond larappp's own file.
        _write(folder / "options", "# larappp: empty on purpose; pppd reads larappp.options\n", 0o600)
        binds: list[tuple[str, str]] = []
        if os.path.isdir(ETC_PPP):
            binds.append((str(folder), ETC_PPP))
        with contextlib.suppress(KeyError):
            ppprc = Path(pwd.getpwuid(os.getuid()).pw_dir) / ".ppprc"
            if ppprc.is_file():
                binds.append((str(folder / "options"), str(ppprc)))
        return binds

    async def _isolated(self, argv: list[str], binds: list[tuple[str, str]]) -> list[str]:
        """`argv` wrapped so that pppd sees the runtime folder as /etc/ppp, where possible."""
        why = "isolation is off" if not self.isolate else await mountns.available()
        if why is None:
            self.isolated = True
            return mountns.wrap(argv, binds) if binds else argv
        self.isolated = False
        extra = _host_options_in_effect()
        log.warning(
            "%s: pppd reads the host's /etc/ppp (options, ip-pre-up, ipv6-up) because larappp cannot "
            "give it a private one (%s)%s", self.options.ifname, why,
            f"; /etc/ppp/options adds: {', '.join(extra)}" if extra else "",
        )
        return argv

    def _progress_text(self) -> str:
        return f"pppd {self._phase()}"

    #: pppd does not report whether the peer answered its Terminate-Request: never assumed
    terminate_acknowledged = False

    async def terminate(self, timeout: float = 6.0) -> None:
        """Have pppd send LCP Terminate-Request (SIGTERM) and wait for it to end (app note §4.2)."""
        process = self.process
        if process is not None and process.returncode is None and not self.terminated.is_set():
            self._ending_requested = True
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exited(), timeout)

    async def stop(self) -> list[str]:
        """End pppd if it still runs, undo the host configuration, remove the runtime folder,
        give the pipe back; returns what could not be undone."""
        failures: list[str] = []
        self._ending_requested = True
        await self._end_process(failures)
        for task in (*self._pump_tasks, *self._tasks):
            task.cancel()
        for task in (*self._pump_tasks, *self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._pump_tasks.clear()
        self._tasks.clear()
        if self.ndp is not None:
            self.ndp.close()
            self.ndp = None
        failures += await self.host.close()
        if self.pty is not None:
            self.pty.close()
            self.pty = None
        failures += self._remove_folder()
        if self._attached:
            self.pipe.release(self.OWNER)
            self._attached = False
        self._finish("larappp stopped the session")
        return failures

    def status(self) -> dict[str, object]:
        counters = psutil.net_io_counters(pernic=True).get(self.options.ifname)
        process = self.process
        return {
            **self.host.state.to_json(),
            "backend": "pppd",
            "families_up": sorted(self.families_up),
            "phase": self._phase(),
            "pid": process.pid if process is not None else None,
            "exit_status": self.exit_status,
            "packets_in": counters.packets_recv if counters else 0,
            "packets_out": counters.packets_sent if counters else 0,
            "bad_frames": counters.errin if counters else 0,
        }

    def _phase(self) -> str:
        if self.process is None:
            return "not started"
        if self.exit_status is not None:
            return f"exited ({self.exit_status})"
        if self._up.is_set():
            return "up"
        return "negotiating" if self._pppd_spoke.is_set() else "starting"

    # -- ending ----------------------------------------------------------------------------
    async def _exited(self) -> None:
        while self.exit_status is None:
            await asyncio.sleep(0.02)

    async def _end_process(self, failures: list[str]) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        # A hang-up ends pppd at once, without a Terminate exchange (escape/ATH/DTR teardowns).
        if self.pty is not None:
            self.pty.hang_up()
        for action, wait in ((None, HANGUP_WAIT_S), (signal.SIGTERM, SIGTERM_WAIT_S), (signal.SIGKILL, 5.0)):
            if action is not None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(action)
            try:
                await asyncio.wait_for(process.wait(), wait)
                break
            except TimeoutError:
                continue
        else:
            failures.append(f"pppd {process.pid} did not end, even on SIGKILL")
        if process.returncode == -signal.SIGKILL:
            # pppd had no chance to remove its pid file (/run/<ifname>.pid)
            pidfile = Path(f"/run/{self.options.ifname}.pid")
            with contextlib.suppress(OSError):
                if pidfile.read_text().split()[0] == str(process.pid):
                    pidfile.unlink()

    def _remove_folder(self) -> list[str]:
        if not self._folder_made:
            return []
        self._folder_made = False
        try:
            shutil.rmtree(self.folder)
        except FileNotFoundError:
            pass
        except OSError as exc:
            return [f"runtime folder {self.folder}: {exc}"]
        with contextlib.suppress(OSError):
            self.folder.parent.rmdir()  # only when no other session's folder is in it
        return []

    # -- pumps -------------------------------------------------------------------------------
    async def _from_pppd(self) -> None:
        """pty master -> the module's port."""
        assert self.pty is not None
        while True:
            try:
                data = await self.pty.read()
            except PortClosed:
                return  # pppd is gone; _watch_process reports why
            self._pppd_spoke.set()
            self._forwarding = True
            try:
                await self.pipe.write(data)
            except PortClosed as exc:
                self._port_lost(exc)
                return
            finally:
                self._forwarding = False

    async def _forward_last_frames(self, limit: float = 1.0) -> None:
        """After pppd's exit: let what it wrote last (a Terminate-Ack) reach the module."""
        deadline = time.monotonic() + limit
        idle = 0
        while self.pty is not None and self.pty.is_open and time.monotonic() < deadline:
            # twice idle, 10 ms apart: the kernel hands the slave's last bytes over a moment late
            idle = idle + 1 if not self._forwarding and self.pty.pending() == 0 else 0
            if idle >= 2:
                return
            await asyncio.sleep(0.01)

    async def _to_pppd(self) -> None:
        """The module's port -> pty master, once pppd has opened its tty and spoken."""
        assert self.pty is not None
        await self._pppd_spoke.wait()
        try:
            if self._leftover:
                data, self._leftover = self._leftover, b""
                await self.pty.write(data)
            while True:
                try:
                    data = await self.pipe.read()
                except PortClosed as exc:
                    self._port_lost(exc)
                    return
                await self.pty.write(data)
        except PortClosed:
            return  # pppd is gone

    def _port_lost(self, exc: PortClosed) -> None:
        self._finish(f"the module's port closed ({exc})")
        if self.pty is not None:
            self.pty.hang_up()  # pppd sees a hang-up and ends

    async def _read_log(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        async for raw in self.process.stderr:
            line = mask(raw.decode("utf-8", "replace").rstrip(), self._secrets)
            if line:
                self._log_tail.append(line)
                log.debug("pppd %s: %s", self.options.ifname, line)

    async def _watch_process(self) -> None:
        assert self.process is not None
        status = await self.process.wait()
        # The module's bytes after this (NO CARRIER) belong to the AT runner: stop reading.
        self._pump_tasks[1].cancel()
        await self._forward_last_frames()
        self._pump_tasks[0].cancel()
        await asyncio.sleep(0)  # let the log reader take pppd's last lines
        self.exit_status = status
        last = self._log_tail[-1] if self._log_tail else ""
        if self._ending_requested and status in (0, 5, 16):
            reason = f"larappp ended the link (pppd exited with status {status})"
        else:
            reason = describe_exit(status, last)
        self._note(f"{self.options.ifname}: {reason}")
        if status == 19:
            self._fail(PPPError(f"PPP on {self.options.ifname}: {reason}"))
        self._finish(reason)

    # -- what came up (netlink) ----------------------------------------------------------------
    async def _observe(self) -> None:
        ifname = self.options.ifname
        netlink = self.host.netlink
        try:
            # pppd makes the interface when it has opened its tty, before LCP.
            await netlink.wait_for_link(ifname, timeout=24 * 3600.0)
            await self.host.prepare(ipv6=6 in self.options.families)
            watchers = []
            if 4 in self.options.families:
                watchers.append(self._ipv4())
            if 6 in self.options.families:
                watchers.append(self._ipv6())
            await asyncio.gather(*watchers)
        except LarapppError as exc:
            if self.exit_status is None and not self.terminated.is_set():
                self._fail(exc)
        except OSError as exc:
            if self.exit_status is None and not self.terminated.is_set():
                self._fail(PPPError(f"configuring {ifname} failed: {exc}"))

    async def _ipv4(self) -> None:
        ifname = self.options.ifname
        info = await self.host.netlink.wait_for_address(ifname, 4, timeout=24 * 3600.0)
        report = await self._ipcp_report(IPCP_REPORT_WAIT_S)
        local = info.interface.ip
        peer = info.peer
        assert isinstance(local, IPv4Address)
        dns = report.dns if report is not None else ()
        if report is None:
            log.warning("%s: pppd's ip-up hook reported nothing within %g s: no IPv4 DNS servers", ifname, IPCP_REPORT_WAIT_S)
        await self.host.apply_ipv4(local, peer if isinstance(peer, IPv4Address) else None, dns)
        link = await self.host.netlink.link(ifname)
        if link is not None:
            self.host.state.mtu = link.mtu
        self._note(f"{ifname}: IPv4 {local} peer {peer or '-'} DNS {', '.join(map(str, dns)) or '-'}")
        self.families_up.add(4)
        self._check_up()

    async def _ipcp_report(self, timeout: float) -> IpcpReport | None:
        path = self.folder / REPORT_NAME
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(FileNotFoundError):
                report = parse_ipcp_report(path.read_text())
                if report.local is not None:
                    return report
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(0.05)

    async def _ipv6(self) -> None:
        ifname = self.options.ifname
        # pppd adds fe80::<our IPV6CP identifier> when IPV6CP is up.
        link_local = await self.host.netlink.wait_for_address(ifname, 6, timeout=24 * 3600.0, scope="link")
        address = link_local.interface.ip
        assert isinstance(address, IPv6Address)
        iid = address.packed[8:]
        self.host.state.ipv6_link_local = str(address)
        self.ndp = NdpSocket.open(ifname)
        now = self._clock()
        client = slaac.SlaacClient(iid, now, rs_interval=self.options.rs_interval, max_mtu=self.options.mru)
        self.slaac = client
        client.start(now)
        receiving: asyncio.Task[bytes] | None = None
        try:
            while True:
                await self._drain_slaac(client)
                if receiving is None:
                    receiving = asyncio.ensure_future(self.ndp.receive())
                timer = client.get_timer()
                timeout = None if timer is None else max(0.0, timer - self._clock())
                done, _ = await asyncio.wait({receiving}, timeout=timeout)
                if receiving in done:
                    packet = receiving.result()
                    receiving = None
                    client.receive_packet(packet, self._clock())
                client.handle_timer(self._clock())
        finally:
            if receiving is not None:
                receiving.cancel()

    async def _drain_slaac(self, client: slaac.SlaacClient) -> None:
        assert self.ndp is not None
        for packet in client.packets_to_send():
            self.ndp.send(packet)
        while (event := client.next_event()) is not None:
            if isinstance(event, slaac.RaTimedOut):
                raise PPPError(
                    f"no Router Advertisement on {self.options.ifname} ({event.reason}): the network gave "
                    "no IPv6 prefix; check the PDP type, or use pdp_type = \"IP\""
                )
            line = await self.host.apply_slaac(event, self._clock())
            if line:
                self._note(line)
            if isinstance(event, slaac.AddressConfigured):
                self.families_up.add(6)
                self._check_up()

    # -- outcome --------------------------------------------------------------------------------


def _host_options_in_effect() -> list[str]:
    """Options in /etc/ppp/options that larappp's file does not state (when not isolated)."""
    stated = {"asyncmap", "auth", "crtscts", "lock", "hide-password", "modem", "lcp-echo-interval",
              "lcp-echo-failure", "noipx", "noauth", "nocrtscts", "nolock", "local"}
    try:
        text = Path(ETC_PPP, "options").read_text(errors="replace")
    except OSError:
        return []
    found = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if words and words[0] not in stated:
            found.append(words[0])
    return found

