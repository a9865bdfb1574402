"""The pppd backend without kernel PPP: its options file, quoting, exit statuses, and its
lifecycle around a stand-in pppd (a small script that records what it was given).

The real pppd talks to real peers in the VM tier (tests/vm/test_vm_pppd_backend.py).
Here the stand-in shows what larappp hands pppd (argv, environment, the files and their
modes, what /etc/ppp looks like from inside its mount namespace), that the pump carries
bytes both ways and holds the module's bytes until pppd has spoken, that no secret
reaches argv, the environment or the log, and how each way of ending comes out. The
host's own pppd, which exits 4 here (no /dev/ppp), checks the exit-status path for real.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import stat
import sys
import termios
import time
from collections.abc import Awaitable, Callable
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, TypeVar

import pytest

from larappp.engine.options import EngineOptions, PppdOptions
from larappp.engine.pppd.engine import PppdEngine, owns_device
from larappp.engine.pppd.options import (
    BRIDGED,
    Line,
    options_file_text,
    parse_ipcp_report,
    pppd_word,
)
from larappp.engine.pppd.process import PPPD, PPPD_EXIT_REASONS, describe_exit
from larappp.errors import PortClosed, PPPError
from larappp.transport import mountns, ttylend
from larappp.transport.memory import pipe_pair
from larappp.transport.ptypair import PtyPair
from larappp.transport.rfc2217 import Rfc2217Pipe
from larappp.transport.serial import SerialPipe
from tests.secretscan import files_showing, processes_showing

T = TypeVar("T")
PASSWORD = 'pa ss"w\\ord#1'
USER = "lara-user"
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="pppd and its mount namespace need root")


def run(coro: Awaitable[T], timeout: float = 30.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def options(**overrides: Any) -> EngineOptions:
    values: dict[str, Any] = {
        "ifname": "lppd0", "families": (4, 6), "username": USER, "password": PASSWORD,
        "auth": "chap", "mru": 1430, "metric": 300, "dns_mode": "none", "echo_interval": 10.0,
    }
    values.update(overrides)
    return EngineOptions(**values)


# -- the options file --------------------------------------------------------------------------

def option_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_options_file_states_every_setting_debian_changes() -> None:
    text = options_file_text(options(), ip_up=Path("/r/ip-up"), ip_down=Path("/r/ip-down"))
    lines = option_lines(text)
    # Debian's /etc/ppp/options: asyncmap 0, auth, crtscts, lock, hide-password, modem,
    # lcp-echo-interval 30, lcp-echo-failure 4: each one has its answer here.
    for line in ("asyncmap 0", "noauth", "nocrtscts", "nolock", "hide-password", "local",
                 "lcp-echo-interval 10", "lcp-echo-failure 3"):
        assert line in lines
    for line in ("nodetach", "noipdefault", "usepeerdns", "nodefaultroute", "noreplacedefaultroute",
                 "nodefaultroute6", "+ipv6", "ifname lppd0", "mru 1430", "mtu 1430", "noccp", "novj",
                 "refuse-pap", "refuse-eap", "refuse-mschap", "refuse-mschap-v2", "noremoteip",
                 'ip-up-script "/r/ip-up"', 'ip-down-script "/r/ip-down"'):
        assert line in lines
    assert "refuse-chap" not in lines and "noip" not in lines and "debug" not in lines
    assert f"user {pppd_word(USER)}" in lines
    assert f"password {pppd_word(PASSWORD)}" in lines


@pytest.mark.parametrize(
    ("families", "auth", "present", "absent"),
    [
        ((4,), "pap", ["noipv6", "refuse-chap"], ["+ipv6", "noip", "refuse-pap"]),
        ((6,), "none", ["noip", "+ipv6"], ["noipv6", "refuse-pap", "refuse-chap"]),
        ((4, 6), "chap", ["+ipv6", "refuse-pap"], ["noip", "noipv6", "refuse-chap"]),
    ],
)
def test_options_follow_families_and_auth(
    families: tuple[int, ...], auth: str, present: list[str], absent: list[str]
) -> None:
    lines = option_lines(options_file_text(options(families=families, auth=auth), ip_up=Path("/u"), ip_down=Path("/d")))
    assert all(line in lines for line in present)
    assert not any(line in lines for line in absent)


def test_options_unit_debug_and_echo_off() -> None:
    lines = option_lines(options_file_text(
        options(echo_interval=None, echo_failures=2, pppd=PppdOptions(unit=3)), ip_up=Path("/u"), ip_down=Path("/d"), debug=True,
    ))
    assert {"unit 3", "debug", "lcp-echo-interval 0", "lcp-echo-failure 2"} <= set(lines)


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("plain", '"plain"'),
        ("two words", '"two words"'),
        ('quo"te', '"quo\\"te"'),
        ("back\\slash", '"back\\\\slash"'),
        ("hash#not-a-comment", '"hash#not-a-comment"'),
        ("tab\there", '"tab\\011here"'),
        ("nul\x00 del\x7f", '"nul\\000 del\\177"'),
        ("ü€", '"ü€"'),
        ("", '""'),
    ],
)
def test_pppd_word_quotes_for_pppds_getword(text: str, word: str) -> None:
    assert pppd_word(text) == word


def unquote_like_pppd(word: str) -> str:
    """pppd's getword() for one double-quoted word (escapes: \\ooo octal, else the character)."""
    assert word[0] == word[-1] == '"'
    out, i, body = [], 0, word[1:-1]
    while i < len(body):
        if body[i] == "\\":
            if body[i + 1] in "01234567":
                out.append(chr(int(body[i + 1:i + 4], 8)))
                i += 4
            else:
                out.append(body[i + 1])
                i += 2
        else:
            assert body[i] != '"', "an unescaped quote would end the word"
            out.append(body[i])
            i += 1
    return "".join(out)


@pytest.mark.parametrize("text", [PASSWORD, "a\\\\\"b", "\x01\x1f\x7f7", "0\\123", "x" * 200])
def test_pppd_word_round_trips(text: str) -> None:
    assert unquote_like_pppd(pppd_word(text)) == text


def test_ipcp_report_parsing() -> None:
    report = parse_ipcp_report(
        "IFNAME=lara1\nIPLOCAL=100.64.1.2\nIPREMOTE=100.64.1.1\nDNS1=198.51.100.53\nDNS2=198.51.100.53\nJUNK\n"
    )
    assert report.ifname == "lara1"
    assert (report.local, report.peer) == (IPv4Address("100.64.1.2"), IPv4Address("100.64.1.1"))
    assert report.dns == (IPv4Address("198.51.100.53"),)  # the same server twice counts once
    empty = parse_ipcp_report("IFNAME=lara1\nIPLOCAL=\nDNS1=\nDNS2=not-an-address\n")
    assert (empty.local, empty.peer, empty.dns) == (None, None, ())


# -- exit statuses -------------------------------------------------------------------------------

def test_every_pppd_exit_status_has_a_reason() -> None:
    assert sorted(PPPD_EXIT_REASONS) == list(range(20))  # pppd(8) lists 0 to 19
    for status in range(20):
        text = describe_exit(status)
        assert text.startswith(f"pppd exited with status {status}: ")


@pytest.mark.parametrize(
    ("status", "last", "expected"),
    [
        (4, "Couldn't open the /dev/ppp device", 'kernel has no PPP support (/dev/ppp cannot be opened): load ppp_generic and ppp_async, or set backend = "builtin": pppd said "Couldn\'t open the /dev/ppp device"'),
        (19, "", "authentication to the network failed: check the session's user, password and auth"),
        (15, "", "stopped answering LCP Echo-Requests"),
        (10, "", "check the APN and pdp_type"),
        (2, "unrecognized option 'x'", "pppd said \"unrecognized option 'x'\""),
        (16, "Modem hangup", "the line hung up"),
        (mountns.BIND_FAILED, "mount: bad", "could not give pppd a private /etc/ppp"),
        (42, "", "a reason pppd(8) does not list"),
        (-9, "", "pppd was killed by SIGKILL"),
    ],
)
def test_exit_status_reasons(status: int, last: str, expected: str) -> None:
    text = describe_exit(status, last)
    assert expected in text
    if status in (15, 16, 19):
        assert "pppd said" not in text  # the last log line is added only where it helps


# -- the pty bridge -------------------------------------------------------------------------------

def test_pty_pair_carries_bytes_and_hangs_up() -> None:
    async def body() -> None:
        pty = PtyPair.open()
        program = os.open(pty.slave_path, os.O_RDWR | os.O_NOCTTY)
        try:
            data = bytes(range(256)) * 10  # raw: every octet passes unchanged (within the 4 KiB tty buffer)
            await pty.write(data)
            got = b""
            while len(got) < len(data):
                got += os.read(program, 65536)
            assert got == data
            os.write(program, b"\x7e\xff\x03back")
            for _ in range(100):  # the kernel moves the bytes to the master a moment later
                if pty.pending():
                    break
                await asyncio.sleep(0.01)
            assert pty.pending() == 7
            assert await pty.read() == b"\x7e\xff\x03back"
            assert pty.pending() == 0
            pty.hang_up()
            with pytest.raises(PortClosed):
                await pty.read()
            try:
                after = os.read(program, 1)
            except OSError:
                after = b""
            assert after == b""  # the program sees the hang-up: end of file or EIO
            assert pty.pending() == 0
            pty.close()  # twice is fine
        finally:
            os.close(program)

    run(body())


# -- the engine around a stand-in pppd -----------------------------------------------------

FAKE_PPPD = '''\
#!{python}
"""A stand-in for pppd: records what it got, speaks first, then acts out `behaviour`."""
import fcntl, json, os, signal, stat, struct, sys, termios, time
record_path, behaviour = {record!r}, {behaviour!r}
tty = sys.argv[1]
options_file = sys.argv[sys.argv.index("file") + 1]
record = {{
    "argv": sys.argv, "env": dict(os.environ), "cwd": os.getcwd(), "pid": os.getpid(),
    "pgid": os.getpgid(0), "sid": os.getsid(0), "stdin_tty": os.ttyname(0) if os.isatty(0) else None,
    "options_mode": stat.S_IMODE(os.stat(options_file).st_mode),
    "folder_mode": stat.S_IMODE(os.stat(os.path.dirname(options_file)).st_mode),
    "ip_up_mode": stat.S_IMODE(os.stat(os.path.join(os.path.dirname(options_file), "ip-up")).st_mode),
    "options_text": open(options_file).read(),
    "etc_ppp": sorted(os.listdir("/etc/ppp")) if os.path.isdir("/etc/ppp") else None,
    "etc_ppp_options": open("/etc/ppp/options").read() if os.path.exists("/etc/ppp/options") else None,
}}
def save(**more):
    record.update(more)
    with open(record_path + ".tmp", "w") as f:
        json.dump(record, f)
    os.replace(record_path + ".tmp", record_path)
signal.signal(signal.SIGTERM, lambda *a: (save(ended="SIGTERM"), os._exit(5)))
save()
fd = os.open(tty, os.O_RDWR | os.O_NOCTTY)
# what pppd would log, secrets included, to check the engine masks its log
print("Using interface lppd0; user", {user!r}, "password", {password!r}, file=sys.stderr, flush=True)
os.write(fd, b"~HELLO~")
got = b""
while b"WORLD" not in got:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        chunk = b""
    if not chunk:
        save(got=got.decode(errors="replace"), ended="hangup")
        os._exit(16)
    got += chunk
save(got=got.decode(errors="replace"))
if behaviour == "auth-failed":
    print("PAP authentication failed", file=sys.stderr, flush=True)
    os._exit(19)
if behaviour in ("echo-failed", "echo-looped"):
    if behaviour == "echo-looped":  # the module in command mode echoed pppd's Echo-Requests
        print("appear to have received our own echo-reply!", file=sys.stderr, flush=True)
    print("No response to 3 echo-requests", file=sys.stderr, flush=True)
    os._exit(15)
if behaviour == "take-tty":
    # as pppd on the module's device: its own termios and line discipline (N_NULL stands in
    # for N_PPP, which this kernel lacks), left on the tty when it is killed
    attrs = termios.tcgetattr(fd)
    attrs[3] |= termios.ECHO
    termios.tcsetattr(fd, termios.TCSANOW, attrs)
    fcntl.ioctl(fd, termios.TIOCSETD, struct.pack("i", 27))
    save(took=True)
    while True:
        time.sleep(1)
if behaviour == "ack-and-exit":
    os.write(fd, b"~BYE~" * 2000)  # pppd's last frames, after which it exits at once
    os._exit(0)
while True:  # "wait": until SIGTERM or a hang-up
    try:
        if not os.read(fd, 4096):
            break
    except OSError:
        break
save(ended="hangup")
os._exit(16)
'''


class Harness:
    """A PppdEngine on one end of a memory pipe pair, a stand-in pppd, its record file."""

    def __init__(
        self, tmp: Path, behaviour: str, *, isolate: bool = True, leftover: bytes = b"LEFT", modem_lines: bool = False,
    ) -> None:
        self._setup(tmp, behaviour, isolate)
        self.host_pipe, self.module_pipe = pipe_pair(modem_lines=modem_lines)
        self._engine(leftover)

    def _setup(self, tmp: Path, behaviour: str, isolate: bool) -> None:
        self.record_path = tmp / "record.json"
        self.fake = tmp / "fake-pppd"
        self.fake.write_text(FAKE_PPPD.format(
            python=sys.executable, record=str(self.record_path), behaviour=behaviour, user=USER, password=PASSWORD,
        ))
        self.fake.chmod(0o755)
        self.runtime = tmp / "run"
        self.isolate = isolate
        self.notes: list[str] = []

    def _engine(self, leftover: bytes) -> None:
        self.engine = PppdEngine(
            self.host_pipe,
            options(runtime_dir=str(self.runtime), pppd=PppdOptions(path=str(self.fake), isolate=self.isolate)),
            leftover=leftover, on_event=self.notes.append,
        )

    def record(self) -> dict[str, Any]:
        return dict(json.loads(self.record_path.read_text()))

    async def module_reads(self, wanted: bytes) -> bytes:
        got = b""
        while wanted not in got:
            got += await self.module_pipe.read()
        return got

    async def wait_record(self, key: str) -> dict[str, Any]:
        while True:
            if self.record_path.exists():
                record = self.record()
                if key in record:
                    return record
            await asyncio.sleep(0.02)


def engine_test(body: Callable[[Harness], Awaitable[None]], tmp: Path, behaviour: str, **kwargs: Any) -> Harness:
    async def main() -> Harness:
        harness = Harness(tmp, behaviour, **kwargs)
        try:
            await body(harness)
        finally:
            failures = await harness.engine.stop()
            assert failures == []
        return harness

    return run(main())


@root_only
@pytest.mark.parametrize("isolate", [True, False], ids=["private-etc-ppp", "host-etc-ppp"])
def test_engine_hands_pppd_a_pty_and_private_files(
    tmp_path: Path, isolate: bool, caplog: pytest.LogCaptureFixture
) -> None:
    if isolate:
        why = run(mountns.available())
        if why is not None:
            pytest.skip(f"no private mounts here: {why}")
    caplog.set_level(logging.DEBUG, logger="larappp.engine.pppd")

    async def body(h: Harness) -> None:
        # The module talks first (its LCP Configure-Request): held until pppd has spoken.
        await h.module_pipe.write(b"EARLY")
        await h.engine.start()
        assert await h.module_reads(b"~HELLO~") == b"~HELLO~"
        await h.module_pipe.write(b"WORLD")
        record = await h.wait_record("got")
        # the leftover from CONNECT first, then what the module sent, in order, nothing lost
        assert record["got"] == "LEFTEARLYWORLD"
        folder = h.runtime / "pppd" / "lppd0"
        assert record["folder_mode"] == 0o700 and record["options_mode"] == 0o600
        assert record["ip_up_mode"] == 0o700
        assert stat.S_IMODE((h.runtime / "pppd").stat().st_mode) == 0o700
        # secrets only in the 0600 options file
        assert pppd_word(PASSWORD) in record["options_text"]
        assert all(PASSWORD not in arg and USER not in arg for arg in record["argv"])
        # PWD, SHLVL: the wrapper shell; LC_CTYPE: the stand-in is Python (PEP 538)
        assert record["env"].keys() <= {"PATH", "LANG", "PWD", "SHLVL", "_", "LC_CTYPE"}
        assert not any(PASSWORD in value or USER in value for value in record["env"].values())
        assert record["argv"][2:] == ["file", str(folder / "larappp.options")]
        assert record["argv"][1].startswith("/dev/pts/")
        assert record["cwd"] == str(folder)
        private = ["ip-down", "ip-up", "larappp.options", "options"]
        if isolate and host_etc_ppp is not None:
            # pppd's /etc/ppp is the runtime folder: none of the host's options or hooks
            assert record["etc_ppp"] == private
            assert record["etc_ppp_options"].startswith("# larappp: empty on purpose")
        else:
            # without the ppp package there is no /etc/ppp, and nothing for pppd to read there
            assert record["etc_ppp"] == host_etc_ppp
        assert h.engine.isolated is isolate
        assert h.engine.status()["pid"] == record["pid"]
        assert h.engine.status()["phase"] == "negotiating"

    # a fresh machine (no ppp package) has no /etc/ppp: the engine needs none
    host_etc_ppp = sorted(os.listdir("/etc/ppp")) if os.path.isdir("/etc/ppp") else None

    h = engine_test(body, tmp_path, "wait", isolate=isolate)
    # the host's own /etc/ppp (if any) is untouched either way
    assert (sorted(os.listdir("/etc/ppp")) if os.path.isdir("/etc/ppp") else None) == host_etc_ppp
    assert h.record()["ended"] == "hangup"  # stop() hung the pty up
    assert h.engine.exit_status == 16
    assert h.engine.reason.startswith("larappp ended the link")
    assert not (h.runtime / "pppd").exists()  # the runtime folder and its parent are gone
    assert h.host_pipe.owner is None  # the pipe is back for the AT runner
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "user *** password ***" in logged
    assert PASSWORD not in logged and USER not in logged


@root_only
def test_no_process_file_or_log_shows_the_secrets_while_pppd_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="larappp.engine.pppd")
    secrets = [USER, PASSWORD, pppd_word(PASSWORD)]

    async def body(h: Harness) -> None:
        await h.engine.start()
        assert await h.module_reads(b"~HELLO~") == b"~HELLO~"
        await h.module_pipe.write(b"WORLD")
        await h.wait_record("got")
        # pppd logged its line with both secrets: the engine has passed it on, masked
        deadline = time.monotonic() + 10
        while "user *** password ***" not in caplog.text and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert "user *** password ***" in caplog.text
        # every process on the host (pppd, the wrapper, larappp's helpers), every file of
        # the runtime folder but the 0600 options file pppd reads them from
        assert processes_showing(secrets) == []
        options_file = h.runtime / "pppd" / "lppd0" / "larappp.options"
        assert files_showing(secrets, [h.runtime], skip={options_file}) == []

    isolate = run(mountns.available()) is None
    engine_test(body, tmp_path, "wait", isolate=isolate)
    assert not any(secret in caplog.text for secret in secrets)


@root_only
def test_terminate_is_sigterm_and_the_module_reads_after_the_exit(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        await h.engine.start()
        await h.module_reads(b"~HELLO~")
        await h.module_pipe.write(b"WORLD")
        await h.wait_record("got")
        started = time.monotonic()
        await h.engine.terminate(timeout=5)
        assert time.monotonic() - started < 3
        assert h.engine.terminated.is_set() and h.engine.exit_status == 5
        assert h.record()["ended"] == "SIGTERM"
        assert h.engine.reason == "larappp ended the link (pppd exited with status 5)"
        # after pppd's exit the pump no longer reads the module's port: NO CARRIER stays there
        await h.module_pipe.write(b"\r\nNO CARRIER\r\n")
        await asyncio.sleep(0.1)
        assert h.host_pipe.buffered() == len(b"\r\nNO CARRIER\r\n")

    engine_test(body, tmp_path, "wait")


@root_only
def test_last_frames_reach_the_module_after_pppd_exits(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        await h.engine.start()
        await h.module_reads(b"~HELLO~")
        await h.module_pipe.write(b"WORLD")
        await h.engine.terminated.wait()
        got = await asyncio.wait_for(h.module_reads(b"~BYE~" * 2000), 5)
        assert got.endswith(b"~BYE~" * 2000)
        assert h.engine.exit_status == 0
        assert h.engine.reason == "pppd exited with status 0: pppd ended the link at the module's request"

    engine_test(body, tmp_path, "ack-and-exit", leftover=b"")


@root_only
def test_auth_failure_is_a_clear_error(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        await h.engine.start()
        await h.module_reads(b"~HELLO~")
        await h.module_pipe.write(b"WORLD")
        with pytest.raises(PPPError, match="check the session's user, password and auth"):
            await h.engine.wait_up(10)
        assert h.engine.exit_status == 19
        assert "lppd0: pppd exited with status 19" in "\n".join(h.notes)

    engine_test(body, tmp_path, "auth-failed")


@root_only
def test_module_port_lost_hangs_pppd_up(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        await h.engine.start()
        await h.module_reads(b"~HELLO~")
        await h.module_pipe.close()  # the module vanished (USB unplugged)
        with pytest.raises(PPPError, match="module's port closed"):
            await h.engine.wait_up(10)
        record = await h.wait_record("ended")
        assert record["ended"] == "hangup"

    engine_test(body, tmp_path, "wait")


@root_only
def test_no_carrier_between_frames_hangs_pppd_up_at_once(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        await h.engine.start()
        await h.module_reads(b"~HELLO~")
        await h.module_pipe.write(b"~WORLD~")
        await h.wait_record("got")
        started = time.monotonic()
        await h.module_pipe.write(b"\r\nNO CARRIER\r\n")  # the network dropped the call
        await asyncio.wait_for(h.engine.terminated.wait(), 1.0)
        assert time.monotonic() - started < 1.0
        assert h.engine.reason == "the module left data mode: it sent NO CARRIER between the PPP frames"
        assert h.engine.lost == "left-data-mode"
        record = await h.wait_record("ended")
        assert record["ended"] == "hangup"
        # the bridge stopped reading the port: what the module says next is the AT runner's
        await h.module_pipe.write(b"\r\nOK\r\n")
        assert await asyncio.wait_for(h.host_pipe.read(), 1.0) == b"\r\nOK\r\n"

    engine_test(body, tmp_path, "wait")


@root_only
def test_dcd_dropping_hangs_pppd_up_as_a_lost_link(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        await h.engine.start()
        await h.module_reads(b"~HELLO~")
        await h.module_pipe.write(b"~WORLD~")
        await h.wait_record("got")
        started = time.monotonic()
        h.module_pipe.set_dcd(False)  # AT&C1: the module ended the call
        await asyncio.wait_for(h.engine.terminated.wait(), 1.0)
        print(f"pppd engine: ended {(time.monotonic() - started) * 1000:.1f} ms after DCD went off")
        assert h.engine.reason.startswith("DCD dropped on ")
        assert h.engine.lost == "dcd-dropped"

    engine_test(body, tmp_path, "wait", modem_lines=True)


@root_only
def test_wait_up_times_out_naming_the_missing_families(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        await h.engine.start()
        with pytest.raises(PPPError, match=r"not up within 0.3 s \(IPv4, IPv6 not usable yet, pppd negotiating\)"):
            await h.module_reads(b"~HELLO~")
            await h.engine.wait_up(0.3)

    engine_test(body, tmp_path, "wait")


@root_only
def test_missing_pppd_and_existing_interface_are_refused(tmp_path: Path) -> None:
    async def body() -> None:
        host, _module = pipe_pair()
        engine = PppdEngine(host, options(runtime_dir=str(tmp_path), pppd=PppdOptions(path=str(tmp_path / "no-pppd"))))
        with pytest.raises(PPPError, match="install Debian's ppp package"):
            await engine.start()
        assert host.owner is None
        engine = PppdEngine(host, options(ifname="lo", runtime_dir=str(tmp_path), pppd=PppdOptions(path=sys.executable)))
        with pytest.raises(PPPError, match="interface lo exists already"):
            await engine.start()
        assert host.owner is None and not (tmp_path / "pppd").exists()

    run(body())


@root_only
@pytest.mark.skipif(not os.access(PPPD, os.X_OK), reason="Debian's ppp package is not installed")
@pytest.mark.skipif(os.path.exists("/dev/ppp"), reason="this kernel has PPP: the VM tier covers pppd")
def test_real_pppd_without_kernel_ppp_says_so(tmp_path: Path) -> None:
    async def body() -> None:
        host, _module = pipe_pair(modem_lines=False)
        engine = PppdEngine(host, options(runtime_dir=str(tmp_path)))
        await engine.start()
        try:
            with pytest.raises(PPPError) as raised:
                await engine.wait_up(20)
        finally:
            assert await engine.stop() == []
        assert engine.exit_status == 4
        assert "load ppp_generic and ppp_async, or set backend = \"builtin\"" in str(raised.value)
        assert "/dev/ppp" in str(raised.value)
        assert host.owner is None and not (tmp_path / "pppd").exists()

    run(body())



# -- pppd owning the module's device (a pty stands in for the serial device) ------------------

class DeviceHarness(Harness):
    """The engine on a SerialPipe whose tty pppd takes itself; the module is the pty's master."""

    def __init__(self, tmp: Path, behaviour: str, *, isolate: bool, rtscts: bool = False) -> None:
        self._setup(tmp, behaviour, isolate=isolate)
        self.module_pty = PtyPair.open()
        self.module_pipe = self.module_pty  # what the module reads and writes: read(), write()
        self.host_pipe = SerialPipe(self.module_pty.slave_path, rtscts=rtscts)
        self._engine(b"LEFT")


def device_test(body: Callable[[DeviceHarness], Awaitable[None]], tmp: Path, behaviour: str, **kwargs: Any) -> DeviceHarness:
    async def main() -> DeviceHarness:
        harness = DeviceHarness(tmp, behaviour, isolate=await mountns.available() is None, **kwargs)
        await harness.host_pipe.open()
        try:
            await body(harness)
        finally:
            assert await harness.engine.stop() == []
            await harness.host_pipe.close()
            harness.module_pty.close()
        return harness

    return run(main())


def test_pppd_owns_local_ttys_and_is_bridged_elsewhere() -> None:
    async def body() -> None:
        pty = PtyPair.open()
        serial_pipe = SerialPipe(pty.slave_path)
        try:
            assert not owns_device(serial_pipe)  # not open yet: nothing to hand over
            await serial_pipe.open()
            assert owns_device(serial_pipe)
        finally:
            await serial_pipe.close()
            pty.close()
        host, _module = pipe_pair()
        assert not owns_device(host)
        assert not owns_device(Rfc2217Pipe("rfc2217://127.0.0.1:9"))

    run(body())


@pytest.mark.parametrize(("line", "present", "absent"), [
    (Line(owns_device=True, rtscts=True), ["local", "crtscts", "nolock"], ["nocrtscts", "modem", "lock"]),
    (Line(owns_device=True), ["local", "nocrtscts", "nolock"], ["crtscts", "modem"]),
    (BRIDGED, ["local", "nocrtscts", "nolock"], ["crtscts", "modem"]),
])
def test_options_for_the_device_and_the_bridge(line: Line, present: list[str], absent: list[str]) -> None:
    lines = option_lines(options_file_text(options(), ip_up=Path("/u"), ip_down=Path("/d"), line=line))
    assert all(word in lines for word in present)
    assert not any(word in lines for word in absent)
    assert not any(word.startswith(("connect", "init ", "disconnect")) for word in lines)


@root_only
@pytest.mark.parametrize("rtscts", [False, True], ids=["no-flow-control", "rtscts"])
def test_pppd_gets_the_device_itself_and_larappp_takes_it_back(tmp_path: Path, rtscts: bool) -> None:
    async def body(h: DeviceHarness) -> None:
        fd = h.host_pipe.tty_fd()
        assert fd is not None
        await h.engine.start()
        # pppd writes on the tty itself: the module reads it, larappp copies nothing
        assert await asyncio.wait_for(h.module_reads(b"~HELLO~"), 5) == b"~HELLO~"
        assert h.engine.bridge is None and h.engine.pty is None
        await h.module_pipe.write(b"WORLD")
        record = await h.wait_record("got")
        assert record["got"] == "WORLD"  # CONNECT's leftover is not replayed (the module resends)
        slave = h.module_pty.slave_path
        assert record["argv"][1] == slave and record["stdin_tty"] == slave
        # pppd leads its own process group, never a session (the tty is no controlling tty)
        assert record["pgid"] == record["pid"] and record["sid"] != record["pid"]
        text = record["options_text"]
        assert ("\ncrtscts\n" in text) is rtscts and ("\nnocrtscts\n" in text) is not rtscts
        status = h.engine.status()
        assert (status["data_path"], status["tty"], status["phase"]) == ("device", slave, "negotiating")
        await h.wait_record("took")
        assert ttylend.line_discipline(fd) == 27  # the stand-in's line discipline is on the tty

    h = device_test(body, tmp_path, "take-tty", rtscts=rtscts)
    # stop(): SIGKILL (no hang-up: on a serial device that would drop DTR), the tty reclaimed
    assert h.engine.exit_status == -signal.SIGKILL
    assert h.host_pipe.owner is None


@root_only
def test_after_pppd_the_at_side_reads_and_writes_the_device_again(tmp_path: Path) -> None:
    async def body(h: DeviceHarness) -> None:
        fd = h.host_pipe.tty_fd()
        assert fd is not None
        before = termios.tcgetattr(fd)
        await h.engine.start()
        await asyncio.wait_for(h.module_reads(b"~HELLO~"), 5)
        await h.module_pipe.write(b"WORLD")
        await h.wait_record("took")
        await h.engine.stop()
        # line discipline and termios as they were lent; exclusive again
        assert ttylend.line_discipline(fd) == ttylend.N_TTY
        assert termios.tcgetattr(fd) == before
        await h.module_pipe.write(b"\r\nOK\r\n")
        assert await asyncio.wait_for(h.host_pipe.read(), 2) == b"\r\nOK\r\n"
        await h.host_pipe.write(b"AT\r")
        assert await asyncio.wait_for(h.module_reads(b"AT\r"), 2) == b"AT\r"

    device_test(body, tmp_path, "take-tty")


@root_only
def test_terminate_on_the_device_is_sigterm_and_the_tty_comes_back(tmp_path: Path) -> None:
    async def body(h: DeviceHarness) -> None:
        fd = h.host_pipe.tty_fd()
        assert fd is not None
        await h.engine.start()
        await asyncio.wait_for(h.module_reads(b"~HELLO~"), 5)
        await h.module_pipe.write(b"WORLD")
        await h.wait_record("took")
        await h.engine.terminate(timeout=5)
        assert h.engine.exit_status == 5 and h.record()["ended"] == "SIGTERM"
        assert h.engine.reason == "larappp ended the link (pppd exited with status 5)"
        assert ttylend.line_discipline(fd) == ttylend.N_TTY  # reclaimed when pppd exited

    device_test(body, tmp_path, "take-tty")


@root_only
@pytest.mark.parametrize(("behaviour", "lost", "reason"), [
    # silence: the module may still be in data mode, the session skips its AT probe (session.py)
    ("echo-failed", "echo-timeout", "stopped answering LCP Echo-Requests"),
    # NO CARRIER on a line without DCD (a pty): pppd does not see it, the module echoes its frames
    # back in command mode, pppd ends after its own echo replies; the session's AT probe answers
    ("echo-looped", "looped-back", "Echo-Requests came back to it"),
])
def test_echo_failure_says_whether_the_module_is_still_in_data_mode(
    tmp_path: Path, behaviour: str, lost: str, reason: str
) -> None:
    async def body(h: Harness) -> None:
        await h.engine.start()
        await h.module_reads(b"~HELLO~")
        await h.module_pipe.write(b"WORLD")
        await asyncio.wait_for(h.engine.terminated.wait(), 5)
        assert h.engine.exit_status == 15
        assert h.engine.lost == lost
        assert reason in h.engine.reason

    engine_test(body, tmp_path, behaviour)


@root_only
@pytest.mark.parametrize(("behaviour", "lost"), [
    # a NO CARRIER would have gone into pppd's line discipline, unseen: probe first
    ("echo-failed", None),
    # pppd's own Echo-Replies came back: the module is in command mode
    ("echo-looped", "looped-back"),
])
def test_echo_failure_on_the_device_is_looped_back_or_unknown(tmp_path: Path, behaviour: str, lost: str | None) -> None:
    async def body(h: DeviceHarness) -> None:
        await h.engine.start()
        await asyncio.wait_for(h.module_reads(b"~HELLO~"), 5)
        await h.module_pipe.write(b"WORLD")
        await asyncio.wait_for(h.engine.terminated.wait(), 5)
        assert h.engine.exit_status == 15
        assert h.engine.lost == lost

    device_test(body, tmp_path, behaviour)
