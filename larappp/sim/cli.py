"""`larappp sim`: run the LARA-R6 simulator in the foreground until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from larappp.errors import LarapppError
from larappp.sim import DEFAULT_PTY_DIR, run_simulator
from larappp.sim.scenario import Scenario


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="larappp sim",
        description="Run the simulated u-blox LARA-R6 and print where its ports are.",
    )
    parser.add_argument("--pty-dir", default=DEFAULT_PTY_DIR,
                        help=f"where the port symlinks go (default {DEFAULT_PTY_DIR}); 'none' for no ptys")
    parser.add_argument("--rfc2217-port", default="7000",
                        help="first RFC 2217 TCP port on 127.0.0.1 (default 7000; 0 picks free ports; "
                             "'none' for no RFC 2217)")
    parser.add_argument("--ports", type=int, default=3, help="AT ports of the module (default 3)")
    parser.add_argument("--network", metavar="NETNS",
                        help="run PPP on data calls, with NETNS (created if missing) as the operator network "
                             "and internet; without it the module takes data calls but discards their bytes")
    parser.add_argument("--nvm", metavar="FILE",
                        help="keep the module's NVM (profile, contexts, UEMBPF, UDCONF) in FILE across runs")
    parser.add_argument("-v", "--verbose", action="store_true", help="log calls and reboots to stderr")
    Scenario.add_arguments(parser)
    return parser


def sim_main(argv: list[str]) -> int:
    """Entry point of `larappp sim`; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        scenario = Scenario.from_args(args)
        pty_dir = None if args.pty_dir.lower() == "none" else args.pty_dir
        rfc_port = _rfc2217_port(args.rfc2217_port)
        if not 1 <= args.ports <= 8:
            raise LarapppError("--ports must be between 1 and 8")
        if pty_dir is None and rfc_port is None:
            raise LarapppError("with --pty-dir none and --rfc2217-port none the simulator has no ports: keep one")
        return asyncio.run(_main(scenario, pty_dir, rfc_port, args.ports, args.verbose, args.nvm, args.network))
    except LarapppError as exc:
        print(f"larappp sim: {exc}", file=sys.stderr)
        return exc.exit_code


def _rfc2217_port(text: str) -> int | None:
    if text.lower() == "none":
        return None
    if not text.isdigit() or int(text) > 65535:
        raise LarapppError(f"--rfc2217-port {text!r} is not a TCP port: give 0-65535 or 'none'")
    return int(text)


async def _main(
    scenario: Scenario, pty_dir: str | None, rfc_port: int | None, ports: int, verbose: bool, nvm: str | None,
    network: str | None = None,
) -> int:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    stopping = False

    def stop() -> None:
        nonlocal stopping
        stopping = True
        task.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)

    def announce(line: str) -> None:
        print(line, flush=True)

    def log(line: str) -> None:
        if verbose:
            print(line, file=sys.stderr, flush=True)

    try:
        await run_simulator(scenario, pty_dir=pty_dir, rfc2217_base_port=rfc_port, ports=ports,
                            announce=announce, log=log, nvm_path=nvm, network_netns=network)
    except asyncio.CancelledError:
        if not stopping:
            raise
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return 0
