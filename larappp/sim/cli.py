"""`larappp sim`: run the LARA-R6 simulator in the foreground until SIGTERM or SIGINT;
`larappp sim fault ...`: inject a fault into a running one through its control socket."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys

from larappp.errors import LarapppError
from larappp.sim import CONTROL_NAME, DEFAULT_PTY_DIR, default_control_path, run_simulator
from larappp.sim.control import request
from larappp.sim.faults import DEACTIVATION_URCS
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
    parser.add_argument("--control", metavar="PATH",
                        help=f"unix socket taking faults (`larappp sim fault`; default PTY_DIR/{CONTROL_NAME}; "
                             "'none' for none)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log calls and reboots to stderr")
    Scenario.add_arguments(parser)
    return parser


def build_fault_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="larappp sim fault",
        description="Inject a fault into a running `larappp sim` (see larappp/sim/control.py for each one's "
                    "effect on the wire).",
    )
    parser.add_argument("--socket", default=os.path.join(DEFAULT_PTY_DIR, CONTROL_NAME),
                        help=f"the simulator's control socket (default {DEFAULT_PTY_DIR}/{CONTROL_NAME})")
    sub = parser.add_subparsers(dest="fault", required=True, metavar="FAULT")

    def call(name: str, text: str) -> argparse.ArgumentParser:
        one = sub.add_parser(name, help=text, description=text)
        one.add_argument("--cid", type=int, help="the call (or context) on this cid")
        one.add_argument("--port", type=int, help="the call on this port (instead of --cid)")
        return one

    call("drop", "the network drops the call: NO CARRIER, no LCP Terminate")
    call("dcd-off", "DCD goes off on the call's port while the call goes on")
    deactivate = sub.add_parser("deactivate", help="the network deactivates a PDP context (+CGEV, NO CARRIER)")
    deactivate.add_argument("--cid", type=int, required=True)
    deactivate.add_argument("--urc", choices=DEACTIVATION_URCS, default=DEACTIVATION_URCS[0],
                            help="the +CGEV form (default %(default)s)")
    silence = call("silence", "the PPP peer falls silent (no echo replies, no packets)")
    silence.add_argument("--seconds", type=float, help="for this long (default: until --off)")
    silence.add_argument("--off", action="store_true", help="the peer talks again")
    reboot = sub.add_parser("reboot", help="the module resets: ports vanish, come back unregistered")
    reboot.add_argument("--seconds", type=float, help="down for this long (default: the scenario's reboot time)")
    unplug = sub.add_parser("unplug", help="the ports vanish for N seconds and come back under the same names")
    unplug.add_argument("--seconds", type=float, required=True)
    renegotiate = call("renegotiate", "the module sends an IPCP or IPV6CP Configure-Request while LCP stays up")
    renegotiate.add_argument("--family", type=int, choices=(4, 6), default=6, help="4: IPCP, 6: IPV6CP")
    ra = sub.add_parser("ra", help="a Router Advertisement now: a new prefix and/or lifetimes (0: withdrawn)")
    ra.add_argument("--cid", type=int, required=True)
    ra.add_argument("--prefix", help="renumber the context into this /64")
    ra.add_argument("--lifetime", type=int, help="router and prefix lifetimes in seconds")
    sub.add_parser("radio-off", help="as AT+CFUN=0 from another port: +CEREG: 0, contexts down")
    sub.add_parser("radio-on", help="as AT+CFUN=1: register again")
    sub.add_parser("status", help="the module's state, ports, calls and contexts")
    return parser


def fault_main(argv: list[str]) -> int:
    """Entry point of `larappp sim fault`; prints the simulator's JSON answer."""
    args = build_fault_parser().parse_args(argv)
    message = {key: value for key, value in vars(args).items()
               if key != "socket" and value is not None and value is not False}
    try:
        answer = request(args.socket, message)
    except LarapppError as exc:
        print(f"larappp sim fault: {exc}", file=sys.stderr)
        return exc.exit_code
    if not answer.get("ok"):
        print(f"larappp sim fault: {answer.get('error', answer)}", file=sys.stderr)
        return 1
    print(json.dumps(answer))
    return 0


def sim_main(argv: list[str]) -> int:
    """Entry point of `larappp sim`; returns the process exit status."""
    if argv[:1] == ["fault"]:
        return fault_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        scenario = Scenario.from_args(args)
        pty_dir = None if args.pty_dir.lower() == "none" else args.pty_dir
        rfc_port = _rfc2217_port(args.rfc2217_port)
        if not 1 <= args.ports <= 8:
            raise LarapppError("--ports must be between 1 and 8")
        if pty_dir is None and rfc_port is None:
            raise LarapppError("with --pty-dir none and --rfc2217-port none the simulator has no ports: keep one")
        control = _control_path(args.control, pty_dir)
        return asyncio.run(_main(scenario, pty_dir, rfc_port, args.ports, args.verbose, args.nvm, args.network,
                                 control))
    except LarapppError as exc:
        print(f"larappp sim: {exc}", file=sys.stderr)
        return exc.exit_code


def _control_path(text: str | None, pty_dir: str | None) -> str | None:
    """--control as given ('none': no socket), by default the socket in the pty dir."""
    if text is None:
        return default_control_path(pty_dir)
    return None if text.lower() == "none" else text


def _rfc2217_port(text: str) -> int | None:
    if text.lower() == "none":
        return None
    if not text.isdigit() or int(text) > 65535:
        raise LarapppError(f"--rfc2217-port {text!r} is not a TCP port: give 0-65535 or 'none'")
    return int(text)


async def _main(
    scenario: Scenario, pty_dir: str | None, rfc_port: int | None, ports: int, verbose: bool, nvm: str | None,
    network: str | None = None, control: str | None = None,
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
                            announce=announce, log=log, nvm_path=nvm, network_netns=network,
                            control_path=control)
    except asyncio.CancelledError:
        if not stopping:
            raise
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return 0
