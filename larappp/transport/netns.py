"""Network namespace helpers for tests and tools: create, delete, run code or commands inside.

Python 3.11 has no os.setns, and a namespace switch made with setns(2) holds for one
thread only. `call_in_netns()` therefore runs the callable in a fresh thread that enters
the namespace and leaves it again. Sockets keep the namespace they were created in, and
files under /proc/sys/net opened by that thread belong to it; /proc/net (which psutil
reads) follows the *process*, so run `ip netns exec` (`run_in_netns()`) for those.

pyroute2's pushns()/popns() keep one process-wide stack, save /proc/self/ns/net (the main
thread's namespace) and create a missing namespace silently; the helpers here open the
namespace explicitly and call pyroute2's setns() without O_CREAT instead.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import secrets
import subprocess
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from pyroute2 import netns

from larappp.errors import NetworkSetupError

T = TypeVar("T")

NETNS_RUN_DIR = "/var/run/netns"


def netns_path(name: str) -> str:
    return os.path.join(NETNS_RUN_DIR, name)


def create_netns(name: str, *, loopback_up: bool = True) -> None:
    """Create the named namespace (as `ip netns add` does), with `lo` up unless told not to."""
    if name in netns.listnetns():
        raise NetworkSetupError(
            f"network namespace {name} exists already: delete it or pick another name"
        )
    # `ip netns add`, not pyroute2's netns.create: that one forks, and a fork from a
    # thread of a running asyncio program made the program exit at random (seen here).
    try:
        done = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, check=False)
    except OSError as exc:
        raise NetworkSetupError(
            f"cannot create network namespace {name} ({exc}): install iproute2"
        ) from exc
    if done.returncode != 0:
        raise NetworkSetupError(
            f"cannot create network namespace {name} ({done.stderr.strip()}): run as root"
        )
    if loopback_up:
        up = subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], capture_output=True, text=True, check=False)
        if up.returncode != 0:
            delete_netns(name)
            raise NetworkSetupError(f"cannot bring lo up in network namespace {name}: {up.stderr.strip()}")


def delete_netns(name: str) -> None:
    """Delete the named namespace; a namespace that is already gone is fine."""
    if name in netns.listnetns():
        netns.remove(name)


@contextlib.contextmanager
def temp_netns(prefix: str = "larappp-") -> Iterator[str]:
    """A fresh namespace named `prefix` + a random suffix, deleted on exit even on errors."""
    name = f"{prefix}{os.getpid()}-{secrets.token_hex(3)}"
    create_netns(name)
    try:
        yield name
    finally:
        delete_netns(name)


def run_in_netns(name: str, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """subprocess.run(argv) inside the namespace, through `ip netns exec`."""
    check = bool(kwargs.pop("check", False))
    return subprocess.run(["ip", "netns", "exec", name, *argv], check=check, **kwargs)


def call_in_netns(name: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run fn(*args, **kwargs) in a new thread inside the namespace; return or raise its outcome."""
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"netns-{name}") as pool:
        return pool.submit(_call_inside, name, fn, args, kwargs).result()


def _call_inside(
    name: str, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> T:
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        try:
            target = os.open(netns_path(name), os.O_RDONLY)
        except FileNotFoundError as exc:
            raise NetworkSetupError(
                f"network namespace {name} does not exist: create it first"
            ) from exc
        try:
            netns.setns(target, flags=0)
            try:
                return fn(*args, **kwargs)
            finally:
                netns.setns(home, flags=0)
        finally:
            os.close(target)
    finally:
        os.close(home)


def veth_pair(
    ns_a: str,
    ns_b: str,
    *,
    name_a: str = "veth-a",
    name_b: str = "veth-b",
    addrs_a: Sequence[str] = (),
    addrs_b: Sequence[str] = (),
) -> None:
    """Link two namespaces with a veth pair, both ends up, with CIDR addresses ("10.0.0.1/24").

    IPv6 addresses are added without duplicate address detection, so they are usable at
    once instead of after about two seconds.
    """
    # `ip` commands, not IPRoute(netns=...), which forks (see create_netns).
    _ip(ns_a, "link", "add", name_a, "type", "veth", "peer", "name", name_b, "netns", ns_b)
    for ns, ifname, addrs in ((ns_a, name_a, addrs_a), (ns_b, name_b, addrs_b)):
        for cidr in addrs:
            extra = ("nodad",) if ":" in cidr else ()
            _ip(ns, "addr", "add", cidr, "dev", ifname, *extra)
        _ip(ns, "link", "set", ifname, "up")


def _ip(ns: str, *argv: str) -> None:
    done = subprocess.run(["ip", "-n", ns, *argv], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise NetworkSetupError(f"ip -n {ns} {' '.join(argv)} failed: {done.stderr.strip()}")
