"""The `larappp` command: up, down, status, check, sim.

Errors are one line and an exit code; `--verbose` adds the AT trace (secrets masked)
and tracebacks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from larappp import __version__, runtime
from larappp.config import DEFAULT_CONFIG_PATH, Config, load_config
from larappp.errors import LarapppError
from larappp.lara_r6 import identity

EXIT_OK = 0
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug in larappp, never a user's mistake
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C
# `larappp status` answers with these, apart from the error codes (1-7, 70, 130).
STATUS_UP = 0  # the daemon runs and every session is up
STATUS_DEGRADED = 10  # the daemon runs, but it is bringing up, stopping, or a session is not up
STATUS_DOWN = 11  # no daemon runs (never started, stopped, failed, or killed)
# `status --json`: raised when a field changes meaning or goes away (adding one keeps it).
STATUS_SCHEMA_VERSION = 1

if TYPE_CHECKING:
    from larappp.supervisor import Supervisor

log = logging.getLogger("larappp")


# --- helpers ------------------------------------------------------------------------------
def _config_path(arg: str | None) -> str | None:
    """--config, else $LARAPPP_CONFIG, else /etc/larappp/larappp.toml if present, else the simulator default."""
    if arg:
        return arg
    env = os.environ.get("LARAPPP_CONFIG")
    if env:
        return env
    if DEFAULT_CONFIG_PATH.exists():
        return str(DEFAULT_CONFIG_PATH)
    return None


def _stderr(message: str, priority: int = 3) -> None:
    """A line for the user on stderr; under journald with its priority (3: error, 6: info)."""
    if under_journald():
        message = journal_lines(message, priority)
    print(message, file=sys.stderr, flush=True)


class _Progress:
    """Progress lines on a terminal (one rewritten line) or plain lines in a log."""

    def __init__(self, stream: Any, quiet: bool = False) -> None:
        self.stream = stream
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.quiet = quiet
        self._open_line = False
        self.journal = not self.tty and under_journald(stream)

    def __call__(self, message: str) -> None:
        if self.quiet:
            return
        transient = message.startswith("waiting for registration")
        if self.tty and transient:
            self.stream.write("\r\033[K" + message)
            self._open_line = True
        else:
            if transient and not self.tty:
                return  # a log needs no per-second registration lines
            prefix = "\r\033[K" if self.tty and self._open_line else ""
            if self.journal:
                message = journal_lines(message, 6)
            self.stream.write(prefix + message + "\n")
            self._open_line = False
        self.stream.flush()


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
# sd-daemon(3): a "<N>" prefix gives journald each line's priority (syslog levels).
_JOURNAL_PRIORITIES = {
    logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7,
}


def under_journald(stream: Any = None) -> bool:
    """True when stderr is the journal's stream ($JOURNAL_STREAM names its device and inode,
    systemd.exec(5)): journald adds its own timestamps and reads priority prefixes."""
    value = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        st = os.fstat((stream or sys.stderr).fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (int(device), int(inode))


class JournalFormatter(logging.Formatter):
    """One "<N>" priority prefix per line and no timestamp (journald records its own)."""

    def format(self, record: logging.LogRecord) -> str:
        return journal_lines(f"{record.name}: {super().format(record)}", journal_priority(record.levelno))


def journal_priority(levelno: int) -> int:
    """The syslog priority of a logging level (a level between two takes the lower one's)."""
    for level, priority in sorted(_JOURNAL_PRIORITIES.items(), reverse=True):
        if levelno >= level:
            return priority
    return _JOURNAL_PRIORITIES[logging.DEBUG]


def journal_lines(text: str, priority: int) -> str:
    return "\n".join(f"<{priority}>{line}" for line in text.splitlines() or [""])


def _setup_logging(verbose: bool, level_name: str | None = None, *, journal: bool | None = None) -> None:
    """--log-level wins; else --verbose means debug; else warnings only."""
    level = getattr(logging, level_name.upper()) if level_name else (logging.DEBUG if verbose else logging.WARNING)
    global _log_handler
    handler = logging.StreamHandler(sys.stderr)
    if under_journald() if journal is None else journal:
        handler.setFormatter(JournalFormatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    if _log_handler is not None:
        root.removeHandler(_log_handler)  # only ours: a test harness may have its own
    _log_handler = handler
    root.addHandler(handler)
    root.setLevel(level)


_log_handler: logging.Handler | None = None


# --- up ------------------------------------------------------------------------------------
def _prepare_runtime(config: Config) -> tuple[runtime.RuntimePaths, int]:
    """Directories checked, the lock taken, what a killed larappp left removed: before anything
    is started. Returns the paths and the lock fd (held for the daemon's life)."""
    paths = runtime.RuntimePaths.of(config)
    runtime.prepare_dirs(config)
    lock_fd = runtime.acquire_lock(paths)
    try:
        _clean_after_killed_daemon(paths, config)
        runtime.write_pid(paths)
    except BaseException:
        os.close(lock_fd)
        raise
    runtime.HOST_RECORD.attach(paths.host_record)
    return paths, lock_fd


def _left_by_killed_daemon(paths: runtime.RuntimePaths) -> bool:
    """A pid file or host record outlives only a larappp that did not get to tear down."""
    state = runtime.read_json(paths.state) or {}
    return paths.pid.exists() or paths.host_record.exists() or state.get("state") not in (None, *runtime.ENDED_STATES)


def _clean_after_killed_daemon(paths: runtime.RuntimePaths, config: Config) -> bool:
    """With the lock held: remove what a killed larappp left; True when there was something."""
    if not _left_by_killed_daemon(paths):
        return False
    old = (runtime.read_text(paths.pid) or "").strip() or "?"
    removed = asyncio.run(runtime.undo_leftovers(paths))
    _stderr(f"larappp: removed what larappp (pid {old}) left when it was killed: {', '.join(removed)}")
    return True


class BringUpStopped(LarapppError):
    """`larappp down` (SIGTERM) or Ctrl-C (SIGINT) stopped a bring-up; what it did was undone."""

    exit_code = EXIT_INTERRUPTED


def _not_progress_lines(record: logging.LogRecord) -> bool:
    """Leaves out a log record that also went out as a progress line (supervisor.PROGRESS_LINE)."""
    from larappp.supervisor import PROGRESS_LINE

    return not getattr(record, PROGRESS_LINE, False)


async def _run_up(config: Config, args: argparse.Namespace, ready_fd: int | None) -> int:
    from larappp.preflight import host_ports_before_up
    from larappp.supervisor import Supervisor
    from larappp.transport.sdnotify import forwarding_status

    progress: Callable[[str], None]
    if ready_fd is not None:
        # Detached: progress goes to the waiting parent, which owns the terminal.
        def progress(message: str) -> None:
            _send_to_parent(ready_fd, "PROGRESS " + message.replace("\n", " "))
    else:
        progress = _Progress(sys.stderr, quiet=args.quiet)
        if not args.quiet and _log_handler is not None:
            _log_handler.addFilter(_not_progress_lines)  # the same stream: each line once
    progress = forwarding_status(progress)
    trace = (lambda line: _stderr(f"AT {line}", 7)) if args.verbose else None
    for line in host_ports_before_up(config):
        progress(line)
    sup = Supervisor(config, progress=progress, trace=trace)
    stopped = asyncio.Event()
    publisher = _start_metrics(config, sup, stopped)
    try:
        return await _supervise(sup, progress, ready_fd)
    finally:
        if publisher is not None:
            stopped.set()
            await publisher
            if config.modem.metrics_file:
                _write_last_metrics(config.modem.metrics_file, sup.snapshot())


def _start_metrics(config: Config, sup: Supervisor, stopped: asyncio.Event) -> asyncio.Task[None] | None:
    """The textfile and/or HTTP endpoint of larappp.metrics, when the config asks for them."""
    from larappp import metrics

    if not (config.modem.metrics_file or config.modem.metrics_listen):
        return None

    publish = metrics.publish(config.modem.metrics_file, config.modem.metrics_listen, sup.snapshot, stopped)
    return asyncio.create_task(publish, name="metrics")


def _write_last_metrics(path: str, snapshot: dict[str, Any]) -> None:
    from larappp import metrics

    try:
        metrics.write_textfile(path, snapshot)
    except OSError as exc:
        log.warning("metrics file %s not written: %s", path, exc.strerror or exc)


async def _supervise(sup: Supervisor, progress: Callable[[str], None], ready_fd: int | None) -> int:
    """Bring up, report readiness, keep up until stopped, tear down; the exit status."""
    from larappp.transport.sdnotify import keep_informed, sd_notify

    # SIGTERM (`larappp down`) or SIGINT during the bring-up stops it and undoes what it did.
    loop = asyncio.get_running_loop()
    starting = asyncio.current_task()
    assert starting is not None
    stopped_by: list[str] = []

    def stop_bring_up(name: str) -> None:
        stopped_by.append(name)
        starting.cancel()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_bring_up, signal.Signals(signum).name)
    # `larappp status` asks for the counters as they are now (between the daemon's own
    # refreshes, every 2 s).
    loop.add_signal_handler(signal.SIGUSR1, sup.refresh)
    try:
        await sup.start()
    except BaseException as exc:
        reason = f"stopped by {stopped_by[0]} during the bring-up" if stopped_by else str(exc)
        sup.state, sup.error = "failed", ""
        try:
            await asyncio.shield(sup.stop())  # sets sup.error when something could not be undone
        except Exception as stop_exc:  # report the first error, keep the second in the log  # noqa: BLE001 - the first error is the one reported
            log.debug("teardown after failure failed: %s", stop_exc)
            sup.error = str(stop_exc)
        # Stopped on request and all undone: down, not failed.
        sup.state, sup.error = ("down", "") if stopped_by and not sup.error else ("failed", reason)
        sup.write_state()
        if stopped_by and isinstance(exc, asyncio.CancelledError):
            raise BringUpStopped(f"the bring-up was {reason}; everything it did was undone") from None
        raise
    finally:
        # From here on a signal asks the running daemon to stop (never the default: death).
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, sup.request_stop)
    summary = json.dumps(sup.snapshot())
    if ready_fd is not None:
        # Kept open: later progress lines meet a closed pipe (EPIPE, ignored), never a reused fd.
        _send_to_parent(ready_fd, "READY " + summary)
    else:
        _print_status(sup.snapshot(), as_json=False, stream=sys.stderr)
    def sessions_line() -> str:
        return ", ".join(session_status_line(s.state.to_json()) for s in sup.sessions)

    sd_notify("READY=1\nSTATUS=" + sessions_line())
    informer = asyncio.create_task(
        keep_informed(lambda: status_exit_code(sup.snapshot(), True) == STATUS_UP, sessions_line)
    )
    await sup.run_until_stopped()
    informer.cancel()
    sd_notify("STOPPING=1")
    await sup.stop()
    return sup.exit_code or (EXIT_OK if not sup.error else 1)


def cmd_up(args: argparse.Namespace) -> int:
    from larappp.preflight import check_startable

    config = load_config(_config_path(args.config))
    check_startable(config, run_ppp=os.environ.get("LARAPPP_NO_PPP") != "1")
    paths, lock_fd = _prepare_runtime(config)
    if args.foreground:
        try:
            return asyncio.run(_run_up(config, args, None))
        finally:
            _cleanup_runtime(paths, lock_fd)
    try:
        log_fd = runtime.open_append(paths.log)
    except OSError as exc:
        _cleanup_runtime(paths, lock_fd)
        raise runtime.RuntimeDirError(f"cannot open the log {paths.log} ({exc.strerror}): remove it if it is a symbolic link") from None
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(write_fd)
        os.close(log_fd)
        os.close(lock_fd)  # the child holds the lock now (the same open file)
        return _wait_ready(read_fd, pid, paths, args.quiet)
    # Child: detach, log to the runtime dir, report readiness through the pipe.
    os.close(read_fd)
    os.setsid()
    code = 1
    try:
        runtime.write_pid(paths)
        null_fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null_fd, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        code = asyncio.run(_run_up(config, args, write_fd))
    except LarapppError as exc:
        _report_child_error(write_fd, exc.exit_code, str(exc))
        code = exc.exit_code
    except BaseException as exc:  # noqa: BLE001 - any crash is reported to the waiting parent
        traceback.print_exc()
        _report_child_error(write_fd, EXIT_INTERNAL, f"internal error: {type(exc).__name__}: {exc} (see {paths.log})")
        code = EXIT_INTERNAL
    finally:
        _cleanup_runtime(paths, lock_fd)
        sys.stderr.flush()
        os._exit(code)


def _send_to_parent(fd: int, line: str) -> None:
    try:
        os.write(fd, line.encode() + b"\n")
    except OSError:
        pass  # the parent is gone (killed, or it stopped waiting): the log still has it


def _report_child_error(fd: int, code: int, message: str) -> None:
    _send_to_parent(fd, f"ERROR {code} {message}")


def _wait_ready(read_fd: int, pid: int, paths: runtime.RuntimePaths, quiet: bool) -> int:
    """Show the detached child's progress until it is up or failed; Ctrl-C stops its bring-up."""
    progress = _Progress(sys.stderr, quiet=quiet)
    line = ""
    interrupted = False
    with os.fdopen(read_fd, "r", encoding="utf-8", errors="replace") as reader:
        while True:
            try:
                raw = reader.readline()
            except KeyboardInterrupt:
                if interrupted:
                    raise  # a second Ctrl-C: stop waiting, the child still undoes its work
                interrupted = True
                # The child is ours and not yet reaped: its pid cannot have been reused.
                os.kill(pid, signal.SIGTERM)
                progress("stopping the bring-up (Ctrl-C): undoing what it did")
                continue
            if not raw:
                break
            line = raw.strip()
            if line.startswith("PROGRESS "):
                progress(line[len("PROGRESS "):])
                continue
            break
    if line.startswith("READY ") and not interrupted:
        snapshot = json.loads(line[6:])
        _print_status(snapshot, as_json=False, stream=sys.stdout)
        return EXIT_OK
    if line.startswith("READY "):
        # Up just as Ctrl-C came: the daemon is stopping on SIGTERM as after `larappp down`.
        os.waitpid(pid, 0)
        _stderr("larappp: stopped (Ctrl-C) just after the bring-up; everything was undone")
        return EXIT_INTERRUPTED
    os.waitpid(pid, 0)
    if line.startswith("ERROR "):
        _, code, message = line.split(" ", 2)
        _stderr(f"larappp: {message}")
        return int(code)
    _stderr(f"larappp: the background process ended without reporting (see {paths.log})")
    return EXIT_INTERNAL


def _cleanup_runtime(paths: runtime.RuntimePaths, lock_fd: int) -> None:
    runtime.HOST_RECORD.attach(None)
    paths.pid.unlink(missing_ok=True)
    os.close(lock_fd)


# --- down / status ---------------------------------------------------------------------------
def cmd_down(args: argparse.Namespace) -> int:
    config = load_config(_config_path(args.config))
    paths = runtime.RuntimePaths.of(config)
    if not paths.directory.is_dir():
        print("larappp is not running")
        return EXIT_OK
    daemon = runtime.Daemon.find(paths)
    if daemon is None:
        return _down_without_daemon(paths, config)
    try:
        daemon.signal(signal.SIGTERM)
        if not daemon.wait(args.timeout):
            raise LarapppError(
                f"larappp (pid {daemon.pid}) did not stop within {args.timeout:g} s: check {paths.log}, "
                "or raise --timeout"
            )
    finally:
        daemon.close()
    state = runtime.read_json(paths.state) or {}
    if state.get("error"):
        _stderr(f"larappp: stopped with errors: {state['error']}")
        return 1
    print("larappp is down")
    return EXIT_OK


def _down_without_daemon(paths: runtime.RuntimePaths, config: Config) -> int:
    """No process holds the lock: nothing to signal, but a killed larappp may have left things."""
    # Its host record is trusted only in a directory no one else can write to.
    runtime.ensure_dir(paths.directory, key="modem.runtime_dir", mode=0o755)
    try:
        lock_fd = runtime.acquire_lock(paths)
    except runtime.AlreadyRunning:
        # Taken a moment ago: a larappp is starting (its pid file is not written yet).
        raise LarapppError(f"a larappp is starting with runtime_dir {paths.directory}: run 'larappp down' again in a moment") from None
    try:
        cleaned = _clean_after_killed_daemon(paths, config)
    finally:
        os.close(lock_fd)
    print("larappp was not running; what it left is removed" if cleaned else "larappp is not running")
    return EXIT_OK


def _print_status(state: dict[str, Any], *, as_json: bool, stream: Any = sys.stdout) -> None:
    if as_json:
        print(json.dumps({"schema_version": STATUS_SCHEMA_VERSION, **state}, indent=2), file=stream)
        return
    for line in status_lines(state):
        print(line, file=stream)


def status_lines(state: dict[str, Any]) -> list[str]:
    """The human form of a state snapshot: the daemon, the module, then each session."""
    lines = [f"larappp: {state.get('state')}" + (f" ({state['error']})" if state.get("error") else "")]
    modem = state.get("modem") or {}
    if modem:
        lines += module_lines(modem, state.get("port"))
    for session in state.get("sessions", []):
        lines += session_lines(session)
    return lines


def module_lines(modem: dict[str, Any], port: object) -> list[str]:
    """The module: who it is, the network it is on, how it hears it, and its settings."""
    ids = ", ".join(f"{name} {modem[key]}" for name, key in (("firmware", "firmware"), ("IMEI", "imei"), ("ICCID", "iccid"))
                    if modem.get(key))
    lines = [f"  module {modem.get('model') or '?'} on {port or '?'}" + (f": {ids}" if ids else "")]
    operator = modem.get("operator") or ""
    plmn = modem.get("plmn") or ""
    network = operator if not plmn or operator == plmn else f"{operator} ({plmn})"
    signal = modem.get("signal") or {}
    figures = identity.SignalQuality(**signal).text() if signal else "no signal figures"
    act = modem.get("act_text") or "access technology unknown"
    lines.append(
        f"  network {network or '?'}{', roaming' if modem.get('roaming') else ''}, {act}, {figures}"
    )
    lines.append(
        f"  UEMBPF {modem.get('embpf') or 'off'}, XLAT {'on' if modem.get('xlat_enabled') else 'off'}"
    )
    return lines


def session_lines(s: dict[str, Any]) -> list[str]:
    """One session: its state line, its interface, then anything worth a line of its own."""
    extra = f" {s['connect']}" if s.get("connect") else ""
    lines = [f"  cid {s['cid']} {s['apn']} on {s['port']}: {s['state']}{extra}"]
    if s.get("ifname"):
        v6 = ", ".join(s.get("ipv6_global") or []) or "-"
        lines.append(
            f"    {s['ifname']}: IPv4 {s.get('ipv4') or '-'} peer {s.get('ipv4_peer') or '-'}, IPv6 {v6}, "
            f"DNS {', '.join(s.get('dns') or []) or '-'}"
        )
    if s.get("nftables"):
        lines.append(f"    nftables {s['nftables']}")
    lines += [f"    warning: {w}" for w in s.get("warnings") or []]
    if s.get("losses"):
        lines.append(f"    lost {s['losses']} time(s), last: {s.get('last_loss_cause') or '?'}; redials {s.get('redials', 0)}")
    if s.get("state") == "waiting" and s.get("next_attempt_at"):
        when = time.strftime("%H:%M:%S", time.localtime(s["next_attempt_at"]))
        lines.append(f"    waiting to redial (attempt {s.get('attempt')} at {when})")
    if s.get("error"):
        lines.append(f"    error: {s['error']}")
    return lines


def session_status_line(s: dict[str, Any]) -> str:
    """One session in a few words for systemd's STATUS= (`systemctl status`); while it
    recovers, the loss and the redial by name."""
    cid, state, cause = s["cid"], s.get("state"), s.get("last_loss_cause") or "cause unknown"
    if state == "lost":
        line = f"cid {cid} lost ({cause}), taking it off the host"
    elif state == "waiting":
        when = f" at {time.strftime('%H:%M:%S', time.localtime(s['next_attempt_at']))}" if s.get("next_attempt_at") else ""
        line = f"cid {cid} lost ({cause}), redial {s.get('attempt')}{when}"
    elif state == "connecting" and s.get("attempt"):
        line = f"cid {cid} redialling (attempt {s['attempt']}) after a loss ({cause})"
    else:
        line = f"cid {cid} {state}"
    return line + (f" ({s['error']})" if s.get("error") else "")


def status_exit_code(state: dict[str, Any], running: bool) -> int:
    """STATUS_UP when the daemon runs with every session up, STATUS_DEGRADED when it runs
    otherwise (bringing up, a session not up), STATUS_DOWN when no daemon runs."""
    if not running:
        return STATUS_DOWN
    sessions = state.get("sessions") or []
    # "connected" is where a session ends when PPP is off (LARAPPP_NO_PPP=1, AT-level tests).
    if state.get("state") == "up" and all(s.get("state") in ("up", "connected") for s in sessions):
        return STATUS_UP
    return STATUS_DEGRADED


def _fresh_state(daemon: runtime.Daemon, paths: runtime.RuntimePaths, state: dict[str, Any]) -> dict[str, Any]:
    """The state with current counters: the daemon writes it on SIGUSR1 (up to 1 s waited).

    Another user may not signal the daemon: it then sees the figures of the last refresh.
    """
    try:
        daemon.signal(signal.SIGUSR1)
    except OSError:
        return state
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        time.sleep(0.01)
        fresh = runtime.read_json(paths.state)
        if fresh is not None and fresh.get("updated") != state.get("updated"):
            return fresh
    return state


def cmd_status(args: argparse.Namespace) -> int:
    config = load_config(_config_path(args.config))
    paths = runtime.RuntimePaths.of(config)
    daemon = runtime.Daemon.find(paths) if paths.directory.is_dir() else None
    running = daemon is not None
    state = runtime.read_json(paths.state)
    if daemon is not None:
        if state is not None and state.get("state") == "up" and state.get("pid") == daemon.pid:
            state = _fresh_state(daemon, paths, state)
        daemon.close()
    if state is None:
        state = {"state": "down", "sessions": []}
    elif not running and state.get("state") not in runtime.ENDED_STATES:
        # The lock is free: the process is gone (or a zombie), whatever its pid or state says.
        state["state"] = "dead"
        state["error"] = f"larappp (pid {state.get('pid', '?')}) ended without tearing down: run 'larappp down' to remove what it left"
        for session in state.get("sessions") or []:
            if session.get("state") not in runtime.ENDED_STATES:
                session["state"] = "dead"
    _print_status(state, as_json=args.json)
    return status_exit_code(state, running)


# --- check ----------------------------------------------------------------------------------
def cmd_check(args: argparse.Namespace) -> int:
    from larappp.preflight import run_checks

    config = load_config(_config_path(args.config))
    fix_ports = args.fix_ports or args.persist or config.modem.fix_host_ports
    report = run_checks(config, fix_ports=fix_ports, persist_ports=args.persist)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        for line in report.lines():
            print(line)
    return EXIT_OK if report.ok else 1


# --- main ------------------------------------------------------------------------------------
def _common_options(*, suppress: bool) -> argparse.ArgumentParser:
    """The options every subcommand takes, before or after its name (`larappp up -v -c X`).
    Under a subcommand their defaults are suppressed so they never undo what came before it."""
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS if suppress else None)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS if suppress else False,
                        help="show the AT trace (secrets masked), debug logs and tracebacks")
    common.add_argument("-c", "--config", metavar="FILE",
                        help=f"TOML config (default: $LARAPPP_CONFIG, {DEFAULT_CONFIG_PATH}, else the built-in simulator)")
    common.add_argument("--log-level", choices=LOG_LEVELS, metavar="LEVEL",
                        help=f"log threshold: {', '.join(LOG_LEVELS)} (default: warning, debug with --verbose)")
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="larappp", description="PPP dial-up for u-blox LARA-R6 modules", parents=[_common_options(suppress=False)]
    )
    parser.add_argument("--version", action="version", version=f"larappp {__version__}")
    common = _common_options(suppress=True)
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", parents=[common], help="bring the module and its sessions up")
    up.add_argument("-f", "--foreground", action="store_true", help="stay in the foreground (for a service manager)")
    up.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", parents=[common], help="tear every session down and stop")
    down.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                      help="how long to wait for the daemon to tear down (default: 60)")
    down.set_defaults(func=cmd_down)

    status = sub.add_parser(
        "status", parents=[common], help="show the module and sessions",
        description=f"Exit status: {STATUS_UP} all sessions up, {STATUS_DEGRADED} running but degraded "
        f"(bringing up, stopping, or a session not up), {STATUS_DOWN} not running; error codes are 1-8, 70, 130.",
    )
    status.add_argument("--json", action="store_true", help="the state as JSON (with schema_version)")
    status.set_defaults(func=cmd_status)

    check = sub.add_parser("check", parents=[common], help="preflight: config rules, host port range, PPP backend")
    check.add_argument("--fix-ports", action="store_true", help="reserve the module's port range on the host")
    check.add_argument("--persist", action="store_true", help="--fix-ports, and keep the reservation across reboots (/etc/sysctl.d)")
    check.add_argument("--json", action="store_true", help="the report as JSON")
    check.set_defaults(func=cmd_check)

    # `larappp sim ...` is dispatched before parsing (see main); listed here for --help.
    sub.add_parser("sim", help="run the LARA-R6 simulator and print where it listens (larappp sim --help)")
    return parser


def _complete(parser: argparse.ArgumentParser) -> None:
    """Answer the shell's completion request and exit, when there is one (argcomplete installed;
    the script from scripts/gen_docs.py sets $_ARGCOMPLETE)."""
    if "_ARGCOMPLETE" not in os.environ:
        return
    try:
        import argcomplete
    except ImportError:
        return
    argcomplete.autocomplete(parser)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "sim":
        # The simulator has its own options; argparse's REMAINDER would not pass "--x" through.
        from larappp.sim.cli import sim_main

        return sim_main(argv[1:])
    parser = build_parser()
    _complete(parser)
    args = parser.parse_args(argv)
    if not hasattr(args, "quiet"):
        args.quiet = False
    _setup_logging(bool(args.verbose), args.log_level)
    try:
        code: int = args.func(args)
        return code
    except LarapppError as exc:
        if args.verbose:
            traceback.print_exc()
        _stderr(f"larappp: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except PermissionError as exc:
        if args.verbose:
            traceback.print_exc()
        _stderr(f"larappp: {exc.filename or 'a runtime file'}: permission denied: run larappp as root")
        return 1
    except Exception as exc:  # noqa: BLE001 - a bug: one line, the traceback with --verbose
        if args.verbose:
            traceback.print_exc()
        _stderr(f"larappp: internal error: {type(exc).__name__}: {exc} (run with --verbose for the traceback)")
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
