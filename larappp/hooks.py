"""Hook scripts run when a session's link comes up, goes down or is lost, like pppd's
/etc/ppp/ip-up.d and NetworkManager's dispatcher.

Every executable in `modem.hooks_dir` (default /etc/larappp/hooks.d) whose name is made of
letters, digits, "-" and "_" (run-parts(8): no editor backups, no .dpkg-old) runs in name
order, one at a time, with a clean environment:

    LARAPPP_EVENT      up | down | lost
    LARAPPP_CID        the PDP context id ("1")
    LARAPPP_APN        the APN
    LARAPPP_PORT       the module's port the session dials on
    LARAPPP_IFACE      the link's interface ("wwan0"); empty when PPP did not run
    LARAPPP_IPV4       the link's IPv4 address; LARAPPP_IPV4_PEER its peer
    LARAPPP_IPV6       the link's global IPv6 addresses, space-separated
    LARAPPP_DNS        the DNS servers the network gave, space-separated
    LARAPPP_CAUSE      why the link was lost or went down (empty for up)
    PATH               /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

Never a user name or password. A hook runs as larappp does (root), so, as NetworkManager
does, a script that is not owned by root (or by larappp's user) or that its group or others
may write is skipped with a warning. Each hook gets `modem.hooks_timeout` seconds (default
30); then its process group is killed. Its output goes to the log at level info
(`--log-level info`); a non-zero exit status and a timeout are warnings.
Hooks run in the background in the order of the events: a slow hook never holds a session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

UP, DOWN, LOST = "up", "down", "lost"
HOOK_NAME = re.compile(r"^[A-Za-z0-9_-]+$")  # run-parts(8)'s default (LSB) name rule
HOOK_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: session states (larappp.session) after "up" that mean larappp itself ended the link
_HUNG_UP_STATES = frozenset({"hanging-up", "down"})


@dataclass(frozen=True)
class HookEvent:
    """One session's link came up, went down, or was lost: what the hooks are told."""

    event: str
    cid: int
    apn: str
    port: str = ""
    iface: str = ""
    ipv4: str = ""
    ipv4_peer: str = ""
    ipv6: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    cause: str = ""

    def environment(self) -> dict[str, str]:
        return {
            "PATH": HOOK_PATH,
            "LARAPPP_EVENT": self.event,
            "LARAPPP_CID": str(self.cid),
            "LARAPPP_APN": self.apn,
            "LARAPPP_PORT": self.port,
            "LARAPPP_IFACE": self.iface,
            "LARAPPP_IPV4": self.ipv4,
            "LARAPPP_IPV4_PEER": self.ipv4_peer,
            "LARAPPP_IPV6": " ".join(self.ipv6),
            "LARAPPP_DNS": " ".join(self.dns),
            "LARAPPP_CAUSE": self.cause,
        }

    @classmethod
    def of(cls, event: str, session: Mapping[str, object], cause: str = "") -> HookEvent:
        """From a session's `status --json` entry (the link's figures as it was up)."""

        def text(key: str) -> str:
            value = session.get(key)
            return str(value) if value else ""

        def texts(key: str) -> tuple[str, ...]:
            value = session.get(key)
            return tuple(str(v) for v in value) if isinstance(value, list | tuple) else ()

        return cls(
            event=event, cid=int(str(session.get("cid", 0))), apn=text("apn"), port=text("port"),
            iface=text("ifname"), ipv4=text("ipv4"), ipv4_peer=text("ipv4_peer"),
            ipv6=texts("ipv6_global"), dns=texts("dns"), cause=cause,
        )


def hook_scripts(directory: Path) -> list[Path]:
    """The hooks to run, in name order; unsafe ones are skipped with a warning."""
    try:
        entries = sorted(directory.iterdir())
    except FileNotFoundError:
        return []
    except OSError as exc:
        log.warning("hooks in %s not read: %s", directory, exc.strerror)
        return []
    scripts = []
    for path in entries:
        if not HOOK_NAME.match(path.name):
            continue
        try:
            st = path.stat()
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode) or not os.access(path, os.X_OK):
            continue
        if st.st_uid not in (0, os.geteuid()) or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            log.warning("hook %s skipped: it must be owned by root and writable by its owner only", path)
            continue
        scripts.append(path)
    return scripts


async def run_hook(path: Path, event: HookEvent, timeout: float) -> int | None:
    """Run one hook; its output lines go to the log. Returns its exit status, None when it
    was killed for taking longer than `timeout` seconds."""
    what = f"hook {path.name} ({event.event}, cid {event.cid})"
    try:
        process = await asyncio.create_subprocess_exec(
            str(path), env=event.environment(), cwd="/", stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )
    except OSError as exc:
        log.warning("%s did not start: %s", what, exc.strerror or exc)
        return 127
    assert process.stdout is not None

    async def log_output() -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            log.info("%s: %s", what, raw.decode("utf-8", "replace").rstrip())

    try:
        await asyncio.wait_for(asyncio.gather(log_output(), process.wait()), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # its own session: its children go too
        await process.wait()
        log.warning("%s killed after %g s (modem.hooks_timeout)", what, timeout)
        return None
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        raise
    if process.returncode:
        log.warning("%s exited with status %d", what, process.returncode)
    return process.returncode


class HookDispatcher:
    """Turns session state changes into up/down/lost events and runs the hooks for each,
    in order, in the background."""

    def __init__(self, directory: str | Path, timeout: float) -> None:
        self.directory = Path(directory)
        self.timeout = timeout
        #: per cid: the session as it last was while up (None: not up)
        self._up: dict[int, dict[str, object]] = {}
        self._queue: asyncio.Queue[HookEvent] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    def observe(self, sessions: Iterable[Mapping[str, object]], *, stopping: bool = False) -> None:
        """Compare each session's `status --json` entry with the last one seen: a session
        that came up is "up"; one that left up is "lost", or "down" when it was hung up."""
        for session in sessions:
            cid = int(str(session.get("cid", 0)))
            state = session.get("state")
            if state == "up":
                if cid not in self._up:
                    self._emit(HookEvent.of(UP, session))
                self._up[cid] = dict(session)
            elif cid in self._up:
                was_up = self._up.pop(cid)
                cause = str(session.get("last_loss_cause") or session.get("error") or "")
                lost = state not in _HUNG_UP_STATES and not stopping
                self._emit(HookEvent.of(LOST if lost else DOWN, was_up, cause if lost else "larappp down"))

    def _emit(self, event: HookEvent) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            log.warning("hooks for %s of cid %d not run: no event loop", event.event, event.cid)
            return
        self._queue.put_nowait(event)
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._work(), name="hooks")

    async def _work(self) -> None:
        while not self._queue.empty():
            event = self._queue.get_nowait()
            for path in hook_scripts(self.directory):
                await run_hook(path, event, self.timeout)

    async def drain(self) -> None:
        """Wait until the hooks of every event so far have run (each bounded by the timeout)."""
        if self._worker is not None:
            await self._worker
