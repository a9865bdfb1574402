"""The `larappp` command: up, down, status, check, sim.

Errors are one line and an exit code; `--verbose` adds the AT trace (secrets masked)
and tracebacks.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from larappp import __version__
from larappp.config import DEFAULT_CONFIG_PATH, Config, load_config
from larappp.errors import LarapppError

EXIT_OK = 0
EXIT_INTERNAL = 70  # EX_SOFTWARE

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


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _Progress:
    """Progress lines on a terminal (one rewritten line) or plain lines in a log."""

    def __init__(self, stream: Any, quiet: bool = False) -> None:
        self.stream = stream
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.quiet = quiet
        self._open_line = False

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
            self.stream.write(prefix + message + "\n")
            self._open_line = False
        self.stream.flush()


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )


# --- up ------------------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock_runtime(config: Config) -> int:
    """Hold an exclusive lock on the pid file so a second `up` with the same runtime_dir fails."""
    from larappp.supervisor import runtime_paths

    _, pid_path = runtime_paths(config)
    pid_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(pid_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        other = pid_path.read_text().strip() or "?"
        raise LarapppError(
            f"larappp is already running with runtime_dir {config.modem.runtime_dir} (pid {other}): "
            "run 'larappp down' first"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


async def _run_up(config: Config, args: argparse.Namespace, ready_fd: int | None) -> int:
    from larappp.supervisor import Supervisor, sd_notify

    progress: Callable[[str], None]
    if ready_fd is not None:
        # Detached: progress goes to the waiting parent, which owns the terminal.
        def progress(message: str) -> None:
            _send_to_parent(ready_fd, "PROGRESS " + message.replace("\n", " "))
    else:
        progress = _Progress(sys.stderr, quiet=args.quiet)
    trace = (lambda line: _stderr(f"AT {line}")) if args.verbose else None
    sup = Supervisor(config, progress=progress, trace=trace)
    try:
        await sup.start()
    except BaseException as exc:
        sup.state = "failed"
        sup.error = str(exc)
        try:
            await asyncio.shield(sup.stop())
        except Exception as stop_exc:  # report the first error, keep the second in the log  # noqa: BLE001 - the first error is the one reported
            log.debug("teardown after failure failed: %s", stop_exc)
        sup.state, sup.error = "failed", str(exc)
        sup.write_state()
        raise
    summary = json.dumps(sup.snapshot())
    if ready_fd is not None:
        # Kept open: later progress lines meet a closed pipe (EPIPE, ignored), never a reused fd.
        _send_to_parent(ready_fd, "READY " + summary)
    else:
        _print_status(sup.snapshot(), as_json=False, stream=sys.stderr)
    sd_notify("READY=1\nSTATUS=" + ", ".join(f"cid {s.config.cid} {s.state.state}" for s in sup.sessions))
    await sup.run_until_stopped()
    sd_notify("STOPPING=1")
    await sup.stop()
    return EXIT_OK if not sup.error else 1


def cmd_up(args: argparse.Namespace) -> int:
    config = load_config(_config_path(args.config))
    lock_fd = _lock_runtime(config)
    if args.foreground:
        try:
            return asyncio.run(_run_up(config, args, None))
        finally:
            _cleanup_runtime(config, lock_fd)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(write_fd)
        os.close(lock_fd)
        return _wait_ready(read_fd, pid, config, args.quiet)
    # Child: detach, log to the runtime dir, report readiness through the pipe.
    os.close(read_fd)
    os.setsid()
    os.ftruncate(lock_fd, 0)
    os.write(lock_fd, f"{os.getpid()}\n".encode())
    log_path = Path(config.modem.runtime_dir) / "larappp.log"
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    code = 1
    try:
        code = asyncio.run(_run_up(config, args, write_fd))
    except LarapppError as exc:
        _report_child_error(write_fd, exc.exit_code, str(exc))
        code = exc.exit_code
    except BaseException as exc:  # noqa: BLE001 - any crash is reported to the waiting parent
        traceback.print_exc()
        _report_child_error(write_fd, EXIT_INTERNAL, f"internal error: {exc!r} (see {log_path})")
        code = EXIT_INTERNAL
    finally:
        _cleanup_runtime(config, lock_fd)
        sys.stderr.flush()
        os._exit(code)


def _send_to_parent(fd: int, line: str) -> None:
    try:
        os.write(fd, line.encode() + b"\n")
    except OSError:
        pass  # the parent is gone (killed, or it stopped waiting): the log still has it


def _report_child_error(fd: int, code: int, message: str) -> None:
    _send_to_parent(fd, f"ERROR {code} {message}")


def _wait_ready(read_fd: int, pid: int, config: Config, quiet: bool) -> int:
    progress = _Progress(sys.stderr, quiet=quiet)
    line = ""
    with os.fdopen(read_fd, "r", encoding="utf-8", errors="replace") as reader:
        for raw in reader:
            line = raw.strip()
            if line.startswith("PROGRESS "):
                progress(line[len("PROGRESS "):])
                continue
            break
    if line.startswith("READY "):
        snapshot = json.loads(line[6:])
        _print_status(snapshot, as_json=False, stream=sys.stdout)
        return EXIT_OK
    if line.startswith("ERROR "):
        _, code, message = line.split(" ", 2)
        os.waitpid(pid, 0)
        _stderr(f"larappp: {message}")
        return int(code)
    os.waitpid(pid, 0)
    _stderr(f"larappp: the background process ended without reporting (see {config.modem.runtime_dir}/larappp.log)")
    return EXIT_INTERNAL


def _cleanup_runtime(config: Config, lock_fd: int) -> None:
    from larappp.supervisor import runtime_paths

    _, pid_path = runtime_paths(config)
    try:
        pid_path.unlink()
    except OSError:
        pass
    os.close(lock_fd)


# --- down / status ---------------------------------------------------------------------------
def _read_state(config: Config) -> dict[str, Any] | None:
    from larappp.supervisor import runtime_paths

    state_path, _ = runtime_paths(config)
    try:
        data: dict[str, Any] = json.loads(state_path.read_text())
    except (OSError, ValueError):
        return None
    return data


def cmd_down(args: argparse.Namespace) -> int:
    config = load_config(_config_path(args.config))
    state = _read_state(config)
    if state is None or state.get("state") in ("down", "failed") or not _pid_alive(int(state.get("pid", 0))):
        print("larappp is not running")
        return EXIT_OK
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            break
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.1)
    else:
        raise LarapppError(f"larappp (pid {pid}) did not stop within {args.timeout:.0f} s: check {config.modem.runtime_dir}/larappp.log")
    state = _read_state(config) or {}
    if state.get("error"):
        _stderr(f"larappp: stopped with errors: {state['error']}")
        return 1
    print("larappp is down")
    return EXIT_OK


def _print_status(state: dict[str, Any], *, as_json: bool, stream: Any = sys.stdout) -> None:
    if as_json:
        print(json.dumps(state, indent=2), file=stream)
        return
    modem = state.get("modem") or {}
    print(f"larappp: {state.get('state')}" + (f" ({state['error']})" if state.get("error") else ""), file=stream)
    if modem:
        print(
            f"  module {modem.get('model') or '?'} on {state.get('port')}: operator {modem.get('plmn') or '?'}"
            f"{' (roaming)' if modem.get('roaming') else ''}, UEMBPF {modem.get('embpf') or 'off'}, "
            f"XLAT {'on' if modem.get('xlat_enabled') else 'off'}",
            file=stream,
        )
    for s in state.get("sessions", []):
        extra = f" {s['connect']}" if s.get("connect") else ""
        print(f"  cid {s['cid']} {s['apn']} on {s['port']}: {s['state']}{extra}", file=stream)
        if s.get("ifname"):
            v6 = ", ".join(s.get("ipv6_global") or []) or "-"
            print(
                f"    {s['ifname']}: IPv4 {s.get('ipv4') or '-'} peer {s.get('ipv4_peer') or '-'}, IPv6 {v6}, "
                f"DNS {', '.join(s.get('dns') or []) or '-'}",
                file=stream,
            )
        if s.get("error"):
            print(f"    error: {s['error']}", file=stream)


def cmd_status(args: argparse.Namespace) -> int:
    config = load_config(_config_path(args.config))
    state = _read_state(config)
    if state is None:
        state = {"state": "down", "sessions": []}
    elif state.get("state") not in ("down", "failed") and not _pid_alive(int(state.get("pid", 0))):
        state["state"] = "dead"
        state["error"] = "the larappp process is gone; run 'larappp up' again"
    _print_status(state, as_json=args.json)
    return EXIT_OK if state.get("state") == "up" else 3


# --- check ----------------------------------------------------------------------------------
def cmd_check(args: argparse.Namespace) -> int:
    from larappp.preflight import run_checks

    config = load_config(_config_path(args.config))
    report = run_checks(config, fix_ports=args.fix_ports or config.modem.fix_host_ports)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        for line in report.lines():
            print(line)
    return EXIT_OK if report.ok else 1


# --- main ------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="larappp", description="PPP dial-up for u-blox LARA-R6 modules")
    parser.add_argument("--version", action="version", version=f"larappp {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the AT trace (secrets masked) and tracebacks")
    parser.add_argument("-c", "--config", help=f"TOML config (default: $LARAPPP_CONFIG, {DEFAULT_CONFIG_PATH}, else the built-in simulator)")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="bring the module and its sessions up")
    up.add_argument("-f", "--foreground", action="store_true", help="stay in the foreground (for a service manager)")
    up.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", help="tear every session down and stop")
    down.add_argument("--timeout", type=float, default=60.0)
    down.set_defaults(func=cmd_down)

    status = sub.add_parser("status", help="show the module and sessions")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    check = sub.add_parser("check", help="preflight: config rules, host port range, PPP backend")
    check.add_argument("--fix-ports", action="store_true", help="reserve the module's port range on the host")
    check.add_argument("--json", action="store_true")
    check.set_defaults(func=cmd_check)

    # `larappp sim ...` is dispatched before parsing (see main); listed here for --help.
    sub.add_parser("sim", help="run the LARA-R6 simulator and print where it listens (larappp sim --help)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "sim":
        # The simulator has its own options; argparse's REMAINDER would not pass "--x" through.
        from larappp.sim.cli import sim_main

        return sim_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("config", "verbose"):
        if not hasattr(args, name):
            setattr(args, name, None)
    if not hasattr(args, "quiet"):
        args.quiet = False
    _setup_logging(bool(args.verbose))
    try:
        code: int = args.func(args)
        return code
    except LarapppError as exc:
        if args.verbose:
            traceback.print_exc()
        _stderr(f"larappp: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
