"""Run Debian's real pppd in a small QEMU VM (TCG) whose ttyS1 is a PPP serial line.

The machines' kernel has no PPP, so the VM tier boots Debian's own kernel with a busybox
initramfs (both made by scripts/vm/build.sh) that mounts the host's `/` read-only over
9p with a tmpfs overlay and runs a guest script there: the guest uses the host's own
/usr/sbin/pppd. The guest's first UART (ttyS0) is its console, written to a file; its
second (ttyS1) is exported on the host as a unix socket, which `PppdVm` connects as soon
as QEMU has made it (QEMU drops what the guest sends while no one is connected) and
hands out as a larappp `Pipe` or as asyncio streams. A writable 9p share (the guest's
`/share`) brings files back. Facts behind every choice here: shared/REAL-PPPD-VM.md.

Bytes the host writes before the guest's pppd has opened ttyS1 are partly lost (the
8250 driver clears the UART FIFO when the port is probed and opened) and partly
delivered late, all at once: let pppd speak first, or rely on retransmission. pppd
drops IP packets until its ip-up hook ran: wait for `vm.wait_for_share("ip-up.txt")`.

One VM at a time (each takes a host core; a lock file serialises concurrent sessions).
`LARAPPP_VM_KEEP=1` keeps each VM's temporary folder (console, share) for debugging.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import platform
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from larappp.errors import PortClosed, PortError
from larappp.transport.pipe import Pipe

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "vm" / "build.sh"
QEMU = "qemu-system-x86_64"
DEFAULT_VM_DIR = Path("/var/cache/larappp-vm")
#: pppd exit statuses (pppd(8) "EXIT STATUS") the tests look for
PPPD_EXIT_OK = 0
PPPD_EXIT_NEGOTIATION_FAILED = 10
PPPD_EXIT_PEER_DEAD = 15
PPPD_EXIT_HANGUP = 16


def vm_dir() -> Path:
    """The cache folder of the VM artefacts (`$LARAPPP_VM_DIR`, else /var/cache/larappp-vm)."""
    return Path(os.environ.get("LARAPPP_VM_DIR") or DEFAULT_VM_DIR)


def skip_reason() -> str | None:
    """Why QEMU cannot run here at all, or None when the VM tier can run (TCG: no /dev/kvm needed)."""
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        return f"the VM tier needs an x86_64 Linux host, not {platform.system()} {platform.machine()}"
    if os.geteuid() != 0:
        return "the VM tier runs as root (it installs Debian packages and caches a kernel)"
    if shutil.which(QEMU) is not None:
        return None
    if shutil.which("apt-get") is None:
        return f"{QEMU} is missing and there is no apt-get to install qemu-system-x86 with"
    return None


@dataclass(frozen=True)
class VmArtifacts:
    """The kernel and initramfs that scripts/vm/build.sh made (or found in its cache)."""

    kernel: Path
    initrd: Path
    kernel_version: str
    #: seconds build.sh took this time (about 1 s when everything was cached)
    build_seconds: float


_artifacts: VmArtifacts | None = None


def build_artifacts(*, timeout: float = 900.0) -> VmArtifacts:
    """Run scripts/vm/build.sh once per process (idempotent, cached) and return its outputs."""
    global _artifacts
    if _artifacts is not None:
        return _artifacts
    started = time.monotonic()
    env = dict(os.environ, LARAPPP_VM_DIR=str(vm_dir()))
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)],
        capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"scripts/vm/build.sh failed with status {result.returncode}:\n{result.stderr[-4000:]}"
        )
    values = dict(
        line.split("=", 1) for line in result.stdout.splitlines() if line.startswith("VM_")
    )
    _artifacts = VmArtifacts(
        kernel=Path(values["VM_KERNEL"]),
        initrd=Path(values["VM_INITRD"]),
        kernel_version=values["VM_KVER"],
        build_seconds=time.monotonic() - started,
    )
    return _artifacts


# -- guest scripts -------------------------------------------------------------------------

#: Replaces the host's /etc/ppp files in the guest's overlay only: Debian's default options
#: (auth, crtscts, lock, modem, lcp-echo-interval 30) must not apply, and the hooks only
#: report to the share instead of running the host's *.d scripts. Shell builtins only
#: (each exec of a host binary over 9p costs time); the files keep their 0755 mode.
_HOOK = (  # written aside, then renamed: a test polling for the file never sees half of it
    '#!/bin/sh\n'
    '{ echo "%s $*"; /sbin/ip addr; /sbin/ip route; /sbin/ip -6 route; } >/share/.%s.tmp 2>&1\n'
    'mv /share/.%s.tmp /share/%s.txt\n'
)
_GUEST_PRELUDE = (
    "set -u\n"
    ": >/etc/ppp/options\n"
    "printf '#!/bin/sh\\nexit 0\\n' >/etc/ppp/ip-pre-up\n"
    + "".join(
        f"printf '{_HOOK}' {hook} {hook} {hook} {hook} >/etc/ppp/{hook}\n"
        for hook in ("ip-up", "ip-down", "ipv6-up", "ipv6-down")
    )
)


def pppd_guest_script(
    options: Sequence[str],
    *,
    device: str = "/dev/ttyS1",
    speed: int = 115200,
    before: str = "",
    after: str = "",
) -> str:
    """A guest script that runs the real pppd on `device` with exactly `options`.

    `nodetach`, `logfd 2` and `local` (QEMU's socket backend has no modem lines) are
    always added. pppd's log goes to the share as pppd.log (and to the console when it
    ends); its exit status becomes the guest's. The ip-up/ip-down hooks write
    ip-up.txt/ip-down.txt (`ip addr`, `ip route`) to the share. `before`/`after` are
    shell lines run around pppd (e.g. a `ping` in the background).
    """
    lines = ["nodetach", "logfd 2", "local", *options]
    options_text = "".join(f"{line}\n" for line in lines)
    return (
        _GUEST_PRELUDE
        + f"cat >/etc/ppp/larappp.options <<'LARAPPP_OPTIONS'\n{options_text}LARAPPP_OPTIONS\n"
        + before
        + "\necho \"larappp-vm: pppd start $(cut -d' ' -f1 /proc/uptime)\"\n"
        + f"/usr/sbin/pppd {shlex.quote(device)} {speed} file /etc/ppp/larappp.options"
        + " 2>/share/pppd.log\n"
        + "status=$?\n"
        + "echo \"larappp-vm: pppd exit $status at $(cut -d' ' -f1 /proc/uptime)\"\n"
        + "cat /share/pppd.log\n"
        + after
        + "\nexit $status\n"
    )


# -- the simulator on the host ----------------------------------------------------------------


@contextlib.asynccontextmanager
async def running_simulator(
    scenario: Any = None, *, ports: int = 3, network: bool = True
) -> AsyncIterator[Any]:
    """larappp's LARA-R6 simulator on pty ports (a temporary folder), with its internet in a
    throw-away network namespace when `network`; everything removed on exit, also on errors.

    Pass `sim.pty_paths[:n]` to `PppdVm(host_ttys=...)`: the guest's ttyS1.. are its ports.
    """
    from larappp.sim import Simulator
    from larappp.sim.network import SimNetwork

    net = None
    pty_dir = tempfile.mkdtemp(prefix="larappp-vm-sim-")
    try:
        if network:
            net = await SimNetwork.start(f"lppvm-{os.getpid()}-{os.urandom(3).hex()}")
        sim = Simulator(scenario, ports=ports, pty_dir=pty_dir, network=net)
        await sim.start()
        try:
            yield sim
        finally:
            await sim.stop()
    finally:
        if net is not None:
            await net.stop()
        shutil.rmtree(pty_dir, ignore_errors=True)


# -- the serial line as a Pipe ---------------------------------------------------------------


class SocketPipe(Pipe):
    """A larappp Pipe over a connected stream socket: the VM's ttyS1 as QEMU exports it."""

    has_modem_lines = False

    def __init__(self, sock: socket.socket, name: str = "vm-ttyS1") -> None:
        super().__init__()
        self.name = name
        self._sock: socket.socket | None = sock
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.closed = False

    async def open(self) -> None:
        if self._writer is not None:
            return
        if self._sock is None or self.closed:
            raise PortError(f"{self.name} was closed; boot a new PppdVm to get a new serial line")
        self._reader, self._writer = await asyncio.open_unix_connection(sock=self._sock)
        self._sock = None

    async def read(self, max_bytes: int = 65536) -> bytes:
        if self._reader is None:
            raise PortError(f"{self.name} is not open: call open() first")
        try:
            data = await self._reader.read(max_bytes)
        except (ConnectionError, OSError) as exc:
            raise PortClosed(f"{self.name} went away: {exc}") from exc
        if not data:
            raise PortClosed(f"{self.name} went away: QEMU closed the serial socket")
        return data

    async def write(self, data: bytes) -> None:
        if self._writer is None:
            raise PortError(f"{self.name} is not open: call open() first")
        if self.closed or self._writer.is_closing():
            raise PortClosed(f"{self.name} is closed")
        try:
            self._writer.write(data)
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            raise PortClosed(f"{self.name} went away: {exc}") from exc

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()
        elif self._sock is not None:
            self._sock.close()
        self._sock = None


# -- the VM --------------------------------------------------------------------------------


class PppdVm:
    """One QEMU VM (TCG) running a guest script, with ttyS1 as a PPP serial line on the host.

    Use it as a context manager: QEMU is killed and its temporary folder removed on exit,
    also when the test fails (the console tail is then added to the exception as a note).
    Start it from the main thread: QEMU is tied to the thread that starts it.
    """

    def __init__(
        self,
        guest_script: str,
        *,
        memory_mb: int = 96,
        tb_size_mb: int = 32,
        artifacts: VmArtifacts | None = None,
        extra_append: str = "",
        host_ttys: Sequence[str] = (),
    ) -> None:
        """`host_ttys`: host tty paths (e.g. the simulator's pty ports) QEMU opens itself as
        the guest's ttyS1, ttyS2, ... instead of the unix socket on ttyS1 (then there is no
        `open_pipe()`: the guest talks to those ttys directly)."""
        self.guest_script = guest_script
        self.memory_mb = memory_mb
        self.tb_size_mb = tb_size_mb
        self.artifacts = artifacts
        self.extra_append = extra_append
        self.host_ttys = list(host_ttys)
        if len(self.host_ttys) > 3:
            raise ValueError("the guest has four UARTs: the console and at most three host ttys")
        self.workdir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        #: time.monotonic() when QEMU was started
        self.started_at: float | None = None
        #: QEMU's peak resident set (its rusage ru_maxrss), known once QEMU has exited
        self.peak_rss_bytes: int | None = None
        self._serial: socket.socket | None = None
        self._serial_taken = False
        self._lock_fd: int | None = None
        self._kept_console: str | None = None
        self._kept_share: dict[str, str] | None = None

    # -- paths ---------------------------------------------------------------------------
    def _dir(self) -> Path:
        if self.workdir is None:
            raise RuntimeError("the VM is not started: use `with PppdVm(...) as vm:`")
        return self.workdir

    @property
    def share(self) -> Path:
        """The host folder the guest sees as its writable /share."""
        return self._dir() / "share"

    @property
    def console_path(self) -> Path:
        """The file QEMU writes the guest's console (ttyS0) to."""
        return self._dir() / "console.log"

    @property
    def serial_path(self) -> Path:
        """The unix socket QEMU exports the guest's ttyS1 on."""
        return self._dir() / "ttyS1.sock"

    def console_text(self) -> str:
        """Everything the guest printed on its console so far (kept after stop())."""
        if self._kept_console is not None:
            return self._kept_console
        try:
            return self.console_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def read_share(self, name: str) -> str | None:
        """A file the guest wrote to /share, or None while it does not exist (kept after stop())."""
        if self._kept_share is not None:
            return self._kept_share.get(name)
        try:
            return (self.share / name).read_text(errors="replace")
        except FileNotFoundError:
            return None

    async def wait_for_share(self, name: str, timeout: float) -> str:
        """Wait until the guest has written `name` to /share (e.g. "ip-up.txt") and return it."""
        deadline = time.monotonic() + timeout
        while not (text := self.read_share(name)):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the guest wrote no {name} within {timeout} s; console:\n"
                    f"{self.console_text()[-3000:]}"
                )
            await asyncio.sleep(0.05)
        return text

    def _keep_outputs(self) -> None:
        """Copy the console and the share's small files to memory before the folder goes."""
        if self.workdir is None or self._kept_share is not None:
            return
        self._kept_console = self.console_text()
        kept: dict[str, str] = {}
        for path in self.share.glob("*"):
            if path.is_file() and path.stat().st_size <= 1 << 20:
                kept[path.name] = path.read_text(errors="replace")
        self._kept_share = kept

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> Self:
        """Build/locate the artefacts, boot QEMU and connect to its ttyS1 socket."""
        if self.process is not None:
            raise RuntimeError("this PppdVm is already started; make a new one per boot")
        reason = skip_reason()
        if reason is not None:
            raise RuntimeError(reason)
        artifacts = self.artifacts or build_artifacts()
        self.artifacts = artifacts
        lock_path = vm_dir() / "run.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)  # one VM at a time, across processes too
        try:
            self._boot(artifacts)
        except BaseException:
            self.stop()
            raise
        return self

    def _boot(self, artifacts: VmArtifacts) -> None:
        # The serial socket's path must fit in sun_path (108 bytes) whatever TMPDIR is.
        base = None if len(tempfile.gettempdir()) < 60 else "/tmp"
        self.workdir = Path(tempfile.mkdtemp(prefix="larappp-vm-", dir=base))
        self.share.mkdir()
        (self.share / "guest.sh").write_text(self.guest_script)
        append = f"console=ttyS0 quiet panic=-1 {self.extra_append}".strip()
        command = [
            QEMU,
            "-nographic", "-nodefaults", "-no-user-config", "-monitor", "none",
            "-accel", f"tcg,tb-size={self.tb_size_mb}",
            "-m", str(self.memory_mb),
            "-no-reboot",
            "-kernel", str(artifacts.kernel),
            "-initrd", str(artifacts.initrd),
            "-append", append,
            "-chardev", f"file,id=console,path={self.console_path}",
            "-serial", "chardev:console",
            *self._serial_options(),
            "-virtfs",
            "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
            "-virtfs",
            f"local,path={self.share},mount_tag=share,security_model=none,multidevs=remap",
        ]
        if shutil.which("setpriv"):
            # QEMU gets SIGKILL if the test process dies without stopping it (util-linux).
            command = ["setpriv", "--pdeathsig", "KILL", "--", *command]
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=open(self._dir() / "qemu.out", "wb"),  # noqa: SIM115 - closed with the process
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        if not self.host_ttys:
            self._serial = self._connect_serial()

    def _serial_options(self) -> list[str]:
        if not self.host_ttys:
            # The socket backend, not pty: a pty drops what the guest sends while the
            # host side is closed, and pppd's first Configure-Requests would be lost.
            return [
                "-chardev", f"socket,id=ppp,path={self.serial_path},server=on,wait=off",
                "-serial", "chardev:ppp",
            ]
        # QEMU opens each host tty itself (a pty's other end must stay open meanwhile).
        options: list[str] = []
        for index, path in enumerate(self.host_ttys, start=1):
            options += ["-chardev", f"serial,id=tty{index},path={os.path.realpath(path)}",
                        "-serial", f"chardev:tty{index}"]
        return options

    def _connect_serial(self) -> socket.socket:
        deadline = time.monotonic() + 10.0
        while True:
            if self.process is not None and self._poll() is not None:
                raise RuntimeError(
                    f"QEMU exited with status {self.process.returncode} before making its serial "
                    f"socket: {self._qemu_output()[-2000:]}"
                )
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(self.serial_path))
                return sock
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                if time.monotonic() > deadline:
                    raise RuntimeError("QEMU did not make its serial socket within 10 s") from None
                time.sleep(0.01)

    def _qemu_output(self) -> str:
        try:
            return (self._dir() / "qemu.out").read_text(errors="replace")
        except (FileNotFoundError, RuntimeError):
            return ""

    def _take_serial(self) -> socket.socket:
        if self._serial is None or self._serial_taken:
            raise RuntimeError("the serial line was already taken (one open_pipe()/open_streams() per VM)")
        self._serial_taken = True
        return self._serial

    async def open_pipe(self) -> SocketPipe:
        """The guest's ttyS1 as an open larappp Pipe (bytes the guest sent before are kept)."""
        pipe = SocketPipe(self._take_serial())
        await pipe.open()
        return pipe

    async def open_streams(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The guest's ttyS1 as an asyncio (reader, writer) pair."""
        return await asyncio.open_unix_connection(sock=self._take_serial())

    def _poll(self) -> int | None:
        """Reap QEMU if it ended (with wait4, for its peak RSS); its exit status or None."""
        if self.process is None or self.process.returncode is not None:
            return None if self.process is None else self.process.returncode
        try:
            pid, status, usage = os.wait4(self.process.pid, os.WNOHANG)
        except ChildProcessError:
            return self.process.poll()
        if pid == 0:
            return None
        self.process.returncode = os.waitstatus_to_exitcode(status)
        self.peak_rss_bytes = usage.ru_maxrss * 1024
        return self.process.returncode

    def _wait_exit(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._poll() is None:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    @property
    def running(self) -> bool:
        """True while QEMU runs."""
        return self.process is not None and self._poll() is None

    def guest_exit_status(self) -> int | None:
        """The guest script's exit status, once it has ended (init writes it to the share)."""
        text = self.read_share(".exit-status")
        return int(text) if text and text.strip().isdigit() else None

    def wait(self, timeout: float) -> int:
        """Wait for the guest to end and QEMU to exit; return the guest script's exit status."""
        if self.process is None:
            raise RuntimeError("the VM is not started")
        if not self._wait_exit(timeout):
            raise TimeoutError(
                f"the VM did not power off within {timeout} s; console:\n{self.console_text()[-3000:]}"
            ) from None
        status = self.guest_exit_status()
        if status is None:
            raise RuntimeError(
                f"QEMU exited ({self.process.returncode}) but the guest wrote no exit status; "
                f"console:\n{self.console_text()[-3000:]}"
            )
        return status

    async def wait_async(self, timeout: float) -> int:
        """`wait()` without blocking the event loop."""
        deadline = time.monotonic() + timeout
        while self.running:
            if time.monotonic() > deadline:
                return self.wait(0)  # raises TimeoutError with the console
            await asyncio.sleep(0.05)
        return self.wait(1)

    def rss_bytes(self) -> int | None:
        """QEMU's current resident set size, or None when it does not run."""
        if not self.running or self.process is None:
            return None
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except (FileNotFoundError, ProcessLookupError, ValueError):
            return None
        return None

    def stop(self) -> None:
        """Kill QEMU if it still runs, close the serial socket, remove the temporary folder."""
        if self.process is not None and self._poll() is None:
            self.process.terminate()
            if not self._wait_exit(5):
                self.process.kill()
                self._wait_exit(5)
        if self._serial is not None and not self._serial_taken:
            self._serial.close()
        if self.workdir is not None:
            self._keep_outputs()
            if not os.environ.get("LARAPPP_VM_KEEP"):
                shutil.rmtree(self.workdir, ignore_errors=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def __enter__(self) -> Self:
        return self if self.process is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and self.workdir is not None:
            pppd_log = self.read_share("pppd.log") or ""
            exc.add_note(
                f"--- VM console (tail) ---\n{self.console_text()[-3000:]}\n"
                f"--- pppd.log (tail) ---\n{pppd_log[-3000:]}"
            )
        self.stop()
